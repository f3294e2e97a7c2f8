//! Groups: create, members, leave, delete; the list; 404 for non-members.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

/// Ann with friends Bob and Carl (Bob and Carl are not friends); Eve knows nobody.
async fn circle(app: &TestApp) -> (Client, Client, Client, Client) {
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let carl = app.user("carl").await;
    let eve = app.user("eve").await;
    befriend(&ann, &bob).await;
    befriend(&ann, &carl).await;
    (ann, bob, carl, eve)
}

#[tokio::test]
async fn a_group_is_created_with_friends_and_shows_in_their_lists_live() {
    let app = TestApp::spawn().await;
    let (ann, bob, carl, eve) = circle(&app).await;
    let mut b = bob.stream().await;
    let mut e = eve.stream().await;
    let id = ann.group("Trip planning", &[&bob]).await;
    // The befriending's own rows may still be on their way (the log reader can lag under load):
    // wait for this group's row.
    let f = b
        .expect(LIVE, "group row", |f| {
            f.target().as_deref() == Some("conversation-list")
                && f.data.contains(&format!("conversation-{id}"))
        })
        .await;
    assert!(f.data.contains("Trip planning") && f.data.contains(&format!("conversation-{id}")));
    e.assert_none(Duration::from_millis(300), "anything", |f| {
        !about_my_account(f)
    })
    .await;
    let page = ann.get(&format!("/conversations/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.text("#conversation-title .title-text").unwrap(),
        "Trip planning"
    );
    assert_eq!(page.count(&format!("#members-{id} li.member")), 2);
    assert!(
        page.text(&format!("#member-{id}-{}", ann.id))
            .unwrap()
            .contains("owner")
    );
    assert!(
        bob.get("/conversations")
            .await
            .has(&format!("#conversation-{id}"))
    );
    assert!(
        !carl
            .get("/conversations")
            .await
            .has(&format!("#conversation-{id}"))
    );
}

#[tokio::test]
async fn group_creation_rules_and_nothing_written_on_error() {
    let app = TestApp::spawn().await;
    let (ann, bob, _carl, eve) = circle(&app).await;
    let before = ann
        .get("/conversations")
        .await
        .count("#conversation-list li");
    for (form, field) in [
        (vec![("title", ""), ("member", "bob")], "title"),
        (
            vec![("title", &*"t".repeat(101)), ("member", "bob")],
            "title",
        ),
        (vec![("title", "Ok"), ("member", "eve")], "member"),
        (vec![("title", "Ok"), ("member", "ghost")], "member"),
        (vec![("title", "Ok"), ("member", "b!")], "member"),
    ] {
        let r = ann.post("/conversations", &form).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{form:?}");
        assert!(r.has(&format!("#{field}-error")), "{form:?}");
    }
    assert_eq!(
        ann.get("/conversations")
            .await
            .count("#conversation-list li"),
        before
    );
    assert_eq!(
        bob.get("/conversations")
            .await
            .count("#conversation-list li"),
        1
    );
    let _ = eve;
    // A group of just me is allowed (people can be added later).
    let solo = ann.group("Notes", &[]).await;
    assert_eq!(
        ann.get(&format!("/conversations/{solo}")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn non_members_get_404_on_every_conversation_route() {
    let app = TestApp::spawn().await;
    let (ann, bob, carl, eve) = circle(&app).await;
    let group = ann.group("G", &[&bob]).await;
    let direct = ann.direct_with(&bob).await;
    let first = ann.say(group, "secret").await;
    for id in [group, direct, 999_999] {
        for who in [&carl, &eve] {
            assert_eq!(
                who.get(&format!("/conversations/{id}")).await.status,
                StatusCode::NOT_FOUND
            );
            assert_eq!(
                who.get(&format!("/conversations/{id}?before=5"))
                    .await
                    .status,
                StatusCode::NOT_FOUND
            );
            for (path, form) in [
                (
                    format!("/conversations/{id}/messages"),
                    vec![("body", "hi")],
                ),
                (format!("/conversations/{id}/messages"), vec![("body", "")]),
                (
                    format!("/conversations/{id}/read"),
                    vec![("message_id", &*first.to_string())],
                ),
                (
                    format!("/conversations/{id}/read"),
                    vec![("message_id", "x")],
                ),
                (
                    format!("/conversations/{id}/members"),
                    vec![("username", "ann")],
                ),
                (
                    format!("/conversations/{id}/members"),
                    vec![("username", "!")],
                ),
                (
                    format!("/conversations/{id}/members/{}/remove", bob.id),
                    vec![],
                ),
                (format!("/conversations/{id}/leave"), vec![]),
                (format!("/conversations/{id}/delete"), vec![]),
            ] {
                let r = who.post(&path, &form).await;
                assert_eq!(r.status, StatusCode::NOT_FOUND, "{path} {form:?}");
            }
        }
    }
    assert_eq!(
        bob.get(&format!("/conversations/{group}"))
            .await
            .count("article.message"),
        1
    );
}

#[tokio::test]
async fn any_member_adds_their_friends_and_everyone_sees_it_live() {
    let app = TestApp::spawn().await;
    let (ann, bob, carl, eve) = circle(&app).await;
    let id = ann.group("G", &[&bob]).await;
    ann.say(id, "history").await;
    let mut b = bob.stream().await;
    let mut c = carl.stream().await;
    let mut e = eve.stream().await;
    // Bob cannot add Carl: not his friend.
    let r = bob
        .post(
            &format!("/conversations/{id}/members"),
            &[("username", "carl")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("not your friend"));
    let r = ann
        .post(
            &format!("/conversations/{id}/members"),
            &[("username", "carl")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let f = b.expect_target("replace", &format!("members-{id}")).await;
    assert!(f.data.contains(&format!("member-{id}-{}", carl.id)));
    let row = format!("id=\"conversation-{id}\"");
    c.expect(LIVE, "row for the new member", |f| {
        f.target().as_deref() == Some("conversation-list") && f.data.contains(&row)
    })
    .await;
    e.assert_none(Duration::from_millis(300), "anything", |f| {
        !about_my_account(f)
    })
    .await;
    let page = carl.get(&format!("/conversations/{id}")).await;
    assert_eq!(
        page.count("article.message:not(.note)"),
        1,
        "history is visible"
    );
    let r = ann
        .post(
            &format!("/conversations/{id}/members"),
            &[("username", "carl")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("already in this group"));
    // A direct conversation cannot grow.
    let direct = ann.direct_with(&bob).await;
    let r = ann
        .post(
            &format!("/conversations/{direct}/members"),
            &[("username", "carl")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_owner_removes_members_who_are_told_live_and_stop_receiving() {
    let app = TestApp::spawn().await;
    let (ann, bob, carl, _eve) = circle(&app).await;
    let id = ann.group("G", &[&bob, &carl]).await;
    let mut b = bob.stream().await;
    let mut c = carl.stream().await;
    // Only the owner removes.
    let r = bob
        .post(
            &format!("/conversations/{id}/members/{}/remove", carl.id),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body
            .contains("Only the group&#39;s owner can remove members."),
        "{}",
        r.body
    );
    let r = ann
        .post(
            &format!("/conversations/{id}/members/{}/remove", ann.id),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = ann
        .post(
            &format!("/conversations/{id}/members/{}/remove", carl.id),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    c.expect(LIVE, "row removed", |f| {
        f.event == "remove" && f.target() == Some(format!("conversation-{id}"))
    })
    .await;
    let f = c
        .expect(LIVE, "told", |f| {
            f.target() == Some(format!("conversation-view-{id}"))
        })
        .await;
    assert!(f.data.contains("removed"));
    let f = b.expect_target("replace", &format!("members-{id}")).await;
    assert!(!f.data.contains(&format!("member-{id}-{}", carl.id)));
    assert_eq!(
        carl.get(&format!("/conversations/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    // Removing again: 404.
    let r = ann
        .post(
            &format!("/conversations/{id}/members/{}/remove", carl.id),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    ann.say(id, "after carl left").await;
    b.expect_target("append", &format!("messages-{id}")).await;
    c.assert_none(Duration::from_millis(300), "a message after removal", |f| {
        f.data.contains("after carl left")
    })
    .await;
}

#[tokio::test]
async fn leaving_passes_ownership_on_and_the_last_one_out_deletes_the_group() {
    let app = TestApp::spawn().await;
    let (ann, bob, carl, _eve) = circle(&app).await;
    let id = ann.group("G", &[&bob, &carl]).await;
    let mut b = bob.stream().await;
    let r = ann.post(&format!("/conversations/{id}/leave"), &[]).await;
    assert_eq!(r.location.as_deref(), Some("/conversations"));
    let f = b.expect_target("replace", &format!("members-{id}")).await;
    assert!(
        f.data.contains(&format!("data-owner=\"{}\"", bob.id)),
        "longest-standing member owns it now"
    );
    let page = bob.get(&format!("/conversations/{id}")).await;
    assert!(
        page.text(&format!("#member-{id}-{}", bob.id))
            .unwrap()
            .contains("owner")
    );
    assert_eq!(
        ann.get(&format!("/conversations/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    bob.post(&format!("/conversations/{id}/leave"), &[]).await;
    carl.post(&format!("/conversations/{id}/leave"), &[]).await;
    let r = carl.get(&format!("/conversations/{id}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // A direct conversation cannot be left or deleted.
    let direct = ann.direct_with(&bob).await;
    assert_eq!(
        ann.post(&format!("/conversations/{direct}/leave"), &[])
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        ann.post(&format!("/conversations/{direct}/delete"), &[])
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        ann.get(&format!("/conversations/{direct}")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn only_the_owner_deletes_and_members_looking_at_it_are_told() {
    let app = TestApp::spawn().await;
    let (ann, bob, _carl, eve) = circle(&app).await;
    let id = ann.group("G", &[&bob]).await;
    let mut b = bob.stream().await;
    let mut e = eve.stream().await;
    assert_eq!(
        bob.post(&format!("/conversations/{id}/delete"), &[])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        ann.post(&format!("/conversations/{id}/delete"), &[])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    b.expect(LIVE, "row removed", |f| {
        f.event == "remove" && f.target() == Some(format!("conversation-{id}"))
    })
    .await;
    let f = b
        .expect_target("replace", &format!("conversation-view-{id}"))
        .await;
    assert!(f.data.contains("deleted"));
    e.assert_none(Duration::from_millis(300), "anything", |f| {
        !about_my_account(f)
    })
    .await;
    assert_eq!(
        bob.get(&format!("/conversations/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_list_orders_by_activity_with_unread_counts_and_previews() {
    let app = TestApp::spawn().await;
    let (ann, bob, carl, _eve) = circle(&app).await;
    let with_bob = ann.direct_with(&bob).await;
    let with_carl = ann.direct_with(&carl).await;
    bob.say(with_bob, "one").await;
    bob.say(with_bob, "two").await;
    carl.say(with_carl, "hey <ann>").await;
    let page = ann.get("/conversations").await;
    let sel = scraper::Selector::parse("#conversation-list li.conv-row").unwrap();
    let order: Vec<String> = page
        .html()
        .select(&sel)
        .map(|e| e.value().id().unwrap().to_owned())
        .collect();
    assert_eq!(
        order,
        vec![
            format!("conversation-{with_carl}"),
            format!("conversation-{with_bob}")
        ]
    );
    assert_eq!(
        page.text(&format!("#conversation-{with_bob} .unread"))
            .as_deref(),
        Some("2")
    );
    assert_eq!(
        page.text(&format!("#conversation-{with_carl} .unread"))
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        page.text(&format!("#preview-{with_carl}")).as_deref(),
        Some("carl: hey <ann>")
    );
    assert_eq!(page.text("#badge-unread").as_deref(), Some("3"));
    assert_eq!(
        page.text(&format!("#conversation-{with_bob} .conv-title .name"))
            .as_deref(),
        Some("bob")
    );
    // Bob's own messages do not count for him.
    let page = bob.get("/conversations").await;
    assert_eq!(
        page.text(&format!("#conversation-{with_bob} .unread"))
            .as_deref(),
        Some("0")
    );
}

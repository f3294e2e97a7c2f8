//! The live layer's contract: each frame carries its own target and audience, records have one
//! partial and one DOM id, and what arrives live is what a fresh page shows. One regression test
//! per case that once left a page wrong until a reload (issue 8); the browser side of them is in
//! `e2e.rs` and the seeded property test in `e2e_property.rs`.

use std::time::Duration;

use crate::helpers::{LIVE, TestApp};

// Case 2: an older page is not where new messages go.
#[tokio::test]
async fn an_older_page_has_its_own_list_so_live_messages_skip_it() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let mut first = 0;
    for i in 0..52 {
        let id = ann.say(c, &format!("m{i}")).await;
        if i == 0 {
            first = id;
        }
    }
    let newest = ann.get(&format!("/conversations/{c}")).await;
    let before = newest
        .attr(".older a", "href")
        .expect("older link")
        .rsplit('=')
        .next()
        .unwrap()
        .to_owned();
    let older = bob
        .get(&format!("/conversations/{c}?before={before}"))
        .await;
    assert!(
        !older.has(&format!("#messages-{c}")),
        "no live list on an older page"
    );
    assert!(older.has(&format!("#messages-{c}-before-{before}")));
    assert!(older.has(&format!("#message-{first}")));
    assert!(!older.has("[data-live]"));
    assert!(newest.has(&format!("#messages-{c}[data-live]")));
}

// Case 3: rows and member lists that arrive live show who is online now.
#[tokio::test]
async fn rows_and_member_lists_arrive_with_current_presence() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let carl = app.user("carl").await;
    let mut a = ann.stream().await;
    let _b = bob.stream().await;
    ann.post("/friends/requests", &[("username", "bob")]).await;
    let id = bob.incoming_request_from("ann").await.unwrap();
    bob.post(&format!("/friends/requests/{id}/accept"), &[])
        .await;
    let row = a.expect_target("prepend", "conversation-list").await;
    assert!(
        row.content().contains(&format!(
            "class=\"presence online\" data-presence=\"{}\"",
            bob.id
        )),
        "bob is online: {}",
        row.data
    );
    crate::helpers::befriend(&ann, &carl).await;
    let g = ann.group("Trip", &[&bob]).await;
    let _c = carl.stream().await;
    ann.post(
        &format!("/conversations/{g}/members"),
        &[("username", "carl")],
    )
    .await;
    let list = a.expect_target("replace", &format!("members-{g}")).await;
    for u in [ann.id, bob.id, carl.id] {
        assert!(
            list.content()
                .contains(&format!("class=\"presence online\" data-presence=\"{u}\"")),
            "{u} online in {}",
            list.data
        );
    }
}

// Case 4: someone removed and added back gets the group as it is, with its history.
#[tokio::test]
async fn a_member_added_back_gets_the_row_with_its_preview_and_a_stale_view_reloads() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let g = ann.group("Trip", &[&bob]).await;
    ann.say(g, "before you left").await;
    ann.post(
        &format!("/conversations/{g}/members/{}/remove", bob.id),
        &[],
    )
    .await;
    let mut b = bob.stream().await;
    ann.post(
        &format!("/conversations/{g}/members"),
        &[("username", "bob")],
    )
    .await;
    let row = b.expect_target("prepend", "conversation-list").await;
    // Its preview is its newest message (the note that bob was removed), not "No messages yet".
    assert!(row.content().contains("removed @bob"), "{}", row.data);
    assert!(!row.content().contains("No messages yet"));
    b.expect_target("reload", &format!("conversation-view-{g}"))
        .await;
    let page = bob.get(&format!("/conversations/{g}")).await;
    assert!(page.has(&format!("#messages-{g} article.message")));
}

// Case 5: the first friend shows up in the new-group form, live.
#[tokio::test]
async fn a_new_friend_becomes_pickable_for_a_group_live() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let page = ann.get("/conversations").await;
    assert!(page.has("#group-friends"));
    assert_eq!(page.count("#group-friends label"), 0);
    let mut a = ann.stream().await;
    crate::helpers::befriend(&ann, &bob).await;
    let pick = a.expect_target("append", "group-friends").await;
    assert!(pick.content().contains(&format!("id=\"pick-{}\"", bob.id)));
    assert!(pick.content().contains("value=\"bob\""));
    let page = ann.get("/conversations").await;
    assert!(page.has(&format!("#group-friends #pick-{}", bob.id)));
    bob.post(&format!("/friends/{}/remove", ann.id), &[]).await;
    a.expect_target("remove", &format!("pick-{}", bob.id)).await;
}

// Case 6: grouping is decided on the server from the message before, for the reply to the
// sender, the live frame and the page alike.
#[tokio::test]
async fn quick_successive_messages_are_grouped_the_same_live_and_on_the_page() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let mut b = bob.stream().await;
    let first = ann.say(c, "one").await;
    let r = ann
        .post_fetch(&format!("/conversations/{c}/messages"), &[("body", "two")])
        .await;
    assert!(
        r.has("article.message.continued"),
        "the sender's reply is grouped"
    );
    let f1 = b.expect_target("append", &format!("messages-{c}")).await;
    assert!(!f1.content().contains("continued"));
    assert!(f1.content().contains("class=\"day\""), "first of its day");
    let f2 = b.expect_target("append", &format!("messages-{c}")).await;
    assert!(f2.content().contains("message continued"));
    assert!(!f2.content().contains("class=\"day\""));
    let page = bob.get(&format!("/conversations/{c}")).await;
    assert!(!page.has(&format!("#message-{first}.continued")));
    assert_eq!(
        page.count(&format!("#messages-{c} article.message.continued")),
        1
    );
}

// Case 7: a new display name reaches the pages of the people who see it.
#[tokio::test]
async fn a_rename_reaches_friends_and_co_members_but_not_strangers() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    crate::helpers::befriend(&bob, &carl).await;
    let _g = bob.group("Trio", &[&carl]).await;
    let dan = app.user("dan").await;
    let mut c = carl.stream().await;
    let mut d = dan.stream().await;
    // Carl shares no conversation with ann: he does not see her name anywhere.
    ann.post("/settings", &[("display_name", "Ann Lee")]).await;
    c.assert_none(Duration::from_millis(300), "ann's rename", |f| {
        f.event == "rename"
    })
    .await;
    // Bob renames: carl (friend and co-member) sees it, dan does not.
    bob.post("/settings", &[("display_name", "Bobby")]).await;
    let f = c.expect_target("rename", &format!("user-{}", bob.id)).await;
    assert!(f.content().contains("Bobby"));
    d.assert_none(Duration::from_millis(300), "rename", |f| {
        f.event == "rename"
    })
    .await;
    // Every place bob's name shows on a page is bound to the rename.
    let page = carl.get("/friends").await;
    assert_eq!(
        page.text(&format!("#friend-{} [data-name-of=\"{}\"]", bob.id, bob.id))
            .as_deref(),
        Some("Bobby")
    );
}

// Case 8: someone who leaves takes their "Seen by" chip with them.
#[tokio::test]
async fn a_member_who_leaves_takes_their_receipt_with_them() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let g = ann.group("Trip", &[&bob]).await;
    let m = ann.say(g, "hello").await;
    bob.post(
        &format!("/conversations/{g}/read"),
        &[("message_id", &m.to_string())],
    )
    .await;
    let page = ann.get(&format!("/conversations/{g}")).await;
    assert!(page.has(&format!("#receipts-{m} #reader-{g}-{}", bob.id)));
    let mut a = ann.stream().await;
    bob.post(&format!("/conversations/{g}/leave"), &[]).await;
    a.expect_target("remove", &format!("reader-{g}-{}", bob.id))
        .await;
    let page = ann.get(&format!("/conversations/{g}")).await;
    assert!(!page.has(&format!("#reader-{g}-{}", bob.id)));
}

// Unread counts follow the reader exactly, on every page of theirs.
#[tokio::test]
async fn reading_sets_my_exact_unread_counts_on_my_pages_only() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let m1 = ann.say(c, "one").await;
    ann.say(c, "two").await;
    let mut a = ann.stream().await;
    let mut b = bob.stream().await;
    // On PostgreSQL an event is delivered once every older transaction in the cluster has ended,
    // so ann's own frames of her last post may still come in: let them.
    a.drain(Duration::from_millis(300)).await;
    bob.post(
        &format!("/conversations/{c}/read"),
        &[("message_id", &m1.to_string())],
    )
    .await;
    let u = b.expect_target("replace", &format!("unread-{c}")).await;
    assert!(u.content().contains("data-count=\"1\""), "{}", u.data);
    let badge = b.expect_target("replace", "badge-unread").await;
    assert!(badge.content().contains("data-count=\"1\""));
    a.expect_target("append", &format!("receipts-{m1}")).await;
    a.assert_none(Duration::from_millis(200), "bob's counts", |f| {
        f.target()
            .is_some_and(|t| t.starts_with("unread-") || t == "badge-unread")
    })
    .await;
}

// A group deleted with unread messages lowers its members' badges.
#[tokio::test]
async fn deleting_a_group_lowers_the_unread_badge_of_members_who_had_unread_there() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let g = ann.group("Trip", &[&bob]).await;
    ann.say(g, "one").await;
    ann.say(g, "two").await;
    let mut b = bob.stream().await;
    ann.post(&format!("/conversations/{g}/delete"), &[]).await;
    let f = b
        .expect(LIVE, "badge drop", |f| {
            f.target().as_deref() == Some("badge-unread") && f.data.contains("data-delta=\"-2\"")
        })
        .await;
    assert_eq!(f.event, "replace");
}

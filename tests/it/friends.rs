//! Friend requests, friendships, direct conversations and presence.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

async fn friend_ids(c: &Client) -> Vec<String> {
    let r = c.get("/friends").await;
    let sel = scraper::Selector::parse("#friend-list li.friend").unwrap();
    r.html()
        .select(&sel)
        .filter_map(|e| e.value().id().map(str::to_owned))
        .collect()
}

async fn direct_rows(c: &Client) -> usize {
    c.get("/conversations")
        .await
        .count("#conversation-list li.conv-row")
}

#[tokio::test]
async fn a_request_can_be_sent_accepted_and_makes_a_direct_conversation() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let r = ann.post("/friends/requests", &[("username", "BOB")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = ann.get(r.location.as_deref().unwrap()).await;
    assert!(page.text(".notice").unwrap().contains("bob"));
    assert_eq!(page.count("#outgoing-requests li.request"), 1);
    assert_eq!(
        bob.get("/friends").await.text("#badge-requests").as_deref(),
        Some("1")
    );
    let id = bob.incoming_request_from("ann").await.unwrap();
    let r = bob
        .post(&format!("/friends/requests/{id}/accept"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(friend_ids(&ann).await, vec![format!("friend-{}", bob.id)]);
    assert_eq!(friend_ids(&bob).await, vec![format!("friend-{}", ann.id)]);
    assert_eq!(direct_rows(&ann).await, 1);
    assert_eq!(direct_rows(&bob).await, 1);
    assert_eq!(ann.direct_with(&bob).await, bob.direct_with(&ann).await);
    assert_eq!(bob.get("/friends").await.count("#incoming-requests li"), 0);
}

#[tokio::test]
async fn request_rules_give_clear_messages_and_write_nothing() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    let cases = [
        ("ann", "That is you"),
        ("nobody_here", "Nobody here is called"),
        ("bob", "already friends"),
        ("x", "3 to 32"),
    ];
    for (name, msg) in cases {
        let r = ann.post("/friends/requests", &[("username", name)]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}");
        assert!(
            r.text("#username-error").unwrap().contains(msg),
            "{name}: {:?}",
            r.text("#username-error")
        );
        assert_eq!(r.attr("#friend-username", "value").as_deref(), Some(name));
    }
    ann.post("/friends/requests", &[("username", "carl")]).await;
    let again = ann.post("/friends/requests", &[("username", "carl")]).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        again
            .text("#username-error")
            .unwrap()
            .contains("already sent")
    );
    let reverse = carl.post("/friends/requests", &[("username", "ann")]).await;
    assert_eq!(reverse.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        reverse
            .text("#username-error")
            .unwrap()
            .contains("already sent you a request")
    );
    assert_eq!(
        reverse.count("#incoming-requests li.request"),
        1,
        "with the request to accept"
    );
    assert_eq!(ann.get("/friends").await.count("#outgoing-requests li"), 1);
    assert_eq!(carl.get("/friends").await.count("#outgoing-requests li"), 0);
    let _ = bob;
}

#[tokio::test]
async fn only_the_recipient_answers_and_only_the_requester_cancels() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let eve = app.user("eve").await;
    ann.post("/friends/requests", &[("username", "bob")]).await;
    let id = bob.incoming_request_from("ann").await.unwrap();
    for action in ["accept", "reject", "cancel"] {
        let r = eve
            .post(&format!("/friends/requests/{id}/{action}"), &[])
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "a stranger: {action}");
    }
    let r = ann
        .post(&format!("/friends/requests/{id}/accept"), &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body
            .contains("Only the person a friend request was sent to can accept or reject it."),
        "{}",
        r.body
    );
    assert_eq!(
        ann.post(&format!("/friends/requests/{id}/reject"), &[])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = bob
        .post(&format!("/friends/requests/{id}/cancel"), &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body
            .contains("Only the person who sent a friend request can cancel it."),
        "{}",
        r.body
    );
    assert_eq!(
        bob.post("/friends/requests/999999/accept", &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bob.post("/friends/requests/abc/accept", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    // Rejected: final.
    assert_eq!(
        bob.post(&format!("/friends/requests/{id}/reject"), &[])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        bob.post(&format!("/friends/requests/{id}/accept"), &[])
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        ann.post(&format!("/friends/requests/{id}/cancel"), &[])
            .await
            .status,
        StatusCode::CONFLICT
    );
    assert!(friend_ids(&bob).await.is_empty());
    // A new request after a rejection is fine.
    assert_eq!(
        ann.post("/friends/requests", &[("username", "bob")])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn accept_and_cancel_at_once_leave_exactly_one_outcome() {
    let app = TestApp::spawn().await;
    for round in 0..4 {
        let ann = app.user(&format!("ann{round}")).await;
        let bob = app.user(&format!("bob{round}")).await;
        ann.post("/friends/requests", &[("username", &bob.name)])
            .await;
        let id = bob.incoming_request_from(&ann.name).await.unwrap();
        let accept_path = format!("/friends/requests/{id}/accept");
        let cancel_path = format!("/friends/requests/{id}/cancel");
        let (a, c) = tokio::join!(bob.post(&accept_path, &[]), ann.post(&cancel_path, &[]));
        let statuses = [a.status, c.status];
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == StatusCode::SEE_OTHER)
                .count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == StatusCode::CONFLICT)
                .count(),
            1,
            "{statuses:?}"
        );
        let friends = !friend_ids(&ann).await.is_empty();
        assert_eq!(friends, a.status == StatusCode::SEE_OTHER);
        assert_eq!(direct_rows(&ann).await, usize::from(friends));
        assert_eq!(direct_rows(&bob).await, usize::from(friends));
    }
}

#[tokio::test]
async fn re_befriending_reuses_the_direct_conversation_and_its_history() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let first = ann.direct_with(&bob).await;
    ann.say(first, "before").await;
    // Unfriend: readable, closed.
    let r = bob.post(&format!("/friends/{}/remove", ann.id), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(friend_ids(&ann).await.is_empty());
    let page = ann.get(&format!("/conversations/{first}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.count("article.message"), 1);
    assert!(
        page.text(&format!("#composer-{first} .notice"))
            .unwrap()
            .contains("no longer friends")
    );
    let r = ann
        .post(
            &format!("/conversations/{first}/messages"),
            &[("body", "hello?")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bob.get(&format!("/conversations/{first}"))
            .await
            .count("article.message"),
        1
    );
    // Unfriending someone who is not a friend: 404.
    assert_eq!(
        bob.post(&format!("/friends/{}/remove", ann.id), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Friends again: same conversation, history kept, open again.
    befriend(&bob, &ann).await;
    assert_eq!(ann.direct_with(&bob).await, first);
    assert_eq!(direct_rows(&ann).await, 1);
    let page = ann.get(&format!("/conversations/{first}")).await;
    assert_eq!(page.count("article.message"), 1);
    assert!(page.has(&format!("#composer-{first} textarea")));
    ann.say(first, "after").await;
}

#[tokio::test]
async fn crossing_requests_make_one_friendship() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let (a, b) = tokio::join!(
        ann.post("/friends/requests", &[("username", "bob")]),
        bob.post("/friends/requests", &[("username", "ann")])
    );
    let ok = [a.status, b.status]
        .iter()
        .filter(|s| **s == StatusCode::SEE_OTHER)
        .count();
    assert_eq!(ok, 1, "{:?} {:?}", a.status, b.status);
    let (asker, answerer) = if a.status == StatusCode::SEE_OTHER {
        (&ann, &bob)
    } else {
        (&bob, &ann)
    };
    let id = answerer.incoming_request_from(&asker.name).await.unwrap();
    answerer
        .post(&format!("/friends/requests/{id}/accept"), &[])
        .await;
    assert_eq!(direct_rows(&ann).await, 1);
    assert_eq!(direct_rows(&bob).await, 1);
}

#[tokio::test]
async fn request_answers_and_friendships_arrive_live_for_the_parties_only() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let carl = app.user("carl").await;
    let mut a = ann.stream().await;
    let mut b = bob.stream().await;
    let mut c = carl.stream().await;
    ann.post("/friends/requests", &[("username", "bob")]).await;
    b.expect_target("prepend", "incoming-requests").await;
    let badge = b.expect_target("replace", "badge-requests").await;
    assert!(badge.data.contains("data-count=\"1\""));
    let id = bob.incoming_request_from("ann").await.unwrap();
    bob.post(&format!("/friends/requests/{id}/accept"), &[])
        .await;
    let request = format!("request-{id}");
    for (s, _me, other) in [(&mut a, &ann, &bob), (&mut b, &bob, &ann)] {
        let f = s
            .expect(LIVE, "request removed", |f| {
                f.event == "remove" && f.target().as_deref() == Some(&request)
            })
            .await;
        let _ = f;
        let f = s
            .expect(LIVE, "friend added", |f| {
                f.target().as_deref() == Some("friend-list")
            })
            .await;
        assert!(f.data.contains(&format!("friend-{}", other.id)));
        let f = s
            .expect(LIVE, "conversation row", |f| {
                f.target().as_deref() == Some("conversation-list")
            })
            .await;
        assert!(
            f.data.contains(&other.name),
            "a direct row shows the other person"
        );
    }
    bob.post(&format!("/friends/{}/remove", ann.id), &[]).await;
    a.expect(LIVE, "unfriended", |f| {
        f.event == "remove" && f.target() == Some(format!("friend-{}", bob.id))
    })
    .await;
    b.expect(LIVE, "unfriended", |f| {
        f.event == "remove" && f.target() == Some(format!("friend-{}", ann.id))
    })
    .await;
    c.assert_none(Duration::from_millis(300), "anything", |f| {
        !about_my_account(f)
    })
    .await;
}

#[tokio::test]
async fn presence_follows_the_last_stream_with_a_grace_period() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    let mut b = bob.stream().await;
    let mut c = carl.stream().await;
    let presence = format!("presence-{}", ann.id);
    // Ann comes online: her friend sees it, a stranger does not.
    let tab1 = ann.stream().await;
    let f = b.expect_target("presence", &presence).await;
    assert!(f.data.contains("online"));
    assert!(f.id.is_none(), "presence is ephemeral");
    assert!(
        bob.get("/friends")
            .await
            .has(&format!("[data-presence=\"{}\"].online", ann.id))
    );
    // A second tab, then a reload of the first within the grace period: no flicker.
    let tab2 = ann.stream().await;
    drop(tab1);
    let _tab3 = ann.stream().await;
    drop(tab2);
    b.assert_none(Duration::from_millis(1500), "offline", |f| {
        f.event == "presence"
    })
    .await;
    // A stream that opens gets the current presence of friends.
    let mut b2 = bob.stream().await;
    assert!(b2.snapshot(LIVE).await.contains(&ann.id));
    drop(_tab3);
    let f = b
        .expect(Duration::from_secs(3), "offline", |f| f.event == "presence")
        .await;
    assert!(!f.data.contains("class=\"presence online\""));
    assert!(
        !bob.get("/friends")
            .await
            .has(&format!("[data-presence=\"{}\"].online", ann.id))
    );
    c.assert_none(Duration::from_millis(200), "presence", |f| {
        f.event == "presence"
    })
    .await;
}

#[tokio::test]
async fn on_postgresql_presence_crosses_nodes() {
    let app = TestApp::spawn().await;
    if !app.on_postgres() {
        // Several nodes are a PostgreSQL deployment; the PostgreSQL run of the suite covers this.
        return;
    }
    let node_b = app.second_node().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let bob_b = bob.on(&node_b);
    let presence = format!("presence-{}", ann.id);
    let mut b = bob_b.stream().await;
    // Ann connects to node A; Bob, on node B, sees her come online.
    let ann_stream = ann.stream().await;
    let f = b
        .expect(Duration::from_secs(2), "online", |f| {
            f.event == "presence" && f.target().as_deref() == Some(&presence)
        })
        .await;
    assert!(f.data.contains("presence online"));
    assert!(
        bob_b
            .get("/friends")
            .await
            .has(&format!("[data-presence=\"{}\"].online", ann.id))
    );
    // A stream opening on node B gets the snapshot, including friends connected to node A.
    let mut b2 = bob_b.stream().await;
    assert!(b2.snapshot(LIVE).await.contains(&ann.id));
    // Ann's last stream closes: after the grace period, offline on node B too.
    drop(ann_stream);
    let f = b
        .expect(Duration::from_secs(4), "offline", |f| {
            f.event == "presence" && f.target().as_deref() == Some(&presence)
        })
        .await;
    assert!(!f.data.contains("presence online"));
    assert!(
        !bob_b
            .get("/friends")
            .await
            .has(&format!("[data-presence=\"{}\"].online", ann.id))
    );
}

/// Names are shown as "@bob"; typed that way, they name bob (a friend request, a new member).
#[tokio::test]
async fn a_username_typed_with_its_at_sign_names_that_person() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let cat = app.user("cat").await;
    let r = ann
        .post("/friends/requests", &[("username", " @bob")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(bob.incoming_request_from("ann").await.is_some());
    let r = ann
        .post("/friends/requests", &[("username", "@@bob")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    crate::helpers::befriend(&ann, &cat).await;
    let g = ann.group("G", &[]).await;
    let r = ann
        .post(
            &format!("/conversations/{g}/members"),
            &[("username", "@cat")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = cat.get(&format!("/conversations/{g}")).await;
    assert_eq!(page.status, StatusCode::OK);
}

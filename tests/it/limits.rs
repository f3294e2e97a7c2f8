//! Throttling that protects without locking people out: logins per (account, IP) and across IPs,
//! and per-user caps on streams, messages, friend requests and groups.

use std::net::IpAddr;

use reqwest::StatusCode;

use crate::helpers::*;

/// A browser-like client whose connections come from the loopback address `from`.
fn client_from(app: &TestApp, from: &str) -> Client {
    Client {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .local_address(from.parse::<IpAddr>().unwrap())
            .build()
            .unwrap(),
        ..app.client()
    }
}

#[tokio::test]
async fn ten_failed_logins_from_one_ip_do_not_stop_the_right_password_from_another() {
    // Arrange: the defaults for (account, IP); slowing down starts after ten failures.
    let app = TestApp::spawn_with(|c| {
        c.rate_limit_account = 10;
        c.login_backoff_after = 10;
    })
    .await;
    app.user("alice").await;
    let attacker = client_from(&app, "127.0.0.66");
    for _ in 0..10 {
        let r = attacker
            .post(
                "/login",
                &[("username", "alice"), ("password", "guess guess guess")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // The attacker's address is now refused for that account, even with the right password.
    let r = attacker
        .post(
            "/login",
            &[("username", "alice"), ("password", &password_for("alice"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("Too many attempts"));

    // Act: alice, elsewhere.
    let alice = client_from(&app, "127.0.0.7");
    let r = alice
        .post(
            "/login",
            &[("username", "alice"), ("password", &password_for("alice"))],
        )
        .await;

    // Assert: in.
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(alice.get("/conversations").await.status, StatusCode::OK);
}

#[tokio::test]
async fn one_stream_more_than_the_cap_answers_429_and_other_users_are_unaffected() {
    let app = TestApp::spawn_with(|c| c.max_streams_per_user = 3).await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(ann.stream().await);
    }
    // Act
    let r = ann.get("/events").await;
    let probe = ann.get("/events?probe=1").await;
    // Assert
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers["retry-after"], "60");
    assert!(r.body.contains("3 live windows"), "{}", r.body);
    assert_eq!(probe.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.state.hub.stream_count(ann.id), 3, "nothing registered");
    assert_eq!(
        bob.get("/events?probe=1").await.status,
        StatusCode::NO_CONTENT
    );
    let _bob_stream = bob.stream().await;
    // A probe never opens a stream, and says 401 once logged out.
    assert_eq!(
        app.client().get("/events?probe=1").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn posting_faster_than_the_rate_answers_429_keeps_the_draft_and_writes_nothing() {
    let app = TestApp::spawn_with(|c| {
        c.message_rate = 1;
        c.message_burst = 3;
    })
    .await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let conversation = ann.direct_with(&bob).await;
    let path = format!("/conversations/{conversation}/messages");
    for i in 0..3 {
        ann.say(conversation, &format!("burst {i}")).await;
    }
    // Act: one more from live.js, one more as a plain form.
    let fetched = ann.post_fetch(&path, &[("body", "one too many")]).await;
    let form = ann
        .post(&path, &[("body", "my long draft"), ("client_id", "c-42")])
        .await;
    // Assert
    assert_eq!(fetched.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(fetched.body.contains("very fast"), "{}", fetched.body);
    assert_eq!(form.status, StatusCode::TOO_MANY_REQUESTS);
    let textarea = format!("#body-{conversation}");
    assert_eq!(form.text(&textarea).as_deref(), Some("my long draft"));
    assert!(
        form.text(&format!("#composer-error-{conversation}"))
            .unwrap()
            .contains("very fast")
    );
    let page = bob.get(&format!("/conversations/{conversation}")).await;
    assert_eq!(page.count("article.message"), 3, "nothing more was stored");
    // Per user: bob is not slowed down by ann.
    bob.say(conversation, "hi ann").await;
}

#[tokio::test]
async fn friend_requests_and_groups_per_hour_are_capped_per_user() {
    let app = TestApp::spawn_with(|c| {
        c.friend_requests_per_hour = 2;
        c.groups_per_hour = 1;
    })
    .await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let carl = app.user("carl").await;
    let dave = app.user("dave").await;
    for to in ["bob", "carl"] {
        let r = ann.post("/friends/requests", &[("username", to)]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
    }
    // Act
    let r = ann.post("/friends/requests", &[("username", "dave")]).await;
    // Assert: 429, the form keeps the name, dave got nothing.
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.attr("#friend-username", "value").as_deref(), Some("dave"));
    assert!(r.text("#username-error").unwrap().contains("last hour"));
    assert_eq!(dave.incoming_request_from("ann").await, None);
    // Someone else still may.
    let r = bob.post("/friends/requests", &[("username", "dave")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    // Groups: one an hour here.
    befriend(&carl, &dave).await;
    carl.group("First", &[&dave]).await;
    let r = carl
        .post("/conversations", &[("title", "Second"), ("member", "dave")])
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.attr("#group-title", "value").as_deref(), Some("Second"));
    assert!(r.text("#title-error").unwrap().contains("last hour"));
    let list = dave.get("/conversations").await;
    assert!(!list.body.contains("Second"));
}

/// On PostgreSQL the limits are counted in the database: two nodes do not double them.
#[tokio::test]
async fn on_postgresql_limits_hold_across_nodes() {
    let set = |c: &mut parley::Config| {
        c.message_rate = 1;
        c.message_burst = 3;
        c.max_streams_per_user = 2;
    };
    let app = TestApp::spawn_with(set).await;
    if !app.on_postgres() {
        // Several nodes are a PostgreSQL deployment; the PostgreSQL run of the suite covers this.
        return;
    }
    let node_b = app.second_node_with(set).await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let ann_b = ann.on(&node_b);
    // Messages: a burst of 3 in all, whichever node each goes to.
    let mut statuses = Vec::new();
    for (i, client) in [&ann, &ann_b, &ann, &ann_b].into_iter().enumerate() {
        let r = client
            .post(
                &format!("/conversations/{c}/messages"),
                &[("body", &format!("m{i}"))],
            )
            .await;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(
        statuses,
        vec![303, 303, 303, 429],
        "one burst across both nodes"
    );
    // Streams: two in all; a third, on either node, is refused.
    let _s1 = ann.stream().await;
    let _s2 = ann_b.stream().await;
    let r = ann_b.get("/events").await;
    assert_eq!(r.status, reqwest::StatusCode::TOO_MANY_REQUESTS);
    let r = ann.get("/events").await;
    assert_eq!(r.status, reqwest::StatusCode::TOO_MANY_REQUESTS);
    // One closes: the next one is welcome again, on the other node.
    drop(_s1);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let _s3 = ann_b.stream().await;
}

/// On PostgreSQL the shared message limit is taken inside the post itself: a post it refuses
/// (plain or with a mention, whichever node) stores nothing.
#[tokio::test]
async fn on_postgresql_a_post_refused_by_the_shared_limit_writes_nothing() {
    let set = |c: &mut parley::Config| {
        c.message_rate = 1;
        c.message_burst = 2;
    };
    let app = TestApp::spawn_with(set).await;
    if !app.on_postgres() {
        return;
    }
    let node_b = app.second_node_with(set).await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let ann_b = ann.on(&node_b);
    let path = format!("/conversations/{c}/messages");
    // Each node's own limit allows two; the shared one, two in all.
    assert_eq!(
        ann.post(&path, &[("body", "first one")]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        ann_b.post(&path, &[("body", "second one")]).await.status,
        StatusCode::SEE_OTHER
    );
    let r = ann.post(&path, &[("body", "plain refused")]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let r = ann_b.post(&path, &[("body", "@bob mention refused")]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let page = bob.get(&format!("/conversations/{c}")).await;
    assert!(page.body.contains("first one") && page.body.contains("second one"));
    assert!(
        !page.body.contains("plain refused"),
        "a refused plain post is not stored"
    );
    assert!(
        !page.body.contains("mention refused"),
        "a refused post with a mention is not stored"
    );
}

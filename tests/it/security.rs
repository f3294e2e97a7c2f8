//! Cross-site request protection, security headers, body limits.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn a_cross_site_post_with_a_valid_session_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let conversation = ann.direct_with(&bob).await;
    let path = format!("/conversations/{conversation}/messages");
    let r = ann
        .post_with(
            &path,
            &[("body", "forged")],
            &[("Origin", "https://evil.example")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = ann
        .post_with(
            &path,
            &[("body", "forged")],
            &[("Sec-Fetch-Site", "cross-site")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = ann
        .post_with(
            &path,
            &[("body", "forged")],
            &[("Sec-Fetch-Site", "same-site")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = ann
        .post_with(
            "/settings",
            &[("display_name", "pwned")],
            &[("Origin", "https://evil.example")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let page = bob.get(&format!("/conversations/{conversation}")).await;
    assert_eq!(page.count("article.message"), 0, "nothing was posted");
    assert_ne!(
        ann.get("/settings")
            .await
            .attr("#display_name", "value")
            .as_deref(),
        Some("pwned")
    );
    // Same origin passes.
    let r = ann
        .post_with(
            &path,
            &[("body", "hello")],
            &[("Sec-Fetch-Site", "same-origin")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = ann
        .post_with(&path, &[("body", "hi")], &[("Origin", &app.base)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let c = app.client();
    for path in ["/login", "/nope", "/healthz", "/static/app.css"] {
        let r = c.get(path).await;
        let csp = r
            .headers
            .get("content-security-policy")
            .expect(path)
            .to_str()
            .unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(r.headers.get("x-content-type-options").unwrap(), "nosniff");
        assert_eq!(r.headers.get("referrer-policy").unwrap(), "same-origin");
    }
}

#[tokio::test]
async fn an_oversized_form_is_refused_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let big = "x".repeat(70 * 1024);
    let r = ann.post("/settings", &[("display_name", &big)]).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    assert_eq!(
        ann.get("/settings")
            .await
            .attr("#display_name", "value")
            .as_deref(),
        Some("")
    );
}

#[tokio::test]
async fn pages_escape_user_text() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    ann.post("/settings", &[("display_name", "<b>Ann</b> \"&'")])
        .await;
    let r = ann.get("/settings").await;
    assert!(!r.body.contains("<b>Ann</b>"));
    assert_eq!(
        r.text("#current-user .me-name").as_deref(),
        Some("<b>Ann</b> \"&'")
    );
}

#[tokio::test]
async fn pages_are_not_stored_and_windows_are_isolated() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    for path in ["/conversations", "/settings", "/friends", "/login", "/nope"] {
        let r = ann.get(path).await;
        assert_eq!(r.headers["cache-control"], "no-store", "{path}");
        assert_eq!(
            r.headers["cross-origin-opener-policy"], "same-origin",
            "{path}"
        );
    }
    let r = ann.post("/settings", &[("display_name", "Ann")]).await;
    assert_eq!(r.headers["cache-control"], "no-store", "redirects too");
    // Assets stay cacheable; the stream keeps its own header.
    let r = ann.get("/static/app.css").await;
    assert_eq!(r.headers["cache-control"], "public, max-age=300");
}

#[tokio::test]
async fn a_one_mebibyte_form_gets_413_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let conversation = ann.direct_with(&bob).await;
    let big = "x".repeat(1024 * 1024);
    let r = ann.post("/settings", &[("display_name", &big)]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.body.contains("64 KiB"));
    let r = ann
        .post(
            &format!("/conversations/{conversation}/messages"),
            &[("body", &big)],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let page = bob.get(&format!("/conversations/{conversation}")).await;
    assert_eq!(page.count("article.message"), 0);
}

#[tokio::test]
async fn a_cross_site_navigation_shows_the_conversation_without_moving_the_read_marker() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let conversation = ann.direct_with(&bob).await;
    ann.say(conversation, "unread for bob").await;
    let mut ann_stream = ann.stream().await;
    let path = format!("/conversations/{conversation}");
    // Act: a link on another site.
    let r = bob
        .http
        .get(format!("{}{path}", app.base))
        .header("Sec-Fetch-Site", "cross-site")
        .header("Sec-Fetch-Mode", "navigate")
        .send()
        .await
        .unwrap();
    // Assert: the page shows, nothing moved, nothing was logged.
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        bob.get("/friends").await.text("#badge-unread").as_deref(),
        Some("1")
    );
    // (Ann's own marker on her message may still be arriving: only bob's receipt would be wrong.)
    let bobs_receipt = format!("reader-{conversation}-{}", bob.id);
    ann_stream
        .assert_none(LIVE, "bob's read receipt", |f| {
            f.data.contains(&bobs_receipt)
        })
        .await;
    // Opened from our own site, it reads.
    let r = bob
        .http
        .get(format!("{}{path}", app.base))
        .header("Sec-Fetch-Site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        bob.get("/friends").await.text("#badge-unread").as_deref(),
        Some("0")
    );
}

#[tokio::test]
async fn a_session_past_its_lifetime_gets_401_on_the_stream_and_its_open_stream_ends() {
    // Arrange: sessions live three seconds.
    let app = TestApp::spawn_with(|c| c.session_max_days = 3.0 / 86_400.0).await;
    let ann = app.user("ann").await;
    let mut stream = ann.stream().await;
    // Act: wait past the lifetime.
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    // Assert: the open stream has ended by itself, and a new one is refused.
    assert!(
        stream.ends_within(LIVE).await,
        "the stream closed at the end of the session"
    );
    assert_eq!(ann.get("/events").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        ann.get("/conversations").await.location.as_deref(),
        Some("/login?next=/conversations")
    );
}

#[tokio::test]
async fn a_page_that_ends_a_session_past_its_lifetime_closes_its_streams_on_every_node() {
    let app = TestApp::spawn_with(|c| c.session_max_days = 2.0 / 86_400.0).await;
    let ann = app.user("ann").await;
    // On PostgreSQL: a stream on another node, whose own lifetime is the default 90 days, so
    // only the end recorded by the page request can close it.
    let node_b = if app.on_postgres() {
        Some(app.second_node().await)
    } else {
        None
    };
    let mut remote = match &node_b {
        Some(b) => Some(ann.on(b).stream().await),
        None => None,
    };
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    // Act: a page request past the lifetime.
    let r = ann.get("/conversations").await;
    // Assert: logged out, the end is in the log for every node, the remote stream ended.
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let rows = {
        let mut rc = app.state.db.read().await.unwrap();
        parley::db::events::after(&mut rc.conn(), 0, 1000)
            .await
            .unwrap()
    };
    assert!(
        rows.iter()
            .any(|r| r.payload.contains("SessionEnded")
                && r.payload.contains(&format!("{}", ann.id))),
        "SessionEnded recorded"
    );
    if let Some(stream) = remote.as_mut() {
        assert!(stream.next(LIVE).await.is_none());
        assert!(stream.ended, "the other node closed the stream");
    }
}

#[tokio::test]
async fn common_passwords_are_refused_at_registration_and_on_change() {
    let app = TestApp::spawn().await;
    let c = app.client();
    // Act
    let r = c
        .post(
            "/register",
            &[("username", "ann"), ("password", "password1234")],
        )
        .await;
    // Assert: 422, a reason, no account.
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text("#password-error")
            .unwrap()
            .contains("too easy to guess")
    );
    let r = c
        .post(
            "/login",
            &[("username", "ann"), ("password", "password1234")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The same rule on a change, with the username counted as known.
    let bob = app.user("bob").await;
    for weak in ["password1234", "bobbobbob1"] {
        let r = bob
            .post(
                "/settings/password",
                &[
                    ("current_password", &password_for("bob")),
                    ("new_password", weak),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{weak}");
        assert!(r.has("#new_password-error"));
    }
}

/// A page without a session is sent to the login form; live.js's `fetch` gets 401 and a
/// message instead, since a fetch follows a redirect and would take the login page for an answer.
#[tokio::test]
async fn without_a_session_a_page_redirects_to_login_and_a_fetch_gets_401() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let stranger = app.client();
    let path = format!("/conversations/{c}/messages");
    let r = stranger.post(&path, &[("body", "hello")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some("/login"));
    let r = stranger.post_fetch(&path, &[("body", "hello")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(r.body.contains("Log in"), "{}", r.body);
    // The same after logging out: the old cookie is no session.
    ann.post("/logout", &[]).await;
    let r = ann.post_fetch(&path, &[("body", "after logout")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = ann
        .post_fetch(&format!("/conversations/{c}/read"), &[("message_id", "1")])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Nothing was written.
    let page = bob.get(&format!("/conversations/{c}")).await;
    assert_eq!(page.count(".messages article.message"), 0, "{}", page.body);
}

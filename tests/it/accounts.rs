//! Register, log in, log out, settings, sessions.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn registering_logs_in_and_lands_on_the_conversations_page() {
    // Arrange
    let app = TestApp::spawn().await;
    let c = app.client();
    // Act
    let r = c
        .post(
            "/register",
            &[("username", "Ann_1"), ("password", "secret pass phrase")],
        )
        .await;
    // Assert
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location.as_deref(), Some("/"));
    let home = c.get("/").await;
    assert_eq!(home.location.as_deref(), Some("/conversations"));
    let page = c.get("/conversations").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(
        page.text("#current-user .me-name").as_deref(),
        Some("ann_1")
    );
}

#[tokio::test]
async fn registration_rejects_bad_input_with_messages_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let c = app.client();
    for (user, pass, field) in [
        ("ab", "longenough", "username"),
        (&"x".repeat(33) as &str, "longenough", "username"),
        ("ann-b", "longenough", "username"),
        ("", "longenough", "username"),
        ("annb", "short", "password"),
        ("annb", &"p".repeat(1025) as &str, "password"),
    ] {
        let r = c
            .post("/register", &[("username", user), ("password", pass)])
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{user}/{pass}");
        assert!(r.has(&format!("#{field}-error")), "message for {field}");
        assert_eq!(
            r.attr("#username", "value").as_deref(),
            Some(user.trim()),
            "input kept"
        );
    }
    // Nothing was written: the valid name is still free.
    let r = c
        .post(
            "/register",
            &[("username", "annb"), ("password", "long enough words")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn usernames_are_unique_ignoring_case() {
    let app = TestApp::spawn().await;
    app.user("ann").await;
    let r = app
        .client()
        .post(
            "/register",
            &[("username", "ANN"), ("password", "long enough words")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text("#username-error").unwrap().contains("taken"));
}

#[tokio::test]
async fn login_with_wrong_credentials_is_one_generic_401() {
    let app = TestApp::spawn().await;
    app.user("ann").await;
    let c = app.client();
    let wrong_pw = c
        .post("/login", &[("username", "ann"), ("password", "nope nope")])
        .await;
    let unknown = c
        .post("/login", &[("username", "zed"), ("password", "nope nope")])
        .await;
    let malformed = c
        .post("/login", &[("username", "a!"), ("password", "nope nope")])
        .await;
    for r in [&wrong_pw, &unknown, &malformed] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.body.contains("Wrong username or password."));
    }
    assert_eq!(wrong_pw.attr("#username", "value").as_deref(), Some("ann"));
    assert_eq!(c.get("/conversations").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn login_follows_only_local_next() {
    let app = TestApp::spawn().await;
    app.user("ann").await;
    let c = app.client();
    let r = c.get("/conversations").await;
    assert_eq!(r.location.as_deref(), Some("/login?next=/conversations"));
    let r = c
        .post(
            "/login",
            &[
                ("username", "ann"),
                ("password", &password_for("ann")),
                ("next", "/friends"),
            ],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/friends"));
    let c2 = app.client();
    let r = c2
        .post(
            "/login",
            &[
                ("username", "ann"),
                ("password", &password_for("ann")),
                ("next", "//evil.example/x"),
            ],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/"));
}

fn session_cookie(r: &Resp) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("parley="))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

#[tokio::test]
async fn every_login_gets_a_new_session_id_even_when_already_logged_in() {
    let app = TestApp::spawn().await;
    app.user("ann").await;
    let c = app.client();
    let first = c
        .post(
            "/login",
            &[("username", "ann"), ("password", &password_for("ann"))],
        )
        .await;
    let second = c
        .post(
            "/login",
            &[("username", "ann"), ("password", &password_for("ann"))],
        )
        .await;
    let (a, b) = (
        session_cookie(&first).unwrap(),
        session_cookie(&second).unwrap(),
    );
    assert_ne!(a, b);
    let cookie = first
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("parley="))
        .unwrap()
        .to_ascii_lowercase();
    assert!(cookie.contains("httponly"));
    assert!(cookie.contains("samesite=lax"));
    assert!(
        !cookie.contains("secure"),
        "plain http install: no Secure flag"
    );
}

#[tokio::test]
async fn https_public_url_makes_cookies_secure_with_the_host_prefix() {
    let app = TestApp::spawn_with(|c| c.public_url = Some("https://chat.example".into())).await;
    let c = app.client();
    let r = c
        .post(
            "/register",
            &[("username", "ann"), ("password", "long enough words")],
        )
        .await;
    let cookie = r
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-parley="))
        .expect("__Host- cookie")
        .to_ascii_lowercase();
    assert!(cookie.contains("secure"));
    assert!(r.headers.get("strict-transport-security").is_some());
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let r = ann.post("/logout", &[]).await;
    assert_eq!(r.location.as_deref(), Some("/login"));
    assert_eq!(
        ann.get("/conversations").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(ann.get("/events").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_session_survives_a_restart() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let app = app.restart().await;
    let ann = Client {
        base: app.base.clone(),
        ..ann
    };
    let r = ann.get("/conversations").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text("#current-user .me-name").as_deref(), Some("ann"));
}

#[tokio::test]
async fn login_is_rate_limited_per_ip_and_per_account() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit_ip = 4;
        c.rate_limit_account = 2;
    })
    .await;
    let c = app.client();
    let r = c
        .post(
            "/register",
            &[("username", "ann"), ("password", "long enough words")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // Per account: two tries, then 429 even with the right password.
    for _ in 0..2 {
        let r = app
            .client()
            .post(
                "/login",
                &[("username", "ann"), ("password", "wrong wrong")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = app
        .client()
        .post(
            "/login",
            &[("username", "ann"), ("password", "long enough words")],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("Too many attempts"));
    // Per IP: the fifth attempt from this address is refused whatever the account.
    let r = app
        .client()
        .post("/login", &[("username", "bob"), ("password", "whatever1")])
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let r = app
        .client()
        .post(
            "/register",
            &[("username", "carl"), ("password", "long enough words")],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn settings_change_the_display_name_and_validate_it() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let r = ann.post("/settings", &[("display_name", "Ann Lee")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = ann.get("/settings").await;
    assert_eq!(
        page.text("#current-user .me-name").as_deref(),
        Some("Ann Lee")
    );
    assert_eq!(
        page.attr("#display_name", "value").as_deref(),
        Some("Ann Lee")
    );
    let r = ann
        .post("/settings", &[("display_name", &"x".repeat(65))])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.has("#display_name-error"));
    let page = ann.get("/settings").await;
    assert_eq!(
        page.text("#current-user .me-name").as_deref(),
        Some("Ann Lee"),
        "nothing written"
    );
    assert_eq!(
        app.client()
            .post("/settings", &[("display_name", "x")])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_display_name_change_reaches_everyone_who_sees_the_name_and_nobody_else() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    let mut tab1 = ann.stream().await;
    let mut tab2 = ann.stream().await;
    let mut bobs = bob.stream().await;
    let mut carls = carl.stream().await;
    ann.post("/settings", &[("display_name", "Ann Lee")]).await;
    let target = format!("user-{}", ann.id);
    for s in [&mut tab1, &mut tab2, &mut bobs] {
        let f = s.expect_target("rename", &target).await;
        assert!(f.content().contains("Ann Lee"));
        assert!(f.id.is_some());
    }
    carls
        .assert_none(std::time::Duration::from_millis(300), "ann's name", |f| {
            f.event == "rename"
        })
        .await;
}

#[tokio::test]
async fn changing_the_password_ends_my_other_sessions_only() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let other = app.client();
    other
        .post(
            "/login",
            &[("username", "ann"), ("password", &password_for("ann"))],
        )
        .await;
    let mut other_stream = other.stream().await;
    // Wrong current password: 422, nothing changes.
    let r = ann
        .post(
            "/settings/password",
            &[
                ("current_password", "nope nope"),
                ("new_password", "brand new pw"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.has("#current_password-error"));
    let r = ann
        .post(
            "/settings/password",
            &[
                ("current_password", &password_for("ann")),
                ("new_password", "short"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.get("/conversations").await.status, StatusCode::OK);
    // Right one.
    let r = ann
        .post(
            "/settings/password",
            &[
                ("current_password", &password_for("ann")),
                ("new_password", "brand new pw"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        ann.get("/conversations").await.status,
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        other.get("/conversations").await.status,
        StatusCode::SEE_OTHER,
        "the other ends"
    );
    assert!(
        other_stream.ends_within(LIVE).await,
        "the other session's stream closed"
    );
    let fresh = app.client();
    let r = fresh
        .post(
            "/login",
            &[("username", "ann"), ("password", "brand new pw")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn healthz_and_not_found() {
    let app = TestApp::spawn().await;
    let c = app.client();
    assert_eq!(c.get("/healthz").await.status, StatusCode::OK);
    let r = c.get("/no/such/page").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("Not found"));
    let r = c.get("/static/live.js").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers.get("cache-control").is_some());
}

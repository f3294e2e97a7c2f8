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

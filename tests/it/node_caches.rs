//! PostgreSQL: each node serves sessions and users from its own copies (`db::cache`); a change
//! made on one node must act at once on every other, with no stream or wait in between.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn on_postgresql_a_password_change_on_one_node_ends_sessions_cached_on_another_at_once() {
    let app = TestApp::spawn().await;
    if !app.on_postgres() {
        return; // nodes share a database only on PostgreSQL
    }
    let node_b = app.second_node().await;
    let ann = app.user("ann").await;
    let other = app.client();
    other
        .post(
            "/login",
            &[("username", "ann"), ("password", &password_for("ann"))],
        )
        .await;
    let other_b = other.on(&node_b);
    // Node B has the session and the user in memory now.
    for _ in 0..2 {
        assert_eq!(other_b.get("/conversations").await.status, StatusCode::OK);
    }
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
        other_b.get("/conversations").await.status,
        StatusCode::SEE_OTHER,
        "the other session ends on node B too, at once"
    );
    // The session that changed it stays, on either node.
    assert_eq!(
        ann.on(&node_b).get("/conversations").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn on_postgresql_a_deactivation_on_one_node_is_refused_at_once_on_another() {
    let app = TestApp::spawn().await;
    if !app.on_postgres() {
        return;
    }
    let node_b = app.second_node().await;
    let ann = app.user("ann").await; // the first account: the administrator
    let bob = app.user("bob").await;
    let bob_b = bob.on(&node_b);
    for _ in 0..2 {
        assert_eq!(bob_b.get("/conversations").await.status, StatusCode::OK);
    }
    let r = ann
        .post(&format!("/admin/users/{}/deactivate", bob.id), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        bob_b.get("/conversations").await.status,
        StatusCode::SEE_OTHER,
        "node B no longer lets bob in"
    );
    let r = bob_b
        .post("/conversations", &[("title", "Late"), ("member", "ann")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.location.as_deref().map(|l| l.starts_with("/login")),
        Some(true)
    );
}

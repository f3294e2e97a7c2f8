//! Who may register (open, invite only, closed) and invite links: single and multi use, expiry,
//! revocation, who may make and revoke them, and invites that make a friend.

use parley::db;
use reqwest::StatusCode;

use crate::admin::exec_sql;
use crate::helpers::*;

async fn user_exists(app: &TestApp, name: &str) -> bool {
    let mut rc = app.state.db.read().await.unwrap();
    db::users::by_username(&mut rc.conn(), name)
        .await
        .unwrap()
        .is_some()
}

/// Makes an invite as `who`; returns its id and `/invites/{token}` path.
async fn invite(who: &Client, max_uses: &str, befriend: bool) -> (i64, String) {
    let mut form = vec![("max_uses", max_uses), ("expires_hours", "24")];
    if befriend {
        form.push(("befriend", "1"));
    }
    let r = who.post("/invites", &form).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let qr_page = r.location.unwrap();
    let id: i64 = qr_page
        .trim_start_matches("/invites/")
        .trim_end_matches("/qr")
        .parse()
        .unwrap();
    let page = who.get(&qr_page).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.has(".qr svg"), "a QR code");
    let url = page.attr("#invite-url", "value").unwrap();
    (id, url[url.find("/invites/").unwrap()..].to_owned())
}

/// Registers `name` through an invite path; returns the response.
async fn register_with(app: &TestApp, path: &str, name: &str) -> (Client, Resp) {
    let c = app.client();
    let token = path.trim_start_matches("/invites/");
    let r = c
        .post(
            "/register",
            &[
                ("username", name),
                ("password", &password_for(name)),
                ("invite", token),
            ],
        )
        .await;
    (c, r)
}

async fn set_mode(admin: &Client, mode: &str) {
    let r = admin.post("/admin/registration", &[("mode", mode)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn each_registration_mode_for_the_register_page_and_form() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    // Open: the form is there and works.
    assert!(
        app.client()
            .get("/register")
            .await
            .has("form[action='/register']")
    );
    app.user("bob").await;
    for (mode, says) in [("invite", "invitation only"), ("closed", "closed")] {
        set_mode(&ann, mode).await;
        let page = app.client().get("/register").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.has("form[action='/register']"), "{mode}: no form");
        assert!(page.text("#registration-closed").unwrap().contains(says));
        let r = app
            .client()
            .post(
                "/register",
                &[("username", "carl"), ("password", &password_for("carl"))],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{mode}");
        assert!(r.text("#form-error").unwrap().contains(says));
        assert!(!user_exists(&app, "carl").await, "{mode}: nothing written");
        // Told first that they may not register, not to fix a password first.
        let r = app
            .client()
            .post("/register", &[("username", "carl"), ("password", "123")])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{mode}, a weak password");
        assert!(r.text("#form-error").unwrap().contains(says));
    }
    set_mode(&ann, "open").await;
    app.user("carl").await;
    let log: Vec<String> = {
        let mut rc = app.state.db.read().await.unwrap();
        db::admin::recent_audit(&mut rc.conn(), 10)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.detail)
            .collect()
    };
    assert_eq!(log, vec!["open", "closed", "invite"]);
}

#[tokio::test]
async fn invite_links_are_single_or_multi_use_expire_and_can_be_revoked() {
    // Arrange
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    set_mode(&ann, "invite").await;
    // Single use.
    let (once_id, once) = invite(&bob, "1", false).await;
    let landing = app.client().get(&once).await;
    assert_eq!(landing.status, StatusCode::OK);
    assert!(landing.has("input[name='invite']"));
    assert!(landing.text("#invited").unwrap().contains("@bob"));
    let (_, r) = register_with(&app, &once, "carl").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let (_, r) = register_with(&app, &once, "dan").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text("#form-error").unwrap().contains("used up"));
    assert!(!user_exists(&app, "dan").await);
    assert_eq!(app.client().get(&once).await.status, StatusCode::NOT_FOUND);
    // Multi use, then revoked.
    let (id, many) = invite(&bob, "", false).await;
    for name in ["dan", "eve"] {
        let (_, r) = register_with(&app, &many, name).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{name}");
    }
    let r = bob.get("/invites").await;
    assert!(r.text(&format!("#invite-{id}")).unwrap().contains("2 used"));
    // Only its creator or an admin may revoke it (or see its QR page): others get 404.
    let carl = app.login("carl").await;
    let r = carl.post(&format!("/invites/{id}/revoke"), &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        carl.get(&format!("/invites/{id}/qr")).await.status,
        StatusCode::NOT_FOUND
    );
    let (_, r) = register_with(&app, &many, "fay").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "still works");
    let mut bob_stream = bob.stream().await;
    let r = bob.post(&format!("/invites/{id}/revoke"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // On PostgreSQL a stream opened just after fay's registration may still get that use's
    // replace (the Hub hears of commits a moment later; replaying it is harmless), so wait for
    // the one that says revoked.
    let target = format!("invite-{id}");
    bob_stream
        .expect(LIVE, "the invite's row, revoked", |f| {
            f.event == "replace"
                && f.target().as_deref() == Some(target.as_str())
                && f.content().contains("revoked")
        })
        .await;
    // Its own page, if open, loads again: it says the link is dead and shows no link or QR code.
    bob_stream
        .expect_target("reload", &format!("invite-qr-{id}"))
        .await;
    let page = bob.get(&format!("/invites/{id}/qr")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text("#invite-dead").unwrap().contains("revoked"));
    assert!(!page.has("#invite-url") && !page.has(".qr svg"));
    let used_up = bob
        .get(&format!("/invites/{once_id}/qr"))
        .await
        .text("#invite-dead")
        .unwrap_or_default();
    assert!(used_up.contains("used up"), "{used_up}");
    let (_, r) = register_with(&app, &many, "gus").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.client().get(&many).await.status, StatusCode::NOT_FOUND);
    // Expired.
    let (_, old) = invite(&bob, "", false).await;
    exec_sql(
        &app,
        "UPDATE invites SET expires_at = 1 WHERE revoked_at IS NULL",
    )
    .await;
    let (_, r) = register_with(&app, &old, "gus").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!user_exists(&app, "gus").await);
    // Bad input.
    let r = bob
        .post("/invites", &[("max_uses", "lots"), ("expires_hours", "24")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = bob
        .post("/invites", &[("max_uses", "1"), ("expires_hours", "0")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.client().get("/invites/nonsense").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn when_registration_is_closed_only_admins_invite() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let (_, bobs) = invite(&bob, "", false).await;
    set_mode(&ann, "closed").await;
    // A form left open from before gets the reason, and nothing is made.
    let r = bob
        .post("/invites", &[("max_uses", "1"), ("expires_hours", "24")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("Registration is closed"), "{}", r.body);
    assert!(!bob.get("/invites").await.has("form[action='/invites']"));
    assert_eq!(bob.get("/invites").await.count("#my-invites li.invite"), 1);
    let (_, r) = register_with(&app, &bobs, "carl").await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a user's invite stops working"
    );
    let (_, anns) = invite(&ann, "1", false).await;
    let (_, r) = register_with(&app, &anns, "carl").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "an admin's works");
    // An admin may revoke anyone's invite (and it is logged); the list shows every invite.
    let page = ann.get("/admin").await;
    assert_eq!(page.count("#all-invites li.invite"), 2);
}

#[tokio::test]
async fn an_invite_with_friend_makes_the_newcomer_a_friend_with_a_direct_conversation() {
    // Arrange
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let (id, path) = invite(&bob, "1", true).await;
    let mut bob_stream = bob.stream().await;
    let mut ann_stream = ann.stream().await;
    let cat = app.user("cat").await;
    let mut cat_stream = cat.stream().await;
    // Act
    let (dan, r) = register_with(&app, &path, "dan").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let dan = Client {
        id: dan.me().await,
        name: "dan".into(),
        ..dan
    };
    // Assert
    let friends = dan.get("/friends").await;
    assert!(
        friends.has(&format!("#friend-{}", bob.id)),
        "friends at once"
    );
    let conversation = dan.direct_with(&bob).await;
    assert_eq!(
        bob.get(&format!("/conversations/{conversation}"))
            .await
            .status,
        StatusCode::OK
    );
    // The invite's use, then the friendship, as they happened.
    let f = bob_stream
        .expect_target("replace", &format!("invite-{id}"))
        .await;
    assert!(f.content().contains("1 of 1 used"));
    bob_stream.expect_target("append", "friend-list").await;
    // The admin sees the use too; another user sees nothing of it.
    ann_stream
        .expect_target("replace", &format!("invite-{id}"))
        .await;
    cat_stream
        .assert_none(
            std::time::Duration::from_millis(300),
            "invite frames",
            |f| f.target().is_some_and(|t| t.starts_with("invite")),
        )
        .await;
}

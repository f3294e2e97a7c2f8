//! Running an instance: the first admin, the admin pages (404 to everyone else, nothing
//! written), deactivation (streams close, login refused), reactivation, password reset links,
//! the admin log, and `parley admin` on a stopped and on a running instance.

use std::time::Duration;

use parley::db;
use reqwest::StatusCode;

use crate::helpers::*;

/// Runs SQL on the app's database (to age a link, read state the pages do not show).
pub async fn exec_sql(app: &TestApp, sql: &str) {
    let mut tx = app.state.db.begin().await.unwrap();
    match tx.conn() {
        db::Conn::Sqlite(c) => {
            sqlx::query(sql).execute(&mut *c).await.unwrap();
        }
        db::Conn::Pg(c) => {
            sqlx::query(sql).execute(&mut *c).await.unwrap();
        }
    }
    tx.commit().await.unwrap();
}

async fn admins(app: &TestApp) -> Vec<i64> {
    let mut rc = app.state.db.read().await.unwrap();
    db::admin::admin_ids(&mut rc.conn()).await.unwrap()
}

async fn audit(app: &TestApp) -> Vec<db::admin::AuditRow> {
    let mut rc = app.state.db.read().await.unwrap();
    db::admin::recent_audit(&mut rc.conn(), 100).await.unwrap()
}

async fn mode(app: &TestApp) -> String {
    let mut rc = app.state.db.read().await.unwrap();
    db::admin::registration(&mut rc.conn()).await.unwrap()
}

/// The `/reset/{token}` path of a reset link page.
fn reset_path(r: &Resp) -> String {
    let url = r.attr("#reset-url", "value").expect("reset link shown");
    let i = url.find("/reset/").expect("a reset path");
    url[i..].to_owned()
}

#[tokio::test]
async fn the_first_account_runs_the_instance_and_the_second_does_not() {
    let app = TestApp::spawn().await;
    let first = app.client().get("/register").await;
    assert!(first.has("#first-run"), "the first-run page says so");
    let ann = app.user("ann").await;
    let r = ann.get("/conversations").await;
    assert!(r.has("#admin-link a[href='/admin']"), "admins see the link");
    assert_eq!(ann.get("/admin").await.status, StatusCode::OK);
    assert_eq!(ann.get("/admin/users").await.status, StatusCode::OK);

    assert!(!app.client().get("/register").await.has("#first-run"));
    let bob = app.user("bob").await;
    let r = bob.get("/conversations").await;
    assert!(r.has("#admin-link"), "the (empty) slot is there");
    assert!(!r.has("#admin-link a"), "no link for others");
    assert_eq!(bob.get("/admin").await.status, StatusCode::NOT_FOUND);
    assert_eq!(admins(&app).await, vec![ann.id]);
}

#[tokio::test]
async fn two_first_registrations_at_once_make_one_admin() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.client(), app.client());
    let (pa, pb) = (password_for("ann"), password_for("bob"));
    let (fa, fb) = (
        [("username", "ann"), ("password", pa.as_str())],
        [("username", "bob"), ("password", pb.as_str())],
    );
    let (ra, rb) = tokio::join!(a.post("/register", &fa), b.post("/register", &fb));
    assert_eq!(ra.status, StatusCode::SEE_OTHER);
    assert_eq!(rb.status, StatusCode::SEE_OTHER);
    assert_eq!(admins(&app).await.len(), 1);
}

#[tokio::test]
async fn non_admins_get_404_on_every_admin_route_and_nothing_is_written() {
    // Arrange
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let carl = app.user("carl").await;
    let mut ann_stream = ann.stream().await;
    // Act
    for path in ["/admin", "/admin/users", "/admin/users?q=ann&page=2"] {
        assert_eq!(
            bob.get(path).await.status,
            StatusCode::NOT_FOUND,
            "GET {path}"
        );
    }
    let mut posts = vec![
        ("/admin/registration".to_owned(), vec![("mode", "closed")]),
        ("/admin/registration".to_owned(), vec![("mode", "bogus")]),
    ];
    for target in [ann.id, bob.id, carl.id, 999_999] {
        for action in [
            "deactivate",
            "reactivate",
            "promote",
            "demote",
            "reset",
            "bogus",
        ] {
            posts.push((format!("/admin/users/{target}/{action}"), vec![]));
        }
    }
    for (path, form) in &posts {
        let r = bob.post(path, form).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "POST {path}");
    }
    // Anonymous visitors are sent to log in, and nothing happens either.
    let anon = app.client();
    let r = anon.get("/admin/users").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        anon.post(&format!("/admin/users/{}/deactivate", ann.id), &[])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    // Assert
    assert_eq!(admins(&app).await, vec![ann.id]);
    assert!(audit(&app).await.is_empty(), "no admin action recorded");
    assert_eq!(mode(&app).await, "open");
    assert_eq!(
        bob.get("/conversations").await.status,
        StatusCode::OK,
        "bob still logged in"
    );
    // (Late frames of the registrations above may still come on PostgreSQL: new rows, and ann's
    // own link; the database checks above cover those.)
    ann_stream
        .assert_none(Duration::from_millis(300), "admin frames", |f| {
            f.target().is_some_and(|t| t.starts_with("admin"))
                && !about_my_account(f)
                && !(f.event == "prepend" && f.target().as_deref() == Some("admin-users"))
        })
        .await;
    // And the admin may: an unknown action or user is a 404 for them too.
    assert_eq!(
        ann.post("/admin/users/999999/deactivate", &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ann.post(&format!("/admin/users/{}/bogus", bob.id), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = ann.post("/admin/registration", &[("mode", "bogus")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(mode(&app).await, "open");
}

#[tokio::test]
async fn deactivation_closes_streams_ends_sessions_refuses_login_and_is_logged() {
    // Arrange
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let (bob, carl) = app.friends("bob", "carl").await;
    let mut bob_stream = bob.stream().await;
    let mut ann_stream = ann.stream().await;
    let mut carl_stream = carl.stream().await;
    let conversation = bob.direct_with(&carl).await;
    bob.say(conversation, "hello").await;
    // Act
    let r = ann
        .post(&format!("/admin/users/{}/deactivate", bob.id), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // Assert
    assert!(
        bob_stream.ends_within(Duration::from_secs(2)).await,
        "stream closed"
    );
    let r = bob.get("/conversations").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "logged out");
    assert!(r.location.unwrap().starts_with("/login"));
    let r = bob
        .http
        .get(format!("{}/events", bob.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let login = app
        .client()
        .post(
            "/login",
            &[("username", "bob"), ("password", &password_for("bob"))],
        )
        .await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
    assert!(login.text("form, .field-error").is_some());
    assert!(login.body.contains("deactivated"));
    let wrong = app
        .client()
        .post(
            "/login",
            &[("username", "bob"), ("password", "not it at all")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        !wrong.body.contains("deactivated"),
        "only after the right password"
    );
    // The admin sees it, live and on the page; others get no admin frames.
    let row = dom_admin_user(bob.id);
    ann_stream.expect_target("replace", &row).await;
    let entry = ann_stream
        .expect(LIVE, "log entry", |f| {
            f.event == "prepend" && f.target().as_deref() == Some("admin-audit")
        })
        .await;
    assert!(entry.content().contains("deactivated"));
    carl_stream
        .assert_none(Duration::from_millis(300), "admin frames", |f| {
            f.target().is_some_and(|t| t.starts_with("admin")) && !about_my_account(f)
        })
        .await;
    let page = ann.get("/admin/users").await;
    assert!(page.has(&format!("#{row}.deactivated")));
    assert!(page.has("#admin-audit li.audit"));
    let log = audit(&app).await;
    assert_eq!(log[0].action, "deactivate");
    assert_eq!(log[0].target_id, Some(bob.id));
    assert_eq!(log[0].actor_id, Some(ann.id));
    // Their messages stay.
    let r = carl.get(&format!("/conversations/{conversation}")).await;
    assert!(r.body.contains("hello"));
    // Nobody can befriend a deactivated account.
    let r = carl.post("/friends/requests", &[("username", "bob")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

fn dom_admin_user(id: i64) -> String {
    parley::views::dom::admin_user(id)
}

#[tokio::test]
async fn reactivation_lets_them_log_in_again_but_old_sessions_stay_ended() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    ann.post(&format!("/admin/users/{}/deactivate", bob.id), &[])
        .await;
    let r = ann
        .post(&format!("/admin/users/{}/reactivate", bob.id), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        bob.get("/conversations").await.status,
        StatusCode::SEE_OTHER
    );
    let again = app.login("bob").await;
    assert_eq!(again.get("/conversations").await.status, StatusCode::OK);
    let actions: Vec<String> = audit(&app).await.into_iter().map(|a| a.action).collect();
    assert_eq!(actions, vec!["reactivate", "deactivate"]);
}

#[tokio::test]
async fn the_instance_keeps_an_admin_and_admins_cannot_deactivate_themselves() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let mut bob_stream = bob.stream().await;
    let r = ann
        .post(&format!("/admin/users/{}/demote", ann.id), &[])
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("without an administrator"));
    let r = ann
        .post(&format!("/admin/users/{}/deactivate", ann.id), &[])
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(audit(&app).await.is_empty());

    // Promote bob: his header gains the link live.
    let r = ann
        .post(&format!("/admin/users/{}/promote", bob.id), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // On PostgreSQL the frame of bob's own sign-up (his link, empty) may still come first: an
    // event is delivered once every older transaction in the cluster has ended, and other tests'
    // transactions run beside this one. It is the state he already has, so skip it.
    let f = bob_stream
        .expect(LIVE, "bob's admin link", |f| {
            f.event == "replace"
                && f.target().as_deref() == Some("admin-link")
                && f.content().contains("href")
        })
        .await;
    assert!(f.content().contains("/admin"));
    assert_eq!(bob.get("/admin").await.status, StatusCode::OK);
    // Now ann may step down; her admin pages reload (into a 404).
    let mut ann_stream = ann.stream().await;
    let r = ann
        .post(&format!("/admin/users/{}/demote", ann.id), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    ann_stream.expect_target("reload", "admin-page").await;
    assert_eq!(ann.get("/admin/users").await.status, StatusCode::NOT_FOUND);
    assert_eq!(admins(&app).await, vec![bob.id]);
}

/// Frames read until one matches `pred` (included) or `LIVE` passes.
async fn frames_until(s: &mut Stream, pred: impl Fn(&Frame) -> bool) -> Vec<Frame> {
    let deadline = tokio::time::Instant::now() + LIVE;
    let mut out = Vec::new();
    while let Some(f) = s
        .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        let done = pred(&f);
        out.push(f);
        if done {
            break;
        }
    }
    out
}

fn is_admin_row(f: &Frame) -> bool {
    f.target().is_some_and(|t| t.starts_with("admin-user"))
}

#[tokio::test]
async fn the_admin_lists_rows_reach_admins_only() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    // Bob's sign-up, replayed: his header link, not the admins' new row.
    let mut replay = bob.stream_at("/events?after=0").await;
    let frames = frames_until(&mut replay, |f| f.target().as_deref() == Some("admin-link")).await;
    assert!(
        frames
            .iter()
            .any(|f| f.target().as_deref() == Some("admin-link")),
        "{frames:?}"
    );
    replay
        .assert_none(Duration::from_millis(300), "an admin row", is_admin_row)
        .await;
    assert!(!frames.iter().any(is_admin_row), "{frames:?}");
    // Promoted, he is an admin and gets his row with the others.
    let mut bob_stream = bob.stream().await;
    let mut ann_stream = ann.stream().await;
    let row = dom_admin_user(bob.id);
    let promote = format!("/admin/users/{}/promote", bob.id);
    assert_eq!(ann.post(&promote, &[]).await.status, StatusCode::SEE_OTHER);
    bob_stream
        .expect(LIVE, "his row, as an admin", |f| {
            f.target().as_deref() == Some(row.as_str())
        })
        .await;
    // Demoted, his change brings him his link and the reload, not the row; ann gets the row.
    let demote = format!("/admin/users/{}/demote", bob.id);
    assert_eq!(ann.post(&demote, &[]).await.status, StatusCode::SEE_OTHER);
    let frames = frames_until(&mut bob_stream, |f| {
        f.event == "reload" && f.target().as_deref() == Some("admin-page")
    })
    .await;
    assert!(
        frames.iter().any(|f| f.event == "reload"),
        "the reload came: {frames:?}"
    );
    assert!(!frames.iter().any(is_admin_row), "{frames:?}");
    bob_stream
        .assert_none(Duration::from_millis(300), "an admin row", is_admin_row)
        .await;
    ann_stream
        .expect(LIVE, "bob's row, demoted", |f| {
            f.target().as_deref() == Some(row.as_str()) && !f.content().contains("/demote")
        })
        .await;
}

#[tokio::test]
async fn a_reset_link_works_once_and_expires() {
    // Arrange
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let mut bob_stream = bob.stream().await;
    // Act
    let r = ann
        .post(&format!("/admin/users/{}/reset", bob.id), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.has(".qr svg"));
    let path = reset_path(&r);
    // Assert
    let visitor = app.client();
    let form = visitor.get(&path).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains("@bob"));
    let weak = visitor.post(&path, &[("new_password", "password1")]).await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    let new_password = "lantern violet orchard ninety";
    let r = visitor.post(&path, &[("new_password", new_password)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(visitor.get("/conversations").await.status, StatusCode::OK);
    assert!(
        bob_stream.ends_within(Duration::from_secs(2)).await,
        "old streams close"
    );
    assert_eq!(
        bob.get("/conversations").await.status,
        StatusCode::SEE_OTHER
    );
    // Once only.
    assert_eq!(app.client().get(&path).await.status, StatusCode::NOT_FOUND);
    let again = app
        .client()
        .post(&path, &[("new_password", "another fine long phrase")])
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let login = app
        .client()
        .post("/login", &[("username", "bob"), ("password", new_password)])
        .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    // An expired link does not work; a newer link voids an older one.
    let old = reset_path(
        &ann.post(&format!("/admin/users/{}/reset", bob.id), &[])
            .await,
    );
    let newer = reset_path(
        &ann.post(&format!("/admin/users/{}/reset", bob.id), &[])
            .await,
    );
    assert_eq!(app.client().get(&old).await.status, StatusCode::NOT_FOUND);
    exec_sql(
        &app,
        "UPDATE password_resets SET expires_at = 1 WHERE used_at IS NULL",
    )
    .await;
    assert_eq!(app.client().get(&newer).await.status, StatusCode::NOT_FOUND);
    let actions: Vec<String> = audit(&app).await.into_iter().map(|a| a.action).collect();
    assert_eq!(actions, vec!["reset link"; 3]);
}

#[tokio::test]
async fn the_user_list_searches_and_pages() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    for name in ["bob", "bobby", "carl"] {
        app.user(name).await;
    }
    let r = ann.get("/admin/users?q=BOB").await;
    assert_eq!(r.count("li.admin-user"), 2);
    assert!(!r.has("#admin-users"), "a search has its own list id");
    let r = ann.get("/admin/users").await;
    assert_eq!(r.count("#admin-users li.admin-user"), 4);
    assert_eq!(
        r.attr("#admin-user-count", "data-count").as_deref(),
        Some("4")
    );
    let r = ann.get("/admin/users?page=2").await;
    assert_eq!(r.count("li.admin-user"), 0);
    let r = ann.get("/admin/users?q=%25").await;
    assert_eq!(r.count("li.admin-user"), 0, "wildcards are literal");
    // A new account joins an admin's open first page live.
    let mut s = ann.stream().await;
    let dan = app.user("dan").await;
    // (On PostgreSQL carl's row may come first: see `about_my_account`.)
    let row = dom_admin_user(dan.id);
    s.expect(LIVE, "dan's row", |f| {
        f.event == "prepend"
            && f.target().as_deref() == Some("admin-users")
            && f.content().contains(&row)
    })
    .await;
    // And the count of accounts with it, as a fresh load counts them.
    s.expect(LIVE, "one account more", |f| {
        f.target().as_deref() == Some("admin-user-count") && f.data.contains("data-delta=\"1\"")
    })
    .await;
    let r = ann.get("/admin/users").await;
    assert_eq!(
        r.attr("#admin-user-count", "data-count").as_deref(),
        Some("5")
    );
}

fn parley_cmd(db_url: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_parley"));
    c.env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .arg("--database-url")
        .arg(db_url)
        .arg("--public-url")
        .arg("https://chat.example.org")
        .kill_on_drop(true);
    c
}

async fn cli(db_url: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use tokio::io::AsyncWriteExt;
    let mut c = parley_cmd(db_url);
    c.arg("admin")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.unwrap();
        input.write_all(b"\n").await.unwrap();
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("parley admin finishes")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn parley_admin_manages_accounts_on_a_stopped_instance() {
    let db = TestDb::fresh().await;
    let url = db.url.clone();
    let (ok, out) = cli(
        &url,
        &["create-user", "ann", "--admin"],
        Some(&password_for("ann")),
    )
    .await;
    assert!(ok, "{out}");
    let (ok, out) = cli(&url, &["create-user", "bob"], Some(&password_for("bob"))).await;
    assert!(ok, "{out}");
    let (ok, out) = cli(&url, &["create-user", "weak"], Some("password")).await;
    assert!(!ok && out.contains("guess"), "{out}");
    let (ok, out) = cli(&url, &["promote", "bob"], None).await;
    assert!(ok, "{out}");
    let (ok, out) = cli(&url, &["demote", "bob"], None).await;
    assert!(ok, "{out}");
    let (ok, out) = cli(&url, &["demote", "ann"], None).await;
    assert!(!ok && out.contains("without an administrator"), "{out}");
    let (ok, out) = cli(&url, &["deactivate", "nobody"], None).await;
    assert!(!ok && out.contains("no user"), "{out}");
    let (ok, link) = cli(&url, &["reset-password", "bob"], None).await;
    assert!(
        ok && link.starts_with("https://chat.example.org/reset/"),
        "{link}"
    );
    let (ok, out) = cli(&url, &["deactivate", "bob"], None).await;
    assert!(ok, "{out}");

    let app = TestApp::on(db).await;
    let ann = app.login("ann").await;
    let page = ann.get("/admin/users").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.has(&format!("#{}.deactivated", dom_admin_user(ann.id + 1))));
    assert!(page.body.contains("parley admin"));
    let bob = app
        .client()
        .post(
            "/login",
            &[("username", "bob"), ("password", &password_for("bob"))],
        )
        .await;
    assert_eq!(bob.status, StatusCode::FORBIDDEN);
    let (ok, out) = cli(&app.db.url, &["reactivate", "bob"], None).await;
    assert!(ok, "{out}");
    app.login("bob").await;
    let actions: Vec<String> = audit(&app).await.into_iter().map(|a| a.action).collect();
    assert_eq!(
        actions,
        vec![
            "reactivate",
            "deactivate",
            "reset link",
            "demote",
            "promote",
            "create user",
            "create admin"
        ]
    );
    // The reset link printed works (the path is the instance's).
    let path = &link[link.find("/reset/").unwrap()..link.find('\n').unwrap()];
    assert_eq!(
        app.client().get(path).await.status,
        StatusCode::NOT_FOUND,
        "voided by deactivation"
    );
}

#[tokio::test]
async fn parley_admin_deactivation_reaches_a_running_instance() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let mut bob_stream = bob.stream().await;
    let mut ann_stream = ann.stream().await;
    let (ok, out) = cli(&app.db.url, &["deactivate", "bob"], None).await;
    assert!(ok, "{out}");
    assert!(
        bob_stream.ends_within(Duration::from_secs(10)).await,
        "the running server closed the stream"
    );
    assert_eq!(
        bob.get("/conversations").await.status,
        StatusCode::SEE_OTHER
    );
    let f = ann_stream
        .expect(Duration::from_secs(5), "log entry", |f| {
            f.event == "prepend" && f.target().as_deref() == Some("admin-audit")
        })
        .await;
    assert!(f.content().contains("parley admin"));
    let log = audit(&app).await;
    assert_eq!(log[0].pending, 0, "applied by the server");
}

#[tokio::test]
async fn deactivation_on_one_node_closes_streams_on_another() {
    let app = TestApp::spawn().await;
    if !app.on_postgres() {
        return; // nodes share a database only on PostgreSQL
    }
    let other = app.second_node().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let bob_there = bob.on(&other);
    let mut s = bob_there.stream().await;
    let r = ann
        .post(&format!("/admin/users/{}/deactivate", bob.id), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(s.ends_within(Duration::from_secs(3)).await);
    assert_eq!(
        bob_there.get("/conversations").await.status,
        StatusCode::SEE_OTHER
    );
}

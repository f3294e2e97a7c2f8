//! `parley copy` (SQLite to PostgreSQL) and `parley backup` (online SQLite copy), each followed by
//! using the result through the HTTP contract.
//!
//! The copy tests need PostgreSQL (`PARLEY_TEST_DATABASE_URL`); the PostgreSQL run of CI checks
//! they ran through `target/test-copy-postgres.marker`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parley::ops::copy::{CopyOptions, copy};
use reqwest::StatusCode;
use sqlx::Connection;

use crate::helpers::*;

fn parley() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_parley"));
    c.env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    c
}

fn data_after(r: &Resp) -> i64 {
    r.attr("body", "data-after")
        .and_then(|s| s.parse().ok())
        .expect("data-after")
}

fn mark_copy_ran() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("test-copy-postgres.marker"), b"ran\n");
}

#[tokio::test]
async fn copy_moves_a_populated_sqlite_instance_to_postgresql_which_then_just_works() {
    let Some(target) = TestDb::postgres().await else {
        eprintln!("copy to PostgreSQL: skipped (set PARLEY_TEST_DATABASE_URL)");
        return;
    };
    // The instance, populated through HTTP.
    let mut old = TestApp::on(TestDb::sqlite()).await;
    let (ann, bob) = old.friends("ann", "bob").await;
    let carol = old.user("carol").await;
    let direct = ann.direct_with(&bob).await;
    let group = ann.group("Trip", &[&bob]).await;
    let m1 = ann.say(direct, "one").await;
    bob.get(&format!("/conversations/{direct}")).await; // Bob has read "one".
    ann.say(direct, "two").await;
    let m3 = ann.say(direct, "three").await;
    bob.say(group, "in the group").await;
    let r = carol
        .post("/friends/requests", &[("username", "ann")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let log_position = data_after(&ann.get("/conversations").await);
    old.shutdown().await;

    // The target already has the schema (as after `parley migrate` or a first start): that is
    // still empty.
    let out = parley()
        .args(["migrate", "--database-url", &target.url])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report = copy(&CopyOptions {
        from: old.db.url.clone(),
        to: target.url.clone(),
        sessions: true,
    })
    .await
    .expect("copy");
    assert_eq!(report.rows("users"), Some(3));
    assert_eq!(report.rows("messages"), Some(4));
    assert_eq!(report.rows("friendships"), Some(2));
    assert_eq!(report.rows("friend_requests"), Some(2));
    assert_eq!(report.rows("members"), Some(4));
    assert_eq!(report.rows("log_state"), Some(1));
    assert!(report.rows("tower_sessions").is_some_and(|n| n >= 3));

    let new = TestApp::on(target).await;
    assert!(new.on_postgres());
    // A copied session: Ann is still logged in (cookies do not care about the port).
    let ann2 = ann.on(&new);
    assert_eq!(ann2.me().await, ann.id);
    // Passwords, conversations, messages, read markers.
    let bob2 = new.login("bob").await;
    assert_eq!(bob2.id, bob.id);
    let list = bob2.get("/conversations").await;
    assert_eq!(
        list.text(&format!("#conversation-{direct} .unread"))
            .as_deref(),
        Some("2")
    );
    assert_eq!(
        list.text(&format!("#conversation-{group} .unread"))
            .as_deref(),
        Some("0")
    );
    let page = ann2.get(&format!("/conversations/{direct}")).await;
    assert!(page.has(&format!("#message-{m1}")) && page.has(&format!("#message-{m3}")));
    // The event log goes on where it was: a stream resumes from the old position, and new
    // events and rows get fresh ids (the sequences were moved past the copied ones).
    assert!(data_after(&page) >= log_position);
    let mut s = bob2
        .stream_at(&format!("/events?after={log_position}"))
        .await;
    let m4 = ann2.say(direct, "four, on PostgreSQL").await;
    assert!(m4 > m3);
    let f = s
        .expect_target("append", &format!("messages-{direct}"))
        .await;
    assert!(f.id.is_some_and(|id| id > log_position));
    assert!(f.data.contains("four, on PostgreSQL"));
    // The pending request made it, and answering it creates rows in every kind of table.
    let request = ann2
        .incoming_request_from("carol")
        .await
        .expect("the pending request was copied");
    let r = ann2
        .post(&format!("/friends/requests/{request}/accept"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let carol2 = new.login("carol").await;
    let with_carol = carol2.direct_with(&ann2).await;
    assert!(with_carol > group);
    let g2 = carol2.group("After the move", &[&ann2]).await;
    assert!(g2 > with_carol);
    mark_copy_ran();
}

#[tokio::test]
async fn copy_refuses_a_target_with_data_and_writes_nothing() {
    let Some(target) = TestDb::postgres().await else {
        eprintln!("copy to PostgreSQL: skipped (set PARLEY_TEST_DATABASE_URL)");
        return;
    };
    let mut used = TestApp::on(target).await;
    used.user("zed").await;
    used.shutdown().await;
    let mut src = TestApp::on(TestDb::sqlite()).await;
    src.user("ann").await;
    src.shutdown().await;

    let out = parley()
        .args(["copy", "--from", &src.db.url, "--to", &used.db.url])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not empty"), "{err}");
    let mut pg = sqlx::PgConnection::connect(&used.db.url).await.unwrap();
    let names: Vec<String> = sqlx::query_scalar("SELECT username FROM users")
        .fetch_all(&mut pg)
        .await
        .unwrap();
    assert_eq!(names, vec!["zed".to_owned()]);
    // Without sessions, over the command line: into an empty database it works.
    let empty = TestDb::postgres().await.unwrap();
    let out = parley()
        .args(["copy", "--from", &src.db.url, "--to", &empty.url])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("row counts verified"), "{stdout}");
    let mut pg = sqlx::PgConnection::connect(&empty.url).await.unwrap();
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM tower_sessions.session")
        .fetch_one(&mut pg)
        .await
        .unwrap();
    assert_eq!(sessions, 0, "sessions are copied only when asked");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut pg)
        .await
        .unwrap();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn copy_and_backup_refuse_the_wrong_kinds_of_database() {
    let src = TestDb::sqlite();
    let err = copy(&CopyOptions {
        from: src.url.clone(),
        to: "sqlite://elsewhere.db".into(),
        sessions: false,
    })
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("--to must be a PostgreSQL"));
    let err = copy(&CopyOptions {
        from: "postgres://x@127.0.0.1/x".into(),
        to: "postgres://y@127.0.0.1/y".into(),
        sessions: false,
    })
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("pg_dump"));
    // A source that does not exist is not an empty instance.
    let err = copy(&CopyOptions {
        from: "sqlite:///nonexistent/parley.db".into(),
        to: "postgres://y@127.0.0.1:1/y".into(),
        sessions: false,
    })
    .await
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("does the file exist"),
        "{err:#}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.db");
    let out = parley()
        .args(["backup", file.to_str().unwrap()])
        .env("DATABASE_URL", "postgres://x@127.0.0.1/x")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
    assert!(!file.exists());
}

#[tokio::test]
async fn a_backup_taken_under_write_load_has_every_message_acknowledged_before_it() {
    let app = TestApp::on(TestDb::sqlite()).await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let direct = ann.direct_with(&bob).await;
    let acked: Arc<Mutex<Vec<i64>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut writers = tokio::task::JoinSet::new();
    for (w, client) in [ann.clone(), bob.clone(), ann.clone(), bob.clone()]
        .into_iter()
        .enumerate()
    {
        let acked = acked.clone();
        let stop = stop.clone();
        writers.spawn(async move {
            let mut i = 0;
            while !stop.is_cancelled() {
                let id = client.say(direct, &format!("writer {w} message {i}")).await;
                acked.lock().unwrap().push(id);
                i += 1;
            }
        });
    }
    while acked.lock().unwrap().len() < 40 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Everything acknowledged up to here must be in the backup.
    let before: Vec<i64> = acked.lock().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("parley-backup.db");
    let out = parley()
        .args(["backup", file.to_str().unwrap()])
        .env("DATABASE_URL", &app.db.url)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let during = acked.lock().unwrap().len() - before.len();
    stop.cancel();
    while writers.join_next().await.is_some() {}
    let total = acked.lock().unwrap().len();
    eprintln!(
        "backup: {} acknowledged before, {during} during, {total} in all",
        before.len()
    );
    // Refuses to overwrite.
    let again = parley()
        .args(["backup", file.to_str().unwrap()])
        .env("DATABASE_URL", &app.db.url)
        .output()
        .await
        .unwrap();
    assert!(!again.status.success());

    // Restore: Parley starts on the backup file.
    let restored = TestApp::on(TestDb::sqlite_at(dir, "parley-backup.db")).await;
    let mut c = sqlx::SqliteConnection::connect(&restored.db.url)
        .await
        .unwrap();
    let stored: HashSet<i64> = sqlx::query_scalar("SELECT id FROM messages")
        .fetch_all(&mut c)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let missing: Vec<&i64> = before.iter().filter(|id| !stored.contains(id)).collect();
    assert!(missing.is_empty(), "missing from the backup: {missing:?}");
    // One moment in time: with one writer, ids commit in order, so the copy holds every
    // acknowledged message up to its newest one and none after.
    let newest = *stored.iter().max().unwrap();
    let all: Vec<i64> = acked.lock().unwrap().clone();
    let gaps: Vec<&i64> = all
        .iter()
        .filter(|id| **id <= newest && !stored.contains(id))
        .collect();
    assert!(
        gaps.is_empty(),
        "not a snapshot: {gaps:?} missing below {newest}"
    );
    // And it is a working instance: log in, read, write.
    let bob2 = restored.login("bob").await;
    let newest_before = *before.iter().max().unwrap();
    let page = bob2
        .get(&format!(
            "/conversations/{direct}?before={}",
            newest_before + 1
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.has(&format!("#message-{newest_before}")));
    let id = bob2.say(direct, "after the restore").await;
    assert!(id > *stored.iter().max().unwrap());
}

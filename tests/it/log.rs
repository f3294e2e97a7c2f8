//! The event log under issue 9: use cases committed together (one failing rolls back alone),
//! audiences without per-recipient rows (the Hub follows membership in log order; replay asks the
//! database), and acknowledged writes that survive `kill -9`.

use std::time::Duration;

use parley::db::{self, Conn};
use reqwest::StatusCode;

use crate::helpers::*;

async fn usernames(app: &TestApp) -> Vec<String> {
    let mut rc = app.state.db.read().await.unwrap();
    let mut c = rc.conn();
    let mut names = Vec::new();
    for n in ["alpha", "beta", "gamma"] {
        if db::users::by_username(&mut c, n).await.unwrap().is_some() {
            names.push(n.to_owned());
        }
    }
    names
}

#[tokio::test]
async fn a_failing_use_case_in_a_batch_rolls_back_alone_while_the_others_commit() {
    let app = TestApp::spawn().await;
    let db = app.state.db.clone();
    // A holds the writer; B and C queue behind it, so on SQLite all three share one transaction.
    let mut a = db.begin().await.unwrap();
    db::users::insert(&mut a.conn(), "alpha", "x", 0)
        .await
        .unwrap();
    let d = db.clone();
    let b = tokio::spawn(async move {
        let mut b = d.begin().await.unwrap();
        db::users::insert(&mut b.conn(), "beta", "x", 0)
            .await
            .unwrap();
        // Then it breaks a rule: the same username again. Its error ends it without a commit.
        let dup = db::users::insert(&mut b.conn(), "alpha", "x", 0).await;
        assert!(dup.is_err(), "a taken username is refused");
    });
    let d = db.clone();
    let c = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut c = d.begin().await.unwrap();
        db::users::insert(&mut c.conn(), "gamma", "x", 0)
            .await
            .unwrap();
        c.commit().await.unwrap();
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.commit().await.unwrap();
    b.await.unwrap();
    c.await.unwrap();
    assert_eq!(usernames(&app).await, ["alpha", "gamma"]);
    // The writer carries on: a later use case commits normally.
    let (ann, bob) = app.friends("ann", "bob").await;
    let conversation = ann.direct_with(&bob).await;
    ann.say(conversation, "still writing").await;
}

// The post combiner's use case opens a new batch in its first statement (`begin_folded`): if
// it never runs one, or that statement fails half way, nothing of it stays and the writer
// carries on.
#[tokio::test]
async fn a_use_case_that_opens_its_batch_with_its_first_statement_leaves_nothing_when_it_fails() {
    let app = TestApp::spawn().await;
    let db = app.state.db.clone();
    // Dropped before any statement.
    drop(db.begin_folded().await.unwrap());
    // Its first statement inserts, then fails: the BEGIN (on SQLite) and the insert went in.
    let mut t = db.begin_folded().await.unwrap();
    let prefix = t.take_prefix();
    let sql = format!(
        "{prefix}INSERT INTO users (username, display_name, password_hash, created_at, is_admin) \
         VALUES ('alpha', '', 'x', 0, 0); SELECT * FROM no_such_table"
    );
    let failed = match t.conn() {
        Conn::Sqlite(c) => sqlx::query(&sql).execute(c).await.is_err(),
        Conn::Pg(c) => sqlx::query(&sql).execute(c).await.is_err(),
    };
    assert!(failed);
    drop(t);
    // The next use case commits alone, and a folded one after it too.
    let mut b = db.begin().await.unwrap();
    db::users::insert(&mut b.conn(), "beta", "x", 0)
        .await
        .unwrap();
    b.commit().await.unwrap();
    let mut g = db.begin_folded().await.unwrap();
    let prefix = g.take_prefix();
    let sql = format!(
        "{prefix}INSERT INTO users (username, display_name, password_hash, created_at, is_admin) \
         VALUES ('gamma', '', 'x', 0, 0)"
    );
    let done = match g.conn() {
        Conn::Sqlite(c) => sqlx::query(&sql)
            .execute(c)
            .await
            .map(|r| r.rows_affected()),
        Conn::Pg(c) => sqlx::query(&sql)
            .execute(c)
            .await
            .map(|r| r.rows_affected()),
    };
    // Not the count: over a call that starts with SQLite's `BEGIN`, sqlx adds what
    // `sqlite3_changes` still says of the connection's previous write (the last batch's).
    assert!(done.unwrap() >= 1);
    g.prefix_done();
    g.commit().await.unwrap();
    assert_eq!(usernames(&app).await, ["beta", "gamma"]);
    let (ann, bob) = app.friends("ann", "bob").await;
    let conversation = ann.direct_with(&bob).await;
    ann.say(conversation, "still writing").await;
}

#[tokio::test]
async fn concurrent_posts_are_all_stored_and_answered_after_their_commit() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    let conversation = ann.direct_with(&bob).await;
    let mut sends = Vec::new();
    for i in 0..40 {
        // Carl is not a member: his use cases fail inside the batch, after their first query.
        let who = match i % 5 {
            4 => carl.clone(),
            n if n % 2 == 0 => ann.clone(),
            _ => bob.clone(),
        };
        sends.push(tokio::spawn(async move {
            // Some of them are refused (empty): they must not disturb the others.
            let body = if i % 10 == 3 {
                String::new()
            } else {
                format!("m{i}")
            };
            let r = who
                .post_fetch(
                    &format!("/conversations/{conversation}/messages"),
                    &[("body", &body)],
                )
                .await;
            (i, r.status)
        }));
    }
    let mut ok = Vec::new();
    for s in sends {
        let (i, status) = s.await.unwrap();
        if i % 10 == 3 {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        } else if i % 5 == 4 {
            assert_eq!(status, StatusCode::NOT_FOUND);
        } else {
            assert_eq!(status, StatusCode::OK);
            ok.push(i);
        }
    }
    // Every acknowledged message is readable at once (its batch was durable before the answer).
    let page = bob.get(&format!("/conversations/{conversation}")).await;
    for i in &ok {
        assert!(page.body.contains(&format!(">m{i}<")), "m{i} stored");
    }
    assert_eq!(page.count("article.message"), ok.len(), "nothing else");
}

#[tokio::test]
async fn conversation_events_are_logged_once_with_their_conversation_and_no_recipients() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let g = ann.group("Trip", &[&bob]).await;
    ann.say(g, "hello").await;
    let mut rc = app.state.db.read().await.unwrap();
    let rows: Vec<(String, Option<i64>, String)> = match rc.conn() {
        Conn::Sqlite(c) => sqlx::query_as(
            "SELECT kind, conversation_id, audience FROM events WHERE kind = 'MessageAdded'",
        )
        .fetch_all(c)
        .await
        .unwrap(),
        Conn::Pg(c) => sqlx::query_as(
            "SELECT kind, conversation_id, audience FROM events WHERE kind = 'MessageAdded'",
        )
        .fetch_all(c)
        .await
        .unwrap(),
    };
    assert_eq!(rows, [("MessageAdded".to_owned(), Some(g), String::new())]);
    let gone: Option<String> = match rc.conn() {
        Conn::Sqlite(c) => {
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE name = 'event_recipients'")
                .fetch_optional(c)
                .await
                .unwrap()
        }
        Conn::Pg(c) => sqlx::query_scalar("SELECT to_regclass('event_recipients')::text")
            .fetch_one(c)
            .await
            .unwrap(),
    };
    assert_eq!(gone, None, "no per-recipient table");
}

#[tokio::test]
async fn replay_finds_conversation_events_by_membership_at_that_point() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    befriend(&ann, &carl).await;
    let g = ann.group("Trip", &[&bob]).await;
    let before = carl.log_position().await;
    ann.say(g, "before carl joined").await;
    ann.post(
        &format!("/conversations/{g}/members"),
        &[("username", "carl")],
    )
    .await;
    ann.say(g, "after carl joined").await;
    let bob_mark = bob.log_position().await;
    ann.post(
        &format!("/conversations/{g}/members/{}/remove", bob.id),
        &[],
    )
    .await;
    ann.say(g, "after bob left").await;

    // Carl was away: he gets the group from his joining on, nothing from before.
    let mut s = carl.stream_at(&format!("/events?after={before}")).await;
    let frames = s.drain(Duration::from_millis(500)).await;
    let text: String = frames.iter().map(|f| f.data.as_str()).collect();
    assert!(text.contains("after carl joined"), "{frames:?}");
    assert!(text.contains("after bob left"));
    // (His new row previews the newest message then, which he may see: history is visible.)
    assert!(
        !frames
            .iter()
            .any(|f| f.event == "append" && f.data.contains("before carl joined")),
        "the message event from before he joined is not his"
    );
    assert!(
        frames
            .iter()
            .any(|f| f.event == "prepend" && f.target().as_deref() == Some("conversation-list"))
    );

    // Bob was away too: he learns he was removed, and nothing said after that.
    let mut s = bob.stream_at(&format!("/events?after={bob_mark}")).await;
    let frames = s.drain(Duration::from_millis(500)).await;
    let text: String = frames.iter().map(|f| f.data.as_str()).collect();
    assert!(
        frames
            .iter()
            .any(|f| f.target() == Some(format!("conversation-view-{g}"))
                && f.data.contains("removed")),
        "{frames:?}"
    );
    assert!(!text.contains("after bob left"));
}

#[tokio::test]
async fn a_member_added_later_receives_live_and_a_removed_one_stops() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    befriend(&ann, &carl).await;
    let g = ann.group("Trip", &[&bob]).await;
    // Carl's stream is open before he is a member: the Hub follows him into the group.
    let mut c = carl.stream().await;
    let mut b = bob.stream().await;
    ann.say(g, "not for carl yet").await;
    b.expect_target("append", &format!("messages-{g}")).await;
    ann.post(
        &format!("/conversations/{g}/members"),
        &[("username", "carl")],
    )
    .await;
    ann.say(g, "welcome carl").await;
    // (After the group's note "ann added @carl".)
    c.expect(LIVE, "the message after joining", |f| {
        f.event == "append"
            && f.target() == Some(format!("messages-{g}"))
            && f.data.contains("welcome carl")
    })
    .await;
    assert_eq!(app.state.hub.members_online(g).len(), 2);
    // Bob is removed while his stream is open: nothing more reaches him.
    ann.post(
        &format!("/conversations/{g}/members/{}/remove", bob.id),
        &[],
    )
    .await;
    b.expect(LIVE, "told", |f| {
        f.target() == Some(format!("conversation-view-{g}"))
    })
    .await;
    ann.say(g, "bob is gone").await;
    c.expect(LIVE, "carl still gets it", |f| {
        f.data.contains("bob is gone")
    })
    .await;
    b.assert_none(Duration::from_millis(300), "a message after removal", |f| {
        f.data.contains("bob is gone")
    })
    .await;
    let mut online = app.state.hub.members_online(g);
    online.sort_unstable();
    let mut want = vec![carl.id];
    want.sort_unstable();
    assert_eq!(online, want, "ann has no stream; bob left");
    // Carl's list learns of a group deleted while he is in it.
    ann.post(&format!("/conversations/{g}/delete"), &[]).await;
    c.expect(LIVE, "row removed", |f| {
        f.event == "remove" && f.target() == Some(format!("conversation-{g}"))
    })
    .await;
    assert!(app.state.hub.members_online(g).is_empty());
}

/// `kill -9` right after the answers: every acknowledged message is still there.
#[tokio::test]
async fn acknowledged_messages_survive_kill_9() {
    let db = TestDb::fresh().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(["--database-url", &db.url])
            .args([
                "--rate-limit-ip",
                "100000",
                "--rate-limit-account",
                "100000",
                "--message-rate",
                "100000",
                "--message-burst",
                "100000",
            ])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let base = format!("http://127.0.0.1:{port}");
    let wait_up = || async {
        for _ in 0..500 {
            if reqwest::get(format!("{base}/healthz")).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("server did not start");
    };
    let mut child = start();
    wait_up().await;
    let ann = Client::new(&base);
    let bob = Client::new(&base);
    for (c, n) in [(&ann, "ann"), (&bob, "bob")] {
        let r = c
            .post(
                "/register",
                &[("username", n), ("password", &password_for(n))],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
    }
    let ann = Client {
        id: ann.me().await,
        name: "ann".into(),
        ..ann
    };
    let bob = Client {
        id: bob.me().await,
        name: "bob".into(),
        ..bob
    };
    befriend(&ann, &bob).await;
    let conversation = ann.direct_with(&bob).await;
    let mut sends = Vec::new();
    for i in 0..30 {
        let who = if i % 2 == 0 { ann.clone() } else { bob.clone() };
        sends.push(tokio::spawn(async move {
            let r = who
                .post_fetch(
                    &format!("/conversations/{conversation}/messages"),
                    &[("body", &format!("durable {i}"))],
                )
                .await;
            (i, r.status == StatusCode::OK)
        }));
    }
    let mut acked = Vec::new();
    for s in sends {
        let (i, ok) = s.await.unwrap();
        if ok {
            acked.push(i);
        }
    }
    child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    child.wait().unwrap();
    assert_eq!(acked.len(), 30);
    let mut child = start();
    wait_up().await;
    // The session survived too (it is in the database).
    let page = bob.get(&format!("/conversations/{conversation}")).await;
    for i in acked {
        assert!(page.body.contains(&format!("durable {i}<")), "durable {i}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// On SQLite the WAL is copied into the database file by a connection beside the writer
/// (`Writer::checkpoint_beside`) shortly after commits, not by the commit that crosses SQLite's
/// threshold: the writer's own threshold is only a far-off backstop, so here the database file
/// grows only because of the checkpoints beside it.
#[tokio::test]
async fn on_sqlite_the_wal_is_checkpointed_beside_the_writer() {
    let app = TestApp::spawn().await;
    let Some(path) = app.db.url.strip_prefix("sqlite://").map(str::to_owned) else {
        return; // PostgreSQL manages its own write-ahead log
    };
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    befriend(&ann, &bob).await;
    let direct = ann.direct_with(&bob).await;
    let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    // Whatever the setup left in the WAL is copied in first.
    tokio::time::sleep(db::writer::CHECKPOINT_EVERY * 3).await;
    let before = size();
    let body = "checkpoint ".repeat(150);
    for k in 0..60 {
        let r = ann
            .post(
                &format!("/conversations/{direct}/messages"),
                &[("body", &format!("{k} {body}"))],
            )
            .await;
        assert!(r.status.is_redirection(), "{}", r.body);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while size() < before + 60 * 1500 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        size() >= before + 60 * 1500,
        "the database file holds the new messages ({} → {} bytes)",
        before,
        size()
    );
}

/// Under steady commits SQLite never gets to start its WAL again from the beginning: that needs
/// a write to begin with every frame already copied into the database file, and the checkpoint
/// beside the writer never catches up with the last commit. So the WAL grew to the writer's
/// backstop, where each commit copied and synced the database file. Now the writer copies the
/// last few frames itself before a batch once the WAL is long, and the WAL restarts long before
/// the backstop: here, by the time it is half as long.
#[tokio::test]
async fn on_sqlite_steady_commits_restart_the_wal_long_before_the_backstop() {
    let app = TestApp::spawn().await;
    let Some(path) = app.db.url.strip_prefix("sqlite://").map(str::to_owned) else {
        return; // PostgreSQL manages its own write-ahead log
    };
    let wal = format!("{path}-wal");
    // Bytes 12..16 of the WAL header count its restarts (the checkpoint sequence number).
    let restarts = || {
        let head = std::fs::read(&wal).unwrap_or_default();
        head.get(12..16)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let (ann, bob) = app.friends("ann", "bob").await;
    let direct = ann.direct_with(&bob).await;
    let body = "w".repeat(parley::domain::MESSAGE_MAX_CHARS);
    // The longest message there is, numbered.
    let text = |k: usize| format!("{k}{}", &body[k.to_string().len()..]);
    let say = |k: usize| {
        let ann = &ann;
        let text = &text;
        async move {
            let r = ann
                .post(
                    &format!("/conversations/{direct}/messages"),
                    &[("body", &text(k))],
                )
                .await;
            assert!(r.status.is_redirection(), "{}", r.body);
        }
    };
    // Whatever the setup left is copied in, and a first commit may restart the WAL at leisure.
    tokio::time::sleep(db::writer::CHECKPOINT_EVERY * 2).await;
    say(0).await;
    let before = restarts();
    let half = u64::from(db::writer::BACKSTOP_CHECKPOINT_PAGES) * 4096 / 2;
    let mut k = 1;
    while restarts() == before {
        assert!(
            size() < half,
            "the WAL grew to {} bytes under steady commits without starting again",
            size()
        );
        for _ in 0..10 {
            say(k).await;
            k += 1;
        }
    }
    // The newest message reads back whole after the restart.
    let page = ann.get(&format!("/conversations/{direct}")).await;
    assert!(
        page.body.contains(&text(k - 1)),
        "the newest message is shown"
    );
}

/// On PostgreSQL: a transaction with an id of its own, as any writing transaction has, that writes
/// nothing. Every event committed after it began is held back until [`release_the_log`].
async fn hold_back_the_log(app: &TestApp) -> sqlx::PgConnection {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut c).await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut c)
        .await
        .unwrap();
    c
}

/// Ends the transaction of [`hold_back_the_log`].
async fn release_the_log(mut c: sqlx::PgConnection) {
    sqlx::query("COMMIT").execute(&mut c).await.unwrap();
}

/// Readers that read the log on their own only once a minute: within a test, an event reaches
/// them only because a commit's `NOTIFY` (or this node's own commit) told them of it.
fn slow_poll(c: &mut parley::config::Config) {
    c.log_poll_ms = 60_000;
}

// On PostgreSQL an event becomes readable once every older transaction has ended. An older one
// that writes no event wakes no reader when it ends; the event still arrives soon after it
// (`live::run_log_reader` looks again), not at the reader's poll.
#[tokio::test]
async fn on_postgresql_an_event_held_back_by_an_older_transaction_arrives_soon_after_it_ends() {
    let app = TestApp::spawn_with(slow_poll).await;
    if !app.on_postgres() {
        // SQLite has one writer: ids are given in commit order, so nothing is ever held back.
        return;
    }
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let mut b = bob.stream().await;
    b.drain(Duration::from_millis(300)).await;
    let older = hold_back_the_log(&app).await;
    ann.say(c, "after the older one").await;
    let mine = |f: &Frame| f.event == "append" && f.data.contains("after the older one");
    b.assert_none(
        Duration::from_millis(200),
        "the post while an older transaction runs",
        mine,
    )
    .await;
    release_the_log(older).await;
    b.expect(LIVE, "the post once the older transaction ended", mine)
        .await;
}

// The same across nodes, and for events other than posts (whose own transaction sends the
// NOTIFY): each notice names the position committed, so every node's reader keeps looking until
// it has read that far, instead of waiting for its poll.
#[tokio::test]
async fn on_postgresql_held_back_events_reach_every_node_soon_after_the_older_transaction_ends() {
    let app = TestApp::spawn_with(slow_poll).await;
    if !app.on_postgres() {
        // SQLite: one node, one writer, nothing held back.
        return;
    }
    let node_b = app.second_node_with(slow_poll).await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let m = ann.say(c, "helo").await;
    // Bob's browser talks to node B; Ann's to node A.
    let bob_b = bob.on(&node_b);
    let mut b = bob_b.stream().await;
    let mut a = ann.stream().await;
    b.drain(Duration::from_millis(300)).await;
    a.drain(Duration::from_millis(300)).await;
    let older = hold_back_the_log(&app).await;
    ann.say(c, "after the older one").await;
    let r = ann
        .post(
            &format!("/conversations/{c}/messages/{m}"),
            &[("body", "hello")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let posted = |f: &Frame| f.event == "append" && f.data.contains("after the older one");
    let edited = |f: &Frame| {
        f.event == "replace"
            && f.target().as_deref() == Some(format!("message-{m}").as_str())
            && f.content().contains("hello")
    };
    b.assert_none(
        Duration::from_millis(200),
        "the post while an older transaction runs",
        posted,
    )
    .await;
    release_the_log(older).await;
    b.expect(LIVE, "the post on the other node", posted).await;
    b.expect(LIVE, "the edit on the other node", edited).await;
    a.expect(LIVE, "the edit on the node that made it", edited)
        .await;
}

// On PostgreSQL a stream can start while a membership is already visible but its event is still
// held back behind an older transaction. The stream counts that conversation from the joining
// event on: nothing said there before it reaches the new member live.
#[tokio::test]
async fn on_postgresql_a_stream_started_while_its_joining_is_held_back_gets_nothing_from_before() {
    let app = TestApp::spawn().await;
    if !app.on_postgres() {
        // SQLite has one writer: a stream's snapshot and its log position always agree.
        return;
    }
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    befriend(&ann, &carl).await;
    let g = ann.group("Trip", &[&bob]).await;
    let before = carl.log_position().await;
    let older = hold_back_the_log(&app).await;
    // Both committed, both held back behind the older transaction.
    ann.say(g, "before carl joined").await;
    ann.post(
        &format!("/conversations/{g}/members"),
        &[("username", "carl")],
    )
    .await;
    let mut s = carl.stream_at(&format!("/events?after={before}")).await;
    release_the_log(older).await;
    ann.say(g, "after carl joined").await;
    let mut seen = Vec::new();
    loop {
        let f = s.next(LIVE).await.expect("carl's frames");
        let done = f.event == "append" && f.data.contains("after carl joined");
        seen.push(f);
        if done {
            break;
        }
    }
    assert!(
        !seen
            .iter()
            .any(|f| f.event == "append" && f.data.contains("before carl joined")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|f| f.event == "prepend" && f.target().as_deref() == Some("conversation-list")),
        "{seen:?}"
    );
}

/// A SQLite event log from before migration 0017 (its id beside the rowid, with an index of its
/// own) keeps every event, id and field when the id becomes the rowid, and the log goes on from
/// its newest id.
#[tokio::test]
async fn an_event_log_from_before_0017_keeps_its_events_when_its_id_becomes_the_rowid() {
    use sqlx::Connection;
    let db = TestDb::sqlite();
    {
        let mut conn = db.sqlite_migrated_to(16).await;
        // Recent: the app prunes events past its retention as it starts.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        sqlx::query(
            "INSERT INTO events (id, kind, payload, audience, created_at, conversation_id) VALUES \
               (5, 'FriendAdded', '{\"a\":1}', ',1,2,', $1, NULL), \
               (9, 'ConversationCreated', '{\"b\":2}', '', $1, 3); \
             UPDATE log_state SET last_id = 9",
        )
        .bind(now)
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let app = TestApp::on(db).await;
    let rows = {
        let mut rc = app.state.db.read().await.unwrap();
        let Conn::Sqlite(c) = rc.conn() else {
            unreachable!("SQLite")
        };
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' \
             ORDER BY name",
        )
        .fetch_all(&mut *c)
        .await
        .unwrap();
        assert!(
            indexes.is_empty(),
            "the id is the rowid, and pruning needs no index (0018): {indexes:?}"
        );
        db::events::after(&mut Conn::Sqlite(c), 0, 10)
            .await
            .unwrap()
    };
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.id,
                r.payload.as_str(),
                r.audience.as_str(),
                r.conversation_id,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (5, "{\"a\":1}", ",1,2,", None),
            (9, "{\"b\":2}", "", Some(3))
        ]
    );
    // New events follow the newest.
    let (ann, bob) = app.friends("ann", "bob").await;
    ann.say(ann.direct_with(&bob).await, "after the rebuild")
        .await;
    let mut rc = app.state.db.read().await.unwrap();
    let newer = db::events::after(&mut rc.conn(), 9, 100).await.unwrap();
    assert!(!newer.is_empty() && newer.iter().all(|r| r.id > 9));
}

/// Pruning deletes the events before the first one at or after the cutoff, moves
/// `pruned_through` to the last of them, and never deletes an event at or after the cutoff, even
/// one that comes after an older one (a clock that stepped back).
#[tokio::test]
async fn pruning_deletes_the_events_before_the_first_recent_one_and_nothing_recent() {
    // Arrange: a log of a dozen events, then their times rewritten. Everything is younger than
    // the retention, so the app's own pruning leaves it alone.
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let conversation = ann.direct_with(&bob).await;
    for i in 0..6 {
        ann.say(conversation, &format!("note {i}")).await;
    }
    let ids = event_ids(&app).await;
    assert!(ids.len() >= 8, "{ids:?}");
    let now = db::now_ms();
    let (old, recent) = (now - 3_600_000, now - 60_000);
    let cutoff = now - 1_800_000;
    // The first four are old, the fifth recent, the sixth old again, the rest recent.
    let first_recent = ids[4];
    let stepped_back = ids[5];
    crate::admin::exec_sql(
        &app,
        &format!(
            "UPDATE events SET created_at = CASE \
               WHEN id < {first_recent} OR id = {stepped_back} THEN {old} ELSE {recent} END"
        ),
    )
    .await;
    let before = {
        let mut rc = app.state.db.read().await.unwrap();
        db::events::pruned_through(&mut rc.conn()).await.unwrap()
    };
    assert!(before < ids[0]);
    // Act
    let pruned = parley::app::prune(&app.state.db, cutoff).await.unwrap();
    // Assert
    assert_eq!(pruned, 4);
    assert_eq!(
        event_ids(&app).await,
        ids[4..],
        "the old event after a recent one waits"
    );
    let mut rc = app.state.db.read().await.unwrap();
    assert_eq!(
        db::events::pruned_through(&mut rc.conn()).await.unwrap(),
        ids[3]
    );
    drop(rc);
    // Nothing more to prune at the same cutoff; past the newest, the rest goes.
    assert_eq!(parley::app::prune(&app.state.db, cutoff).await.unwrap(), 0);
    assert!(parley::app::prune(&app.state.db, i64::MAX).await.unwrap() >= ids.len() as u64 - 4);
    assert!(event_ids(&app).await.is_empty());
}

/// Every event id in the log, in order, whether or not PostgreSQL's readers may take it yet
/// (`db::events::after` stops below the oldest transaction still open in the cluster).
async fn event_ids(app: &TestApp) -> Vec<i64> {
    let mut rc = app.state.db.read().await.unwrap();
    let sql = "SELECT id FROM events ORDER BY id";
    match rc.conn() {
        Conn::Sqlite(c) => sqlx::query_scalar(sql).fetch_all(&mut *c).await.unwrap(),
        Conn::Pg(c) => sqlx::query_scalar(sql).fetch_all(&mut *c).await.unwrap(),
    }
}

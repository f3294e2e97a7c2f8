//! Search (`GET /search`): words, phrases, prefixes, `from:` and `in:`; only what the searcher
//! may read now; results follow edits and deletes; no query string makes it fail.

use std::time::Duration;

use parley::db;
use reqwest::StatusCode;

use crate::helpers::{Client, Resp, TestApp, TestDb, befriend};

/// The message ids of a results page, in order.
fn found(r: &Resp) -> Vec<i64> {
    let sel = scraper::Selector::parse("#search-results li.result").unwrap();
    r.html()
        .select(&sel)
        .filter_map(|e| e.value().id())
        .filter_map(|id| id.strip_prefix("result-"))
        .filter_map(|n| n.parse().ok())
        .collect()
}

async fn search(who: &Client, q: &str) -> Resp {
    let url = format!("/search?q={}", urlencode(q));
    let r = who.get(&url).await;
    assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.body);
    r
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn search_finds_words_phrases_prefixes_and_filters_newest_first() {
    // Arrange
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    befriend(&ann, &carl).await;
    let d = ann.direct_with(&bob).await;
    let g = ann.group("Trip Planning", &[&bob, &carl]).await;
    let m1 = ann.say(d, "The quiet harbour at dawn").await;
    let m2 = bob.say(d, "Harbours are busy").await;
    let m3 = carl.say(g, "Meet at the harbour master's office").await;
    let m4 = ann.say(g, "bring **coffee**, Café au lait").await;

    // Act + Assert: a word (not a longer one), newest first, marked.
    let r = search(&ann, "HARBOUR").await;
    assert_eq!(found(&r), vec![m3, m1]);
    assert_eq!(
        r.text(&format!("#result-{m3} mark")).as_deref(),
        Some("harbour")
    );
    assert_eq!(
        r.text(&format!("#result-{m3} .result-conversation"))
            .as_deref(),
        Some("Trip Planning")
    );
    assert_eq!(
        r.attr(&format!("#result-{m3} .result-text a"), "href")
            .as_deref(),
        Some(format!("/conversations/{g}/messages/{m3}#message-{m3}").as_str())
    );
    // Phrases keep their order.
    assert_eq!(found(&search(&ann, "\"harbour master\"").await), vec![m3]);
    assert!(found(&search(&ann, "\"master harbour\"").await).is_empty());
    // Prefixes.
    assert_eq!(found(&search(&ann, "harb*").await), vec![m3, m2, m1]);
    // Filters, with and without words.
    assert_eq!(found(&search(&ann, "from:bob harb*").await), vec![m2]);
    assert_eq!(found(&search(&ann, "from:@Carl").await), vec![m3]);
    assert!(found(&search(&ann, "from:nobody harbour").await).is_empty());
    assert_eq!(found(&search(&ann, "in:bob harbour").await), vec![m1]);
    assert_eq!(
        found(&search(&ann, "in:\"trip plan\" harb*").await),
        vec![m3]
    );
    let none = search(&ann, "in:nowhere harbour").await;
    assert!(found(&none).is_empty());
    assert!(none.text(".notice").unwrap().contains("nowhere"));
    // Markdown is searched as its words; punctuation splits words as in the index.
    assert_eq!(found(&search(&ann, "coffee").await), vec![m4]);
    assert_eq!(found(&search(&ann, "master's").await), vec![m3]);
    if !app.on_postgres() {
        // SQLite folds accents; PostgreSQL's 'simple' configuration does not (README).
        assert_eq!(found(&search(&ann, "cafe").await), vec![m4]);
    }
    assert_eq!(found(&search(&ann, "café").await), vec![m4]);
}

#[tokio::test]
async fn search_finds_only_what_the_searcher_may_read_now() {
    // Arrange
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let carl = app.user("carl").await;
    let dan = app.user("dan").await;
    befriend(&ann, &carl).await;
    let d = ann.direct_with(&bob).await;
    let g = ann.group("Secrets", &[&bob, &carl]).await;
    let direct = ann.say(d, "pineapple in the direct one").await;
    let grouped = ann.say(g, "pineapple in the group").await;
    assert_eq!(
        found(&search(&carl, "pineapple").await),
        vec![grouped],
        "carl is not in ann and bob's direct conversation"
    );

    // Act: a stranger, a removed member, an unfriended friend.
    let strangers = found(&search(&dan, "pineapple").await);
    let r = ann
        .post(
            &format!("/conversations/{g}/members/{}/remove", carl.id),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let removed = found(&search(&carl, "pineapple").await);
    let r = ann.post(&format!("/friends/{}/remove", bob.id), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let unfriended = found(&search(&bob, "pineapple").await);

    // Assert
    assert!(strangers.is_empty());
    assert!(
        removed.is_empty(),
        "a removed member finds nothing of the group"
    );
    assert_eq!(
        unfriended,
        vec![grouped, direct],
        "an unfriended direct conversation stays readable, so searchable"
    );
    // Notes about a group ("ann removed @carl") are not searched.
    assert!(found(&search(&ann, "removed").await).is_empty());
    assert!(found(&search(&bob, "in:carl pineapple").await).is_empty());
}

#[tokio::test]
async fn results_follow_edits_and_deletes() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let d = ann.direct_with(&bob).await;
    let m = ann.say(d, "pineapple pizza").await;
    assert_eq!(found(&search(&bob, "pineapple").await), vec![m]);
    let r = ann
        .post(
            &format!("/conversations/{d}/messages/{m}"),
            &[("body", "mango salad")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(found(&search(&bob, "pineapple").await).is_empty());
    assert_eq!(found(&search(&bob, "mango").await), vec![m]);
    let r = ann
        .post(&format!("/conversations/{d}/messages/{m}/delete"), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(found(&search(&bob, "mango").await).is_empty());
    assert!(found(&search(&bob, "from:ann").await).is_empty());
}

/// On SQLite new messages enter the index once per commit (migrations/sqlite/0012): a message
/// posted, edited or deleted in the same batch as others, before that commit, must still leave
/// the index exactly in step with the messages. Three use cases share one batch here (A holds the
/// writer; B and C queue behind it); on PostgreSQL each is its own transaction and the results
/// must be the same.
#[tokio::test]
async fn the_index_follows_posts_edited_and_deleted_before_their_commit() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let d = ann.direct_with(&bob).await;
    let early = ann.say(d, "apricot early").await;
    let db = app.state.db.clone();
    let now = 1_700_000_000_000;
    let author = ann.id;
    let mut a = db.begin().await.unwrap();
    db::users::insert(&mut a.conn(), "holder", "x", 0)
        .await
        .unwrap();
    let (id_tx, id_rx) = tokio::sync::oneshot::channel();
    let d2 = db.clone();
    let b = tokio::spawn(async move {
        let mut b = d2.begin().await.unwrap();
        let posted = db::messages::post(&mut b, d, author, "banana split", None, None, now)
            .await
            .unwrap();
        let _ = id_tx.send(posted.id.unwrap());
        b.commit().await.unwrap();
    });
    let d3 = db.clone();
    let c = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut c = d3.begin().await.unwrap();
        let edited = id_rx.await.unwrap();
        db::messages::update_body(&mut c.conn(), edited, "cherry tart", now)
            .await
            .unwrap();
        let gone = db::messages::post(&mut c, d, author, "damson jam", None, None, now)
            .await
            .unwrap()
            .id
            .unwrap();
        db::messages::delete(&mut c.conn(), gone).await.unwrap();
        db::messages::delete(&mut c.conn(), early).await.unwrap();
        c.commit().await.unwrap();
        edited
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.commit().await.unwrap();
    b.await.unwrap();
    let edited = c.await.unwrap();
    assert_eq!(found(&search(&bob, "cherry").await), vec![edited]);
    for gone in ["banana", "damson", "apricot"] {
        assert!(found(&search(&bob, gone).await).is_empty(), "{gone}");
    }
    // A later post is found as usual.
    let late = ann.say(d, "elderberry late").await;
    assert_eq!(found(&search(&bob, "elderberry").await), vec![late]);
    if let db::Db::Sqlite { .. } = &db {
        assert_index_in_step(&db).await;
    }
}

/// FTS5's own check of the SQLite index against the messages table (rank 1: the content too).
async fn assert_index_in_step(db: &db::Db) {
    let mut tx = db.begin().await.unwrap();
    let db::Conn::Sqlite(conn) = tx.conn() else {
        unreachable!("the search index checked here is SQLite's")
    };
    sqlx::query("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)")
        .execute(&mut *conn)
        .await
        .expect("the search index matches the messages");
    tx.commit().await.unwrap();
}

/// A SQLite database indexed by the old per-message trigger (migrations up to 0011) upgrades to
/// the per-commit index (0012): what it held stays found, follows edits and deletes, and new
/// messages are found too.
#[tokio::test]
async fn a_search_index_from_before_0012_keeps_working_after_it() {
    use sqlx::Connection;
    let db = TestDb::sqlite();
    {
        let mut conn = db.sqlite_migrated_to(11).await;
        sqlx::query(
            "INSERT INTO users (id, username, password_hash, created_at) VALUES (1, 'ann', 'x', 0); \
             INSERT INTO conversations (id, kind, title, owner_id, last_activity_at, created_at) \
               VALUES (1, 'group', 'fruit', 1, 0, 0); \
             INSERT INTO members (conversation_id, user_id, created_at) VALUES (1, 1, 0); \
             INSERT INTO messages (id, conversation_id, author_id, body, created_at) \
               VALUES (1, 1, 1, 'apple one', 0), (2, 1, 1, 'banana two', 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let app = TestApp::on(db).await;
    let db = app.state.db.clone();
    let matches = |word: &'static str| {
        let db = db.clone();
        async move {
            let mut r = db.read().await.unwrap();
            let db::Conn::Sqlite(c) = r.conn() else {
                unreachable!()
            };
            sqlx::query_scalar::<_, i64>(
                "SELECT rowid FROM messages_fts WHERE messages_fts MATCH $1 ORDER BY rowid",
            )
            .bind(word)
            .fetch_all(&mut *c)
            .await
            .unwrap()
        }
    };
    assert_eq!(matches("apple").await, [1]);
    assert_eq!(matches("banana").await, [2]);
    let mut tx = db.begin().await.unwrap();
    db::messages::update_body(&mut tx.conn(), 1, "cherry three", 1)
        .await
        .unwrap();
    db::messages::delete(&mut tx.conn(), 2).await.unwrap();
    let new = db::messages::post(&mut tx, 1, 1, "damson four", None, None, 1)
        .await
        .unwrap()
        .id
        .unwrap();
    tx.commit().await.unwrap();
    db.catch_up_search().await.unwrap();
    assert!(matches("apple").await.is_empty());
    assert_eq!(matches("cherry").await, [1]);
    assert!(matches("banana").await.is_empty());
    assert_eq!(matches("damson").await, [new]);
    assert_index_in_step(&db).await;
}

#[tokio::test]
async fn odd_and_hostile_queries_never_fail_and_text_stays_escaped() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let d = ann.direct_with(&bob).await;
    let m = ann
        .say(d, "<script>alert(1)</script> harbour \" quote ' & | !")
        .await;
    for q in [
        "\"",
        "\"\"",
        "*",
        "harbour*\"",
        "AND",
        "harbour OR",
        "NOT harbour",
        "NEAR(harbour quote)",
        "body:harbour",
        "conversation_id:1",
        "{body}: x",
        "-harbour",
        "^harbour",
        "harbour + quote",
        "'",
        "''",
        "harbour' | 'x",
        "!harbour & <-> :* \\",
        "from:",
        "from:\"",
        "from:a\u{0}b harbour",
        "in:\"",
        "in:\"\"",
        "from:@ in:@",
        "'; DROP TABLE messages; --",
        "%00",
        "😀 🎉",
        "Ω≈ç√∫",
        "(((",
        ")",
        "\u{0}",
    ] {
        let r = search(&ann, q).await;
        assert!(!r.body.contains("Something went wrong"), "{q}");
    }
    let r = search(&ann, "script").await;
    assert_eq!(found(&r), vec![m]);
    assert_eq!(r.count("#search-results script"), 0);
    assert!(
        r.text(&format!("#result-{m} .result-text"))
            .unwrap()
            .contains("<script>alert(1)</script>")
    );
    assert!(found(&search(&ann, "harbour\" OR \"x").await).is_empty());
    // Too long: the form again with the reason, 422.
    let long = "a".repeat(300);
    let r = ann.get(&format!("/search?q={long}")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text(".notice").unwrap().contains("256"));
    let r = ann.get("/search?q=harbour&before=abc").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_empty_search_shows_the_form_and_a_hint_and_strangers_log_in_first() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    for url in ["/search", "/search?q=", "/search?q=%20%20"] {
        let r = ann.get(url).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.has("form[action=\"/search\"] input[name=q]#search-page-q"));
        assert!(r.has("#search-hint"));
        assert!(!r.has("#search-results"));
    }
    let r = app.client().get("/search?q=x").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.location.unwrap().starts_with("/login"));
}

#[tokio::test]
async fn every_logged_in_page_has_the_search_box() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let d = ann.direct_with(&bob).await;
    for url in [
        "/conversations".to_owned(),
        format!("/conversations/{d}"),
        "/friends".to_owned(),
        "/settings".to_owned(),
    ] {
        let r = ann.get(&url).await;
        assert!(
            r.has("header form[action=\"/search\"][method=get] input#search-q[name=q]"),
            "{url}"
        );
    }
    let r = search(&ann, "from:bob \"a b\"").await;
    assert_eq!(
        r.attr("#search-q", "value").as_deref(),
        Some("from:bob \"a b\"")
    );
    assert!(!app.client().get("/login").await.has("#search-q"));
}

#[tokio::test]
async fn results_come_twenty_to_a_page_newest_first() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let d = ann.direct_with(&bob).await;
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(ann.say(d, &format!("apple number {i}")).await);
    }
    ids.reverse();
    let first = search(&bob, "apple").await;
    assert_eq!(found(&first), ids[..20].to_vec());
    let next = first.attr("a[rel=next]", "href").expect("a next page");
    assert_eq!(next, format!("/search?q=apple&before={}", ids[19]));
    let second = bob.get(&next).await;
    assert_eq!(found(&second), ids[20..].to_vec());
    assert!(!second.has("a[rel=next]"));
}

/// On SQLite, what is indexed (`log_state.fts_through`) and the newest message.
async fn index_position(db: &db::Db) -> (i64, i64) {
    let mut r = db.read().await.unwrap();
    let db::Conn::Sqlite(c) = r.conn() else {
        unreachable!("the search index checked here is SQLite's")
    };
    sqlx::query_as(
        "SELECT fts_through, (SELECT COALESCE(MAX(id), 0) FROM messages) \
         FROM log_state WHERE singleton = 1",
    )
    .fetch_one(&mut *c)
    .await
    .unwrap()
}

/// On SQLite new messages join the search index behind the log: a chunk at the commit that
/// brings `INDEX_AT` (128) of them, the rest a while later (here a minute: not during this
/// test) or at once before a search, which so finds every message committed before it. After
/// 150 commits of one message each the index holds few segments (FTS5's crisis merge alone left
/// 15 when each commit made one), is in step with the messages, and finds the first message,
/// the last and one between.
#[tokio::test]
async fn on_sqlite_new_messages_join_the_search_index_in_chunks_and_before_a_search() {
    let app = TestApp::spawn_with(|c| c.search_index_lag_ms = 60_000).await;
    let db = app.state.db.clone();
    if !matches!(db, db::Db::Sqlite { .. }) {
        return; // PostgreSQL's index is a column of its own, kept by PostgreSQL
    }
    let (ann, bob) = app.friends("ann", "bob").await;
    let d = ann.direct_with(&bob).await;
    let mut ids = Vec::new();
    // One after another: each is its own batch, so its own commit.
    for k in 0..150 {
        ids.push(ann.say(d, &format!("quince{k} plum")).await);
    }
    let (through, newest) = index_position(&db).await;
    assert_eq!(newest, ids[149]);
    assert!(
        through >= ids[0] && through < ids[149],
        "a chunk is indexed, the newest are not yet: through {through}, newest {newest}"
    );
    // The search indexes the rest first.
    assert_eq!(found(&search(&bob, "quince149").await), vec![ids[149]]);
    assert_eq!(index_position(&db).await, (ids[149], ids[149]));
    let (automerge, segments) = {
        let mut tx = db.begin().await.unwrap();
        let db::Conn::Sqlite(conn) = tx.conn() else {
            unreachable!("SQLite")
        };
        let automerge: i64 =
            sqlx::query_scalar("SELECT v FROM messages_fts_config WHERE k = 'automerge'")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        let segments: i64 =
            sqlx::query_scalar("SELECT COUNT(DISTINCT segid) FROM messages_fts_idx")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        tx.commit().await.unwrap();
        (automerge, segments)
    };
    assert_eq!(automerge, 0, "FTS5's automerge is off");
    assert!(segments <= 4, "{segments} segments after 150 commits");
    assert_index_in_step(&db).await;
    for k in [0, 77, 149] {
        assert_eq!(
            found(&search(&bob, &format!("quince{k}")).await),
            vec![ids[k]]
        );
    }
    // Edited and deleted before they were indexed: found by their new text only, or not at all.
    let edited = ann.say(d, "medlar first").await;
    let gone = ann.say(d, "medlar gone").await;
    let r = ann
        .post(
            &format!("/conversations/{d}/messages/{edited}"),
            &[("body", "sloe second")],
        )
        .await;
    assert!(
        r.status.is_redirection() || r.status.is_success(),
        "edit: {}",
        r.status
    );
    let r = ann
        .post(&format!("/conversations/{d}/messages/{gone}/delete"), &[])
        .await;
    assert!(
        r.status.is_redirection() || r.status.is_success(),
        "delete: {}",
        r.status
    );
    assert!(index_position(&db).await.0 < edited, "not indexed yet");
    assert!(found(&search(&bob, "medlar").await).is_empty());
    assert_eq!(found(&search(&bob, "sloe").await), vec![edited]);
    assert_index_in_step(&db).await;
}

/// On SQLite, messages a stopped server left out of the search index join it after the next
/// start, and those a commit leaves out join it a while later (here 50 ms), without any search.
#[tokio::test]
async fn on_sqlite_messages_left_out_of_the_index_join_it_later_and_after_a_restart() {
    let app = TestApp::spawn_with(|c| c.search_index_lag_ms = 60_000).await;
    if app.on_postgres() {
        return; // PostgreSQL's index is a column of its own, kept by PostgreSQL
    }
    let (ann, bob) = app.friends("ann", "bob").await;
    let d = ann.direct_with(&bob).await;
    let first = ann.say(d, "rowan one").await;
    assert!(index_position(&app.state.db).await.0 < first);
    let caught_up = |db: db::Db, want: i64| async move {
        for _ in 0..250 {
            if index_position(&db).await == (want, want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "the index never reached message {want}: {:?}",
            index_position(&db).await
        );
    };
    let app = app.restart_with(|c| c.search_index_lag_ms = 50).await;
    caught_up(app.state.db.clone(), first).await;
    let second = ann.on(&app).say(d, "rowan two").await;
    caught_up(app.state.db.clone(), second).await;
    assert_eq!(
        found(&search(&bob.on(&app), "rowan").await),
        vec![second, first]
    );
}

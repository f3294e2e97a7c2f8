//! Concurrent plain posts (combined into one call to the SQLite writer, `chat::posting`): each
//! lands exactly once, in one order every reader agrees on, with its live frame; a post that may
//! not land (a stranger's, a read-only direct conversation's) is refused alone; a retried client
//! id returns the first message. On PostgreSQL, where a plain post is one statement of its own,
//! the same holds, with posts sent through two nodes: posts to one conversation take its lock.

use std::collections::HashSet;

use futures_util::future::join_all;
use reqwest::StatusCode;

use crate::helpers::*;

/// The message ids in a page of a conversation, in page order.
fn ids_in(page: &Resp, conversation: i64) -> Vec<i64> {
    page.html()
        .select(
            &scraper::Selector::parse(&format!("#messages-{conversation} article.message"))
                .unwrap(),
        )
        .filter_map(|a| a.value().attr("id"))
        .filter_map(|id| id.strip_prefix("message-")?.parse().ok())
        .collect()
}

/// Each message's id and classes (grouping with the message before: `continued`).
fn articles(html: &scraper::Html) -> Vec<(i64, String)> {
    html.select(&scraper::Selector::parse("article.message").unwrap())
        .filter_map(|a| {
            let id = a
                .value()
                .attr("id")?
                .strip_prefix("message-")?
                .parse()
                .ok()?;
            Some((id, a.value().attr("class").unwrap_or_default().to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn concurrent_posts_land_once_each_in_one_order_with_their_frames() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let mut others = Vec::new();
    for name in ["bob", "carl", "dora", "emil", "fay", "gus", "hana"] {
        let c = app.user(name).await;
        befriend(&ann, &c).await;
        others.push(c);
    }
    let members: Vec<&Client> = others.iter().collect();
    let group = ann.group("Busy", &members).await;
    let stranger = app.user("zed").await;
    // A direct conversation that went read-only.
    let ivy = app.user("ivy").await;
    befriend(&ann, &ivy).await;
    let direct = ann.direct_with(&ivy).await;
    let r = ann.post(&format!("/friends/{}/remove", ivy.id), &[]).await;
    assert!(r.status.is_redirection(), "{}", r.body);
    let mut watch = others[0].stream().await;
    let mut zeds = stranger.stream().await;

    let mut everyone = vec![&ann];
    everyone.extend(others.iter());
    // On PostgreSQL every other sender posts through a second node: posts from one node take
    // turns there (`chat::posting::Turns`), posts from two nodes race in the database.
    let node_b = if app.on_postgres() {
        Some(app.second_node().await)
    } else {
        None
    };
    let senders: Vec<Client> = everyone
        .iter()
        .enumerate()
        .map(|(n, c)| match &node_b {
            Some(b) if n % 2 == 1 => c.on(b),
            _ => (*c).clone(),
        })
        .collect();
    let path = format!("/conversations/{group}/messages");
    let mut sends = Vec::new();
    for (n, c) in senders.iter().enumerate() {
        for k in 0..5 {
            let body = format!("note {n}-{k}");
            let cid = format!("c{n}x{k}");
            let path = path.clone();
            sends.push(async move {
                c.post_fetch(&path, &[("body", &body), ("client_id", &cid)])
                    .await
            });
        }
    }
    // In the same moment: a stranger's post, a post to the read-only conversation, and a retry.
    let zed_path = path.clone();
    let strangers = async {
        stranger
            .post_fetch(&zed_path, &[("body", "let me in")])
            .await
    };
    let direct_path = format!("/conversations/{direct}/messages");
    let read_only = async {
        ann.post_fetch(&direct_path, &[("body", "still there?")])
            .await
    };
    let retry = async {
        ann.post_fetch(&path, &[("body", "note 0-0"), ("client_id", "c0x0")])
            .await
    };
    let (results, zed, ro, again) = tokio::join!(join_all(sends), strangers, read_only, retry);
    for r in &results {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    assert_eq!(zed.status, StatusCode::NOT_FOUND);
    assert_eq!(ro.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", ro.body);
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);

    let posted: Vec<i64> = results
        .iter()
        .map(|r| {
            r.attr("article.message", "id")
                .and_then(|id| id.strip_prefix("message-")?.parse().ok())
                .expect("a message fragment")
        })
        .collect();
    let unique: HashSet<i64> = posted.iter().copied().collect();
    assert_eq!(unique.len(), 40, "each post is its own message");
    let first = again
        .attr("article.message", "id")
        .and_then(|id| id.strip_prefix("message-")?.parse::<i64>().ok());
    assert_eq!(
        first,
        Some(posted[0]),
        "the retry answers with the first message"
    );

    // Every reader sees the same 40, once each, in id order; nothing landed elsewhere.
    let page = others[3].get(&format!("/conversations/{group}")).await;
    let mut shown = ids_in(&page, group);
    assert_eq!(shown.len(), 40);
    let sorted = {
        let mut s = shown.clone();
        s.sort_unstable();
        s
    };
    assert_eq!(shown, sorted);
    shown.sort_unstable();
    let mut expected: Vec<i64> = unique.into_iter().collect();
    expected.sort_unstable();
    assert_eq!(shown, expected);
    assert!(!page.body.contains("let me in"));
    let page = ann.get(&format!("/conversations/{direct}")).await;
    assert!(!page.body.contains("still there?"));

    // The live stream carries each message once, in id order, each grouped with the one before
    // it exactly as a fresh load groups it (on PostgreSQL too, where concurrent posts to one
    // conversation take its lock: `db::messages::lock_timeline`).
    let mut live = Vec::new();
    while live.len() < 40 {
        let f = watch
            .expect(LIVE, "a message frame", |f| {
                f.event == "append" && f.target().as_deref() == Some(&format!("messages-{group}"))
            })
            .await;
        live.extend(articles(&scraper::Html::parse_fragment(&f.data)));
    }
    let ids: Vec<i64> = live.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, expected);
    let page = others[0].get(&format!("/conversations/{group}")).await;
    let fresh: Vec<(i64, String)> = articles(&page.html())
        .into_iter()
        .filter(|(id, _)| expected.contains(id))
        .collect();
    assert_eq!(live, fresh);
    watch
        .assert_none(
            std::time::Duration::from_millis(300),
            "a repeated message",
            |f| f.event == "append" && f.target().as_deref() == Some(&format!("messages-{group}")),
        )
        .await;
    zeds.assert_none(
        std::time::Duration::from_millis(300),
        "the group's messages",
        |f| f.data.contains("note "),
    )
    .await;
}

// A post clears what its author had unread in that conversation, and only there: the badge on
// the author's other tabs, from the post's frame, counts what is unread elsewhere, as a fresh
// load does.
#[tokio::test]
async fn a_post_sets_its_authors_badge_to_what_is_unread_elsewhere() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    let g = bob.group("plans", &[&ann]).await;
    // Unread for ann: two in the group, one in the direct conversation.
    bob.say(g, "one").await;
    bob.say(g, "two").await;
    bob.say(c, "three").await;
    assert_eq!(
        ann.get("/conversations")
            .await
            .text("#badge-unread")
            .as_deref(),
        Some("3")
    );
    let mut a = ann.stream().await;
    a.drain(std::time::Duration::from_millis(300)).await;
    ann.say(c, "read it").await;
    let badge = a.expect_target("replace", "badge-unread").await;
    assert!(
        badge.content().contains("data-count=\"2\""),
        "{}",
        badge.data
    );
    let page = ann.get("/conversations").await;
    assert_eq!(page.text("#badge-unread").as_deref(), Some("2"));
    assert_eq!(
        page.attr(&format!("#unread-{c}"), "data-count").as_deref(),
        Some("0")
    );
    assert_eq!(
        page.attr(&format!("#unread-{g}"), "data-count").as_deref(),
        Some("2")
    );
    // Bob's badge counts ann's new message.
    assert_eq!(
        bob.get("/conversations")
            .await
            .text("#badge-unread")
            .as_deref(),
        Some("1")
    );
}

// Every pooled PostgreSQL connection commits synchronously (an acknowledged post survives a
// crash) and plans each prepared statement once: replanning the post statement cost as much
// as running it (`db::SESSION_SETTINGS`).
#[tokio::test]
async fn on_postgresql_pooled_connections_commit_synchronously_and_plan_once() {
    let app = TestApp::spawn().await;
    if !app.on_postgres() {
        return;
    }
    let (ann, bob) = app.friends("ann", "bob").await;
    let c = ann.direct_with(&bob).await;
    // Posts put connections through use; each one the pool hands out afterwards is checked.
    for i in 0..10 {
        ann.say(c, &format!("post {i}")).await;
    }
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut rc = app.state.db.read().await.unwrap();
        let parley::db::Conn::Pg(conn) = rc.conn() else {
            unreachable!("a PostgreSQL app hands out PostgreSQL connections")
        };
        let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let plans: String = sqlx::query_scalar("SHOW plan_cache_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(
            (sync.as_str(), plans.as_str()),
            ("on", "force_generic_plan")
        );
        // Held, so the next read gets another connection.
        held.push(rc);
    }
}

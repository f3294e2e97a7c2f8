//! Two Parley processes behind nginx on one PostgreSQL database, as `scripts/topology.sh` starts
//! them: users on different nodes chat and see presence and receipts live; one node is killed
//! (`kill -9`) in the middle of traffic and its streams reconnect through the proxy to the other
//! node and catch up with nothing missing or doubled; the node comes back and takes streams again.
//! A browser test runs the chat across nodes in Chromium (with `PARLEY_E2E=1`).
//!
//! Run with `scripts/topology.sh test` (CI does, in its own step). The script exports
//! `PARLEY_TOPOLOGY_DIR`; without it these tests skip, and the script and CI then fail on the
//! missing `target/test-topology*.marker`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use fantoccini::{Client as Browser, Locator};
use reqwest::StatusCode;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

use crate::e2e;
use crate::helpers::*;
use crate::metrics::sample;

/// Presence and messages between nodes travel through PostgreSQL NOTIFY: allow a little more
/// than in one process.
const ACROSS: Duration = Duration::from_secs(5);

/// The running topology, as `scripts/topology.sh up` wrote it down.
struct Topology {
    dir: PathBuf,
    proxy: String,
    database_url: String,
    metrics: [String; 2],
}

impl Topology {
    fn from_env() -> Option<Topology> {
        let dir = PathBuf::from(std::env::var_os("PARLEY_TOPOLOGY_DIR")?);
        let text = std::fs::read_to_string(dir.join("env"))
            .expect("PARLEY_TOPOLOGY_DIR has no env file: run scripts/topology.sh up first");
        let env: HashMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let get = |k: &str| env.get(k).cloned().unwrap_or_else(|| panic!("{k} missing"));
        assert_eq!(get("NODES"), "2", "the topology tests need two nodes");
        Some(Topology {
            proxy: get("PROXY_URL"),
            database_url: get("DATABASE_URL"),
            metrics: [
                format!("http://127.0.0.1:{}/metrics", get("NODE1_METRICS_PORT")),
                format!("http://127.0.0.1:{}/metrics", get("NODE2_METRICS_PORT")),
            ],
            dir,
        })
    }

    /// `scripts/topology.sh ARGS…`.
    async fn script(&self, args: &[&str]) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/topology.sh");
        let out = tokio::process::Command::new("bash")
            .arg(script)
            .args(args)
            .env("PARLEY_TOPOLOGY_DIR", &self.dir)
            .output()
            .await
            .expect("run scripts/topology.sh");
        assert!(
            out.status.success(),
            "topology.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Streams open on node `n` (1 or 2), from its metrics.
    async fn streams_on(&self, n: usize) -> Option<f64> {
        let text = reqwest::get(&self.metrics[n - 1])
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        sample(&text, "parley_streams_open", &[])
    }

    /// Waits until the two nodes hold `want` streams between them; returns (node 1, node 2).
    async fn settle_streams(&self, want: f64) -> (f64, f64) {
        let mut last = (0.0, 0.0);
        for _ in 0..300 {
            last = (
                self.streams_on(1).await.unwrap_or(0.0),
                self.streams_on(2).await.unwrap_or(0.0),
            );
            if last.0 + last.1 == want {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("streams never settled at {want}: {last:?}");
    }
}

/// A unique-per-run username (the same topology may serve several runs).
fn name(base: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
        % 1_000_000_000;
    format!("{base}_{n}")
}

async fn register(base: &str, username: &str) -> Client {
    let c = Client::new(base);
    let r = c
        .post(
            "/register",
            &[
                ("username", username),
                ("password", &crate::helpers::password_for(username)),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "register: {}", r.body);
    let id = c.me().await;
    Client {
        id,
        name: username.to_owned(),
        ..c
    }
}

fn node_of(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-parley-node")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Opens `c`'s stream (through the proxy) until it lands on `node`.
async fn stream_on(c: &Client, node: &str) -> Stream {
    for _ in 0..20 {
        let r = c
            .http
            .get(format!("{}/events", c.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        if node_of(&r) == node {
            return Stream::open(r).await;
        }
        drop(r);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no stream landed on {node} in 20 tries");
}

/// The message id in an `append` frame of a message.
fn message_id(html: &str) -> Option<i64> {
    let rest = &html[html.find("id=\"message-")? + "id=\"message-".len()..];
    rest.split('"').next()?.parse().ok()
}

/// What one reader saw over the whole run, across reconnects.
#[derive(Default)]
struct Seen {
    messages: Vec<i64>,
    out_of_order: Vec<(i64, i64)>,
    reloads: usize,
    nodes: Vec<String>,
}

/// Reads `c`'s stream like a browser's EventSource: on a drop it reconnects (through the proxy)
/// with `Last-Event-ID`, and goes on until `stop`.
async fn read_like_a_browser(
    c: Client,
    mut s: Stream,
    first_node: String,
    conversation: i64,
    progress: Arc<AtomicUsize>,
    stop: CancellationToken,
) -> Seen {
    let target = format!("messages-{conversation}");
    let mut seen = Seen {
        nodes: vec![first_node],
        ..Seen::default()
    };
    let mut last_id = 0i64;
    while !stop.is_cancelled() {
        if let Some(f) = s.next(Duration::from_millis(100)).await {
            if let Some(id) = f.id {
                if id < last_id {
                    seen.out_of_order.push((last_id, id));
                }
                last_id = last_id.max(id);
            }
            if f.event == "reload" {
                seen.reloads += 1;
            }
            if f.event == "append"
                && f.target().as_deref() == Some(target.as_str())
                && let Some(m) = message_id(&f.data)
            {
                seen.messages.push(m);
                progress.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        }
        if !s.ended {
            continue;
        }
        // The stream is gone (its node died): reconnect as EventSource does, after `retry`.
        loop {
            if stop.is_cancelled() {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let r = c
                .http
                .get(format!("{}/events", c.base))
                .header("Last-Event-ID", last_id.to_string())
                .send()
                .await;
            if let Ok(r) = r
                && r.status() == StatusCode::OK
            {
                seen.nodes.push(node_of(&r));
                s = Stream::open(r).await;
                break;
            }
        }
    }
    seen
}

/// Posts `count` messages as `c`, each retried with its client id until acknowledged (as
/// live.js does); returns the acknowledged ids.
async fn write(c: Client, conversation: i64, count: usize, sent: Arc<AtomicUsize>) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..count {
        let client_id = format!("{}-{i}", c.name);
        let body = format!("{} #{i}", c.name);
        let mut tries = 0;
        let id = loop {
            tries += 1;
            assert!(tries < 100, "{client_id} never acknowledged");
            let r = c
                .http
                .post(format!("{}/conversations/{conversation}/messages", c.base))
                .header("X-Parley-Fetch", "1")
                .form(&[("body", body.as_str()), ("client_id", client_id.as_str())])
                .send()
                .await;
            match r {
                Ok(r) if r.status() == StatusCode::OK => {
                    if let Some(id) = message_id(&r.text().await.unwrap_or_default()) {
                        break id;
                    }
                }
                // A 502 or a cut connection: the node died under us; the same client id again.
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        ids.push(id);
        sent.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    ids
}

fn mark(file: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(file), b"ran\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_two_nodes_behind_nginx_survive_a_kill_and_take_streams_back() {
    let Some(t) = Topology::from_env() else {
        eprintln!("topology: skipped (run scripts/topology.sh test)");
        return;
    };
    let proxy = t.proxy.as_str();

    // --- Chat, presence and receipts between users on different nodes.
    let ann = register(proxy, &name("ann")).await;
    let bob = register(proxy, &name("bob")).await;
    befriend(&ann, &bob).await;
    let direct = ann.direct_with(&bob).await;
    let mut a = stream_on(&ann, "node1").await;
    let mut b = stream_on(&bob, "node2").await;
    a.expect(ACROSS, "Bob online, told across nodes", |f| {
        f.event == "presence"
            && f.target().as_deref() == Some(&format!("presence-{}", bob.id))
            && f.data.contains("online")
    })
    .await;
    let m = ann.say(direct, "hello from node one").await;
    let f = b
        .expect(ACROSS, "Ann's message on Bob's node", |f| {
            f.event == "append" && f.target().as_deref() == Some(&format!("messages-{direct}"))
        })
        .await;
    assert!(f.data.contains("hello from node one"));
    let r = bob
        .post_fetch(
            &format!("/conversations/{direct}/read"),
            &[("message_id", &m.to_string())],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // (Ann's own receipt came with the message; Bob's follows from the other node.)
    a.expect(ACROSS, "Bob's receipt on Ann's node", |f| {
        f.event == "append"
            && f.target().as_deref() == Some(&format!("receipts-{m}"))
            && f.data.contains(&format!("data-reader=\"{}\"", bob.id))
    })
    .await;
    drop(a);
    drop(b);

    // --- Traffic, and node 1 dies in the middle of it.
    let carol = register(proxy, &name("carol")).await;
    let dave = register(proxy, &name("dave")).await;
    befriend(&ann, &carol).await;
    befriend(&ann, &dave).await;
    let group = ann.group("Through the proxy", &[&bob, &carol, &dave]).await;
    let users = [ann.clone(), bob.clone(), carol.clone(), dave.clone()];
    let placement = ["node2", "node1", "node1", "node2"];
    let stop = CancellationToken::new();
    let progress = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for (u, node) in users.iter().zip(placement) {
        let s = stream_on(u, node).await;
        readers.push(tokio::spawn(read_like_a_browser(
            u.clone(),
            s,
            node.to_owned(),
            group,
            progress.clone(),
            stop.clone(),
        )));
    }
    const EACH: usize = 40;
    let sent = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = users
        .iter()
        .map(|u| tokio::spawn(write(u.clone(), group, EACH, sent.clone())))
        .collect();
    while sent.load(Ordering::Relaxed) < users.len() * EACH / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed_at = sent.load(Ordering::Relaxed);
    t.script(&["kill", "1"]).await;
    let after_kill = sent.load(Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    let expected: HashSet<i64> = acked.iter().copied().collect();
    assert_eq!(
        expected.len(),
        users.len() * EACH,
        "one id per acknowledged send"
    );
    // Every reader catches up with everything.
    let want = users.len() * expected.len();
    for _ in 0..300 {
        if progress.load(Ordering::Relaxed) >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // anything doubled arrives too
    stop.cancel();
    for (i, r) in readers.into_iter().enumerate() {
        let seen = r.await.unwrap();
        let who = &users[i].name;
        let mut counts: HashMap<i64, usize> = HashMap::new();
        for m in &seen.messages {
            *counts.entry(*m).or_default() += 1;
        }
        let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        let missing: Vec<_> = expected
            .iter()
            .filter(|m| !counts.contains_key(m))
            .collect();
        let extra: Vec<_> = counts.keys().filter(|m| !expected.contains(m)).collect();
        assert!(doubled.is_empty(), "{who}: doubled {doubled:?}");
        assert!(
            missing.is_empty(),
            "{who}: missing {} of {}: {missing:?}",
            missing.len(),
            expected.len()
        );
        assert!(extra.is_empty(), "{who}: unexpected {extra:?}");
        assert!(
            seen.out_of_order.is_empty(),
            "{who}: ids went back {:?}",
            seen.out_of_order
        );
        assert_eq!(seen.reloads, 0, "{who}: told to reload");
        if placement[i] == "node1" {
            assert!(
                seen.nodes.len() >= 2 && seen.nodes[1..].iter().all(|n| n == "node2"),
                "{who} was on the killed node and must have moved to node2: {:?}",
                seen.nodes
            );
        } else {
            assert_eq!(
                seen.nodes,
                vec!["node2".to_owned()],
                "{who} stayed on node2"
            );
        }
    }
    // Retries never stored a message twice.
    let mut pg = sqlx::PgConnection::connect(&t.database_url).await.unwrap();
    let (rows, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT client_id) FROM messages WHERE conversation_id = $1",
    )
    .bind(group)
    .fetch_one(&mut pg)
    .await
    .unwrap();
    assert_eq!(
        (rows, distinct),
        (expected.len() as i64, expected.len() as i64)
    );
    eprintln!(
        "topology: node 1 killed after {killed_at} of {} sends (dead at {after_kill}); every stream caught up",
        expected.len()
    );

    // --- Node 1 comes back and takes streams again.
    t.script(&["start", "1"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // nginx's fail_timeout for node 1
    let mut on1 = None;
    for _ in 0..10 {
        let r = bob
            .http
            .get(format!("{proxy}/events"))
            .send()
            .await
            .unwrap();
        if node_of(&r) == "node1" {
            on1 = Some(Stream::open(r).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut s = on1.expect("a stream lands on node 1 again");
    assert!(t.streams_on(1).await.is_some_and(|n| n >= 1.0));
    let m = dave.say(group, "node one is back").await;
    let f = s
        .expect(ACROSS, "a message on the revived node", |f| {
            f.event == "append" && f.target().as_deref() == Some(&format!("messages-{group}"))
        })
        .await;
    assert_eq!(message_id(&f.data), Some(m));
    mark("test-topology.marker");
}

async fn browser_register(b: &Browser, proxy: &str, username: &str) -> Result<()> {
    b.goto(&format!("{proxy}/register")).await?;
    e2e::fill(b, "#username", username).await?;
    e2e::fill(b, "#password", &crate::helpers::password_for(username)).await?;
    e2e::click(b, "form button[type=submit].primary").await?;
    e2e::wait_path(b, "/conversations").await
}

/// Ann and Bob in two Chromium windows, through nginx, with their streams on different nodes.
async fn chat_across_nodes(t: &Topology, a: &Browser, b: &Browser) -> Result<()> {
    let proxy = t.proxy.as_str();
    let (ann, bob) = (name("ann"), name("bob"));
    browser_register(a, proxy, &ann).await?;
    browser_register(b, proxy, &bob).await?;
    // The friendship over HTTP (the browser flow has its own tests); then both log in.
    let ann_c = Client::new(proxy);
    let r = ann_c
        .post(
            "/login",
            &[
                ("username", &ann),
                ("password", &crate::helpers::password_for(&ann)),
            ],
        )
        .await;
    if r.status != StatusCode::SEE_OTHER {
        bail!("login over HTTP: {}", r.status);
    }
    let ann_c = Client {
        id: ann_c.me().await,
        name: ann.clone(),
        ..ann_c
    };
    let bob_c = Client::new(proxy);
    bob_c
        .post(
            "/login",
            &[
                ("username", &bob),
                ("password", &crate::helpers::password_for(&bob)),
            ],
        )
        .await;
    let bob_c = Client {
        id: bob_c.me().await,
        name: bob.clone(),
        ..bob_c
    };
    befriend(&ann_c, &bob_c).await;
    let direct = ann_c.direct_with(&bob_c).await;
    drop((ann_c, bob_c));

    // Which node holds whose stream, from the nodes' metrics: Bob's page closed, Ann's open.
    b.goto("about:blank").await?;
    a.goto(&format!("{proxy}/conversations/{direct}")).await?;
    let (a1, _) = t.settle_streams(1.0).await;
    let ann_node = if a1 == 1.0 { 1 } else { 2 };
    b.goto(&format!("{proxy}/conversations/{direct}")).await?;
    let mut tries = 0;
    loop {
        let (n1, n2) = t.settle_streams(2.0).await;
        if n1 == 1.0 && n2 == 1.0 {
            break;
        }
        tries += 1;
        if tries > 10 {
            bail!("Bob's stream kept landing on Ann's node {ann_node}");
        }
        b.refresh().await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!("topology e2e: Ann's stream on node {ann_node}, Bob's on the other");
    let text = a.find(Locator::Css("form.composer textarea")).await?;
    text.send_keys("Hello across nodes\u{E007}").await?;
    e2e::wait_text(
        b,
        ".messages article.message .body",
        "Hello across nodes",
        ACROSS,
    )
    .await?;
    let text = b.find(Locator::Css("form.composer textarea")).await?;
    text.send_keys("And back again\u{E007}").await?;
    e2e::wait_text(
        a,
        ".messages article.message .body",
        "And back again",
        ACROSS,
    )
    .await?;
    e2e::wait_count(b, ".messages article.message", 2, ACROSS).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_e2e_chat_across_nodes_in_chromium() {
    let Some(t) = Topology::from_env() else {
        eprintln!("topology e2e: skipped (run PARLEY_E2E=1 scripts/topology.sh test)");
        return;
    };
    if !e2e::enabled() {
        eprintln!("topology e2e: skipped (set PARLEY_E2E=1)");
        return;
    }
    let driver = e2e::start_driver().await.expect("chromedriver");
    let a = e2e::open_browser(&driver, true, 1280, 800)
        .await
        .expect("browser");
    let b = e2e::open_browser(&driver, true, 1280, 800)
        .await
        .expect("browser");
    let r = chat_across_nodes(&t, &a, &b).await;
    if r.is_err() {
        let dir = e2e::out_dir().join("topology");
        let _ = std::fs::create_dir_all(&dir);
        for (i, br) in [&a, &b].into_iter().enumerate() {
            if let Ok(png) = br.screenshot().await {
                let _ = std::fs::write(dir.join(format!("browser-{i}.png")), png);
            }
        }
    }
    let _ = a.close().await;
    let _ = b.close().await;
    drop(driver);
    if let Err(e) = r {
        panic!("topology e2e: {e:#}");
    }
    mark("test-topology-e2e.marker");
}

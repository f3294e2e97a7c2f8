//! Cluster benchmark, through a proxy: many pairs of friends, every user with several streams
//! open, writers posting into the pairs' conversations as fast as they are answered. Prints
//! acknowledged messages per second, deliveries per second, post and delivery latencies, and the
//! streams open at the end.
//!
//!     scripts/topology.sh bench     (one node behind nginx, then two; release build)
//!
//! Against any running Parley: `PARLEY_BENCH_URL=http://127.0.0.1:8080 cargo bench --bench proxy`.
//! Knobs (environment): `PARLEY_BENCH_PAIRS` (100), `PARLEY_BENCH_STREAMS_PER_USER` (5),
//! `PARLEY_BENCH_WRITERS` (32), `PARLEY_BENCH_SECS` (15). The server must allow the registrations
//! (`--rate-limit-ip`; the topology script sets it high).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::redirect::Policy;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .pool_max_idle_per_host(64)
        .build()
        .expect("client")
}

struct User {
    http: reqwest::Client,
    id: i64,
}

async fn register(base: &str, name: &str) -> User {
    let http = client();
    let r = http
        .post(format!("{base}/register"))
        .form(&[
            ("username", name),
            ("password", &format!("quiet harbour {name} mornings")),
        ])
        .send()
        .await
        .expect("register");
    assert_eq!(r.status(), 303, "register {name}");
    let page = http
        .get(format!("{base}/settings"))
        .send()
        .await
        .expect("settings")
        .text()
        .await
        .expect("body");
    let id = page
        .split("data-me=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .expect("data-me");
    User { http, id }
}

/// `a` asks `b`, `b` accepts; returns their direct conversation.
async fn befriend(base: &str, a: &User, a_name: &str, b: &User, b_name: &str) -> i64 {
    let r = a
        .http
        .post(format!("{base}/friends/requests"))
        .form(&[("username", b_name)])
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 303);
    let page = b
        .http
        .get(format!("{base}/friends"))
        .send()
        .await
        .expect("friends")
        .text()
        .await
        .expect("body");
    // The newest request to b is from a: the only one.
    let _ = a_name;
    let request: i64 = page
        .split("id=\"request-")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .expect("request id");
    let r = b
        .http
        .post(format!("{base}/friends/requests/{request}/accept"))
        .send()
        .await
        .expect("accept");
    assert_eq!(r.status(), 303);
    let r = a
        .http
        .get(format!("{base}/friends/{}/conversation", b.id))
        .send()
        .await
        .expect("conversation");
    r.headers()["location"]
        .to_str()
        .ok()
        .and_then(|l| l.rsplit('/').next())
        .and_then(|s| s.parse().ok())
        .expect("conversation id")
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let Ok(base) = std::env::var("PARLEY_BENCH_URL") else {
        eprintln!("proxy bench: skipped (set PARLEY_BENCH_URL, or run scripts/topology.sh bench)");
        return;
    };
    let label = std::env::var("PARLEY_BENCH_LABEL").unwrap_or_else(|_| base.clone());
    let pairs = knob("PARLEY_BENCH_PAIRS", 100);
    let per_user = knob("PARLEY_BENCH_STREAMS_PER_USER", 5);
    let writers = knob("PARLEY_BENCH_WRITERS", 32);
    let secs = knob("PARLEY_BENCH_SECS", 15) as u64;
    let run = std::process::id();

    // Users and their direct conversations.
    let setup = Instant::now();
    let mut conversations = Vec::new();
    let mut users = Vec::new();
    for chunk in (0..pairs).collect::<Vec<_>>().chunks(8) {
        let made = futures_util::future::join_all(chunk.iter().map(|p| {
            let base = base.clone();
            async move {
                let (an, bn) = (format!("a{run}_{p}"), format!("b{run}_{p}"));
                let a = register(&base, &an).await;
                let b = register(&base, &bn).await;
                let c = befriend(&base, &a, &an, &b, &bn).await;
                (a, b, c)
            }
        }))
        .await;
        for (a, b, c) in made {
            users.push((a, c));
            users.push((b, c));
            conversations.push(c);
        }
    }
    let users = Arc::new(users);

    // Streams: every user, `per_user` times, counting message appends and their latency.
    let epoch = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let open = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for (u, _) in users.iter() {
        for _ in 0..per_user {
            let r = u
                .http
                .get(format!("{base}/events"))
                .send()
                .await
                .expect("stream");
            assert_eq!(r.status(), 200, "stream opens");
            let (delivered, latencies, open, stop) = (
                delivered.clone(),
                latencies.clone(),
                open.clone(),
                stop.clone(),
            );
            open.fetch_add(1, Ordering::Relaxed);
            readers.push(tokio::spawn(async move {
                let mut body = r.bytes_stream();
                let mut buf = String::new();
                while let Some(Ok(chunk)) = body.next().await {
                    buf.push_str(&String::from_utf8_lossy(&chunk));
                    while let Some(i) = buf.find("\n\n") {
                        let block: String = buf.drain(..i + 2).collect();
                        if block.contains("event: append")
                            && block.contains("data-target=\"messages-")
                        {
                            delivered.fetch_add(1, Ordering::Relaxed);
                            if let Some(t) = block
                                .split("bench@")
                                .nth(1)
                                .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
                                .and_then(|s| s.parse::<u64>().ok())
                            {
                                let now = epoch.elapsed().as_micros() as u64;
                                // Kept as we go: the reader is aborted at the end.
                                latencies.lock().expect("lock").push(now.saturating_sub(t));
                            }
                        }
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
                if !stop.load(Ordering::Relaxed) {
                    open.fetch_sub(1, Ordering::Relaxed);
                }
            }));
        }
    }
    let streams = open.load(Ordering::Relaxed);
    println!(
        "[{label}] setup: {} users, {} conversations, {streams} streams in {:.1}s",
        users.len(),
        conversations.len(),
        setup.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Writers: each takes users in turn and posts into their conversation.
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let post_lat = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (users, base, acked, failed, post_lat) = (
            users.clone(),
            base.clone(),
            acked.clone(),
            failed.clone(),
            post_lat.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            let mut mine = Vec::new();
            while Instant::now() < deadline {
                let (u, c) = &users[i % users.len()];
                i += writers;
                let t0 = Instant::now();
                let body = format!("bench@{}", epoch.elapsed().as_micros());
                let r = u
                    .http
                    .post(format!("{base}/conversations/{c}/messages"))
                    .header("X-Parley-Fetch", "1")
                    .form(&[("body", body.as_str())])
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        acked.fetch_add(1, Ordering::Relaxed);
                        mine.push(t0.elapsed().as_micros() as u64);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            post_lat.lock().expect("lock").extend(mine);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Let the last deliveries arrive.
    let want = acked.load(Ordering::Relaxed) * 2 * per_user as u64;
    let drain = Instant::now();
    while delivered.load(Ordering::Relaxed) < want && drain.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let still_open = open.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for r in &readers {
        r.abort();
    }
    for r in readers {
        let _ = r.await;
    }
    let acked = acked.load(Ordering::Relaxed);
    let delivered = delivered.load(Ordering::Relaxed);
    let mut posts = post_lat.lock().expect("lock").clone();
    posts.sort_unstable();
    let mut deliveries = latencies.lock().expect("lock").clone();
    deliveries.sort_unstable();
    println!(
        "[{label}] {writers} writers for {elapsed:.1}s: {acked} messages ({:.0}/s), {} failed; \
         {delivered} of {want} deliveries ({:.0}/s)",
        acked as f64 / elapsed,
        failed.load(Ordering::Relaxed),
        delivered as f64 / elapsed,
    );
    println!(
        "[{label}] post latency ms p50 {:.1} p99 {:.1}; delivery latency ms p50 {:.1} p99 {:.1}; \
         streams open at the end {still_open} of {streams}",
        percentile(&posts, 0.5),
        percentile(&posts, 0.99),
        percentile(&deliveries, 0.5),
        percentile(&deliveries, 0.99),
    );
}

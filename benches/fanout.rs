//! Fan-out benchmark: a group of 200 members, every member's stream open, one member posting.
//! Prints the server's memory (idle, with 200 streams) and, per message, the time from sending the
//! POST until the last of the 200 streams has the message.
//!
//!     cargo bench --bench fanout
//!
//! It runs the release binary as a separate process on 127.0.0.1 with a temporary SQLite database.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::redirect::Policy;

const MEMBERS: usize = 200;
const MESSAGES: usize = 200;

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .expect("client")
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args([
                "--database-url",
                &format!("sqlite://{}", dir.path().join("b.db").display()),
            ])
            .args([
                "--rate-limit-ip",
                "1000000",
                "--rate-limit-account",
                "1000000",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start parley"),
    );
    let pid = server.0.id();
    let probe = client();
    while probe.get(format!("{base}/healthz")).send().await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = rss_kib(pid);

    // Members: 0 owns the group; everyone else is 0's friend.
    let mut users = Vec::new();
    for i in 0..MEMBERS {
        let c = client();
        let r = c
            .post(format!("{base}/register"))
            .form(&[
                ("username", format!("user{i}")),
                ("password", "quiet harbour benchmark mornings".into()),
            ])
            .send()
            .await
            .expect("register");
        assert_eq!(r.status(), 303);
        users.push(c);
    }
    for i in 1..MEMBERS {
        users[0]
            .post(format!("{base}/friends/requests"))
            .form(&[("username", format!("user{i}"))])
            .send()
            .await
            .expect("request");
        let page = users[i]
            .get(format!("{base}/friends"))
            .send()
            .await
            .expect("friends")
            .text()
            .await
            .expect("body");
        let id = page
            .split("id=\"request-")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("request id")
            .to_owned();
        users[i]
            .post(format!("{base}/friends/requests/{id}/accept"))
            .send()
            .await
            .expect("accept");
    }
    let mut form: Vec<(String, String)> = vec![("title".into(), "Everyone".into())];
    form.extend((1..MEMBERS).map(|i| ("member".into(), format!("user{i}"))));
    let r = users[0]
        .post(format!("{base}/conversations"))
        .form(&form)
        .send()
        .await
        .expect("group");
    let group: i64 = r.headers()["location"]
        .to_str()
        .unwrap_or("")
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("group id");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_setup = rss_kib(pid);

    // Every member's stream.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    for (i, c) in users.iter().enumerate() {
        let r = c
            .get(format!("{base}/events"))
            .send()
            .await
            .expect("stream");
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut body = r.bytes_stream();
            let mut buf = String::new();
            let mut seen = 0usize;
            while let Some(Ok(chunk)) = body.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                let n = buf.matches("class=\"message").count();
                for _ in seen..n {
                    let _ = tx.send((i, Instant::now()));
                }
                seen = n;
                if buf.len() > 1 << 20 {
                    let keep = buf.split_off(buf.len() - 4096);
                    seen -= buf.matches("class=\"message").count();
                    buf = keep;
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_streams = rss_kib(pid);

    let poster = &users[1];
    let mut latencies = Vec::with_capacity(MESSAGES);
    let mut post_times = Vec::with_capacity(MESSAGES);
    let started = Instant::now();
    for m in 0..MESSAGES {
        let sent = Instant::now();
        let r = poster
            .post(format!("{base}/conversations/{group}/messages"))
            .header("X-Parley-Fetch", "1")
            .form(&[("body", format!("message {m}"))])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
        post_times.push(sent.elapsed());
        let mut got = 0;
        let mut last = sent;
        while got < MEMBERS {
            let (_, at) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("delivery within 10 s")
                .expect("channel");
            got += 1;
            last = last.max(at);
        }
        latencies.push(last - sent);
    }
    let total = started.elapsed();
    let after = rss_kib(pid);
    latencies.sort();
    post_times.sort();
    let pct = |v: &[Duration], p: f64| v[((v.len() as f64 - 1.0) * p) as usize];
    println!(
        "fanout: {MEMBERS} members with open streams, {MESSAGES} messages posted one after another (SQLite, synchronous=FULL)"
    );
    println!(
        "  POST round trip      p50 {:>8.2?}  p99 {:>8.2?}",
        pct(&post_times, 0.5),
        pct(&post_times, 0.99)
    );
    println!(
        "  POST → all {MEMBERS} have it  p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}",
        pct(&latencies, 0.5),
        pct(&latencies, 0.99),
        latencies[latencies.len() - 1]
    );
    println!(
        "  {} deliveries in {:.2?} ({:.0} deliveries/s)",
        MEMBERS * MESSAGES,
        total,
        (MEMBERS * MESSAGES) as f64 / total.as_secs_f64()
    );
    println!(
        "  server RSS: idle {idle} KiB; after {MEMBERS} registrations {after_setup} KiB; \
         with {MEMBERS} streams open {with_streams} KiB; after the run {after} KiB"
    );
}

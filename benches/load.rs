//! Parley's performance figures, measured from outside: the release binary runs as a separate
//! process on 127.0.0.1 and this program talks HTTP/1.1 and SSE to it over plain sockets.
//!
//!     cargo bench --bench load
//!     PARLEY_BENCH_DATABASE_URL=postgres://user:pass@127.0.0.1:5432/postgres cargo bench --bench load
//!
//! With the variable set, every figure is measured on SQLite and then on PostgreSQL (a fresh
//! database per server start, dropped at the end). Each figure is printed with its target from
//! issue 9 and whether it is met. Users are seeded straight into the database with a cheap
//! argon2 hash (the server verifies whatever parameters a hash names), so 10,000 real logins take
//! seconds; everything measured goes through the real routes. Client sockets bind 127.0.0.x
//! source addresses so 10,000 streams never run out of ephemeral ports, and the open-files limit
//! is raised to the hard limit here (the server raises its own).
//!
//! It first measures the machine alone: how long the disk takes to make an 8 KiB write durable,
//! 20 times a second and back to back, and how late a sleeping thread wakes up. No server can
//! answer or deliver a durable message faster than that, so these are the floors under the
//! latency targets, printed beside them (docs/performance.md, "the machine's floor").
//!
//! Fan-out is timed from the POST to the moment the frame's bytes land in each reader's socket
//! (the kernel's receive timestamp): the server's delivery. At 20 msg/s the 200 streams are read
//! by one thread between posts, not as frames come: 200 members of a real group are on 200 other
//! machines, and readers woken by every frame took this machine's second core from the server
//! while it was still writing. At 200 msg/s no moment between posts is quiet, and each stream is
//! read by a task of its own as frames come, with a line timing the frames as this process read
//! them (docs/performance.md, sixteenth session; `PARLEY_BENCH_READERS=between|eager` reads
//! every fan-out one way).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

const PASSWORD: &str = "bench-password";
const GROUP: usize = 200;
const PAIRS: usize = 50;
const IDLE: usize = 10_000;
/// u0..u199 the group, u200..u299 the direct pairs, then the idle streams.
const USERS: usize = GROUP + 2 * PAIRS + IDLE;

fn uname(i: usize) -> String {
    format!("u{i:05}")
}

// ------------------------------------------------------------------ the server process

struct Server {
    child: Child,
    addr: SocketAddr,
    url: String,
    log: std::path::PathBuf,
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }
    /// Ends the server (see `end`, which dropping it runs).
    fn stop(self) {}

    /// Ends the server. A profiler in front of it (`PARLEY_BENCH_WRAP`) gets SIGINT and a few
    /// seconds to write its data; a bare server is killed.
    fn end(&mut self) {
        if std::env::var("PARLEY_BENCH_WRAP").is_ok_and(|w| !w.trim().is_empty()) {
            let _ = Command::new("kill")
                .args(["-INT", &self.child.id().to_string()])
                .status();
            for _ in 0..100 {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.end();
    }
}

/// The time part of a client id as browsers make them (`newClientId` in static/live.js: the
/// milliseconds in 12 hex digits first), so the load meets the server's index as real sends do.
fn client_time() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{ms:012x}")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// Starts the server and returns it with the time until it first answered `/healthz`.
async fn start(url: &str, dir: &std::path::Path) -> (Server, Duration) {
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = dir.join(format!("server-{port}.log"));
    let out = std::fs::File::create(&log).expect("log file");
    let started = Instant::now();
    // Profiling: `PARLEY_BENCH_BIN` runs another build of the server, `PARLEY_BENCH_WRAP` a
    // program in front of it (`heaptrack`, `perf record -g --`).
    let bin = std::env::var("PARLEY_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_parley").to_owned());
    let mut cmd = match std::env::var("PARLEY_BENCH_WRAP") {
        Ok(wrap) if !wrap.trim().is_empty() => {
            let mut words = wrap.split_whitespace();
            let mut c = Command::new(words.next().unwrap_or("env"));
            c.args(words).arg(&bin);
            c
        }
        _ => Command::new(&bin),
    };
    let child = cmd
        .args(["--addr", &addr.to_string(), "--database-url", url])
        .args(["--rate-limit-ip", "1000000000"])
        .args(["--rate-limit-account", "1000000000"])
        // The load itself is the point: per-user and per-IP protections stay out of its way.
        .args(["--message-rate", "1000000", "--message-burst", "1000000"])
        .args([
            "--max-connections",
            "30000",
            "--max-connections-per-ip",
            "0",
        ])
        .args(["--max-streams-per-user", "100000"])
        .args([
            "--groups-per-hour",
            "1000000",
            "--friend-requests-per-hour",
            "1000000",
        ])
        .args([
            "--static-dir",
            concat!(env!("CARGO_MANIFEST_DIR"), "/static"),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .expect("start parley");
    let server = Server {
        child,
        addr,
        url: url.to_owned(),
        log,
    };
    loop {
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let _ = s
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                .await;
            let mut b = [0u8; 16];
            if let Ok(n) = s.read(&mut b).await
                && b[..n].starts_with(b"HTTP/1.1 200")
            {
                return (server, started.elapsed());
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            panic!(
                "server did not answer: {}",
                std::fs::read_to_string(&server.log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn proc_field(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    proc_field(pid, "VmRSS:")
}

/// The anonymous part of the resident set (heap, stacks), in KiB: what the server itself holds.
/// The rest of RSS is the binary's own pages, shared and clean, and only grows as code runs
/// for the first time, never per stream.
fn anon_kib(pid: u32) -> u64 {
    proc_field(pid, "RssAnon:")
}

/// CPU time used by the process, in clock ticks (1/100 s).
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

// ------------------------------------------------------------------ databases

enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres(_) => "PostgreSQL",
        }
    }

    /// A fresh database URL.
    async fn fresh(&self, dir: &std::path::Path, n: &mut usize) -> String {
        *n += 1;
        match self {
            Backend::Sqlite => format!("sqlite://{}", dir.join(format!("b{n}.db")).display()),
            Backend::Postgres(base) => {
                use sqlx::Connection;
                let name = format!("parley_bench_{}_{n}", std::process::id());
                let mut c = sqlx::PgConnection::connect(base).await.expect("postgres");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut c)
                    .await
                    .expect("create database");
                let root = base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base);
                format!("{root}/{name}")
            }
        }
    }

    async fn drop_all(&self, n: usize) {
        if let Backend::Postgres(base) = self {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(base).await.expect("postgres");
            for i in 1..=n {
                let name = format!("parley_bench_{}_{i}", std::process::id());
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(&mut c)
                    .await;
            }
        }
    }
}

/// Inserts the users with a cheap argon2 hash; returns their ids by index.
async fn seed_users(url: &str) -> Vec<i64> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let a2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let hash = a2
        .hash_password(PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
    let names: Vec<String> = (0..USERS).map(uname).collect();
    macro_rules! seed {
        ($conn:expr) => {{
            let c = $conn;
            for chunk in names.chunks(500) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO users (username, display_name, password_hash, created_at) ",
                );
                q.push_values(chunk, |mut b, n| {
                    b.push_bind(n.clone())
                        .push_bind("")
                        .push_bind(hash.clone())
                        .push_bind(0_i64);
                });
                q.build().execute(&mut *c).await.expect("seed users");
            }
            let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, username FROM users")
                .fetch_all(&mut *c)
                .await
                .expect("ids");
            rows
        }};
    }
    use sqlx::Connection;
    let rows = if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.expect("pg");
        seed!(&mut c)
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.expect("sqlite");
        sqlx::query("PRAGMA busy_timeout = 10000")
            .execute(&mut c)
            .await
            .unwrap();
        seed!(&mut c)
    };
    let by_name: HashMap<String, i64> = rows.into_iter().map(|(i, n)| (n, i)).collect();
    names.iter().map(|n| by_name[n]).collect()
}

// ------------------------------------------------------------------ a small HTTP/1.1 client

static SOURCE: AtomicUsize = AtomicUsize::new(0);

/// Connects from one of 127.0.0.1..=127.0.0.40, in turn.
async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let n = SOURCE.fetch_add(1, Ordering::Relaxed) % 40;
    let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + n as u8));
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(src, 0))?;
    let s = sock.connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Http {
    addr: SocketAddr,
    s: Option<TcpStream>,
    buf: Vec<u8>,
    cookie: String,
}

fn head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

impl Http {
    fn new(addr: SocketAddr, cookie: &str) -> Http {
        Http {
            addr,
            s: None,
            buf: Vec::new(),
            cookie: cookie.to_owned(),
        }
    }

    async fn fill(&mut self) -> io::Result<()> {
        let s = self.s.as_mut().ok_or(io::ErrorKind::NotConnected)?;
        let mut tmp = [0u8; 16384];
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(())
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        form: &str,
        fetch: bool,
    ) -> io::Result<Resp> {
        if self.s.is_none() {
            self.s = Some(connect(self.addr).await?);
            self.buf.clear();
        }
        let extra = if fetch { "X-Parley-Fetch: 1\r\n" } else { "" };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {}\r\n{extra}\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            self.cookie,
            form.len()
        );
        let r = self.exchange(req.as_bytes()).await;
        if r.is_err() {
            self.s = None;
        }
        r
    }

    async fn exchange(&mut self, req: &[u8]) -> io::Result<Resp> {
        self.s
            .as_mut()
            .ok_or(io::ErrorKind::NotConnected)?
            .write_all(req)
            .await?;
        let end = loop {
            if let Some(e) = head_end(&self.buf) {
                break e;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut r = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        if let Some(len) = r
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            while self.buf.len() < len {
                self.fill().await?;
            }
            r.body = self.buf.drain(..len).collect();
        } else if r.header("transfer-encoding") == Some("chunked") {
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    self.fill().await?;
                };
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&self.buf[..line_end]).trim(),
                    16,
                )
                .map_err(|_| io::Error::other("bad chunk"))?;
                while self.buf.len() < line_end + 2 + size + 2 {
                    self.fill().await?;
                }
                r.body
                    .extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                self.buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break;
                }
            }
        }
        if r.header("connection") == Some("close") {
            self.s = None;
        }
        Ok(r)
    }
}

async fn login(addr: SocketAddr, i: usize) -> String {
    let mut h = Http::new(addr, "");
    let r = h
        .send(
            "POST",
            "/login",
            &format!("username={}&password={PASSWORD}", uname(i)),
            false,
        )
        .await
        .expect("login");
    assert_eq!(r.status, 303, "login {}", uname(i));
    let c = r.header("set-cookie").expect("cookie");
    c.split(';').next().unwrap().to_owned()
}

/// Runs `f` over `items` with at most `n` at a time.
async fn each<T, F, Fut, R>(items: Vec<T>, n: usize, f: F) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = R> + Send + 'static,
{
    let f = Arc::new(f);
    let sem = Arc::new(tokio::sync::Semaphore::new(n));
    let mut handles = Vec::new();
    for item in items {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let f = f.clone();
        handles.push(tokio::spawn(async move {
            let r = f(item).await;
            drop(permit);
            r
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// `a` asks `b` to be friends, `b` accepts.
async fn befriend(addr: SocketAddr, a: &str, b: &str, b_name: &str) {
    let mut ha = Http::new(addr, a);
    let r = ha
        .send(
            "POST",
            "/friends/requests",
            &format!("username={b_name}"),
            false,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 303, "{}", String::from_utf8_lossy(&r.body));
    let mut hb = Http::new(addr, b);
    let page = hb.send("GET", "/friends", "", false).await.unwrap();
    let page = String::from_utf8_lossy(&page.body).into_owned();
    let id = page
        .split("id=\"request-")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("request id")
        .to_owned();
    let r = hb
        .send("POST", &format!("/friends/requests/{id}/accept"), "", false)
        .await
        .unwrap();
    assert_eq!(r.status, 303);
}

// ------------------------------------------------------------------ SSE readers

/// Where a reader reports (reader, token, when).
type Seen = mpsc::UnboundedSender<(usize, usize, Arrival)>;

/// When a frame reached a reader: when its bytes landed in the reader's socket (the kernel's
/// receive timestamp, `SO_TIMESTAMPNS`), and when the load generator got round to reading them.
/// The first is the server's delivery; the second adds this process's own scheduling of 200
/// readers on the server's two cores. A read that holds several frames carries the stamp of its
/// last packet, so the arrival is never early.
#[derive(Clone, Copy, Debug)]
struct Arrival {
    landed: Instant,
    read: Instant,
}

/// Asks the kernel to stamp each received packet (software receive timestamps).
fn stamp_arrivals(s: &TcpStream) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt::ReceiveTimestampns};
    setsockopt(s, ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// One `recvmsg` on `fd` with `flags`: the bytes read, and the kernel's receive stamp of the last
/// packet read, as a point on the monotonic clock (None without a stamp).
fn recv_stamped(
    fd: std::os::fd::RawFd,
    buf: &mut [u8],
    flags: nix::sys::socket::MsgFlags,
) -> io::Result<(usize, Option<Instant>)> {
    use nix::sys::socket::{ControlMessageOwned, recvmsg};
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut control = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let msg = recvmsg::<()>(fd, &mut iov, Some(&mut control), flags)?;
    let mut stamp = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmTimestampns(t) = c {
            stamp =
                Some(std::time::UNIX_EPOCH + Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32));
        }
    }
    // The stamp is wall-clock time: turn its age into a point on the monotonic clock.
    let (wall, mono) = (std::time::SystemTime::now(), Instant::now());
    let landed = stamp.map(|t| mono - wall.duration_since(t).unwrap_or_default());
    Ok((msg.bytes, landed))
}

/// Reads like `read`, with the kernel's receive stamp of the last packet read (as an `Instant`).
async fn read_stamped(s: &TcpStream, buf: &mut [u8]) -> io::Result<(usize, Option<Instant>)> {
    use std::os::fd::AsRawFd;
    loop {
        s.readable().await?;
        let r = s.try_io(tokio::io::Interest::READABLE, || {
            recv_stamped(s.as_raw_fd(), buf, nix::sys::socket::MsgFlags::empty())
        });
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

/// Opens a stream: the socket, past the response's head, and what came after the head.
async fn stream_handshake(addr: SocketAddr, cookie: &str) -> io::Result<(TcpStream, Vec<u8>)> {
    let mut s = connect(addr).await?;
    s.write_all(
        format!(
            "GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let end = loop {
        if let Some(e) = head_end(&buf) {
            break e;
        }
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    if !buf.starts_with(b"HTTP/1.0 200") && !buf.starts_with(b"HTTP/1.1 200") {
        return Err(io::Error::other(
            String::from_utf8_lossy(&buf[..end]).into_owned(),
        ));
    }
    buf.drain(..end);
    stamp_arrivals(&s)?;
    Ok((s, buf))
}

/// Reports every `zq{k}qz` token in `buf` not seen before, then keeps only a tail of `buf` (a
/// token may be split across reads).
fn scan_tokens(
    buf: &mut Vec<u8>,
    seen: &mut std::collections::HashSet<usize>,
    mut found: impl FnMut(usize),
) {
    let mut i = 0;
    while let Some(p) = buf[i..].windows(2).position(|w| w == b"zq") {
        let start = i + p + 2;
        let digits = buf[start..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits > 0 && buf[start + digits..].starts_with(b"qz") {
            let k: usize = std::str::from_utf8(&buf[start..start + digits])
                .unwrap()
                .parse()
                .unwrap();
            if seen.insert(k) {
                found(k);
            }
        }
        i = start;
    }
    let keep = buf.len().min(32);
    buf.drain(..buf.len() - keep);
}

/// Opens a stream; every `zq{k}qz` token seen the first time is reported with its time.
async fn open_stream(
    addr: SocketAddr,
    cookie: &str,
    report: Option<(usize, Seen)>,
) -> io::Result<tokio::task::JoinHandle<()>> {
    let (s, mut buf) = stream_handshake(addr, cookie).await?;
    Ok(tokio::spawn(async move {
        let mut seen = std::collections::HashSet::new();
        let mut tmp = vec![0u8; 8192];
        let mut landed = Instant::now();
        loop {
            if let Some((who, tx)) = &report {
                let read = Instant::now();
                let now = Arrival {
                    landed: landed.min(read),
                    read,
                };
                scan_tokens(&mut buf, &mut seen, |k| {
                    let _ = tx.send((*who, k, now));
                });
            } else {
                buf.clear();
            }
            match read_stamped(&s, &mut tmp).await {
                Ok((0, _)) | Err(_) => return,
                Ok((n, stamp)) => {
                    buf.extend_from_slice(&tmp[..n]);
                    landed = stamp.unwrap_or_else(Instant::now);
                }
            }
        }
    }))
}

/// When the scheduled readers read: half a period after each send of the fan-out under way.
#[derive(Clone, Copy)]
struct Cadence {
    t0: Instant,
    period: Duration,
}

impl Cadence {
    /// The first reading time after `now`: `t0 + (n + ½) × period`.
    fn next(&self, now: Instant) -> Instant {
        let since = now.saturating_duration_since(self.t0).as_secs_f64();
        let p = self.period.as_secs_f64();
        let n = (since / p - 0.5).floor().max(-1.0) + 1.0;
        self.t0 + Duration::from_secs_f64((n + 0.5) * p)
    }
}

/// The fan-out's readers, on one thread that reads every stream at times set by the sender
/// (`Cadence`): between posts, not as bytes arrive. Each arrival is still timed by the kernel's
/// receive stamp, so reading later changes no figure; what it removes is this process waking
/// 200 times per post and reading on the server's two cores while the server is still writing
/// to the other streams. 200 members of a real group are on 200 other machines.
struct ScheduledReaders {
    cadence: Arc<std::sync::Mutex<Cadence>>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl ScheduledReaders {
    fn start(streams: Vec<(TcpStream, Vec<u8>)>, tx: Seen) -> io::Result<ScheduledReaders> {
        let mut socks = Vec::new();
        for (i, (s, buf)) in streams.into_iter().enumerate() {
            // Out of tokio's reactor: nothing wakes this process when bytes arrive.
            socks.push((i, s.into_std()?, buf, std::collections::HashSet::new()));
        }
        let cadence = Arc::new(std::sync::Mutex::new(Cadence {
            t0: Instant::now(),
            period: Duration::from_millis(20),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, st) = (cadence.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            use nix::sys::socket::MsgFlags;
            use std::os::fd::AsRawFd;
            let mut tmp = vec![0u8; 65536];
            while !st.load(Ordering::Relaxed) {
                let at = c.lock().unwrap().next(Instant::now());
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                for (who, s, buf, seen) in socks.iter_mut() {
                    loop {
                        let (n, stamp) =
                            match recv_stamped(s.as_raw_fd(), &mut tmp, MsgFlags::MSG_DONTWAIT) {
                                Ok((n, stamp)) if n > 0 => (n, stamp),
                                _ => break,
                            };
                        let read = Instant::now();
                        let landed = stamp.unwrap_or(read);
                        buf.extend_from_slice(&tmp[..n]);
                        let now = Arrival { landed, read };
                        scan_tokens(buf, seen, |k| {
                            let _ = tx.send((*who, k, now));
                        });
                    }
                }
            }
        });
        Ok(ScheduledReaders {
            cadence,
            stop,
            thread,
        })
    }

    fn follow(&self, t0: Instant, rate: f64) {
        *self.cadence.lock().unwrap() = Cadence {
            t0,
            period: Duration::from_secs_f64(1.0 / rate),
        };
    }

    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
    }
}

/// Whether the fan-out's streams are read between posts at `rate` posts a second (else as
/// frames come). Between posts where the server is done with a post well before the next: at
/// 20 msg/s a post takes ~2.5 ms of the 50 between two. At 200 msg/s (5 ms apart) no moment is
/// quiet, and 200 reads in one burst land in the middle of the next post's work; reading as
/// frames come spreads them instead (docs/performance.md, sixteenth session).
/// `PARLEY_BENCH_READERS=between` or `=eager` reads every fan-out one way.
fn between_posts(rate: f64) -> bool {
    match std::env::var("PARLEY_BENCH_READERS").as_deref() {
        Ok("between") => true,
        Ok("eager") => false,
        _ => rate <= 50.0,
    }
}

/// The fan-out's 200 streams and how they are read.
enum Readers {
    /// A task per stream, reading as frames come.
    Eager(Vec<tokio::task::JoinHandle<()>>),
    /// One thread, reading between posts.
    Between(ScheduledReaders),
}

impl Readers {
    async fn open(addr: SocketAddr, cookies: &[String], tx: &Seen, between: bool) -> Readers {
        if between {
            let mut raw = Vec::new();
            for c in cookies {
                raw.push(stream_handshake(addr, c).await.expect("stream"));
            }
            Readers::Between(ScheduledReaders::start(raw, tx.clone()).expect("readers"))
        } else {
            let mut tasks = Vec::new();
            for (i, c) in cookies.iter().enumerate() {
                tasks.push(
                    open_stream(addr, c, Some((i, tx.clone())))
                        .await
                        .expect("stream"),
                );
            }
            Readers::Eager(tasks)
        }
    }

    fn between(&self) -> bool {
        matches!(self, Readers::Between(_))
    }

    fn scheduled(&self) -> Option<&ScheduledReaders> {
        match self {
            Readers::Between(r) => Some(r),
            Readers::Eager(_) => None,
        }
    }

    /// Says how the streams were read (and, read as frames come, when this process read them).
    fn describe(&self, rep: &mut Report, read: &FanFigures) {
        match self {
            Readers::Between(_) => rep.add("  streams read", "between posts".into(), "", None),
            Readers::Eager(_) => {
                rep.add("  streams read", "as frames come".into(), "", None);
                rep.add(
                    "  the same, read by this load generator",
                    read.show(),
                    "",
                    None,
                );
            }
        }
    }

    /// Closes the streams.
    fn close(self) {
        match self {
            Readers::Between(r) => r.finish(),
            Readers::Eager(tasks) => {
                for t in tasks {
                    t.abort();
                }
            }
        }
    }
}

/// How late this machine wakes a thread that sleeps 0.5 ms at a time: the floor under every
/// latency figure here. A virtual machine's host can hold a vCPU for milliseconds, and no server
/// delivers faster than the machine wakes it up.
struct WakeMeter {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Duration>>,
}

impl WakeMeter {
    fn start() -> WakeMeter {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let nap = Duration::from_micros(500);
            let mut late = Vec::new();
            while !s.load(Ordering::Relaxed) {
                let t = Instant::now();
                std::thread::sleep(nap);
                late.push(t.elapsed().saturating_sub(nap));
            }
            late
        });
        WakeMeter { stop, thread }
    }

    /// "p99 / p99.9 / max late, and how many wake-ups came more than 2 ms late per second".
    fn finish(self, secs: f64) -> String {
        self.stop.store(true, Ordering::Relaxed);
        let mut late = self.thread.join().unwrap_or_default();
        let over = late
            .iter()
            .filter(|l| **l > Duration::from_millis(2))
            .count();
        format!(
            "{:.2} / {:.2} / {:.1} ms late; {:.1}/s over 2 ms",
            ms(pct(&mut late, 0.99)),
            ms(pct(&mut late, 0.999)),
            ms(late.iter().max().copied().unwrap_or_default()),
            over as f64 / secs
        )
    }
}

/// How long this machine's disk takes to make an 8 KiB write durable (`fdatasync`, as SQLite's
/// WAL commit and PostgreSQL's WAL flush do), `n` times at `rate` a second (`None`: back to back).
/// Every message is durable before anyone is answered or sees it, so this is a floor under the
/// send and fan-out latencies. Sorted.
fn disk_syncs(n: usize, rate: Option<f64>) -> Vec<Duration> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = tempfile::tempfile().expect("temporary file");
    let block = [7u8; 8192];
    // Written and synced in full first, so the timed syncs overwrite and never grow the file.
    for _ in 0..64 {
        f.write_all(&block).expect("write");
    }
    f.sync_all().expect("sync");
    let t0 = Instant::now();
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        if let Some(rate) = rate {
            let at = t0 + Duration::from_secs_f64(i as f64 / rate);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
        }
        f.seek(SeekFrom::Start((i % 64) as u64 * 8192))
            .expect("seek");
        f.write_all(&block).expect("write");
        let t = Instant::now();
        f.sync_data().expect("fdatasync");
        v.push(t.elapsed());
    }
    v.sort();
    v
}

/// How long the same small piece of work takes here when it runs `rate` times a second: a
/// pseudo-random walk of 20,000 steps over 2 MiB (cache- and TLB-bound, as a request touching a
/// server's state is), `n` times. Sorted. On a shared virtual machine other tenants evict the
/// caches between two runs far apart, so work 50 ms apart (the 20 msg/s fan-out) can take longer
/// than the same work 5 ms apart (200 msg/s), whatever the program does.
fn cold_work(n: usize, rate: f64) -> Vec<Duration> {
    let mut buf = vec![1u64; 1 << 18];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let t0 = Instant::now();
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let at = t0 + Duration::from_secs_f64(i as f64 / rate);
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let t = Instant::now();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let j = (x % buf.len() as u64) as usize;
            buf[j] = buf[j].wrapping_add(x);
        }
        v.push(t.elapsed());
    }
    std::hint::black_box(&buf);
    v.sort();
    v
}

// ------------------------------------------------------------------ figures

fn pct(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[(((v.len() - 1) as f64) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Line {
    what: String,
    value: String,
    target: String,
    met: Option<bool>,
}

struct Report {
    backend: &'static str,
    lines: Vec<Line>,
}

impl Report {
    fn add(&mut self, what: impl Into<String>, value: String, target: &str, met: Option<bool>) {
        let l = Line {
            what: what.into(),
            value,
            target: target.to_owned(),
            met,
        };
        println!(
            "  [{}] {:<52} {:<34} {}{}",
            self.backend,
            l.what,
            l.value,
            l.target,
            match l.met {
                Some(true) => "  MET",
                Some(false) => "  NOT MET",
                None => "",
            }
        );
        self.lines.push(l);
    }
}

/// Closed-loop senders, each in its own direct conversation, for `secs` after a warm-up.
async fn send_load(
    addr: SocketAddr,
    senders: Vec<(String, i64)>,
    secs: f64,
    pid: u32,
) -> (f64, Duration, Duration, f64, usize) {
    let warm = Duration::from_millis(1000);
    let run = Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let cpu = Arc::new(std::sync::Mutex::new(None::<u64>));
    let mut handles = Vec::new();
    for (n, (cookie, conv)) in senders.into_iter().enumerate() {
        handles.push(tokio::spawn(async move {
            let mut h = Http::new(addr, &cookie);
            let mut lat = Vec::new();
            let mut errors = 0;
            let mut k = 0usize;
            loop {
                let now = Instant::now();
                if now - t0 > warm + run {
                    break;
                }
                k += 1;
                let sent = Instant::now();
                let r = h
                    .send(
                        "POST",
                        &format!("/conversations/{conv}/messages"),
                        &format!("body=load+{n}+{k}&client_id={}b{n}x{k}", client_time()),
                        true,
                    )
                    .await;
                let done = Instant::now();
                match r {
                    Ok(r) if r.status == 200 => {
                        if sent - t0 >= warm && done - t0 <= warm + run {
                            lat.push(done - sent);
                        }
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let cpu2 = cpu.clone();
    let watcher = tokio::spawn(async move {
        tokio::time::sleep(warm).await;
        *cpu2.lock().unwrap() = Some(cpu_ticks(pid));
        tokio::time::sleep(run).await;
        cpu_ticks(pid)
    });
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let cpu_end = watcher.await.unwrap();
    let cpu_start = cpu.lock().unwrap().unwrap_or(cpu_end);
    let count = all.len();
    let rate = count as f64 / run.as_secs_f64();
    let cpu_ms_per_msg = (cpu_end - cpu_start) as f64 * 10.0 / count.max(1) as f64;
    let p50 = pct(&mut all, 0.5);
    let p99 = pct(&mut all, 0.99);
    (rate, p50, p99, cpu_ms_per_msg, errors)
}

/// The senders together offer `rate` messages/s, evenly paced (open loop: each send is due at
/// its slot whether or not the previous answer came); latency counts from the slot, so a server
/// that falls behind is charged for the wait too. Returns p50, p99, the rate achieved, errors,
/// and the p99 of the load generator's own lateness (from a slot until its request went out),
/// which is part of the latency but not the server's doing.
async fn send_paced(
    addr: SocketAddr,
    senders: Vec<(String, i64)>,
    rate: f64,
    secs: f64,
) -> (Duration, Duration, f64, usize, Duration) {
    let warm = Duration::from_millis(1000);
    let run = Duration::from_secs_f64(secs);
    let n = senders.len() as f64;
    let every = Duration::from_secs_f64(n / rate);
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for (i, (cookie, conv)) in senders.into_iter().enumerate() {
        handles.push(tokio::spawn(async move {
            let mut h = Http::new(addr, &cookie);
            let mut lat = Vec::new();
            let mut late = Vec::new();
            let mut timeline = Vec::new();
            let mut done_in_window = 0usize;
            let mut errors = 0;
            // Spread the senders' slots over the interval.
            let mut due = t0 + every.mul_f64(i as f64 / n);
            let mut k = 0usize;
            while due - t0 < warm + run {
                // Waiting for the slot (not for the previous answer): how late the load
                // generator itself wakes is not the server's doing.
                let idle = Instant::now() < due;
                tokio::time::sleep_until(due.into()).await;
                let woke = Instant::now();
                k += 1;
                let r = h
                    .send(
                        "POST",
                        &format!("/conversations/{conv}/messages"),
                        &format!("body=paced+{i}+{k}&client_id={}p{i}x{k}", client_time()),
                        true,
                    )
                    .await;
                let done = Instant::now();
                match r {
                    Ok(r) if r.status == 200 => {
                        if due - t0 >= warm {
                            lat.push(done - due);
                            timeline.push((due - t0, done - due, i));
                            // From when it went out, or its slot if the previous answer held it.
                            late.push(done - if idle { woke } else { due });
                        }
                        if done - t0 >= warm && done - t0 <= warm + run {
                            done_in_window += 1;
                        }
                    }
                    _ => errors += 1,
                }
                due += every;
            }
            (lat, late, done_in_window, errors, timeline)
        }));
    }
    let mut all = Vec::new();
    let mut all_late = Vec::new();
    let mut timeline = Vec::new();
    let mut done = 0;
    let mut errors = 0;
    for h in handles {
        let (l, w, d, e, t) = h.await.unwrap();
        all.extend(l);
        all_late.extend(w);
        timeline.extend(t);
        done += d;
        errors += e;
    }
    // `PARLEY_BENCH_PACED_TIMELINE=FILE`: every measured send as "slot (s) latency (ms) sender",
    // in slot order, to see whether a tail is a few bursts (a stall) or spread evenly. With both
    // backends measured, the file holds the last paced run (PostgreSQL).
    if let Ok(path) = std::env::var("PARLEY_BENCH_PACED_TIMELINE") {
        timeline.sort();
        let text: String = timeline
            .iter()
            .map(|(t, l, i)| format!("{:.4} {:.3} {i}\n", t.as_secs_f64(), ms(*l)))
            .collect();
        std::fs::write(&path, text).unwrap();
    }
    // Answers that came within the measured window: below the offered rate when it falls behind.
    let achieved = done as f64 / run.as_secs_f64();
    (
        pct(&mut all, 0.5),
        pct(&mut all, 0.99),
        achieved,
        errors,
        pct(&mut all_late, 0.99),
    )
}

/// One poster sends `count` group messages at `rate`/s (open loop); returns the time from each
/// POST until the last of the members' streams had it, and how many never reached all of them.
/// Who posts to which group, where.
struct Posting<'a> {
    addr: SocketAddr,
    poster: &'a str,
    group: i64,
}

async fn fanout(
    to: &Posting<'_>,
    rate: f64,
    count: usize,
    base: usize,
    rx: &mut mpsc::UnboundedReceiver<(usize, usize, Arrival)>,
    readers: Option<&ScheduledReaders>,
) -> (FanFigures, FanFigures, usize) {
    let (addr, poster, group) = (to.addr, to.poster, to.group);
    let (conn_tx, conn_rx) = async_channel();
    for _ in 0..8 {
        conn_tx.send(Http::new(addr, poster)).await.unwrap();
    }
    let sent_at = Arc::new(std::sync::Mutex::new(vec![None::<Instant>; count]));
    let t0 = Instant::now() + Duration::from_millis(5);
    if let Some(r) = readers {
        r.follow(t0, rate);
    }
    let mut tasks = Vec::new();
    for k in 0..count {
        let at = t0 + Duration::from_secs_f64(k as f64 / rate);
        tokio::time::sleep_until(at.into()).await;
        let (conn_tx, conn_rx, sent_at) = (conn_tx.clone(), conn_rx.clone(), sent_at.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = conn_rx.recv().await.unwrap();
            let now = Instant::now();
            sent_at.lock().unwrap()[k] = Some(now);
            let r = h
                .send(
                    "POST",
                    &format!("/conversations/{group}/messages"),
                    &format!("body=zq{}qz", base + k),
                    true,
                )
                .await;
            assert!(
                matches!(r, Ok(ref r) if r.status == 200),
                "group post failed"
            );
            conn_tx.send(h).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Collect until everyone has everything, or 5 s after the last send: per message, how many
    // streams have it, and the first and last arrival by either clock.
    struct Got {
        n: usize,
        landed: (Instant, Instant),
        read: (Instant, Instant),
    }
    let mut got: HashMap<usize, Got> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    let complete =
        |got: &HashMap<usize, Got>| got.values().filter(|g| g.n >= GROUP).count() == count;
    while !complete(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some((_, k, at))) if k >= base && k < base + count => {
                let g = got.entry(k - base).or_insert(Got {
                    n: 0,
                    landed: (at.landed, at.landed),
                    read: (at.read, at.read),
                });
                g.n += 1;
                g.landed = (g.landed.0.min(at.landed), g.landed.1.max(at.landed));
                g.read = (g.read.0.min(at.read), g.read.1.max(at.read));
            }
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    let sent = sent_at.lock().unwrap().clone();
    let (mut landed, mut read) = (Spread::default(), Spread::default());
    let mut lost = 0;
    for (k, s) in sent.iter().enumerate() {
        match (got.get(&k), s) {
            (Some(g), Some(s)) if g.n >= GROUP => {
                landed.add(*s, g.landed);
                read.add(*s, g.read);
            }
            _ => lost += 1,
        }
    }
    (landed.figures(), read.figures(), lost)
}

/// Per message: from its send to its first and its last stream.
#[derive(Default)]
struct Spread {
    all: Vec<Duration>,
    first: Vec<Duration>,
    spread: Vec<Duration>,
}

/// p50 and p99 to the last stream, the worst, and p50 to the first stream.
#[derive(Clone, Copy, Default)]
struct FanFigures {
    p50: Duration,
    p99: Duration,
    max: Duration,
    first: Duration,
    /// p99 to the first stream, and of the time from the first stream to the last.
    first_p99: Duration,
    spread_p99: Duration,
}

impl Spread {
    fn add(&mut self, sent: Instant, (first, last): (Instant, Instant)) {
        self.all.push(last.saturating_duration_since(sent));
        self.first.push(first.saturating_duration_since(sent));
        self.spread.push(last.saturating_duration_since(first));
    }

    fn figures(mut self) -> FanFigures {
        FanFigures {
            p50: pct(&mut self.all, 0.5),
            p99: pct(&mut self.all, 0.99),
            max: self.all.iter().max().copied().unwrap_or_default(),
            first: pct(&mut self.first, 0.5),
            first_p99: pct(&mut self.first, 0.99),
            spread_p99: pct(&mut self.spread, 0.99),
        }
    }
}

impl FanFigures {
    fn show(&self) -> String {
        format!(
            "{:.2} / {:.2} ms ({:.1}); first stream p50 {:.2} ms",
            ms(self.p50),
            ms(self.p99),
            ms(self.max),
            ms(self.first)
        )
    }

    /// Where the tail is: before the first stream (the request and its commit) or after it.
    fn tail(&self) -> String {
        format!(
            "first stream p99 {:.2} ms; first to last stream p99 {:.2} ms",
            ms(self.first_p99),
            ms(self.spread_p99)
        )
    }
}

fn async_channel() -> (
    mpsc::Sender<Http>,
    Arc<tokio::sync::Mutex<mpsc::Receiver<Http>>>,
) {
    let (tx, rx) = mpsc::channel(16);
    (tx, Arc::new(tokio::sync::Mutex::new(rx)))
}

trait Recv {
    async fn recv(&self) -> Option<Http>;
}

impl Recv for Arc<tokio::sync::Mutex<mpsc::Receiver<Http>>> {
    async fn recv(&self) -> Option<Http> {
        self.lock().await.recv().await
    }
}

/// Direct messages from `a` to `b`, one after another; the time from POST to `b`'s stream.
async fn dm_latency(
    addr: SocketAddr,
    a: &str,
    conv: i64,
    base: usize,
    n: usize,
    rx: &mut mpsc::UnboundedReceiver<(usize, usize, Arrival)>,
) -> Vec<Duration> {
    let mut h = Http::new(addr, a);
    let mut out = Vec::new();
    for k in 0..n {
        let sent = Instant::now();
        let r = h
            .send(
                "POST",
                &format!("/conversations/{conv}/messages"),
                &format!("body=zq{}qz", base + k),
                true,
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        loop {
            match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
                Ok(Some((_, got, at))) if got == base + k => {
                    out.push(at.read - sent);
                    break;
                }
                Ok(Some(_)) => {}
                _ => panic!("direct message {k} did not arrive"),
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    out
}

/// Whether a phase runs (`PARLEY_BENCH_PHASES=start,send,fanout,streams`; default all).
fn phase(name: &str) -> bool {
    std::env::var("PARLEY_BENCH_PHASES")
        .map(|p| p.split(',').any(|x| x.trim() == name))
        .unwrap_or(true)
}

async fn run(backend: Backend) -> Report {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut dbs = 0;
    let mut rep = Report {
        backend: backend.name(),
        lines: Vec::new(),
    };
    println!("\n== {}", backend.name());

    // Cold start: from exec to the first answer, on a fresh database and on an existing one.
    let mut fresh = Vec::new();
    let mut again = Vec::new();
    for _ in 0..if phase("start") { 3 } else { 0 } {
        let url = backend.fresh(dir.path(), &mut dbs).await;
        let (s, t) = start(&url, dir.path()).await;
        fresh.push(t);
        s.stop();
        let (s, t) = start(&url, dir.path()).await;
        again.push(t);
        s.stop();
    }
    if phase("start") {
        let f = pct(&mut fresh, 0.5);
        let a = pct(&mut again, 0.5);
        rep.add(
            "cold start to first answer, fresh database (median of 3)",
            format!("{:.1} ms", ms(f)),
            "≤ 50 ms",
            Some(f <= Duration::from_millis(50)),
        );
        rep.add(
            "cold start to first answer, existing database",
            format!("{:.1} ms", ms(a)),
            "≤ 50 ms",
            Some(a <= Duration::from_millis(50)),
        );
    }

    let url = backend.fresh(dir.path(), &mut dbs).await;
    let (server, _) = start(&url, dir.path()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = rss_kib(server.pid());
    let idle_anon = anon_kib(server.pid());
    rep.add(
        "idle RSS after start",
        format!(
            "{:.1} MiB ({:.1} MiB anonymous, {:.1} MiB the binary's pages)",
            idle as f64 / 1024.0,
            idle_anon as f64 / 1024.0,
            idle.saturating_sub(idle_anon) as f64 / 1024.0
        ),
        "≤ 15 MiB",
        Some(idle <= 15 * 1024),
    );

    // Users, logins, friends, the group.
    let t = Instant::now();
    let ids = seed_users(&url).await;
    let addr = server.addr;
    let cookies: Vec<String> = each((0..USERS).collect(), 64, move |i| login(addr, i)).await;
    println!(
        "  (setup: {USERS} users seeded and logged in in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    let cookies = Arc::new(cookies);
    let c2 = cookies.clone();
    each((1..GROUP).collect(), 8, move |i| {
        let c = c2.clone();
        async move { befriend(addr, &c[0], &c[i], &uname(i)).await }
    })
    .await;
    let mut form = String::from("title=Everyone");
    for i in 1..GROUP {
        form.push_str(&format!("&member={}", uname(i)));
    }
    let r = Http::new(addr, &cookies[0])
        .send("POST", "/conversations", &form, false)
        .await
        .unwrap();
    assert_eq!(r.status, 303);
    let group: i64 = r
        .header("location")
        .and_then(|l| l.rsplit('/').next())
        .and_then(|s| s.parse().ok())
        .expect("group id");
    let c2 = cookies.clone();
    let ids2 = ids.clone();
    let pairs: Vec<(String, i64)> = each((0..PAIRS).collect(), 8, move |p| {
        let (c, ids) = (c2.clone(), ids2.clone());
        async move {
            let (a, b) = (GROUP + 2 * p, GROUP + 2 * p + 1);
            befriend(addr, &c[a], &c[b], &uname(b)).await;
            let r = Http::new(addr, &c[a])
                .send(
                    "GET",
                    &format!("/friends/{}/conversation", ids[b]),
                    "",
                    false,
                )
                .await
                .unwrap();
            let conv = r
                .header("location")
                .and_then(|l| l.rsplit('/').next())
                .and_then(|s| s.parse().ok())
                .expect("direct conversation");
            (c[a].clone(), conv)
        }
    })
    .await;
    println!("  (setup done in {:.1} s)", t.elapsed().as_secs_f64());

    // Sending.
    if phase("send") {
        let (rate, p50, p99, cpu, errors) =
            send_load(addr, pairs[..1].to_vec(), 3.0, server.pid()).await;
        rep.add(
            "1 sender: messages/s",
            format!("{rate:.0} ({cpu:.2} ms server CPU/msg)"),
            "",
            None,
        );
        rep.add(
            "1 sender: send latency p50 / p99",
            format!("{:.2} / {:.2} ms", ms(p50), ms(p99)),
            "",
            None,
        );
        assert_eq!(errors, 0, "failed sends");
        let (rate, p50, p99, cpu, errors) = send_load(addr, pairs.clone(), 5.0, server.pid()).await;
        let (want, name) = match backend {
            Backend::Sqlite => (5000.0, "≥ 5,000 msg/s (30× peer)"),
            Backend::Postgres(_) => (1820.0, "≥ 1,820 msg/s (10× peer)"),
        };
        rep.add(
            "50 senders: messages/s",
            format!("{rate:.0} ({cpu:.2} ms server CPU/msg)"),
            name,
            Some(rate >= want),
        );
        // Closed loop: 50 senders each waiting for its answer. By Little's law its mean latency
        // is 50 / throughput (10 ms at exactly 5,000 msg/s), so it measures queueing, not the
        // latency "at that load": that is the paced run below.
        rep.add(
            "50 senders: send latency p50 / p99 (closed loop)",
            format!("{:.2} / {:.2} ms", ms(p50), ms(p99)),
            "",
            None,
        );
        assert_eq!(errors, 0, "failed sends");
        let (p50, p99, achieved, errors, late) = send_paced(addr, pairs.clone(), want, 5.0).await;
        rep.add(
            format!("50 senders paced at {want:.0} msg/s: p50 / p99"),
            format!(
                "{:.2} / {:.2} ms ({achieved:.0} msg/s done)",
                ms(p50),
                ms(p99)
            ),
            "p99 ≤ 10 ms",
            Some(p99 <= Duration::from_millis(10) && achieved >= want * 0.98),
        );
        rep.add(
            "  p99 from when each went out (or its slot, if held by the previous answer)",
            format!("{:.2} ms", ms(late)),
            "",
            None,
        );
        assert_eq!(errors, 0, "failed paced sends");
    }

    // Fan-out to the group: every member's stream open.
    if phase("fanout") {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let posting = Posting {
            addr,
            poster: &cookies[1],
            group,
        };
        let readers = Readers::open(addr, &cookies[..GROUP], &tx, between_posts(20.0)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        // A warm-up, with a thread beside it that measures how late this machine wakes a
        // sleeper under this load; not during the measured run, whose figures it would disturb.
        let meter = WakeMeter::start();
        let t = Instant::now();
        let _ = fanout(&posting, 20.0, 40, 0, &mut rx, readers.scheduled()).await;
        let woke = meter.finish(t.elapsed().as_secs_f64());
        let (landed, read, lost) =
            fanout(&posting, 20.0, 200, 1000, &mut rx, readers.scheduled()).await;
        rep.add(
            "fan-out to 200 streams at 20 msg/s: p50 / p99 (max)",
            format!("{}, lost {lost}", landed.show()),
            "p99 ≤ 3 ms, none lost",
            Some(landed.p99 <= Duration::from_millis(3) && lost == 0),
        );
        rep.add("  where the tail is", landed.tail(), "", None);
        readers.describe(&mut rep, &read);
        rep.add(
            "  in a warm-up, a thread sleeping 0.5 ms woke p99 / p99.9 / max",
            woke,
            "",
            None,
        );
        let readers = if between_posts(200.0) == readers.between() {
            readers
        } else {
            // The same members' streams, read the other way: the old ones closed first, and a
            // warm-up so the server has dropped them before the measured run.
            readers.close();
            let r = Readers::open(addr, &cookies[..GROUP], &tx, between_posts(200.0)).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = fanout(&posting, 20.0, 20, 1500, &mut rx, r.scheduled()).await;
            r
        };
        let cpu_start = cpu_ticks(server.pid());
        let (landed, read, lost) =
            fanout(&posting, 200.0, 1000, 2000, &mut rx, readers.scheduled()).await;
        // Ticks of 10 ms over 1,000 messages: ms per message, and µs per stream.
        let cpu_ms = (cpu_ticks(server.pid()) - cpu_start) as f64 * 10.0 / 1000.0;
        rep.add(
            "fan-out to 200 streams at 200 msg/s: p50 / p99 (max)",
            format!("{}, lost {lost}", landed.show()),
            "p99 ≤ 20 ms, none lost",
            Some(landed.p99 <= Duration::from_millis(20) && lost == 0),
        );
        readers.describe(&mut rep, &read);
        rep.add(
            "  server CPU per message (per stream)",
            format!("{cpu_ms:.2} ms ({:.1} µs)", cpu_ms * 1000.0 / GROUP as f64),
            "",
            None,
        );
        readers.close();
        drop(rx);
    }
    if !phase("streams") {
        server.stop();
        backend.drop_all(dbs).await;
        return rep;
    }

    // Idle streams: memory and direct-message latency, on a freshly started server.
    let pid_url = server.url.clone();
    server.stop();
    let (server, _) = start(&pid_url, dir.path()).await;
    let addr = server.addr;
    let pid = server.pid();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (a, conv) = pairs[0].clone();
    let b = &cookies[GROUP + 1];
    let recv = open_stream(addr, b, Some((0, tx))).await.expect("stream");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let _ = dm_latency(addr, &a, conv, 100_000, 20, &mut rx).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let base_rss = rss_kib(pid);
    let base_anon = anon_kib(pid);
    let first = GROUP + 2 * PAIRS;
    let open = |from: usize, to: usize| {
        let c = cookies.clone();
        each((from..to).collect(), 64, move |i| {
            let c = c.clone();
            async move {
                let reader = open_stream(addr, &c[i], None).await.expect("idle stream");
                // Kept, not awaited: the reader runs until aborted.
                Some(reader)
            }
        })
    };
    let mut idle_streams = open(first, first + 1000).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_1k = rss_kib(pid);
    let per_1k = (rss_1k.saturating_sub(base_rss)) as f64 * 1024.0 / 1000.0;
    let anon_1k = (anon_kib(pid).saturating_sub(base_anon)) as f64 * 1024.0 / 1000.0;
    rep.add(
        "memory per idle stream, 1,000 streams",
        format!(
            "{:.2} KiB anonymous ({:.2} KiB of RSS)",
            anon_1k / 1024.0,
            per_1k / 1024.0
        ),
        "",
        None,
    );
    // Direct messages with 1,000 and with 10,000 idle streams, in three alternating rounds, so a
    // change in the machine's load does not pass for a difference between the two.
    let mut dm_1k = dm_latency(addr, &a, conv, 110_000, 100, &mut rx).await;
    let mut more = open(first + 1000, first + IDLE).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_10k = rss_kib(pid);
    let per_10k = (rss_10k.saturating_sub(base_rss)) as f64 * 1024.0 / IDLE as f64;
    let anon_10k = (anon_kib(pid).saturating_sub(base_anon)) as f64 * 1024.0 / IDLE as f64;
    rep.add(
        "memory per idle stream, 10,000 streams",
        format!(
            "{:.2} KiB anonymous ({:.2} KiB of RSS; RSS {:.1} MiB)",
            anon_10k / 1024.0,
            per_10k / 1024.0,
            rss_10k as f64 / 1024.0
        ),
        "≤ 4 KiB",
        Some(anon_10k <= 4096.0),
    );
    if let Ok(secs) = std::env::var("PARLEY_BENCH_HOLD") {
        println!("  (holding the server, pid {pid}, for {secs} s)");
        tokio::time::sleep(Duration::from_secs(secs.parse().unwrap_or(60))).await;
    }
    let mut dm_10k = dm_latency(addr, &a, conv, 120_000, 100, &mut rx).await;
    for round in 1..3 {
        for s in more.drain(..).flatten() {
            s.abort();
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        dm_1k.extend(dm_latency(addr, &a, conv, 110_000 + 1000 * round, 100, &mut rx).await);
        more = open(first + 1000, first + IDLE).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        dm_10k.extend(dm_latency(addr, &a, conv, 120_000 + 1000 * round, 100, &mut rx).await);
    }
    idle_streams.extend(more);
    let (m1, m10) = (pct(&mut dm_1k, 0.5), pct(&mut dm_10k, 0.5));
    rep.add(
        "direct message p50, 1,000 idle streams (3×100)",
        format!("{:.3} ms (p99 {:.3})", ms(m1), ms(pct(&mut dm_1k, 0.99))),
        "",
        None,
    );
    rep.add(
        "direct message p50, 10,000 idle streams (3×100)",
        format!(
            "{:.3} ms (p99 {:.3}), {:+.1} %",
            ms(m10),
            ms(pct(&mut dm_10k, 0.99)),
            (ms(m10) / ms(m1) - 1.0) * 100.0
        ),
        "within 10 % of 1,000",
        Some(ms(m10) <= ms(m1) * 1.10),
    );
    for s in idle_streams.into_iter().flatten() {
        s.abort();
    }
    recv.abort();
    server.stop();
    backend.drop_all(dbs).await;
    rep
}

#[tokio::main]
async fn main() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) if n < IDLE as u64 + 1000 => {
            eprintln!("warning: only {n} open files allowed; 10,000 streams need more")
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: raising the open-files limit failed: {e}"),
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "Parley load benchmark (release binary, {} cores, load average {})",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    // The machine alone, before any server runs.
    let mut machine = Report {
        backend: "machine",
        lines: Vec::new(),
    };
    let meter = WakeMeter::start();
    let t = Instant::now();
    let mut slow = disk_syncs(200, Some(20.0));
    let woke = meter.finish(t.elapsed().as_secs_f64());
    let mut fast = disk_syncs(5000, None);
    machine.add(
        "disk: 8 KiB write + fdatasync, 20 a second: p50 / p99 / max",
        format!(
            "{:.2} / {:.2} / {:.1} ms",
            ms(pct(&mut slow, 0.5)),
            ms(pct(&mut slow, 0.99)),
            ms(slow.last().copied().unwrap_or_default())
        ),
        "",
        None,
    );
    let over = fast
        .iter()
        .filter(|d| **d > Duration::from_millis(2))
        .count();
    machine.add(
        "disk: the same, back to back: p50 / p99 / p99.9 / max",
        format!(
            "{:.2} / {:.2} / {:.2} / {:.1} ms; {over} of 5,000 over 2 ms",
            ms(pct(&mut fast, 0.5)),
            ms(pct(&mut fast, 0.99)),
            ms(pct(&mut fast, 0.999)),
            ms(fast.last().copied().unwrap_or_default())
        ),
        "",
        None,
    );
    machine.add(
        "idle: a thread sleeping 0.5 ms woke p99 / p99.9 / max",
        woke,
        "",
        None,
    );
    let mut sparse = cold_work(100, 20.0);
    let mut dense = cold_work(500, 200.0);
    let (sparse50, dense50) = (pct(&mut sparse, 0.5), pct(&mut dense, 0.5));
    machine.add(
        "cpu: the same work 20 / 200 a second: p50 (p99)",
        format!(
            "{:.3} ({:.3}) / {:.3} ({:.3}) ms: {:.2}x",
            ms(sparse50),
            ms(pct(&mut sparse, 0.99)),
            ms(dense50),
            ms(pct(&mut dense, 0.99)),
            sparse50.as_secs_f64() / dense50.as_secs_f64().max(1e-9)
        ),
        "",
        None,
    );
    let mut reports = vec![machine];
    if std::env::var("PARLEY_BENCH_SQLITE").as_deref() != Ok("0") {
        reports.push(run(Backend::Sqlite).await);
    }
    match std::env::var("PARLEY_BENCH_DATABASE_URL") {
        Ok(url) if !url.is_empty() => reports.push(run(Backend::Postgres(url)).await),
        _ => println!("\n(PostgreSQL skipped: set PARLEY_BENCH_DATABASE_URL to measure it)"),
    }
    println!("\n== summary");
    for r in &reports {
        for l in &r.lines {
            println!(
                "{:<11} {:<52} {:<34} {:<24} {}",
                r.backend,
                l.what,
                l.value,
                l.target,
                match l.met {
                    Some(true) => "met",
                    Some(false) => "NOT met",
                    None => "",
                }
            );
        }
    }
}

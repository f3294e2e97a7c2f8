//! The test harness: the real app on a random port with a fresh database (a temp SQLite file, or a
//! fresh PostgreSQL database when `PARLEY_TEST_DATABASE_URL` is set), and cookie-keeping clients.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use parley::state::AppState;
use parley::{App, Config};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use scraper::{Html, Selector};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a live update may take to arrive.
pub const LIVE: Duration = Duration::from_secs(1);

/// A database for one test.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn fresh() -> TestDb {
        match std::env::var("PARLEY_TEST_DATABASE_URL")
            .ok()
            .filter(|s| !s.is_empty())
        {
            Some(server) => {
                use sqlx::Connection;
                let name = format!("parley_test_{}", rand_suffix());
                let mut c = sqlx::PgConnection::connect(&server)
                    .await
                    .expect("PARLEY_TEST_DATABASE_URL must point at a PostgreSQL server");
                drop_left_over_databases(&mut c).await;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut c)
                    .await
                    .expect("create test database");
                let base = server.rsplit_once('/').map(|(b, _)| b).unwrap_or(&server);
                mark_backend("postgres");
                TestDb {
                    url: format!("{base}/{name}"),
                    _dir: None,
                }
            }
            None => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("parley.db").display());
                mark_backend("sqlite");
                TestDb {
                    url,
                    _dir: Some(dir),
                }
            }
        }
    }
}

impl TestDb {
    /// A fresh SQLite database, whatever backend the suite runs on (backup, copy's source).
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("parley.db").display());
        TestDb {
            url,
            _dir: Some(dir),
        }
    }

    /// A connection to this SQLite database with the migrations up to `version` applied (to set
    /// up what an older release left behind, before the app upgrades it).
    pub async fn sqlite_migrated_to(&self, version: i64) -> sqlx::SqliteConnection {
        use sqlx::Connection;
        let opts = self
            .url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .unwrap()
            .create_if_missing(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        let mut old = sqlx::migrate!("migrations/sqlite");
        old.migrations = old
            .migrations
            .iter()
            .filter(|m| m.version <= version)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        old.run(&mut conn).await.unwrap();
        conn
    }

    /// A SQLite database at a file of an existing directory (a restored backup).
    pub fn sqlite_at(dir: tempfile::TempDir, file: &str) -> TestDb {
        let url = format!("sqlite://{}", dir.path().join(file).display());
        TestDb {
            url,
            _dir: Some(dir),
        }
    }

    /// A fresh, empty PostgreSQL database when `PARLEY_TEST_DATABASE_URL` is set.
    pub async fn postgres() -> Option<TestDb> {
        std::env::var("PARLEY_TEST_DATABASE_URL")
            .ok()
            .filter(|s| !s.is_empty())?;
        Some(TestDb::fresh().await)
    }
}

/// Drops, once per test process, the test databases of test processes that have ended (their
/// pid, the first part of the name, is gone): a test cannot drop its own database (the app may
/// still hold connections to it when the test returns), so without this every run on a
/// developer's cluster would leave its databases behind (about 9 MB each, ~190 per run).
async fn drop_left_over_databases(c: &mut sqlx::PgConnection) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        if !std::path::Path::new("/proc/self").exists() {
            return; // no way to tell which test processes still run
        }
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database WHERE datname LIKE 'parley\\_test\\_%'",
        )
        .fetch_all(&mut *c)
        .await
        .unwrap_or_default();
        for name in names {
            let pid = name
                .strip_prefix("parley_test_")
                .and_then(|rest| rest.split('_').next())
                .and_then(|p| p.parse::<u32>().ok());
            let Some(pid) = pid else { continue };
            if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                continue; // a test process that is still running (this one, or another)
            }
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *c)
                .await;
        }
    })
    .await;
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}_{}_{}",
        std::process::id(),
        t % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// CI checks these markers to prove each backend's run really happened.
pub fn mark_backend(name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("test-backend-{name}.marker")), b"ran\n");
}

/// The password `TestApp::user` registers `name` with (strong enough for the password rule).
pub fn password_for(name: &str) -> String {
    format!("quiet harbour {name} mornings")
}

/// A running app.
pub struct TestApp {
    #[allow(dead_code)]
    pub addr: SocketAddr,
    pub base: String,
    pub state: AppState,
    pub db: TestDb,
    /// The metrics listener, when the config asked for one.
    pub metrics: Option<SocketAddr>,
    stop: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Test defaults: generous rate limits, a short presence grace.
pub fn test_config(db_url: &str) -> Config {
    let mut c = Config::for_database(db_url);
    c.addr = "127.0.0.1:0".parse().unwrap();
    c.rate_limit_ip = 100_000;
    c.rate_limit_account = 100_000;
    c.login_backoff_after = 100_000;
    c.message_rate = 100_000;
    c.message_burst = 100_000;
    c.friend_requests_per_hour = 100_000;
    c.groups_per_hour = 100_000;
    c.max_streams_per_user = 1_000;
    // Every test client connects from 127.0.0.1: the per-IP cap has its own tests.
    c.max_connections_per_ip = 0;
    c.presence_grace_secs = 1;
    // PostgreSQL tests have no directory of their own: their files go to one per database.
    if db_url.starts_with("postgres") {
        let name = db_url.rsplit('/').next().unwrap_or("db");
        c.files_dir = Some(std::env::temp_dir().join(format!("{name}-files")));
    }
    c
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(f: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDb::fresh().await;
        Self::start(db, f).await
    }

    /// The app on a given database.
    pub async fn on(db: TestDb) -> TestApp {
        Self::start(db, |_| {}).await
    }

    pub async fn start(db: TestDb, f: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = test_config(&db.url);
        f(&mut config);
        // Listen first on a random port, then tell the app its public URL.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        config.addr = addr;
        if config.public_url.is_none() {
            config.public_url = Some(format!("http://{addr}"));
        }
        let app = App::build(config).await.expect("app builds");
        let addr = app.local_addr();
        let metrics = app.metrics_addr();
        let state = app.state();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(app.run_until(stop.clone()));
        TestApp {
            addr,
            base: format!("http://{addr}"),
            state,
            db,
            metrics,
            stop,
            handle: Some(handle),
        }
    }

    /// Another node on the same database (PostgreSQL only: nodes meet through LISTEN/NOTIFY).
    pub async fn second_node(&self) -> TestApp {
        self.second_node_with(|_| {}).await
    }

    /// Another node on the same database, its config changed by `f`.
    pub async fn second_node_with(&self, f: impl FnOnce(&mut Config)) -> TestApp {
        let db = TestDb {
            url: self.db.url.clone(),
            _dir: None,
        };
        Self::start(db, f).await
    }

    /// True when the suite runs on PostgreSQL.
    pub fn on_postgres(&self) -> bool {
        self.db.url.starts_with("postgres")
    }

    /// Stops the app (gracefully) and starts a new one on the same database.
    pub async fn restart(self) -> TestApp {
        self.restart_with(|_| {}).await
    }

    /// Like [`TestApp::restart`], with settings of its own.
    pub async fn restart_with(mut self, f: impl FnOnce(&mut Config)) -> TestApp {
        self.shutdown().await;
        let db = std::mem::replace(
            &mut self.db,
            TestDb {
                url: String::new(),
                _dir: None,
            },
        );
        Self::start(db, f).await
    }

    /// Graceful shutdown; panics if it takes more than 5 s.
    pub async fn shutdown(&mut self) {
        self.stop.cancel();
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(5), h)
                .await
                .expect("shutdown is prompt")
                .expect("app task")
                .expect("app ran cleanly");
        }
    }

    /// Logs an existing user in (password [`password_for`]) and returns their client.
    pub async fn login(&self, name: &str) -> Client {
        let c = self.client();
        let r = c
            .post(
                "/login",
                &[("username", name), ("password", &password_for(name))],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "login {name}: {}", r.body);
        let id = c.me().await;
        Client {
            id,
            name: name.to_owned(),
            ..c
        }
    }

    /// A fresh browser-like client (keeps cookies, does not follow redirects).
    pub fn client(&self) -> Client {
        Client::new(&self.base)
    }

    /// Registers `name` (password [`password_for`]) and returns their logged-in client.
    pub async fn user(&self, name: &str) -> Client {
        let c = self.client();
        let r = c
            .post(
                "/register",
                &[("username", name), ("password", &password_for(name))],
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "register {name}: {}",
            r.body
        );
        let id = c.me().await;
        Client {
            id,
            name: name.to_owned(),
            ..c
        }
    }

    /// Two users who are friends (with their direct conversation).
    pub async fn friends(&self, a: &str, b: &str) -> (Client, Client) {
        let a = self.user(a).await;
        let b = self.user(b).await;
        befriend(&a, &b).await;
        (a, b)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `a` asks, `b` accepts.
pub async fn befriend(a: &Client, b: &Client) {
    let r = a.post("/friends/requests", &[("username", &b.name)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id = b
        .incoming_request_from(&a.name)
        .await
        .expect("request arrived");
    let r = b.post(&format!("/friends/requests/{id}/accept"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

/// A response, read whole.
pub struct Resp {
    pub status: StatusCode,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn html(&self) -> Html {
        Html::parse_document(&self.body)
    }

    /// Elements matching a CSS selector.
    pub fn count(&self, selector: &str) -> usize {
        let sel = Selector::parse(selector).expect("selector");
        self.html().select(&sel).count()
    }

    /// The text of the first element matching `selector`.
    pub fn text(&self, selector: &str) -> Option<String> {
        let sel = Selector::parse(selector).expect("selector");
        self.html()
            .select(&sel)
            .next()
            .map(|e| e.text().collect::<String>())
    }

    /// An attribute of the first element matching `selector`.
    pub fn attr(&self, selector: &str, attr: &str) -> Option<String> {
        let sel = Selector::parse(selector).expect("selector");
        self.html()
            .select(&sel)
            .next()
            .and_then(|e| e.value().attr(attr).map(str::to_owned))
    }

    pub fn has(&self, selector: &str) -> bool {
        self.count(selector) > 0
    }
}

/// A browser-like client.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub id: i64,
    pub name: String,
}

impl Client {
    /// The same browser (same cookies), talking to another node (or a restarted server).
    pub fn on(&self, node: &TestApp) -> Client {
        Client {
            base: node.base.clone(),
            ..self.clone()
        }
    }

    pub fn new(base: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            id: 0,
            name: String::new(),
        }
    }

    async fn read(r: reqwest::Response) -> Resp {
        let status = r.status();
        let headers = r.headers().clone();
        let location = headers
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let body = r.text().await.unwrap_or_default();
        Resp {
            status,
            location,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        Self::read(
            self.http
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.post_with(path, form, &[]).await
    }

    /// A POST as live.js sends it (`fetch`).
    pub async fn post_fetch(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.post_with(path, form, &[("X-Parley-Fetch", "1")]).await
    }

    pub async fn post_with(
        &self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut rb = self.http.post(format!("{}{path}", self.base)).form(form);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        Self::read(rb.send().await.unwrap()).await
    }

    /// The log position a fresh page of mine reflects (`<body data-after>`), where its stream
    /// starts.
    pub async fn log_position(&self) -> i64 {
        self.get("/conversations")
            .await
            .attr("body", "data-after")
            .and_then(|s| s.parse().ok())
            .expect("data-after")
    }

    /// My user id, from `<body data-me>`.
    pub async fn me(&self) -> i64 {
        let r = self.get("/settings").await;
        r.attr("body", "data-me")
            .and_then(|s| s.parse().ok())
            .filter(|id| *id > 0)
            .expect("logged in")
    }

    /// The id of a pending request from `username` on my friends page.
    pub async fn incoming_request_from(&self, username: &str) -> Option<i64> {
        let r = self.get("/friends").await;
        let sel = Selector::parse("#incoming-requests li.request").unwrap();
        let html = r.html();
        html.select(&sel)
            .find(|e| {
                e.text()
                    .collect::<String>()
                    .contains(&format!("@{username}"))
            })
            .and_then(|e| e.value().id())
            .and_then(|id| id.strip_prefix("request-"))
            .and_then(|n| n.parse().ok())
    }

    /// The id of my direct conversation with `other`.
    pub async fn direct_with(&self, other: &Client) -> i64 {
        let r = self
            .get(&format!("/friends/{}/conversation", other.id))
            .await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "direct conversation exists"
        );
        r.location
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Creates a group with `members` (usernames); returns its id.
    pub async fn group(&self, title: &str, members: &[&Client]) -> i64 {
        let mut form = vec![("title", title.to_owned())];
        for m in members {
            form.push(("member", m.name.clone()));
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = self.post("/conversations", &form).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        r.location
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Posts a message (as a plain form); returns its id.
    pub async fn say(&self, conversation: i64, body: &str) -> i64 {
        let r = self
            .post_fetch(
                &format!("/conversations/{conversation}/messages"),
                &[("body", body)],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.attr("article.message", "id")
            .and_then(|id| id.strip_prefix("message-").map(str::to_owned))
            .and_then(|n| n.parse().ok())
            .expect("message fragment")
    }

    /// Opens my live stream.
    pub async fn stream(&self) -> Stream {
        self.stream_at("/events").await
    }

    pub async fn stream_at(&self, path: &str) -> Stream {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "stream opens");
        Stream::open(r).await
    }
}

/// One SSE frame.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub event: String,
    pub data: String,
    pub id: Option<i64>,
    pub comment: bool,
}

impl Frame {
    pub fn target(&self) -> Option<String> {
        attr_of_root(&self.data, "data-target")
    }
    /// The inner HTML of the frame's wrapper (the record's partial).
    pub fn content(&self) -> String {
        let frag = Html::parse_fragment(&self.data);
        frag.root_element()
            .children()
            .find_map(scraper::ElementRef::wrap)
            .map(|t| t.inner_html())
            .unwrap_or_default()
    }
}

/// A frame about the reader's own account (their header's admin link, their admin pages), which
/// their registration sends them. On PostgreSQL a stream opened soon after may still get it (the
/// Hub hears of commits a moment later, and a stream starts where the Hub is), so checks that a
/// user gets nothing of others' doings leave it out.
pub fn about_my_account(f: &Frame) -> bool {
    matches!(f.target().as_deref(), Some("admin-link" | "admin-page"))
}

fn attr_of_root(html: &str, name: &str) -> Option<String> {
    let frag = Html::parse_fragment(html);
    let root = frag
        .root_element()
        .children()
        .find_map(scraper::ElementRef::wrap)?;
    root.value().attr(name).map(str::to_owned)
}

type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>;

/// A live stream being read.
pub struct Stream {
    inner: ByteStream,
    buf: String,
    pending: std::collections::VecDeque<Frame>,
    snapshots: std::collections::VecDeque<Frame>,
    pub ended: bool,
}

impl Stream {
    /// Reads an opened `GET /events` response; returns once its hello comment arrived (which
    /// proves the stream is registered with the Hub).
    pub async fn open(r: reqwest::Response) -> Stream {
        let mut s = Stream {
            inner: Box::pin(r.bytes_stream()),
            buf: String::new(),
            pending: std::collections::VecDeque::new(),
            snapshots: std::collections::VecDeque::new(),
            ended: false,
        };
        s.fill(Duration::from_secs(5)).await;
        s
    }

    /// Reads until at least one frame (or comment) is parsed, or `wait` passes.
    async fn fill(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let mut f = Frame::default();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        let _ = c;
                        f.comment = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        f.event = v.trim_start().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                    } else if let Some(v) = line.strip_prefix("id:") {
                        f.id = v.trim().parse().ok();
                    }
                }
                f.data = data.join("\n");
                self.pending.push_back(f);
                return;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline || self.ended {
                return;
            }
            match tokio::time::timeout(deadline - now, self.inner.next()).await {
                Ok(Some(Ok(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(_) => {
                    self.ended = true;
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// The next frame (not a comment) within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(f) = self.pending.pop_front() {
                // The presence snapshot after each (re)connect is read with `snapshot()`.
                if f.target().as_deref() == Some("presence-all") {
                    self.snapshots.push_back(f);
                    continue;
                }
                if !f.comment || !f.event.is_empty() {
                    return Some(f);
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline || self.ended {
                return None;
            }
            self.fill(deadline - now).await;
        }
    }

    /// The user ids of the next presence snapshot (who is online; every other dot is off).
    pub async fn snapshot(&mut self, wait: Duration) -> Vec<i64> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(f) = self.snapshots.pop_front() {
                let frag = Html::parse_fragment(&f.data);
                let sel = Selector::parse("template").unwrap();
                let t = frag.select(&sel).next().expect("snapshot wrapper");
                let ids = t
                    .inner_html()
                    .split('"')
                    .nth(1)
                    .unwrap_or("")
                    .split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect();
                return ids;
            }
            let now = tokio::time::Instant::now();
            assert!(
                now < deadline && !self.ended,
                "expected a presence snapshot"
            );
            let _ = self
                .next(Duration::from_millis(50).min(deadline - now))
                .await;
        }
    }

    /// Waits for a frame matching `pred`, skipping others; panics after `wait`.
    pub async fn expect(
        &mut self,
        wait: Duration,
        what: &str,
        pred: impl Fn(&Frame) -> bool,
    ) -> Frame {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let now = tokio::time::Instant::now();
            let left = deadline.saturating_duration_since(now);
            match self.next(left).await {
                Some(f) if pred(&f) => return f,
                Some(_) => continue,
                None => panic!("expected {what} within {wait:?}"),
            }
        }
    }

    /// Waits for a frame acting on `target`.
    pub async fn expect_target(&mut self, action: &str, target: &str) -> Frame {
        let what = format!("{action} {target}");
        self.expect(LIVE, &what, |f| {
            f.event == action && f.target().as_deref() == Some(target)
        })
        .await
    }

    /// Whether the stream ends within `wait`, whatever frames still come before its end (on
    /// PostgreSQL one opened soon after a change may still get that change's frames).
    pub async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.ended && tokio::time::Instant::now() < deadline {
            self.next(Duration::from_millis(200)).await;
        }
        self.ended
    }

    /// Asserts that no frame matching `pred` arrives within `wait`.
    pub async fn assert_none(&mut self, wait: Duration, what: &str, pred: impl Fn(&Frame) -> bool) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return;
            }
            if let Some(f) = self.next(deadline - now).await {
                assert!(!pred(&f), "unexpected {what}: {f:?}");
            } else {
                return;
            }
        }
    }

    /// Collects every frame arriving within `wait`.
    pub async fn drain(&mut self, wait: Duration) -> Vec<Frame> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return out;
            }
            match self.next(deadline - now).await {
                Some(f) => out.push(f),
                None => return out,
            }
        }
    }
}

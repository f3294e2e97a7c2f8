//! The real binary, run as an operator runs it: `SIGTERM` while a client holds a half-sent
//! request, and what the log looks like in a file.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::*;

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

#[tokio::test]
async fn sigterm_with_a_half_sent_request_exits_0_within_the_deadline_keeping_every_write() {
    // Arrange: the binary with a 2 s shutdown deadline and timeouts far longer, so only the
    // deadline can end the half-sent requests.
    let db = TestDb::fresh().await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("parley.log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .env("DATABASE_URL", &db.url)
        .env("PARLEY_ADDR", format!("127.0.0.1:{port}"))
        .env("PARLEY_SHUTDOWN_TIMEOUT_SECS", "2")
        .env("PARLEY_HEADER_TIMEOUT_SECS", "300")
        .env("PARLEY_BODY_TIMEOUT_SECS", "300")
        .env("RUST_LOG", "info")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("the parley binary starts");
    let base = format!("http://127.0.0.1:{port}");
    let up = async {
        loop {
            if let Ok(r) = reqwest::get(format!("{base}/healthz")).await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), up)
        .await
        .expect("the server came up");
    // A committed write: an account.
    let ann = Client::new(&base);
    let r = ann
        .post(
            "/register",
            &[("username", "ann"), ("password", &password_for("ann"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // Two clients stall: one mid-body (a request in flight), one mid-headers.
    let mut half_body = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    half_body
        .write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername=an")
        .await
        .unwrap();
    let mut half_head = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    half_head.write_all(b"GET /conversations HT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act: SIGTERM.
    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());

    // Assert: exit 0 within the deadline (2 s) and some slack.
    let status = tokio::time::timeout(Duration::from_secs(2 + 5), child.wait())
        .await
        .expect("the process exited within the shutdown deadline")
        .unwrap();
    assert_eq!(status.code(), Some(0), "clean exit");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
    assert!(
        log.contains("still in flight at the shutdown deadline"),
        "the half-sent request held on until the deadline:\n{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes when the log is a file:\n{log}"
    );
    // The committed write survived: ann logs in on a fresh start.
    let app = TestApp::on(db).await;
    let r = app
        .client()
        .post(
            "/login",
            &[("username", "ann"), ("password", &password_for("ann"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
}

#[tokio::test]
async fn out_of_descriptors_new_connections_get_a_quick_503_and_the_server_recovers() {
    // Arrange: a hard limit of 160 descriptors and a connection budget far above it, so the
    // process really runs out (the budget normally prevents that).
    let db = TestDb::fresh().await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("parley.log");
    let mut child = tokio::process::Command::new("sh")
        .args([
            "-c",
            "ulimit -n 160 && exec \"$0\"",
            env!("CARGO_BIN_EXE_parley"),
        ])
        .env("DATABASE_URL", &db.url)
        .env("PARLEY_ADDR", format!("127.0.0.1:{port}"))
        .env("PARLEY_MAX_CONNECTIONS", "10000")
        .env("PARLEY_MAX_CONNECTIONS_PER_IP", "0")
        .env("PARLEY_HEADER_TIMEOUT_SECS", "2")
        .env("RUST_LOG", "info")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("sh and the parley binary start");
    let base = format!("http://127.0.0.1:{port}");
    let healthz = || async {
        reqwest::get(format!("{base}/healthz"))
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    };
    tokio::time::timeout(Duration::from_secs(30), async {
        while !healthz().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the server came up");
    // On PostgreSQL the server opens its background connections (LISTEN, the pool's first
    // ones) just after it starts answering; let it, so they do not compete with the shedding
    // for the last descriptors.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Act: 300 silent connections, far more than the descriptors left.
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }

    // Assert: the ones it cannot hold are answered 503 and closed at once, not left waiting.
    let results = futures_util::future::join_all(
        silent
            .iter_mut()
            .map(|s| crate::connections::read_until_closed(s, Duration::from_secs(1))),
    )
    .await;
    let shed = results
        .iter()
        .filter(|r| r.as_deref().is_some_and(|t| t.starts_with("HTTP/1.1 503")))
        .count();
    assert!(shed >= 100, "only {shed} of 300 were shed at once");
    // Once the silent ones time out, the server answers again, and it is still running.
    tokio::time::timeout(Duration::from_secs(10), async {
        while !healthz().await {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the server recovered");
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("out of file descriptors"), "{log}");
    drop(silent);
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

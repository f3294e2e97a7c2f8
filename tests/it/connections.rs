//! Attacks on connections against the real server: silent and trickling clients, bodies that
//! never complete, idle keep-alive, the per-IP cap, and live streams that must survive all that.
//! Timeouts are set to a second or two here; every test asserts behaviour, with generous slack.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::future::join_all;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::helpers::*;

/// A login form whose body stops halfway: the request is in flight until its body arrives.
const HALF_SENT_BODY: &[u8] = b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 50\r\n\r\nusername=an";

/// Slack on top of a configured timeout before a test calls it broken (a loaded CI machine).
const SLACK: Duration = Duration::from_secs(3);

/// A TCP connection to `addr` from the loopback address `from` (127.0.0.0/8 is all loopback, so
/// a test can play several clients).
pub async fn connect_from(from: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// Reads until the server closes the connection; returns what it sent, or `None` if it was still
/// open after `wait`.
pub async fn read_until_closed(s: &mut TcpStream, wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response whose body ends with `end` (keeps the connection open).
async fn read_response(s: &mut TcpStream, end: &str) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&out).ends_with(end) {
        let n = tokio::time::timeout(SLACK, s.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&out));
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A client bound to the loopback address `from`.
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + SLACK;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn healthz_answers_while_1500_silent_connections_are_open_and_all_are_closed_in_time() {
    let header_timeout = Duration::from_secs(5);
    let app = TestApp::spawn_with(|c| {
        c.header_timeout_secs = header_timeout.as_secs();
        c.max_connections_per_ip = 256;
        c.max_connections = 5_000;
    })
    .await;
    // Both ends live in this process: 3,000 descriptors (the app raised the soft limit).
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
    assert!(
        soft >= 4096,
        "this test needs an open-file limit of at least 4096 (soft {soft}, hard {hard})"
    );
    // Arrange: 1,500 connections that never send a byte, from six addresses (250 each, under
    // the per-IP cap, so the server really holds them all).
    let mut silent = Vec::new();
    for i in 0..1500 {
        silent.push(connect_from(&format!("127.0.0.{}", 2 + i % 6), app.addr).await);
    }
    wait_for("the server to hold 1,500 connections", || {
        app.state.connections.count() >= 1500
    })
    .await;
    // Act + Assert: the server still answers, from another address.
    let r = client_from("127.0.0.1")
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("healthz answers under the attack");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        app.state.connections.count() >= 1500,
        "the attack was still on when healthz answered"
    );
    // Every silent connection is closed by the server within the header timeout.
    let closed = join_all(
        silent
            .iter_mut()
            .map(|s| read_until_closed(s, header_timeout + SLACK)),
    )
    .await;
    let open = closed.iter().filter(|c| c.is_none()).count();
    assert_eq!(open, 0, "{open} silent connections were still open");
    wait_for("the registry to empty", || {
        app.state.connections.count() <= 1
    })
    .await;
}

#[tokio::test]
async fn trickled_headers_are_cut_off_at_the_header_timeout() {
    let app = TestApp::spawn_with(|c| c.header_timeout_secs = 1).await;
    let mut s = connect_from("127.0.0.1", app.addr).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (mut rd, mut wr) = s.into_split();
    // One header byte every 100 ms: forever, unless the server hangs up.
    let trickle = tokio::spawn(async move {
        loop {
            if wr.write_all(b"X").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(1) + SLACK, rd.read_to_end(&mut got))
        .await
        .is_ok();
    trickle.abort();
    assert!(closed, "the trickling connection was still open");
    assert!(
        !String::from_utf8_lossy(&got).contains("200 OK"),
        "a trickled request was served"
    );
}

#[tokio::test]
async fn a_body_that_never_completes_gets_408_and_the_connection_closes() {
    let app = TestApp::spawn_with(|c| c.body_timeout_secs = 1).await;
    let mut s = connect_from("127.0.0.1", app.addr).await;
    s.write_all(
        b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername=ann",
    )
    .await
    .unwrap();
    let got = read_until_closed(&mut s, Duration::from_secs(1) + SLACK)
        .await
        .expect("closed after the body timeout");
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
}

#[tokio::test]
async fn kept_alive_connections_serve_several_requests_then_close_when_idle() {
    let app = TestApp::spawn_with(|c| {
        c.idle_timeout_secs = 1;
        c.header_timeout_secs = 1;
    })
    .await;
    let mut s = connect_from("127.0.0.1", app.addr).await;
    for _ in 0..2 {
        // Slower than the header timeout between requests is fine: idle is not trickling.
        tokio::time::sleep(Duration::from_millis(600)).await;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let r = read_response(&mut s, "ok").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
    assert!(
        read_until_closed(&mut s, Duration::from_secs(1) + SLACK)
            .await
            .is_some(),
        "an idle kept-alive connection was still open"
    );
}

#[tokio::test]
async fn one_address_cannot_hold_more_than_its_share_and_others_are_unaffected() {
    let app = TestApp::spawn_with(|c| {
        c.max_connections_per_ip = 4;
        c.body_timeout_secs = 60;
    })
    .await;
    // Ten silent connections from one address: the idlest make room, four stay.
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(connect_from("127.0.0.3", app.addr).await);
    }
    wait_for("the oldest to be closed", || {
        app.state
            .connections
            .count_from("127.0.0.3".parse().unwrap())
            == 4
    })
    .await;
    let closed = join_all(silent[..6].iter_mut().map(|s| read_until_closed(s, SLACK))).await;
    assert!(closed.iter().all(Option::is_some), "the oldest six closed");
    // Four busy connections (bodies still arriving) are never closed to make room: a fifth
    // from that address is answered 503 at once.
    let mut busy = Vec::new();
    for _ in 0..4 {
        let mut s = connect_from("127.0.0.5", app.addr).await;
        s.write_all(HALF_SENT_BODY).await.unwrap();
        busy.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = connect_from("127.0.0.5", app.addr).await;
    let got = read_until_closed(&mut fifth, SLACK)
        .await
        .expect("shed at once");
    assert!(got.starts_with("HTTP/1.1 503"), "{got}");
    // Another address is served normally.
    let r = client_from("127.0.0.6")
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_live_stream_outlives_the_header_and_idle_timeouts() {
    let app = TestApp::spawn_with(|c| {
        c.header_timeout_secs = 1;
        c.idle_timeout_secs = 1;
    })
    .await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let conversation = ann.direct_with(&bob).await;
    let mut stream = bob.stream().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    ann.say(conversation, "still there?").await;
    stream
        .expect_target("append", &format!("messages-{conversation}"))
        .await;
}

#[tokio::test]
async fn shutdown_ends_within_its_deadline_despite_a_half_sent_request() {
    let mut app = TestApp::spawn_with(|c| {
        c.shutdown_timeout_secs = 1;
        c.body_timeout_secs = 60;
        c.header_timeout_secs = 60;
    })
    .await;
    let mut half_body = connect_from("127.0.0.1", app.addr).await;
    half_body.write_all(HALF_SENT_BODY).await.unwrap();
    let mut half_head = connect_from("127.0.0.1", app.addr).await;
    half_head.write_all(b"GET /healthz HTT").await.unwrap();
    wait_for("both connections", || app.state.connections.count() == 2).await;
    // `shutdown` fails the test unless the app stops within 5 s, cleanly.
    app.shutdown().await;
    assert!(read_until_closed(&mut half_body, SLACK).await.is_some());
    assert!(read_until_closed(&mut half_head, SLACK).await.is_some());
}

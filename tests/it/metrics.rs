//! The Prometheus endpoint: off by default, on its own address, and what it reports.

use std::sync::Arc;

use parley::db::events::StreamStart;
use parley::live::frame::{Action, Frame as HubFrame, Rendered, audience};
use parley::live::hub::{CONNECTION_QUEUE, Logged};
use reqwest::StatusCode;

use crate::helpers::*;

/// The value of the sample `name{labels…}` whose labels include every one of `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (n == name).then_some((rest, value))
        })
        .find(|(rest, _)| {
            labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|(_, v)| v.parse().ok())
}

/// Scrapes the metrics endpoint at `addr`.
pub async fn scrape(addr: std::net::SocketAddr) -> String {
    let r = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    r.text().await.unwrap()
}

#[tokio::test]
async fn metrics_are_off_by_default_and_never_on_the_public_address() {
    let app = TestApp::spawn().await;
    assert!(app.metrics.is_none());
    assert_eq!(
        app.client().get("/metrics").await.status,
        StatusCode::NOT_FOUND
    );
    let on = TestApp::spawn_with(|c| c.metrics_addr = Some("127.0.0.1:0".parse().unwrap())).await;
    assert!(on.metrics.is_some());
    assert_eq!(
        on.client().get("/metrics").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_scrape_reports_routes_streams_presence_events_queues_and_commits() {
    let app = TestApp::spawn_with(|c| c.metrics_addr = Some("127.0.0.1:0".parse().unwrap())).await;
    let addr = app.metrics.expect("metrics listener");
    let (ann, bob) = app.friends("ann", "bob").await;
    let direct = ann.direct_with(&bob).await;
    let mut s = bob.stream().await;
    ann.say(direct, "counted").await;
    s.expect_target("append", &format!("messages-{direct}"))
        .await;
    // A never-read queue of 10, on this app's Hub only.
    let hub = app.state.hub.clone();
    let slow = hub
        .register(9_000_001, 1, &StreamStart::default(), usize::MAX)
        .expect("registered");
    let event = |id: i64, to: i64| {
        Arc::new(Rendered::new(
            id,
            vec![HubFrame::new(
                Action::Append,
                "x".into(),
                audience([to]),
                "<p></p>",
            )],
        ))
    };
    let logged = |id: i64| Logged {
        id,
        event: None,
        conversation: None,
        explicit: &[9_000_001],
    };
    // Far past the log's real ids, so the app's own reader never meets them.
    let base = 1_i64 << 60;
    for i in 0..10 {
        hub.publish(logged(base + i + 1), || event(base + i + 1, 9_000_001));
    }

    let text = scrape(addr).await;
    // Latency by matched route, never by raw path.
    let posts = sample(
        &text,
        "parley_http_request_duration_seconds_count",
        &[
            ("method", "POST"),
            ("route", "/conversations/{id}/messages"),
            ("status", "200"),
        ],
    );
    assert!(posts.is_some_and(|n| n >= 1.0), "{text}");
    assert!(
        sample(
            &text,
            "parley_http_request_duration_seconds_bucket",
            &[("route", "/events"), ("le", "+Inf")],
        )
        .is_some(),
        "{text}"
    );
    assert!(!text.contains(&format!("/conversations/{direct}\"")));
    // Gauges describe this node's Hub: Bob's stream and the slow one.
    assert_eq!(
        sample(&text, "parley_streams_open", &[]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "parley_presence_online_users", &[("scope", "node")]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(sample(&text, "parley_hub_queue_depth_max", &[]), Some(10.0));
    assert!(sample(&text, "parley_hub_queued_deliveries", &[]).is_some_and(|n| n >= 10.0));
    // Counters (process-wide: other tests may add to them, never take away).
    assert!(sample(&text, "parley_events_written_total", &[]).is_some_and(|n| n >= 1.0));
    assert!(sample(&text, "parley_events_delivered_total", &[]).is_some_and(|n| n >= 1.0));
    assert!(
        sample(
            &text,
            "parley_db_commit_duration_seconds_count",
            &[(
                "backend",
                if app.on_postgres() {
                    "postgres"
                } else {
                    "sqlite"
                }
            )],
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    let drops = sample(&text, "parley_hub_queue_drops_total", &[]).unwrap_or(0.0);

    // Overflow the slow queue: it is dropped, and counted.
    for i in 0..CONNECTION_QUEUE as i64 {
        hub.publish(logged(base + 100 + i), || event(base + 100 + i, 9_000_001));
    }
    assert!(slow.is_closed() && slow.overflowed());
    let text = scrape(addr).await;
    assert!(
        sample(&text, "parley_hub_queue_drops_total", &[]).is_some_and(|n| n >= drops + 1.0),
        "{text}"
    );
    assert!(text.contains("# HELP parley_streams_open"));
}

//! Prometheus metrics: the `metrics` facade everywhere, `metrics-exporter-prometheus` for the text
//! format, served on a separate listener (`--metrics-addr`) only when configured.
//!
//! Counters and histograms are recorded where things happen (`metrics::counter!` and friends);
//! gauges that describe the Hub (open streams, presence, queue depths) are sampled at scrape time, so
//! the delivery path does no bookkeeping for them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

pub use crate::chat::EVENTS_WRITTEN;
pub use crate::db::DB_COMMIT;
use crate::live::hub::Hub;
pub use crate::live::hub::{EVENTS_DELIVERED, HUB_DROPS};

/// HTTP request latency by method, route (the matched path pattern) and status.
pub const HTTP_DURATION: &str = "parley_http_request_duration_seconds";
/// Streams (`GET /events`) open on this node.
pub const STREAMS_OPEN: &str = "parley_streams_open";
/// Users with a stream open, on this node (`scope="node"`) or anywhere this node knows of.
pub const PRESENCE_ONLINE: &str = "parley_presence_online_users";
/// Deliveries waiting in stream queues, summed over the streams of this node.
pub const HUB_QUEUED: &str = "parley_hub_queued_deliveries";
/// The fullest single stream queue (of `live::hub::CONNECTION_QUEUE`).
pub const HUB_QUEUE_MAX: &str = "parley_hub_queue_depth_max";

/// Latency buckets (seconds) for every `*_seconds` histogram: 0.5 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's recorder: one per process (the `metrics` facade has one global recorder), shared
/// by every app in it (tests run several).
static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the process-wide recorder (once; later calls return the same handle). Before this,
/// every `metrics::*!` call is a no-op. The caller runs [`upkeep`].
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let mut slot = HANDLE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(h) = slot.as_ref() {
        return Ok(h.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)?
        .install_recorder()?;
    describe();
    // Present from the first scrape, at zero, so a rate over them works from the start.
    for name in [EVENTS_WRITTEN, EVENTS_DELIVERED, HUB_DROPS] {
        metrics::counter!(name).increment(0);
    }
    *slot = Some(handle.clone());
    Ok(handle)
}

/// Drains recorded histogram samples every few seconds, so memory stays bounded between scrapes
/// (or without any). Ends at shutdown.
pub async fn upkeep(handle: PrometheusHandle, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tick.tick() => handle.run_upkeep(),
            _ = shutdown.cancelled() => return,
        }
    }
}

fn describe() {
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency (until the response head; a stream counts until it opens)"
    );
    describe_gauge!(STREAMS_OPEN, "Live streams open on this node");
    describe_gauge!(
        PRESENCE_ONLINE,
        "Users online: scope=node on this node, scope=cluster on any node this one hears from"
    );
    describe_counter!(EVENTS_WRITTEN, "Events appended to the log by this node");
    describe_counter!(
        EVENTS_DELIVERED,
        "Logged events queued to open streams (one per receiving stream)"
    );
    describe_counter!(
        HUB_DROPS,
        "Streams closed with reload because their queue was full"
    );
    describe_gauge!(
        HUB_QUEUED,
        "Deliveries waiting in this node's stream queues"
    );
    describe_gauge!(
        HUB_QUEUE_MAX,
        "Deliveries waiting in the fullest stream queue"
    );
    describe_histogram!(DB_COMMIT, Unit::Seconds, "Write transaction commit time");
    describe_counter!(
        crate::push::sender::PUSH_SENT,
        "Web Push requests sent, by result (ok, gone, failed)"
    );
    describe_counter!(
        crate::push::sender::PUSH_DROPPED,
        "Messages not pushed because the push queue was full"
    );
}

/// Middleware: request latency by method, matched route and status. Paths that match no route are
/// counted as `unmatched`, so random URLs cannot create new series.
pub async fn track_http(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        _ => "other",
    };
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    histogram!(HTTP_DURATION, "method" => method, "route" => route, "status" => status)
        .record(started.elapsed().as_secs_f64());
    res
}

#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    hub: Arc<Hub>,
}

/// The metrics listener's routes: `GET /metrics` in Prometheus text format.
pub fn router(handle: PrometheusHandle, hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Scrape { handle, hub })
}

async fn scrape(State(s): State<Scrape>) -> impl IntoResponse {
    let stats = s.hub.stats();
    gauge!(STREAMS_OPEN).set(stats.streams as f64);
    gauge!(PRESENCE_ONLINE, "scope" => "node").set(stats.online_here as f64);
    gauge!(PRESENCE_ONLINE, "scope" => "cluster").set(stats.online_anywhere as f64);
    gauge!(HUB_QUEUED).set(stats.queued as f64);
    gauge!(HUB_QUEUE_MAX).set(stats.max_queue as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.handle.render(),
    )
}

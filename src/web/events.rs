//! `GET /events`: the live stream of the logged-in user (SSE).
//!
//! The handler runs with every middleware (session, auth, security headers) like any route. It
//! reads what the stream needs at one log position (conversations, contacts), registers with the
//! Hub (so nothing delivered from then on is missed), replays the log after `Last-Event-ID` /
//! `?after=` up to where the Hub was, and answers the head: `HTTP/1.0 200`, `text/event-stream`,
//! a body that lasts until the connection closes. It hands the rest to the server loop
//! (`server::serve_connection`), which takes the bare socket back from the HTTP server and runs
//! [`run_stream`] on it: an idle stream then holds its ids, its mailbox and its socket, and no
//! HTTP buffers, session or user objects.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::auth::AuthSession;
use crate::db;
use crate::error::AppResult;
use crate::live::frame::{self, Action, Frame, audience};
use crate::live::hub::{Refused, Subscription};
use crate::live::{self as live_mod, wire};
use crate::server::{StreamGuard, Takeover};
use crate::state::AppState;
use crate::views::dom;
use crate::web::login::current_login;

/// The most events replayed on reconnect; further behind, the client reloads instead.
pub const MAX_REPLAY: i64 = 500;

/// How long a browser waits before reconnecting.
const RETRY: Duration = Duration::from_secs(2);

/// A comment at least this often keeps proxies from closing an idle stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/events", get(stream))
}

/// A stream ready to run on the bare connection.
pub struct StreamJob {
    sub: Option<Subscription>,
    /// Bytes to send first: hello, replay, presence snapshot (or `reload`).
    first: Vec<Bytes>,
    /// The session's end: the stream closes then, and the reconnect checks the session.
    expires_in: Duration,
    shutdown: CancellationToken,
    /// A client that takes no bytes for this long is dropped (`--write-timeout-secs`).
    write_timeout: Duration,
    /// This stream's row in `live_streams` (PostgreSQL): dropped when the stream ends.
    row: Option<StreamRow>,
}

#[derive(Deserialize)]
struct After {
    after: Option<String>,
    /// live.js asks why its stream was refused: 204, 401 or 429, and no stream.
    probe: Option<String>,
}

/// The presence snapshot: who among the people `me` sees is online now; every other dot is off.
fn snapshot(online: &[i64], me: i64) -> Bytes {
    let ids: Vec<String> = online.iter().map(i64::to_string).collect();
    let html = format!("<span data-online=\"{}\"></span>", ids.join(" "));
    Frame::new(
        Action::Presence,
        "presence-all".to_owned(),
        audience([me]),
        &html,
    )
    .encode(None)
}

fn reload_bytes(me: i64) -> Bytes {
    frame::reload(dom::containers::PAGE.to_owned(), audience([me])).encode(None)
}

// GET /events
async fn stream(
    State(state): State<AppState>,
    mut auth: AuthSession,
    takeover: Option<Extension<Takeover>>,
    headers: HeaderMap,
    Query(q): Query<After>,
) -> AppResult<Response> {
    // The same session check as every page: idle and absolute expiry.
    let Some(login) = current_login(&mut auth, &state).await? else {
        // 401 stops EventSource from reconnecting; live.js then reloads into the login page.
        return Ok((StatusCode::UNAUTHORIZED, "log in first").into_response());
    };
    drop(auth);
    let me = login.user.user.id;
    let login_id = login.login_id;
    // A stream lives no longer than its session: past the idle expiry or the absolute lifetime it
    // closes, and the reconnect finds out whether the session was extended meanwhile.
    let expires_in = login.remaining().max(Duration::from_secs(1));
    let cap = usize::try_from(state.config.max_streams_per_user).unwrap_or(usize::MAX);
    if q.probe.is_some() {
        let across_nodes = match &state.db {
            crate::db::Db::Postgres(pool) => {
                let since = db::now_ms() - STREAM_ALIVE_MS;
                db::limits::count_streams(pool, me, since)
                    .await
                    .unwrap_or(0) as usize
            }
            crate::db::Db::Sqlite { .. } => 0,
        };
        return Ok(if state.hub.stream_count(me).max(across_nodes) >= cap {
            too_many_streams(cap)
        } else {
            StatusCode::NO_CONTENT.into_response()
        });
    }
    let Some(Extension(takeover)) = takeover else {
        return Err(anyhow::anyhow!("GET /events needs Parley's server loop").into());
    };
    // The header wins when it holds a position; one that does not parse (no browser sends such
    // a thing) falls back to `?after=` rather than cancelling the replay.
    let position = |s: &str| s.trim().parse::<i64>().ok().filter(|n| *n >= 0);
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(position)
        .or_else(|| q.after.as_deref().and_then(position));

    // Register with a snapshot read at a known log position; the Hub brings it up to date.
    let mut tries = 0;
    let (start, sub) = loop {
        let start = {
            let mut rc = state.db.read().await?;
            db::events::stream_start(&mut rc, me).await?
        };
        match state.hub.register(me, login_id, &start, cap) {
            Ok(sub) => break (start, sub),
            Err(Refused::TooMany) => return Ok(too_many_streams(cap)),
            Err(Refused::Stale) if tries < 5 => tries += 1,
            Err(Refused::Stale) => {
                return Err(anyhow::anyhow!("the log moved on too fast").into());
            }
        }
    };
    // On PostgreSQL the cap holds across nodes: every stream is a row its node keeps fresh.
    let row = match &state.db {
        crate::db::Db::Postgres(pool) => {
            let (node, stream, now) = (state.hub.node as i64, rand::random::<i64>(), db::now_ms());
            match db::limits::open_stream(pool, node, stream, me, now, now - STREAM_ALIVE_MS).await
            {
                Ok(n) if usize::try_from(n).unwrap_or(usize::MAX) > cap => {
                    let _ = db::limits::close_stream(pool, node, stream).await;
                    return Ok(too_many_streams(cap));
                }
                Ok(_) => Some(StreamRow {
                    pool: pool.clone(),
                    node,
                    stream,
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "counting streams across nodes failed");
                    None
                }
            }
        }
        crate::db::Db::Sqlite { .. } => None,
    };
    // Everything up to here comes from the replay; the mailbox brings what follows.
    let through = start.position.max(sub.position);
    let mut first = vec![frame::comment("parley", Some(RETRY.as_millis() as u64))];
    let mut sub = Some(sub);
    if let Some(after) = after {
        let rows = if after < start.pruned_through || after > through {
            None
        } else {
            let mut rc = state.db.read().await?;
            let mut c = rc.conn();
            if db::events::replay_span_ok(&c, after, through, state.config.replay_span) {
                let rows =
                    db::events::for_user_after(&mut c, me, after, through, MAX_REPLAY + 1).await?;
                (rows.len() as i64 <= MAX_REPLAY).then_some(rows)
            } else {
                None
            }
        };
        match rows {
            Some(rows) => {
                for r in &rows {
                    let parsed = live_mod::parse(r);
                    let d = live_mod::render(&state.hub, r, parsed.as_ref()).for_user(me);
                    first.extend(d.chunks);
                }
            }
            None => {
                first.push(reload_bytes(me));
                sub = None;
            }
        }
    }
    if sub.is_some() {
        // Taken after the replay, so dots the replay drew with older presence are set right.
        first.push(snapshot(&state.hub.online_contacts(me), me));
    }
    if let Some(sub) = &sub {
        // Deliveries up to here were replayed (or came before the stream).
        sub.sent_through(after.unwrap_or(0).max(through));
    }
    let job = StreamJob {
        sub,
        first,
        expires_in,
        shutdown: state.shutdown.clone(),
        write_timeout: Duration::from_secs(state.config.write_timeout_secs.max(1)),
        row,
    };
    takeover.put(Box::new(move |io, guard| {
        tokio::spawn(run_stream(io, job, guard));
    }));
    // No length and no chunking: the body runs until the connection closes (HTTP/1.0 framing),
    // which lets the server loop hand the bare socket to `run_stream`.
    let mut res = Response::new(Body::from_stream(futures_util::stream::empty::<
        Result<Bytes, Infallible>,
    >()));
    *res.version_mut() = Version::HTTP_10;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

/// Writes with a time limit, giving up at shutdown. What the socket takes at once goes out
/// right away, with no timer (the common case: a frame fits in the socket's buffer); only the
/// rest waits, and that write's state lives on the heap, so an idle stream's task stays small.
async fn send(
    io: &TcpStream,
    chunks: &[Bytes],
    shutdown: &CancellationToken,
    write_timeout: Duration,
) -> bool {
    let pos = match wire::write_now(io, chunks) {
        Ok(pos) if wire::done(chunks, pos) => return true,
        Ok(pos) => pos,
        Err(_) => return false,
    };
    Box::pin(async {
        tokio::select! {
            r = tokio::time::timeout(write_timeout, wire::write_all(io, chunks, pos)) => matches!(r, Ok(Ok(()))),
            _ = shutdown.cancelled() => false,
        }
    })
    .await
}

/// Runs a stream on its bare connection until the session ends, the Hub closes it (logout,
/// overflow: then `reload`), the client goes away, or shutdown.
///
/// While it waits with nothing queued, the stream lends its socket to the Hub, which then writes
/// each delivery straight to it from the publishing thread: a fan-out to 200 streams is 200
/// writes, not 200 tasks woken, scheduled and polled. The task writes only what the socket did
/// not take at once (with the deadline), the keep-alive, and whatever was queued before the
/// socket was lent; it takes the socket back before each of its own writes, so writes never
/// interleave.
///
/// Not an `async fn`: that would copy its arguments into locals and keep both copies in the
/// future for its whole life. The block below uses `job` where it was captured; an idle stream
/// is this future and a few small allocations.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice"
)]
pub fn run_stream(
    io: TcpStream,
    mut job: StreamJob,
    guard: StreamGuard,
) -> impl Future<Output = ()> + Send {
    async move {
        // Moved in (and so counted in the connection budget) until the stream ends.
        let _counted = &guard;
        let io = std::sync::Arc::new(io);
        if !send(&io, &job.first, &job.shutdown, job.write_timeout).await {
            return;
        }
        drop(std::mem::take(&mut job.first));
        let Some(sub) = job.sub.as_ref() else {
            finish(io).await;
            return;
        };
        // One timer for both the keep-alive and the session's end (a timer is a few hundred
        // bytes, and idle streams are many).
        let end = tokio::time::Instant::now() + job.expires_in;
        let timer = tokio::time::sleep(KEEP_ALIVE.min(job.expires_in));
        tokio::pin!(timer);
        let mut probe = [0u8; 8];
        loop {
            // False when something is queued: `sub.next()` below has it at once.
            sub.lend(&io);
            tokio::select! {
                biased;
                _ = job.shutdown.cancelled() => break,
                d = sub.next() => {
                    sub.reclaim();
                    let Some(d) = d else {
                        if sub.overflowed() {
                            let _ = send(&io, &[reload_bytes(sub.user())], &job.shutdown, job.write_timeout).await;
                        }
                        break;
                    };
                    // Whatever else is queued goes out in the same write.
                    let mut chunks: Vec<Bytes> = d.chunks.clone();
                    while let Some(d) = sub.try_next() {
                        chunks.extend(d.chunks.iter().cloned());
                    }
                    if !send(&io, &chunks, &job.shutdown, job.write_timeout).await {
                        break;
                    }
                }
                _ = &mut timer => {
                    let idle = sub.reclaim();
                    let now = tokio::time::Instant::now();
                    if now >= end {
                        break;
                    }
                    if !idle {
                        // A delivery came meanwhile (maybe the rest of a frame): it goes first,
                        // and the timer, still due, brings the keep-alive after it.
                        continue;
                    }
                    if !send(&io, &[frame::comment("", None)], &job.shutdown, job.write_timeout).await {
                        break;
                    }
                    timer.as_mut().reset((now + KEEP_ALIVE).min(end));
                }
                // Through the socket's own read slot, not `readable()`: polling it puts this
                // task's waker where hyper left the connection task's, which would otherwise
                // keep that finished task's memory (kilobytes) alive as long as the stream.
                r = std::future::poll_fn(|cx| io.poll_read_ready(cx)) => match r {
                    // The client sends nothing more on a stream: end of input means it went away.
                    Ok(()) => match io.try_read(&mut probe) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => break,
                    },
                    Err(_) => break,
                },
            }
        }
        // Unregistered (and the socket taken back) before the socket closes; then the row in
        // `live_streams` goes. Named here on purpose: an async block captures only the fields it
        // uses, and a field it never named would be dropped when `run_stream` returns, not when
        // the stream ends.
        drop(job.sub.take());
        drop(job.row.take());
        finish(io).await;
    }
}

/// Closes the stream's socket: its write side first, once nothing else holds it.
async fn finish(io: std::sync::Arc<TcpStream>) {
    if let Ok(mut io) = std::sync::Arc::try_unwrap(io) {
        let _ = io.shutdown().await;
    }
}

/// 429 for one stream too many (live.js shows the text and retries later).
fn too_many_streams(cap: usize) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (header::RETRY_AFTER, HeaderValue::from_static("60")),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
        ],
        format!(
            "Live updates paused: your account has {cap} live windows open already. Close one (here or on another device); this one retries in a minute."
        ),
    )
        .into_response()
}

/// A stream on another node stops counting when that node has not refreshed its rows this long
/// (it died): the same window as presence.
const STREAM_ALIVE_MS: i64 = 95_000;

/// This stream's row in `live_streams` (PostgreSQL); deleted when the stream ends.
struct StreamRow {
    pool: sqlx::PgPool,
    node: i64,
    stream: i64,
}

impl Drop for StreamRow {
    fn drop(&mut self) {
        let (pool, node, stream) = (self.pool.clone(), self.node, self.stream);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = db::limits::close_stream(&pool, node, stream).await {
                    tracing::warn!(error = %e, "forgetting a closed stream failed");
                }
            });
        }
    }
}

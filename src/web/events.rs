//! `GET /events`: the live stream of the logged-in user (SSE).
//!
//! Order of work: register with the Hub first (so nothing committed from now on is missed), then
//! replay the log after `Last-Event-ID` / `?after=` (skipping later what the queue repeats), then
//! send the presence snapshot, then stream until the session ends, the Hub drops us, or shutdown.
//! Frames arrive already encoded (once, for every recipient); this loop only writes bytes.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde::Deserialize;

use crate::auth::{AuthSession, current_login};
use crate::db;
use crate::error::AppResult;
use crate::live::frame::{self, Action, Delivery, Frame, audience};
use crate::live::{self as live_mod};
use crate::state::AppState;
use crate::views::dom;

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

#[derive(Deserialize)]
struct After {
    after: Option<String>,
    /// live.js asks why its stream was refused: 204, 401 or 429, and no stream.
    probe: Option<String>,
}

enum Start {
    Replay(Vec<Delivery>),
    Reload,
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
    headers: HeaderMap,
    Query(q): Query<After>,
) -> AppResult<Response> {
    // The same session check as every page: idle and absolute expiry.
    let Some(login) = current_login(&mut auth, &state).await? else {
        // 401 stops EventSource from reconnecting; live.js then reloads into the login page.
        return Ok((StatusCode::UNAUTHORIZED, "log in first").into_response());
    };
    let me = login.user.user.id;
    let login_id = login.login_id;
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
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.after)
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|n| *n >= 0);

    let contacts = {
        let mut rc = state.db.read().await?;
        db::conversations::contact_ids(&mut rc.conn(), me).await?
    };
    let Some(mut sub) = state.hub.try_register(me, login_id, &contacts, cap) else {
        return Ok(too_many_streams(cap));
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

    let start = match after {
        None => Start::Replay(Vec::new()),
        Some(after) => {
            let mut rc = state.db.read().await?;
            let pruned = db::events::pruned_through(&mut rc.conn()).await?;
            let last = db::events::last_id(&mut rc.conn()).await?;
            if after < pruned || after > last {
                Start::Reload
            } else {
                let rows =
                    db::events::for_user_after(&mut rc.conn(), me, after, MAX_REPLAY + 1).await?;
                if rows.len() as i64 > MAX_REPLAY {
                    Start::Reload
                } else {
                    Start::Replay(
                        rows.iter()
                            .map(|r| {
                                let parsed = live_mod::parse(r);
                                live_mod::render(&state.hub, r, parsed.as_ref()).for_user(me)
                            })
                            .collect(),
                    )
                }
            }
        }
    };
    let shutdown = state.shutdown.clone();
    let hub = state.hub.clone();
    // A stream lives no longer than its session: past the idle expiry or the absolute lifetime it
    // closes, and the reconnect finds out whether the session was extended meanwhile.
    let expires_in = login.remaining().max(Duration::from_secs(1));

    let body = async_stream::stream! {
        // Dropped with the stream, however it ends: the row goes.
        let _row = row;
        yield Ok::<_, Infallible>(frame::comment("parley", Some(RETRY.as_millis() as u64)));
        let mut last_sent = after.unwrap_or(0);
        match start {
            Start::Reload => {
                yield Ok(reload_bytes(me));
                return;
            }
            Start::Replay(deliveries) => {
                for d in deliveries {
                    if let Some(id) = d.id { last_sent = last_sent.max(id); }
                    for chunk in d.chunks { yield Ok(chunk); }
                }
            }
        }
        // Taken after the replay, so dots the replay drew with older presence are set right.
        let online = hub.online_among(&hub.contacts_of(me));
        yield Ok(snapshot(&online, me));
        let deadline = tokio::time::sleep(expires_in);
        tokio::pin!(deadline);
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.tick().await;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = sub.kill.cancelled() => {
                    if sub.overflowed.load(Ordering::Relaxed) {
                        yield Ok(reload_bytes(me));
                    }
                    break;
                }
                _ = &mut deadline => break,
                d = sub.rx.recv() => match d {
                    Some(d) => {
                        if let Some(id) = d.id {
                            if id <= last_sent { continue; }
                            last_sent = id;
                        }
                        for chunk in &d.chunks { yield Ok(chunk.clone()); }
                    }
                    None => break,
                },
                _ = keep_alive.tick() => yield Ok(frame::comment("", None)),
            }
        }
    };
    let mut res = Response::new(Body::from_stream(body));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
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

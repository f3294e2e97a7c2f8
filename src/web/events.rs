//! `GET /events`: the live stream of the logged-in user (SSE).
//!
//! Order of work: register with the Hub first (so nothing committed from now on is missed), then
//! replay the log after `Last-Event-ID` / `?after=` (skipping later what the queue repeats), then
//! send the presence snapshot, then stream until the session ends, the Hub drops us, or shutdown.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::Stream;
use serde::Deserialize;

use crate::auth::{AuthSession, current_login};
use crate::db;
use crate::error::AppResult;
use crate::live::fragments::{presence_frame, reload_frame};
use crate::live::hub::{Delivery, Frame};
use crate::live::prepare;
use crate::state::AppState;

/// The most events replayed on reconnect; further behind, the client reloads instead.
pub const MAX_REPLAY: i64 = 500;

/// How long a browser waits before reconnecting.
const RETRY: Duration = Duration::from_secs(2);

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

/// One SSE event per frame; every frame of a logged event carries the event's id, so a tab that
/// receives frames second-hand (from the tab holding the stream) can tell what its page has.
fn sse_frames(frames: &[Frame], id: Option<i64>) -> Vec<SseEvent> {
    frames
        .iter()
        .map(|f| {
            // axum panics on a CR in data and on CR/LF in a name: neither may reach it.
            let e = SseEvent::default()
                .event(f.action.replace(['\r', '\n'], ""))
                .data(f.html.replace("\r\n", "\n").replace('\r', "\n"));
            match id {
                Some(id) => e.id(id.to_string()),
                None => e,
            }
        })
        .collect()
}

enum Start {
    Replay(Vec<std::sync::Arc<Delivery>>),
    Reload,
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
        return Ok(if state.hub.stream_count(me) >= cap {
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

    let friends = {
        let mut rc = state.db.read().await?;
        db::friends::friend_ids(&mut rc.conn(), me).await?
    };
    let Some(mut sub) = state.hub.try_register(me, login_id, &friends, cap) else {
        return Ok(too_many_streams(cap));
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
                            .map(|r| prepare(&state.hub, r, false).0)
                            .collect(),
                    )
                }
            }
        }
    };
    let online = state.hub.online_among(&friends);
    let shutdown = state.shutdown.clone();
    // A stream lives no longer than its session: past the idle expiry or the absolute lifetime it
    // closes, and the reconnect finds out whether the session was extended meanwhile.
    let expires_in = login.remaining().max(Duration::from_secs(1));

    let body = async_stream::stream! {
        let hello = SseEvent::default().retry(RETRY).comment("parley");
        yield Ok::<_, Infallible>(hello);
        let mut last_sent = after.unwrap_or(0);
        match start {
            Start::Reload => {
                for e in sse_frames(&[reload_frame()], None) { yield Ok(e); }
                return;
            }
            Start::Replay(deliveries) => {
                for d in deliveries {
                    if let Some(id) = d.id { last_sent = last_sent.max(id); }
                    for e in sse_frames(&d.frames, d.id) { yield Ok(e); }
                }
            }
        }
        for friend in online {
            for e in sse_frames(&[presence_frame(friend, true)], None) { yield Ok(e); }
        }
        let deadline = tokio::time::sleep(expires_in);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = sub.kill.cancelled() => {
                    if sub.overflowed.load(Ordering::Relaxed) {
                        for e in sse_frames(&[reload_frame()], None) { yield Ok(e); }
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
                        for e in sse_frames(&d.frames, d.id) { yield Ok(e); }
                    }
                    None => break,
                },
            }
        }
    };
    Ok(sse_response(body))
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

fn sse_response<S>(body: S) -> Response
where
    S: Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
{
    let mut res = Sse::new(body)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

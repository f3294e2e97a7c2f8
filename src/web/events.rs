//! `GET /events`: the live stream of the logged-in user (SSE).
//!
//! Order of work: register with the Hub first (so nothing committed from now on is missed), then
//! replay the log after `Last-Event-ID` / `?after=` (skipping later what the queue repeats), then
//! send the presence snapshot, then stream until the session ends, the Hub drops us, or shutdown.

use std::borrow::Cow;
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
            let e = SseEvent::default()
                .event(event_name(f.action))
                .data(one_line_break(&f.html));
            match id {
                Some(id) => e.id(id.to_string()),
                None => e,
            }
        })
        .collect()
}

/// An SSE event name without CR or LF (axum panics on them). Runs per recipient: copies only
/// when there is something to remove.
fn event_name(action: &str) -> Cow<'_, str> {
    if action.contains(['\r', '\n']) {
        Cow::Owned(action.replace(['\r', '\n'], ""))
    } else {
        Cow::Borrowed(action)
    }
}

/// Data with CRLF and CR folded to LF: axum splits data into lines at each CR and each LF, so a
/// CRLF would arrive as two line breaks. Copies only when there is a CR.
fn one_line_break(html: &str) -> Cow<'_, str> {
    if html.contains('\r') {
        Cow::Owned(html.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(html)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A dispatched browser event: type, data, last event id.
    type Dispatched = (String, String, Option<String>);

    /// What a browser makes of an event stream (WHATWG "interpreting an event stream"): the
    /// dispatched events, and the name of every field it read.
    fn interpret(stream: &str) -> (Vec<Dispatched>, Vec<String>) {
        let (mut events, mut fields) = (Vec::new(), Vec::new());
        let (mut data, mut kind, mut last_id) = (String::new(), String::new(), None);
        let text = stream.replace("\r\n", "\n").replace('\r', "\n");
        let mut lines: Vec<&str> = text.split('\n').collect();
        lines.pop(); // what follows the last line break is not a line (yet)
        for line in lines {
            if line.is_empty() {
                if !data.is_empty() {
                    data.pop();
                    let kind = if kind.is_empty() { "message" } else { &kind };
                    events.push((kind.to_owned(), data.clone(), last_id.clone()));
                }
                data.clear();
                kind.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            fields.push(field.to_owned());
            match field {
                "event" => kind = value.to_owned(),
                "data" => {
                    data.push_str(value);
                    data.push('\n');
                }
                "id" if !value.contains('\0') => last_id = Some(value.to_owned()),
                _ => {}
            }
        }
        (events, fields)
    }

    /// The bytes axum's `Sse` writes for `events`.
    fn encode(events: Vec<SseEvent>) -> String {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let stream = futures_util::stream::iter(events.into_iter().map(Ok::<_, Infallible>));
            let body = Sse::new(stream).into_response().into_body();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.expect("body");
            String::from_utf8(bytes.to_vec()).expect("utf-8")
        })
    }

    /// Text rich in what could break a frame: line breaks of every kind, colons, NULs.
    fn hostile_text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just('\r'),
                Just('\n'),
                Just(':'),
                Just(' '),
                Just('\0'),
                any::<char>()
            ],
            0..48,
        )
        .prop_map(String::from_iter)
    }

    proptest! {
        #[test]
        fn no_action_data_or_id_injects_a_field_or_another_frame(
            frames in prop::collection::vec((hostile_text(), hostile_text()), 1..4),
            id in proptest::option::of(any::<i64>()),
        ) {
            let frames: Vec<Frame> = frames
                .into_iter()
                .map(|(action, html)| Frame {
                    // Actions are `&'static str` in the Hub; a test may leak a few.
                    action: Box::leak(action.into_boxed_str()),
                    html: html.into(),
                })
                .collect();
            let (events, fields) = interpret(&encode(sse_frames(&frames, id)));
            // Only the fields we write; exactly one `event:` per frame.
            prop_assert!(fields.iter().all(|f| ["event", "data", "id"].contains(&f.as_str())), "{:?}", fields);
            prop_assert_eq!(fields.iter().filter(|f| *f == "event").count(), frames.len());
            // One browser event per frame, never more (a frame without data is not dispatched by
            // browsers; ours always carry HTML).
            let carrying: Vec<&Frame> = frames.iter().filter(|f| !f.html.is_empty()).collect();
            prop_assert_eq!(events.len(), carrying.len());
            for (frame, (kind, data, last_id)) in carrying.iter().zip(&events) {
                let name = frame.action.replace(['\r', '\n'], "");
                prop_assert_eq!(kind, if name.is_empty() { "message" } else { name.as_str() });
                // The HTML arrives whole, line breaks folded to LF.
                prop_assert_eq!(data, &frame.html.replace("\r\n", "\n").replace('\r', "\n"));
                prop_assert_eq!(last_id, &id.map(|i| i.to_string()));
            }
        }
    }

    #[test]
    fn the_interpreter_sees_an_injected_frame_where_there_is_one() {
        // The property's oracle: a raw stream with a forged field and frame is read as such.
        let (events, fields) =
            interpret("event: a\ndata: x\n\nid: 9\nevent: forged\ndata: y\r\n\r\n");
        assert_eq!(events.len(), 2);
        assert_eq!(events[1], ("forged".into(), "y".into(), Some("9".into())));
        assert_eq!(fields, ["event", "data", "id", "event", "data"]);
    }
}

//! `GET /events`: who may open it, delivery to every tab, resume, reload, shutdown.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use parley::db::events::StreamStart;
use parley::live::frame::{Action, Frame as HubFrame, Rendered, audience};
use parley::live::hub::{CONNECTION_QUEUE, Logged};
use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn the_stream_refuses_anonymous_users() {
    let app = TestApp::spawn().await;
    let r = app.client().get("/events").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_stream_is_sse_with_retry_and_no_buffering() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let r = ann
        .http
        .get(format!("{}/events", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    assert_eq!(r.headers()["x-accel-buffering"], "no");
    let mut body = r.bytes_stream();
    let first = tokio::time::timeout(LIVE, body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("retry:"));
}

#[tokio::test]
async fn an_event_reaches_every_tab_of_its_users_and_nobody_else() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let carl = app.user("carl").await;
    let mut ann1 = ann.stream().await;
    let mut ann2 = ann.stream().await;
    let mut bob1 = bob.stream().await;
    let mut carl1 = carl.stream().await;
    ann.post("/friends/requests", &[("username", "bob")]).await;
    for s in [&mut ann1, &mut ann2] {
        let f = s.expect_target("prepend", "outgoing-requests").await;
        assert!(f.data.contains("@bob"));
        // The requester never receives the recipient's frames (and the reverse).
        s.assert_none(Duration::from_millis(200), "bob's frames", |f| {
            f.target().as_deref() == Some("incoming-requests")
                || f.target().as_deref() == Some("badge-requests")
        })
        .await;
    }
    let f = bob1.expect_target("prepend", "incoming-requests").await;
    assert!(f.data.contains("@ann"));
    bob1.assert_none(Duration::from_millis(200), "ann's frames", |f| {
        f.target().as_deref() == Some("outgoing-requests")
    })
    .await;
    carl1
        .assert_none(Duration::from_millis(300), "anything", |f| {
            !about_my_account(f)
        })
        .await;
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_gets_what_it_missed_exactly_once_in_order() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let conversation = ann.direct_with(&bob).await;
    let mut s = bob.stream().await;
    ann.say(conversation, "one").await;
    let first = s
        .expect_target("append", &format!("messages-{conversation}"))
        .await;
    let seen = first.id.unwrap();
    drop(s);
    // Away: three more messages.
    for text in ["two", "three", "four"] {
        ann.say(conversation, text).await;
    }
    let r = bob
        .http
        .get(format!("{}/events", app.base))
        .header("Last-Event-ID", seen.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    drop(r);
    let mut s = bob.stream_at(&format!("/events?after={seen}")).await;
    let frames = s.drain(Duration::from_millis(500)).await;
    let messages: Vec<&str> = frames
        .iter()
        .filter(|f| {
            f.event == "append"
                && f.target().as_deref() == Some(&format!("messages-{conversation}"))
        })
        .map(|f| f.data.as_str())
        .collect();
    assert_eq!(messages.len(), 3, "{frames:?}");
    for (m, text) in messages.iter().zip(["two", "three", "four"]) {
        assert!(m.contains(text));
    }
    let ids: Vec<i64> = frames.iter().filter_map(|f| f.id).collect();
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "in order");
    assert!(ids.iter().all(|id| *id > seen));
    // Then live again, once.
    ann.say(conversation, "five").await;
    let f = s
        .expect_target("append", &format!("messages-{conversation}"))
        .await;
    assert!(f.data.contains("five"));
    s.assert_none(Duration::from_millis(300), "a duplicate", |f| {
        f.event == "append" && f.data.contains("five")
    })
    .await;
}

#[tokio::test]
async fn the_last_event_id_header_wins_and_resumes() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let conversation = ann.direct_with(&bob).await;
    let after = bob.log_position().await;
    ann.say(conversation, "while away").await;
    let r = bob
        .http
        .get(format!("{}/events", app.base))
        .header("Last-Event-ID", after.to_string())
        .send()
        .await
        .unwrap();
    assert!(read_until(r, "while away").await.contains("while away"));
}

/// Reads a stream until `needle` shows or `LIVE` passes; the text read.
async fn read_until(r: reqwest::Response, needle: &str) -> String {
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + LIVE;
    while !text.contains(needle) && tokio::time::Instant::now() < deadline {
        if let Ok(Some(Ok(b))) = tokio::time::timeout(Duration::from_millis(200), body.next()).await
        {
            text.push_str(&String::from_utf8_lossy(&b));
        }
    }
    text
}

#[tokio::test]
async fn a_valid_last_event_id_beats_after_and_an_invalid_one_falls_back_to_it() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let conversation = ann.direct_with(&bob).await;
    let after = bob.log_position().await;
    ann.say(conversation, "while away").await;
    let now = bob.log_position().await;
    assert!(now > after);
    let stream = |header: &str, query: i64| {
        bob.http
            .get(format!("{}/events?after={query}", app.base))
            .header("Last-Event-ID", header.to_owned())
            .send()
    };
    // The header's older position wins over the query's newer one: the message is replayed.
    let text = read_until(stream(&after.to_string(), now).await.unwrap(), "while away").await;
    assert!(text.contains("while away"), "{text}");
    // A header that is no position does not cancel the query's.
    for junk in ["garbage", "-5", ""] {
        let text = read_until(stream(junk, after).await.unwrap(), "while away").await;
        assert!(
            text.contains("while away"),
            "Last-Event-ID {junk:?}: {text}"
        );
    }
    // And a query that is no position either replays nothing (a fresh start, not an error).
    let r = bob
        .http
        .get(format!("{}/events?after=abc", app.base))
        .header("Last-Event-ID", "garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let until = tokio::time::Instant::now() + Duration::from_millis(500);
    while tokio::time::Instant::now() < until {
        if let Ok(Some(Ok(b))) = tokio::time::timeout(Duration::from_millis(100), body.next()).await
        {
            text.push_str(&String::from_utf8_lossy(&b));
        }
    }
    assert!(text.contains("retry:"), "{text}");
    assert!(!text.contains("while away"), "{text}");
}

#[tokio::test]
async fn a_too_old_or_unknown_position_gets_reload() {
    let app = TestApp::spawn().await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let conversation = ann.direct_with(&bob).await;
    ann.say(conversation, "old news").await;
    // Prune everything (as the retention task does for old rows).
    parley::app::prune(&app.state.db, i64::MAX).await.unwrap();
    let mut s = bob.stream_at("/events?after=1").await;
    let f = s.expect(LIVE, "reload", |f| f.event == "reload").await;
    assert!(f.id.is_none());
    let mut s = bob.stream_at("/events?after=999999").await;
    s.expect(LIVE, "reload", |f| f.event == "reload").await;
    // A current position is fine.
    let after = bob.log_position().await;
    let mut s = bob.stream_at(&format!("/events?after={after}")).await;
    s.assert_none(Duration::from_millis(300), "reload", |f| {
        f.event == "reload"
    })
    .await;
}

#[tokio::test]
async fn a_stream_far_behind_in_a_busy_log_reloads_on_sqlite_and_replays_on_postgresql() {
    // SQLite's replay reads every event in the range (no index by conversation): past
    // `replay_span` positions the page reloads instead. PostgreSQL finds the user's own events
    // by index, however long the range.
    let app = TestApp::spawn_with(|c| c.replay_span = 8).await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let conversation = ann.direct_with(&bob).await;
    let (carl, dana) = app.friends("carl", "dana").await;
    let theirs = carl.direct_with(&dana).await;
    let far = bob.log_position().await;
    ann.say(conversation, "for bob while away").await;
    for i in 0..10 {
        carl.say(theirs, &format!("not for bob {i}")).await;
    }
    let mut s = bob.stream_at(&format!("/events?after={far}")).await;
    let frames = s.drain(Duration::from_millis(500)).await;
    let reloaded = frames.iter().any(|f| f.event == "reload");
    let text: String = frames.iter().map(|f| f.data.as_str()).collect();
    assert!(!text.contains("not for bob"), "{frames:?}");
    if app.on_postgres() {
        assert!(!reloaded, "{frames:?}");
        assert!(text.contains("for bob while away"), "{frames:?}");
    } else {
        assert!(reloaded, "{frames:?}");
        assert!(!text.contains("for bob while away"), "{frames:?}");
    }

    // A short gap replays on both, amid others' events, and only bob's.
    let near = bob.log_position().await;
    carl.say(theirs, "not for bob either").await;
    ann.say(conversation, "soon after").await;
    let mut s = bob.stream_at(&format!("/events?after={near}")).await;
    let frames = s.drain(Duration::from_millis(500)).await;
    let text: String = frames.iter().map(|f| f.data.as_str()).collect();
    assert!(!frames.iter().any(|f| f.event == "reload"), "{frames:?}");
    assert!(text.contains("soon after"), "{frames:?}");
    assert!(!text.contains("not for bob"), "{frames:?}");
}

#[tokio::test]
async fn a_connection_whose_queue_is_full_is_closed_with_reload() {
    let app = TestApp::spawn().await;
    let hub = app.state.hub.clone();
    let sub = hub
        .register(42, 1, &StreamStart::default(), usize::MAX)
        .unwrap();
    let other = hub
        .register(43, 1, &StreamStart::default(), usize::MAX)
        .unwrap();
    let event = |id: i64, to: &[i64]| {
        Arc::new(Rendered::new(
            id,
            vec![HubFrame::new(
                Action::Append,
                "x".into(),
                audience(to.iter().copied()),
                "<p></p>",
            )],
        ))
    };
    let logged = |id: i64, to: &'static [i64]| Logged {
        id,
        event: None,
        conversation: None,
        explicit: to,
    };
    for i in 0..CONNECTION_QUEUE as i64 {
        hub.publish(logged(i + 1, &[42]), || event(i + 1, &[42]));
    }
    assert!(!sub.is_closed());
    let last = CONNECTION_QUEUE as i64 + 1;
    hub.publish(logged(last, &[42, 43]), || event(last, &[42, 43]));
    assert!(sub.is_closed(), "overflow closes the slow connection");
    assert!(sub.overflowed());
    assert!(!other.is_closed(), "others are not slowed or dropped");
}

/// Ids for made-up events, above any real one (PostgreSQL's are large): nothing is replayed.
const BIG_BASE: i64 = 1 << 50;

/// The body of made-up event `id`: 64 KiB, so a few dozen fill a socket's buffers.
fn big_body(id: i64) -> String {
    body_of(id, 64)
}

/// The body of made-up event `id`, of `kib` KiB.
fn body_of(id: i64, kib: usize) -> String {
    format!("<p>{id}:{}</p>", "x".repeat(kib * 1024))
}

/// Publishes made-up event `id` (one frame of [`big_body`]) to `user`'s streams.
fn publish_big(hub: &parley::live::hub::Hub, user: i64, id: i64) {
    publish_of(hub, user, id, 64);
}

/// Publishes made-up event `id` (one frame of [`body_of`] `kib`) to `user`'s streams.
fn publish_of(hub: &parley::live::hub::Hub, user: i64, id: i64, kib: usize) {
    let to = [user];
    hub.publish(
        Logged {
            id,
            event: None,
            conversation: None,
            explicit: &to,
        },
        || {
            Arc::new(Rendered::new(
                id,
                vec![HubFrame::new(
                    Action::Append,
                    "x".into(),
                    audience([user]),
                    &body_of(id, kib),
                )],
            ))
        },
    );
}

#[tokio::test]
async fn a_reader_that_pauses_gets_every_frame_once_and_in_order_when_it_reads_again() {
    // The Hub writes a delivery straight to an idle stream's socket; what the socket does not
    // take goes to the stream's task, and what comes meanwhile waits in its queue. Frames far
    // bigger in sum than the sockets' buffers (and fewer than the queue holds) take every path.
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let mut s = ann.stream().await;
    let hub = app.state.hub.clone();
    let base = BIG_BASE;
    let count = 200;
    for id in base + 1..=base + count {
        publish_big(&hub, ann.id, id);
    }
    assert!(
        hub.stats().queued > 0,
        "the socket filled up: the rest waits for the stream's task"
    );
    // The same event again (a replay overlapping the live tail) is not sent twice.
    publish_big(&hub, ann.id, base + count);
    for id in base + 1..=base + count {
        let f = s.next(LIVE).await.expect("every frame arrives");
        assert_eq!(f.id, Some(id), "in log order, none lost or repeated");
        assert!(f.data.contains(&big_body(id)), "frame {id} arrives whole");
    }
    // Caught up: the next one arrives too.
    publish_big(&hub, ann.id, base + count + 1);
    let f = s.next(LIVE).await.expect("live again");
    assert_eq!(f.id, Some(base + count + 1));
    s.assert_none(Duration::from_millis(200), "a repeat", |_| true)
        .await;
    assert!(!s.ended);
}

#[tokio::test]
async fn a_large_fan_out_reaches_every_stream_once_and_in_order() {
    // From `share::SHARE_FROM` streams on, the reader shares an event's writes with a helper
    // thread. Every stream must still get every event once, whole and in log order, whichever
    // thread wrote it.
    let streams = 2 * parley::live::share::SHARE_FROM;
    let app = TestApp::spawn_with(|c| {
        c.max_streams_per_user = streams as u32;
        c.max_connections_per_ip = 4 * streams;
    })
    .await;
    let ann = app.user("ann").await;
    let mut open = Vec::new();
    for _ in 0..streams {
        open.push(ann.stream().await);
    }
    let hub = app.state.hub.clone();
    let base = BIG_BASE;
    let count = 30;
    let body = |id: i64| body_of(id, 4);
    for id in base + 1..=base + count {
        publish_of(&hub, ann.id, id, 4);
    }
    for s in &mut open {
        for id in base + 1..=base + count {
            // On PostgreSQL ann's registration may still reach a stream opened just after it.
            let f = loop {
                let f = s.next(LIVE).await.expect("every frame arrives");
                if f.id.is_none_or(|i| i > base) {
                    break f;
                }
            };
            assert_eq!(f.id, Some(id), "in log order, none lost or repeated");
            assert!(f.data.contains(&body(id)), "frame {id} arrives whole");
        }
        assert!(!s.ended);
    }
}

#[tokio::test]
async fn a_reader_too_far_behind_gets_whole_frames_then_reload() {
    // The socket fills mid-frame, then the queue overflows: the stream ends with `reload`, and
    // every frame before it (the half-written one too) is whole, so the client's last event id
    // is one it really has.
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let mut s = ann.stream().await;
    let hub = app.state.hub.clone();
    let base = BIG_BASE;
    for id in base + 1..=base + CONNECTION_QUEUE as i64 + 200 {
        publish_big(&hub, ann.id, id);
    }
    let mut expected = base + 1;
    loop {
        let f = s.next(LIVE).await.expect("frames, then reload");
        if f.event == "reload" {
            assert_eq!(f.id, None);
            assert!(!f.data.contains("xxxx"), "reload starts a frame of its own");
            break;
        }
        assert_eq!(
            f.id,
            Some(expected),
            "in order, none lost before the reload"
        );
        assert!(
            f.data.contains(&big_body(expected)),
            "frame {expected} is whole"
        );
        expected += 1;
    }
    assert!(
        expected > base + 1,
        "some frames went out before the queue filled"
    );
    assert!(s.next(LIVE).await.is_none());
    assert!(s.ended, "the stream is closed after reload");
}

#[tokio::test]
async fn streams_end_promptly_at_shutdown() {
    let mut app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let mut s = ann.stream().await;
    let started = std::time::Instant::now();
    app.shutdown().await;
    assert!(s.ends_within(Duration::from_secs(2)).await);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn logout_closes_that_sessions_streams() {
    let app = TestApp::spawn().await;
    let ann = app.user("ann").await;
    let mut s = ann.stream().await;
    ann.post("/logout", &[]).await;
    assert!(s.ends_within(LIVE).await);
}

#[tokio::test]
async fn on_postgresql_an_event_committed_on_one_node_reaches_streams_on_another() {
    let app = TestApp::spawn().await;
    if !app.on_postgres() {
        // Several nodes are a PostgreSQL deployment; the PostgreSQL run of the suite covers this.
        return;
    }
    // Node B reads the log on its own only once a minute, so within the test every event can
    // reach it only by the other node's NOTIFY.
    let node_b = app.second_node_with(|c| c.log_poll_ms = 60_000).await;
    let (ann, bob) = app.friends("ann", "bob").await;
    let conversation = ann.direct_with(&bob).await;
    // Bob's browser talks to node B (same database, same session store).
    let bob_b = bob.on(&node_b);
    let mut s = bob_b.stream().await;
    ann.say(conversation, "across nodes").await;
    let f = s
        .expect_target("append", &format!("messages-{conversation}"))
        .await;
    assert!(f.data.contains("across nodes"));
    // Each post is announced to the other node (not left to its poll).
    for i in 0..5 {
        let text = format!("announced {i}");
        ann.say(conversation, &text).await;
        let f = s
            .expect(LIVE, &text, |f| {
                f.event == "append" && f.data.contains(&text)
            })
            .await;
        assert_eq!(
            f.target().as_deref(),
            Some(format!("messages-{conversation}").as_str())
        );
    }
    // And the other way round.
    let mut a = ann.stream().await;
    bob_b.say(conversation, "and back").await;
    let f = a
        .expect_target("append", &format!("messages-{conversation}"))
        .await;
    assert!(f.data.contains("and back"));
}

#[tokio::test]
async fn presence_from_another_node_expires_when_that_node_falls_silent() {
    let app = TestApp::spawn().await;
    let hub = app.state.hub.clone();
    // User 7 here has friend 8, who is connected to another node.
    let start = StreamStart {
        contacts: vec![8],
        ..Default::default()
    };
    let sub = hub.register(7, 1, &start, usize::MAX).unwrap();
    hub.remote_presence(99, 8, true);
    assert!(hub.is_online(8));
    let d = sub.try_next().expect("online frame");
    assert!(String::from_utf8_lossy(&d.chunks[0]).contains("presence online"));
    // Our own messages echo back through LISTEN: ignored.
    hub.remote_presence(hub.node, 8, false);
    assert!(hub.is_online(8));
    // A refreshed entry survives, a stale one goes, and friends here are told.
    hub.expire_remote(Duration::from_secs(60));
    assert!(hub.is_online(8));
    hub.expire_remote(Duration::ZERO);
    assert!(!hub.is_online(8));
    let d = sub.try_next().expect("offline frame");
    assert!(!String::from_utf8_lossy(&d.chunks[0]).contains("presence online"));
}

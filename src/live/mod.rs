//! Live delivery: the log reader that feeds the [`hub::Hub`], and the frames it sends.
//!
//! Every node reads the `events` table in id order after its cursor (woken locally after a commit,
//! and on PostgreSQL by `LISTEN parley_events` for commits on other nodes). For each event it
//! renders its frames once ([`render`]) and hands them to the Hub, which applies the event's
//! effects (closed streams, presence links, conversation membership) and routes each frame to its
//! own audience ([`hub::Hub::publish`]).

pub mod fragments;
pub mod frame;
pub mod hub;
pub mod share;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::{self, Db};
use crate::events::Event;
use frame::Rendered;
use hub::Hub;

/// Events read per query while catching up.
const BATCH: i64 = 256;

/// A logged row as data: the event and its explicit audience.
pub fn parse(row: &db::events::EventRow) -> Option<(Event, Vec<i64>)> {
    let explicit = db::events::parse_audience(&row.audience);
    match serde_json::from_str(&row.payload) {
        Ok(e) => Some((e, explicit)),
        Err(e) => {
            tracing::error!(event_id = row.id, error = %e, "unreadable event in the log");
            None
        }
    }
}

/// The frames of a logged row, rendered once (or taken from the Hub's cache of recent events).
pub fn render(
    hub: &Hub,
    row: &db::events::EventRow,
    parsed: Option<&(Event, Vec<i64>)>,
) -> Arc<Rendered> {
    if let Some(r) = hub.cached(row.id) {
        return r;
    }
    let online = |u: i64| hub.is_online(u);
    let frames = parsed
        .map(|(e, _)| fragments::frames_for(e, &online))
        .unwrap_or_default();
    Arc::new(Rendered::new(row.id, frames))
}

/// Someone typing in a conversation, as nodes tell each other on `parley_typing`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct TypingMsg {
    node: u64,
    conversation_id: i64,
    who: crate::db::users::UserRef,
    to: Vec<i64>,
}

/// Someone is typing: the other members' streams on this node get an ephemeral frame at once;
/// on PostgreSQL the other nodes are told too. Nothing is logged.
pub async fn typing(
    hub: &Hub,
    db: &Db,
    conversation_id: i64,
    who: &crate::db::users::UserRef,
    members: &[i64],
) {
    let to: Vec<i64> = members.iter().copied().filter(|m| *m != who.id).collect();
    hub.send_ephemeral(&fragments::messages::typing(
        conversation_id,
        who,
        frame::audience(to.iter().copied()),
    ));
    if let Db::Postgres(pool) = db {
        let msg = TypingMsg {
            node: hub.node,
            conversation_id,
            who: who.clone(),
            to,
        };
        if let Ok(payload) = serde_json::to_string(&msg)
            && let Err(e) = sqlx::query("SELECT pg_notify('parley_typing', $1)")
                .bind(payload)
                .execute(pool)
                .await
        {
            tracing::warn!(error = %e, "publishing typing failed");
        }
    }
}

/// Reads the log after `cursor` and delivers, until shutdown. On SQLite the writer hands each
/// committed batch over (`feed`), so nothing is read back; the log is read at start, when a batch
/// could not be queued, and every 30 s as a safety net.
pub async fn run_log_reader(
    hub: Arc<Hub>,
    db: Db,
    mut cursor: i64,
    mut feed: Option<db::writer::Feed>,
    pg_poll: Duration,
    shutdown: CancellationToken,
) {
    // On PostgreSQL another node may commit: its NOTIFY wakes us; the poll covers a lost listener
    // (and events held back behind a transaction that was still running).
    let poll = match db {
        Db::Postgres(_) => pg_poll,
        Db::Sqlite { .. } => Duration::from_secs(30),
    };
    let mut read_log = true;
    // Looks in a row that found an event committed here still held back (see below).
    let mut held_looks: u32 = 0;
    loop {
        if read_log && let Err(e) = drain(&hub, &db, &mut cursor).await {
            tracing::error!(error = %e, "reading the event log failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return,
            }
            continue;
        }
        read_log = feed.is_none();
        let held_back = hub.committed_high.load(std::sync::atomic::Ordering::SeqCst) > cursor;
        held_looks = if held_back {
            held_looks.saturating_add(1)
        } else {
            0
        };
        let lost = |feed: &Option<db::writer::Feed>| {
            feed.as_ref()
                .is_some_and(|f| f.lost.swap(false, std::sync::atomic::Ordering::SeqCst))
        };
        tokio::select! {
            batch = async { feed.as_mut()?.rx.recv().await }, if feed.is_some() => match batch {
                Some(rows) if !lost(&feed) => publish_rows(&hub, &rows, &mut cursor),
                Some(_) => read_log = true,
                None => {
                    feed = None;
                    read_log = true;
                }
            },
            _ = hub.wake.notified() => read_log |= lost(&feed),
            // An event committed here but held back behind an older transaction (one that
            // wrote no event, so its end wakes nobody): look again soon rather than at the
            // next poll.
            _ = tokio::time::sleep(if held_back { held_back_retry(held_looks) } else { poll }) => {
                read_log = true
            }
            _ = shutdown.cancelled() => return,
        }
    }
}

/// When to look again for an event held back behind an older transaction, at the `looks`-th
/// look that found it so: after 1 ms, then 2, 4, 8 and every 10 ms. Most such transactions end
/// within a millisecond or two (a post in flight); a long one costs a query every 10 ms.
fn held_back_retry(looks: u32) -> Duration {
    Duration::from_millis((1u64 << looks.saturating_sub(1).min(4)).min(10))
}

/// Renders and publishes `rows` past `cursor`, in order.
fn publish_rows(hub: &Hub, rows: &[db::events::EventRow], cursor: &mut i64) {
    for row in rows {
        if row.id <= *cursor {
            continue;
        }
        let parsed = parse(row);
        let (event, explicit) = match &parsed {
            Some((e, x)) => (Some(e), x.as_slice()),
            None => (None, &[][..]),
        };
        hub.publish(
            hub::Logged {
                id: row.id,
                event,
                conversation: row.conversation_id,
                explicit,
            },
            || render(hub, row, parsed.as_ref()),
        );
        *cursor = row.id;
    }
}

async fn drain(hub: &Hub, db: &Db, cursor: &mut i64) -> sqlx::Result<()> {
    loop {
        let rows = {
            let mut rc = db.read().await?;
            db::events::after(&mut rc.conn(), *cursor, BATCH).await?
        };
        publish_rows(hub, &rows, cursor);
        if (rows.len() as i64) < BATCH {
            return Ok(());
        }
    }
}

/// How often a node re-announces who is online on it (PostgreSQL deployments).
const PRESENCE_REFRESH: Duration = Duration::from_secs(30);
/// Another node's "online" not refreshed for this long is forgotten (that node is gone).
const PRESENCE_EXPIRY: Duration = Duration::from_secs(95);
/// User ids per refresh message (a NOTIFY payload holds at most 8000 bytes).
const REFRESH_CHUNK: usize = 400;

/// A presence message between nodes, on the `parley_presence` channel:
/// `"{node} S {user} {1|0}"` (a change), `"{node} R {user},{user},…"` (still online here),
/// `"{node} Q"` (a node started: please refresh now).
#[derive(Debug, PartialEq, Eq)]
enum PresenceMsg {
    Change { node: u64, user: i64, online: bool },
    Refresh { node: u64, users: Vec<i64> },
    Query { node: u64 },
}

fn parse_presence(payload: &str) -> Option<PresenceMsg> {
    let mut parts = payload.split(' ');
    let node = parts.next()?.parse().ok()?;
    match parts.next()? {
        "S" => Some(PresenceMsg::Change {
            node,
            user: parts.next()?.parse().ok()?,
            online: parts.next()? == "1",
        }),
        "R" => Some(PresenceMsg::Refresh {
            node,
            users: parts
                .next()
                .unwrap_or("")
                .split(',')
                .filter_map(|u| u.parse().ok())
                .collect(),
        }),
        "Q" => Some(PresenceMsg::Query { node }),
        _ => None,
    }
}

async fn notify_presence(pool: &sqlx::PgPool, payload: String) {
    if let Err(e) = sqlx::query("SELECT pg_notify('parley_presence', $1)")
        .bind(payload)
        .execute(pool)
        .await
    {
        tracing::warn!(error = %e, "publishing presence failed");
    }
}

/// On PostgreSQL: tells the other nodes who comes online and goes offline here, re-announces who
/// is online every 30 s, and forgets other nodes' users they stopped announcing.
pub async fn run_presence_publisher(
    hub: Arc<Hub>,
    pool: sqlx::PgPool,
    mut changes: tokio::sync::mpsc::Receiver<hub::PresenceChange>,
    refresh_now: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let node = hub.node;
    notify_presence(&pool, format!("{node} Q")).await;
    let mut tick = tokio::time::interval(PRESENCE_REFRESH);
    loop {
        let refresh = tokio::select! {
            c = changes.recv() => match c {
                Some(c) => {
                    notify_presence(&pool, format!("{node} S {} {}", c.user, u8::from(c.online))).await;
                    false
                }
                None => return,
            },
            _ = tick.tick() => true,
            _ = refresh_now.notified() => true,
            _ = shutdown.cancelled() => return,
        };
        if refresh {
            // This node's streams keep counting toward their users' caps; dead nodes' rows go.
            let now = db::now_ms();
            if let Err(e) =
                db::limits::refresh_streams(&pool, node as i64, now, now - 3_600_000).await
            {
                tracing::warn!(error = %e, "refreshing this node's streams failed");
            }
            hub.expire_remote(PRESENCE_EXPIRY);
            for chunk in hub.local_online().chunks(REFRESH_CHUNK) {
                let ids: Vec<String> = chunk.iter().map(i64::to_string).collect();
                notify_presence(&pool, format!("{node} R {}", ids.join(","))).await;
            }
        }
    }
}

/// On PostgreSQL: tells the other nodes about events committed without a `NOTIFY` of their own
/// (`Hub::committed_quietly`; a plain post, see `db::messages::post_pg`). A transaction that
/// notifies holds PostgreSQL's notify lock from just before its commit until its commit is
/// flushed, so notifying commits wait for each other's disk flush one by one; here the flush is
/// not waited for, and one `NOTIFY` covers every commit made while the previous one was sent.
///
/// It starts after the commits it announces, so a node woken by it finds them. A `NOTIFY` lost
/// in a crash only delays other nodes until their reader's poll (500 ms by default); it carries
/// no data but this node's id (so its own listener can skip it) and the newest position it
/// covers, so its own commit need not wait for the disk (`synchronous_commit = off` on this
/// connection).
pub async fn run_event_announcer(hub: Arc<Hub>, pool: sqlx::PgPool, shutdown: CancellationToken) {
    use sqlx::{ConnectOptions, Connection};
    let mut conn: Option<sqlx::PgConnection> = None;
    loop {
        tokio::select! {
            _ = hub.announce.notified() => {}
            _ = shutdown.cancelled() => return,
        }
        if conn.is_none() {
            match pool.connect_options().connect().await {
                Ok(mut c) => {
                    if let Err(e) = sqlx::query("SET synchronous_commit = off")
                        .execute(&mut c)
                        .await
                    {
                        tracing::warn!(error = %e, "announcer connection setup failed");
                    } else {
                        conn = Some(c);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "announcer connection failed"),
            }
        }
        // Named by this node, so its own listener does not read the log again for it, and with
        // the newest position committed, so other nodes look until they have read that far.
        let high = hub.committed_high.load(std::sync::atomic::Ordering::SeqCst);
        let sent = match conn.as_mut() {
            Some(c) => sqlx::query("SELECT pg_notify('parley_events', $1)")
                .bind(format!("{}@{high}", hub.node))
                .execute(&mut *c)
                .await
                .map(|_| ()),
            None => Err(sqlx::Error::PoolTimedOut),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "telling other nodes of new events failed; retrying");
            if let Some(c) = conn.take() {
                let _ = c.close().await;
            }
            // Try again (the reader's poll covers the meantime).
            hub.announce.notify_one();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// A `parley_events` notice: `@POSITION` (sent by a transaction that logged events, each after
/// that position) or `NODE@POSITION` (a node's announcer, see [`run_event_announcer`]). Anything
/// else (an older node's `''` or bare `NODE`) only wakes the reader.
fn parse_committed(payload: &str) -> Option<(Option<&str>, i64)> {
    let (node, position) = payload.split_once('@')?;
    Some(((!node.is_empty()).then_some(node), position.parse().ok()?))
}

/// On PostgreSQL: wakes the log reader whenever any node commits events, and applies other nodes'
/// presence messages.
pub async fn run_pg_listener(
    hub: Arc<Hub>,
    pool: sqlx::PgPool,
    caches: Option<Arc<crate::sessions::PgCaches>>,
    refresh_now: Arc<tokio::sync::Notify>,
    admin_wake: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN connection failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                    _ = shutdown.cancelled() => return,
                }
            }
        };
        if let Err(e) = listener
            .listen_all([
                "parley_events",
                "parley_presence",
                "parley_typing",
                "parley_admin",
                db::cache::CHANNEL,
            ])
            .await
        {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                _ = shutdown.cancelled() => return,
            }
        }
        // Anything missed while not listening: read the log, and ask for fresh presence. Copies
        // of sessions and users may be kept from now on (every change is heard).
        if let Some(c) = &caches {
            c.set_live(true);
        }
        hub.wake();
        refresh_now.notify_one();
        admin_wake.notify_one();
        let own_node = hub.node.to_string();
        let own_node = own_node.as_str();
        loop {
            tokio::select! {
                n = listener.try_recv() => match n {
                    // The connection was lost and is back (listening again): notices sent
                    // meanwhile are gone, so drop every copy and catch up as after a connect.
                    Ok(None) => {
                        tracing::warn!("LISTEN connection lost and re-established");
                        if let Some(c) = &caches {
                            c.set_live(true);
                        }
                        hub.wake();
                        refresh_now.notify_one();
                        admin_wake.notify_one();
                    }
                    Ok(Some(n)) if n.channel() == "parley_typing" => {
                        if let Ok(t) = serde_json::from_str::<TypingMsg>(n.payload())
                            && t.node != hub.node
                        {
                            hub.send_ephemeral(&fragments::messages::typing(
                                t.conversation_id,
                                &t.who,
                                frame::audience(t.to),
                            ));
                        }
                    }
                    Ok(Some(n)) if n.channel() == "parley_admin" => admin_wake.notify_one(),
                    Ok(Some(n)) if n.channel() == "parley_events" => match parse_committed(n.payload()) {
                        // This node's announcer: its reader was woken at each commit already.
                        Some((Some(node), _)) if node == own_node => {}
                        Some((_, position)) => hub.committed_at(position),
                        None => hub.wake(),
                    },
                    Ok(Some(n)) if n.channel() == db::cache::CHANNEL => {
                        if let Some(c) = &caches {
                            c.notice(n.payload());
                        }
                    }
                    Ok(Some(n)) if n.channel() == "parley_presence" => match parse_presence(n.payload()) {
                        Some(PresenceMsg::Change { node, user, online }) => {
                            hub.remote_presence(node, user, online)
                        }
                        Some(PresenceMsg::Refresh { node, users }) => {
                            for user in users {
                                hub.remote_presence(node, user, true);
                            }
                        }
                        Some(PresenceMsg::Query { node }) if node != hub.node => refresh_now.notify_one(),
                        _ => {}
                    },
                    Ok(Some(_)) => hub.wake(),
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                        // Changes made meanwhile would go unheard: no copies until reconnected.
                        if let Some(c) = &caches {
                            c.set_live(false);
                        }
                        break;
                    }
                },
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_back_event_is_looked_for_soon_then_less_often() {
        let ms = |n| held_back_retry(n).as_millis();
        assert_eq!((1..=6).map(ms).collect::<Vec<_>>(), [1, 2, 4, 8, 10, 10]);
        assert_eq!(ms(u32::MAX), 10);
    }

    #[test]
    fn event_notices_parse() {
        assert_eq!(parse_committed("@4295032832"), Some((None, 4295032832)));
        assert_eq!(
            parse_committed("17@4295032833"),
            Some((Some("17"), 4295032833))
        );
        // An older node's notices (empty, or its bare id) only wake the reader: a node id is
        // never taken for a position, which would keep the reader looking for it.
        assert_eq!(parse_committed(""), None);
        assert_eq!(parse_committed("4295032832"), None);
        assert_eq!(parse_committed("17@x"), None);
    }

    #[test]
    fn presence_messages_parse() {
        assert_eq!(
            parse_presence("7 S 42 1"),
            Some(PresenceMsg::Change {
                node: 7,
                user: 42,
                online: true
            })
        );
        assert_eq!(
            parse_presence("7 R 1,2,3"),
            Some(PresenceMsg::Refresh {
                node: 7,
                users: vec![1, 2, 3]
            })
        );
        assert_eq!(
            parse_presence("7 R"),
            Some(PresenceMsg::Refresh {
                node: 7,
                users: vec![]
            })
        );
        assert_eq!(parse_presence("7 Q"), Some(PresenceMsg::Query { node: 7 }));
        assert_eq!(parse_presence("x S 1 1"), None);
        assert_eq!(parse_presence("7 Z"), None);
    }
}

//! Live delivery: the log reader that feeds the [`hub::Hub`], and the fragments it sends.
//!
//! Every node reads the `events` table in id order after its cursor (woken locally after a commit,
//! and on PostgreSQL by `LISTEN parley_events` for commits on other nodes), renders each event
//! once, and hands it to the Hub, which routes it to the audience's open streams.

pub mod fragments;
pub mod hub;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::{self, Db};
use crate::events::Event;
use hub::{Delivery, Hub};

/// Events read per query while catching up.
const BATCH: i64 = 256;

/// Turns a logged row into its delivery and audience, applying its effects on the Hub
/// (closing streams, updating who sees whose presence) when `apply` is set.
pub fn prepare(hub: &Hub, row: &db::events::EventRow, apply: bool) -> (Arc<Delivery>, Vec<i64>) {
    let audience: Vec<i64> = serde_json::from_str(&row.audience).unwrap_or_default();
    let event: Option<Event> = match serde_json::from_str(&row.payload) {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::error!(event_id = row.id, error = %e, "unreadable event in the log");
            None
        }
    };
    if apply {
        match &event {
            Some(Event::SessionEnded { user_id, login_id }) => hub.close_login(*user_id, *login_id),
            Some(Event::PasswordChanged {
                user_id,
                keep_login_id,
            }) => hub.close_other_logins(*user_id, *keep_login_id),
            Some(Event::FriendAdded { a, b }) => hub.friends_added(a.id, b.id),
            Some(Event::FriendRemoved { a, b, .. }) => hub.friends_removed(a.id, b.id),
            _ => {}
        }
    }
    let delivery = match hub.cached(row.id) {
        Some(d) => d,
        None => Arc::new(Delivery {
            id: Some(row.id),
            frames: event
                .as_ref()
                .map(fragments::frames_for)
                .unwrap_or_default(),
        }),
    };
    (delivery, audience)
}

/// Reads the log after `cursor` and delivers, until shutdown.
pub async fn run_log_reader(hub: Arc<Hub>, db: Db, mut cursor: i64, shutdown: CancellationToken) {
    // On PostgreSQL another node may commit: its NOTIFY wakes us; the poll covers a lost listener.
    let poll = match db {
        Db::Postgres(_) => Duration::from_secs(2),
        Db::Sqlite { .. } => Duration::from_secs(30),
    };
    loop {
        match drain(&hub, &db, &mut cursor).await {
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, "reading the event log failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => return,
                }
                continue;
            }
        }
        tokio::select! {
            _ = hub.wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn drain(hub: &Hub, db: &Db, cursor: &mut i64) -> sqlx::Result<()> {
    loop {
        let rows = {
            let mut rc = db.read().await?;
            db::events::after(&mut rc.conn(), *cursor, BATCH).await?
        };
        let n = rows.len() as i64;
        for row in &rows {
            let (delivery, audience) = prepare(hub, row, true);
            hub.deliver(&audience, delivery);
            *cursor = row.id;
        }
        if n < BATCH {
            return Ok(());
        }
    }
}

/// On PostgreSQL: wakes the log reader whenever any node commits events.
pub async fn run_pg_listener(hub: Arc<Hub>, pool: sqlx::PgPool, shutdown: CancellationToken) {
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
        if let Err(e) = listener.listen("parley_events").await {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            continue;
        }
        loop {
            tokio::select! {
                n = listener.recv() => match n {
                    Ok(_) => hub.wake(),
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                        break;
                    }
                },
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

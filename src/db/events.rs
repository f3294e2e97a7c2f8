//! The event log: append inside the writing transaction, read in id order, prune by age.
//!
//! No per-recipient rows: a conversation event stores its conversation, and its audience is that
//! conversation's members at that point in the log (the Hub knows it from memory; replay asks
//! `members`, whose `joined_event` says since when). Only a small explicit list is stored, as
//! `",1,2,"`: the audience of events outside conversations (friends, profile, logins), and those a
//! conversation event reaches beyond its members (the removed, the members of a deleted group).
//!
//! Ids become visible in id order, so a reader asking for `id > n` never skips a late commit:
//! - SQLite: one writer; ids come from its counter, in commit order.
//! - PostgreSQL: an id is `xid << 16 | n` (the writing transaction's id, then the event's number in
//!   it), and readers only read below `pg_snapshot_xmin(pg_current_snapshot()) << 16`: every
//!   transaction with a smaller id has ended, and any later one gets a larger id. No counter row,
//!   so commits never wait for each other.

use super::{Conn, ReadConn, Tx, exec, run};
use crate::events::Event;

/// Below this position every event on PostgreSQL is final (its transaction has ended).
const PG_SAFE: &str = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 16)";

/// A logged event as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    /// Strictly increasing id.
    pub id: i64,
    /// JSON of the `Event`.
    pub payload: String,
    /// The explicit audience, `",1,2,"` (empty: none).
    pub audience: String,
    /// The conversation whose members see it.
    pub conversation_id: Option<i64>,
}

/// Who an event is logged for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogAudience {
    /// Its conversation's members (at that point in the log).
    pub conversation: Option<i64>,
    /// Users named explicitly.
    pub explicit: Vec<i64>,
    /// Members who join the conversation with this event (`None`: none; `Some(empty)`: all of
    /// them, a new conversation).
    pub joined: Option<Vec<i64>>,
}

/// How `event` is logged; `passed` is the audience the use case named (kept only where the
/// conversation's members do not cover it).
pub fn audience_of(event: &Event, passed: Vec<i64>) -> LogAudience {
    let conversation = event.conversation_id();
    let (explicit, joined) = match event {
        _ if conversation.is_none() => (passed, None),
        Event::ConversationCreated { .. } => (Vec::new(), Some(Vec::new())),
        Event::MembersChanged { added, removed, .. } => (
            removed.iter().map(|u| u.id).collect(),
            (!added.is_empty()).then(|| added.iter().map(|u| u.id).collect()),
        ),
        // The members are gone from `members` once it is deleted.
        Event::ConversationDeleted { .. } => (passed, None),
        _ => (Vec::new(), None),
    };
    let mut explicit = explicit;
    explicit.sort_unstable();
    explicit.dedup();
    LogAudience {
        conversation,
        explicit,
        joined,
    }
}

/// `",1,2,"` (empty for none).
pub fn encode_audience(ids: &[i64]) -> String {
    if ids.is_empty() {
        return String::new();
    }
    let mut s = String::with_capacity(ids.len() * 6 + 1);
    s.push(',');
    for id in ids {
        s.push_str(&id.to_string());
        s.push(',');
    }
    s
}

/// The ids of `",1,2,"`.
pub fn parse_audience(s: &str) -> Vec<i64> {
    s.split(',').filter_map(|p| p.parse().ok()).collect()
}

/// Appends an event inside `tx`; returns its id.
pub async fn append(
    tx: &mut Tx,
    kind: &'static str,
    payload: &str,
    log: &LogAudience,
    now: i64,
) -> sqlx::Result<i64> {
    let audience = encode_audience(&log.explicit);
    let id = match tx {
        Tx::Sqlite(t) => {
            // Written with the batch, just before its commit (see `db::writer`).
            let id = t.log().next_event_id();
            t.log().pending.push(PendingEvent {
                row: EventRow {
                    id,
                    payload: payload.to_owned(),
                    audience: audience.clone(),
                    conversation_id: log.conversation,
                },
                kind,
                created_at: now,
            });
            id
        }
        Tx::Pg(t, n, _) => {
            *n += 1;
            // The NOTIFY wakes every node's reader at commit (repeats in one transaction fold).
            // It names the position below this transaction's events, so a reader that finds them
            // held back behind an older transaction looks again until it has read them.
            let (id, _): (i64, String) = sqlx::query_as(
                "WITH e AS (INSERT INTO events (id, kind, payload, conversation_id, audience, created_at) \
                 VALUES ((pg_current_xact_id()::text::bigint << 16) + $1, $2, $3, $4, $5, $6) RETURNING id) \
                 SELECT id, pg_notify('parley_events', \
                 '@' || (pg_current_xact_id()::text::bigint << 16)::text)::text FROM e",
            )
            .bind(*n)
            .bind(kind)
            .bind(payload)
            .bind(log.conversation)
            .bind(&audience)
            .bind(now)
            .fetch_one(&mut **t)
            .await?;
            id
        }
    };
    if let (Some(conversation), Some(joined)) = (log.conversation, &log.joined) {
        let mut c = tx.conn();
        if joined.is_empty() {
            exec!(&mut c, e => sqlx::query(
                "UPDATE members SET joined_event = $1 WHERE conversation_id = $2",
            )
            .bind(id)
            .bind(conversation)
            .execute(e)
            .await)?;
        }
        for user in joined {
            exec!(&mut c, e => sqlx::query(
                "UPDATE members SET joined_event = $1 WHERE conversation_id = $2 AND user_id = $3",
            )
            .bind(id)
            .bind(conversation)
            .bind(*user)
            .execute(e)
            .await)?;
        }
    }
    Ok(id)
}

/// The newest event id every reader may read (0 when none): what a page reflects.
pub async fn last_id(c: &mut Conn<'_>) -> sqlx::Result<i64> {
    match c {
        Conn::Sqlite(e) => {
            sqlx::query_scalar("SELECT last_id FROM log_state WHERE singleton = 1")
                .fetch_one(&mut **e)
                .await
        }
        Conn::Pg(e) => {
            sqlx::query_scalar(&format!(
                "SELECT GREATEST(pruned_through, \
                 COALESCE((SELECT MAX(id) FROM events WHERE id < {PG_SAFE}), 0)) \
                 FROM log_state WHERE singleton = 1"
            ))
            .fetch_one(&mut **e)
            .await
        }
    }
}

/// Every id at or below this has been pruned.
pub async fn pruned_through(c: &mut Conn<'_>) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar("SELECT pruned_through FROM log_state WHERE singleton = 1")
        .fetch_one(e)
        .await)
}

const COLUMNS: &str = "id, payload, audience, conversation_id";

/// Events after `cursor`, in id order (the Hub's tail of the log).
pub async fn after(c: &mut Conn<'_>, cursor: i64, limit: i64) -> sqlx::Result<Vec<EventRow>> {
    match c {
        Conn::Sqlite(e) => {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM events WHERE id > $1 ORDER BY id LIMIT $2"
            ))
            .bind(cursor)
            .bind(limit)
            .fetch_all(&mut **e)
            .await
        }
        Conn::Pg(e) => {
            sqlx::query_as(&format!(
                "SELECT {COLUMNS} FROM events WHERE id > $1 AND id < {PG_SAFE} ORDER BY id LIMIT $2"
            ))
            .bind(cursor)
            .bind(limit)
            .fetch_all(&mut **e)
            .await
        }
    }
}

/// The events `user` may see in `(cursor, through]`, in id order (replay on reconnect): those
/// naming them, and those of conversations they are in, since they joined.
///
/// On SQLite the log has no index by conversation (each post wrote a leaf of one: about a quarter
/// of a commit's pages under load, docs/performance.md, thirteenth session), so the range is read
/// in id order and each event checked against `members`. Ids there are dense (the writer's
/// counter), so the caller keeps the range short ([`replay_span_ok`]). PostgreSQL's ids are sparse:
/// it finds a conversation's events through its index.
pub async fn for_user_after(
    c: &mut Conn<'_>,
    user: i64,
    cursor: i64,
    through: i64,
    limit: i64,
) -> sqlx::Result<Vec<EventRow>> {
    let named = format!("%,{user},%");
    let sql = match c {
        Conn::Sqlite(_) => {
            "SELECT e.id, e.payload, e.audience, e.conversation_id FROM events e \
             WHERE e.id > $2 AND e.id <= $3 \
             AND ((e.audience <> '' AND e.audience LIKE $4) \
               OR EXISTS (SELECT 1 FROM members m WHERE m.conversation_id = e.conversation_id \
                 AND m.user_id = $1 AND e.id >= m.joined_event)) \
             ORDER BY e.id LIMIT $5"
        }
        Conn::Pg(_) => {
            "SELECT id, payload, audience, conversation_id FROM events \
             WHERE audience <> '' AND id > $2 AND id <= $3 AND audience LIKE $4 \
             UNION \
             SELECT e.id, e.payload, e.audience, e.conversation_id FROM members m \
             JOIN events e ON e.conversation_id = m.conversation_id \
             WHERE m.user_id = $1 AND e.id > $2 AND e.id <= $3 AND e.id >= m.joined_event \
             ORDER BY 1 LIMIT $5"
        }
    };
    run!(c, e => sqlx::query_as(sql)
    .bind(user)
    .bind(cursor)
    .bind(through)
    .bind(named)
    .bind(limit)
    .fetch_all(e)
    .await)
}

/// Whether a replay of `(cursor, through]` is short enough to read: on SQLite, at most `span`
/// positions of the log (each is a row [`for_user_after`] reads); further behind, the client
/// reloads its page instead, which costs less. Always on PostgreSQL, whose replay reads only
/// the user's events.
pub fn replay_span_ok(c: &Conn<'_>, cursor: i64, through: i64, span: u64) -> bool {
    match c {
        Conn::Sqlite(_) => {
            through.saturating_sub(cursor) <= i64::try_from(span).unwrap_or(i64::MAX)
        }
        Conn::Pg(_) => true,
    }
}

/// What a stream needs to start, read at one point of the log.
#[derive(Debug, Clone, Default)]
pub struct StreamStart {
    /// The log position this was read at.
    pub position: i64,
    /// Every id at or below this has been pruned.
    pub pruned_through: i64,
    /// The user's conversations.
    pub conversations: Vec<i64>,
    /// Whose presence the user sees (and who sees theirs).
    pub contacts: Vec<i64>,
}

/// Reads a [`StreamStart`] for `user` in one read transaction.
pub async fn stream_start(rc: &mut ReadConn, user: i64) -> sqlx::Result<StreamStart> {
    use sqlx::Connection;
    async fn read(c: &mut Conn<'_>, user: i64) -> sqlx::Result<StreamStart> {
        let position = last_id(c).await?;
        Ok(StreamStart {
            position,
            pruned_through: pruned_through(c).await?,
            // As of `position`. On PostgreSQL a membership committed by a transaction whose
            // event is still held back (an older transaction is running) is already visible
            // here; counting it would hand this user that conversation's older held-back events
            // too. The Hub adds it when it applies the joining event.
            conversations: run!(c, e => sqlx::query_scalar(
                "SELECT conversation_id FROM members WHERE user_id = $1 AND joined_event <= $2",
            )
            .bind(user)
            .bind(position)
            .fetch_all(e)
            .await)?,
            contacts: super::conversations::contact_ids(c, user).await?,
        })
    }
    match rc {
        ReadConn::Sqlite(conn) => {
            let mut t = conn.begin().await?;
            let s = read(&mut Conn::Sqlite(&mut t), user).await?;
            t.commit().await?;
            Ok(s)
        }
        ReadConn::Pg(conn) => {
            let mut t = conn.begin().await?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *t)
                .await?;
            let s = read(&mut Conn::Pg(&mut t), user).await?;
            t.commit().await?;
            Ok(s)
        }
    }
}

/// Deletes the events older than `cutoff_ms` that come before the first newer one; returns how
/// many.
///
/// Ids follow time, so walking them from the oldest to the first event at or after the cutoff
/// visits only the rows about to be deleted, and needs no index on `created_at`. Should the clock
/// have stepped back, an old event after a newer one waits for a later prune: nothing at or after
/// the cutoff is ever deleted.
pub async fn prune(c: &mut Conn<'_>, cutoff_ms: i64) -> sqlx::Result<u64> {
    let through: Option<i64> = run!(c, e => sqlx::query_scalar(
        "SELECT id FROM events WHERE id < COALESCE( \
             (SELECT id FROM events WHERE created_at >= $1 ORDER BY id LIMIT 1), \
             9223372036854775807) \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(cutoff_ms)
    .fetch_optional(&mut *e)
    .await)?;
    let Some(through) = through else {
        return Ok(0);
    };
    exec!(c, e => sqlx::query(
        "UPDATE log_state SET pruned_through = $1 WHERE singleton = 1 AND pruned_through < $1",
    )
    .bind(through)
    .execute(&mut *e)
    .await)?;
    let done = exec!(c, e => sqlx::query("DELETE FROM events WHERE id <= $1")
        .bind(through)
        .execute(e)
        .await)?;
    Ok(done)
}

/// An event row waiting for its batch's commit.
pub struct PendingEvent {
    /// The row as readers get it.
    pub row: EventRow,
    /// Its kind.
    pub kind: &'static str,
    /// When it was recorded (ms).
    pub created_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_audiences_round_trip() {
        assert_eq!(encode_audience(&[]), "");
        assert_eq!(encode_audience(&[3, 17]), ",3,17,");
        assert_eq!(parse_audience(",3,17,"), vec![3, 17]);
        assert!(parse_audience("").is_empty());
    }
}

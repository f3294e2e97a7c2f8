//! The event log: append inside the writing transaction, read in id order, prune by age.

use super::{Conn, exec, run};

/// A logged event as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    /// Strictly increasing id.
    pub id: i64,
    /// JSON of the `Event`.
    pub payload: String,
    /// JSON array of the user ids that may see it.
    pub audience: String,
}

/// Takes the next event id. The counter row's lock orders concurrent writers, so ids become
/// visible in id order (a reader asking for `id > n` never skips a late commit).
pub async fn next_id(c: &mut Conn<'_>) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar(
        "UPDATE log_state SET last_id = last_id + 1 WHERE singleton = 1 RETURNING last_id",
    )
    .fetch_one(e)
    .await)
}

/// Appends an event and its recipients.
pub async fn append(
    c: &mut Conn<'_>,
    id: i64,
    kind: &str,
    payload: &str,
    audience: &[i64],
    now: i64,
) -> sqlx::Result<()> {
    let audience_json = serde_json::to_string(audience).unwrap_or_else(|_| "[]".into());
    exec!(c, e => sqlx::query(
        "INSERT INTO events (id, kind, payload, audience, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(kind)
    .bind(payload)
    .bind(audience_json)
    .bind(now)
    .execute(&mut *e)
    .await)?;
    if audience.is_empty() {
        return Ok(());
    }
    exec!(c, e => {
        let mut q = sqlx::QueryBuilder::new("INSERT INTO event_recipients (user_id, event_id) ");
        q.push_values(audience, |mut b, user| {
            b.push_bind(*user).push_bind(id);
        });
        q.push(" ON CONFLICT DO NOTHING");
        q.build().execute(e).await
    })?;
    Ok(())
}

/// Wakes the other nodes' log readers when the transaction commits (PostgreSQL only).
pub async fn notify(c: &mut Conn<'_>) -> sqlx::Result<()> {
    if let Conn::Pg(e) = c {
        sqlx::query("SELECT pg_notify('parley_events', '')")
            .execute(&mut **e)
            .await?;
    }
    Ok(())
}

/// The newest event id (0 when none): what a page reflects.
pub async fn last_id(c: &mut Conn<'_>) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar("SELECT last_id FROM log_state WHERE singleton = 1")
        .fetch_one(e)
        .await)
}

/// Every id at or below this has been pruned.
pub async fn pruned_through(c: &mut Conn<'_>) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar("SELECT pruned_through FROM log_state WHERE singleton = 1")
        .fetch_one(e)
        .await)
}

/// Events after `cursor`, in id order (the Hub's tail of the log).
pub async fn after(c: &mut Conn<'_>, cursor: i64, limit: i64) -> sqlx::Result<Vec<EventRow>> {
    run!(c, e => sqlx::query_as(
        "SELECT id, payload, audience FROM events WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(cursor)
    .bind(limit)
    .fetch_all(e)
    .await)
}

/// The events `user` may see after `cursor`, in id order (replay on reconnect).
pub async fn for_user_after(
    c: &mut Conn<'_>,
    user: i64,
    cursor: i64,
    limit: i64,
) -> sqlx::Result<Vec<EventRow>> {
    run!(c, e => sqlx::query_as(
        "SELECT e.id, e.payload, e.audience FROM event_recipients r JOIN events e ON e.id = r.event_id \
         WHERE r.user_id = $1 AND r.event_id > $2 ORDER BY r.event_id LIMIT $3",
    )
    .bind(user)
    .bind(cursor)
    .bind(limit)
    .fetch_all(e)
    .await)
}

/// Deletes events older than `cutoff_ms`; returns how many.
pub async fn prune(c: &mut Conn<'_>, cutoff_ms: i64) -> sqlx::Result<u64> {
    let through: Option<i64> = run!(c, e => sqlx::query_scalar(
        "SELECT MAX(id) FROM events WHERE created_at < $1",
    )
    .bind(cutoff_ms)
    .fetch_one(&mut *e)
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
    exec!(c, e => sqlx::query("DELETE FROM event_recipients WHERE event_id <= $1")
        .bind(through)
        .execute(&mut *e)
        .await)?;
    let done = exec!(c, e => sqlx::query("DELETE FROM events WHERE id <= $1")
        .bind(through)
        .execute(e)
        .await)?;
    Ok(done)
}

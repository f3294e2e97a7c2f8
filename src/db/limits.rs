//! Limits shared by every node on PostgreSQL: rate limits (GCRA) and the live streams each node
//! holds. Plain statements on the pool, outside any use case's transaction, except the message limit,
//! which is taken inside the post that it limits ([`gcra_in`], `db::messages::post_pg`).

use sqlx::{PgConnection, PgPool};

/// One attempt to take from a shared GCRA quota, inside the statement or transaction that does
/// what it limits (so a refused attempt writes nothing, and an allowed one counts only if its
/// write commits).
#[derive(Debug, Clone)]
pub struct Gcra {
    /// The quota's key (`msg:<user>`).
    pub key: String,
    /// Milliseconds between attempts.
    pub interval: i64,
    /// Attempts allowed at once.
    pub burst: i64,
}

/// The GCRA step as one statement: `$1` key, `$2` now, `$3` interval, `$4` burst; returns a row
/// when the attempt is allowed (and counted).
pub const GCRA: &str = "INSERT INTO rate_limits (key, tat) VALUES ($1, $2 + $3) \
     ON CONFLICT (key) DO UPDATE SET tat = GREATEST(rate_limits.tat, $2) + $3 \
     WHERE GREATEST(rate_limits.tat, $2) + $3 - $2 <= $3 * $4 \
     RETURNING tat";

/// Takes one attempt of `limit` at `now` on `conn`, inside the caller's transaction (the row
/// stays locked until it ends, and the count is undone if it rolls back): true when allowed.
pub async fn gcra_in(conn: &mut PgConnection, limit: &Gcra, now: i64) -> sqlx::Result<bool> {
    let row: Option<i64> = sqlx::query_scalar(GCRA)
        .bind(&limit.key)
        .bind(now)
        .bind(limit.interval)
        .bind(limit.burst)
        .fetch_optional(conn)
        .await?;
    Ok(row.is_some())
}

/// One attempt under `key` at `now` (ms), for a quota of one attempt every `interval` ms with
/// bursts of `burst`: true when allowed (and counted), false when the allowance is spent.
pub async fn gcra(
    pool: &PgPool,
    key: &str,
    now: i64,
    interval: i64,
    burst: i64,
) -> sqlx::Result<bool> {
    let row: Option<i64> = sqlx::query_scalar(GCRA)
        .bind(key)
        .bind(now)
        .bind(interval)
        .bind(burst)
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

/// Forgets keys whose allowance is full again.
pub async fn sweep(pool: &PgPool, now: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM rate_limits WHERE tat < $1")
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected())
}

/// Records a stream of `user` on `node` and says how many `user` has open on live nodes now.
pub async fn open_stream(
    pool: &PgPool,
    node: i64,
    stream: i64,
    user: i64,
    now: i64,
    alive_since: i64,
) -> sqlx::Result<i64> {
    sqlx::query(
        "INSERT INTO live_streams (node, stream, user_id, seen_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(node)
    .bind(stream)
    .bind(user)
    .bind(now)
    .execute(pool)
    .await?;
    sqlx::query_scalar("SELECT COUNT(*) FROM live_streams WHERE user_id = $1 AND seen_at > $2")
        .bind(user)
        .bind(alive_since)
        .fetch_one(pool)
        .await
}

/// A stream ended.
pub async fn close_stream(pool: &PgPool, node: i64, stream: i64) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM live_streams WHERE node = $1 AND stream = $2")
        .bind(node)
        .bind(stream)
        .execute(pool)
        .await?;
    Ok(())
}

/// This node is alive: its streams count on; rows of long-dead nodes go.
pub async fn refresh_streams(
    pool: &PgPool,
    node: i64,
    now: i64,
    forget_before: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE live_streams SET seen_at = $2 WHERE node = $1")
        .bind(node)
        .bind(now)
        .execute(pool)
        .await?;
    sqlx::query("DELETE FROM live_streams WHERE seen_at < $1")
        .bind(forget_before)
        .execute(pool)
        .await?;
    Ok(())
}

/// How many streams `user` has open on live nodes.
pub async fn count_streams(pool: &PgPool, user: i64, alive_since: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT COUNT(*) FROM live_streams WHERE user_id = $1 AND seen_at > $2")
        .bind(user)
        .bind(alive_since)
        .fetch_one(pool)
        .await
}

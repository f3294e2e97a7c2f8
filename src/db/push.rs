//! Web Push storage: the server's VAPID keys, each user's push subscriptions (devices), the
//! shared cursor of the push sender, and what the sender reads about a message's recipients.

use super::{Conn, exec, run};

/// A device as the settings page lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRow {
    /// Subscription id.
    pub id: i64,
    /// "Firefox on Android".
    pub label: String,
    /// The push service's URL for this browser.
    pub endpoint: String,
    /// Turned on at (ms).
    pub created_at: i64,
}

/// A subscription as the sender needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriptionRow {
    /// Id.
    pub id: i64,
    /// Whose.
    pub user_id: i64,
    /// The push service's URL.
    pub endpoint: String,
    /// The browser's public key, base64url.
    pub p256dh: String,
    /// The browser's auth secret, base64url.
    pub auth: String,
}

/// A member of a message's conversation, as the sender needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecipientRow {
    /// Member.
    pub user_id: i64,
    /// all, mentions, mute.
    pub notify: String,
    /// direct or group.
    pub kind: String,
    /// The group's title.
    pub title: Option<String>,
}

/// Stores a key pair unless one is there already (another node may have won the race).
pub async fn insert_keys_if_absent(
    c: &mut Conn<'_>,
    private_key: &str,
    public_key: &str,
    now: i64,
) -> sqlx::Result<()> {
    exec!(c, e => sqlx::query(
        "INSERT INTO push_keys (singleton, private_key, public_key, created_at) \
         VALUES (1, $1, $2, $3) ON CONFLICT (singleton) DO NOTHING",
    )
    .bind(private_key)
    .bind(public_key)
    .bind(now)
    .execute(&mut *e)
    .await)?;
    Ok(())
}

/// The stored key pair: (private, public), base64url.
pub async fn keys(c: &mut Conn<'_>) -> sqlx::Result<Option<(String, String)>> {
    run!(c, e => sqlx::query_as("SELECT private_key, public_key FROM push_keys WHERE singleton = 1")
        .fetch_optional(e)
        .await)
}

/// Starts the shared cursor at `cursor` unless a node did so before (history is never pushed).
pub async fn init_cursor(c: &mut Conn<'_>, cursor: i64, now: i64) -> sqlx::Result<()> {
    exec!(c, e => sqlx::query(
        "INSERT INTO push_state (singleton, cursor, updated_at) VALUES (1, $1, $2) \
         ON CONFLICT (singleton) DO NOTHING",
    )
    .bind(cursor)
    .bind(now)
    .execute(&mut *e)
    .await)?;
    Ok(())
}

/// The shared cursor.
pub async fn cursor(c: &mut Conn<'_>) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar("SELECT cursor FROM push_state WHERE singleton = 1")
        .fetch_one(e)
        .await)
}

/// Moves the shared cursor from `from` to `to`; false when another node moved it first (then
/// the events in between are that node's to push).
pub async fn advance_cursor(c: &mut Conn<'_>, from: i64, to: i64, now: i64) -> sqlx::Result<bool> {
    let n = exec!(c, e => sqlx::query(
        "UPDATE push_state SET cursor = $2, updated_at = $3 WHERE singleton = 1 AND cursor = $1",
    )
    .bind(from)
    .bind(to)
    .bind(now)
    .execute(&mut *e)
    .await)?;
    Ok(n == 1)
}

/// The payloads of messages logged in `(from, to]` after `since` (ms), in id order, at most
/// `limit`: what the push sender reads. Other events, old messages and messages in conversations
/// where no member has a device are skipped in SQL, so an instance (or a busy conversation)
/// without devices costs the sender one query per batch, not one per message.
pub async fn messages_between(
    c: &mut Conn<'_>,
    from: i64,
    to: i64,
    since: i64,
    limit: i64,
) -> sqlx::Result<Vec<(i64, String)>> {
    run!(c, e => sqlx::query_as(
        "SELECT id, payload FROM events WHERE id > $1 AND id <= $2 AND kind = 'MessageAdded' \
         AND created_at > $3 AND conversation_id IN (SELECT m.conversation_id \
           FROM push_subscriptions s JOIN members m ON m.user_id = s.user_id) \
         ORDER BY id LIMIT $4",
    )
    .bind(from)
    .bind(to)
    .bind(since)
    .bind(limit)
    .fetch_all(e)
    .await)
}

/// Stores a subscription for `user`; the same endpoint again (the same browser) replaces the
/// row, whoever it belonged to. Returns its id.
#[allow(clippy::too_many_arguments)]
pub async fn subscribe(
    c: &mut Conn<'_>,
    user: i64,
    endpoint: &str,
    p256dh: &str,
    auth: &str,
    label: &str,
    now: i64,
) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar(
        "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, label, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, p256dh = excluded.p256dh, \
         auth = excluded.auth, label = excluded.label, created_at = excluded.created_at \
         RETURNING id",
    )
    .bind(user)
    .bind(endpoint)
    .bind(p256dh)
    .bind(auth)
    .bind(label)
    .bind(now)
    .fetch_one(e)
    .await)
}

/// `user`'s devices other than `endpoint` (the limit counts those).
pub async fn count_other(c: &mut Conn<'_>, user: i64, endpoint: &str) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar(
        "SELECT COUNT(*) FROM push_subscriptions WHERE user_id = $1 AND endpoint <> $2",
    )
    .bind(user)
    .bind(endpoint)
    .fetch_one(e)
    .await)
}

/// `user`'s devices, oldest first.
pub async fn devices(c: &mut Conn<'_>, user: i64) -> sqlx::Result<Vec<DeviceRow>> {
    run!(c, e => sqlx::query_as(
        "SELECT id, label, endpoint, created_at FROM push_subscriptions WHERE user_id = $1 \
         ORDER BY id",
    )
    .bind(user)
    .fetch_all(e)
    .await)
}

/// Removes `user`'s device `id`; false when `user` has no such device.
pub async fn delete(c: &mut Conn<'_>, user: i64, id: i64) -> sqlx::Result<bool> {
    let n = exec!(c, e => sqlx::query(
        "DELETE FROM push_subscriptions WHERE id = $1 AND user_id = $2",
    )
    .bind(id)
    .bind(user)
    .execute(&mut *e)
    .await)?;
    Ok(n > 0)
}

/// Removes `user`'s device with `endpoint`; false when `user` has none.
pub async fn delete_endpoint(c: &mut Conn<'_>, user: i64, endpoint: &str) -> sqlx::Result<bool> {
    let n = exec!(c, e => sqlx::query(
        "DELETE FROM push_subscriptions WHERE endpoint = $1 AND user_id = $2",
    )
    .bind(endpoint)
    .bind(user)
    .execute(&mut *e)
    .await)?;
    Ok(n > 0)
}

/// Removes the subscription `id` with `endpoint` (its push service says it is gone); returns whose
/// it was, None when already gone or re-subscribed since.
pub async fn delete_dead(c: &mut Conn<'_>, id: i64, endpoint: &str) -> sqlx::Result<Option<i64>> {
    run!(c, e => sqlx::query_scalar(
        "DELETE FROM push_subscriptions WHERE id = $1 AND endpoint = $2 RETURNING user_id",
    )
    .bind(id)
    .bind(endpoint)
    .fetch_optional(e)
    .await)
}

/// The subscriptions of `users`.
pub async fn for_users(c: &mut Conn<'_>, users: &[i64]) -> sqlx::Result<Vec<SubscriptionRow>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id, user_id, endpoint, p256dh, auth FROM push_subscriptions \
         WHERE user_id IN ({}) ORDER BY id",
        super::placeholders(users.len())
    );
    run!(c, e => {
        let mut q = sqlx::query_as(&sql);
        for u in users {
            q = q.bind(*u);
        }
        q.fetch_all(e).await
    })
}

/// Active members of `conversation` who have at least one device, with their notification level
/// (a deactivated account's devices stay, silent, until it is reactivated).
pub async fn recipients(c: &mut Conn<'_>, conversation: i64) -> sqlx::Result<Vec<RecipientRow>> {
    run!(c, e => sqlx::query_as(
        "SELECT m.user_id, m.notify, c.kind, c.title FROM members m \
         JOIN conversations c ON c.id = m.conversation_id \
         JOIN users u ON u.id = m.user_id AND u.deactivated_at IS NULL \
         WHERE m.conversation_id = $1 \
         AND EXISTS (SELECT 1 FROM push_subscriptions s WHERE s.user_id = m.user_id)",
    )
    .bind(conversation)
    .fetch_all(e)
    .await)
}

/// Of `users`, those with a stream open on some live node (PostgreSQL: the `live_streams` rows
/// each node keeps fresh; `alive_since` drops the rows of nodes that stopped refreshing).
pub async fn streaming(
    pool: &sqlx::PgPool,
    users: &[i64],
    alive_since: i64,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar(
        "SELECT DISTINCT user_id FROM live_streams WHERE user_id = ANY($1) AND seen_at > $2",
    )
    .bind(users)
    .bind(alive_since)
    .fetch_all(pool)
    .await
}

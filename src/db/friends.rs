//! Friend requests and friendships.

use super::users::UserRef;
use super::{Conn, exec, run};

/// A friend request with both parties.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestRow {
    /// Id.
    pub id: i64,
    /// Who asked.
    pub requester_id: i64,
    /// Who was asked.
    pub recipient_id: i64,
    /// pending | accepted | rejected | cancelled.
    pub status: String,
    /// When it was sent.
    pub created_at: i64,
}

/// A request as a list shows it: the other party's face.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RequestListRow {
    /// Request id.
    pub id: i64,
    /// When it was sent.
    pub created_at: i64,
    /// The other party.
    pub other_id: i64,
    /// Their username.
    pub other_username: String,
    /// Their display name.
    pub other_display_name: String,
}

impl RequestListRow {
    /// The other party as a [`UserRef`].
    pub fn other(&self) -> UserRef {
        UserRef {
            id: self.other_id,
            username: self.other_username.clone(),
            display_name: self.other_display_name.clone(),
        }
    }
}

/// Inserts a pending request; a pending one between the pair already is a unique violation.
pub async fn insert_request(
    c: &mut Conn<'_>,
    requester: i64,
    recipient: i64,
    now: i64,
) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar(
        "INSERT INTO friend_requests (requester_id, recipient_id, status, created_at, updated_at) \
         VALUES ($1, $2, 'pending', $3, $3) RETURNING id",
    )
    .bind(requester)
    .bind(recipient)
    .bind(now)
    .fetch_one(e)
    .await)
}

/// The pending request between two users, in either direction.
pub async fn pending_between(c: &mut Conn<'_>, a: i64, b: i64) -> sqlx::Result<Option<RequestRow>> {
    run!(c, e => sqlx::query_as(
        "SELECT id, requester_id, recipient_id, status, created_at FROM friend_requests \
         WHERE status = 'pending' AND ((requester_id = $1 AND recipient_id = $2) \
         OR (requester_id = $2 AND recipient_id = $1))",
    )
    .bind(a)
    .bind(b)
    .fetch_optional(e)
    .await)
}

/// A request that `user` is a party of (None for anybody else: they must not learn it exists).
pub async fn request_for_party(
    c: &mut Conn<'_>,
    id: i64,
    user: i64,
) -> sqlx::Result<Option<RequestRow>> {
    run!(c, e => sqlx::query_as(
        "SELECT id, requester_id, recipient_id, status, created_at FROM friend_requests \
         WHERE id = $1 AND (requester_id = $2 OR recipient_id = $2)",
    )
    .bind(id)
    .bind(user)
    .fetch_optional(e)
    .await)
}

/// Moves a pending request to `status`; returns false when it was no longer pending (someone else
/// acted first), so exactly one of two racing actions wins.
pub async fn resolve_request(
    c: &mut Conn<'_>,
    id: i64,
    status: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let done = exec!(c, e => sqlx::query(
        "UPDATE friend_requests SET status = $1, updated_at = $2 WHERE id = $3 AND status = 'pending'",
    )
    .bind(status)
    .bind(now)
    .bind(id)
    .execute(e)
    .await)?;
    Ok(done == 1)
}

/// My pending incoming requests, newest first.
pub async fn incoming(c: &mut Conn<'_>, user: i64) -> sqlx::Result<Vec<RequestListRow>> {
    run!(c, e => sqlx::query_as(
        "SELECT r.id, r.created_at, u.id AS other_id, u.username AS other_username, \
         u.display_name AS other_display_name \
         FROM friend_requests r JOIN users u ON u.id = r.requester_id \
         WHERE r.recipient_id = $1 AND r.status = 'pending' ORDER BY r.id DESC",
    )
    .bind(user)
    .fetch_all(e)
    .await)
}

/// My pending outgoing requests, newest first.
pub async fn outgoing(c: &mut Conn<'_>, user: i64) -> sqlx::Result<Vec<RequestListRow>> {
    run!(c, e => sqlx::query_as(
        "SELECT r.id, r.created_at, u.id AS other_id, u.username AS other_username, \
         u.display_name AS other_display_name \
         FROM friend_requests r JOIN users u ON u.id = r.recipient_id \
         WHERE r.requester_id = $1 AND r.status = 'pending' ORDER BY r.id DESC",
    )
    .bind(user)
    .fetch_all(e)
    .await)
}

/// How many requests wait for my answer (the header badge).
pub async fn incoming_count(c: &mut Conn<'_>, user: i64) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar(
        "SELECT COUNT(*) FROM friend_requests WHERE recipient_id = $1 AND status = 'pending'",
    )
    .bind(user)
    .fetch_one(e)
    .await)
}

/// True when the two are friends.
pub async fn are_friends(c: &mut Conn<'_>, a: i64, b: i64) -> sqlx::Result<bool> {
    let n: i64 = run!(c, e => sqlx::query_scalar(
        "SELECT COUNT(*) FROM friendships WHERE user_id = $1 AND friend_id = $2",
    )
    .bind(a)
    .bind(b)
    .fetch_one(e)
    .await)?;
    Ok(n > 0)
}

/// Records the friendship both ways (idempotent).
pub async fn add_friendship(c: &mut Conn<'_>, a: i64, b: i64, now: i64) -> sqlx::Result<()> {
    exec!(c, e => sqlx::query(
        "INSERT INTO friendships (user_id, friend_id, created_at) VALUES ($1, $2, $3), ($2, $1, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(a)
    .bind(b)
    .bind(now)
    .execute(e)
    .await)?;
    Ok(())
}

/// Ends the friendship both ways; false when they were not friends.
pub async fn remove_friendship(c: &mut Conn<'_>, a: i64, b: i64) -> sqlx::Result<bool> {
    let done = exec!(c, e => sqlx::query(
        "DELETE FROM friendships WHERE (user_id = $1 AND friend_id = $2) OR (user_id = $2 AND friend_id = $1)",
    )
    .bind(a)
    .bind(b)
    .execute(e)
    .await)?;
    Ok(done > 0)
}

/// My friends, by name.
pub async fn friends_of(c: &mut Conn<'_>, user: i64) -> sqlx::Result<Vec<UserRef>> {
    run!(c, e => sqlx::query_as(
        "SELECT u.id, u.username, u.display_name FROM friendships f JOIN users u ON u.id = f.friend_id \
         WHERE f.user_id = $1 ORDER BY u.username",
    )
    .bind(user)
    .fetch_all(e)
    .await)
}

/// My friends' ids (for presence).
pub async fn friend_ids(c: &mut Conn<'_>, user: i64) -> sqlx::Result<Vec<i64>> {
    run!(c, e => sqlx::query_scalar("SELECT friend_id FROM friendships WHERE user_id = $1")
        .bind(user)
        .fetch_all(e)
        .await)
}

/// The other parties of `user`'s pending requests, either way.
pub async fn pending_parties(c: &mut Conn<'_>, user: i64) -> sqlx::Result<Vec<i64>> {
    run!(c, e => sqlx::query_scalar(
        "SELECT recipient_id FROM friend_requests WHERE requester_id = $1 AND status = 'pending' \
         UNION SELECT requester_id FROM friend_requests WHERE recipient_id = $1 AND status = 'pending'",
    )
    .bind(user)
    .fetch_all(e)
    .await)
}

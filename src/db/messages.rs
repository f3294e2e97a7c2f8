//! Messages.

use super::{Conn, run};

/// A message with its author's face.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    /// Id.
    pub id: i64,
    /// Conversation.
    pub conversation_id: i64,
    /// Author id.
    pub author_id: i64,
    /// Author username.
    pub author_username: String,
    /// Author display name.
    pub author_display_name: String,
    /// Text.
    pub body: String,
    /// When it was stored.
    pub created_at: i64,
}

const SELECT: &str = "SELECT m.id, m.conversation_id, m.author_id, u.username AS author_username, \
     u.display_name AS author_display_name, m.body, m.created_at \
     FROM messages m JOIN users u ON u.id = m.author_id";

/// Stores a message; None when this author already sent one with this client id (a retry).
pub async fn insert(
    c: &mut Conn<'_>,
    conversation: i64,
    author: i64,
    body: &str,
    client_id: Option<&str>,
    now: i64,
) -> sqlx::Result<Option<i64>> {
    run!(c, e => sqlx::query_scalar(
        "INSERT INTO messages (conversation_id, author_id, body, client_id, created_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (author_id, client_id) WHERE client_id IS NOT NULL DO NOTHING RETURNING id",
    )
    .bind(conversation)
    .bind(author)
    .bind(body)
    .bind(client_id)
    .bind(now)
    .fetch_optional(e)
    .await)
}

/// The message this author sent with this client id.
pub async fn by_client_id(
    c: &mut Conn<'_>,
    author: i64,
    client_id: &str,
) -> sqlx::Result<Option<MessageRow>> {
    let sql = format!("{SELECT} WHERE m.author_id = $1 AND m.client_id = $2");
    run!(c, e => sqlx::query_as(&sql)
        .bind(author)
        .bind(client_id)
        .fetch_optional(e)
        .await)
}

/// One message of a conversation.
pub async fn in_conversation(
    c: &mut Conn<'_>,
    conversation: i64,
    id: i64,
) -> sqlx::Result<Option<MessageRow>> {
    let sql = format!("{SELECT} WHERE m.conversation_id = $1 AND m.id = $2");
    run!(c, e => sqlx::query_as(&sql)
        .bind(conversation)
        .bind(id)
        .fetch_optional(e)
        .await)
}

/// Up to `limit` messages older than `before` (or the newest), oldest first.
pub async fn page(
    c: &mut Conn<'_>,
    conversation: i64,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<MessageRow>> {
    let sql =
        format!("{SELECT} WHERE m.conversation_id = $1 AND m.id < $2 ORDER BY m.id DESC LIMIT $3");
    let mut rows: Vec<MessageRow> = run!(c, e => sqlx::query_as(&sql)
        .bind(conversation)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(e)
        .await)?;
    rows.reverse();
    Ok(rows)
}

/// Author and time of the message before `message` in its conversation (grouping).
pub async fn before(
    c: &mut Conn<'_>,
    conversation: i64,
    message: i64,
) -> sqlx::Result<Option<(i64, i64)>> {
    run!(c, e => sqlx::query_as(
        "SELECT author_id, created_at FROM messages WHERE conversation_id = $1 AND id < $2 \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(conversation)
    .bind(message)
    .fetch_optional(e)
    .await)
}

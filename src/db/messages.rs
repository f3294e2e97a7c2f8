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

/// What posting in a conversation needs, read in one query: whether `user` is a member (None
/// otherwise, whether or not it exists), whether it takes messages (a direct conversation only
/// between friends), and the message before the new one (grouping).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PostContext {
    /// 1 when the conversation takes messages from `user`.
    pub open: i64,
    /// Author of the newest message so far.
    pub prev_author_id: Option<i64>,
    /// Its time.
    pub prev_created_at: Option<i64>,
}

/// Reads the [`PostContext`] of `user` in `conversation`, as the use case's first statement
/// (with the transaction's prefix, see `Tx::take_prefix`).
pub async fn post_context(
    tx: &mut super::Tx,
    conversation: i64,
    user: i64,
) -> sqlx::Result<Option<PostContext>> {
    let prefix = tx.take_prefix();
    let sql = format!("{prefix}{POST_CONTEXT}");
    let r = run!(&mut tx.conn(), e => sqlx::query_as(&sql)
        .bind(conversation)
        .bind(user)
        .fetch_optional(e)
        .await)?;
    tx.prefix_done();
    Ok(r)
}

const POST_CONTEXT: &str = "SELECT CASE WHEN c.kind <> 'direct' OR EXISTS (SELECT 1 FROM members o \
           JOIN friendships f ON f.user_id = $2 AND f.friend_id = o.user_id \
           WHERE o.conversation_id = c.id AND o.user_id <> $2) THEN CAST(1 AS BIGINT) ELSE CAST(0 AS BIGINT) END AS open, \
         lm.author_id AS prev_author_id, lm.created_at AS prev_created_at \
         FROM conversations c JOIN members m ON m.conversation_id = c.id AND m.user_id = $2 \
         LEFT JOIN messages lm ON lm.id = \
           (SELECT MAX(id) FROM messages WHERE conversation_id = c.id) \
         WHERE c.id = $1";

/// After a post: the conversation's newest message and activity move to it, the author's read
/// marker too; returns the author's unread messages over all conversations (their badge). One
/// round trip on either backend.
pub async fn after_post(
    c: &mut Conn<'_>,
    conversation: i64,
    author: i64,
    message: i64,
    now: i64,
) -> sqlx::Result<i64> {
    const TOUCH: &str =
        "UPDATE conversations SET last_message_id = $1, last_activity_at = $2 WHERE id = $3";
    const READ: &str = "UPDATE members SET last_read_message_id = $1 \
         WHERE conversation_id = $3 AND user_id = $4 AND last_read_message_id < $1";
    const UNREAD: &str = "SELECT COUNT(*) FROM members m JOIN messages x \
         ON x.conversation_id = m.conversation_id AND x.id > m.last_read_message_id \
         AND x.author_id <> $4 WHERE m.user_id = $4";
    match c {
        Conn::Sqlite(e) => {
            sqlx::query_scalar(&format!("{TOUCH}; {READ}; {UNREAD}"))
                .bind(message)
                .bind(now)
                .bind(conversation)
                .bind(author)
                .fetch_one(&mut **e)
                .await
        }
        Conn::Pg(e) => {
            // One statement: the updates as CTEs; the count reads the snapshot before them, so it
            // leaves this conversation out (after the post the author has nothing unread there).
            sqlx::query_scalar(
                "WITH t AS (UPDATE conversations SET last_message_id = $1, last_activity_at = $2 \
                 WHERE id = $3), r AS (UPDATE members SET last_read_message_id = $1 \
                 WHERE conversation_id = $3 AND user_id = $4 AND last_read_message_id < $1) \
                 SELECT COUNT(*) FROM members m JOIN messages x \
                 ON x.conversation_id = m.conversation_id AND x.id > m.last_read_message_id \
                 AND x.author_id <> $4 WHERE m.user_id = $4 AND m.conversation_id <> $3",
            )
            .bind(message)
            .bind(now)
            .bind(conversation)
            .bind(author)
            .fetch_one(&mut **e)
            .await
        }
    }
}

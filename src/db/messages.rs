//! Messages.

use super::{Conn, exec, run};

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
    /// When it was last edited.
    pub edited_at: Option<i64>,
    /// The message it replies to.
    pub reply_to_id: Option<i64>,
    /// `text` or `note`.
    pub kind: String,
}

const SELECT: &str = "SELECT m.id, m.conversation_id, m.author_id, u.username AS author_username, \
     u.display_name AS author_display_name, m.body, m.created_at, m.edited_at, m.reply_to_id, m.kind \
     FROM messages m JOIN users u ON u.id = m.author_id";

/// Stores a message; None when this author already sent one with this client id (a retry).
pub async fn insert(
    c: &mut Conn<'_>,
    conversation: i64,
    author: i64,
    body: &str,
    client_id: Option<&str>,
    reply_to: Option<i64>,
    now: i64,
) -> sqlx::Result<Option<i64>> {
    run!(c, e => sqlx::query_scalar(
        "INSERT INTO messages (conversation_id, author_id, body, client_id, reply_to_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (author_id, client_id) WHERE client_id IS NOT NULL DO NOTHING RETURNING id",
    )
    .bind(conversation)
    .bind(author)
    .bind(body)
    .bind(client_id)
    .bind(reply_to)
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

/// Author, time and kind of the message before `message` in its conversation (grouping).
pub async fn before(
    c: &mut Conn<'_>,
    conversation: i64,
    message: i64,
) -> sqlx::Result<Option<(i64, i64, String)>> {
    run!(c, e => sqlx::query_as(
        "SELECT author_id, created_at, kind FROM messages WHERE conversation_id = $1 AND id < $2 \
         ORDER BY id DESC LIMIT 1",
    )
    .bind(conversation)
    .bind(message)
    .fetch_optional(e)
    .await)
}

/// The message after `message` in its conversation (regrouped when `message` goes).
pub async fn next_after(
    c: &mut Conn<'_>,
    conversation: i64,
    message: i64,
) -> sqlx::Result<Option<MessageRow>> {
    let sql = format!("{SELECT} WHERE m.conversation_id = $1 AND m.id > $2 ORDER BY m.id LIMIT 1");
    run!(c, e => sqlx::query_as(&sql)
        .bind(conversation)
        .bind(message)
        .fetch_optional(e)
        .await)
}

/// Replaces a message's text.
pub async fn update_body(c: &mut Conn<'_>, id: i64, body: &str, now: i64) -> sqlx::Result<()> {
    exec!(c, e => sqlx::query("UPDATE messages SET body = $1, edited_at = $2 WHERE id = $3")
        .bind(body)
        .bind(now)
        .bind(id)
        .execute(e)
        .await)?;
    Ok(())
}

/// Deletes a message (its reactions and mentions go with it).
pub async fn delete(c: &mut Conn<'_>, id: i64) -> sqlx::Result<()> {
    exec!(c, e => sqlx::query("DELETE FROM messages WHERE id = $1")
        .bind(id)
        .execute(e)
        .await)?;
    Ok(())
}

/// Ids of the messages that reply to `id`.
pub async fn replies_to(c: &mut Conn<'_>, id: i64) -> sqlx::Result<Vec<i64>> {
    run!(c, e => sqlx::query_scalar("SELECT id FROM messages WHERE reply_to_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(e)
        .await)
}

/// Messages by id, with their authors (quotes of replies).
pub async fn by_ids(c: &mut Conn<'_>, ids: &[i64]) -> sqlx::Result<Vec<MessageRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("{SELECT} WHERE m.id IN ({})", placeholders(ids.len()));
    run!(c, e => {
        let mut q = sqlx::query_as(&sql);
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(e).await
    })
}

/// A reaction of someone to a message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReactionRow {
    /// The message.
    pub message_id: i64,
    /// The emoji.
    pub emoji: String,
    /// Who.
    pub user_id: i64,
    /// Their username.
    pub username: String,
    /// Their display name.
    pub display_name: String,
}

/// The reactions to these messages, oldest first.
pub async fn reactions_of(c: &mut Conn<'_>, ids: &[i64]) -> sqlx::Result<Vec<ReactionRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT r.message_id, r.emoji, r.user_id, u.username, u.display_name FROM reactions r \
         JOIN users u ON u.id = r.user_id WHERE r.message_id IN ({}) \
         ORDER BY r.created_at, r.user_id",
        placeholders(ids.len())
    );
    run!(c, e => {
        let mut q = sqlx::query_as(&sql);
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(e).await
    })
}

/// Adds the reaction, or takes it back if it was there; true when added.
pub async fn toggle_reaction(
    c: &mut Conn<'_>,
    message: i64,
    user: i64,
    emoji: &str,
    now: i64,
) -> sqlx::Result<bool> {
    let removed = exec!(c, e => sqlx::query(
        "DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3",
    )
    .bind(message)
    .bind(user)
    .bind(emoji)
    .execute(&mut *e)
    .await)?;
    if removed > 0 {
        return Ok(false);
    }
    exec!(c, e => sqlx::query(
        "INSERT INTO reactions (message_id, user_id, emoji, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(message)
    .bind(user)
    .bind(emoji)
    .bind(now)
    .execute(e)
    .await)?;
    Ok(true)
}

/// A member named in a message.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MentionRow {
    /// The message.
    pub message_id: i64,
    /// Who is named.
    pub user_id: i64,
    /// Their username.
    pub username: String,
}

/// Who these messages name.
pub async fn mentions_of(c: &mut Conn<'_>, ids: &[i64]) -> sqlx::Result<Vec<MentionRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT n.message_id, n.user_id, u.username FROM mentions n JOIN users u ON u.id = n.user_id \
         WHERE n.message_id IN ({}) ORDER BY n.user_id",
        placeholders(ids.len())
    );
    run!(c, e => {
        let mut q = sqlx::query_as(&sql);
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(e).await
    })
}

/// Sets who a message names.
pub async fn set_mentions(c: &mut Conn<'_>, message: i64, users: &[i64]) -> sqlx::Result<()> {
    exec!(c, e => sqlx::query("DELETE FROM mentions WHERE message_id = $1")
        .bind(message)
        .execute(&mut *e)
        .await)?;
    for u in users {
        exec!(c, e => sqlx::query("INSERT INTO mentions (message_id, user_id) VALUES ($1, $2)")
            .bind(message)
            .bind(*u)
            .execute(&mut *e)
            .await)?;
    }
    Ok(())
}

/// `$1, $2, …, $n`.
fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Stores a note about the group ("added @cat"), by `actor`.
pub async fn insert_note(
    c: &mut Conn<'_>,
    conversation: i64,
    actor: i64,
    text: &str,
    now: i64,
) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar(
        "INSERT INTO messages (conversation_id, author_id, body, kind, created_at) \
         VALUES ($1, $2, $3, 'note', $4) RETURNING id",
    )
    .bind(conversation)
    .bind(actor)
    .bind(text)
    .bind(now)
    .fetch_one(e)
    .await)
}

/// How many messages a conversation has after `message`.
pub async fn count_after(c: &mut Conn<'_>, conversation: i64, message: i64) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar(
        "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND id > $2",
    )
    .bind(conversation)
    .bind(message)
    .fetch_one(e)
    .await)
}

/// Up to `limit` messages newer than `after`, oldest first (a newer page, a permalink's context).
pub async fn page_after(
    c: &mut Conn<'_>,
    conversation: i64,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<MessageRow>> {
    let sql = format!("{SELECT} WHERE m.conversation_id = $1 AND m.id > $2 ORDER BY m.id LIMIT $3");
    run!(c, e => sqlx::query_as(&sql)
        .bind(conversation)
        .bind(after)
        .bind(limit)
        .fetch_all(e)
        .await)
}

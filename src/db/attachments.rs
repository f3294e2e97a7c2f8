//! Attachments: the rows that describe the files of messages (the bytes are in the files directory).

use super::{Conn, run};

/// One attachment.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttachmentRow {
    /// Id.
    pub id: i64,
    /// Its message.
    pub message_id: i64,
    /// Where the bytes are (the files directory's key).
    pub storage_key: String,
    /// The file name as uploaded.
    pub name: String,
    /// Bytes.
    pub size: i64,
    /// An image type served inline; None: a download.
    pub content_type: Option<String>,
    /// The thumbnail's type, if it has one.
    pub thumb_type: Option<String>,
    /// Thumbnail width.
    pub thumb_width: Option<i64>,
    /// Thumbnail height.
    pub thumb_height: Option<i64>,
}

const SELECT: &str = "SELECT a.id, a.message_id, a.storage_key, a.name, a.size, a.content_type, \
     a.thumb_type, a.thumb_width, a.thumb_height FROM attachments a";

/// What to store of one file.
#[derive(Debug, Clone)]
pub struct NewAttachment<'a> {
    /// Where the bytes are.
    pub storage_key: &'a str,
    /// The file name as uploaded.
    pub name: &'a str,
    /// Bytes.
    pub size: i64,
    /// An image type served inline; None: a download.
    pub content_type: Option<&'a str>,
    /// The thumbnail: type, width, height.
    pub thumb: Option<(&'a str, i64, i64)>,
}

/// Stores the files of a new message, in order; returns their ids.
pub async fn insert(
    c: &mut Conn<'_>,
    message: i64,
    files: &[NewAttachment<'_>],
    now: i64,
) -> sqlx::Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(files.len());
    for (position, f) in files.iter().enumerate() {
        let id: i64 = run!(c, e => sqlx::query_scalar(
            "INSERT INTO attachments (message_id, position, storage_key, name, size, content_type, \
             thumb_type, thumb_width, thumb_height, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(message)
        .bind(position as i64)
        .bind(f.storage_key)
        .bind(f.name)
        .bind(f.size)
        .bind(f.content_type)
        .bind(f.thumb.map(|t| t.0))
        .bind(f.thumb.map(|t| t.1))
        .bind(f.thumb.map(|t| t.2))
        .bind(now)
        .fetch_one(&mut *e)
        .await)?;
        ids.push(id);
    }
    Ok(ids)
}

/// The files of these messages, in message and upload order.
pub async fn of_messages(c: &mut Conn<'_>, ids: &[i64]) -> sqlx::Result<Vec<AttachmentRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{SELECT} WHERE a.message_id IN ({}) ORDER BY a.message_id, a.position",
        super::placeholders(ids.len())
    );
    run!(c, e => {
        let mut q = sqlx::query_as(&sql);
        for id in ids {
            q = q.bind(*id);
        }
        q.fetch_all(e).await
    })
}

/// One attachment of a conversation I am a member of (membership checked in the same query);
/// None for strangers, removed members and unknown ids alike.
pub async fn readable(
    c: &mut Conn<'_>,
    conversation: i64,
    id: i64,
    user: i64,
) -> sqlx::Result<Option<AttachmentRow>> {
    let sql = format!(
        "{SELECT} JOIN messages m ON m.id = a.message_id \
         JOIN members mb ON mb.conversation_id = m.conversation_id AND mb.user_id = $3 \
         WHERE a.id = $1 AND m.conversation_id = $2"
    );
    run!(c, e => sqlx::query_as(&sql)
        .bind(id)
        .bind(conversation)
        .bind(user)
        .fetch_optional(e)
        .await)
}

/// The storage keys of a message's files (to remove them once its deletion is committed).
pub async fn keys_of_message(c: &mut Conn<'_>, message: i64) -> sqlx::Result<Vec<String>> {
    run!(c, e => sqlx::query_scalar("SELECT storage_key FROM attachments WHERE message_id = $1")
        .bind(message)
        .fetch_all(e)
        .await)
}

/// The storage keys of every file of a conversation.
pub async fn keys_of_conversation(
    c: &mut Conn<'_>,
    conversation: i64,
) -> sqlx::Result<Vec<String>> {
    run!(c, e => sqlx::query_scalar(
        "SELECT a.storage_key FROM attachments a JOIN messages m ON m.id = a.message_id \
         WHERE m.conversation_id = $1",
    )
    .bind(conversation)
    .fetch_all(e)
    .await)
}

/// Which of `keys` have a row.
pub async fn existing_keys(
    c: &mut Conn<'_>,
    keys: &[String],
) -> sqlx::Result<std::collections::HashSet<String>> {
    if keys.is_empty() {
        return Ok(Default::default());
    }
    let sql = format!(
        "SELECT storage_key FROM attachments WHERE storage_key IN ({})",
        super::placeholders(keys.len())
    );
    let found: Vec<String> = run!(c, e => {
        let mut q = sqlx::query_scalar(&sql);
        for k in keys {
            q = q.bind(k);
        }
        q.fetch_all(e).await
    })?;
    Ok(found.into_iter().collect())
}

/// Every storage key (backups copy these files).
pub async fn all_keys(c: &mut Conn<'_>) -> sqlx::Result<Vec<String>> {
    run!(c, e => sqlx::query_scalar("SELECT storage_key FROM attachments ORDER BY id")
        .fetch_all(e)
        .await)
}

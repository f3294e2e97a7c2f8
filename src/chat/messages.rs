//! Messages and read markers.

use crate::db::messages::MessageRow;
use crate::db::users::UserRef;
use crate::db::{self};
use crate::domain::{ClientId, MessageBody};
use crate::error::{AppError, AppResult};
use crate::events::{Event, MessageData, PrevMessage};

use super::{Ctx, commit, member_of, record};

/// The message as events carry it; `prev` is the message before it, for grouping.
pub fn data_of(m: &MessageRow, prev: Option<PrevMessage>) -> MessageData {
    MessageData {
        id: m.id,
        conversation_id: m.conversation_id,
        author: crate::db::users::UserRef {
            id: m.author_id,
            username: m.author_username.clone(),
            display_name: m.author_display_name.clone(),
        },
        body: m.body.clone(),
        created_at: m.created_at,
        prev,
    }
}

/// What grouping needs of a message row.
pub fn prev_of(m: &MessageRow) -> PrevMessage {
    PrevMessage {
        author_id: m.author_id,
        created_at: m.created_at,
    }
}

/// The message before `message_id` in its conversation, for grouping.
pub async fn prev_message(
    c: &mut db::Conn<'_>,
    conversation_id: i64,
    message_id: i64,
) -> AppResult<Option<PrevMessage>> {
    Ok(db::messages::before(c, conversation_id, message_id)
        .await?
        .map(|(author_id, created_at)| PrevMessage {
            author_id,
            created_at,
        }))
}

/// Posts a message. A retry with the same client id returns the message stored the first time
/// and records nothing new.
#[tracing::instrument(skip_all, fields(user_id = me.id, conversation_id))]
pub async fn post(
    cx: &Ctx<'_>,
    me: &UserRef,
    conversation_id: i64,
    body: &MessageBody,
    client_id: Option<&ClientId>,
) -> AppResult<MessageData> {
    let mut tx = cx.db.begin_deferred().await?;
    // Membership, whether it takes messages, and the message before: one query, first.
    let ctx = db::messages::post_context(&mut tx, conversation_id, me.id)
        .await?
        .ok_or(AppError::NotFound)?;
    if ctx.open == 0 {
        return Err(AppError::invalid(
            "body",
            "You are no longer friends, so this conversation is read-only.",
        ));
    }
    let now = db::now_ms();
    let inserted = db::messages::insert(
        &mut tx.conn(),
        conversation_id,
        me.id,
        body.as_str(),
        client_id.map(ClientId::as_str),
        now,
    )
    .await?;
    let Some(id) = inserted else {
        // The same send raced us and committed first: answer with its message.
        let cid = client_id.map(ClientId::as_str).unwrap_or_default();
        let row = db::messages::by_client_id(&mut tx.conn(), me.id, cid)
            .await?
            .filter(|m| m.conversation_id == conversation_id)
            .ok_or_else(|| AppError::invalid("client_id", "That client id was used elsewhere."))?;
        let prev = prev_message(&mut tx.conn(), conversation_id, row.id).await?;
        return Ok(data_of(&row, prev));
    };
    // The conversation moves to it, and the author has read what they wrote.
    let author_total_unread =
        db::messages::after_post(&mut tx.conn(), conversation_id, me.id, id, now).await?;
    let prev = match (ctx.prev_author_id, ctx.prev_created_at) {
        (Some(author_id), Some(created_at)) => Some(PrevMessage {
            author_id,
            created_at,
        }),
        _ => None,
    };
    let message = MessageData {
        id,
        conversation_id,
        author: me.clone(),
        body: body.as_str().to_owned(),
        created_at: now,
        prev,
    };
    record(
        &mut tx,
        Event::MessageAdded {
            message: message.clone(),
            author_total_unread,
        },
        // A conversation event: its audience is the conversation's members.
        Vec::new(),
    )
    .await?;
    commit(cx, tx).await?;
    Ok(message)
}

/// Moves my read marker forward to `message_id` (never back). Returns whether it moved.
#[tracing::instrument(skip_all, fields(user_id = me.id, conversation_id))]
pub async fn mark_read(
    cx: &Ctx<'_>,
    me: &UserRef,
    conversation_id: i64,
    message_id: i64,
) -> AppResult<bool> {
    let mut tx = cx.db.begin().await?;
    member_of(&mut tx, conversation_id, me.id).await?;
    if db::messages::in_conversation(&mut tx.conn(), conversation_id, message_id)
        .await?
        .is_none()
    {
        return Err(AppError::invalid(
            "message_id",
            "There is no such message in this conversation.",
        ));
    }
    if !db::conversations::mark_read(&mut tx.conn(), conversation_id, me.id, message_id).await? {
        return Ok(false);
    }
    let unread = db::conversations::unread_in(&mut tx.conn(), conversation_id, me.id).await?;
    let total_unread = db::conversations::total_unread(&mut tx.conn(), me.id).await?;
    record(
        &mut tx,
        Event::MessagesRead {
            conversation_id,
            reader: me.clone(),
            message_id,
            unread,
            total_unread,
        },
        Vec::new(),
    )
    .await?;
    commit(cx, tx).await?;
    Ok(true)
}

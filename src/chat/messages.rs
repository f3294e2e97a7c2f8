//! Messages and read markers.

use std::collections::HashMap;

use crate::db::messages::MessageRow;
use crate::db::users::UserRef;
use crate::db::{self, Tx};
use crate::domain::{ClientId, MessageBody};
use crate::error::{AppError, AppResult};
use crate::events::{Event, MentionData, MessageData, PrevMessage, Quote, ReactionData};
use crate::files::Stored;
use crate::views::markup;

use super::{Ctx, commit, member_of, record};

/// Why an edit is refused to anyone but the author.
pub const ONLY_AUTHOR_EDITS: &str = "Only the person who wrote a message can edit it.";
/// Why a delete is refused.
pub const ONLY_AUTHOR_OR_OWNER_DELETES: &str =
    "Only the person who wrote a message, or the group's owner, can delete it.";
/// Why a note (someone joined, left, renamed the group) cannot be edited or deleted.
const NOTES_STAY: &str =
    "Notes about the conversation (who joined or left, a new title) stay as they are.";

/// The message as events carry it, without its reactions, mentions and quote (see [`hydrate`]);
/// `prev` is the message before it, for grouping.
pub fn data_of(m: &MessageRow, prev: Option<PrevMessage>) -> MessageData {
    MessageData {
        id: m.id,
        conversation_id: m.conversation_id,
        author: author_of(m),
        body: m.body.clone(),
        created_at: m.created_at,
        prev,
        edited: m.edited_at.is_some(),
        reply: None,
        reactions: Vec::new(),
        mentions: Vec::new(),
        note: m.kind == "note",
        attachments: Vec::new(),
    }
}

fn author_of(m: &MessageRow) -> UserRef {
    UserRef {
        id: m.author_id,
        username: m.author_username.clone(),
        display_name: m.author_display_name.clone(),
    }
}

/// Messages (oldest first) as events and pages carry them, with reactions, mentions and the
/// quote of what they answer: three queries for any number of messages. `prev` is the message
/// before the first.
pub async fn hydrate(
    c: &mut db::Conn<'_>,
    rows: &[MessageRow],
    mut prev: Option<PrevMessage>,
) -> AppResult<Vec<MessageData>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let reactions = db::messages::reactions_of(c, &ids).await?;
    let mentions = db::messages::mentions_of(c, &ids).await?;
    let files = db::attachments::of_messages(c, &ids).await?;
    let mut quoted: Vec<i64> = rows.iter().filter_map(|r| r.reply_to_id).collect();
    quoted.sort_unstable();
    quoted.dedup();
    let originals: HashMap<i64, MessageRow> = db::messages::by_ids(c, &quoted)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut d = data_of(row, prev);
        prev = Some(prev_of(row));
        d.reply = row.reply_to_id.map(|id| Quote {
            id,
            original: originals.get(&id).map(|o| (author_of(o), o.body.clone())),
        });
        for r in reactions.iter().filter(|r| r.message_id == row.id) {
            let who = UserRef {
                id: r.user_id,
                username: r.username.clone(),
                display_name: r.display_name.clone(),
            };
            match d.reactions.iter_mut().find(|x| x.emoji == r.emoji) {
                Some(x) => x.users.push(who),
                None => d.reactions.push(ReactionData {
                    emoji: r.emoji.clone(),
                    users: vec![who],
                }),
            }
        }
        d.mentions = mentions
            .iter()
            .filter(|m| m.message_id == row.id)
            .map(|m| MentionData {
                id: m.user_id,
                username: m.username.clone(),
            })
            .collect();
        d.attachments = files
            .iter()
            .filter(|a| a.message_id == row.id)
            .map(super::attachments::data_of)
            .collect();
        out.push(d);
    }
    Ok(out)
}

/// One message of a conversation, whole; None when it is not there.
pub async fn load(
    c: &mut db::Conn<'_>,
    conversation_id: i64,
    id: i64,
) -> AppResult<Option<MessageData>> {
    let Some(row) = db::messages::in_conversation(c, conversation_id, id).await? else {
        return Ok(None);
    };
    let prev = prev_message(c, conversation_id, id).await?;
    Ok(hydrate(c, &[row], prev).await?.pop())
}

/// Resolves `@name`s in `body` against the conversation's members and records who is named
/// (for a `new` message that names nobody there is nothing to read or write).
async fn set_mentions(
    tx: &mut Tx,
    conversation_id: i64,
    message: i64,
    body: &str,
    new: bool,
) -> AppResult<Vec<MentionData>> {
    let names = markup::mentioned_names(body);
    if names.is_empty() && new {
        return Ok(Vec::new());
    }
    let named = db::conversations::members_named(&mut tx.conn(), conversation_id, &names).await?;
    db::messages::set_mentions(&mut tx.conn(), message, &named).await?;
    Ok(db::messages::mentions_of(&mut tx.conn(), &[message])
        .await?
        .into_iter()
        .map(|m| MentionData {
            id: m.user_id,
            username: m.username,
        })
        .collect())
}

/// What grouping needs of a message row.
pub fn prev_of(m: &MessageRow) -> PrevMessage {
    PrevMessage {
        author_id: m.author_id,
        created_at: m.created_at,
        note: m.kind == "note",
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
        .map(|(author_id, created_at, kind)| PrevMessage {
            author_id,
            created_at,
            note: kind == "note",
        }))
}

/// Posts a message. A retry with the same client id returns the message stored the first time
/// and records nothing new. `shared`: the shared rate limit (PostgreSQL), taken inside the post:
/// a refused post writes nothing, and one that fails otherwise does not count.
#[tracing::instrument(skip_all, fields(user_id = me.id, conversation_id))]
#[allow(clippy::too_many_arguments)]
pub async fn post(
    cx: &Ctx<'_>,
    me: &UserRef,
    conversation_id: i64,
    body: &MessageBody,
    client_id: Option<&ClientId>,
    reply_to: Option<i64>,
    files: &[Stored],
    mut shared: Option<&db::limits::Gcra>,
) -> AppResult<MessageData> {
    // A plain post joins concurrent ones in one call to the SQLite writer (`posting`).
    if reply_to.is_none()
        && files.is_empty()
        && markup::mentioned_names(body.as_str()).is_empty()
        && let Some(rx) = cx.posts.submit(
            me.clone(),
            conversation_id,
            body.as_str().to_owned(),
            client_id.map(|c| c.as_str().to_owned()),
        )
    {
        match rx.await {
            Ok(super::posting::Outcome::Done(r)) => return *r,
            // Not placed there (or the combiner is gone): the usual way.
            Ok(super::posting::Outcome::Alone) | Err(_) => {}
        }
    }
    let now = db::now_ms();
    if let db::Db::Postgres(pool) = cx.db
        && reply_to.is_none()
        && files.is_empty()
        && markup::mentioned_names(body.as_str()).is_empty()
        && let Some(m) = post_plain_pg(
            cx,
            pool,
            me,
            conversation_id,
            body,
            client_id,
            now,
            &mut shared,
        )
        .await?
    {
        return Ok(m);
    }
    let mut tx = cx.db.begin_deferred().await?;
    db::messages::lock_timeline(&mut tx, conversation_id).await?;
    if let (Tx::Pg(t, ..), Some(limit)) = (&mut tx, shared)
        && !db::limits::gcra_in(t, limit, now).await?
    {
        // Dropping `tx` rolls the count back with everything else.
        return Err(AppError::message_throttled());
    }
    // Membership, whether it takes messages, the message before, the insert, the conversation
    // and the author's read marker moving to it, and the author's badge: one call.
    let posted = db::messages::post(
        &mut tx,
        conversation_id,
        me.id,
        body.as_str(),
        client_id.map(ClientId::as_str),
        reply_to,
        now,
    )
    .await?;
    let ctx = posted.ctx.ok_or(AppError::NotFound)?;
    if ctx.open == 0 {
        return Err(super::posting::read_only());
    }
    let Some(id) = posted.id else {
        // The same send raced us and committed first: answer with its message.
        let cid = client_id.map(ClientId::as_str).unwrap_or_default();
        let row = db::messages::by_client_id(&mut tx.conn(), me.id, cid)
            .await?
            .filter(|m| m.conversation_id == conversation_id)
            .ok_or_else(|| AppError::invalid("client_id", "That client id was used elsewhere."))?;
        return load(&mut tx.conn(), conversation_id, row.id)
            .await?
            .ok_or(AppError::NotFound);
    };
    let reply_gone = || {
        AppError::invalid(
            "reply_to",
            "The message you answer is not in this conversation any more.",
        )
    };
    if !posted.reply_ok {
        // Dropping `tx` takes the insert back.
        return Err(reply_gone());
    }
    let reply = match reply_to {
        None => None,
        Some(r) => Some(
            db::messages::in_conversation(&mut tx.conn(), conversation_id, r)
                .await?
                .ok_or_else(reply_gone)?,
        ),
    };
    let author_total_unread = posted.author_total_unread;
    let attachments = super::attachments::attach(&mut tx, id, files, now).await?;
    let mentions = set_mentions(&mut tx, conversation_id, id, body.as_str(), true).await?;
    // Built from what the post already knows: a new message has no reactions and is not edited.
    let mut message =
        super::posting::new_message(me, conversation_id, body.as_str(), now, id, &ctx);
    message.reply = reply.map(|o| Quote {
        id: o.id,
        original: Some((author_of(&o), o.body.clone())),
    });
    message.mentions = mentions;
    message.attachments = attachments;
    record(
        &mut tx,
        Event::MessageAdded {
            message: message.clone(),
            author_total_unread,
            author_gone: false,
        },
        // A conversation event: its audience is the conversation's members.
        Vec::new(),
    )
    .await?;
    commit(cx, tx).await?;
    Ok(message)
}

/// Sentinels standing for what only the post's statement knows (see `db::messages::post_pg`):
/// negative, so no real id, time or count has them, and as JSON numbers after a key they cannot
/// occur inside a string (where a quote is always escaped).
const SENTINEL_ID: i64 = -7_340_981_226_519_004_101;
const SENTINEL_PREV_AUTHOR: i64 = -7_340_981_226_519_004_102;
const SENTINEL_PREV_AT: i64 = -7_340_981_226_519_004_103;
const SENTINEL_UNREAD: i64 = -7_340_981_226_519_004_104;

/// A plain post (no reply, attachment or mention) on PostgreSQL: one statement, one round trip
/// (`db::messages::post_pg`). `None` when it cannot be done that way (then the general path
/// runs, which answers a retried client id too; `shared` is taken away once it was counted).
#[allow(clippy::too_many_arguments)]
async fn post_plain_pg(
    cx: &Ctx<'_>,
    pool: &sqlx::PgPool,
    me: &UserRef,
    conversation_id: i64,
    body: &MessageBody,
    client_id: Option<&ClientId>,
    now: i64,
    shared: &mut Option<&db::limits::Gcra>,
) -> AppResult<Option<MessageData>> {
    // The event's text with placeholders for what the statement fills in (id, previous
    // message, badge).
    let placeholders = db::messages::PostContext {
        open: 1,
        prev_author_id: Some(SENTINEL_PREV_AUTHOR),
        prev_created_at: Some(SENTINEL_PREV_AT),
        prev_kind: None,
    };
    let mut message = super::posting::new_message(
        me,
        conversation_id,
        body.as_str(),
        now,
        SENTINEL_ID,
        &placeholders,
    );
    let event = Event::MessageAdded {
        message: message.clone(),
        author_total_unread: SENTINEL_UNREAD,
        author_gone: false,
    };
    let json = serde_json::to_string(&event).map_err(anyhow::Error::from)?;
    let prev_json = serde_json::to_string(&message.prev).map_err(anyhow::Error::from)?;
    let id = format!("\"id\":{SENTINEL_ID}");
    let prev = format!("\"prev\":{prev_json}");
    let unread = format!("\"author_total_unread\":{SENTINEL_UNREAD}");
    if [&id, &prev, &unread]
        .iter()
        .any(|p| json.matches(p.as_str()).count() != 1)
    {
        // The event's JSON is not shaped as expected: take the general path.
        tracing::warn!("MessageAdded payload template does not match; posting in a transaction");
        return Ok(None);
    }
    let template = db::messages::PayloadTemplate {
        json: &json,
        id: &id,
        prev: &prev,
        unread: &unread,
    };
    let turn = cx.posts.turn(conversation_id).await;
    let mut conn = pool.acquire().await?;
    let started = std::time::Instant::now();
    let posted = match db::messages::post_pg(
        &mut conn,
        conversation_id,
        me.id,
        body.as_str(),
        client_id.map(ClientId::as_str),
        now,
        *shared,
        &template,
    )
    .await
    {
        // Another post to this conversation came first (nothing of ours was kept): post in a
        // transaction that waits for it.
        Err(e) if db::messages::is_raced(&e) => return Ok(None),
        r => r?,
    };
    drop(conn);
    drop(turn);
    if posted.ctx.is_some() && !posted.locked {
        // Another post to this conversation is under way; nothing was written.
        return Ok(None);
    }
    if posted.allowed && posted.ctx.as_ref().is_some_and(|c| c.open == 1) {
        *shared = None;
    }
    let ctx = posted.ctx.ok_or(AppError::NotFound)?;
    if ctx.open == 0 {
        return Err(AppError::invalid(
            "body",
            "You are no longer friends, so this conversation is read-only.",
        ));
    }
    if !posted.allowed {
        return Err(AppError::message_throttled());
    }
    let Some(id) = posted.id else {
        // A retry of a client id: the general path answers with the message stored first.
        return Ok(None);
    };
    metrics::histogram!(db::DB_COMMIT, "backend" => "postgres")
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(super::EVENTS_WRITTEN).increment(1);
    cx.hub.committed_quietly(posted.event_id.unwrap_or(0));
    message.id = id;
    message.prev = super::posting::prev_of(&ctx);
    Ok(Some(message))
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
    let unread_mentions =
        db::conversations::unread_mentions_in(&mut tx.conn(), conversation_id, me.id).await?;
    record(
        &mut tx,
        Event::MessagesRead {
            conversation_id,
            reader: me.clone(),
            message_id,
            unread,
            total_unread,
            unread_mentions,
        },
        Vec::new(),
    )
    .await?;
    commit(cx, tx).await?;
    Ok(true)
}

/// A message of a conversation I am in, for changing it; 404 when I cannot see it.
async fn message_in(tx: &mut Tx, me: i64, conversation_id: i64, id: i64) -> AppResult<MessageRow> {
    member_of(tx, conversation_id, me).await?;
    db::messages::in_conversation(&mut tx.conn(), conversation_id, id)
        .await?
        .ok_or(AppError::NotFound)
}

/// Changes the text of my own message; its receipts, reactions and replies stay.
#[tracing::instrument(skip_all, fields(user_id = me.id, conversation_id, message_id = id))]
pub async fn edit(
    cx: &Ctx<'_>,
    me: &UserRef,
    conversation_id: i64,
    id: i64,
    body: &MessageBody,
) -> AppResult<MessageData> {
    let mut tx = cx.db.begin().await?;
    // In line with posts to the conversation (see `lock_timeline`): whether the edited message
    // is the newest (its preview changes) is read after the posts before it.
    db::messages::lock_timeline(&mut tx, conversation_id).await?;
    let m = member_of(&mut tx, conversation_id, me.id).await?;
    let row = db::messages::in_conversation(&mut tx.conn(), conversation_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if row.kind == "note" {
        return Err(AppError::Forbidden(NOTES_STAY));
    }
    if row.author_id != me.id {
        return Err(AppError::Forbidden(ONLY_AUTHOR_EDITS));
    }
    let now = db::now_ms();
    let before: Vec<i64> = db::messages::mentions_of(&mut tx.conn(), &[id])
        .await?
        .into_iter()
        .map(|n| n.user_id)
        .collect();
    db::messages::update_body(&mut tx.conn(), id, body.as_str(), now).await?;
    let after: Vec<i64> = set_mentions(&mut tx, conversation_id, id, body.as_str(), false)
        .await?
        .into_iter()
        .map(|n| n.id)
        .collect();
    // Those who have not read it and are newly named, or no longer, see their `@` count move.
    let (mut mentioned, mut unmentioned) = (Vec::new(), Vec::new());
    if before != after {
        for (user, _) in
            db::conversations::unread_for(&mut tx.conn(), conversation_id, &row).await?
        {
            match (before.contains(&user), after.contains(&user)) {
                (false, true) => mentioned.push(user),
                (true, false) => unmentioned.push(user),
                _ => {}
            }
        }
    }
    let message = load(&mut tx.conn(), conversation_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let replies = db::messages::replies_to(&mut tx.conn(), id).await?;
    let conversation = db::conversations::by_id_unchecked(&mut tx.conn(), conversation_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let members = db::conversations::member_ids(&mut tx.conn(), conversation_id).await?;
    record(
        &mut tx,
        Event::MessageEdited {
            message: message.clone(),
            replies,
            is_last: m.last_message_id == Some(id),
            last_activity_at: conversation.last_activity_at,
            mentioned,
            unmentioned,
        },
        members,
    )
    .await?;
    commit(cx, tx).await?;
    Ok(message)
}

/// Deletes a message: its author may, and so may the owner of the group.
#[tracing::instrument(skip_all, fields(user_id = me.id, conversation_id, message_id = id))]
pub async fn delete(cx: &Ctx<'_>, me: &UserRef, conversation_id: i64, id: i64) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    // In line with posts and setting changes in the conversation (see `lock_timeline`): who
    // muted it, and which message is now the newest, are read after the ones before it.
    db::messages::lock_timeline(&mut tx, conversation_id).await?;
    let m = member_of(&mut tx, conversation_id, me.id).await?;
    let row = db::messages::in_conversation(&mut tx.conn(), conversation_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if row.kind == "note" {
        return Err(AppError::Forbidden(NOTES_STAY));
    }
    if row.author_id != me.id && m.owner_id != Some(me.id) {
        return Err(AppError::Forbidden(ONLY_AUTHOR_OR_OWNER_DELETES));
    }
    let unread = db::conversations::unread_for(&mut tx.conn(), conversation_id, &row).await?;
    let unread_for = unread.iter().map(|(u, _)| *u).collect();
    let unread_muted = unread.iter().filter(|(_, m)| *m).map(|(u, _)| *u).collect();
    let named = db::messages::mentions_of(&mut tx.conn(), &[id]).await?;
    let unread_mentioned = unread
        .iter()
        .map(|(u, _)| *u)
        .filter(|u| named.iter().any(|n| n.user_id == *u))
        .collect();
    let replies = db::messages::replies_to(&mut tx.conn(), id).await?;
    let files = db::attachments::keys_of_message(&mut tx.conn(), id).await?;
    db::messages::delete(&mut tx.conn(), id).await?;
    let next = match db::messages::next_after(&mut tx.conn(), conversation_id, id).await? {
        Some(n) => load(&mut tx.conn(), conversation_id, n.id).await?,
        None => None,
    };
    let was_last = m.last_message_id == Some(id);
    if was_last {
        db::conversations::refresh_last_message(&mut tx.conn(), conversation_id).await?;
    }
    let conversation = db::conversations::by_id_unchecked(&mut tx.conn(), conversation_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let new_last = if was_last {
        Some(match conversation.last_message_id {
            Some(l) => load(&mut tx.conn(), conversation_id, l).await?,
            None => None,
        })
    } else {
        None
    };
    let members = db::conversations::member_ids(&mut tx.conn(), conversation_id).await?;
    record(
        &mut tx,
        Event::MessageDeleted {
            conversation_id,
            message_id: id,
            next,
            replies,
            new_last,
            last_activity_at: conversation.last_activity_at,
            unread_for,
            unread_muted,
            unread_mentioned,
        },
        members,
    )
    .await?;
    commit(cx, tx).await?;
    cx.files.remove(&files).await;
    Ok(())
}

/// Adds my reaction to a message, or takes it back.
#[tracing::instrument(skip_all, fields(user_id = me.id, conversation_id, message_id = id))]
pub async fn react(
    cx: &Ctx<'_>,
    me: &UserRef,
    conversation_id: i64,
    id: i64,
    emoji: &str,
) -> AppResult<MessageData> {
    let mut tx = cx.db.begin().await?;
    if message_in(&mut tx, me.id, conversation_id, id).await?.kind == "note" {
        return Err(AppError::Forbidden(
            "Notes about the conversation (who joined, who left) take no reactions.",
        ));
    }
    db::messages::toggle_reaction(&mut tx.conn(), id, me.id, emoji, db::now_ms()).await?;
    let message = load(&mut tx.conn(), conversation_id, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let members = db::conversations::member_ids(&mut tx.conn(), conversation_id).await?;
    record(
        &mut tx,
        Event::ReactionsChanged {
            message: message.clone(),
        },
        members,
    )
    .await?;
    commit(cx, tx).await?;
    Ok(message)
}

/// Records a note about the group ("added @cat") by `actor`, as a message of its own: it moves
/// the conversation up, shows in the preview, and is never unread. `audience`: the members now.
pub async fn note(
    tx: &mut Tx,
    conversation_id: i64,
    actor: &UserRef,
    text: &str,
    audience: Vec<i64>,
) -> AppResult<()> {
    let now = db::now_ms();
    let id =
        db::messages::insert_note(&mut tx.conn(), conversation_id, actor.id, text, now).await?;
    db::conversations::touch(&mut tx.conn(), conversation_id, id, now).await?;
    // Moves nothing when the actor is no longer a member (the note of their leaving).
    let author_gone =
        !db::conversations::mark_read(&mut tx.conn(), conversation_id, actor.id, id).await?;
    let message = load(&mut tx.conn(), conversation_id, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("inserted note vanished"))?;
    let author_total_unread = db::conversations::total_unread(&mut tx.conn(), actor.id).await?;
    record(
        tx,
        Event::MessageAdded {
            message,
            author_total_unread,
            author_gone,
        },
        audience,
    )
    .await
}

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
    let sql = format!(
        "{SELECT} WHERE m.id IN ({})",
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
    /// Its kind (`text` or `note`).
    pub prev_kind: Option<String>,
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
         lm.author_id AS prev_author_id, lm.created_at AS prev_created_at, lm.kind AS prev_kind \
         FROM conversations c JOIN members m ON m.conversation_id = c.id AND m.user_id = $2 \
         LEFT JOIN messages lm ON lm.id = \
           (SELECT MAX(id) FROM messages WHERE conversation_id = c.id) \
         WHERE c.id = $1";

/// The class of the advisory locks that serialise each conversation's messages on PostgreSQL
/// (the conversation's id is the other half of the key).
const TIMELINE_LOCK: i32 = 0x7061_726c;

/// On PostgreSQL, waits until no other transaction is adding a message to `conversation`, and
/// holds that until this one ends. Call it before the transaction's first write. Why: a live page
/// receives events in the order of their transactions' ids, and a message is grouped with the one
/// before it. Two concurrent posts could otherwise take message ids in one order and transaction
/// ids in the other, and both read the same previous message, so an open page would differ from a
/// fresh load. Taken first, the lock gives a later post a later transaction id, a later message id
/// and a snapshot that sees the post before it. SQLite's single writer orders them already.
pub async fn lock_timeline(tx: &mut super::Tx, conversation: i64) -> sqlx::Result<()> {
    // Not through `Tx::conn`: on SQLite that would open the use case's savepoint early.
    if let super::Tx::Pg(c, ..) = tx {
        sqlx::query(&format!(
            "SELECT pg_advisory_xact_lock({TIMELINE_LOCK}, CAST($1 % 2147483648 AS INTEGER))"
        ))
        .bind(conversation)
        .execute(&mut **c)
        .await?;
    }
    Ok(())
}

/// True for PostgreSQL's serialization failure (SQLSTATE 40001), which `post_pg` raises when a
/// post to the same conversation committed in its way.
pub fn is_raced(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "40001")
}

/// What [`post`] did.
#[derive(Debug)]
pub struct Posted {
    /// The poster's context (None: not a member, whether or not the conversation exists).
    pub ctx: Option<PostContext>,
    /// The new message (None: not inserted, because the context forbids it or the client id was
    /// used before).
    pub id: Option<i64>,
    /// The message it replies to is in this conversation (or it replies to nothing).
    pub reply_ok: bool,
    /// The author's unread messages over all conversations after the post (their badge).
    pub author_total_unread: i64,
}

/// A message's insert; the reply's target only if it is in this conversation (NULL otherwise:
/// checked after).
const POST_INSERT: &str = "INSERT INTO messages \
     (conversation_id, author_id, body, client_id, reply_to_id, created_at) \
     SELECT $1, $2, $3, $4, (SELECT r.id FROM messages r WHERE r.id = $5 AND r.conversation_id = $1), $6";
const POST_ON_CONFLICT: &str = "ON CONFLICT (author_id, client_id) WHERE client_id IS NOT NULL \
     DO NOTHING";

/// One post of [`post_many`].
#[derive(Debug, Clone, Copy)]
pub struct PostArgs<'a> {
    /// Where.
    pub conversation: i64,
    /// Who.
    pub author: i64,
    /// The text.
    pub body: &'a str,
    /// The client's id for the send (retries find the first).
    pub client_id: Option<&'a str>,
    /// The message it answers.
    pub reply_to: Option<i64>,
    /// When.
    pub now: i64,
}

/// The message before a new one in its conversation, as seen from the new row in an insert's
/// `RETURNING` (where `messages.id` is the new message).
const PREV_OF_NEW: &str = "FROM messages p WHERE p.conversation_id = $1 AND p.id < messages.id \
     ORDER BY p.id DESC LIMIT 1";

/// The statement of the `index`th post of a call on SQLite, its parameters numbered from
/// `$first`: one statement, one row. The insert happens only if the author may post there and
/// the client id is new; its RETURNING row tells the post everything else: its id, its reply
/// target, the message before it (grouping) and the author's badge. The badge leaves this
/// conversation out: once the author's read marker moves to their own new message, nothing there
/// is unread for them (as on PostgreSQL). The insert's trigger (`messages_posted`, migration
/// 0016) moves the conversation's newest message and the author's read marker. Few statements
/// and rows matter here: the driver hands every statement's result and every row to the async
/// side one at a time.
fn sqlite_post_sql(index: usize, first: usize) -> String {
    let sql = format!(
        "{POST_INSERT} WHERE EXISTS (SELECT 1 FROM ({POST_CONTEXT}) WHERE open = 1) \
         {POST_ON_CONFLICT} RETURNING {index} AS post, id, reply_to_id, \
           (SELECT p.author_id {PREV_OF_NEW}) AS prev_author_id, \
           (SELECT p.created_at {PREV_OF_NEW}) AS prev_created_at, \
           (SELECT p.kind {PREV_OF_NEW}) AS prev_kind, \
           (SELECT COUNT(*) FROM members m JOIN messages x \
             ON x.conversation_id = m.conversation_id AND x.id > m.last_read_message_id \
             AND x.author_id <> $2 AND x.kind = 'text' \
             WHERE m.user_id = $2 AND m.conversation_id <> $1 AND m.notify <> 'mute') AS unread"
    );
    if first == 1 {
        return sql;
    }
    // Renumber `$n` to `$(n + first - 1)`.
    let mut out = String::with_capacity(sql.len() + 64);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$' {
            let mut n = 0usize;
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = n * 10 + d as usize;
                chars.next();
            }
            out.push_str(&(n + first - 1).to_string());
        }
    }
    out
}

/// Several posts in ONE call to the SQLite writer (the first statement carries the
/// transaction's prefix), in order; a result per post: None when it inserted nothing (the author
/// may not post there, or the client id was used before; nothing of it was written). A post's
/// statements depend only on the posts before it through the database, exactly as if they ran
/// one after the other.
pub async fn post_many(
    tx: &mut super::Tx,
    posts: &[PostArgs<'_>],
) -> sqlx::Result<Vec<Option<Posted>>> {
    use sqlx::Row;
    let super::Tx::Sqlite(t) = tx else {
        return Err(sqlx::Error::Protocol(
            "post_many is for the SQLite writer".into(),
        ));
    };
    let mut sql = t.take_prefix().to_owned();
    for i in 0..posts.len() {
        if i > 0 {
            sql.push_str("; ");
        }
        sql.push_str(&sqlite_post_sql(i, 1 + 6 * i));
    }
    let mut q = sqlx::query(&sql);
    for p in posts {
        q = q
            .bind(p.conversation)
            .bind(p.author)
            .bind(p.body)
            .bind(p.client_id)
            .bind(p.reply_to)
            .bind(p.now);
    }
    let rows = q.fetch_all(&mut t.log().conn).await?;
    t.prefix_done();
    let mut out: Vec<Option<Posted>> = posts.iter().map(|_| None).collect();
    for row in &rows {
        let index: i64 = row.try_get("post")?;
        let i = usize::try_from(index)
            .ok()
            .filter(|&i| i < posts.len())
            .ok_or_else(|| sqlx::Error::Protocol("a post result for no post".into()))?;
        let reply: Option<i64> = row.try_get("reply_to_id")?;
        out[i] = Some(Posted {
            // Inserted, so the conversation was open to the author.
            ctx: Some(PostContext {
                open: 1,
                prev_author_id: row.try_get("prev_author_id")?,
                prev_created_at: row.try_get("prev_created_at")?,
                prev_kind: row.try_get("prev_kind")?,
            }),
            id: Some(row.try_get("id")?),
            reply_ok: posts[i].reply_to.is_none() || reply.is_some(),
            author_total_unread: row.try_get("unread")?,
        });
    }
    Ok(out)
}

/// Inserts a message if `author` may post in `conversation`; moves the conversation and the
/// author's read marker to it. The use case's first statement (with the transaction's prefix).
/// On SQLite it is one round trip to the writer; on PostgreSQL three.
#[allow(clippy::too_many_arguments)]
pub async fn post(
    tx: &mut super::Tx,
    conversation: i64,
    author: i64,
    body: &str,
    client_id: Option<&str>,
    reply_to: Option<i64>,
    now: i64,
) -> sqlx::Result<Posted> {
    if let super::Tx::Sqlite(_) = tx {
        let posted = post_many(
            tx,
            &[PostArgs {
                conversation,
                author,
                body,
                client_id,
                reply_to,
                now,
            }],
        )
        .await?;
        if let Some(Some(p)) = posted.into_iter().next() {
            return Ok(p);
        }
        // Nothing went in, so the context is as before the insert: it says why.
        return Ok(Posted {
            ctx: post_context(tx, conversation, author).await?,
            id: None,
            reply_ok: reply_to.is_none(),
            author_total_unread: 0,
        });
    }
    let ctx = post_context(tx, conversation, author).await?;
    let mut out = Posted {
        ctx,
        id: None,
        reply_ok: reply_to.is_none(),
        author_total_unread: 0,
    };
    if out.ctx.as_ref().is_none_or(|c| c.open == 0) {
        return Ok(out);
    }
    let sql = format!("{POST_INSERT} {POST_ON_CONFLICT} RETURNING id, reply_to_id");
    let inserted: Option<(i64, Option<i64>)> = run!(&mut tx.conn(), e => sqlx::query_as(&sql)
        .bind(conversation)
        .bind(author)
        .bind(body)
        .bind(client_id)
        .bind(reply_to)
        .bind(now)
        .fetch_optional(e)
        .await)?;
    if let Some((id, reply)) = inserted {
        out.id = Some(id);
        out.reply_ok = reply_to.is_none() || reply.is_some();
        out.author_total_unread = after_post(&mut tx.conn(), conversation, author, id, now).await?;
    }
    Ok(out)
}

/// After a post on PostgreSQL: the conversation's newest message and activity move to it, the
/// author's read marker too; returns the author's unread messages over their other
/// conversations (their badge). One statement. On SQLite the `messages_posted` trigger and the
/// post's own statement ([`post_many`]) do all of this.
pub async fn after_post(
    c: &mut Conn<'_>,
    conversation: i64,
    author: i64,
    message: i64,
    now: i64,
) -> sqlx::Result<i64> {
    let Conn::Pg(e) = c else {
        return Err(sqlx::Error::Protocol(
            "after_post is for PostgreSQL; on SQLite the post does it".into(),
        ));
    };
    // The updates as CTEs; the count reads the snapshot before them, so it leaves this
    // conversation out (after the post the author has nothing unread there).
    sqlx::query_scalar(
        "WITH t AS (UPDATE conversations SET last_message_id = $1, last_activity_at = $2 \
         WHERE id = $3), r AS (UPDATE members SET last_read_message_id = $1 \
         WHERE conversation_id = $3 AND user_id = $4 AND last_read_message_id < $1) \
         SELECT COUNT(*) FROM members m JOIN messages x \
         ON x.conversation_id = m.conversation_id AND x.id > m.last_read_message_id \
         AND x.author_id <> $4 AND x.kind = 'text' \
         WHERE m.user_id = $4 AND m.conversation_id <> $3 AND m.notify <> 'mute'",
    )
    .bind(message)
    .bind(now)
    .bind(conversation)
    .bind(author)
    .fetch_one(&mut **e)
    .await
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

/// What [`post_pg`] did.
#[derive(Debug)]
pub struct PgPosted {
    /// The poster's context (None: not a member, whether or not the conversation exists).
    pub ctx: Option<PostContext>,
    /// The conversation's lock was free (otherwise nothing was written: post in a transaction).
    pub locked: bool,
    /// The shared rate limit allowed the post (or there is none).
    pub allowed: bool,
    /// The new message (None: not inserted: the context forbids it, the limit refused it, or
    /// the client id was used before).
    pub id: Option<i64>,
    /// The event's id (when inserted).
    pub event_id: Option<i64>,
}

/// The `MessageAdded` event of a post, as JSON with three placeholders the statement fills in.
#[derive(Debug)]
pub struct PayloadTemplate<'a> {
    /// The JSON.
    pub json: &'a str,
    /// Text standing for `"id":<the new message's id>` (once in `json`).
    pub id: &'a str,
    /// Text standing for `"prev":<the message before it, or null>` (once in `json`).
    pub prev: &'a str,
    /// Text standing for `"author_total_unread":<the author's badge>` (once in `json`).
    pub unread: &'a str,
}

/// A plain post on PostgreSQL (no reply, attachment or mention) as ONE statement in its own
/// transaction (autocommit): the context, the shared rate limit, the insert, the conversation
/// and the author's read marker moving to it, and the `MessageAdded` event. One
/// round trip and one commit, where a transaction would take six; atomic all the same (a
/// statement commits whole or not at all), and every part after the context happens only if the
/// message goes in (each CTE reads the one before it).
///
/// The event's payload needs the new id, the message before it and the author's badge, which
/// only the statement knows: the caller serialises it with sentinel values and the statement
/// replaces their text. The badge is read from the snapshot before the statement, so it leaves
/// this conversation out (after the post the author has nothing unread there). It is counted
/// conversation by conversation from the author's memberships (a correlated count on
/// `messages_conversation`), a plan that cannot turn into a scan of all messages: with a join,
/// the planner of a young database (no statistics yet) scanned `messages` whole on every post.
///
/// No `NOTIFY` inside: the caller has other nodes told after the commit
/// (`Hub::committed_quietly`), so concurrent posts do not queue for the notify lock.
#[allow(clippy::too_many_arguments)]
pub async fn post_pg(
    conn: &mut sqlx::PgConnection,
    conversation: i64,
    author: i64,
    body: &str,
    client_id: Option<&str>,
    now: i64,
    limit: Option<&super::limits::Gcra>,
    payload: &PayloadTemplate<'_>,
) -> sqlx::Result<PgPosted> {
    use sqlx::Row;
    // Posts to one conversation are serialised (see [`lock_timeline`]): the statement takes the
    // conversation's lock if it is free and writes nothing otherwise (`locked` false: the caller
    // posts in a transaction that waits for it). A post that committed after this statement's
    // snapshot but before the lock moved `last_message_id`, which the update of the conversation
    // re-reads: then the message before ours is not the one we read, and the statement ends in a
    // serialization failure (`parley_post_raced`) that undoes all of it.
    let sql = format!(
        "WITH ctx AS (SELECT p.*, (SELECT last_message_id FROM conversations WHERE id = $1) AS last_id, \
           pg_try_advisory_xact_lock({TIMELINE_LOCK}, CAST($1 % 2147483648 AS INTEGER)) AS locked \
           FROM ({POST_CONTEXT}) p), \
         g AS (INSERT INTO rate_limits (key, tat) SELECT $6, $5 + $7 FROM ctx \
           WHERE ctx.open = 1 AND ctx.locked AND $6::text IS NOT NULL \
           ON CONFLICT (key) DO UPDATE SET tat = GREATEST(rate_limits.tat, $5) + $7 \
           WHERE GREATEST(rate_limits.tat, $5) + $7 - $5 <= $7 * $8 RETURNING 1 AS ok), \
         ins AS (INSERT INTO messages (conversation_id, author_id, body, client_id, created_at) \
           SELECT $1, $2, $3, $4, $5 FROM ctx \
           WHERE ctx.open = 1 AND ctx.locked AND ($6::text IS NULL OR EXISTS (SELECT 1 FROM g)) \
           ON CONFLICT (author_id, client_id) WHERE client_id IS NOT NULL DO NOTHING \
           RETURNING id), \
         t AS (UPDATE conversations c SET last_message_id = ins.id, last_activity_at = $5 \
           FROM ins, ctx WHERE c.id = $1 AND c.last_message_id IS NOT DISTINCT FROM ctx.last_id \
           RETURNING c.id), \
         r AS (UPDATE members m SET last_read_message_id = ins.id FROM ins \
           WHERE m.conversation_id = $1 AND m.user_id = $2 AND m.last_read_message_id < ins.id), \
         u AS (SELECT CAST(COALESCE(SUM((SELECT COUNT(*) FROM messages x \
             WHERE x.conversation_id = m.conversation_id AND x.id > m.last_read_message_id \
             AND x.author_id <> $2 AND x.kind = 'text')), 0) AS BIGINT) AS unread \
           FROM members m WHERE m.user_id = $2 AND m.conversation_id <> $1 \
             AND m.notify <> 'mute'), \
         ev AS (INSERT INTO events (id, kind, payload, conversation_id, audience, created_at) \
           SELECT (pg_current_xact_id()::text::bigint << 16) + 1, 'MessageAdded', \
             replace(replace(replace($9, $10, '\"id\":' || ins.id), \
               $11, '\"prev\":' || COALESCE((SELECT json_build_object('author_id', prev_author_id, \
                 'created_at', prev_created_at, 'note', prev_kind = 'note')::text FROM ctx \
                 WHERE prev_author_id IS NOT NULL), 'null')), \
               $12, '\"author_total_unread\":' || u.unread), \
             $1, '', $5 FROM ins, u RETURNING id) \
         SELECT ctx.open, ctx.prev_author_id, ctx.prev_created_at, ctx.prev_kind, ctx.locked, \
           ($6::text IS NULL OR EXISTS (SELECT 1 FROM g)) AS allowed, \
           (SELECT id FROM ev) AS event_id, (SELECT id FROM ins) AS id, \
           CASE WHEN EXISTS (SELECT 1 FROM ins) AND NOT EXISTS (SELECT 1 FROM t) \
             THEN parley_post_raced() END AS raced \
         FROM ctx"
    );
    let (key, interval, burst) = match limit {
        Some(l) => (Some(l.key.as_str()), l.interval, l.burst),
        None => (None, 1, 1),
    };
    let row = sqlx::query(&sql)
        .bind(conversation)
        .bind(author)
        .bind(body)
        .bind(client_id)
        .bind(now)
        .bind(key)
        .bind(interval)
        .bind(burst)
        .bind(payload.json)
        .bind(payload.id)
        .bind(payload.prev)
        .bind(payload.unread)
        .fetch_optional(conn)
        .await?;
    let Some(row) = row else {
        return Ok(PgPosted {
            ctx: None,
            locked: true,
            allowed: true,
            id: None,
            event_id: None,
        });
    };
    Ok(PgPosted {
        ctx: Some(PostContext {
            open: row.try_get("open")?,
            prev_author_id: row.try_get("prev_author_id")?,
            prev_created_at: row.try_get("prev_created_at")?,
            prev_kind: row.try_get("prev_kind")?,
        }),
        locked: row.try_get("locked")?,
        allowed: row.try_get("allowed")?,
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
    })
}

//! Conversations and their members (with read markers).

use super::users::UserRef;
use super::{Conn, exec, run};

/// A conversation as seen by one of its members: the membership check and the read in one query.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Membership {
    /// Conversation id.
    pub id: i64,
    /// direct | group.
    pub kind: String,
    /// Group title.
    pub title: Option<String>,
    /// Group owner.
    pub owner_id: Option<i64>,
    /// Newest message.
    pub last_message_id: Option<i64>,
    /// This member's read marker.
    pub last_read_message_id: i64,
    /// What this member is notified of: all, mentions, mute.
    pub notify: String,
}

impl Membership {
    /// True for a direct (1-1) conversation.
    pub fn is_direct(&self) -> bool {
        self.kind == "direct"
    }
}

/// A member with their read marker.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberRow {
    /// User id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Read marker.
    pub last_read_message_id: i64,
}

impl MemberRow {
    /// The public face.
    pub fn user_ref(&self) -> UserRef {
        UserRef {
            id: self.id,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
        }
    }
}

/// One row of "my conversations".
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ListRow {
    /// Conversation id.
    pub id: i64,
    /// direct | group.
    pub kind: String,
    /// Group title.
    pub title: Option<String>,
    /// Newest activity.
    pub last_activity_at: i64,
    /// Messages by others after my read marker.
    pub unread: i64,
    /// Of those, the ones that name me.
    pub unread_mentions: i64,
    /// Newest message text.
    pub last_body: Option<String>,
    /// Its kind (`text`, `note`).
    pub last_kind: Option<String>,
    /// Its author's id.
    pub last_author_id: Option<i64>,
    /// Its author's username.
    pub last_author_username: Option<String>,
    /// Its author's display name.
    pub last_author_display_name: Option<String>,
    /// The other person of a direct conversation.
    pub other_id: Option<i64>,
    /// Their username.
    pub other_username: Option<String>,
    /// Their display name.
    pub other_display_name: Option<String>,
}

/// The direct conversation key of a pair: the same whichever way round.
pub fn direct_key(a: i64, b: i64) -> String {
    format!("{}:{}", a.min(b), a.max(b))
}

/// The direct conversation of a pair, if it was ever created.
pub async fn find_direct(c: &mut Conn<'_>, a: i64, b: i64) -> sqlx::Result<Option<i64>> {
    run!(c, e => sqlx::query_scalar("SELECT id FROM conversations WHERE direct_key = $1")
        .bind(direct_key(a, b))
        .fetch_optional(e)
        .await)
}

/// Creates a conversation row.
pub async fn insert(
    c: &mut Conn<'_>,
    kind: &str,
    title: Option<&str>,
    owner: Option<i64>,
    direct_key: Option<&str>,
    now: i64,
) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar(
        "INSERT INTO conversations (kind, title, owner_id, direct_key, last_activity_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
    )
    .bind(kind)
    .bind(title)
    .bind(owner)
    .bind(direct_key)
    .bind(now)
    .fetch_one(e)
    .await)
}

/// Adds a member whose read marker starts at `last_read`; false if already a member.
pub async fn add_member(
    c: &mut Conn<'_>,
    conversation: i64,
    user: i64,
    last_read: i64,
    now: i64,
) -> sqlx::Result<bool> {
    let done = exec!(c, e => sqlx::query(
        "INSERT INTO members (conversation_id, user_id, last_read_message_id, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(conversation)
    .bind(user)
    .bind(last_read)
    .bind(now)
    .execute(e)
    .await)?;
    Ok(done == 1)
}

/// Removes a member; false if they were not one.
pub async fn remove_member(c: &mut Conn<'_>, conversation: i64, user: i64) -> sqlx::Result<bool> {
    let done = exec!(c, e => sqlx::query(
        "DELETE FROM members WHERE conversation_id = $1 AND user_id = $2",
    )
    .bind(conversation)
    .bind(user)
    .execute(e)
    .await)?;
    Ok(done == 1)
}

/// The conversation if `user` is a member of it; None otherwise (a non-member must not learn
/// whether it exists).
pub async fn membership(
    c: &mut Conn<'_>,
    conversation: i64,
    user: i64,
) -> sqlx::Result<Option<Membership>> {
    run!(c, e => sqlx::query_as(
        "SELECT c.id, c.kind, c.title, c.owner_id, c.last_message_id, m.last_read_message_id, m.notify \
         FROM conversations c JOIN members m ON m.conversation_id = c.id AND m.user_id = $2 \
         WHERE c.id = $1",
    )
    .bind(conversation)
    .bind(user)
    .fetch_optional(e)
    .await)
}

/// Members, longest-standing first.
pub async fn members(c: &mut Conn<'_>, conversation: i64) -> sqlx::Result<Vec<MemberRow>> {
    run!(c, e => sqlx::query_as(
        "SELECT u.id, u.username, u.display_name, m.last_read_message_id \
         FROM members m JOIN users u ON u.id = m.user_id \
         WHERE m.conversation_id = $1 ORDER BY m.created_at, u.id",
    )
    .bind(conversation)
    .fetch_all(e)
    .await)
}

/// Makes `user` the owner.
pub async fn set_owner(c: &mut Conn<'_>, conversation: i64, user: i64) -> sqlx::Result<()> {
    exec!(c, e => sqlx::query("UPDATE conversations SET owner_id = $1 WHERE id = $2")
        .bind(user)
        .bind(conversation)
        .execute(e)
        .await)?;
    Ok(())
}

/// Deletes a conversation with its members and messages.
pub async fn delete(c: &mut Conn<'_>, conversation: i64) -> sqlx::Result<bool> {
    let done = exec!(c, e => sqlx::query("DELETE FROM conversations WHERE id = $1")
        .bind(conversation)
        .execute(e)
        .await)?;
    Ok(done == 1)
}

/// Records a new newest message.
pub async fn touch(
    c: &mut Conn<'_>,
    conversation: i64,
    message: i64,
    now: i64,
) -> sqlx::Result<()> {
    exec!(c, e => sqlx::query(
        "UPDATE conversations SET last_message_id = $1, last_activity_at = $2 WHERE id = $3",
    )
    .bind(message)
    .bind(now)
    .bind(conversation)
    .execute(e)
    .await)?;
    Ok(())
}

/// Moves a member's read marker forward to `message`; false when it was already there or beyond.
pub async fn mark_read(
    c: &mut Conn<'_>,
    conversation: i64,
    user: i64,
    message: i64,
) -> sqlx::Result<bool> {
    let done = exec!(c, e => sqlx::query(
        "UPDATE members SET last_read_message_id = $3 \
         WHERE conversation_id = $1 AND user_id = $2 AND last_read_message_id < $3",
    )
    .bind(conversation)
    .bind(user)
    .bind(message)
    .execute(e)
    .await)?;
    Ok(done == 1)
}

/// My conversations, newest activity first, with unread counts and the latest message: one query.
pub async fn list_for(c: &mut Conn<'_>, user: i64) -> sqlx::Result<Vec<ListRow>> {
    run!(c, e => sqlx::query_as(
        "SELECT c.id, c.kind, c.title, c.last_activity_at, \
           (SELECT COUNT(*) FROM messages x WHERE x.conversation_id = c.id \
              AND x.id > m.last_read_message_id AND x.author_id <> $1 AND x.kind = 'text') AS unread, \
           (SELECT COUNT(*) FROM messages x JOIN mentions n ON n.message_id = x.id AND n.user_id = $1 \
              WHERE x.conversation_id = c.id AND x.id > m.last_read_message_id \
              AND x.author_id <> $1 AND x.kind = 'text') AS unread_mentions, \
           lm.body AS last_body, lm.kind AS last_kind, lm.author_id AS last_author_id, \
           la.username AS last_author_username, la.display_name AS last_author_display_name, \
           o.id AS other_id, o.username AS other_username, o.display_name AS other_display_name \
         FROM members m \
         JOIN conversations c ON c.id = m.conversation_id \
         LEFT JOIN messages lm ON lm.id = c.last_message_id \
         LEFT JOIN users la ON la.id = lm.author_id \
         LEFT JOIN members om ON c.kind = 'direct' AND om.conversation_id = c.id AND om.user_id <> $1 \
         LEFT JOIN users o ON o.id = om.user_id \
         WHERE m.user_id = $1 \
         ORDER BY c.last_activity_at DESC, c.id DESC",
    )
    .bind(user)
    .fetch_all(e)
    .await)
}

/// A conversation row, with no membership check: only for use cases that already checked.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ConversationRow {
    /// Id.
    pub id: i64,
    /// Group title.
    pub title: Option<String>,
    /// Group owner.
    pub owner_id: Option<i64>,
    /// Newest activity.
    pub last_activity_at: i64,
    /// Newest message.
    pub last_message_id: Option<i64>,
}

/// A conversation by id (no membership check: callers have done it).
pub async fn by_id_unchecked(
    c: &mut Conn<'_>,
    conversation: i64,
) -> sqlx::Result<Option<ConversationRow>> {
    run!(c, e => sqlx::query_as(
        "SELECT id, title, owner_id, last_activity_at, last_message_id FROM conversations WHERE id = $1",
    )
    .bind(conversation)
    .fetch_optional(e)
    .await)
}

/// True when `user`'s direct conversation is still between friends (it takes messages).
pub async fn direct_still_friends(
    c: &mut Conn<'_>,
    conversation: i64,
    user: i64,
) -> sqlx::Result<bool> {
    let n: i64 = run!(c, e => sqlx::query_scalar(
        "SELECT COUNT(*) FROM members o JOIN friendships f ON f.user_id = $2 AND f.friend_id = o.user_id \
         WHERE o.conversation_id = $1 AND o.user_id <> $2",
    )
    .bind(conversation)
    .bind(user)
    .fetch_one(e)
    .await)?;
    Ok(n > 0)
}

/// Member ids.
pub async fn member_ids(c: &mut Conn<'_>, conversation: i64) -> sqlx::Result<Vec<i64>> {
    run!(c, e => sqlx::query_scalar("SELECT user_id FROM members WHERE conversation_id = $1")
        .bind(conversation)
        .fetch_all(e)
        .await)
}

/// My unread messages over all conversations I have not muted (the header badge, the tab's
/// title and icon). A muted conversation still counts in its own row.
pub async fn total_unread(c: &mut Conn<'_>, user: i64) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar(
        "SELECT COUNT(*) FROM members m JOIN messages x ON x.conversation_id = m.conversation_id \
         AND x.id > m.last_read_message_id AND x.author_id <> $1 AND x.kind = 'text' \
         WHERE m.user_id = $1 AND m.notify <> 'mute'",
    )
    .bind(user)
    .fetch_one(e)
    .await)
}

/// Everyone whose presence `user` sees, and who sees theirs: friends, and everyone sharing a
/// conversation (the user included).
pub async fn contact_ids(c: &mut Conn<'_>, user: i64) -> sqlx::Result<Vec<i64>> {
    run!(c, e => sqlx::query_scalar(
        "SELECT friend_id FROM friendships WHERE user_id = $1 \
         UNION SELECT o.user_id FROM members m JOIN members o ON o.conversation_id = m.conversation_id \
         WHERE m.user_id = $1",
    )
    .bind(user)
    .fetch_all(e)
    .await)
}

/// Unread messages of `user` in one conversation.
pub async fn unread_in(c: &mut Conn<'_>, conversation: i64, user: i64) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar(
        "SELECT COUNT(*) FROM members m JOIN messages x ON x.conversation_id = m.conversation_id \
         WHERE m.conversation_id = $1 AND m.user_id = $2 AND x.id > m.last_read_message_id \
         AND x.author_id <> $2 AND x.kind = 'text'",
    )
    .bind(conversation)
    .bind(user)
    .fetch_one(e)
    .await)
}

/// Members with unread messages in a conversation that count in their header badge (it is not
/// muted), and how many: what their badge loses with the conversation.
pub async fn unread_by_member(
    c: &mut Conn<'_>,
    conversation: i64,
) -> sqlx::Result<Vec<(i64, i64)>> {
    run!(c, e => sqlx::query_as(
        "SELECT m.user_id, COUNT(*) FROM members m JOIN messages x ON x.conversation_id = m.conversation_id \
         WHERE m.conversation_id = $1 AND x.id > m.last_read_message_id AND x.author_id <> m.user_id \
         AND x.kind = 'text' AND m.notify <> 'mute' GROUP BY m.user_id",
    )
    .bind(conversation)
    .fetch_all(e)
    .await)
}

/// The members of a conversation among these usernames (who a message names).
pub async fn members_named(
    c: &mut Conn<'_>,
    conversation: i64,
    usernames: &[String],
) -> sqlx::Result<Vec<i64>> {
    if usernames.is_empty() {
        return Ok(Vec::new());
    }
    let list = (2..usernames.len() + 2)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT u.id FROM members m JOIN users u ON u.id = m.user_id \
         WHERE m.conversation_id = $1 AND u.username IN ({list}) ORDER BY u.id"
    );
    run!(c, e => {
        let mut q = sqlx::query_scalar(&sql).bind(conversation);
        for n in usernames {
            q = q.bind(n);
        }
        q.fetch_all(e).await
    })
}

/// Members for whom `message` is unread (not its author, marker before it), and whether they
/// muted the conversation (then it is not in their header badge).
pub async fn unread_for(
    c: &mut Conn<'_>,
    conversation: i64,
    message: &super::messages::MessageRow,
) -> sqlx::Result<Vec<(i64, bool)>> {
    run!(c, e => sqlx::query_as(
        "SELECT user_id, notify = 'mute' FROM members WHERE conversation_id = $1 \
         AND last_read_message_id < $2 AND user_id <> $3 ORDER BY user_id",
    )
    .bind(conversation)
    .bind(message.id)
    .bind(message.author_id)
    .fetch_all(e)
    .await)
}

/// Points the conversation at its newest remaining message (after a delete).
pub async fn refresh_last_message(c: &mut Conn<'_>, conversation: i64) -> sqlx::Result<()> {
    exec!(c, e => sqlx::query(
        "UPDATE conversations SET last_message_id = \
         (SELECT MAX(id) FROM messages WHERE conversation_id = $1) WHERE id = $1",
    )
    .bind(conversation)
    .execute(e)
    .await)?;
    Ok(())
}

/// Unread messages of `user` in one conversation that name them.
pub async fn unread_mentions_in(
    c: &mut Conn<'_>,
    conversation: i64,
    user: i64,
) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar(
        "SELECT COUNT(*) FROM members m JOIN messages x ON x.conversation_id = m.conversation_id \
         JOIN mentions n ON n.message_id = x.id AND n.user_id = m.user_id \
         WHERE m.conversation_id = $1 AND m.user_id = $2 AND x.id > m.last_read_message_id \
         AND x.author_id <> $2 AND x.kind = 'text'",
    )
    .bind(conversation)
    .bind(user)
    .fetch_one(e)
    .await)
}

/// Gives a group a new title.
pub async fn set_title(c: &mut Conn<'_>, conversation: i64, title: &str) -> sqlx::Result<()> {
    exec!(c, e => sqlx::query("UPDATE conversations SET title = $1 WHERE id = $2")
        .bind(title)
        .bind(conversation)
        .execute(e)
        .await)?;
    Ok(())
}

/// Sets what `user` is notified of in a conversation; false when not a member.
pub async fn set_notify(
    c: &mut Conn<'_>,
    conversation: i64,
    user: i64,
    level: &str,
) -> sqlx::Result<bool> {
    let done = exec!(c, e => sqlx::query(
        "UPDATE members SET notify = $3 WHERE conversation_id = $1 AND user_id = $2",
    )
    .bind(conversation)
    .bind(user)
    .bind(level)
    .execute(e)
    .await)?;
    Ok(done == 1)
}

/// `user`'s conversations that are not on "all": (conversation, level).
pub async fn notify_prefs(c: &mut Conn<'_>, user: i64) -> sqlx::Result<Vec<(i64, String)>> {
    run!(c, e => sqlx::query_as(
        "SELECT conversation_id, notify FROM members WHERE user_id = $1 AND notify <> 'all' \
         ORDER BY conversation_id",
    )
    .bind(user)
    .fetch_all(e)
    .await)
}

//! Conversations: direct ones (made by friendship) and groups.

use crate::db::conversations::Membership;
use crate::db::users::UserRef;
use crate::db::{self, Tx};
use crate::domain::{GroupTitle, Username};
use crate::error::{AppError, AppResult};
use crate::events::{ConversationData, Event};

use super::{Ctx, commit, member_of, record};

/// The most members a group may have.
pub const MAX_GROUP_MEMBERS: usize = 500;

async fn group_of(tx: &mut Tx, conversation: i64, me: i64, what: &str) -> AppResult<Membership> {
    let m = member_of(tx, conversation, me).await?;
    if m.is_direct() {
        return Err(AppError::invalid(
            "conversation",
            format!("A direct conversation cannot be {what}; make a group instead."),
        ));
    }
    Ok(m)
}

/// The conversation as events carry it.
pub async fn data_of(tx: &mut Tx, conversation: i64) -> AppResult<ConversationData> {
    let m = db::conversations::by_id_unchecked(&mut tx.conn(), conversation)
        .await?
        .ok_or(AppError::NotFound)?;
    let members = db::conversations::members(&mut tx.conn(), conversation)
        .await?
        .iter()
        .map(|r| r.user_ref())
        .collect();
    let last_message = match m.last_message_id {
        Some(id) => match db::messages::in_conversation(&mut tx.conn(), conversation, id).await? {
            Some(row) => {
                let prev = super::messages::prev_message(&mut tx.conn(), conversation, id).await?;
                Some(super::messages::data_of(&row, prev))
            }
            None => None,
        },
        None => None,
    };
    Ok(ConversationData {
        id: conversation,
        title: m.title,
        owner_id: m.owner_id,
        last_activity_at: m.last_activity_at,
        members,
        last_message,
    })
}

/// Of `users`, who has unread messages in the conversation and how many (their badges drop
/// when they leave it).
async fn unread_lost_by(
    tx: &mut Tx,
    conversation: i64,
    users: &[i64],
) -> AppResult<Vec<(i64, i64)>> {
    Ok(
        db::conversations::unread_by_member(&mut tx.conn(), conversation)
            .await?
            .into_iter()
            .filter(|(u, _)| users.contains(u))
            .collect(),
    )
}

/// Reaction to a new friendship: the pair's direct conversation is created, or, if they were
/// friends before, reopened with its history.
pub async fn open_direct(
    tx: &mut Tx,
    a: &UserRef,
    b: &UserRef,
) -> AppResult<Option<(Event, Vec<i64>)>> {
    let audience = vec![a.id, b.id];
    if let Some(id) = db::conversations::find_direct(&mut tx.conn(), a.id, b.id).await? {
        return Ok(Some((
            Event::ConversationReopened {
                conversation_id: id,
            },
            audience,
        )));
    }
    let now = db::now_ms();
    let key = db::conversations::direct_key(a.id, b.id);
    let id =
        db::conversations::insert(&mut tx.conn(), "direct", None, None, Some(&key), now).await?;
    for u in [a, b] {
        db::conversations::add_member(&mut tx.conn(), id, u.id, 0, now).await?;
    }
    let conversation = data_of(tx, id).await?;
    Ok(Some((
        Event::ConversationCreated { conversation },
        audience,
    )))
}

/// Creates a group owned by me with some of my friends.
#[tracing::instrument(skip_all, fields(user_id = me.id))]
pub async fn create_group(
    cx: &Ctx<'_>,
    me: &UserRef,
    title: &GroupTitle,
    members: &[Username],
) -> AppResult<i64> {
    if members.len() >= MAX_GROUP_MEMBERS {
        return Err(AppError::invalid(
            "member",
            format!("A group may have at most {MAX_GROUP_MEMBERS} members."),
        ));
    }
    let mut tx = cx.db.begin().await?;
    let mut ids = vec![me.id];
    for name in members {
        let user = friend_by_name(&mut tx, me.id, name, "member").await?;
        if !ids.contains(&user.id) {
            ids.push(user.id);
        }
    }
    let now = db::now_ms();
    let id = db::conversations::insert(
        &mut tx.conn(),
        "group",
        Some(title.as_str()),
        Some(me.id),
        None,
        now,
    )
    .await?;
    for (i, user) in ids.iter().enumerate() {
        // Join times keep the creator first: "longest-standing" decides the next owner.
        db::conversations::add_member(&mut tx.conn(), id, *user, 0, now + i as i64).await?;
    }
    let conversation = data_of(&mut tx, id).await?;
    record(&mut tx, Event::ConversationCreated { conversation }, ids).await?;
    commit(cx, tx).await?;
    Ok(id)
}

async fn friend_by_name(
    tx: &mut Tx,
    me: i64,
    name: &Username,
    field: &'static str,
) -> AppResult<UserRef> {
    let user = db::users::by_username(&mut tx.conn(), name.as_str()).await?;
    match user {
        Some(u) if u.id == me => Ok(UserRef {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
        }),
        Some(u) if db::friends::are_friends(&mut tx.conn(), me, u.id).await? => Ok(UserRef {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
        }),
        Some(u) => Err(AppError::invalid(
            field,
            format!(
                "{} is not your friend yet: you can only add friends.",
                u.username
            ),
        )),
        None => Err(AppError::invalid(
            field,
            format!("Nobody here is called “{}”.", name.as_str()),
        )),
    }
}

/// Adds one of my friends to a group I am in.
#[tracing::instrument(skip_all, fields(user_id = me.id, conversation_id))]
pub async fn add_member(
    cx: &Ctx<'_>,
    me: &UserRef,
    conversation_id: i64,
    username: &Username,
) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    // Its note is a message: in line with concurrent posts (see `lock_timeline`).
    db::messages::lock_timeline(&mut tx, conversation_id).await?;
    let m = group_of(&mut tx, conversation_id, me.id, "grown").await?;
    let user = friend_by_name(&mut tx, me.id, username, "username").await?;
    let count = db::conversations::members(&mut tx.conn(), conversation_id)
        .await?
        .len();
    if count >= MAX_GROUP_MEMBERS {
        return Err(AppError::invalid("username", "This group is full."));
    }
    let now = db::now_ms();
    let last = m.last_message_id.unwrap_or(0);
    if !db::conversations::add_member(&mut tx.conn(), conversation_id, user.id, last, now).await? {
        return Err(AppError::invalid(
            "username",
            format!("{} is already in this group.", user.username),
        ));
    }
    let conversation = data_of(&mut tx, conversation_id).await?;
    let audience: Vec<i64> = conversation.members.iter().map(|u| u.id).collect();
    record(
        &mut tx,
        Event::MembersChanged {
            conversation,
            added: vec![user.clone()],
            removed: vec![],
            left: false,
            unread_lost: vec![],
        },
        audience.clone(),
    )
    .await?;
    let text = format!("added @{}", user.username);
    super::messages::note(&mut tx, conversation_id, me, &text, audience).await?;
    commit(cx, tx).await
}

/// The owner removes a member.
#[tracing::instrument(skip_all, fields(user_id = me.id, conversation_id))]
pub async fn remove_member(
    cx: &Ctx<'_>,
    me: &UserRef,
    conversation_id: i64,
    user_id: i64,
) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    // Its note is a message: in line with concurrent posts (see `lock_timeline`).
    db::messages::lock_timeline(&mut tx, conversation_id).await?;
    let m = group_of(&mut tx, conversation_id, me.id, "changed").await?;
    if m.owner_id != Some(me.id) {
        return Err(AppError::Forbidden(
            "Only the group's owner can remove members. Anyone can leave.",
        ));
    }
    if user_id == me.id {
        return Err(AppError::invalid(
            "member",
            "You cannot remove yourself; leave the group instead.",
        ));
    }
    let removed = db::users::user_ref(&mut tx.conn(), user_id).await?;
    let Some(removed) = removed else {
        return Err(AppError::NotFound);
    };
    let unread_lost = unread_lost_by(&mut tx, conversation_id, &[user_id]).await?;
    if !db::conversations::remove_member(&mut tx.conn(), conversation_id, user_id).await? {
        return Err(AppError::NotFound);
    }
    let conversation = data_of(&mut tx, conversation_id).await?;
    let members: Vec<i64> = conversation.members.iter().map(|u| u.id).collect();
    let mut audience = members.clone();
    audience.push(user_id);
    let text = format!("removed @{}", removed.username);
    record(
        &mut tx,
        Event::MembersChanged {
            conversation,
            added: vec![],
            removed: vec![removed],
            left: false,
            unread_lost,
        },
        audience,
    )
    .await?;
    super::messages::note(&mut tx, conversation_id, me, &text, members).await?;
    commit(cx, tx).await
}

/// I leave a group. The longest-standing member becomes owner if I owned it; the last one out
/// deletes it.
#[tracing::instrument(skip_all, fields(user_id = me.id, conversation_id))]
pub async fn leave(cx: &Ctx<'_>, me: &UserRef, conversation_id: i64) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    // Its note is a message: in line with concurrent posts (see `lock_timeline`).
    db::messages::lock_timeline(&mut tx, conversation_id).await?;
    let m = group_of(&mut tx, conversation_id, me.id, "left").await?;
    let unread_lost = unread_lost_by(&mut tx, conversation_id, &[me.id]).await?;
    db::conversations::remove_member(&mut tx.conn(), conversation_id, me.id).await?;
    let remaining = db::conversations::members(&mut tx.conn(), conversation_id).await?;
    if remaining.is_empty() {
        let files = db::attachments::keys_of_conversation(&mut tx.conn(), conversation_id).await?;
        db::conversations::delete(&mut tx.conn(), conversation_id).await?;
        record(
            &mut tx,
            Event::ConversationDeleted {
                conversation_id,
                unread_lost,
            },
            vec![me.id],
        )
        .await?;
        commit(cx, tx).await?;
        cx.files.remove(&files).await;
        return Ok(());
    }
    if m.owner_id == Some(me.id) {
        db::conversations::set_owner(&mut tx.conn(), conversation_id, remaining[0].id).await?;
    }
    let conversation = data_of(&mut tx, conversation_id).await?;
    let members: Vec<i64> = conversation.members.iter().map(|u| u.id).collect();
    let mut audience = members.clone();
    audience.push(me.id);
    record(
        &mut tx,
        Event::MembersChanged {
            conversation,
            added: vec![],
            removed: vec![me.clone()],
            left: true,
            unread_lost,
        },
        audience,
    )
    .await?;
    super::messages::note(&mut tx, conversation_id, me, "left the group", members).await?;
    commit(cx, tx).await
}

/// The owner deletes a group, for everyone.
#[tracing::instrument(skip_all, fields(user_id = me.id, conversation_id))]
pub async fn delete(cx: &Ctx<'_>, me: &UserRef, conversation_id: i64) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    let m = group_of(&mut tx, conversation_id, me.id, "deleted").await?;
    if m.owner_id != Some(me.id) {
        return Err(AppError::Forbidden(
            "Only the group's owner can delete it. You can leave it instead.",
        ));
    }
    let audience = db::conversations::members(&mut tx.conn(), conversation_id)
        .await?
        .iter()
        .map(|u| u.id)
        .collect();
    let unread_lost = db::conversations::unread_by_member(&mut tx.conn(), conversation_id).await?;
    let files = db::attachments::keys_of_conversation(&mut tx.conn(), conversation_id).await?;
    db::conversations::delete(&mut tx.conn(), conversation_id).await?;
    record(
        &mut tx,
        Event::ConversationDeleted {
            conversation_id,
            unread_lost,
        },
        audience,
    )
    .await?;
    commit(cx, tx).await?;
    cx.files.remove(&files).await;
    Ok(())
}

/// Any member gives a group a new title.
#[tracing::instrument(skip_all, fields(user_id = me.id, conversation_id))]
pub async fn rename(
    cx: &Ctx<'_>,
    me: &UserRef,
    conversation_id: i64,
    title: &GroupTitle,
) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    // Its note is a message: in line with concurrent posts (see `lock_timeline`).
    db::messages::lock_timeline(&mut tx, conversation_id).await?;
    let m = group_of(&mut tx, conversation_id, me.id, "renamed").await?;
    if m.title.as_deref() == Some(title.as_str()) {
        return Ok(());
    }
    db::conversations::set_title(&mut tx.conn(), conversation_id, title.as_str()).await?;
    let members = db::conversations::member_ids(&mut tx.conn(), conversation_id).await?;
    record(
        &mut tx,
        Event::ConversationRenamed {
            conversation_id,
            title: title.as_str().to_owned(),
        },
        members.clone(),
    )
    .await?;
    let text = format!("renamed the group to “{}”", title.as_str());
    super::messages::note(&mut tx, conversation_id, me, &text, members).await?;
    commit(cx, tx).await
}

/// What a member is notified of in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyLevel {
    /// Every message.
    All,
    /// Only messages that name me (groups).
    Mentions,
    /// Nothing; unread shows quietly.
    Mute,
}

impl NotifyLevel {
    /// From the form field.
    pub fn parse(raw: &str) -> Option<NotifyLevel> {
        match raw {
            "all" => Some(NotifyLevel::All),
            "mentions" => Some(NotifyLevel::Mentions),
            "mute" => Some(NotifyLevel::Mute),
            _ => None,
        }
    }

    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyLevel::All => "all",
            NotifyLevel::Mentions => "mentions",
            NotifyLevel::Mute => "mute",
        }
    }
}

/// Sets what I am notified of in a conversation; my other tabs follow live.
#[tracing::instrument(skip_all, fields(user_id = me.id, conversation_id))]
pub async fn set_notify(
    cx: &Ctx<'_>,
    me: &UserRef,
    conversation_id: i64,
    level: NotifyLevel,
) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    // In line with posts to it (see `lock_timeline`): the new total counts exactly the messages
    // whose frames come before this one.
    db::messages::lock_timeline(&mut tx, conversation_id).await?;
    let m = member_of(&mut tx, conversation_id, me.id).await?;
    if m.is_direct() && level == NotifyLevel::Mentions {
        return Err(AppError::invalid(
            "level",
            "A direct conversation is all mentions: choose all or mute.",
        ));
    }
    db::conversations::set_notify(&mut tx.conn(), conversation_id, me.id, level.as_str()).await?;
    let prefs = db::conversations::notify_prefs(&mut tx.conn(), me.id).await?;
    let total_unread = db::conversations::total_unread(&mut tx.conn(), me.id).await?;
    record(
        &mut tx,
        Event::NotifyChanged {
            user_id: me.id,
            prefs,
            total_unread: Some(total_unread),
        },
        vec![me.id],
    )
    .await?;
    commit(cx, tx).await
}

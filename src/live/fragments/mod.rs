//! The only Event → frames mapping: one small function per event, next to its record's kind
//! ([`messages`], [`conversations`], [`friends`], [`users`]). Each frame is rendered once, with the
//! same partials the pages use, and carries its own audience, so nobody receives a frame meant for
//! someone else. Presence shown in a frame is the presence when it is rendered (`online`).

pub mod admin;
pub mod conversations;
pub mod friends;
pub mod messages;
pub mod users;

use super::frame::{Action, Audience, Frame, audience, everyone};
use crate::events::Event;
use crate::views::{BadgePartial, BadgeView, render_fragment};

/// Who is online right now (the Hub's view), for the presence dots in a frame.
pub type Online<'a> = &'a dyn Fn(i64) -> bool;

/// The frames of `event`, in the order the browser applies them. `all` is the event's whole
/// audience (its conversation's members at that point, or its explicit list), resolved when
/// the frames are routed, so the same frames serve live delivery and replay.
pub fn frames_for(event: &Event, online: Online<'_>) -> Vec<Frame> {
    let all = everyone();
    match event {
        Event::SessionEnded { .. }
        | Event::PasswordChanged { .. }
        | Event::UserDeactivated { .. } => Vec::new(),
        Event::AdminUserUpdated {
            user,
            created,
            admins,
        } => {
            let rows = admins.as_ref().map_or(all, |a| audience(a.iter().copied()));
            admin::user_updated(user, *created, rows)
        }
        Event::AdminLogged { entry } => admin::logged(entry, all),
        Event::InviteUpdated { invite, created } => admin::invite_updated(invite, *created, all),
        Event::ProfileUpdated { user } => users::profile_updated(user, all),
        Event::FriendRequestCreated {
            request_id,
            requester,
            recipient,
            created_at,
            recipient_pending,
        } => friends::request_created(
            *request_id,
            requester,
            recipient,
            *created_at,
            *recipient_pending,
        ),
        Event::FriendRequestUpdated {
            request_id,
            requester,
            recipient,
            recipient_pending,
            ..
        } => friends::request_updated(*request_id, requester, recipient, *recipient_pending),
        Event::FriendAdded { a, b } => friends::friend_added(a, b, online),
        Event::FriendRemoved {
            a,
            b,
            conversation_id,
        } => friends::friend_removed(a, b, *conversation_id),
        Event::ConversationCreated { conversation } => conversations::created(conversation, online),
        Event::ConversationReopened { conversation_id } => {
            conversations::reopened(*conversation_id, all)
        }
        Event::ConversationDeleted {
            conversation_id,
            unread_lost,
        } => conversations::deleted(*conversation_id, unread_lost, all),
        Event::MembersChanged {
            conversation,
            added,
            removed,
            left,
            unread_lost,
        } => {
            conversations::members_changed(conversation, added, removed, *left, unread_lost, online)
        }
        Event::MessageAdded {
            message,
            author_total_unread,
            author_gone,
        } => messages::added(message, *author_total_unread, *author_gone, all),
        Event::MessagesRead {
            conversation_id,
            reader,
            message_id,
            unread,
            total_unread,
            unread_mentions,
        } => messages::read(
            *conversation_id,
            reader,
            *message_id,
            (*unread, *unread_mentions),
            *total_unread,
            all,
        ),
        Event::MessageEdited {
            message,
            replies,
            is_last,
            last_activity_at,
            mentioned,
            unmentioned,
        } => messages::edited(
            message,
            replies,
            *is_last,
            *last_activity_at,
            (mentioned, unmentioned),
            all,
        ),
        Event::MessageDeleted {
            conversation_id,
            message_id,
            next,
            replies,
            new_last,
            last_activity_at,
            unread_for,
            unread_muted,
            unread_mentioned,
        } => messages::deleted(
            *conversation_id,
            *message_id,
            next.as_ref(),
            replies,
            new_last.as_ref(),
            *last_activity_at,
            (unread_for, unread_muted, unread_mentioned),
            all,
        ),
        Event::ReactionsChanged { message } => messages::reactions_changed(message, all),
        Event::NotifyChanged {
            user_id,
            prefs,
            total_unread,
        } => users::notify_changed(*user_id, prefs, *total_unread),
        Event::PushDevicesChanged { user_id, devices } => {
            users::push_devices_changed(*user_id, devices)
        }
        Event::ConversationRenamed {
            conversation_id,
            title,
        } => conversations::renamed(*conversation_id, title, all),
    }
}

/// A `remove` frame.
pub(crate) fn remove(target: String, to: Audience) -> Frame {
    Frame::new(Action::Remove, target, to, "")
}

/// Sets a header badge of `user` to `count`.
pub(crate) fn badge(id: &'static str, count: i64, user: i64) -> Frame {
    Frame::new(
        Action::Replace,
        id.to_owned(),
        audience([user]),
        &render_fragment(&BadgePartial {
            badge: BadgeView { id, count },
        }),
    )
}

/// Lowers the header unread badge of users who lost unread messages (a group deleted or left),
/// one frame per distinct amount.
pub(crate) fn unread_drops(lost: &[(i64, i64)]) -> Vec<Frame> {
    let mut by_amount: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for (user, n) in lost.iter().filter(|(_, n)| *n > 0) {
        by_amount.entry(*n).or_default().push(*user);
    }
    by_amount
        .into_iter()
        .map(|(n, users)| {
            Frame::with_delta(
                Action::Replace,
                "badge-unread".into(),
                audience(users),
                "",
                Some(-n),
            )
        })
        .collect()
}

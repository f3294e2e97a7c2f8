//! What happened, as data: the [`Event`] enum stored in the `events` log and carried between nodes.
//! HTML for an event is made in `live::fragments`; the reactions to events live in `chat::reactions`.

use serde::{Deserialize, Serialize};

use crate::db::users::UserRef;

/// A message as events carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageData {
    /// Id.
    pub id: i64,
    /// Conversation.
    pub conversation_id: i64,
    /// Author.
    pub author: UserRef,
    /// Text.
    pub body: String,
    /// Stored at (ms).
    pub created_at: i64,
    /// The message before it in the conversation (grouping and day separators are decided from
    /// the pair, the same way on pages and live).
    #[serde(default)]
    pub prev: Option<PrevMessage>,
    /// Edited since it was posted.
    #[serde(default)]
    pub edited: bool,
    /// The message it replies to.
    #[serde(default)]
    pub reply: Option<Quote>,
    /// Reactions, grouped by emoji, in the order they first came.
    #[serde(default)]
    pub reactions: Vec<ReactionData>,
    /// Members it names (`@username`).
    #[serde(default)]
    pub mentions: Vec<MentionData>,
    /// A note about the group ("added @cat"), not written by a person.
    #[serde(default)]
    pub note: bool,
    /// Its files, in upload order.
    #[serde(default)]
    pub attachments: Vec<AttachmentData>,
}

/// A file of a message, as pages and frames show it (the bytes are served by id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentData {
    /// Id (its URLs: `/conversations/{conversation_id}/attachments/{id}`).
    pub id: i64,
    /// The file name as uploaded.
    pub name: String,
    /// Bytes.
    pub size: i64,
    /// An image shown inline (decoded and re-encoded by us).
    pub image: bool,
    /// The thumbnail's width and height, when there is one.
    pub thumb: Option<(i64, i64)>,
}

/// What a reply shows of the message it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// The original's id.
    pub id: i64,
    /// Its author and text; None once it was deleted.
    pub original: Option<(UserRef, String)>,
}

/// One emoji on a message and who put it there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionData {
    /// The emoji.
    pub emoji: String,
    /// Who reacted with it, first first.
    pub users: Vec<UserRef>,
}

/// A member named in a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MentionData {
    /// User id.
    pub id: i64,
    /// Username.
    pub username: String,
}

/// Of the message before another, what grouping needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrevMessage {
    /// Its author.
    pub author_id: i64,
    /// Stored at (ms).
    pub created_at: i64,
    /// A note about the group (nothing groups with it).
    #[serde(default)]
    pub note: bool,
}

/// A conversation as a list row needs it, independent of the viewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationData {
    /// Id.
    pub id: i64,
    /// Group title; None for a direct conversation.
    pub title: Option<String>,
    /// Owner of a group.
    pub owner_id: Option<i64>,
    /// Newest activity (ms).
    pub last_activity_at: i64,
    /// Members, longest-standing first.
    pub members: Vec<UserRef>,
    /// The newest message (the row's preview).
    #[serde(default)]
    pub last_message: Option<MessageData>,
}

impl ConversationData {
    /// True for a direct conversation.
    pub fn is_direct(&self) -> bool {
        self.title.is_none()
    }
}

/// How a friend request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    /// The recipient said yes.
    Accepted,
    /// The recipient said no.
    Rejected,
    /// The requester withdrew it.
    Cancelled,
}

impl RequestStatus {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Accepted => "accepted",
            RequestStatus::Rejected => "rejected",
            RequestStatus::Cancelled => "cancelled",
        }
    }
}

/// A user as the admin pages show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUserData {
    /// The user.
    pub user: UserRef,
    /// An administrator.
    pub is_admin: bool,
    /// Deactivated at (ms); None while active.
    pub deactivated_at: Option<i64>,
    /// Registered at (ms).
    pub created_at: i64,
}

/// An entry of the admin log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditData {
    /// Id.
    pub id: i64,
    /// Who (a username, or `parley admin`).
    pub actor: String,
    /// What.
    pub action: String,
    /// To whom (a username; empty when nobody).
    pub target: String,
    /// More about it.
    pub detail: String,
    /// When (ms).
    pub created_at: i64,
}

/// An invite link as its lists show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteData {
    /// Id.
    pub id: i64,
    /// The secret in its link.
    pub token: String,
    /// Who made it.
    pub creator: UserRef,
    /// Registrations it allows; None: any number until it expires.
    pub max_uses: Option<i64>,
    /// Registrations made with it.
    pub uses: i64,
    /// Who registers with it becomes the creator's friend.
    pub befriend: bool,
    /// Expires at (ms).
    pub expires_at: i64,
    /// Revoked at (ms).
    pub revoked_at: Option<i64>,
    /// Made at (ms).
    pub created_at: i64,
}

/// Everything a user may be told about, live or on replay.
// An event is built once per change and then serialised or shared behind an `Arc`, never copied
// around in bulk: boxing the message-carrying variants would buy nothing measurable.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Event {
    /// A user changed their display name (audience: everyone who may see the name: friends,
    /// people sharing a conversation, the other party of a pending request, and the user).
    ProfileUpdated {
        /// The user, renamed.
        user: UserRef,
    },
    /// A login session ended (logout): its streams close.
    SessionEnded {
        /// Whose.
        user_id: i64,
        /// Which login (a random id kept in the session, never the session id itself).
        login_id: u64,
    },
    /// A password changed: every other login of the user ends, their streams close.
    PasswordChanged {
        /// Whose.
        user_id: i64,
        /// The login that changed it, which stays.
        keep_login_id: u64,
    },
    /// A user was deactivated: every stream of theirs closes, on every node (audience: them).
    UserDeactivated {
        /// Whose.
        user_id: i64,
    },
    /// A user was registered, or changed as the admin pages show them (admin, deactivated); the
    /// audience is the admins and the user (whose header link to the admin pages follows).
    AdminUserUpdated {
        /// The user as it is now.
        user: AdminUserData,
        /// Newly registered (added to the admin list rather than replaced in it).
        created: bool,
        /// The admins then: only they get the admin list's row (the user, unless one of them,
        /// gets their header link alone). None in events logged before it was recorded: the
        /// whole audience then.
        #[serde(default)]
        admins: Option<Vec<i64>>,
    },
    /// An admin did something (audience: the admins).
    AdminLogged {
        /// The log entry.
        entry: AuditData,
    },
    /// An invite link was made, used or revoked (audience: its creator and the admins).
    InviteUpdated {
        /// It, as it is now.
        invite: InviteData,
        /// Newly made (added to the lists rather than replaced in them).
        created: bool,
    },
    /// A friend request was sent.
    FriendRequestCreated {
        /// Request id.
        request_id: i64,
        /// Who asked.
        requester: UserRef,
        /// Who was asked.
        recipient: UserRef,
        /// When (ms).
        created_at: i64,
        /// Requests waiting for the recipient, this one included (their header badge).
        #[serde(default)]
        recipient_pending: i64,
    },
    /// A friend request was accepted, rejected or cancelled.
    FriendRequestUpdated {
        /// Request id.
        request_id: i64,
        /// Who asked.
        requester: UserRef,
        /// Who was asked.
        recipient: UserRef,
        /// The outcome.
        status: RequestStatus,
        /// Requests still waiting for the recipient (their header badge).
        #[serde(default)]
        recipient_pending: i64,
    },
    /// Two users became friends.
    FriendAdded {
        /// One.
        a: UserRef,
        /// The other.
        b: UserRef,
    },
    /// Two users stopped being friends.
    FriendRemoved {
        /// One.
        a: UserRef,
        /// The other.
        b: UserRef,
        /// Their direct conversation, now read-only.
        conversation_id: Option<i64>,
    },
    /// A conversation came to be (a group, or the direct conversation of new friends).
    ConversationCreated {
        /// It.
        conversation: ConversationData,
    },
    /// A direct conversation accepts messages again (its two people are friends again).
    ConversationReopened {
        /// Conversation id.
        conversation_id: i64,
    },
    /// A group was deleted (by its owner, or when its last member left).
    ConversationDeleted {
        /// Conversation id.
        conversation_id: i64,
        /// Members who had unread messages there, and how many (their header badges drop).
        #[serde(default)]
        unread_lost: Vec<(i64, i64)>,
    },
    /// Who is in a group changed: someone added, removed, left, or the owner changed.
    MembersChanged {
        /// The group as it is now.
        conversation: ConversationData,
        /// Who joined.
        added: Vec<UserRef>,
        /// Who is gone (removed or left).
        removed: Vec<UserRef>,
        /// True when the removed left by themselves.
        left: bool,
        /// Of the removed, who had unread messages there, and how many.
        #[serde(default)]
        unread_lost: Vec<(i64, i64)>,
    },
    /// A message was posted.
    MessageAdded {
        /// It.
        message: MessageData,
        /// The author's unread messages in all conversations after it (their read marker moved
        /// to their own message, so this conversation counts none).
        #[serde(default)]
        author_total_unread: i64,
        /// The author is no longer a member (the note of their leaving): no read marker or count
        /// of theirs moves.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        author_gone: bool,
    },
    /// A group got a new title.
    ConversationRenamed {
        /// Conversation id.
        conversation_id: i64,
        /// The new title.
        title: String,
    },
    /// A member changed what they are notified of in a conversation (audience: their own tabs).
    NotifyChanged {
        /// Whose settings.
        user_id: i64,
        /// All their conversations not on "all", after the change: (conversation, level).
        prefs: Vec<(i64, String)>,
        /// Their header badge after it (muted conversations do not count). Absent in events
        /// logged before muting changed the badge.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total_unread: Option<i64>,
    },
    /// A message's text changed.
    MessageEdited {
        /// It, as it is now.
        message: MessageData,
        /// Replies that quote it (their quotes change).
        replies: Vec<i64>,
        /// It is the conversation's newest message (the list preview changes).
        is_last: bool,
        /// The conversation's newest activity (ms).
        last_activity_at: i64,
        /// Members for whom it is unread and whom the edit newly names (their row's `@` count
        /// rises by one).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentioned: Vec<i64>,
        /// Members for whom it is unread and whom it no longer names (theirs drops by one).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unmentioned: Vec<i64>,
    },
    /// A message was deleted.
    MessageDeleted {
        /// Conversation.
        conversation_id: i64,
        /// The message gone.
        message_id: i64,
        /// The message after it, regrouped with the one before.
        next: Option<MessageData>,
        /// Replies that quoted it (they now say "message deleted").
        replies: Vec<i64>,
        /// The newest message now, when the deleted one was the newest (the preview changes);
        /// `Some(None)` when none is left. Absent for `None`, and `null` read back as
        /// `Some(None)`: plain serde reads `null` as `None`, and the emptied preview was lost.
        /// Stored under a new name: events logged before wrote `null` for both.
        #[serde(
            rename = "newest_after",
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        new_last: Option<Option<MessageData>>,
        /// The conversation's newest activity (ms).
        last_activity_at: i64,
        /// Members for whom it was unread (their counts drop by one).
        unread_for: Vec<i64>,
        /// Of those, the ones who muted the conversation: their header badge does not count it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unread_muted: Vec<i64>,
        /// Of those, the ones it named: their row's `@` count drops by one.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        unread_mentioned: Vec<i64>,
    },
    /// Someone reacted to a message, or took a reaction back.
    ReactionsChanged {
        /// The message with its reactions now.
        message: MessageData,
    },
    /// A member's read marker moved.
    MessagesRead {
        /// Conversation id.
        conversation_id: i64,
        /// Who read.
        reader: UserRef,
        /// The newest message they have read.
        message_id: i64,
        /// The reader's unread messages left in this conversation.
        #[serde(default)]
        unread: i64,
        /// The reader's unread messages left in all conversations (their header badge).
        #[serde(default)]
        total_unread: i64,
        /// Of the reader's unread messages left here, those that name them.
        #[serde(default)]
        unread_mentions: i64,
    },
    /// A user's devices with Web Push on changed (audience: their own tabs).
    PushDevicesChanged {
        /// Whose devices.
        user_id: i64,
        /// All their devices, after the change.
        devices: Vec<PushDevice>,
    },
}

/// A device (browser) with Web Push on, as the settings page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushDevice {
    /// Subscription id.
    pub id: i64,
    /// "Firefox on Android".
    pub label: String,
    /// The push service's host (which company relays it).
    pub service: String,
    /// Turned on at (ms).
    pub created_at: i64,
}

impl Event {
    /// The kind, as stored in the log's `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::ProfileUpdated { .. } => "ProfileUpdated",
            Event::SessionEnded { .. } => "SessionEnded",
            Event::PasswordChanged { .. } => "PasswordChanged",
            Event::UserDeactivated { .. } => "UserDeactivated",
            Event::AdminUserUpdated { .. } => "AdminUserUpdated",
            Event::AdminLogged { .. } => "AdminLogged",
            Event::InviteUpdated { .. } => "InviteUpdated",
            Event::FriendRequestCreated { .. } => "FriendRequestCreated",
            Event::FriendRequestUpdated { .. } => "FriendRequestUpdated",
            Event::FriendAdded { .. } => "FriendAdded",
            Event::FriendRemoved { .. } => "FriendRemoved",
            Event::ConversationCreated { .. } => "ConversationCreated",
            Event::ConversationReopened { .. } => "ConversationReopened",
            Event::ConversationDeleted { .. } => "ConversationDeleted",
            Event::MembersChanged { .. } => "MembersChanged",
            Event::MessageAdded { .. } => "MessageAdded",
            Event::MessagesRead { .. } => "MessagesRead",
            Event::MessageEdited { .. } => "MessageEdited",
            Event::ConversationRenamed { .. } => "ConversationRenamed",
            Event::NotifyChanged { .. } => "NotifyChanged",
            Event::MessageDeleted { .. } => "MessageDeleted",
            Event::ReactionsChanged { .. } => "ReactionsChanged",
            Event::PushDevicesChanged { .. } => "PushDevicesChanged",
        }
    }

    /// The conversation whose members are this event's audience (at this point in the log), or
    /// None when the audience is the explicit list recorded with it.
    pub fn conversation_id(&self) -> Option<i64> {
        match self {
            Event::ConversationCreated { conversation } => Some(conversation.id),
            Event::MembersChanged { conversation, .. } => Some(conversation.id),
            Event::ConversationReopened { conversation_id }
            | Event::ConversationDeleted {
                conversation_id, ..
            }
            | Event::MessagesRead {
                conversation_id, ..
            } => Some(*conversation_id),
            Event::MessageAdded { message, .. }
            | Event::MessageEdited { message, .. }
            | Event::ReactionsChanged { message } => Some(message.conversation_id),
            Event::ConversationRenamed {
                conversation_id, ..
            }
            | Event::MessageDeleted {
                conversation_id, ..
            } => Some(*conversation_id),
            Event::NotifyChanged { .. }
            | Event::PushDevicesChanged { .. }
            | Event::ProfileUpdated { .. }
            | Event::SessionEnded { .. }
            | Event::PasswordChanged { .. }
            | Event::FriendRequestCreated { .. }
            | Event::FriendRequestUpdated { .. }
            | Event::FriendAdded { .. }
            | Event::FriendRemoved { .. }
            | Event::UserDeactivated { .. }
            | Event::AdminUserUpdated { .. }
            | Event::AdminLogged { .. }
            | Event::InviteUpdated { .. } => None,
        }
    }
}

/// A field that is present, even as `null`, is `Some` (see `MessageDeleted::new_last`).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emptied_preview_survives_json() {
        for new_last in [None, Some(None)] {
            let e = Event::MessageDeleted {
                conversation_id: 1,
                message_id: 2,
                next: None,
                replies: Vec::new(),
                new_last: new_last.clone(),
                last_activity_at: 3,
                unread_for: Vec::new(),
                unread_muted: Vec::new(),
                unread_mentioned: Vec::new(),
            };
            let back: Event = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
            let Event::MessageDeleted { new_last: got, .. } = back else {
                panic!("another event");
            };
            assert_eq!(got.is_some(), new_last.is_some());
        }
    }

    #[test]
    fn events_round_trip_through_json() {
        let e = Event::MessagesRead {
            conversation_id: 3,
            reader: UserRef {
                id: 1,
                username: "ann".into(),
                display_name: String::new(),
            },
            message_id: 9,
            unread: 0,
            total_unread: 2,
            unread_mentions: 0,
        };
        let s = serde_json::to_string(&e).expect("an event round-trips through JSON");
        assert!(s.contains("\"kind\":\"MessagesRead\""));
        assert_eq!(
            serde_json::from_str::<Event>(&s).expect("an event round-trips through JSON"),
            e
        );
    }
}

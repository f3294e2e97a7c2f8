//! Partials: one template per broadcastable record, rendered the same in pages and live fragments.
//! They are viewer-independent (rendered once, fanned out); what differs per viewer is derived by
//! live.js from `data-*` attributes.

use askama::Template;

use super::{Segment, Stamp, hue, initials, linkify};
use crate::db::users::UserRef;
use crate::events::MessageData;

/// A person as lists show them.
#[derive(Debug, Clone)]
pub struct UserView {
    /// Id.
    pub id: i64,
    /// Display name or username.
    pub name: String,
    /// Username.
    pub username: String,
    /// Avatar initials.
    pub initials: String,
    /// Avatar colour (0–7).
    pub hue: i64,
    /// Has a stream open.
    pub online: bool,
}

impl UserView {
    /// From a user, with presence.
    pub fn new(u: &UserRef, online: bool) -> UserView {
        UserView {
            id: u.id,
            name: u.name().to_owned(),
            username: u.username.clone(),
            initials: initials(u.name()),
            hue: hue(u.id),
            online,
        }
    }
}

/// `users/_current_user.html`: the header chip (id `current-user`).
#[derive(Template)]
#[template(path = "users/_current_user.html")]
pub struct CurrentUserPartial {
    /// Me.
    pub me: UserView,
}

/// `users/_presence.html`: a presence dot (id `presence-{user_id}`).
#[derive(Template)]
#[template(path = "users/_presence.html")]
pub struct PresencePartial {
    /// Whose.
    pub user: UserView,
}

/// A member's read marker shown under the newest message they read.
#[derive(Debug, Clone)]
pub struct ReaderView {
    /// Conversation.
    pub conversation_id: i64,
    /// Who.
    pub user: UserView,
}

/// `messages/_reader.html` (id `reader-{conversation_id}-{user_id}`).
#[derive(Template)]
#[template(path = "messages/_reader.html")]
pub struct ReaderPartial {
    /// The reader.
    pub reader: ReaderView,
}

/// A message as the page and the fragment show it.
#[derive(Debug, Clone)]
pub struct MessageView {
    /// Id.
    pub id: i64,
    /// Conversation.
    pub conversation_id: i64,
    /// Author.
    pub author: UserView,
    /// Text, with links.
    pub segments: Vec<Segment>,
    /// Plain text (the list preview).
    pub text: String,
    /// When.
    pub at: Stamp,
    /// Same author as the message before, within minutes (pages only; live.js does it live).
    pub continued: bool,
    /// A day separator goes before it (pages only).
    pub new_day: bool,
    /// Readers whose newest read message this is (pages only).
    pub readers: Vec<ReaderView>,
}

impl MessageView {
    /// From event data.
    pub fn new(m: &MessageData) -> MessageView {
        MessageView {
            id: m.id,
            conversation_id: m.conversation_id,
            author: UserView::new(&m.author, false),
            segments: linkify(&m.body),
            text: m.body.clone(),
            at: Stamp::new(m.created_at),
            continued: false,
            new_day: false,
            readers: Vec::new(),
        }
    }
}

/// `messages/_message.html` (id `message-{id}`).
#[derive(Template)]
#[template(path = "messages/_message.html")]
pub struct MessagePartial {
    /// The message.
    pub message: MessageView,
}

/// The latest-message line of a list row (id `preview-{conversation_id}`).
#[derive(Debug, Clone)]
pub struct PreviewView {
    /// Conversation.
    pub conversation_id: i64,
    /// "Ann: text…", or empty.
    pub text: String,
    /// Last activity.
    pub at: Stamp,
}

impl PreviewView {
    /// The preview of a message.
    pub fn of(conversation_id: i64, author: Option<&str>, body: Option<&str>, at_ms: i64) -> Self {
        let text = match (author, body) {
            (Some(a), Some(b)) => {
                let one_line = b.split_whitespace().collect::<Vec<_>>().join(" ");
                let short: String = one_line.chars().take(80).collect();
                let ellipsis = if one_line.chars().count() > 80 {
                    "…"
                } else {
                    ""
                };
                format!("{a}: {short}{ellipsis}")
            }
            _ => String::new(),
        };
        PreviewView {
            conversation_id,
            text,
            at: Stamp::new(at_ms),
        }
    }
}

/// `conversations/_preview.html`.
#[derive(Template)]
#[template(path = "conversations/_preview.html")]
pub struct PreviewPartial {
    /// The preview.
    pub preview: PreviewView,
}

/// A row of the conversation list.
#[derive(Debug, Clone)]
pub struct ConversationRowView {
    /// Conversation id.
    pub id: i64,
    /// Group title, or the other person's name.
    pub title: String,
    /// The other person of a direct conversation.
    pub other: Option<UserView>,
    /// Avatar initials.
    pub initials: String,
    /// Avatar colour.
    pub hue: i64,
    /// Latest message.
    pub preview: PreviewView,
    /// My unread count (0 in live fragments: live.js counts up from there).
    pub unread: i64,
    /// The row of the open conversation.
    pub current: bool,
}

/// `conversations/_row.html` (id `conversation-{id}`).
#[derive(Template)]
#[template(path = "conversations/_row.html")]
pub struct ConversationRowPartial {
    /// The row.
    pub row: ConversationRowView,
}

/// A group's member list (id `members-{conversation_id}`).
#[derive(Debug, Clone)]
pub struct MembersView {
    /// Conversation.
    pub conversation_id: i64,
    /// Owner.
    pub owner_id: i64,
    /// Members, longest-standing first.
    pub members: Vec<UserView>,
    /// Page: whether the viewer owns the group. Fragment: None, owner controls are rendered
    /// with `data-owner-only` and live.js hides them from everyone else.
    pub viewer_is_owner: Option<bool>,
}

impl MembersView {
    /// Whether owner-only controls are in the markup.
    pub fn owner_controls(&self) -> bool {
        self.viewer_is_owner != Some(false)
    }
}

/// `conversations/_members.html`.
#[derive(Template)]
#[template(path = "conversations/_members.html")]
pub struct MembersPartial {
    /// The list.
    pub members: MembersView,
}

/// The composer, or the notice that replaces it (id `composer-{conversation_id}`).
#[derive(Debug, Clone)]
pub struct ComposerView {
    /// Conversation.
    pub conversation_id: i64,
    /// Accepts messages (a direct conversation of ex-friends does not).
    pub open: bool,
    /// Fresh idempotency key for a send without JS.
    pub client_id: String,
    /// Text to put back after an error.
    pub draft: String,
    /// What went wrong with the last send.
    pub error: Option<String>,
}

impl ComposerView {
    /// An empty composer.
    pub fn new(conversation_id: i64, open: bool) -> ComposerView {
        ComposerView {
            conversation_id,
            open,
            client_id: new_client_id(),
            draft: String::new(),
            error: None,
        }
    }
}

/// A random idempotency key.
pub fn new_client_id() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(22)
        .map(char::from)
        .collect()
}

/// `conversations/_composer.html`.
#[derive(Template)]
#[template(path = "conversations/_composer.html")]
pub struct ComposerPartial {
    /// The composer.
    pub composer: ComposerView,
}

/// `conversations/_gone.html`: replaces an open conversation that was deleted or left me out
/// (id `conversation-view-{id}`).
#[derive(Template)]
#[template(path = "conversations/_gone.html")]
pub struct GonePartial {
    /// Conversation.
    pub conversation_id: i64,
    /// What happened.
    pub message: String,
}

/// A pending friend request row.
#[derive(Debug, Clone)]
pub struct RequestView {
    /// Request id.
    pub id: i64,
    /// True in the recipient's list (accept / reject), false in the requester's (cancel).
    pub incoming: bool,
    /// The other party.
    pub other: UserView,
    /// Sent at.
    pub at: Stamp,
}

/// `friends/_request.html` (id `request-{id}`).
#[derive(Template)]
#[template(path = "friends/_request.html")]
pub struct RequestPartial {
    /// The request.
    pub request: RequestView,
}

/// `friends/_friend.html` (id `friend-{user_id}`).
#[derive(Template)]
#[template(path = "friends/_friend.html")]
pub struct FriendPartial {
    /// The friend.
    pub friend: UserView,
}

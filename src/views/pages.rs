//! Whole pages. Each extends `base.html` and carries a [`Layout`].

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;

use super::partials::*;
use super::{Layout, render};
use crate::domain::FieldErrors;

/// `errors/error.html`.
#[derive(Template)]
#[template(path = "errors/error.html")]
pub struct ErrorPage {
    /// Layout (anonymous: error pages do not look the user up).
    pub layout: Layout,
    /// Heading.
    pub title: String,
    /// What to tell.
    pub message: String,
}

impl ErrorPage {
    /// An error page.
    pub fn new(title: &str, message: String) -> ErrorPage {
        ErrorPage {
            layout: Layout {
                bare: true,
                ..Layout::default()
            },
            title: title.to_owned(),
            message,
        }
    }

    /// Renders with `status`.
    pub fn into_response_with(self, status: StatusCode) -> Response {
        render(status, &self)
    }
}

/// `sessions/login.html`.
#[derive(Template)]
#[template(path = "sessions/login.html")]
pub struct LoginPage {
    /// Layout.
    pub layout: Layout,
    /// Username as typed.
    pub username: String,
    /// Where to go after.
    pub next: String,
    /// Errors.
    pub errors: FieldErrors,
}

/// `sessions/register.html`.
#[derive(Template)]
#[template(path = "sessions/register.html")]
pub struct RegisterPage {
    /// Layout.
    pub layout: Layout,
    /// Username as typed.
    pub username: String,
    /// Errors.
    pub errors: FieldErrors,
    /// No account exists yet: this one will run the instance.
    pub first_run: bool,
    /// Registration mode: `open`, `invite`, `closed`.
    pub mode: String,
    /// The form is shown (open registration, a working invite, or the first account).
    pub open: bool,
    /// The invite's token, sent back with the form.
    pub invite: Option<String>,
    /// Who invited (username).
    pub invited_by: Option<String>,
    /// The invite makes us friends.
    pub befriend: bool,
}

/// `settings/edit.html`.
#[derive(Template)]
#[template(path = "settings/edit.html")]
pub struct SettingsPage {
    /// Layout.
    pub layout: Layout,
    /// Display name as typed or stored.
    pub display_name: String,
    /// Errors of either form.
    pub errors: FieldErrors,
    /// A confirmation to show.
    pub notice: Option<String>,
    /// My devices with Web Push on.
    pub push_devices: super::PushDevicesView,
    /// The server's VAPID public key (what `pushManager.subscribe` needs).
    pub vapid_key: String,
}

/// `friends/index.html`.
#[derive(Template)]
#[template(path = "friends/index.html")]
pub struct FriendsPage {
    /// Layout.
    pub layout: Layout,
    /// My friends.
    pub friends: Vec<UserView>,
    /// Requests waiting for me.
    pub incoming: Vec<RequestView>,
    /// Requests I sent.
    pub outgoing: Vec<RequestView>,
    /// Username as typed.
    pub username: String,
    /// Errors.
    pub errors: FieldErrors,
    /// A confirmation to show.
    pub notice: Option<String>,
}

/// `conversations/index.html`.
#[derive(Template)]
#[template(path = "conversations/index.html")]
pub struct ConversationsPage {
    /// Layout.
    pub layout: Layout,
    /// My conversations.
    pub rows: Vec<ConversationRowView>,
    /// Friends I can put in a new group.
    pub picks: Vec<PickView>,
    /// Title as typed.
    pub title: String,
    /// Errors.
    pub errors: FieldErrors,
}

/// `conversations/show.html`.
#[derive(Template)]
#[template(path = "conversations/show.html")]
pub struct ConversationPage {
    /// Layout.
    pub layout: Layout,
    /// The sidebar list.
    pub rows: Vec<ConversationRowView>,
    /// Conversation id.
    pub id: i64,
    /// Title (group title, or the other person).
    pub title: String,
    /// The other person of a direct conversation.
    pub other: Option<UserView>,
    /// Avatar initials of a group (a direct conversation shows the other person's).
    pub initials: String,
    /// Avatar colour of a group.
    pub hue: i64,
    /// Messages, oldest first.
    pub messages: Vec<MessageView>,
    /// The first unread message: the "New messages" divider goes above it.
    pub divider: Option<i64>,
    /// What I am notified of here: all, mentions, mute.
    pub notify: String,
    /// The message list's DOM id (older pages have their own, so live appends skip them).
    pub list_id: String,
    /// Where "ann is typing…" shows.
    pub typing_id: String,
    /// Id to page back from, when there are older messages.
    pub older: Option<i64>,
    /// Id to page forward from, when the page does not reach the newest message.
    pub newer: Option<i64>,
    /// True when the page does not end with the newest message (`?before=`, `?after=`, a
    /// permanent link far back): no composer, no live appends, a link to the newest.
    pub paged: bool,
    /// Group members (None for a direct conversation).
    pub members: Option<MembersView>,
    /// The composer.
    pub composer: ComposerView,
    /// Errors of the member forms.
    pub errors: FieldErrors,
}

/// `messages/edit.html`: editing a message without JavaScript.
#[derive(Template)]
#[template(path = "messages/edit.html")]
pub struct MessageEditPage {
    /// Layout.
    pub layout: Layout,
    /// Conversation.
    pub conversation_id: i64,
    /// The message.
    pub message_id: i64,
    /// Text as stored or typed.
    pub body: String,
    /// Errors.
    pub errors: FieldErrors,
}

/// `messages/delete.html`: the confirmation without JavaScript.
#[derive(Template)]
#[template(path = "messages/delete.html")]
pub struct MessageDeletePage {
    /// Layout.
    pub layout: Layout,
    /// Conversation.
    pub conversation_id: i64,
    /// The message.
    pub message_id: i64,
    /// The start of its text.
    pub excerpt: String,
}

impl ConversationPage {
    /// Whether the "New messages" divider goes above message `id`.
    pub fn divider_before(&self, id: &i64) -> bool {
        self.divider == Some(*id)
    }
}

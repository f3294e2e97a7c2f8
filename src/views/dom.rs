//! DOM ids: the one place that names the element of each record and container. Templates call
//! these through the view models' `dom_id()`, frames use them as targets, and live.js reads them
//! back from `data-*` attributes rather than building ids of its own.

/// A message: `message-{id}`.
pub fn message(id: i64) -> String {
    format!("message-{id}")
}

/// The message list of a conversation's newest page: `messages-{conversation_id}`. Older pages
/// (`?before=`) use [`messages_page`], so live appends never land on them.
pub fn messages(conversation_id: i64) -> String {
    format!("messages-{conversation_id}")
}

/// The message list of an older page, which live appends must not reach.
pub fn messages_page(conversation_id: i64, before: i64) -> String {
    format!("messages-{conversation_id}-before-{before}")
}

/// The message list of a page opened at a message (`/conversations/{id}/messages/{message_id}`)
/// that does not reach the newest message: live appends must not land on it either.
pub fn messages_at(conversation_id: i64, message_id: i64) -> String {
    format!("messages-{conversation_id}-at-{message_id}")
}

/// The message list of a newer page (`?after=`) that does not reach the newest message.
pub fn messages_after(conversation_id: i64, after: i64) -> String {
    format!("messages-{conversation_id}-after-{after}")
}

/// A message found on the search page: `result-{message_id}`.
pub fn search_result(message_id: i64) -> String {
    format!("result-{message_id}")
}

/// A file of a message: `attachment-{id}`.
pub fn attachment(id: i64) -> String {
    format!("attachment-{id}")
}

/// The file picker of a composer: `files-{conversation_id}`.
pub fn file_input(conversation_id: i64) -> String {
    format!("files-{conversation_id}")
}

/// The receipts under a message: `receipts-{message_id}`.
pub fn receipts(message_id: i64) -> String {
    format!("receipts-{message_id}")
}

/// What a reply shows of the message it answers: `quote-{reply_id}`.
pub fn quote(reply_id: i64) -> String {
    format!("quote-{reply_id}")
}

/// Who is typing in a conversation: `typing-{conversation_id}`.
pub fn typing(conversation_id: i64) -> String {
    format!("typing-{conversation_id}")
}

/// A member's read marker chip: `reader-{conversation_id}-{user_id}`.
pub fn reader(conversation_id: i64, user_id: i64) -> String {
    format!("reader-{conversation_id}-{user_id}")
}

/// A row of the conversation list: `conversation-{id}`.
pub fn conversation_row(id: i64) -> String {
    format!("conversation-{id}")
}

/// The latest-message line of a row: `preview-{conversation_id}`.
pub fn preview(conversation_id: i64) -> String {
    format!("preview-{conversation_id}")
}

/// The unread count of a row: `unread-{conversation_id}`.
pub fn unread(conversation_id: i64) -> String {
    format!("unread-{conversation_id}")
}

/// An open conversation's main section: `conversation-view-{id}`.
pub fn conversation_view(id: i64) -> String {
    format!("conversation-view-{id}")
}

/// A group's member list: `members-{conversation_id}`.
pub fn members(conversation_id: i64) -> String {
    format!("members-{conversation_id}")
}

/// One member in a member list: `member-{conversation_id}-{user_id}`.
pub fn member(conversation_id: i64, user_id: i64) -> String {
    format!("member-{conversation_id}-{user_id}")
}

/// The composer (or the read-only notice in its place): `composer-{conversation_id}`.
pub fn composer(conversation_id: i64) -> String {
    format!("composer-{conversation_id}")
}

/// A friend in the friend list: `friend-{user_id}`.
pub fn friend(user_id: i64) -> String {
    format!("friend-{user_id}")
}

/// A friend to tick in the new-group form: `pick-{user_id}`.
pub fn pick(user_id: i64) -> String {
    format!("pick-{user_id}")
}

/// A pending friend request: `request-{id}`.
pub fn request(id: i64) -> String {
    format!("request-{id}")
}

/// A user's presence dots (there may be several on a page; they share `data-presence`):
/// `presence-{user_id}`.
pub fn presence(user_id: i64) -> String {
    format!("presence-{user_id}")
}

/// A group's title, wherever it is shown (several per page; they share `data-title-of`):
/// `group-{id}`.
pub fn group(conversation_id: i64) -> String {
    format!("group-{conversation_id}")
}

/// A user's name, wherever it is shown (several per page; they share `data-name-of`): `user-{id}`.
pub fn user(user_id: i64) -> String {
    format!("user-{user_id}")
}

/// A device with Web Push on, in the settings page's list: `push-device-{id}`.
pub fn push_device(id: i64) -> String {
    format!("push-device-{id}")
}

/// A user row on the admin pages: `admin-user-{id}`.
pub fn admin_user(user_id: i64) -> String {
    format!("admin-user-{user_id}")
}

/// An entry of the admin log: `audit-{id}`.
pub fn audit(id: i64) -> String {
    format!("audit-{id}")
}

/// An invite link in a list: `invite-{id}`.
pub fn invite(id: i64) -> String {
    format!("invite-{id}")
}

/// An invite's own page, with its link and QR code: `invite-qr-{id}`.
pub fn invite_qr(id: i64) -> String {
    format!("invite-qr-{id}")
}

/// The admin user list of a search or a later page, which live additions must not reach.
pub fn admin_users_page(page: i64, searched: bool) -> String {
    if searched {
        format!("admin-users-search-{page}")
    } else {
        format!("admin-users-page-{page}")
    }
}

/// Containers on pages that records are added to.
pub mod containers {
    /// The conversation list (index and sidebar).
    pub const CONVERSATIONS: &str = "conversation-list";
    /// Friend list on /friends.
    pub const FRIENDS: &str = "friend-list";
    /// Friends to pick in the new-group form.
    pub const PICK_FRIENDS: &str = "group-friends";
    /// Requests for me.
    pub const INCOMING: &str = "incoming-requests";
    /// Requests I sent.
    pub const OUTGOING: &str = "outgoing-requests";
    /// The logged-in user's chip in the header.
    pub const CURRENT_USER: &str = "current-user";
    /// The header badge of requests waiting for me.
    pub const REQUESTS_BADGE: &str = "badge-requests";
    /// My notification settings (muted, mentions-only conversations), on every page.
    pub const NOTIFY_PREFS: &str = "notify-prefs";
    /// My devices with Web Push on (settings page).
    pub const PUSH_DEVICES: &str = "push-devices";
    /// The settings page's Web Push section (carries the VAPID public key for live.js).
    pub const PUSH_SETTINGS: &str = "push-settings";
    /// The search box in the header of every logged-in page.
    pub const SEARCH_BOX: &str = "search-q";
    /// The results on the search page.
    pub const SEARCH_RESULTS: &str = "search-results";
    /// The admin user list's unfiltered first page (new accounts are added to it live).
    pub const ADMIN_USERS: &str = "admin-users";
    /// The number of accounts on the unfiltered users pages.
    pub const ADMIN_USER_COUNT: &str = "admin-user-count";
    /// The admin log, newest first.
    pub const AUDIT: &str = "admin-audit";
    /// My invite links (`/invites`).
    pub const MY_INVITES: &str = "my-invites";
    /// Every invite link (`/admin`).
    pub const ALL_INVITES: &str = "all-invites";
    /// The header's link to the admin pages (empty unless I am an admin).
    pub const ADMIN_LINK: &str = "admin-link";
    /// The body of an admin page (a user who stops being admin reloads it, into a 404).
    pub const ADMIN_PAGE: &str = "admin-page";
    /// The whole page (a `reload` aimed here reloads any page).
    pub const PAGE: &str = "main";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_contract() {
        assert_eq!(message(42), "message-42");
        assert_eq!(messages(7), "messages-7");
        assert_eq!(conversation_row(3), "conversation-3");
        assert_eq!(member(3, 9), "member-3-9");
        assert_eq!(friend(9), "friend-9");
        assert_eq!(request(5), "request-5");
        assert_eq!(presence(9), "presence-9");
        assert_ne!(messages_page(7, 100), messages(7));
        assert_ne!(messages_at(7, 100), messages(7));
        assert_ne!(messages_after(7, 100), messages(7));
    }
}

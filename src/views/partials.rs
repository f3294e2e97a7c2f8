//! Partials: one template per broadcastable record, rendered the same in pages, paging, live
//! frames and replay, with its DOM id from [`super::dom`]. They are viewer-independent (rendered
//! once, fanned out); what differs per viewer is derived by live.js (`decorate`) from `data-*`
//! attributes and `<body data-me>`. A page, which knows its viewer, pre-sets the same `hidden`
//! attributes so that it reads right without JavaScript.

use askama::Template;

use super::markup::{self, Mention};
use super::{Stamp, dom, hue, initials};
use crate::db::users::UserRef;
use crate::events::{MessageData, PrevMessage, Quote};

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

    /// `presence-{id}`: this person's dot in a list row or the friend list.
    pub fn presence_dom_id(&self) -> String {
        dom::presence(self.id)
    }

    /// The id of the `rename` payload.
    pub fn dom_id_name(&self) -> String {
        dom::user(self.id)
    }

    /// The id of this person in the friend list.
    pub fn dom_id_friend(&self) -> String {
        dom::friend(self.id)
    }

    /// The id of this person in the new-group form.
    pub fn dom_id_pick(&self) -> String {
        dom::pick(self.id)
    }
}

/// `users/_name.html`: the payload of a rename.
#[derive(Template)]
#[template(path = "users/_name.html")]
pub struct NamePartial {
    /// Who, with the new name.
    pub user: UserView,
}

/// A counter in the header (`badge-unread`, `badge-requests`).
#[derive(Debug, Clone)]
pub struct BadgeView {
    /// DOM id.
    pub id: &'static str,
    /// The number.
    pub count: i64,
}

/// `users/_badge.html`.
#[derive(Template)]
#[template(path = "users/_badge.html")]
pub struct BadgePartial {
    /// The badge.
    pub badge: BadgeView,
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
    /// Not shown: the reader wrote that message (their marker says nothing), or, on a page, the
    /// reader is the viewer.
    pub hidden: bool,
}

impl ReaderView {
    /// `reader-{conversation_id}-{user_id}`.
    pub fn dom_id(&self) -> String {
        dom::reader(self.conversation_id, self.user.id)
    }
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
    /// The text as HTML: our Markdown subset, links and mentions, escaped (markup::render).
    pub body_html: String,
    /// One to three emoji only: shown large.
    pub jumbo: bool,
    /// Edited since posted.
    pub edited: bool,
    /// The message it answers.
    pub quote: Option<QuoteView>,
    /// Reactions.
    pub reactions: Vec<ReactionView>,
    /// Ids of the members it names, space-separated (`data-mentions`).
    pub mention_ids: String,
    /// A note about the group: shown as a small line, without controls.
    pub note: bool,
    /// The plain text (what a note says).
    pub text: String,
    /// Page only: the viewer may not edit it / may not delete it (their controls are hidden;
    /// live.js decides the same from `data-author` and the group's owner).
    pub hide_edit: bool,
    /// See `hide_edit`.
    pub hide_delete: bool,
    /// When.
    pub at: Stamp,
    /// Same author as the message before, within minutes: shown as one group.
    pub continued: bool,
    /// The first message of its day: a day separator goes above it.
    pub new_day: bool,
    /// Readers whose newest read message this is (pages only; live, they move in one by one).
    pub readers: Vec<ReaderView>,
    /// Page only: the message a link opened the page at (`/conversations/{id}/messages/{id}`).
    pub highlight: bool,
    /// Its files.
    pub attachments: Vec<AttachmentView>,
}

/// A file of a message: a thumbnail that opens the image, or name, size and a download link.
/// Its URLs are the same for every viewer (the server checks membership when they are fetched).
#[derive(Debug, Clone)]
pub struct AttachmentView {
    /// Id.
    pub id: i64,
    /// Conversation.
    pub conversation_id: i64,
    /// The file name as uploaded.
    pub name: String,
    /// "2.4 MB".
    pub size_label: String,
    /// The thumbnail's width and height, when there is one.
    pub thumb: Option<(i64, i64)>,
}

impl AttachmentView {
    /// From event data.
    pub fn new(conversation_id: i64, a: &crate::events::AttachmentData) -> AttachmentView {
        AttachmentView {
            id: a.id,
            conversation_id,
            name: a.name.clone(),
            size_label: size_label(a.size),
            thumb: a.thumb.filter(|_| a.image),
        }
    }

    /// The element's id.
    pub fn dom_id(&self) -> String {
        super::dom::attachment(self.id)
    }

    /// The file.
    pub fn url(&self) -> String {
        format!(
            "/conversations/{}/attachments/{}",
            self.conversation_id, self.id
        )
    }

    /// Its thumbnail.
    pub fn thumb_url(&self) -> String {
        format!("{}/thumbnail", self.url())
    }
}

/// What an excerpt of a message of files only (no text) says instead.
fn or_attachment(excerpt: String) -> String {
    if excerpt.is_empty() {
        "📎 Attachment".to_owned()
    } else {
        excerpt
    }
}

/// A size for people: bytes, KB, MB (powers of 1000, one decimal below 10).
pub fn size_label(bytes: i64) -> String {
    let b = bytes.max(0) as f64;
    let (v, unit) = if b < 1000.0 {
        return format!("{bytes} B");
    } else if b < 1e6 {
        (b / 1e3, "KB")
    } else if b < 1e9 {
        (b / 1e6, "MB")
    } else {
        (b / 1e9, "GB")
    };
    if v < 10.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.0} {unit}")
    }
}

/// Messages closer than this to the one before, by the same author, are grouped.
const GROUP_GAP_MS: i64 = 5 * 60 * 1000;

/// How a message joins the one before it: `(continued, new_day)`. The one place that decides
/// grouping and day separators, for pages and live frames alike.
pub fn grouping(
    prev: Option<PrevMessage>,
    author_id: i64,
    created_at: i64,
    note: bool,
) -> (bool, bool) {
    match prev {
        None => (false, true),
        Some(p) => {
            let new_day = Stamp::new(p.created_at).day != Stamp::new(created_at).day;
            let continued = !new_day
                && !note
                && !p.note
                && p.author_id == author_id
                && created_at - p.created_at < GROUP_GAP_MS;
            (continued, new_day)
        }
    }
}

impl MessageView {
    /// From event data.
    pub fn new(m: &MessageData) -> MessageView {
        let (continued, new_day) = grouping(m.prev, m.author.id, m.created_at, m.note);
        let mentions: Vec<Mention> = m
            .mentions
            .iter()
            .map(|x| Mention {
                id: x.id,
                username: x.username.clone(),
            })
            .collect();
        MessageView {
            id: m.id,
            conversation_id: m.conversation_id,
            author: UserView::new(&m.author, false),
            body_html: markup::render(&m.body, &mentions),
            jumbo: markup::is_jumbo(&m.body),
            edited: m.edited,
            quote: m
                .reply
                .as_ref()
                .map(|q| QuoteView::new(m.conversation_id, m.id, q)),
            reactions: m
                .reactions
                .iter()
                .map(|r| ReactionView {
                    emoji: r.emoji.clone(),
                    count: r.users.len(),
                    users: r.users.iter().map(|u| UserView::new(u, false)).collect(),
                    user_ids: r
                        .users
                        .iter()
                        .map(|u| u.id.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                })
                .collect(),
            mention_ids: m
                .mentions
                .iter()
                .map(|x| x.id.to_string())
                .collect::<Vec<_>>()
                .join(" "),
            note: m.note,
            text: m.body.clone(),
            hide_edit: false,
            hide_delete: false,
            at: Stamp::new(m.created_at),
            continued,
            new_day,
            readers: Vec::new(),
            highlight: false,
            attachments: m
                .attachments
                .iter()
                .map(|a| AttachmentView::new(m.conversation_id, a))
                .collect(),
        }
    }

    /// Its permanent link.
    pub fn href(&self) -> String {
        permalink(self.conversation_id, self.id)
    }

    /// What a note says after its author's name ("added @cat").
    pub fn note_text(&self) -> &str {
        &self.text
    }

    /// The quick reactions offered on every message.
    pub fn quick_reactions(&self) -> &'static [&'static str] {
        &["👍", "❤️", "😂", "🎉", "😮", "😢"]
    }

    /// `message-{id}`.
    pub fn dom_id(&self) -> String {
        dom::message(self.id)
    }

    /// Its receipts container.
    pub fn receipts_dom_id(&self) -> String {
        dom::receipts(self.id)
    }

    /// Its conversation's row in the list (live.js counts unread there).
    pub fn row_dom_id(&self) -> String {
        dom::conversation_row(self.conversation_id)
    }
}

/// What a reply shows of the message it answers (id `quote-{reply_id}`).
#[derive(Debug, Clone)]
pub struct QuoteView {
    /// The conversation.
    pub conversation_id: i64,
    /// The reply showing it.
    pub reply_id: i64,
    /// The original.
    pub id: i64,
    /// Its author (None: deleted).
    pub author: Option<UserView>,
    /// The start of its text, on one line.
    pub excerpt: String,
}

impl QuoteView {
    /// From event data.
    pub fn new(conversation_id: i64, reply_id: i64, q: &Quote) -> QuoteView {
        let (author, excerpt) = match &q.original {
            Some((a, text)) => (
                Some(UserView::new(a, false)),
                or_attachment(one_line(&markup::plain(text), 100)),
            ),
            None => (None, String::new()),
        };
        QuoteView {
            conversation_id,
            reply_id,
            id: q.id,
            author,
            excerpt,
        }
    }

    /// `quote-{reply_id}`.
    pub fn dom_id(&self) -> String {
        dom::quote(self.reply_id)
    }

    /// Where the original is: its permanent link (live.js scrolls there instead when it is on
    /// the page).
    pub fn href(&self) -> String {
        permalink(self.conversation_id, self.id)
    }
}

/// `messages/_quote.html`.
#[derive(Template)]
#[template(path = "messages/_quote.html")]
pub struct QuotePartial {
    /// The quote.
    pub quote: QuoteView,
}

/// One emoji on a message.
#[derive(Debug, Clone)]
pub struct ReactionView {
    /// The emoji.
    pub emoji: String,
    /// How many.
    pub count: usize,
    /// Who.
    pub users: Vec<UserView>,
    /// Their ids, space-separated (live.js marks mine).
    pub user_ids: String,
}

/// The permanent link of a message: the conversation opened at it, scrolled to it.
pub fn permalink(conversation_id: i64, id: i64) -> String {
    format!(
        "/conversations/{conversation_id}/messages/{id}#{}",
        dom::message(id)
    )
}

/// Text on one line, cut to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let one = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let short: String = one.chars().take(max).collect();
    if one.chars().count() > max {
        format!("{short}…")
    } else {
        short
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
    /// Who wrote the latest message (None: no message yet).
    pub author: Option<UserView>,
    /// Its text on one line, shortened.
    pub text: String,
    /// The latest message is a note about the group ("ann added @cat", no colon).
    pub note: bool,
    /// Last activity (ms): the row's place in the list.
    pub activity: i64,
}

impl PreviewView {
    /// The preview of a conversation whose latest message is `last` (author, text, is a note).
    pub fn of(conversation_id: i64, last: Option<(&UserRef, &str, bool)>, at_ms: i64) -> Self {
        let note = last.is_some_and(|(_, _, n)| n);
        let last = last.map(|(a, b, _)| (a, b));
        let (author, text) = match last {
            Some((a, b)) => (
                Some(UserView::new(a, false)),
                one_line(&markup::plain(b), 80),
            ),
            None => (None, String::new()),
        };
        let text = if author.is_some() {
            or_attachment(text)
        } else {
            text
        };
        PreviewView {
            conversation_id,
            author,
            text,
            note,
            activity: at_ms,
        }
    }

    /// `preview-{conversation_id}`.
    pub fn dom_id(&self) -> String {
        dom::preview(self.conversation_id)
    }
}

/// `conversations/_preview.html`.
#[derive(Template)]
#[template(path = "conversations/_preview.html")]
pub struct PreviewPartial {
    /// The preview.
    pub preview: PreviewView,
}

/// A row's unread count, as its viewer sees it.
#[derive(Debug, Clone)]
pub struct UnreadView {
    /// Conversation.
    pub conversation_id: i64,
    /// Unread messages.
    pub count: i64,
    /// Of those, how many name me (the row's mention marker).
    pub mentions: i64,
}

impl UnreadView {
    /// `unread-{conversation_id}`.
    pub fn dom_id(&self) -> String {
        dom::unread(self.conversation_id)
    }
}

/// `conversations/_unread.html`.
#[derive(Template)]
#[template(path = "conversations/_unread.html")]
pub struct UnreadPartial {
    /// The count.
    pub unread: UnreadView,
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
    /// My unread count (0 in live frames: a row appears live only when there is nothing unread,
    /// and live.js counts up from there).
    pub unread: UnreadView,
    /// Page only: the row of the open conversation (live.js marks it the same way).
    pub current: bool,
}

impl ConversationRowView {
    /// `conversation-{id}`.
    pub fn dom_id(&self) -> String {
        dom::conversation_row(self.id)
    }

    /// Its place in the list: newest activity first, then newest conversation.
    pub fn key(&self) -> String {
        format!("{} {}", self.preview.activity, self.id)
    }
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
    /// Page: whether the viewer owns the group. Frame: None. Owner controls always carry
    /// `data-owner-only`, and live.js shows them to the owner only; a page pre-hides them.
    pub viewer_is_owner: Option<bool>,
}

impl MembersView {
    /// Whether a page hides the owner-only controls from its viewer.
    pub fn hide_owner_controls(&self) -> bool {
        self.viewer_is_owner == Some(false)
    }

    /// `members-{conversation_id}`.
    pub fn dom_id(&self) -> String {
        dom::members(self.conversation_id)
    }

    /// `member-{conversation_id}-{user_id}`.
    pub fn member_dom_id(&self, user_id: &i64) -> String {
        dom::member(self.conversation_id, *user_id)
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
    /// The message being answered: its id and "Name: start of text".
    pub reply: Option<(i64, String)>,
}

impl ComposerView {
    /// An empty composer.
    pub fn new(conversation_id: i64, open: bool) -> ComposerView {
        ComposerView {
            reply: None,
            conversation_id,
            open,
            client_id: new_client_id(),
            draft: String::new(),
            error: None,
        }
    }

    /// `composer-{conversation_id}`.
    pub fn dom_id(&self) -> String {
        dom::composer(self.conversation_id)
    }

    /// Its file picker's id.
    pub fn file_input_id(&self) -> String {
        dom::file_input(self.conversation_id)
    }
}

/// An idempotency key: the time in milliseconds (12 hex digits), then 10 random characters.
/// Keys made later sort later, so new messages enter the index on their keys at its right edge,
/// a page or two per commit, rather than a page per author (migrations/sqlite/0014). The
/// composer's script makes the same kind (`newClientId` in static/live.js).
pub fn new_client_id() -> String {
    use rand::Rng;
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut id = format!("{ms:012x}");
    id.extend(
        rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(10)
            .map(char::from),
    );
    id
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

impl GonePartial {
    /// It takes the place of `conversation-view-{id}`.
    pub fn dom_id(&self) -> String {
        dom::conversation_view(self.conversation_id)
    }
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

impl RequestView {
    /// `request-{id}`.
    pub fn dom_id(&self) -> String {
        dom::request(self.id)
    }
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

/// A friend to tick in the new-group form.
#[derive(Debug, Clone)]
pub struct PickView {
    /// The friend.
    pub friend: UserView,
    /// Ticked (a form shown again after an error).
    pub checked: bool,
}

/// `friends/_pick.html` (id `pick-{user_id}`).
#[derive(Template)]
#[template(path = "friends/_pick.html")]
pub struct PickPartial {
    /// The friend to pick.
    pub pick: PickView,
}

/// A group's title wherever it shows, and the payload of its `rename` frame (id `group-{id}`).
#[derive(Debug, Clone)]
pub struct GroupTitleView {
    /// Conversation.
    pub conversation_id: i64,
    /// The title.
    pub title: String,
    /// Its avatar initials.
    pub initials: String,
}

impl GroupTitleView {
    /// `group-{id}`.
    pub fn dom_id(&self) -> String {
        dom::group(self.conversation_id)
    }
}

/// `conversations/_title.html`.
#[derive(Template)]
#[template(path = "conversations/_title.html")]
pub struct GroupTitlePartial {
    /// The title.
    pub group: GroupTitleView,
}

/// `users/_typing.html`: who is typing (the payload of a `typing` frame).
#[derive(Template)]
#[template(path = "users/_typing.html")]
pub struct TypingPartial {
    /// Who.
    pub user: UserView,
}

/// A user's notification settings per conversation (id `notify-prefs`): which conversations are
/// muted, and which notify only of mentions. Per user, in every page's layout.
#[derive(Debug, Clone, Default)]
pub struct NotifyPrefsView {
    /// Muted conversation ids, space-separated.
    pub muted: String,
    /// Mentions-only conversation ids, space-separated.
    pub mentions: String,
}

impl NotifyPrefsView {
    /// From (conversation, level) pairs.
    pub fn new(prefs: &[(i64, String)]) -> NotifyPrefsView {
        let ids = |level: &str| {
            prefs
                .iter()
                .filter(|(_, l)| l == level)
                .map(|(c, _)| c.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        NotifyPrefsView {
            muted: ids("mute"),
            mentions: ids("mentions"),
        }
    }
}

/// `users/_prefs.html`.
#[derive(Template)]
#[template(path = "users/_prefs.html")]
pub struct NotifyPrefsPartial {
    /// The settings.
    pub prefs: NotifyPrefsView,
}

#[cfg(test)]
mod attachment_tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_file_manager() {
        assert_eq!(size_label(6), "6 B");
        assert_eq!(size_label(3_000), "3.0 KB");
        assert_eq!(size_label(250_000), "250 KB");
        assert_eq!(size_label(26_214_400), "26 MB");
        assert_eq!(or_attachment(String::new()), "📎 Attachment");
        assert_eq!(or_attachment("hi".into()), "hi");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_made_later_sort_later_and_are_accepted_as_client_ids() {
        let a = new_client_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_client_id();
        assert!(a < b, "{a} then {b}");
        assert_ne!(a[12..], b[12..], "a random part");
        for id in [&a, &b] {
            assert_eq!(id.len(), 22);
            let parsed = crate::domain::ClientId::parse_opt("client_id", Some(id));
            assert!(matches!(parsed, Ok(Some(_))), "{id}");
        }
    }
}

//! Frames of conversations: rows in the list, member lists, the composer, and the view itself.

use super::{Online, remove, unread_drops};
use crate::db::users::UserRef;
use crate::events::ConversationData;
use crate::live::frame::{self, Action, Audience, Frame, audience};
use crate::views::dom::containers;
use crate::views::{
    ComposerPartial, ComposerView, ConversationRowPartial, ConversationRowView, GonePartial,
    GroupTitlePartial, GroupTitleView, MembersPartial, MembersView, PreviewView, UnreadView,
    UserView, dom, hue, initials, render_fragment,
};

/// A list row for `c` as `viewer` sees it (a direct conversation shows the other person; a group
/// row is the same for everyone, `viewer` 0). Nothing is unread in a row that appears live.
pub fn row_view(c: &ConversationData, viewer: i64, online: Online<'_>) -> ConversationRowView {
    let other = c
        .is_direct()
        .then(|| c.members.iter().find(|m| m.id != viewer))
        .flatten();
    let (title, initials_of, hue_of) = match (&c.title, other) {
        (Some(t), _) => (t.clone(), initials(t), hue(c.id)),
        (None, Some(o)) => (o.name().to_owned(), initials(o.name()), hue(o.id)),
        (None, None) => ("(just you)".to_owned(), "?".to_owned(), 0),
    };
    let preview = PreviewView::of(
        c.id,
        c.last_message
            .as_ref()
            .map(|m| (&m.author, m.body.as_str(), m.note)),
        c.last_activity_at,
    );
    ConversationRowView {
        id: c.id,
        title,
        other: other.map(|o| UserView::new(o, online(o.id))),
        initials: initials_of,
        hue: hue_of,
        preview,
        unread: UnreadView {
            conversation_id: c.id,
            count: 0,
            mentions: 0,
        },
        current: false,
    }
}

/// Rows of `c` for `to`: one render per side of a direct conversation, one for a whole group.
fn rows(c: &ConversationData, to: &[UserRef], online: Online<'_>) -> Vec<Frame> {
    let row = |viewer: i64, to: Audience| {
        Frame::new(
            Action::Prepend,
            containers::CONVERSATIONS.to_owned(),
            to,
            &render_fragment(&ConversationRowPartial {
                row: row_view(c, viewer, online),
            }),
        )
    };
    if to.is_empty() {
        Vec::new()
    } else if c.is_direct() {
        to.iter().map(|u| row(u.id, audience([u.id]))).collect()
    } else {
        vec![row(0, audience(to.iter().map(|u| u.id)))]
    }
}

/// A new conversation's row appears in its members' lists.
pub fn created(c: &ConversationData, online: Online<'_>) -> Vec<Frame> {
    rows(c, &c.members, online)
}

fn composer(conversation_id: i64, open: bool, to: Audience) -> Frame {
    Frame::new(
        Action::Replace,
        dom::composer(conversation_id),
        to,
        &render_fragment(&ComposerPartial {
            composer: ComposerView::new(conversation_id, open),
        }),
    )
}

/// Friends again: the direct conversation takes messages again.
pub fn reopened(conversation_id: i64, all: Audience) -> Vec<Frame> {
    vec![composer(conversation_id, true, all)]
}

fn gone(conversation_id: i64, message: &str, to: Audience) -> Frame {
    Frame::new(
        Action::Replace,
        dom::conversation_view(conversation_id),
        to,
        &render_fragment(&GonePartial {
            conversation_id,
            message: message.to_owned(),
        }),
    )
}

/// A deleted group leaves every member's list and open view.
pub fn deleted(conversation_id: i64, unread_lost: &[(i64, i64)], all: Audience) -> Vec<Frame> {
    let mut frames = vec![
        remove(dom::conversation_row(conversation_id), all.clone()),
        gone(conversation_id, "This group was deleted.", all),
    ];
    frames.extend(unread_drops(unread_lost));
    frames
}

/// The member list changes for those in the group; those added get its row (and an open page
/// that showed them out of it reloads); those gone lose it, and their receipts leave the rest's
/// pages.
pub fn members_changed(
    c: &ConversationData,
    added: &[UserRef],
    removed: &[UserRef],
    left: bool,
    unread_lost: &[(i64, i64)],
    online: Online<'_>,
) -> Vec<Frame> {
    let members = audience(c.members.iter().map(|u| u.id));
    let list = MembersView {
        conversation_id: c.id,
        owner_id: c.owner_id.unwrap_or(0),
        members: c
            .members
            .iter()
            .map(|m| UserView::new(m, online(m.id)))
            .collect(),
        viewer_is_owner: None,
    };
    let mut frames = vec![Frame::new(
        Action::Replace,
        dom::members(c.id),
        members.clone(),
        &render_fragment(&MembersPartial { members: list }),
    )];
    frames.extend(rows(c, added, online));
    if !added.is_empty() {
        frames.push(frame::reload(
            dom::conversation_view(c.id),
            audience(added.iter().map(|u| u.id)),
        ));
    }
    if !removed.is_empty() {
        let out = audience(removed.iter().map(|u| u.id));
        frames.push(remove(dom::conversation_row(c.id), out.clone()));
        let message = if left {
            "You left this group."
        } else {
            "You were removed from this group."
        };
        frames.push(gone(c.id, message, out));
        for r in removed {
            frames.push(remove(dom::reader(c.id, r.id), members.clone()));
        }
        frames.extend(unread_drops(unread_lost));
    }
    frames
}

/// A new group title reaches every place that shows it.
pub fn renamed(conversation_id: i64, title: &str, all: Audience) -> Vec<Frame> {
    vec![Frame::new(
        Action::Rename,
        dom::group(conversation_id),
        all,
        &render_fragment(&GroupTitlePartial {
            group: GroupTitleView {
                conversation_id,
                title: title.to_owned(),
                initials: initials(title),
            },
        }),
    )]
}

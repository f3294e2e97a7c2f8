//! Frames of messages and read markers.

use super::badge;
use crate::db::users::UserRef;
use crate::events::MessageData;
use crate::live::frame::{Action, Audience, Frame, audience};
use crate::views::{
    MessagePartial, MessageView, PreviewPartial, PreviewView, ReaderPartial, ReaderView,
    UnreadPartial, UnreadView, UserView, dom, render_fragment,
};

fn reader(
    conversation_id: i64,
    user: &UserRef,
    message_id: i64,
    hidden: bool,
    to: Audience,
) -> Frame {
    Frame::new(
        Action::Append,
        dom::receipts(message_id),
        to,
        &render_fragment(&ReaderPartial {
            reader: ReaderView {
                conversation_id,
                user: UserView::new(user, false),
                hidden,
            },
        }),
    )
}

fn unread_count(conversation_id: i64, count: i64, to: Audience) -> Frame {
    Frame::new(
        Action::Replace,
        dom::unread(conversation_id),
        to,
        &render_fragment(&UnreadPartial {
            unread: UnreadView {
                conversation_id,
                count,
            },
        }),
    )
}

/// A new message joins the open lists, the rows' previews, and moves its author's read marker
/// (so the author's own counts of that conversation drop to nothing).
pub fn added(m: &MessageData, author_total_unread: i64, all: Audience) -> Vec<Frame> {
    let cid = m.conversation_id;
    let preview = PreviewView::of(cid, Some((&m.author, m.body.as_str())), m.created_at);
    vec![
        Frame::new(
            Action::Append,
            dom::messages(cid),
            all.clone(),
            &render_fragment(&MessagePartial {
                message: MessageView::new(m),
            }),
        ),
        Frame::new(
            Action::Replace,
            dom::preview(cid),
            all.clone(),
            &render_fragment(&PreviewPartial { preview }),
        ),
        // The author has read what they wrote; their marker on their own message shows nothing.
        reader(cid, &m.author, m.id, true, all),
        unread_count(cid, 0, audience([m.author.id])),
        badge("badge-unread", author_total_unread, m.author.id),
    ]
}

/// A read marker moves for everyone; the reader's own unread counts follow.
pub fn read(
    conversation_id: i64,
    who: &UserRef,
    message_id: i64,
    unread: i64,
    total_unread: i64,
    all: Audience,
) -> Vec<Frame> {
    vec![
        reader(conversation_id, who, message_id, false, all),
        unread_count(conversation_id, unread, audience([who.id])),
        badge("badge-unread", total_unread, who.id),
    ]
}

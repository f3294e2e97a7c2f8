//! Frames of messages and read markers.

use super::badge;
use crate::db::users::UserRef;
use crate::events::{MessageData, Quote};
use crate::live::frame::{Action, Audience, Frame, audience};
use crate::views::{
    MessagePartial, MessageView, PreviewPartial, PreviewView, QuotePartial, QuoteView,
    ReaderPartial, ReaderView, TypingPartial, UnreadPartial, UnreadView, UserView, dom,
    render_fragment,
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

fn unread_count(conversation_id: i64, (count, mentions): (i64, i64), to: Audience) -> Frame {
    Frame::new(
        Action::Replace,
        dom::unread(conversation_id),
        to,
        &render_fragment(&UnreadPartial {
            unread: UnreadView {
                conversation_id,
                count,
                mentions,
            },
        }),
    )
}

fn message(m: &MessageData, action: Action, target: String, to: Audience) -> Frame {
    Frame::new(
        action,
        target,
        to,
        &render_fragment(&MessagePartial {
            message: MessageView::new(m),
        }),
    )
}

fn preview(conversation_id: i64, last: Option<&MessageData>, activity: i64, to: Audience) -> Frame {
    let preview = PreviewView::of(
        conversation_id,
        last.map(|m| (&m.author, m.body.as_str(), m.note)),
        activity,
    );
    Frame::new(
        Action::Replace,
        dom::preview(conversation_id),
        to,
        &render_fragment(&PreviewPartial { preview }),
    )
}

/// Quotes of `m` in the replies that show it.
fn quotes(
    m: Option<&MessageData>,
    conversation_id: i64,
    id: i64,
    replies: &[i64],
    to: &Audience,
) -> Vec<Frame> {
    let quote = Quote {
        id,
        original: m.map(|m| (m.author.clone(), m.body.clone())),
    };
    replies
        .iter()
        .map(|r| {
            Frame::new(
                Action::Replace,
                dom::quote(*r),
                to.clone(),
                &render_fragment(&QuotePartial {
                    quote: QuoteView::new(conversation_id, *r, &quote),
                }),
            )
        })
        .collect()
}

/// An edited message changes in place (its receipts stay), in the replies that quote it, and
/// in the list preview when it is the newest.
pub fn edited(
    m: &MessageData,
    replies: &[i64],
    is_last: bool,
    activity: i64,
    (mentioned, unmentioned): (&[i64], &[i64]),
    all: Audience,
) -> Vec<Frame> {
    let mut frames = vec![message(m, Action::Replace, dom::message(m.id), all.clone())];
    frames.extend(quotes(Some(m), m.conversation_id, m.id, replies, &all));
    if is_last {
        frames.push(preview(m.conversation_id, Some(m), activity, all));
    }
    frames.extend(mentions_moved(m.conversation_id, mentioned, 1));
    frames.extend(mentions_moved(m.conversation_id, unmentioned, -1));
    frames
}

/// The `@` count of the rows of `users` (who have the message unread) changes by `delta`.
fn mentions_moved(conversation_id: i64, users: &[i64], delta: i64) -> Option<Frame> {
    (!users.is_empty()).then(|| {
        Frame::mentions_delta(
            dom::unread(conversation_id),
            audience(users.iter().copied()),
            delta,
        )
    })
}

/// A deleted message leaves every page; the next one regroups, replies say "message deleted",
/// the preview falls back to the newest remaining message, and those who had it unread count one
/// less.
#[allow(clippy::too_many_arguments)]
pub fn deleted(
    conversation_id: i64,
    id: i64,
    next: Option<&MessageData>,
    replies: &[i64],
    new_last: Option<&Option<MessageData>>,
    activity: i64,
    (unread_for, unread_muted, unread_mentioned): (&[i64], &[i64], &[i64]),
    all: Audience,
) -> Vec<Frame> {
    let mut frames = vec![Frame::new(
        Action::Remove,
        dom::message(id),
        all.clone(),
        "",
    )];
    if let Some(n) = next {
        frames.push(message(n, Action::Replace, dom::message(n.id), all.clone()));
    }
    frames.extend(quotes(None, conversation_id, id, replies, &all));
    if let Some(last) = new_last {
        frames.push(preview(conversation_id, last.as_ref(), activity, all));
    }
    if !unread_for.is_empty() {
        frames.push(Frame::with_delta(
            Action::Replace,
            dom::unread(conversation_id),
            audience(unread_for.iter().copied()),
            "",
            Some(-1),
        ));
    }
    frames.extend(mentions_moved(conversation_id, unread_mentioned, -1));
    // A muted conversation's row counts, the header badge does not.
    let badged: Vec<i64> = unread_for
        .iter()
        .copied()
        .filter(|u| !unread_muted.contains(u))
        .collect();
    if !badged.is_empty() {
        frames.push(Frame::with_delta(
            Action::Replace,
            "badge-unread".into(),
            audience(badged),
            "",
            Some(-1),
        ));
    }
    frames
}

/// New reactions show on the message (its receipts stay).
pub fn reactions_changed(m: &MessageData, all: Audience) -> Vec<Frame> {
    vec![message(m, Action::Replace, dom::message(m.id), all)]
}

/// A new message joins the open lists, the rows' previews, and moves its author's read marker
/// (so the author's own counts of that conversation drop to nothing).
pub fn added(
    m: &MessageData,
    author_total_unread: i64,
    author_gone: bool,
    all: Audience,
) -> Vec<Frame> {
    let cid = m.conversation_id;
    let preview = PreviewView::of(
        cid,
        Some((&m.author, m.body.as_str(), m.note)),
        m.created_at,
    );
    let mut frames = vec![
        message(m, Action::Append, dom::messages(cid), all.clone()),
        Frame::new(
            Action::Replace,
            dom::preview(cid),
            all.clone(),
            &render_fragment(&PreviewPartial { preview }),
        ),
    ];
    if !author_gone {
        // The author has read what they wrote; their marker on their own message shows nothing.
        frames.extend([
            reader(cid, &m.author, m.id, true, all),
            unread_count(cid, (0, 0), audience([m.author.id])),
            badge("badge-unread", author_total_unread, m.author.id),
        ]);
    }
    frames
}

/// A read marker moves for everyone; the reader's own unread counts follow.
pub fn read(
    conversation_id: i64,
    who: &UserRef,
    message_id: i64,
    unread: (i64, i64),
    total_unread: i64,
    all: Audience,
) -> Vec<Frame> {
    vec![
        reader(conversation_id, who, message_id, false, all),
        unread_count(conversation_id, unread, audience([who.id])),
        badge("badge-unread", total_unread, who.id),
    ]
}

/// "ann is typing…" for the others in the conversation (ephemeral, never logged).
pub fn typing(conversation_id: i64, who: &UserRef, to: Audience) -> Frame {
    Frame::new(
        Action::Typing,
        dom::typing(conversation_id),
        to,
        &render_fragment(&TypingPartial {
            user: UserView::new(who, false),
        }),
    )
}

//! Frames of friend requests and friendships.

use super::{Online, badge, remove};
use crate::db::users::UserRef;
use crate::live::frame::{Action, Frame, audience};
use crate::views::dom::containers;
use crate::views::{
    ComposerPartial, ComposerView, FriendPartial, PickPartial, PickView, RequestPartial,
    RequestView, Stamp, UserView, dom, render_fragment,
};

fn request(id: i64, incoming: bool, other: &UserRef, at: i64, to: i64) -> Frame {
    let request = RequestView {
        id,
        incoming,
        other: UserView::new(other, false),
        at: Stamp::new(at),
    };
    let target = if incoming {
        containers::INCOMING
    } else {
        containers::OUTGOING
    };
    Frame::new(
        Action::Prepend,
        target.to_owned(),
        audience([to]),
        &render_fragment(&RequestPartial { request }),
    )
}

/// Incoming for the recipient, outgoing for the requester; the recipient's badge counts it.
pub fn request_created(
    id: i64,
    requester: &UserRef,
    recipient: &UserRef,
    at: i64,
    recipient_pending: i64,
) -> Vec<Frame> {
    vec![
        request(id, true, requester, at, recipient.id),
        request(id, false, recipient, at, requester.id),
        badge(containers::REQUESTS_BADGE, recipient_pending, recipient.id),
    ]
}

/// An answered or withdrawn request leaves both lists.
pub fn request_updated(
    id: i64,
    requester: &UserRef,
    recipient: &UserRef,
    recipient_pending: i64,
) -> Vec<Frame> {
    vec![
        remove(dom::request(id), audience([requester.id, recipient.id])),
        badge(containers::REQUESTS_BADGE, recipient_pending, recipient.id),
    ]
}

fn friend_of(friend: &UserRef, to: i64, online: Online<'_>) -> [Frame; 2] {
    let view = UserView::new(friend, online(friend.id));
    [
        Frame::new(
            Action::Append,
            containers::FRIENDS.to_owned(),
            audience([to]),
            &render_fragment(&FriendPartial {
                friend: view.clone(),
            }),
        ),
        Frame::new(
            Action::Append,
            containers::PICK_FRIENDS.to_owned(),
            audience([to]),
            &render_fragment(&PickPartial {
                pick: PickView {
                    friend: view,
                    checked: false,
                },
            }),
        ),
    ]
}

/// Each new friend appears in the other's friend list and new-group form.
pub fn friend_added(a: &UserRef, b: &UserRef, online: Online<'_>) -> Vec<Frame> {
    let mut frames = Vec::with_capacity(4);
    frames.extend(friend_of(b, a.id, online));
    frames.extend(friend_of(a, b.id, online));
    frames
}

/// Each leaves the other's lists; their direct conversation turns read-only.
pub fn friend_removed(a: &UserRef, b: &UserRef, conversation_id: Option<i64>) -> Vec<Frame> {
    let mut frames = vec![
        remove(dom::friend(b.id), audience([a.id])),
        remove(dom::pick(b.id), audience([a.id])),
        remove(dom::friend(a.id), audience([b.id])),
        remove(dom::pick(a.id), audience([b.id])),
    ];
    if let Some(cid) = conversation_id {
        frames.push(Frame::new(
            Action::Replace,
            dom::composer(cid),
            audience([a.id, b.id]),
            &render_fragment(&ComposerPartial {
                composer: ComposerView::new(cid, false),
            }),
        ));
    }
    frames
}

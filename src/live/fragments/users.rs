//! Frames of events about a user's profile.

use crate::db::users::UserRef;
use crate::live::frame::{Action, Audience, Frame};
use crate::views::{NamePartial, UserView, dom, render_fragment};

/// A new display name reaches every place that shows it, on the pages of everyone who may see it.
pub fn profile_updated(user: &UserRef, all: Audience) -> Vec<Frame> {
    vec![Frame::new(
        Action::Rename,
        dom::user(user.id),
        all,
        &render_fragment(&NamePartial {
            user: UserView::new(user, false),
        }),
    )]
}

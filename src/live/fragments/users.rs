//! Frames of events about a user's profile.

use crate::db::users::UserRef;
use crate::live::frame::{Action, Audience, Frame, audience};
use crate::views::{
    NamePartial, NotifyPrefsPartial, NotifyPrefsView, UserView, dom, render_fragment,
};

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

/// New notification settings reach the user's own tabs (the rest of the world never sees them).
pub fn notify_changed(
    user_id: i64,
    prefs: &[(i64, String)],
    total_unread: Option<i64>,
) -> Vec<Frame> {
    let mut frames = vec![Frame::new(
        Action::Replace,
        dom::containers::NOTIFY_PREFS.to_owned(),
        audience([user_id]),
        &render_fragment(&NotifyPrefsPartial {
            prefs: NotifyPrefsView::new(prefs),
        }),
    )];
    // Muting takes the conversation out of the header badge; unmuting puts it back.
    frames.extend(total_unread.map(|n| super::badge("badge-unread", n, user_id)));
    frames
}

/// A user's devices with push on reach their own tabs (the settings page's list).
pub fn push_devices_changed(user_id: i64, devices: &[crate::events::PushDevice]) -> Vec<Frame> {
    vec![Frame::new(
        Action::Replace,
        dom::containers::PUSH_DEVICES.to_owned(),
        audience([user_id]),
        &render_fragment(&crate::views::PushDevicesPartial {
            push: crate::views::PushDevicesView::new(devices),
        }),
    )]
}

//! Frames of running an instance: the admin pages' user rows and log, invite lists, and the
//! header link to the admin pages.

use crate::events::{AdminUserData, AuditData, InviteData};
use crate::live::frame::{Action, Audience, Frame, audience, reload};
use crate::views::admin::{
    AdminLinkPartial, AdminUserPartial, AdminUserView, AuditPartial, AuditView, InvitePartial,
    InviteView,
};
use crate::views::{dom, render_fragment};

/// A user's row on the admin pages of `admins` (a new account joins the unfiltered first page);
/// the user's own header link follows their admin flag, and their open admin pages reload when
/// they lose it.
pub fn user_updated(user: &AdminUserData, created: bool, admins: Audience) -> Vec<Frame> {
    let row = render_fragment(&AdminUserPartial {
        row: AdminUserView::new(user),
    });
    let own = audience([user.user.id]);
    let mut frames = if created {
        vec![
            Frame::new(
                Action::Prepend,
                dom::containers::ADMIN_USERS.to_owned(),
                admins.clone(),
                &row,
            ),
            Frame::with_delta(
                Action::Replace,
                dom::containers::ADMIN_USER_COUNT.to_owned(),
                admins,
                "",
                Some(1),
            ),
        ]
    } else {
        vec![Frame::new(
            Action::Replace,
            dom::admin_user(user.user.id),
            admins,
            &row,
        )]
    };
    let admin = user.is_admin && user.deactivated_at.is_none();
    frames.push(Frame::new(
        Action::Replace,
        dom::containers::ADMIN_LINK.to_owned(),
        own.clone(),
        &render_fragment(&AdminLinkPartial { admin }),
    ));
    if !admin {
        frames.push(reload(dom::containers::ADMIN_PAGE.to_owned(), own));
    }
    frames
}

/// A new entry at the top of the admin log.
pub fn logged(entry: &AuditData, all: Audience) -> Vec<Frame> {
    vec![Frame::new(
        Action::Prepend,
        dom::containers::AUDIT.to_owned(),
        all,
        &render_fragment(&AuditPartial {
            entry: AuditView::new(entry),
        }),
    )]
}

/// An invite as its lists show it: a new one joins its creator's list and the admins' list.
pub fn invite_updated(invite: &InviteData, created: bool, all: Audience) -> Vec<Frame> {
    // Whether it has expired is decided when rendered, like a page load at that moment.
    let html = render_fragment(&InvitePartial {
        invite: InviteView::new(invite, crate::db::now_ms()),
    });
    if !created {
        // Its own page (link and QR code) is loaded again: used up or revoked, it says so.
        return vec![
            Frame::new(Action::Replace, dom::invite(invite.id), all.clone(), &html),
            reload(dom::invite_qr(invite.id), all),
        ];
    }
    vec![
        Frame::new(
            Action::Prepend,
            dom::containers::MY_INVITES.to_owned(),
            audience([invite.creator.id]),
            &html,
        ),
        Frame::new(
            Action::Prepend,
            dom::containers::ALL_INVITES.to_owned(),
            all,
            &html,
        ),
    ]
}

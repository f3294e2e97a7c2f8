//! Views of running an instance: the admin pages, invite links (with their QR codes), password
//! reset pages, and their partials (one per record: a user row, a log entry, an invite).

use askama::Template;

use super::{Layout, Stamp, UserView, dom};
use crate::domain::FieldErrors;
use crate::events::{AdminUserData, AuditData, InviteData};

/// A user row of the admin list.
#[derive(Debug, Clone)]
pub struct AdminUserView {
    /// Who.
    pub user: UserView,
    /// An administrator.
    pub is_admin: bool,
    /// Deactivated.
    pub deactivated: bool,
    /// When registered.
    pub joined: Stamp,
}

impl AdminUserView {
    /// From event data.
    pub fn new(d: &AdminUserData) -> AdminUserView {
        AdminUserView {
            user: UserView::new(&d.user, false),
            is_admin: d.is_admin,
            deactivated: d.deactivated_at.is_some(),
            joined: Stamp::new(d.created_at),
        }
    }

    /// `admin-user-{id}`.
    pub fn dom_id(&self) -> String {
        dom::admin_user(self.user.id)
    }
}

/// `admin/_user.html`.
#[derive(Template)]
#[template(path = "admin/_user.html")]
pub struct AdminUserPartial {
    /// The row.
    pub row: AdminUserView,
}

/// An entry of the admin log.
#[derive(Debug, Clone)]
pub struct AuditView {
    /// Id.
    pub id: i64,
    /// Who.
    pub actor: String,
    /// What, in words.
    pub what: String,
    /// To whom (a username, without @), possibly empty.
    pub target: String,
    /// More.
    pub detail: String,
    /// When.
    pub at: Stamp,
}

impl AuditView {
    /// From event data.
    pub fn new(d: &AuditData) -> AuditView {
        let what = match d.action.as_str() {
            "deactivate" => "deactivated",
            "reactivate" => "reactivated",
            "promote" => "made admin",
            "demote" => "removed admin from",
            "reset link" => "made a password reset link for",
            "registration" => "set registration to",
            "revoke invite" => "revoked an invite of",
            "create user" => "created the account",
            "create admin" => "created the admin account",
            other => other,
        };
        AuditView {
            id: d.id,
            actor: d.actor.clone(),
            what: what.to_owned(),
            target: d.target.clone(),
            detail: d.detail.clone(),
            at: Stamp::new(d.created_at),
        }
    }

    /// `audit-{id}`.
    pub fn dom_id(&self) -> String {
        dom::audit(self.id)
    }
}

/// `admin/_audit.html`.
#[derive(Template)]
#[template(path = "admin/_audit.html")]
pub struct AuditPartial {
    /// The entry.
    pub entry: AuditView,
}

/// An invite link as its lists show it.
#[derive(Debug, Clone)]
pub struct InviteView {
    /// Id.
    pub id: i64,
    /// Its path, `/invites/{token}` (pages add the public URL in front for people to copy).
    pub path: String,
    /// Who made it.
    pub creator: UserView,
    /// "1 of 1 used", "3 used (no limit)".
    pub uses: String,
    /// Who registers with it becomes the creator's friend.
    pub befriend: bool,
    /// Expires.
    pub expires: Stamp,
    /// `active`, `revoked`, `used up` or `expired` (at render time).
    pub status: &'static str,
}

impl InviteView {
    /// From event data; `now` decides whether it has expired.
    pub fn new(d: &InviteData, now: i64) -> InviteView {
        let used_up = d.max_uses.is_some_and(|m| d.uses >= m);
        let status = if d.revoked_at.is_some() {
            "revoked"
        } else if used_up {
            "used up"
        } else if d.expires_at <= now {
            "expired"
        } else {
            "active"
        };
        InviteView {
            id: d.id,
            path: format!("/invites/{}", d.token),
            creator: UserView::new(&d.creator, false),
            uses: match d.max_uses {
                Some(m) => format!("{} of {m} used", d.uses),
                None => format!("{} used, no limit", d.uses),
            },
            befriend: d.befriend,
            expires: Stamp::new(d.expires_at),
            status,
        }
    }

    /// `invite-qr-{id}` (its own page).
    pub fn qr_dom_id(&self) -> String {
        dom::invite_qr(self.id)
    }

    /// `invite-{id}`.
    pub fn dom_id(&self) -> String {
        dom::invite(self.id)
    }

    /// True while it can be used (and revoked).
    pub fn active(&self) -> bool {
        self.status == "active"
    }
}

/// `admin/_invite.html`.
#[derive(Template)]
#[template(path = "admin/_invite.html")]
pub struct InvitePartial {
    /// The invite.
    pub invite: InviteView,
}

/// `admin/_link.html`: the header's link to the admin pages (empty for everyone else).
#[derive(Template)]
#[template(path = "admin/_link.html")]
pub struct AdminLinkPartial {
    /// Show it.
    pub admin: bool,
}

/// `admin/users.html`: the user list.
#[derive(Template)]
#[template(path = "admin/users.html")]
pub struct AdminUsersPage {
    /// Layout.
    pub layout: Layout,
    /// The search as typed.
    pub q: String,
    /// Users on this page.
    pub rows: Vec<AdminUserView>,
    /// The list's DOM id: only the unfiltered first page takes live additions.
    pub list_id: String,
    /// Page number (1-based).
    pub page: i64,
    /// Link to the previous page, if any.
    pub prev: Option<String>,
    /// Link to the next page, if any.
    pub next: Option<String>,
    /// Users matching in all.
    pub total: i64,
    /// The newest log entries.
    pub audit: Vec<AuditView>,
    /// A refusal to show (the last admin, yourself).
    pub error: Option<String>,
}

/// `admin/reset.html`: the reset link just made, to pass on.
#[derive(Template)]
#[template(path = "admin/reset.html")]
pub struct AdminResetPage {
    /// Layout.
    pub layout: Layout,
    /// Whose.
    pub username: String,
    /// The link.
    pub url: String,
    /// Its QR code (our own SVG).
    pub qr: String,
}

/// `admin/settings.html`: registration mode and every invite.
#[derive(Template)]
#[template(path = "admin/settings.html")]
pub struct AdminSettingsPage {
    /// Layout.
    pub layout: Layout,
    /// `open`, `invite` or `closed`.
    pub mode: String,
    /// Every invite, newest first.
    pub invites: Vec<InviteView>,
    /// The invite form.
    pub form: InviteFormView,
}

/// The form that makes an invite link.
#[derive(Debug, Clone)]
pub struct InviteFormView {
    /// Where it posts back to after.
    pub back: &'static str,
    /// Errors.
    pub errors: FieldErrors,
    /// The public URL, shown in front of invite paths.
    pub base: String,
}

/// `invites/index.html`: my invite links.
#[derive(Template)]
#[template(path = "invites/index.html")]
pub struct InvitesPage {
    /// Layout.
    pub layout: Layout,
    /// May I make invites now.
    pub allowed: bool,
    /// My invites, newest first.
    pub invites: Vec<InviteView>,
    /// The invite form.
    pub form: InviteFormView,
}

/// `invites/qr.html`: one invite's full link and QR code.
#[derive(Template)]
#[template(path = "invites/qr.html")]
pub struct InviteQrPage {
    /// Layout.
    pub layout: Layout,
    /// The invite.
    pub invite: InviteView,
    /// Its full URL.
    pub url: String,
    /// Its QR code (our own SVG).
    pub qr: String,
}

/// `invites/gone.html`: a link that does not work (any more).
#[derive(Template)]
#[template(path = "invites/gone.html")]
pub struct InviteGonePage {
    /// Layout.
    pub layout: Layout,
    /// Why.
    pub message: String,
}

/// `sessions/reset.html`: set a new password through a reset link.
#[derive(Template)]
#[template(path = "sessions/reset.html")]
pub struct ResetPage {
    /// Layout.
    pub layout: Layout,
    /// Whose account.
    pub username: String,
    /// The link's token (the form posts back to it).
    pub token: String,
    /// Errors.
    pub errors: FieldErrors,
}

/// An SVG QR code of `text` (our own markup: inlined with `|safe`), or empty if it cannot be made.
pub fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => code
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(180, 180)
            .quiet_zone(true)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build()
            // Inlined in HTML: no XML declaration in front.
            .split_once("<svg")
            .map(|(_, rest)| format!("<svg{rest}"))
            .unwrap_or_default(),
        Err(e) => {
            tracing::warn!(error = %e, "QR code failed");
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_codes_are_svg() {
        let svg = qr_svg("https://chat.example.org/invites/abc");
        assert!(svg.contains("<svg"), "{svg}");
        assert!(!svg.contains("<script"));
    }
}

//! Running an instance: who may register, invite links, and what admins do to accounts
//! (deactivate, reactivate, promote, demote, password reset links). Every admin action writes an
//! audit entry in the same transaction.
//!
//! The web pages and `parley admin` share these use cases. The command line has no Hub and, on
//! SQLite, must not write the event log (a running server's writer numbers events itself): it
//! writes the change and a *pending* audit entry; a running server picks pending entries up
//! ([`apply_pending`]), records the live events and clears them. The web does both at once.

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::db::admin::{AdminUserRow, AuditRow, InviteRow, NewAudit, NewInvite};
use crate::db::users::UserRef;
use crate::db::{self, Tx};
use crate::domain::Password;
use crate::error::{AppError, AppResult};
use crate::events::{AdminUserData, AuditData, Event, InviteData};

use super::{Ctx, commit, record};

/// How long a password reset link works.
pub const RESET_TTL_MS: i64 = 24 * 3_600_000;

/// Who acts.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// An admin, on the web.
    Admin(&'a UserRef),
    /// `parley admin` on the server's machine.
    Cli,
}

impl Actor<'_> {
    fn id(&self) -> Option<i64> {
        match self {
            Actor::Admin(u) => Some(u.id),
            Actor::Cli => None,
        }
    }

    fn name(&self) -> &str {
        match self {
            Actor::Admin(u) => &u.username,
            Actor::Cli => "parley admin",
        }
    }

    fn is_cli(&self) -> bool {
        matches!(self, Actor::Cli)
    }
}

/// Who may register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Anyone.
    Open,
    /// With an invite link.
    Invite,
    /// Nobody by themselves: an admin's invite link, or `parley admin create-user`.
    Closed,
}

impl Registration {
    /// As stored and as the form sends it.
    pub fn as_str(self) -> &'static str {
        match self {
            Registration::Open => "open",
            Registration::Invite => "invite",
            Registration::Closed => "closed",
        }
    }

    /// From its stored or submitted form.
    pub fn parse(s: &str) -> Option<Registration> {
        match s {
            "open" => Some(Registration::Open),
            "invite" => Some(Registration::Invite),
            "closed" => Some(Registration::Closed),
            _ => None,
        }
    }
}

/// The registration mode as stored (an unknown value reads as closed: the safe side).
pub async fn registration(c: &mut db::Conn<'_>) -> sqlx::Result<Registration> {
    let s = db::admin::registration(c).await?;
    Ok(Registration::parse(&s).unwrap_or(Registration::Closed))
}

/// A random secret for a link: 32 letters and digits (190 bits).
pub fn new_token() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// What is stored of a reset token.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// As the admin pages show a user.
pub fn admin_user_data(r: AdminUserRow) -> AdminUserData {
    AdminUserData {
        user: UserRef {
            id: r.id,
            username: r.username,
            display_name: r.display_name,
        },
        is_admin: r.is_admin != 0,
        deactivated_at: r.deactivated_at,
        created_at: r.created_at,
    }
}

/// As the admin log shows an entry.
pub fn audit_data(r: &AuditRow) -> AuditData {
    AuditData {
        id: r.id,
        actor: r.actor_name.clone(),
        action: r.action.clone(),
        target: r.target_name.clone(),
        detail: r.detail.clone(),
        created_at: r.created_at,
    }
}

/// As invite lists show an invite (its link made from `base_url`).
pub fn invite_data(r: InviteRow, display_name: String) -> InviteData {
    InviteData {
        id: r.id,
        token: r.token,
        creator: UserRef {
            id: r.created_by,
            username: r.creator,
            display_name,
        },
        max_uses: r.max_uses,
        uses: r.uses,
        befriend: r.befriend != 0,
        expires_at: r.expires_at,
        revoked_at: r.revoked_at,
        created_at: r.created_at,
    }
}

async fn load_invite(tx: &mut Tx, id: i64) -> AppResult<InviteData> {
    let row = db::admin::invite(&mut tx.conn(), id)
        .await?
        .ok_or(AppError::NotFound)?;
    let name = db::users::user_ref(&mut tx.conn(), row.created_by)
        .await?
        .map(|u| u.display_name)
        .unwrap_or_default();
    Ok(invite_data(row, name))
}

/// Records what every server must see after an admin action (the web, at once; a server, for
/// an entry `parley admin` wrote): streams of a deactivated user close, the admin pages and the
/// user's header follow, the log entry appears.
async fn follow_up(tx: &mut Tx, entry: &AuditRow) -> AppResult<()> {
    if let Some(target) = entry.target_id {
        // On SQLite this server's writer drops its cached copy of the row (the command line's
        // write did not go through it).
        db::admin::touch_user(&mut tx.conn(), target).await?;
        if entry.action == "deactivate" {
            record(tx, Event::UserDeactivated { user_id: target }, vec![target]).await?;
        }
        if let Some(row) = db::admin::admin_user(&mut tx.conn(), target).await? {
            user_updated(tx, row, entry.action.starts_with("create")).await?;
        }
    }
    let admins = db::admin::admin_ids(&mut tx.conn()).await?;
    record(
        tx,
        Event::AdminLogged {
            entry: audit_data(entry),
        },
        admins,
    )
    .await
}

/// Tells the admins (and the user) how the user now looks on the admin pages.
async fn user_updated(tx: &mut Tx, row: AdminUserRow, created: bool) -> AppResult<()> {
    let admins = db::admin::admin_ids(&mut tx.conn()).await?;
    let mut audience = admins.clone();
    audience.push(row.id);
    record(
        tx,
        Event::AdminUserUpdated {
            user: admin_user_data(row),
            created,
            admins: Some(admins),
        },
        audience,
    )
    .await
}

/// Writes the audit entry of an action; the web records its follow-up at once, the command line
/// leaves it pending for a running server (and wakes the servers on PostgreSQL).
pub(super) async fn audit(
    tx: &mut Tx,
    actor: Actor<'_>,
    action: &str,
    target: Option<(i64, &str)>,
    detail: &str,
) -> AppResult<()> {
    let entry = db::admin::insert_audit(
        &mut tx.conn(),
        &NewAudit {
            actor_id: actor.id(),
            actor_name: actor.name(),
            action,
            target_id: target.map(|t| t.0),
            target_name: target.map_or("", |t| t.1),
            detail,
            pending: actor.is_cli(),
        },
        db::now_ms(),
    )
    .await?;
    if actor.is_cli() {
        db::admin::notify_admin(&mut tx.conn()).await?;
        Ok(())
    } else {
        follow_up(tx, &entry).await
    }
}

/// Ends a use case: the web's commit wakes the Hub; the command line has none to wake.
async fn finish(cx: Option<&Ctx<'_>>, tx: Tx) -> AppResult<()> {
    match cx {
        Some(cx) => commit(cx, tx).await,
        None => Ok(tx.commit().await?),
    }
}

/// Sets who may register.
#[tracing::instrument(skip_all, fields(mode = mode.as_str()))]
pub async fn set_registration(cx: &Ctx<'_>, actor: Actor<'_>, mode: Registration) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    if registration(&mut tx.conn()).await? == mode {
        return Ok(());
    }
    db::admin::set_registration(&mut tx.conn(), mode.as_str(), db::now_ms()).await?;
    audit(&mut tx, actor, "registration", None, mode.as_str()).await?;
    commit(cx, tx).await
}

/// The user an admin acts on (404 when there is none).
async fn target(tx: &mut Tx, id: i64) -> AppResult<AdminUserRow> {
    db::admin::admin_user(&mut tx.conn(), id)
        .await?
        .ok_or(AppError::NotFound)
}

fn last_admin() -> AppError {
    AppError::Conflict(
        "That would leave the instance without an administrator: make someone else admin first."
            .into(),
    )
}

/// Makes `user` an administrator, or not; the instance always keeps one active admin.
#[tracing::instrument(skip_all, fields(user_id = user, admin))]
pub async fn set_admin(
    cx: Option<&Ctx<'_>>,
    db: &db::Db,
    actor: Actor<'_>,
    user: i64,
    admin: bool,
) -> AppResult<()> {
    let mut tx = db.begin().await?;
    db::admin::lock_admins(&mut tx.conn()).await?;
    let t = target(&mut tx, user).await?;
    if (t.is_admin != 0) == admin {
        return Ok(());
    }
    if admin && t.deactivated_at.is_some() {
        return Err(AppError::Conflict(format!(
            "@{} is deactivated: reactivate the account first.",
            t.username
        )));
    }
    if !admin && db::admin::admin_ids(&mut tx.conn()).await? == [user] {
        return Err(last_admin());
    }
    db::admin::set_admin(&mut tx.conn(), user, admin).await?;
    let action = if admin { "promote" } else { "demote" };
    audit(&mut tx, actor, action, Some((user, &t.username)), "").await?;
    finish(cx, tx).await
}

/// Deactivates `user` (their sessions end and their streams close, on every node; they cannot
/// log in; their messages stay), or reactivates them.
#[tracing::instrument(skip_all, fields(user_id = user, active))]
pub async fn set_active(
    cx: Option<&Ctx<'_>>,
    db: &db::Db,
    actor: Actor<'_>,
    user: i64,
    active: bool,
) -> AppResult<()> {
    let mut tx = db.begin().await?;
    db::admin::lock_admins(&mut tx.conn()).await?;
    let t = target(&mut tx, user).await?;
    if t.deactivated_at.is_none() == active {
        return Ok(());
    }
    if !active && actor.id() == Some(user) {
        return Err(AppError::Conflict(
            "You cannot deactivate your own account.".into(),
        ));
    }
    if !active && t.is_admin != 0 && db::admin::admin_ids(&mut tx.conn()).await? == [user] {
        return Err(last_admin());
    }
    let at = (!active).then(db::now_ms);
    db::admin::set_deactivated(&mut tx.conn(), user, at).await?;
    if !active {
        db::admin::void_resets(&mut tx.conn(), user, db::now_ms()).await?;
    }
    let action = if active { "reactivate" } else { "deactivate" };
    audit(&mut tx, actor, action, Some((user, &t.username)), "").await?;
    finish(cx, tx).await
}

/// Makes a one-time password reset link for `user` (valid [`RESET_TTL_MS`]); earlier unused
/// links of theirs stop working. Returns the token (only its hash is stored).
#[tracing::instrument(skip_all, fields(user_id = user))]
pub async fn issue_reset(
    cx: Option<&Ctx<'_>>,
    db: &db::Db,
    actor: Actor<'_>,
    user: i64,
) -> AppResult<(String, String)> {
    let mut tx = db.begin().await?;
    let t = target(&mut tx, user).await?;
    if t.deactivated_at.is_some() {
        return Err(AppError::Conflict(format!(
            "@{} is deactivated: reactivate the account first.",
            t.username
        )));
    }
    let now = db::now_ms();
    let token = new_token();
    db::admin::void_resets(&mut tx.conn(), user, now).await?;
    db::admin::insert_reset(
        &mut tx.conn(),
        &token_hash(&token),
        user,
        now + RESET_TTL_MS,
        now,
    )
    .await?;
    audit(&mut tx, actor, "reset link", Some((user, &t.username)), "").await?;
    finish(cx, tx).await?;
    Ok((token, t.username))
}

/// The username a reset link is for, while it works.
pub async fn reset_target(cx: &Ctx<'_>, token: &str) -> AppResult<Option<String>> {
    let mut rc = cx.db.read().await?;
    let Some(id) = db::admin::reset_user(&mut rc.conn(), &token_hash(token), db::now_ms()).await?
    else {
        return Ok(None);
    };
    Ok(db::users::by_id(&mut rc.conn(), id)
        .await?
        .filter(|u| !u.is_deactivated())
        .map(|u| u.username))
}

/// Sets a new password through a reset link (once); every session of the user ends. Returns
/// the user, to log them in; None when the link is used, expired or unknown.
#[tracing::instrument(skip_all)]
pub async fn reset_password(
    cx: &Ctx<'_>,
    token: &str,
    new: &Password,
) -> AppResult<Option<db::users::UserRow>> {
    let hash = cx.hasher.hash(new).await?;
    let mut tx = cx.db.begin().await?;
    let Some(user) = db::admin::use_reset(&mut tx.conn(), &token_hash(token), db::now_ms()).await?
    else {
        return Ok(None);
    };
    let Some(row) = db::users::by_id(&mut tx.conn(), user)
        .await?
        .filter(|u| !u.is_deactivated())
    else {
        return Ok(None);
    };
    db::users::set_password_hash(&mut tx.conn(), user, &hash).await?;
    record(
        &mut tx,
        Event::PasswordChanged {
            user_id: user,
            keep_login_id: 0,
        },
        vec![user],
    )
    .await?;
    commit(cx, tx).await?;
    Ok(Some(db::users::UserRow {
        password_hash: hash,
        ..row
    }))
}

/// May `me` make invite links under `mode`? Admins always; others unless registration is closed.
pub fn may_invite(mode: Registration, is_admin: bool) -> bool {
    is_admin || mode != Registration::Closed
}

/// What an invite allows.
#[derive(Debug, Clone, Copy)]
pub struct InviteSpec {
    /// Registrations in all; None: any number until it expires.
    pub max_uses: Option<i64>,
    /// Valid this long (ms).
    pub ttl_ms: i64,
    /// Who registers with it becomes my friend.
    pub befriend: bool,
}

/// Makes an invite link; 404 when `me` may not (registration closed and not an admin).
#[tracing::instrument(skip_all, fields(user_id = me.id))]
pub async fn create_invite(
    cx: &Ctx<'_>,
    me: &UserRef,
    is_admin: bool,
    spec: InviteSpec,
) -> AppResult<i64> {
    let mut tx = cx.db.begin().await?;
    if !may_invite(registration(&mut tx.conn()).await?, is_admin) {
        // The page showed the form before registration closed: say why it no longer works.
        return Err(AppError::Forbidden(
            "Registration is closed on this instance: only its administrators make invite links now.",
        ));
    }
    let now = db::now_ms();
    let token = new_token();
    let id = db::admin::insert_invite(
        &mut tx.conn(),
        &NewInvite {
            token: &token,
            created_by: me.id,
            max_uses: spec.max_uses,
            befriend: spec.befriend,
            expires_at: now + spec.ttl_ms,
        },
        now,
    )
    .await?;
    invite_changed(&mut tx, id, true).await?;
    commit(cx, tx).await?;
    Ok(id)
}

/// Tells the invite's creator and the admins how it looks now.
async fn invite_changed(tx: &mut Tx, id: i64, created: bool) -> AppResult<()> {
    let invite = load_invite(tx, id).await?;
    let mut audience = db::admin::admin_ids(&mut tx.conn()).await?;
    audience.push(invite.creator.id);
    record(tx, Event::InviteUpdated { invite, created }, audience).await
}

/// Revokes an invite: its creator or an admin (an admin revoking someone else's is logged);
/// anyone else gets 404.
#[tracing::instrument(skip_all, fields(user_id = me.id, invite_id = id))]
pub async fn revoke_invite(cx: &Ctx<'_>, me: &UserRef, is_admin: bool, id: i64) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    let invite = db::admin::invite(&mut tx.conn(), id)
        .await?
        .filter(|i| is_admin || i.created_by == me.id)
        .ok_or(AppError::NotFound)?;
    if db::admin::revoke_invite(&mut tx.conn(), id, db::now_ms()).await? == 0 {
        return Ok(());
    }
    if invite.created_by != me.id {
        let detail = format!("invite #{id}");
        audit(
            &mut tx,
            Actor::Admin(me),
            "revoke invite",
            Some((invite.created_by, &invite.creator)),
            &detail,
        )
        .await?;
    }
    invite_changed(&mut tx, id, false).await?;
    commit(cx, tx).await
}

/// Why an invite link does not work, in words for its visitor.
pub const INVITE_GONE: &str =
    "This invite link has expired, was revoked, or has been used up. Ask for a new one.";
/// Why registering without an invite does not work in invite-only mode.
const INVITE_ONLY: &str =
    "This instance takes new accounts by invitation only: you need an invite link.";
/// Why registering without an invite does not work in closed mode.
const CLOSED: &str =
    "Registration is closed on this instance. Ask its administrator for an account.";

/// Why a registration with `invite` (a token) would be refused now, whatever its fields say
/// (None: it may go ahead). Read before the fields are checked, so a visitor who may not
/// register at all is told that first; the registering transaction checks again ([`admit`]).
pub async fn refusal(
    c: &mut db::Conn<'_>,
    invite: Option<&str>,
) -> AppResult<Option<&'static str>> {
    if db::admin::no_users(c).await? {
        return Ok(None);
    }
    let (valid, mode) = match invite {
        Some(token) => invite_for(c, token).await?,
        None => (None, registration(c).await?),
    };
    Ok(match (valid, invite, mode) {
        (Some(_), ..) | (None, None, Registration::Open) => None,
        (None, Some(_), _) => Some(INVITE_GONE),
        (None, None, Registration::Invite) => Some(INVITE_ONLY),
        (None, None, Registration::Closed) => Some(CLOSED),
    })
}

/// Whether registering with `invite` (a token) is possible now: the invite (None when the link
/// does not work) and the mode.
pub async fn invite_for(
    c: &mut db::Conn<'_>,
    token: &str,
) -> AppResult<(Option<InviteRow>, Registration)> {
    let mode = registration(c).await?;
    let now = db::now_ms();
    let invite = db::admin::invite_by_token(c, token).await?.filter(|i| {
        i.revoked_at.is_none() && i.expires_at > now && i.max_uses.is_none_or(|m| i.uses < m)
    });
    let invite = match invite {
        Some(i) => {
            let creator = db::users::by_id(c, i.created_by).await?;
            let ok = creator.is_some_and(|u| {
                !u.is_deactivated() && (mode != Registration::Closed || u.is_admin())
            });
            ok.then_some(i)
        }
        None => None,
    };
    Ok((invite, mode))
}

/// Registration's part: checks the mode and takes one use of the invite, inside the registering
/// transaction. Returns the inviter to befriend, if the invite asks for it.
pub async fn admit(tx: &mut Tx, invite: Option<&str>) -> AppResult<Option<i64>> {
    let mode = registration(&mut tx.conn()).await?;
    let Some(token) = invite else {
        return match mode {
            Registration::Open => Ok(None),
            // The very first account may always be made: someone has to run the instance.
            _ if db::admin::no_users(&mut tx.conn()).await? => Ok(None),
            Registration::Invite => Err(AppError::invalid("form", INVITE_ONLY)),
            Registration::Closed => Err(AppError::invalid("form", CLOSED)),
        };
    };
    let Some((_, creator, befriend)) =
        db::admin::redeem_invite(&mut tx.conn(), token, db::now_ms()).await?
    else {
        return Err(AppError::invalid("form", INVITE_GONE));
    };
    if mode == Registration::Closed {
        let admin = db::users::by_id(&mut tx.conn(), creator)
            .await?
            .is_some_and(|u| u.is_admin());
        if !admin {
            return Err(AppError::invalid("form", INVITE_GONE));
        }
    }
    if let Some(invite) = db::admin::invite_by_token(&mut tx.conn(), token).await? {
        invite_changed(tx, invite.id, false).await?;
    }
    Ok((befriend != 0).then_some(creator))
}

/// After a registration: the admins see the new account; an invite that asked for it makes the
/// newcomer and the inviter friends, with their direct conversation (as an accepted request
/// would).
pub async fn registered(tx: &mut Tx, user: i64, befriend: Option<i64>) -> AppResult<()> {
    if let Some(row) = db::admin::admin_user(&mut tx.conn(), user).await? {
        user_updated(tx, row, true).await?;
    }
    let Some(inviter) = befriend else {
        return Ok(());
    };
    let (Some(a), Some(b)) = (
        db::users::user_ref(&mut tx.conn(), inviter).await?,
        db::users::user_ref(&mut tx.conn(), user).await?,
    ) else {
        return Ok(());
    };
    if let Some((event, audience)) = super::friends::add_friend(tx, &a, &b).await? {
        record(tx, event, audience).await?;
    }
    Ok(())
}

/// Acts on what `parley admin` wrote while this server runs (or before it started): for each
/// pending audit entry, claims it (one node wins) and records its live follow-up. Returns how
/// many it handled.
pub async fn apply_pending(cx: &Ctx<'_>) -> AppResult<usize> {
    let pending = {
        let mut rc = cx.db.read().await?;
        db::admin::pending_audit(&mut rc.conn(), 100).await?
    };
    let mut handled = 0;
    for entry in pending {
        let mut tx = cx.db.begin().await?;
        if !db::admin::claim_audit(&mut tx.conn(), entry.id).await? {
            continue;
        }
        follow_up(&mut tx, &entry).await?;
        commit(cx, tx).await?;
        handled += 1;
    }
    Ok(handled)
}

//! Running an instance: admins, deactivation, registration mode, invites, password resets, and
//! the audit log of admin actions.

use super::{Conn, exec, run};

/// A user as the admin pages list them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AdminUserRow {
    /// Id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Display name, possibly empty.
    pub display_name: String,
    /// 1 for an administrator.
    pub is_admin: i64,
    /// When deactivated; None while active.
    pub deactivated_at: Option<i64>,
    /// Registered at (ms).
    pub created_at: i64,
}

const ADMIN_USER: &str = "id, username, display_name, is_admin, deactivated_at, created_at";

/// Serialises changes to who is an active admin on PostgreSQL (a transaction-scoped advisory
/// lock), so two admins demoting each other at once cannot leave the instance with none; SQLite's
/// single writer serialises them already.
pub async fn lock_admins(c: &mut Conn<'_>) -> sqlx::Result<()> {
    /// Arbitrary, fixed: the advisory lock that guards the set of admins.
    const ADMINS_LOCK: i64 = 0x7061_726c_6164_6d6e;
    if let Conn::Pg(c) = c {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(ADMINS_LOCK)
            .execute(&mut **c)
            .await?;
    }
    Ok(())
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
fn like_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for ch in q.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

/// Users whose username or display name contains `q` (all when empty), newest first.
pub async fn list_users(
    c: &mut Conn<'_>,
    q: &str,
    offset: i64,
    limit: i64,
) -> sqlx::Result<Vec<AdminUserRow>> {
    let pattern = like_pattern(q);
    run!(c, e => sqlx::query_as(&format!(
        "SELECT {ADMIN_USER} FROM users \
         WHERE username LIKE $1 ESCAPE '\\' OR LOWER(display_name) LIKE $1 ESCAPE '\\' \
         ORDER BY id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(&pattern)
    .bind(limit)
    .bind(offset)
    .fetch_all(e)
    .await)
}

/// How many users [`list_users`] would list in all.
pub async fn count_users(c: &mut Conn<'_>, q: &str) -> sqlx::Result<i64> {
    let pattern = like_pattern(q);
    run!(c, e => sqlx::query_scalar(
        "SELECT COUNT(*) FROM users \
         WHERE username LIKE $1 ESCAPE '\\' OR LOWER(display_name) LIKE $1 ESCAPE '\\'",
    )
    .bind(&pattern)
    .fetch_one(e)
    .await)
}

/// One user as the admin pages show them.
pub async fn admin_user(c: &mut Conn<'_>, id: i64) -> sqlx::Result<Option<AdminUserRow>> {
    run!(c, e => sqlx::query_as(&format!("SELECT {ADMIN_USER} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(e)
        .await)
}

/// True when the instance has no account yet (the first one will run it).
pub async fn no_users(c: &mut Conn<'_>) -> sqlx::Result<bool> {
    let any: Option<i64> = run!(c, e => sqlx::query_scalar("SELECT id FROM users LIMIT 1")
        .fetch_optional(e)
        .await)?;
    Ok(any.is_none())
}

/// The ids of the active administrators.
pub async fn admin_ids(c: &mut Conn<'_>) -> sqlx::Result<Vec<i64>> {
    run!(c, e => sqlx::query_scalar(
        "SELECT id FROM users WHERE is_admin = 1 AND deactivated_at IS NULL ORDER BY id",
    )
    .fetch_all(e)
    .await)
}

/// Makes `id` an administrator, or not.
pub async fn set_admin(c: &mut Conn<'_>, id: i64, admin: bool) -> sqlx::Result<u64> {
    super::users::update_users!(
        c,
        "UPDATE users SET is_admin = $1 WHERE id = $2",
        i64::from(admin),
        id
    )
}

/// Deactivates `id` (and ends all of their sessions), or reactivates them (`at` None).
pub async fn set_deactivated(c: &mut Conn<'_>, id: i64, at: Option<i64>) -> sqlx::Result<u64> {
    super::users::update_users!(
        c,
        "UPDATE users SET deactivated_at = $1, \
         session_epoch = session_epoch + CASE WHEN $1 IS NULL THEN 0 ELSE 1 END WHERE id = $2",
        at,
        id
    )
}

/// Writes the users row without changing it: on SQLite a running server drops its cached copy
/// of the row when its own writer touches it (applying a change `parley admin` made).
pub async fn touch_user(c: &mut Conn<'_>, id: i64) -> sqlx::Result<()> {
    super::users::update_users!(
        c,
        "UPDATE users SET session_epoch = session_epoch WHERE id = $1",
        id
    )?;
    Ok(())
}

/// Who may register: `open`, `invite` or `closed`.
pub async fn registration(c: &mut Conn<'_>) -> sqlx::Result<String> {
    run!(c, e => sqlx::query_scalar(
        "SELECT registration FROM instance_settings WHERE singleton = 1",
    )
    .fetch_one(e)
    .await)
}

/// Sets who may register.
pub async fn set_registration(c: &mut Conn<'_>, mode: &str, now: i64) -> sqlx::Result<()> {
    exec!(c, e => sqlx::query(
        "UPDATE instance_settings SET registration = $1, updated_at = $2 WHERE singleton = 1",
    )
    .bind(mode)
    .bind(now)
    .execute(e)
    .await)?;
    Ok(())
}

/// An invite link as stored, with its creator's username.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InviteRow {
    /// Id.
    pub id: i64,
    /// The secret in its link.
    pub token: String,
    /// Who made it.
    pub created_by: i64,
    /// Their username.
    pub creator: String,
    /// Registrations it allows in all; None: any number until it expires.
    pub max_uses: Option<i64>,
    /// Registrations made with it.
    pub uses: i64,
    /// 1: who registers with it becomes the creator's friend.
    pub befriend: i64,
    /// Expires at (ms).
    pub expires_at: i64,
    /// Revoked at (ms).
    pub revoked_at: Option<i64>,
    /// Made at (ms).
    pub created_at: i64,
}

const INVITE: &str = "i.id, i.token, i.created_by, u.username AS creator, i.max_uses, i.uses, \
                      i.befriend, i.expires_at, i.revoked_at, i.created_at";

/// What a new invite allows.
#[derive(Debug, Clone)]
pub struct NewInvite<'a> {
    /// The secret.
    pub token: &'a str,
    /// Its creator.
    pub created_by: i64,
    /// None: any number of uses.
    pub max_uses: Option<i64>,
    /// Befriend the creator.
    pub befriend: bool,
    /// Expires at (ms).
    pub expires_at: i64,
}

/// Stores an invite; returns its id.
pub async fn insert_invite(c: &mut Conn<'_>, i: &NewInvite<'_>, now: i64) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar(
        "INSERT INTO invites (token, created_by, max_uses, uses, befriend, expires_at, created_at) \
         VALUES ($1, $2, $3, 0, $4, $5, $6) RETURNING id",
    )
    .bind(i.token)
    .bind(i.created_by)
    .bind(i.max_uses)
    .bind(i64::from(i.befriend))
    .bind(i.expires_at)
    .bind(now)
    .fetch_one(e)
    .await)
}

/// One invite by id.
pub async fn invite(c: &mut Conn<'_>, id: i64) -> sqlx::Result<Option<InviteRow>> {
    run!(c, e => sqlx::query_as(&format!(
        "SELECT {INVITE} FROM invites i JOIN users u ON u.id = i.created_by WHERE i.id = $1"
    ))
    .bind(id)
    .fetch_optional(e)
    .await)
}

/// One invite by its token.
pub async fn invite_by_token(c: &mut Conn<'_>, token: &str) -> sqlx::Result<Option<InviteRow>> {
    run!(c, e => sqlx::query_as(&format!(
        "SELECT {INVITE} FROM invites i JOIN users u ON u.id = i.created_by WHERE i.token = $1"
    ))
    .bind(token)
    .fetch_optional(e)
    .await)
}

/// Invites, newest first: those of `creator`, or everyone's (None).
pub async fn invites(
    c: &mut Conn<'_>,
    creator: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<InviteRow>> {
    run!(c, e => sqlx::query_as(&format!(
        "SELECT {INVITE} FROM invites i JOIN users u ON u.id = i.created_by \
         WHERE ($1 IS NULL OR i.created_by = $1) ORDER BY i.id DESC LIMIT $2"
    ))
    .bind(creator)
    .bind(limit)
    .fetch_all(e)
    .await)
}

/// Revokes an invite (once).
pub async fn revoke_invite(c: &mut Conn<'_>, id: i64, now: i64) -> sqlx::Result<u64> {
    exec!(c, e => sqlx::query(
        "UPDATE invites SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(e)
    .await)
}

/// Takes one use of the invite `token` if it is still good (not revoked, not expired, uses
/// left): one statement, so two registrations cannot both take a single-use invite's last use
/// (PostgreSQL re-checks the condition on the row it waited for).
pub async fn redeem_invite(
    c: &mut Conn<'_>,
    token: &str,
    now: i64,
) -> sqlx::Result<Option<(i64, i64, i64)>> {
    run!(c, e => sqlx::query_as(
        "UPDATE invites SET uses = uses + 1 \
         WHERE token = $1 AND revoked_at IS NULL AND expires_at > $2 \
         AND (max_uses IS NULL OR uses < max_uses) \
         AND created_by IN (SELECT id FROM users WHERE deactivated_at IS NULL) \
         RETURNING id, created_by, befriend",
    )
    .bind(token)
    .bind(now)
    .fetch_optional(e)
    .await)
}

/// Stores a password reset link (its token's hash).
pub async fn insert_reset(
    c: &mut Conn<'_>,
    token_hash: &str,
    user: i64,
    expires_at: i64,
    now: i64,
) -> sqlx::Result<()> {
    exec!(c, e => sqlx::query(
        "INSERT INTO password_resets (token_hash, user_id, expires_at, created_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(token_hash)
    .bind(user)
    .bind(expires_at)
    .bind(now)
    .execute(e)
    .await)?;
    Ok(())
}

/// The user a reset link is for, while it is unused and unexpired.
pub async fn reset_user(c: &mut Conn<'_>, token_hash: &str, now: i64) -> sqlx::Result<Option<i64>> {
    run!(c, e => sqlx::query_scalar(
        "SELECT user_id FROM password_resets \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(e)
    .await)
}

/// Uses a reset link (once): returns its user, or None when it is used, expired or unknown.
pub async fn use_reset(c: &mut Conn<'_>, token_hash: &str, now: i64) -> sqlx::Result<Option<i64>> {
    run!(c, e => sqlx::query_scalar(
        "UPDATE password_resets SET used_at = $2 \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(e)
    .await)
}

/// Ends every unused reset link of `user` (a newer one replaces them).
pub async fn void_resets(c: &mut Conn<'_>, user: i64, now: i64) -> sqlx::Result<()> {
    exec!(c, e => sqlx::query(
        "UPDATE password_resets SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user)
    .bind(now)
    .execute(e)
    .await)?;
    Ok(())
}

/// An entry of the audit log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    /// Id.
    pub id: i64,
    /// The admin; None for the command line.
    pub actor_id: Option<i64>,
    /// Their username then (or `parley admin`).
    pub actor_name: String,
    /// What was done (`deactivate`, `promote`, …).
    pub action: String,
    /// The user it was done to.
    pub target_id: Option<i64>,
    /// Their username then.
    pub target_name: String,
    /// More about it (a new registration mode, an invite id).
    pub detail: String,
    /// Written by `parley admin`, not yet acted on by a running server.
    pub pending: i64,
    /// When (ms).
    pub created_at: i64,
}

const AUDIT: &str = "id, actor_id, actor_name, action, target_id, target_name, detail, pending, \
                     created_at";

/// A new audit entry.
#[derive(Debug, Clone)]
pub struct NewAudit<'a> {
    /// The admin; None for the command line.
    pub actor_id: Option<i64>,
    /// Their username (or `parley admin`).
    pub actor_name: &'a str,
    /// What was done.
    pub action: &'a str,
    /// To whom.
    pub target_id: Option<i64>,
    /// Their username.
    pub target_name: &'a str,
    /// More.
    pub detail: &'a str,
    /// Written by `parley admin`: a running server still has to act on it.
    pub pending: bool,
}

/// Appends an audit entry; returns it.
pub async fn insert_audit(c: &mut Conn<'_>, a: &NewAudit<'_>, now: i64) -> sqlx::Result<AuditRow> {
    run!(c, e => sqlx::query_as(&format!(
        "INSERT INTO admin_audit \
         (actor_id, actor_name, action, target_id, target_name, detail, pending, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {AUDIT}"
    ))
    .bind(a.actor_id)
    .bind(a.actor_name)
    .bind(a.action)
    .bind(a.target_id)
    .bind(a.target_name)
    .bind(a.detail)
    .bind(i64::from(a.pending))
    .bind(now)
    .fetch_one(e)
    .await)
}

/// The newest audit entries, newest first.
pub async fn recent_audit(c: &mut Conn<'_>, limit: i64) -> sqlx::Result<Vec<AuditRow>> {
    run!(c, e => sqlx::query_as(&format!(
        "SELECT {AUDIT} FROM admin_audit ORDER BY id DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(e)
    .await)
}

/// Entries `parley admin` wrote that no server has acted on yet, oldest first.
pub async fn pending_audit(c: &mut Conn<'_>, limit: i64) -> sqlx::Result<Vec<AuditRow>> {
    run!(c, e => sqlx::query_as(&format!(
        "SELECT {AUDIT} FROM admin_audit WHERE pending = 1 ORDER BY id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(e)
    .await)
}

/// Claims a pending entry for this server: true for exactly one of the nodes that try.
pub async fn claim_audit(c: &mut Conn<'_>, id: i64) -> sqlx::Result<bool> {
    let n = exec!(c, e => sqlx::query(
        "UPDATE admin_audit SET pending = 0 WHERE id = $1 AND pending = 1",
    )
    .bind(id)
    .execute(e)
    .await)?;
    Ok(n == 1)
}

/// Wakes running servers to act on what `parley admin` wrote (PostgreSQL, at commit).
pub async fn notify_admin(c: &mut Conn<'_>) -> sqlx::Result<()> {
    if let Conn::Pg(e) = c {
        sqlx::query("SELECT pg_notify('parley_admin', '')")
            .execute(&mut **e)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("Ann"), "%ann%");
        assert_eq!(like_pattern("a_b%"), "%a\\_b\\%%");
    }
}

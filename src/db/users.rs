//! Accounts.

use serde::{Deserialize, Serialize};

use super::{Conn, exec, run};

/// A user as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// Id.
    pub id: i64,
    /// Lowercased username.
    pub username: String,
    /// Display name, possibly empty.
    pub display_name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// 1 for an administrator.
    pub is_admin: i64,
    /// When the account was deactivated; None while active.
    pub deactivated_at: Option<i64>,
    /// Part of every session's auth hash: bumped to end all of the user's sessions.
    pub session_epoch: i64,
}

impl UserRow {
    /// True for an administrator.
    pub fn is_admin(&self) -> bool {
        self.is_admin != 0
    }

    /// True once deactivated (until reactivated).
    pub fn is_deactivated(&self) -> bool {
        self.deactivated_at.is_some()
    }
}

/// Runs an `UPDATE users …` (`$sql`, binding `$b`s) and yields the rows changed. On PostgreSQL the
/// same statement tells every node to drop its copies of users (`db::cache`; the notice is
/// delivered at commit, so never before the change is visible, and never without it).
macro_rules! update_users {
    ($c:expr, $sql:expr $(, $b:expr)* $(,)?) => {
        match $c {
            $crate::db::Conn::Sqlite(e) => sqlx::query($sql)
                $(.bind($b))*
                .execute(&mut **e)
                .await
                .map(|r| r.rows_affected()),
            $crate::db::Conn::Pg(e) => {
                $crate::db::cache::users_written();
                sqlx::query_scalar::<_, i64>(&format!(
                "WITH w AS ({} RETURNING 1) SELECT (SELECT COUNT(*) FROM w) \
                 FROM pg_notify('{}', '{}')",
                $sql,
                $crate::db::cache::CHANNEL,
                $crate::db::cache::USER_NOTICE,
            ))
                $(.bind($b))*
                .fetch_one(&mut **e)
                .await
                .map(|n| n as u64)
            }
        }
    };
}
pub(crate) use update_users;

/// The columns of a [`UserRow`].
const ROW: &str =
    "id, username, display_name, password_hash, is_admin, deactivated_at, session_epoch";

/// The public face of a user: what events and pages carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct UserRef {
    /// Id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Display name, possibly empty.
    pub display_name: String,
}

impl UserRef {
    /// The name to show: the display name, else the username.
    pub fn name(&self) -> &str {
        if self.display_name.is_empty() {
            &self.username
        } else {
            &self.display_name
        }
    }
}

/// Inserts a user; a taken username is a unique violation. The first user of an instance becomes
/// its administrator, decided in the insert itself: with SQLite's single writer, and on
/// PostgreSQL after [`lock_names`] (every registration takes it first, so the `EXISTS` sees any
/// user committed before), two first registrations cannot both become admin.
pub async fn insert(
    c: &mut Conn<'_>,
    username: &str,
    password_hash: &str,
    now: i64,
) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar(
        "INSERT INTO users (username, display_name, password_hash, created_at, is_admin) \
         VALUES ($1, '', $2, $3, CASE WHEN EXISTS (SELECT 1 FROM users) THEN 0 ELSE 1 END) \
         RETURNING id",
    )
    .bind(username)
    .bind(password_hash)
    .bind(now)
    .fetch_one(e)
    .await)
}

/// Finds a user by id.
pub async fn by_id(c: &mut Conn<'_>, id: i64) -> sqlx::Result<Option<UserRow>> {
    run!(c, e => sqlx::query_as(&format!("SELECT {ROW} FROM users WHERE id = $1"))
    .bind(id)
    .fetch_optional(e)
    .await)
}

/// Finds a user by (lowercased) username.
pub async fn by_username(c: &mut Conn<'_>, username: &str) -> sqlx::Result<Option<UserRow>> {
    run!(c, e => sqlx::query_as(&format!("SELECT {ROW} FROM users WHERE username = $1"))
    .bind(username)
    .fetch_optional(e)
    .await)
}

/// The public face of a user.
pub async fn user_ref(c: &mut Conn<'_>, id: i64) -> sqlx::Result<Option<UserRef>> {
    run!(c, e => sqlx::query_as("SELECT id, username, display_name FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(e)
        .await)
}

/// Sets the display name.
pub async fn set_display_name(c: &mut Conn<'_>, id: i64, name: &str) -> sqlx::Result<()> {
    update_users!(
        c,
        "UPDATE users SET display_name = $1 WHERE id = $2",
        name,
        id
    )?;
    Ok(())
}

/// Sets the password hash.
pub async fn set_password_hash(c: &mut Conn<'_>, id: i64, hash: &str) -> sqlx::Result<()> {
    update_users!(
        c,
        "UPDATE users SET password_hash = $1 WHERE id = $2",
        hash,
        id
    )?;
    Ok(())
}

/// Serialises name changes on PostgreSQL (a transaction-scoped advisory lock), so two users cannot
/// take confusable names at the same moment; SQLite's single writer serialises them already.
pub async fn lock_names(c: &mut Conn<'_>) -> sqlx::Result<()> {
    /// Arbitrary, fixed: the advisory lock that guards names.
    const NAMES_LOCK: i64 = 0x7061_726c_6e61_6d65;
    if let Conn::Pg(c) = c {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(NAMES_LOCK)
            .execute(&mut **c)
            .await?;
    }
    Ok(())
}

/// True when a user other than `except` has a username or display name with one of `keys`.
pub async fn name_keys_taken(c: &mut Conn<'_>, except: i64, keys: &[String]) -> sqlx::Result<bool> {
    let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
        return Ok(false);
    };
    let hit: Option<i64> = run!(c, e => sqlx::query_scalar(
        "SELECT user_id FROM user_name_keys WHERE name_key IN ($1, $2) AND user_id <> $3 LIMIT 1",
    )
    .bind(first)
    .bind(last)
    .bind(except)
    .fetch_optional(e)
    .await)?;
    Ok(hit.is_some())
}

/// Replaces the keys of `user`'s username (`source` = "u") or display name ("d").
pub async fn set_name_keys(
    c: &mut Conn<'_>,
    user: i64,
    source: &str,
    keys: &[String],
    version: i64,
    now: i64,
) -> sqlx::Result<()> {
    exec!(c, e => sqlx::query("DELETE FROM user_name_keys WHERE user_id = $1 AND source = $2")
        .bind(user)
        .bind(source)
        .execute(e)
        .await)?;
    for key in keys {
        exec!(c, e => sqlx::query(
            "INSERT INTO user_name_keys (user_id, source, name_key, version, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(user)
        .bind(source)
        .bind(key)
        .bind(version)
        .bind(now)
        .execute(e)
        .await)?;
    }
    Ok(())
}

/// Up to `limit` users whose username has no key of `version` yet (new installs, older versions).
pub async fn without_name_keys(
    c: &mut Conn<'_>,
    version: i64,
    limit: i64,
) -> sqlx::Result<Vec<UserRef>> {
    run!(c, e => sqlx::query_as(
        "SELECT id, username, display_name FROM users u WHERE NOT EXISTS \
         (SELECT 1 FROM user_name_keys k WHERE k.user_id = u.id AND k.source = 'u' AND k.version = $1) \
         ORDER BY id LIMIT $2",
    )
    .bind(version)
    .bind(limit)
    .fetch_all(e)
    .await)
}

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
}

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

/// Inserts a user; a taken username is a unique violation.
pub async fn insert(
    c: &mut Conn<'_>,
    username: &str,
    password_hash: &str,
    now: i64,
) -> sqlx::Result<i64> {
    run!(c, e => sqlx::query_scalar(
        "INSERT INTO users (username, display_name, password_hash, created_at) \
         VALUES ($1, '', $2, $3) RETURNING id",
    )
    .bind(username)
    .bind(password_hash)
    .bind(now)
    .fetch_one(e)
    .await)
}

/// Finds a user by id.
pub async fn by_id(c: &mut Conn<'_>, id: i64) -> sqlx::Result<Option<UserRow>> {
    run!(c, e => sqlx::query_as(
        "SELECT id, username, display_name, password_hash FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(e)
    .await)
}

/// Finds a user by (lowercased) username.
pub async fn by_username(c: &mut Conn<'_>, username: &str) -> sqlx::Result<Option<UserRow>> {
    run!(c, e => sqlx::query_as(
        "SELECT id, username, display_name, password_hash FROM users WHERE username = $1",
    )
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
    exec!(c, e => sqlx::query("UPDATE users SET display_name = $1 WHERE id = $2")
        .bind(name)
        .bind(id)
        .execute(e)
        .await)?;
    Ok(())
}

/// Sets the password hash.
pub async fn set_password_hash(c: &mut Conn<'_>, id: i64, hash: &str) -> sqlx::Result<()> {
    exec!(c, e => sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(id)
        .execute(e)
        .await)?;
    Ok(())
}

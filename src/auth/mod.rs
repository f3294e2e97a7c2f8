//! Authentication: the axum-login backend over our users table, and the extractors handlers use.

pub mod password;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum_login::{AuthUser, AuthnBackend, UserId};

use crate::db::users::UserRef;
use crate::db::{self, Db};
use crate::domain::{Password, Username};
use crate::error::AppError;
use crate::state::AppState;
use password::Hasher;

/// The logged-in user as the session layer knows them.
#[derive(Clone)]
pub struct User {
    /// Public face.
    pub user: UserRef,
    /// The password hash: the session's auth hash, so a password change ends other sessions.
    password_hash: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.user.id)
            .finish_non_exhaustive()
    }
}

impl From<db::users::UserRow> for User {
    fn from(r: db::users::UserRow) -> Self {
        User {
            user: UserRef {
                id: r.id,
                username: r.username,
                display_name: r.display_name,
            },
            password_hash: r.password_hash,
        }
    }
}

impl AuthUser for User {
    type Id = i64;

    fn id(&self) -> i64 {
        self.user.id
    }

    fn session_auth_hash(&self) -> &[u8] {
        self.password_hash.as_bytes()
    }
}

/// Username and password as typed.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Parsed username.
    pub username: Username,
    /// The password.
    pub password: Password,
}

/// axum-login backend.
#[derive(Clone, Debug)]
pub struct Backend {
    db: Db,
    hasher: Hasher,
}

impl Backend {
    /// A backend over `db`.
    pub fn new(db: Db, hasher: Hasher) -> Self {
        Backend { db, hasher }
    }
}

/// Errors of the backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Database.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Hashing.
    #[error(transparent)]
    Hash(#[from] anyhow::Error),
}

impl AuthnBackend for Backend {
    type User = User;
    type Credentials = Credentials;
    type Error = BackendError;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, BackendError> {
        let row = {
            let mut rc = self.db.read().await?;
            db::users::by_username(&mut rc.conn(), creds.username.as_str()).await?
        };
        // An unknown username still costs one verification: no timing oracle.
        let ok = self
            .hasher
            .verify(
                &creds.password,
                row.as_ref().map(|r| r.password_hash.as_str()),
            )
            .await?;
        Ok(if ok { row.map(User::from) } else { None })
    }

    async fn get_user(&self, id: &UserId<Self>) -> Result<Option<User>, BackendError> {
        // Every request asks; on SQLite a cached copy answers while no write touched `users`.
        let cache = match &self.db {
            Db::Sqlite { write, .. } => Some(&write.users),
            Db::Postgres(_) => None,
        };
        if let Some(u) = cache.and_then(|c| c.get(*id)) {
            return Ok(Some(User::from(u)));
        }
        let generation = cache.map(|c| c.generation());
        let row = {
            let mut rc = self.db.read().await?;
            db::users::by_id(&mut rc.conn(), *id).await?
        };
        if let (Some(c), Some(g), Some(u)) = (cache, generation, &row) {
            c.put(g, u);
        }
        Ok(row.map(User::from))
    }
}

/// The axum-login session.
pub type AuthSession = axum_login::AuthSession<Backend>;

/// Reads one of our session values; a missing or unreadable one is `None`.
pub async fn session_value<T: serde::de::DeserializeOwned>(
    session: &tower_sessions::Session,
    key: &str,
) -> Option<T> {
    session.get(key).await.ok().flatten()
}

/// Session keys of our own.
pub mod keys {
    /// Random id of this login (streams are closed by it; never the session id itself).
    pub const LOGIN_ID: &str = "parley.login_id";
    /// When this login happened (ms): the absolute lifetime counts from it.
    pub const LOGIN_AT: &str = "parley.login_at";
    /// Last time the idle expiry was pushed forward (ms).
    pub const TOUCHED_AT: &str = "parley.touched_at";
}

/// A logged-in user: handlers that take this require a login (anonymous: 303 to `/login`).
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// Who.
    pub user: UserRef,
    /// This login's id.
    pub login_id: u64,
}

impl CurrentUser {
    /// The user id.
    pub fn id(&self) -> i64 {
        self.user.id
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .filter(|_| parts.method == axum::http::Method::GET);
        let unauth = || AppError::Unauthenticated { next: next.clone() };
        let mut auth = AuthSession::from_request_parts(parts, state)
            .await
            .map_err(|_| unauth())?;
        let Some(user) = auth.user.clone() else {
            return Err(unauth());
        };
        let session = auth.session.clone();
        let now = db::now_ms();
        let login_at: i64 = session
            .get(keys::LOGIN_AT)
            .await
            .map_err(|e| anyhow::anyhow!("session: {e}"))?
            .unwrap_or(0);
        let max_ms = i64::from(state.config.session_max_days) * 86_400_000;
        if now - login_at > max_ms {
            // Absolute lifetime reached: the login ends however active it is.
            let _ = auth.logout().await;
            return Err(unauth());
        }
        // Push the idle expiry forward at most once an hour: the store is written only then.
        let touched: i64 = session_value(&session, keys::TOUCHED_AT).await.unwrap_or(0);
        if now - touched > 3_600_000 {
            let _ = session.insert(keys::TOUCHED_AT, now).await;
        }
        let login_id: u64 = session_value(&session, keys::LOGIN_ID).await.unwrap_or(0);
        Ok(CurrentUser {
            user: user.user,
            login_id,
        })
    }
}

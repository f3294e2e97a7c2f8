//! Authentication: the axum-login backend over our users table, and the extractors handlers use.

pub mod password;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum_login::{AuthUser, AuthnBackend, UserId};

use crate::db::users::UserRef;
use crate::db::{self, Db};
use crate::domain::{Password, Username};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use password::Hasher;

/// The logged-in user as the session layer knows them.
#[derive(Clone)]
pub struct User {
    /// Public face.
    pub user: UserRef,
    /// An administrator of the instance.
    pub is_admin: bool,
    /// Deactivated: may not log in (only `authenticate` hands such a user out, to say so).
    pub deactivated: bool,
    /// The session's auth hash: the password hash (so a password change ends other sessions),
    /// and the session epoch once bumped (so a deactivation ends all of them, for good).
    auth_hash: String,
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
            is_admin: r.is_admin != 0,
            deactivated: r.deactivated_at.is_some(),
            // Epoch 0 keeps the hash sessions made before epochs existed.
            auth_hash: if r.session_epoch == 0 {
                r.password_hash
            } else {
                format!("{}#{}", r.password_hash, r.session_epoch)
            },
        }
    }
}

impl AuthUser for User {
    type Id = i64;

    fn id(&self) -> i64 {
        self.user.id
    }

    fn session_auth_hash(&self) -> &[u8] {
        self.auth_hash.as_bytes()
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
        // A deactivated user has no session: every page and the stream treat them as logged out.
        let active = |u: &db::users::UserRow| u.deactivated_at.is_none();
        if let Some(u) = cache.and_then(|c| c.get(*id)) {
            return Ok(Some(u).filter(active).map(User::from));
        }
        let generation = cache.map(|c| c.generation());
        let row = {
            let mut rc = self.db.read().await?;
            db::users::by_id(&mut rc.conn(), *id).await?
        };
        if let (Some(c), Some(g), Some(u)) = (cache, generation, &row) {
            c.put(g, u);
        }
        Ok(row.filter(active).map(User::from))
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

/// A login that passed [`current_login`].
#[derive(Debug, Clone)]
pub struct Login {
    /// Who.
    pub user: User,
    /// This login's id.
    pub login_id: u64,
    /// When it ends unless used again (idle expiry) or at the latest (absolute lifetime), in ms.
    pub ends_at_ms: i64,
}

impl Login {
    /// Time left before [`Login::ends_at_ms`] (zero when past).
    pub fn remaining(&self) -> std::time::Duration {
        let ms = self.ends_at_ms.saturating_sub(db::now_ms()).max(0);
        std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The one session check every route goes through, pages and the stream alike: the session's
/// login if it is still valid, else `None`.
///
/// The store does not load a session past its idle expiry. A login past its absolute lifetime
/// (`--session-max-days`) is ended here, like a logout: the session is deleted and its streams
/// close on every node. A valid one gets its idle expiry pushed forward, at most once an hour (the
/// store is written only then).
pub async fn current_login(auth: &mut AuthSession, state: &AppState) -> AppResult<Option<Login>> {
    let Some(user) = auth.user.clone() else {
        return Ok(None);
    };
    let session = auth.session.clone();
    let now = db::now_ms();
    let login_at: i64 = session
        .get(keys::LOGIN_AT)
        .await
        .map_err(|e| anyhow::anyhow!("session: {e}"))?
        .unwrap_or(0);
    let login_id: u64 = session_value(&session, keys::LOGIN_ID).await.unwrap_or(0);
    let max_ms = millis(state.config.session_max_age());
    if now.saturating_sub(login_at) >= max_ms {
        auth.logout()
            .await
            .map_err(|e| anyhow::anyhow!("logout: {e}"))?;
        if login_id != 0 {
            crate::chat::accounts::logged_out(&state.cx(), user.user.id, login_id).await?;
        }
        return Ok(None);
    }
    let idle_ms = millis(state.config.session_idle());
    let mut touched: i64 = session_value(&session, keys::TOUCHED_AT).await.unwrap_or(0);
    // With a short idle expiry, touch more often, so a valid session never looks ended.
    if now - touched > (idle_ms / 4).min(3_600_000) {
        session
            .insert(keys::TOUCHED_AT, now)
            .await
            .map_err(|e| anyhow::anyhow!("session: {e}"))?;
        touched = now;
    }
    Ok(Some(Login {
        user,
        login_id,
        ends_at_ms: login_at
            .saturating_add(max_ms)
            .min(touched.saturating_add(idle_ms)),
    }))
}

/// A logged-in user: handlers that take this require a login (anonymous: 303 to `/login`).
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// Who.
    pub user: UserRef,
    /// This login's id.
    pub login_id: u64,
    /// An administrator of the instance.
    pub is_admin: bool,
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
        let login = current_login(&mut auth, state).await?.ok_or_else(unauth)?;
        Ok(CurrentUser {
            is_admin: login.user.is_admin,
            user: login.user.user,
            login_id: login.login_id,
        })
    }
}

//! Authentication: the axum-login backend over our users table, and the extractors handlers use.

pub mod password;

use axum_login::{AuthUser, AuthnBackend, UserId};

use crate::db::users::UserRef;
use crate::db::{self, Db};
use crate::domain::{Password, Username};
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
    /// On PostgreSQL: this node's copies of users (see `db::cache`).
    pg: Option<std::sync::Arc<crate::sessions::PgCaches>>,
}

impl Backend {
    /// A backend over `db`; `pg`: the node's copies on PostgreSQL (`Store::pg_caches`).
    pub fn new(
        db: Db,
        hasher: Hasher,
        pg: Option<std::sync::Arc<crate::sessions::PgCaches>>,
    ) -> Self {
        Backend { db, hasher, pg }
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
        // A deactivated user has no session: every page and the stream treat them as logged out.
        let active = |u: &db::users::UserRow| u.deactivated_at.is_none();
        // Every request asks; a cached copy answers while no write touched `users` (SQLite: this
        // process is the only writer; PostgreSQL: no node's notice came, see `db::cache`).
        if let Some(pg) = &self.pg {
            if let Some(u) = pg.users.get(id) {
                return Ok(Some(u).filter(active).map(User::from));
            }
            let generation = pg.users.generation();
            let row = {
                let mut rc = self.db.read().await?;
                db::users::by_id(&mut rc.conn(), *id).await?
            };
            if let Some(u) = &row {
                pg.users.put(generation, u.id, u.clone());
            }
            return Ok(row.filter(active).map(User::from));
        }
        let cache = match &self.db {
            Db::Sqlite { write, .. } => Some(&write.users),
            Db::Postgres(_) => None,
        };
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

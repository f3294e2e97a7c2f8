//! The one session check every route goes through (pages and the live stream): a login is valid
//! until its idle expiry or its absolute lifetime, and `CurrentUser` is the extractor built on it.
//! Web layer, not `auth`: ending a login past its lifetime is a use case (`chat::accounts`).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::auth::{AuthSession, User, keys, session_value};
use crate::db::{self, users::UserRef};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

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
        let fetch = crate::web::extract::is_fetch(&parts.headers);
        let unauth = || AppError::Unauthenticated {
            next: next.clone(),
            fetch,
        };
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

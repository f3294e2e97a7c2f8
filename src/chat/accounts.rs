//! Accounts: register, profile, password, logout.

use crate::auth::CurrentUser;
use crate::db::users::UserRow;
use crate::db::{self};
use crate::domain::{DisplayName, FieldErrors, Password, Username};
use crate::error::{AppError, AppResult, ResultExt};
use crate::events::Event;
use crate::state::AppState;

use super::{commit, record};

/// Creates an account.
#[tracing::instrument(skip_all, fields(username = username.as_str()))]
pub async fn register(
    state: &AppState,
    username: &Username,
    password: &Password,
) -> AppResult<UserRow> {
    // Hash before the transaction: the writer is never held across a slow hash.
    let hash = state.hasher.hash(password).await?;
    let mut tx = state.db.begin().await?;
    let id = db::users::insert(&mut tx.conn(), username.as_str(), &hash, db::now_ms())
        .await
        .on_unique("username", "That username is taken. Try another one.")?;
    let row = db::users::by_id(&mut tx.conn(), id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("inserted user vanished"))?;
    tx.commit().await?;
    Ok(row)
}

/// Sets my display name; my other tabs update live.
#[tracing::instrument(skip_all, fields(user_id = me.id()))]
pub async fn set_display_name(
    state: &AppState,
    me: &CurrentUser,
    name: &DisplayName,
) -> AppResult<()> {
    let mut tx = state.db.begin().await?;
    db::users::set_display_name(&mut tx.conn(), me.id(), name.as_str()).await?;
    let user = db::users::user_ref(&mut tx.conn(), me.id())
        .await?
        .ok_or(AppError::NotFound)?;
    record(&mut tx, Event::ProfileUpdated { user }, vec![me.id()]).await?;
    commit(state, tx).await
}

/// Changes my password after checking the current one; every other login of mine ends (their
/// sessions fail the auth-hash check, their streams close). Returns the new user row so the
/// caller can renew this session.
#[tracing::instrument(skip_all, fields(user_id = me.id()))]
pub async fn change_password(
    state: &AppState,
    me: &CurrentUser,
    current: &Password,
    new: &Password,
) -> AppResult<UserRow> {
    let row = {
        let mut rc = state.db.read().await?;
        db::users::by_id(&mut rc.conn(), me.id()).await?
    }
    .ok_or(AppError::NotFound)?;
    if !state
        .hasher
        .verify(current, Some(&row.password_hash))
        .await?
    {
        return Err(AppError::Invalid(FieldErrors::one(
            "current_password",
            "That is not your current password.",
        )));
    }
    let hash = state.hasher.hash(new).await?;
    let mut tx = state.db.begin().await?;
    db::users::set_password_hash(&mut tx.conn(), me.id(), &hash).await?;
    record(
        &mut tx,
        Event::PasswordChanged {
            user_id: me.id(),
            keep_login_id: me.login_id,
        },
        vec![me.id()],
    )
    .await?;
    commit(state, tx).await?;
    Ok(UserRow {
        password_hash: hash,
        ..row
    })
}

/// Records that a login ended, so its open streams close (on every node).
pub async fn logged_out(state: &AppState, user_id: i64, login_id: u64) -> AppResult<()> {
    let mut tx = state.db.begin().await?;
    record(
        &mut tx,
        Event::SessionEnded { user_id, login_id },
        vec![user_id],
    )
    .await?;
    commit(state, tx).await
}

//! Accounts: register, profile, password, logout.

use crate::auth::CurrentUser;
use crate::db::users::UserRow;
use crate::db::{self};
use crate::domain::{DisplayName, FieldErrors, NAME_KEYS_VERSION, Password, Username, name_keys};
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
    let keys = name_keys(username.as_str());
    db::users::lock_names(&mut tx.conn()).await?;
    if db::users::name_keys_taken(&mut tx.conn(), 0, &keys).await? {
        return Err(AppError::invalid(
            "username",
            "That username is taken, or looks too much like someone's name. Try another one.",
        ));
    }
    let now = db::now_ms();
    let id = db::users::insert(&mut tx.conn(), username.as_str(), &hash, now)
        .await
        .on_unique("username", "That username is taken. Try another one.")?;
    db::users::set_name_keys(&mut tx.conn(), id, "u", &keys, NAME_KEYS_VERSION, now).await?;
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
    // Nobody may pass for someone else: not the same name, nor a look-alike, of anyone but me.
    let keys = name_keys(name.as_str());
    db::users::lock_names(&mut tx.conn()).await?;
    if db::users::name_keys_taken(&mut tx.conn(), me.id(), &keys).await? {
        return Err(AppError::invalid(
            "display_name",
            "Someone here already has that name, or one that looks like it. Choose another.",
        ));
    }
    let now = db::now_ms();
    db::users::set_name_keys(&mut tx.conn(), me.id(), "d", &keys, NAME_KEYS_VERSION, now).await?;
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

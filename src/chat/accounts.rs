//! Accounts: register, profile, password, logout.

use crate::db::users::UserRef;
use crate::db::users::UserRow;
use crate::db::{self, Tx};
use crate::domain::{DisplayName, FieldErrors, NAME_KEYS_VERSION, Password, Username, name_keys};
use crate::error::{AppError, AppResult, ResultExt};
use crate::events::Event;

use super::{Ctx, commit, record};

/// Creates an account: open registration, or with an invite link (`invite`, its token) as the
/// registration mode requires. An invite that asks for it makes the newcomer its creator's friend.
#[tracing::instrument(skip_all, fields(username = username.as_str()))]
pub async fn register(
    cx: &Ctx<'_>,
    username: &Username,
    password: &Password,
    invite: Option<&str>,
) -> AppResult<UserRow> {
    // Hash before the transaction: the writer is never held across a slow hash.
    let hash = cx.hasher.hash(password).await?;
    let mut tx = cx.db.begin().await?;
    let befriend = super::admin::admit(&mut tx, invite).await?;
    let id = insert_account(&mut tx, username, &hash).await?;
    super::admin::registered(&mut tx, id, befriend).await?;
    let row = db::users::by_id(&mut tx.conn(), id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("inserted user vanished"))?;
    commit(cx, tx).await?;
    Ok(row)
}

/// Inserts an account inside `tx` (the first of an instance becomes its admin), refusing a
/// username that is taken or looks like someone's name.
pub async fn insert_account(tx: &mut Tx, username: &Username, hash: &str) -> AppResult<i64> {
    let keys = name_keys(username.as_str());
    db::users::lock_names(&mut tx.conn()).await?;
    if db::users::name_keys_taken(&mut tx.conn(), 0, &keys).await? {
        return Err(AppError::invalid(
            "username",
            "That username is taken, or looks too much like someone's name. Try another one.",
        ));
    }
    let now = db::now_ms();
    let id = db::users::insert(&mut tx.conn(), username.as_str(), hash, now)
        .await
        .on_unique("username", "That username is taken. Try another one.")?;
    db::users::set_name_keys(&mut tx.conn(), id, "u", &keys, NAME_KEYS_VERSION, now).await?;
    Ok(id)
}

/// Sets my display name; my other tabs update live.
#[tracing::instrument(skip_all, fields(user_id = me.id))]
pub async fn set_display_name(cx: &Ctx<'_>, me: &UserRef, name: &DisplayName) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    // Nobody may pass for someone else: not the same name, nor a look-alike, of anyone but me.
    let keys = name_keys(name.as_str());
    db::users::lock_names(&mut tx.conn()).await?;
    if db::users::name_keys_taken(&mut tx.conn(), me.id, &keys).await? {
        return Err(AppError::invalid(
            "display_name",
            "Someone here already has that name, or one that looks like it. Choose another.",
        ));
    }
    let now = db::now_ms();
    db::users::set_name_keys(&mut tx.conn(), me.id, "d", &keys, NAME_KEYS_VERSION, now).await?;
    db::users::set_display_name(&mut tx.conn(), me.id, name.as_str()).await?;
    let user = db::users::user_ref(&mut tx.conn(), me.id)
        .await?
        .ok_or(AppError::NotFound)?;
    // Everyone who may see the name: friends, people sharing a conversation, the other party of
    // a pending request, and me.
    let mut audience = db::conversations::contact_ids(&mut tx.conn(), me.id).await?;
    audience.extend(db::friends::pending_parties(&mut tx.conn(), me.id).await?);
    audience.push(me.id);
    record(&mut tx, Event::ProfileUpdated { user }, audience).await?;
    commit(cx, tx).await
}

/// Changes my password after checking the current one; every other login of mine ends (their
/// sessions fail the auth-hash check, their streams close). Returns the new user row so the
/// caller can renew this session.
#[tracing::instrument(skip_all, fields(user_id = me.id))]
pub async fn change_password(
    cx: &Ctx<'_>,
    me: &UserRef,
    keep_login_id: u64,
    current: &Password,
    new: &Password,
) -> AppResult<UserRow> {
    let row = {
        let mut rc = cx.db.read().await?;
        db::users::by_id(&mut rc.conn(), me.id).await?
    }
    .ok_or(AppError::NotFound)?;
    if !cx.hasher.verify(current, Some(&row.password_hash)).await? {
        return Err(AppError::Invalid(FieldErrors::one(
            "current_password",
            "That is not your current password.",
        )));
    }
    let hash = cx.hasher.hash(new).await?;
    let mut tx = cx.db.begin().await?;
    db::users::set_password_hash(&mut tx.conn(), me.id, &hash).await?;
    record(
        &mut tx,
        Event::PasswordChanged {
            user_id: me.id,
            keep_login_id,
        },
        vec![me.id],
    )
    .await?;
    commit(cx, tx).await?;
    Ok(UserRow {
        password_hash: hash,
        ..row
    })
}

/// Records that a login ended, so its open streams close (on every node).
pub async fn logged_out(cx: &Ctx<'_>, user_id: i64, login_id: u64) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    record(
        &mut tx,
        Event::SessionEnded { user_id, login_id },
        vec![user_id],
    )
    .await?;
    commit(cx, tx).await
}

/// `parley admin create-user`: an account made by the operator (whatever the registration mode).
pub async fn create_user(
    db: &db::Db,
    hasher: &crate::auth::password::Hasher,
    username: &crate::domain::Username,
    password: &Password,
    admin: bool,
) -> AppResult<i64> {
    let hash = hasher.hash(password).await?;
    let mut tx = db.begin().await?;
    let id = insert_account(&mut tx, username, &hash).await?;
    if admin {
        db::admin::set_admin(&mut tx.conn(), id, true).await?;
    }
    let action = if admin { "create admin" } else { "create user" };
    super::admin::audit(
        &mut tx,
        super::admin::Actor::Cli,
        action,
        Some((id, username.as_str())),
        "",
    )
    .await?;
    tx.commit().await?;
    Ok(id)
}

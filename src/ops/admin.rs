//! `parley admin`: account management from the server's machine, straight on the database, so
//! it works whether the server is stopped or running. Each command writes its change and a
//! pending entry in the admin log; a running server acts on that entry within a second or two
//! (closes a deactivated user's streams, updates open admin pages; see `chat::admin`).

use anyhow::{Context, bail};

use crate::auth::password::Hasher;
use crate::chat::admin::{self as uc, Actor};
use crate::config::{AdminCommand, Config};
use crate::db::{self, Db};
use crate::domain::{Password, Username};
use crate::error::AppError;

/// Runs one admin command; returns what to print.
pub async fn run(
    config: &Config,
    cmd: AdminCommand,
    stdin_password: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    let (db, _store) = crate::app::connect_and_migrate(config).await?;
    let out = match cmd {
        AdminCommand::CreateUser { username, admin } => {
            let name = Username::parse("username", &username).map_err(explain)?;
            let raw = stdin_password()?;
            let password =
                Password::parse_new("password", raw, &[name.as_str()]).map_err(explain)?;
            let hasher = Hasher::new(1).await?;
            let id = crate::chat::accounts::create_user(&db, &hasher, &name, &password, admin)
                .await
                .map_err(app)?;
            let role = if admin { "administrator" } else { "user" };
            format!("created {role} @{} (id {id})", name.as_str())
        }
        AdminCommand::Promote { username } => {
            let id = user_id(&db, &username).await?;
            uc::set_admin(None, &db, Actor::Cli, id, true)
                .await
                .map_err(app)?;
            format!("@{} is an administrator", username.to_lowercase())
        }
        AdminCommand::Demote { username } => {
            let id = user_id(&db, &username).await?;
            uc::set_admin(None, &db, Actor::Cli, id, false)
                .await
                .map_err(app)?;
            format!("@{} is no longer an administrator", username.to_lowercase())
        }
        AdminCommand::ResetPassword { username } => {
            let id = user_id(&db, &username).await?;
            let (token, name) = uc::issue_reset(None, &db, Actor::Cli, id)
                .await
                .map_err(app)?;
            format!(
                "{}/reset/{token}\n(one use, valid 24 hours: pass it on to @{name} privately)",
                config.public_url()
            )
        }
        AdminCommand::Deactivate { username } => {
            let id = user_id(&db, &username).await?;
            uc::set_active(None, &db, Actor::Cli, id, false)
                .await
                .map_err(app)?;
            format!("@{} is deactivated", username.to_lowercase())
        }
        AdminCommand::Reactivate { username } => {
            let id = user_id(&db, &username).await?;
            uc::set_active(None, &db, Actor::Cli, id, true)
                .await
                .map_err(app)?;
            format!("@{} can log in again", username.to_lowercase())
        }
    };
    db.close().await;
    Ok(out)
}

async fn user_id(db: &Db, username: &str) -> anyhow::Result<i64> {
    let name = Username::parse("username", username).map_err(explain)?;
    let mut rc = db.read().await?;
    match db::users::by_username(&mut rc.conn(), name.as_str()).await? {
        Some(u) => Ok(u.id),
        None => bail!("no user @{}", name.as_str()),
    }
}

fn explain(e: crate::domain::FieldErrors) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn app(e: AppError) -> anyhow::Error {
    match e {
        AppError::Invalid(f) => anyhow::anyhow!("{f}"),
        AppError::Conflict(m) => anyhow::anyhow!("{m}"),
        AppError::NotFound => anyhow::anyhow!("no such user"),
        other => anyhow::Error::new(other).context("the database refused"),
    }
}

/// The first line of standard input, without its line ending.
pub fn read_password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

//! The settings page: display name and password.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::Form;
use super::layout;
use crate::auth::{AuthSession, User};
use crate::chat;
use crate::domain::{DisplayName, FieldErrors, Password};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::views::{PushDevicesView, SettingsPage, render};
use crate::web::login::CurrentUser;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/settings", get(edit).post(update))
        .route("/settings/password", post(update_password))
}

#[derive(Deserialize)]
struct Saved {
    saved: Option<String>,
}

async fn page(
    state: &AppState,
    me: &CurrentUser,
    status: StatusCode,
    display_name: String,
    errors: FieldErrors,
    notice: Option<String>,
) -> AppResult<Response> {
    let layout = layout(state, me).await?;
    let devices = {
        let mut rc = state.db.read().await?;
        chat::push::devices(&mut rc.conn(), me.id()).await?
    };
    Ok(render(
        status,
        &SettingsPage {
            layout,
            display_name,
            errors,
            notice,
            push_devices: PushDevicesView::new(&devices),
            vapid_key: state.vapid.public_key.clone(),
        },
    ))
}

// GET /settings
async fn edit(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<Saved>,
) -> AppResult<Response> {
    let notice = match q.saved.as_deref() {
        Some("profile") => Some("Saved.".to_owned()),
        Some("password") => {
            Some("Password changed. You were logged out everywhere else.".to_owned())
        }
        Some("push-on") => Some("Push is on for this device.".to_owned()),
        Some("push-off") => Some("Push is off for that device.".to_owned()),
        _ => None,
    };
    let name = me.user.display_name.clone();
    page(
        &state,
        &me,
        StatusCode::OK,
        name,
        FieldErrors::default(),
        notice,
    )
    .await
}

#[derive(Deserialize)]
struct ProfileForm {
    #[serde(default)]
    display_name: String,
}

// POST /settings
async fn update(
    State(state): State<AppState>,
    me: CurrentUser,
    Form(form): Form<ProfileForm>,
) -> AppResult<Response> {
    let result = match DisplayName::parse("display_name", &form.display_name) {
        Ok(name) => chat::accounts::set_display_name(&state.cx(), &me.user, &name).await,
        Err(errors) => Err(AppError::Invalid(errors)),
    };
    match result {
        Ok(()) => Ok(Redirect::to("/settings?saved=profile").into_response()),
        Err(e) => {
            // Broken rules, or a name that is (or looks like) someone else's: the form again.
            let (status, errors) = e.form_errors()?;
            page(&state, &me, status, form.display_name, errors, None).await
        }
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

// POST /settings/password
async fn update_password(
    State(state): State<AppState>,
    me: CurrentUser,
    mut auth: AuthSession,
    Form(form): Form<PasswordForm>,
) -> AppResult<Response> {
    let mut errors = FieldErrors::default();
    let current = errors.check(Password::parse_existing(
        "current_password",
        form.current_password,
    ));
    let new = errors.check(Password::parse_new(
        "new_password",
        form.new_password,
        &[&me.user.username, &me.user.display_name],
    ));
    let name = me.user.display_name.clone();
    let result = match (current, new) {
        (Some(current), Some(new)) => {
            chat::accounts::change_password(&state.cx(), &me.user, me.login_id, &current, &new)
                .await
        }
        _ => Err(AppError::Invalid(errors)),
    };
    let row = match result {
        Ok(row) => row,
        Err(AppError::Invalid(errors)) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return page(&state, &me, status, name, errors, None).await;
        }
        Err(e) => return Err(e),
    };
    // This login stays: store the new auth hash in it, under a fresh session id.
    auth.session
        .cycle_id()
        .await
        .map_err(|e| anyhow::anyhow!("session: {e}"))?;
    auth.login(&User::from(row))
        .await
        .map_err(|e| anyhow::anyhow!("login: {e}"))?;
    Ok(Redirect::to("/settings?saved=password").into_response())
}

//! The admin pages: users (list, search, deactivate, reactivate, promote, demote, reset links)
//! with the admin log, and who may register. Every route answers 404 to anyone but an admin, GET
//! and POST alike, before reading its input.

use axum::Router;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::{Form, Path};
use super::layout;
use crate::chat::admin::{self as uc, Actor, Registration};
use crate::db;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::views::admin::{
    AdminResetPage, AdminSettingsPage, AdminUserView, AdminUsersPage, AuditView, InviteFormView,
    InviteView, qr_svg,
};
use crate::views::{dom, render};
use crate::web::login::CurrentUser;

/// Users per page.
const PAGE: i64 = 50;
/// Log entries shown.
const LOG: i64 = 100;
/// Invites shown on the admin page.
const INVITES: i64 = 200;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(settings))
        .route("/admin/registration", post(set_registration))
        .route("/admin/users", get(users))
        .route("/admin/users/{id}/{action}", post(act))
}

/// A logged-in administrator; anyone else logged in gets 404 (anonymous: the login page).
pub struct AdminUser(pub CurrentUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let me = CurrentUser::from_request_parts(parts, state).await?;
        if me.is_admin {
            Ok(AdminUser(me))
        } else {
            Err(AppError::NotFound)
        }
    }
}

#[derive(Deserialize)]
struct UsersQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<i64>,
}

fn users_link(q: &str, page: i64) -> String {
    let mut s = format!("/admin/users?page={page}");
    if !q.is_empty() {
        s.push_str("&q=");
        s.push_str(&urlencode(q));
    }
    s
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn users_page(
    state: &AppState,
    me: &CurrentUser,
    q: &str,
    page: i64,
    error: Option<String>,
) -> AppResult<AdminUsersPage> {
    let layout = layout(state, me).await?;
    let q = q.trim().chars().take(64).collect::<String>();
    let page = page.max(1);
    let mut rc = state.db.read().await?;
    let total = db::admin::count_users(&mut rc.conn(), &q).await?;
    let rows = db::admin::list_users(&mut rc.conn(), &q, (page - 1) * PAGE, PAGE).await?;
    let audit = db::admin::recent_audit(&mut rc.conn(), LOG).await?;
    let list_id = if q.is_empty() && page == 1 {
        dom::containers::ADMIN_USERS.to_owned()
    } else {
        dom::admin_users_page(page, !q.is_empty())
    };
    Ok(AdminUsersPage {
        layout,
        rows: rows
            .into_iter()
            .map(|r| AdminUserView::new(&uc::admin_user_data(r)))
            .collect(),
        list_id,
        prev: (page > 1).then(|| users_link(&q, page - 1)),
        next: (page * PAGE < total).then(|| users_link(&q, page + 1)),
        page,
        total,
        audit: audit
            .iter()
            .map(|a| AuditView::new(&uc::audit_data(a)))
            .collect(),
        q,
        error,
    })
}

// GET /admin/users
async fn users(
    State(state): State<AppState>,
    AdminUser(me): AdminUser,
    Query(query): Query<UsersQuery>,
) -> AppResult<Response> {
    let page = users_page(&state, &me, &query.q, query.page.unwrap_or(1), None).await?;
    Ok(render(StatusCode::OK, &page))
}

// POST /admin/users/{id}/{action}: deactivate, reactivate, promote, demote, reset
#[tracing::instrument(skip_all, fields(user_id = me.id(), target = id))]
async fn act(
    State(state): State<AppState>,
    AdminUser(me): AdminUser,
    Path((id, action)): Path<(i64, String)>,
) -> AppResult<Response> {
    let cx = state.cx();
    let actor = Actor::Admin(&me.user);
    let done = match action.as_str() {
        "deactivate" => uc::set_active(Some(&cx), &state.db, actor, id, false).await,
        "reactivate" => uc::set_active(Some(&cx), &state.db, actor, id, true).await,
        "promote" => uc::set_admin(Some(&cx), &state.db, actor, id, true).await,
        "demote" => uc::set_admin(Some(&cx), &state.db, actor, id, false).await,
        "reset" => {
            let (token, username) = uc::issue_reset(Some(&cx), &state.db, actor, id).await?;
            let url = format!("{}/reset/{token}", state.config.public_url());
            let page = AdminResetPage {
                layout: layout(&state, &me).await?,
                username,
                qr: qr_svg(&url),
                url,
            };
            return Ok(render(StatusCode::OK, &page));
        }
        _ => return Err(AppError::NotFound),
    };
    match done {
        Ok(()) => Ok(Redirect::to("/admin/users").into_response()),
        Err(AppError::Conflict(msg)) => {
            let page = users_page(&state, &me, "", 1, Some(msg)).await?;
            Ok(render(StatusCode::CONFLICT, &page))
        }
        Err(e) => Err(e),
    }
}

/// The admin settings page: registration mode and every invite.
async fn settings_page(
    state: &AppState,
    me: &CurrentUser,
    errors: crate::domain::FieldErrors,
) -> AppResult<AdminSettingsPage> {
    let layout = layout(state, me).await?;
    let mut rc = state.db.read().await?;
    let mode = uc::registration(&mut rc.conn()).await?;
    let rows = db::admin::invites(&mut rc.conn(), None, INVITES).await?;
    let now = db::now_ms();
    Ok(AdminSettingsPage {
        layout,
        mode: mode.as_str().to_owned(),
        invites: rows
            .into_iter()
            .map(|r| InviteView::new(&uc::invite_data(r, String::new()), now))
            .collect(),
        form: InviteFormView {
            back: "/admin",
            errors,
            base: state.config.public_url(),
        },
    })
}

// GET /admin
async fn settings(State(state): State<AppState>, AdminUser(me): AdminUser) -> AppResult<Response> {
    let page = settings_page(&state, &me, Default::default()).await?;
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
struct RegistrationForm {
    #[serde(default)]
    mode: String,
}

// POST /admin/registration
async fn set_registration(
    State(state): State<AppState>,
    AdminUser(me): AdminUser,
    Form(form): Form<RegistrationForm>,
) -> AppResult<Response> {
    let Some(mode) = Registration::parse(&form.mode) else {
        let errors = crate::domain::FieldErrors::one("mode", "Choose open, invite only or closed.");
        let page = settings_page(&state, &me, errors).await?;
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    uc::set_registration(&state.cx(), Actor::Admin(&me.user), mode).await?;
    Ok(Redirect::to("/admin").into_response())
}

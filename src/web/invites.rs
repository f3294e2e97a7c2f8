//! Invite links: make and revoke them (`/invites`), show one's link and QR code, and the link
//! itself (`GET /invites/{token}`), which lands on registration with the invite.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::{Form, Path};
use super::{anonymous_layout, layout};
use crate::auth::AuthSession;
use crate::chat::admin::{self as uc, InviteSpec};
use crate::db;
use crate::domain::FieldErrors;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::views::admin::{
    InviteFormView, InviteGonePage, InviteQrPage, InviteView, InvitesPage, qr_svg,
};
use crate::views::render;
use crate::web::login::CurrentUser;

/// My invites shown at most.
const MINE: i64 = 100;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/invites", get(index).post(create))
        .route("/invites/{invite}", get(show))
        .route("/invites/{invite}/qr", get(qr))
        .route("/invites/{invite}/revoke", post(revoke))
}

async fn index_page(
    state: &AppState,
    me: &CurrentUser,
    errors: FieldErrors,
) -> AppResult<InvitesPage> {
    let layout = layout(state, me).await?;
    let mut rc = state.db.read().await?;
    let mode = uc::registration(&mut rc.conn()).await?;
    let rows = db::admin::invites(&mut rc.conn(), Some(me.id()), MINE).await?;
    let now = db::now_ms();
    Ok(InvitesPage {
        layout,
        allowed: uc::may_invite(mode, me.is_admin),
        invites: rows
            .into_iter()
            .map(|r| InviteView::new(&uc::invite_data(r, me.user.display_name.clone()), now))
            .collect(),
        form: InviteFormView {
            back: "/invites",
            errors,
            base: state.config.public_url(),
        },
    })
}

// GET /invites
async fn index(State(state): State<AppState>, me: CurrentUser) -> AppResult<Response> {
    let page = index_page(&state, &me, FieldErrors::default()).await?;
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
struct InviteForm {
    #[serde(default)]
    max_uses: String,
    #[serde(default)]
    expires_hours: String,
    #[serde(default)]
    befriend: String,
}

/// An invite's terms from the form: uses 1–1000 or empty (no limit), 1 hour to a year.
fn parse_spec(f: &InviteForm) -> Result<InviteSpec, FieldErrors> {
    let bad = || FieldErrors::one("form", "Choose how often and for how long the link works.");
    let max_uses = match f.max_uses.trim() {
        "" => None,
        n => Some(
            n.parse::<i64>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(bad)?,
        ),
    };
    let hours = f
        .expires_hours
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|h| (1..=8760).contains(h))
        .ok_or_else(bad)?;
    Ok(InviteSpec {
        max_uses,
        ttl_ms: hours * 3_600_000,
        befriend: !f.befriend.is_empty(),
    })
}

// POST /invites
#[tracing::instrument(skip_all, fields(user_id = me.id()))]
async fn create(
    State(state): State<AppState>,
    me: CurrentUser,
    Form(form): Form<InviteForm>,
) -> AppResult<Response> {
    let spec = match parse_spec(&form) {
        Ok(s) => s,
        Err(errors) => {
            let page = index_page(&state, &me, errors).await?;
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    let id = uc::create_invite(&state.cx(), &me.user, me.is_admin, spec).await?;
    Ok(Redirect::to(&format!("/invites/{id}/qr")).into_response())
}

// GET /invites/{id}/qr: its creator and admins only
async fn qr(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<i64>,
) -> AppResult<Response> {
    let layout = layout(&state, &me).await?;
    let row = {
        let mut rc = state.db.read().await?;
        db::admin::invite(&mut rc.conn(), id).await?
    }
    .filter(|i| me.is_admin || i.created_by == me.id())
    .ok_or(AppError::NotFound)?;
    let invite = InviteView::new(&uc::invite_data(row, String::new()), db::now_ms());
    let url = format!("{}{}", state.config.public_url(), invite.path);
    let page = InviteQrPage {
        layout,
        qr: qr_svg(&url),
        url,
        invite,
    };
    Ok(render(StatusCode::OK, &page))
}

// POST /invites/{id}/revoke
async fn revoke(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<i64>,
) -> AppResult<Redirect> {
    uc::revoke_invite(&state.cx(), &me.user, me.is_admin, id).await?;
    Ok(Redirect::to(if me.is_admin {
        "/admin"
    } else {
        "/invites"
    }))
}

// GET /invites/{token}: registration with the invite (a link that does not work says so, 404)
async fn show(
    State(state): State<AppState>,
    auth: AuthSession,
    Path(token): Path<String>,
) -> AppResult<Response> {
    if auth.user.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    let page =
        super::sessions::register_page(&state, String::new(), FieldErrors::default(), Some(&token))
            .await?;
    if page.invite.is_none() {
        let gone = InviteGonePage {
            layout: anonymous_layout(),
            message: uc::INVITE_GONE.to_owned(),
        };
        return Ok(render(StatusCode::NOT_FOUND, &gone));
    }
    Ok(render(StatusCode::OK, &page))
}

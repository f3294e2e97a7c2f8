//! Friends and friend requests.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::{Form, Path};
use super::layout;
use crate::chat;
use crate::db;
use crate::domain::{FieldErrors, Username};
use crate::error::{AppError, AppResult};
use crate::events::RequestStatus;
use crate::state::AppState;
use crate::views::{FriendsPage, RequestView, Stamp, UserView, render};
use crate::web::login::CurrentUser;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/friends", get(index))
        .route("/friends/requests", post(create_request))
        .route("/friends/requests/{id}/accept", post(accept))
        .route("/friends/requests/{id}/reject", post(reject))
        .route("/friends/requests/{id}/cancel", post(cancel))
        .route("/friends/{user_id}/remove", post(destroy))
        .route("/friends/{user_id}/conversation", get(conversation))
}

async fn page(
    state: &AppState,
    me: &CurrentUser,
    status: StatusCode,
    username: String,
    errors: FieldErrors,
    notice: Option<String>,
) -> AppResult<Response> {
    let layout = layout(state, me).await?;
    let mut rc = state.db.read().await?;
    let friends = db::friends::friends_of(&mut rc.conn(), me.id()).await?;
    let incoming = db::friends::incoming(&mut rc.conn(), me.id()).await?;
    let outgoing = db::friends::outgoing(&mut rc.conn(), me.id()).await?;
    drop(rc);
    let request = |incoming: bool| {
        move |r: db::friends::RequestListRow| RequestView {
            id: r.id,
            incoming,
            other: UserView::new(&r.other(), false),
            at: Stamp::new(r.created_at),
        }
    };
    Ok(render(
        status,
        &FriendsPage {
            layout,
            friends: friends
                .iter()
                .map(|f| UserView::new(f, state.hub.is_online(f.id)))
                .collect(),
            incoming: incoming.into_iter().map(request(true)).collect(),
            outgoing: outgoing.into_iter().map(request(false)).collect(),
            username,
            errors,
            notice,
        },
    ))
}

#[derive(Deserialize)]
struct Notice {
    sent: Option<String>,
}

// GET /friends
async fn index(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<Notice>,
) -> AppResult<Response> {
    let notice = q
        .sent
        .and_then(|s| Username::parse("u", &s).ok())
        .map(|u| format!("Request sent to {}.", u.as_str()));
    page(
        &state,
        &me,
        StatusCode::OK,
        String::new(),
        FieldErrors::default(),
        notice,
    )
    .await
}

#[derive(Deserialize)]
struct RequestForm {
    #[serde(default)]
    username: String,
}

// POST /friends/requests
async fn create_request(
    State(state): State<AppState>,
    me: CurrentUser,
    Form(form): Form<RequestForm>,
) -> AppResult<Response> {
    let result = match Username::parse_handle("username", &form.username) {
        Ok(username) => match state.limits.friend_request(me.id()).await {
            Ok(()) => chat::friends::send_request(&state.cx(), &me.user, &username)
                .await
                .map(|_| username),
            Err(e) => Err(e),
        },
        Err(errors) => Err(AppError::Invalid(errors)),
    };
    match result {
        Ok(username) => {
            Ok(Redirect::to(&format!("/friends?sent={}", username.as_str())).into_response())
        }
        Err(e) => {
            let (status, errors) = e.form_errors()?;
            page(&state, &me, status, form.username, errors, None).await
        }
    }
}

async fn answer(
    state: AppState,
    me: CurrentUser,
    id: i64,
    status: RequestStatus,
) -> AppResult<Redirect> {
    chat::friends::answer_request(&state.cx(), &me.user, id, status).await?;
    Ok(Redirect::to("/friends"))
}

// POST /friends/requests/{id}/accept
async fn accept(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<i64>,
) -> AppResult<Redirect> {
    answer(state, me, id, RequestStatus::Accepted).await
}

// POST /friends/requests/{id}/reject
async fn reject(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<i64>,
) -> AppResult<Redirect> {
    answer(state, me, id, RequestStatus::Rejected).await
}

// POST /friends/requests/{id}/cancel
async fn cancel(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<i64>,
) -> AppResult<Redirect> {
    answer(state, me, id, RequestStatus::Cancelled).await
}

// POST /friends/{user_id}/remove
async fn destroy(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(user_id): Path<i64>,
) -> AppResult<Redirect> {
    chat::friends::unfriend(&state.cx(), &me.user, user_id).await?;
    Ok(Redirect::to("/friends"))
}

// GET /friends/{user_id}/conversation: the direct conversation with a friend.
async fn conversation(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(user_id): Path<i64>,
) -> AppResult<Redirect> {
    let mut rc = state.db.read().await?;
    let id = db::conversations::find_direct(&mut rc.conn(), me.id(), user_id)
        .await?
        .ok_or(AppError::NotFound)?;
    // Membership, not only the key: nobody reaches a pair's conversation they are not in.
    db::conversations::membership(&mut rc.conn(), id, me.id())
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Redirect::to(&format!("/conversations/{id}")))
}

//! Conversations, their members, messages and read markers.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::{Form, Path, is_fetch};
use super::layout;
use crate::auth::CurrentUser;
use crate::chat;
use crate::db::conversations::ListRow;
use crate::db::users::UserRef;
use crate::db::{self};
use crate::domain::{ClientId, FieldErrors, GroupTitle, MessageBody, Username, parse_id};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::views::{
    ComposerView, ConversationPage, ConversationRowView, ConversationsPage, MembersView,
    MessagePartial, MessageView, PreviewView, ReaderView, UserView, hue, initials, render,
    render_fragment,
};

/// Messages per page.
pub const PAGE_SIZE: i64 = 50;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/conversations", get(index).post(create))
        .route("/conversations/{id}", get(show))
        .route("/conversations/{id}/members", post(add_member))
        .route(
            "/conversations/{id}/members/{user_id}/remove",
            post(remove_member),
        )
        .route("/conversations/{id}/leave", post(leave))
        .route("/conversations/{id}/delete", post(destroy))
        .route("/conversations/{id}/messages", post(create_message))
        .route("/conversations/{id}/read", post(read))
}

fn row_view(state: &AppState, r: ListRow, current: i64) -> ConversationRowView {
    let other = match (r.other_id, r.other_username) {
        (Some(id), Some(username)) => Some(UserRef {
            id,
            username,
            display_name: r.other_display_name.unwrap_or_default(),
        }),
        _ => None,
    };
    let author = r.last_author_username.map(|u| {
        UserRef {
            id: r.last_author_id.unwrap_or(0),
            username: u,
            display_name: r.last_author_display_name.unwrap_or_default(),
        }
        .name()
        .to_owned()
    });
    let preview = PreviewView::of(
        r.id,
        author.as_deref(),
        r.last_body.as_deref(),
        r.last_activity_at,
    );
    let (title, avatar_initials, avatar_hue) = match (&r.title, &other) {
        (Some(t), _) => (t.clone(), initials(t), hue(r.id)),
        (None, Some(o)) => (o.name().to_owned(), initials(o.name()), hue(o.id)),
        (None, None) => ("(just you)".to_owned(), "?".to_owned(), 0),
    };
    ConversationRowView {
        id: r.id,
        title,
        other: other.map(|o| UserView::new(&o, state.hub.is_online(o.id))),
        initials: avatar_initials,
        hue: avatar_hue,
        preview,
        unread: if r.id == current { 0 } else { r.unread },
        current: r.id == current,
    }
}

async fn index_page(
    state: &AppState,
    me: &CurrentUser,
    status: StatusCode,
    title: String,
    chosen: Vec<String>,
    errors: FieldErrors,
) -> AppResult<Response> {
    let layout = layout(state, me).await?;
    let mut rc = state.db.read().await?;
    let rows = db::conversations::list_for(&mut rc.conn(), me.id()).await?;
    let friends = db::friends::friends_of(&mut rc.conn(), me.id()).await?;
    drop(rc);
    Ok(render(
        status,
        &ConversationsPage {
            layout,
            rows: rows.into_iter().map(|r| row_view(state, r, 0)).collect(),
            friends: friends.iter().map(|f| UserView::new(f, false)).collect(),
            title,
            chosen,
            errors,
        },
    ))
}

// GET /conversations
async fn index(State(state): State<AppState>, me: CurrentUser) -> AppResult<Response> {
    index_page(
        &state,
        &me,
        StatusCode::OK,
        String::new(),
        Vec::new(),
        FieldErrors::default(),
    )
    .await
}

/// The new-group form: `member` repeats, so it is read as pairs.
fn group_form(pairs: Vec<(String, String)>) -> (String, Vec<String>) {
    let mut title = String::new();
    let mut members = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "title" => title = v,
            "member" if !v.trim().is_empty() => members.push(v),
            _ => {}
        }
    }
    (title, members)
}

// POST /conversations
async fn create(
    State(state): State<AppState>,
    me: CurrentUser,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let (title_raw, members_raw) = group_form(pairs);
    let mut errors = FieldErrors::default();
    let title = errors.check(GroupTitle::parse("title", &title_raw));
    let mut members = Vec::new();
    for m in &members_raw {
        if let Some(u) = errors.check(Username::parse("member", m)) {
            members.push(u);
        }
    }
    let result = match title {
        Some(title) if errors.is_empty() => match state.limits.group(me.id()) {
            Ok(()) => chat::conversations::create_group(&state, &me, &title, &members).await,
            Err(e) => Err(e),
        },
        _ => Err(AppError::Invalid(errors)),
    };
    match result {
        Ok(id) => Ok(Redirect::to(&format!("/conversations/{id}")).into_response()),
        Err(e) => {
            let (status, errors) = e.form_errors()?;
            index_page(&state, &me, status, title_raw, members_raw, errors).await
        }
    }
}

#[derive(Deserialize)]
struct PageQuery {
    before: Option<String>,
}

/// Builds the conversation page. `composer` puts back a draft with its error; `errors` shows the
/// member forms' errors.
async fn show_page(
    state: &AppState,
    me: &CurrentUser,
    id: i64,
    before: Option<i64>,
    status: StatusCode,
    composer: Option<ComposerView>,
    errors: FieldErrors,
) -> AppResult<Response> {
    let layout = layout(state, me).await?;
    let mut rc = state.db.read().await?;
    let m = db::conversations::membership(&mut rc.conn(), id, me.id())
        .await?
        .ok_or(AppError::NotFound)?;
    let rows = db::conversations::list_for(&mut rc.conn(), me.id()).await?;
    let mut messages = db::messages::page(&mut rc.conn(), id, before, PAGE_SIZE + 1).await?;
    let members = db::conversations::members(&mut rc.conn(), id).await?;
    let other = members
        .iter()
        .find(|u| u.id != me.id() && m.is_direct())
        .map(|u| u.user_ref());
    let open = match &other {
        Some(o) => db::friends::are_friends(&mut rc.conn(), me.id(), o.id).await?,
        None => !m.is_direct(),
    };
    drop(rc);

    let older = if messages.len() as i64 > PAGE_SIZE {
        messages.remove(0);
        messages.first().map(|m| m.id)
    } else {
        None
    };
    // Read markers: each other member's chip sits under the newest message they have read.
    let mut readers: HashMap<i64, Vec<ReaderView>> = HashMap::new();
    for u in members.iter().filter(|u| u.id != me.id()) {
        readers
            .entry(u.last_read_message_id)
            .or_default()
            .push(ReaderView {
                conversation_id: id,
                user: UserView::new(&u.user_ref(), false),
            });
    }
    let mut views: Vec<MessageView> = Vec::with_capacity(messages.len());
    let mut prev_at = 0;
    for row in &messages {
        let mut v = MessageView::new(&chat::messages::data_of(row));
        if let Some(prev) = views.last() {
            v.new_day = prev.at.day != v.at.day;
            v.continued = !v.new_day
                && prev.author.id == v.author.id
                && row.created_at - prev_at < 5 * 60 * 1000;
        } else {
            v.new_day = true;
        }
        prev_at = row.created_at;
        v.readers = readers
            .remove(&row.id)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.user.id != row.author_id)
            .collect();
        views.push(v);
    }
    let title = match (&m.title, &other) {
        (Some(t), _) => t.clone(),
        (None, Some(o)) => o.name().to_owned(),
        (None, None) => "(just you)".to_owned(),
    };
    let members_view = (!m.is_direct()).then(|| MembersView {
        conversation_id: id,
        owner_id: m.owner_id.unwrap_or(0),
        members: members
            .iter()
            .map(|u| UserView::new(&u.user_ref(), state.hub.is_online(u.id)))
            .collect(),
        viewer_is_owner: Some(m.owner_id == Some(me.id())),
    });
    let composer = composer.unwrap_or_else(|| ComposerView::new(id, open));
    Ok(render(
        status,
        &ConversationPage {
            layout,
            rows: rows.into_iter().map(|r| row_view(state, r, id)).collect(),
            id,
            other: other.map(|o| UserView::new(&o, state.hub.is_online(o.id))),
            initials: initials(&title),
            hue: hue(id),
            title,
            messages: views,
            older,
            paged: before.is_some(),
            members: members_view,
            composer,
            errors,
        },
    ))
}

/// 404 unless `me` is a member of conversation `id`.
async fn ensure_member(state: &AppState, id: i64, me: &CurrentUser) -> AppResult<()> {
    let mut rc = state.db.read().await?;
    db::conversations::membership(&mut rc.conn(), id, me.id())
        .await?
        .map(|_| ())
        .ok_or(AppError::NotFound)
}

// GET /conversations/{id}
async fn show(
    State(state): State<AppState>,
    me: CurrentUser,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(q): Query<PageQuery>,
) -> AppResult<Response> {
    let before = match q.before.as_deref() {
        None | Some("") => None,
        Some(b) => Some(parse_id("before", b).map_err(|_| AppError::NotFound)?),
    };
    // A link on another site shows the conversation but moves nothing (no state change cross-site).
    if before.is_none() && !super::security::from_another_site(&headers) {
        // Opening the newest page reads it: the read marker moves to the newest message.
        let latest = {
            let mut rc = state.db.read().await?;
            db::conversations::membership(&mut rc.conn(), id, me.id())
                .await?
                .ok_or(AppError::NotFound)?
        };
        if let Some(last) = latest
            .last_message_id
            .filter(|l| *l > latest.last_read_message_id)
        {
            chat::messages::mark_read(&state, &me, id, last).await?;
        }
    }
    show_page(
        &state,
        &me,
        id,
        before,
        StatusCode::OK,
        None,
        FieldErrors::default(),
    )
    .await
}

/// Answers a failed member action: the form's errors on the page, 422.
async fn member_result(
    state: &AppState,
    me: &CurrentUser,
    id: i64,
    r: AppResult<()>,
    ok_to: String,
) -> AppResult<Response> {
    match r {
        Ok(()) => Ok(Redirect::to(&ok_to).into_response()),
        Err(AppError::Invalid(errors)) => {
            show_page(
                state,
                me,
                id,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                errors,
            )
            .await
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct MemberForm {
    #[serde(default)]
    username: String,
}

// POST /conversations/{id}/members
async fn add_member(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<i64>,
    Form(form): Form<MemberForm>,
) -> AppResult<Response> {
    let r = match Username::parse("username", &form.username) {
        Ok(u) => chat::conversations::add_member(&state, &me, id, &u).await,
        Err(e) => {
            // Strangers get 404 before they learn anything about their input.
            ensure_member(&state, id, &me).await?;
            Err(AppError::Invalid(e))
        }
    };
    member_result(&state, &me, id, r, format!("/conversations/{id}")).await
}

// POST /conversations/{id}/members/{user_id}/remove
async fn remove_member(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, user_id)): Path<(i64, i64)>,
) -> AppResult<Response> {
    let r = chat::conversations::remove_member(&state, &me, id, user_id).await;
    member_result(&state, &me, id, r, format!("/conversations/{id}")).await
}

// POST /conversations/{id}/leave
async fn leave(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<i64>,
) -> AppResult<Response> {
    let r = chat::conversations::leave(&state, &me, id).await;
    member_result(&state, &me, id, r, "/conversations".into()).await
}

// POST /conversations/{id}/delete
async fn destroy(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<i64>,
) -> AppResult<Response> {
    let r = chat::conversations::delete(&state, &me, id).await;
    member_result(&state, &me, id, r, "/conversations".into()).await
}

#[derive(Deserialize)]
struct MessageForm {
    #[serde(default)]
    body: String,
    client_id: Option<String>,
}

// POST /conversations/{id}/messages
async fn create_message(
    State(state): State<AppState>,
    me: CurrentUser,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<MessageForm>,
) -> AppResult<Response> {
    let fetch = is_fetch(&headers);
    let parsed = MessageBody::parse("body", &form.body)
        .and_then(|b| ClientId::parse_opt("client_id", form.client_id.as_deref()).map(|c| (b, c)));
    let result = match parsed {
        Ok((body, client_id)) => match state.limits.message(me.id()) {
            Ok(()) => chat::messages::post(&state, &me, id, &body, client_id.as_ref()).await,
            Err(e) => Err(e),
        },
        Err(errors) => {
            // Strangers get 404 before they learn anything about their input.
            ensure_member(&state, id, &me).await?;
            Err(AppError::Invalid(errors))
        }
    };
    match result {
        Ok(row) if fetch => {
            let html = render_fragment(&MessagePartial {
                message: MessageView::new(&chat::messages::data_of(&row)),
            });
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response())
        }
        Ok(_) => Ok(Redirect::to(&format!("/conversations/{id}#composer-{id}")).into_response()),
        Err(e) => {
            // A broken rule (422) or too many messages (429): the draft stays, with the reason.
            let (status, errors) = e.form_errors()?;
            if fetch {
                return Ok((
                    status,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    errors.to_string(),
                )
                    .into_response());
            }
            let composer = ComposerView {
                conversation_id: id,
                open: true,
                client_id: form
                    .client_id
                    .clone()
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(crate::views::new_client_id),
                draft: form.body.clone(),
                error: Some(errors.to_string()),
            };
            show_page(
                &state,
                &me,
                id,
                None,
                status,
                Some(composer),
                FieldErrors::default(),
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct ReadForm {
    #[serde(default)]
    message_id: String,
}

// POST /conversations/{id}/read
async fn read(
    State(state): State<AppState>,
    me: CurrentUser,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<ReadForm>,
) -> AppResult<Response> {
    let r = match parse_id("message_id", &form.message_id) {
        Ok(mid) => chat::messages::mark_read(&state, &me, id, mid)
            .await
            .map(|_| ()),
        Err(e) => {
            // Strangers get 404 before they learn anything about their input.
            ensure_member(&state, id, &me).await?;
            Err(AppError::Invalid(e))
        }
    };
    match r {
        Ok(()) if is_fetch(&headers) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(()) => Ok(Redirect::to(&format!("/conversations/{id}")).into_response()),
        Err(e) => Err(e),
    }
}

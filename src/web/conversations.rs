//! Conversations, their members, messages and read markers.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::{Form, Path, is_fetch};
use super::layout;
use super::uploads::{self, MessageForm};
use crate::chat;
use crate::db::conversations::ListRow;
use crate::db::messages::MessageRow;
use crate::db::users::UserRef;
use crate::db::{self};
use crate::domain::{ClientId, FieldErrors, GroupTitle, MessageBody, Username, parse_id};
use crate::error::{AppError, AppResult};
use crate::events::PrevMessage;
use crate::files::{Doomed, Stored};
use crate::state::AppState;
use crate::views::markup;
use crate::views::partials::one_line;
use crate::views::{
    ComposerView, ConversationPage, ConversationRowView, ConversationsPage, MembersView,
    MessagePartial, MessageView, PickView, PreviewView, ReaderView, UnreadView, UserView, dom, hue,
    initials, render, render_fragment,
};
use crate::web::login::CurrentUser;

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
        .route("/conversations/{id}/title", post(rename))
        .route("/conversations/{id}/notifications", post(notifications))
        .route("/conversations/{id}/leave", post(leave))
        .route("/conversations/{id}/delete", post(destroy))
        .route("/conversations/{id}/messages", post(create_message))
        .route("/conversations/{id}/read", post(read))
        .route("/conversations/{id}/typing", post(typing))
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
    let author = r.last_author_username.map(|u| UserRef {
        id: r.last_author_id.unwrap_or(0),
        username: u,
        display_name: r.last_author_display_name.unwrap_or_default(),
    });
    let preview = PreviewView::of(
        r.id,
        author
            .as_ref()
            .zip(r.last_body.as_deref())
            .map(|(a, b)| (a, b, r.last_kind.as_deref() == Some("note"))),
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
        unread: UnreadView {
            conversation_id: r.id,
            count: r.unread,
            mentions: r.unread_mentions,
        },
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
            picks: friends
                .iter()
                .map(|f| PickView {
                    friend: UserView::new(f, false),
                    checked: chosen.contains(&f.username),
                })
                .collect(),
            title,
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
        if let Some(u) = errors.check(Username::parse_handle("member", m)) {
            members.push(u);
        }
    }
    let result = match title {
        Some(title) if errors.is_empty() => match state.limits.group(me.id()).await {
            Ok(()) => {
                chat::conversations::create_group(&state.cx(), &me.user, &title, &members).await
            }
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
    after: Option<String>,
    reply: Option<String>,
}

/// Builds the conversation page. `composer` puts back a draft with its error; `errors` shows the
/// member forms' errors.
/// Which window of a conversation a page shows.
#[derive(Default, Clone, Copy)]
struct Window {
    /// An older page: the messages before this id.
    before: Option<i64>,
    /// A newer page: the messages after this id.
    after: Option<i64>,
    /// A message's permanent link: the page around it, with it highlighted.
    at: Option<i64>,
    /// The composer answers this message.
    reply_to: Option<i64>,
    /// My read marker before this visit: the "New messages" divider goes above the first
    /// message after it, and the page reaches back to it (up to `MAX_UNREAD_PAGE`).
    read_up_to: Option<i64>,
}

/// The most messages a newest page shows to reach back to the first unread one.
const MAX_UNREAD_PAGE: i64 = 500;

/// Messages shown on each side of the one a permanent link opens.
pub const CONTEXT: i64 = 25;

/// The messages of a window, oldest first, and where paging goes from there.
struct Loaded {
    messages: Vec<MessageRow>,
    /// Page back from this id (there are older messages).
    older: Option<i64>,
    /// Page forward after this id (there are newer messages).
    newer: Option<i64>,
    /// The message before the first (grouping).
    prev: Option<PrevMessage>,
    /// The window reaches the newest message, so new ones belong on it: the live list.
    live: bool,
}

/// Reads the messages of `window`; 404 when a permanent link names no message of `id`.
async fn load_window(
    c: &mut db::Conn<'_>,
    id: i64,
    window: Window,
    size: i64,
) -> AppResult<Loaded> {
    // A newer page and a permanent link read forward; what follows the last message they show
    // decides whether they are the live end of the conversation.
    let forward = |mut rows: Vec<MessageRow>, limit: i64| {
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let newer = if more {
            rows.last().map(|m| m.id)
        } else {
            None
        };
        (rows, newer)
    };
    if let Some(at) = window.at {
        let target = db::messages::in_conversation(c, id, at)
            .await?
            .ok_or(AppError::NotFound)?;
        let mut messages = db::messages::page(c, id, Some(at), CONTEXT + 1).await?;
        let (older, prev) = if messages.len() as i64 > CONTEXT {
            let extra = messages.remove(0);
            (
                messages.first().map(|m| m.id),
                Some(chat::messages::prev_of(&extra)),
            )
        } else {
            (None, None)
        };
        let (after, newer) = forward(
            db::messages::page_after(c, id, at, CONTEXT + 1).await?,
            CONTEXT,
        );
        messages.push(target);
        messages.extend(after);
        return Ok(Loaded {
            messages,
            older,
            newer,
            prev,
            live: newer.is_none(),
        });
    }
    if let Some(after) = window.after {
        let (messages, newer) = forward(
            db::messages::page_after(c, id, after, size + 1).await?,
            size,
        );
        let first = messages.first().map_or(after.saturating_add(1), |m| m.id);
        let prev = chat::messages::prev_message(c, id, first).await?;
        return Ok(Loaded {
            // Paging links name the page's own bound, not its first or last message, so a
            // delete on the page leaves them as a fresh load has them.
            older: prev.map(|_| after.saturating_add(1)),
            messages,
            newer,
            prev,
            live: newer.is_none(),
        });
    }
    let mut messages = db::messages::page(c, id, window.before, size + 1).await?;
    // One row more than a page tells whether there are older messages, and what the first
    // message of the page follows (grouping is decided from the pair, as live).
    let (older, prev) = if messages.len() as i64 > size {
        let extra = messages.remove(0);
        (
            messages.first().map(|m| m.id),
            Some(chat::messages::prev_of(&extra)),
        )
    } else {
        (None, None)
    };
    // An older page never takes new messages (they are newer than `before`), but links on.
    let newer = match window.before {
        Some(b) => db::messages::next_after(c, id, b.saturating_sub(1))
            .await?
            .map(|_| b.saturating_sub(1)),
        None => None,
    };
    Ok(Loaded {
        messages,
        older,
        newer,
        prev,
        live: window.before.is_none(),
    })
}

async fn show_page(
    state: &AppState,
    me: &CurrentUser,
    id: i64,
    window: Window,
    status: StatusCode,
    composer: Option<ComposerView>,
    errors: FieldErrors,
) -> AppResult<Response> {
    let layout = layout(state, me).await?;
    let mut rc = state.db.read().await?;
    let m = db::conversations::membership(&mut rc.conn(), id, me.id())
        .await?
        .ok_or(AppError::NotFound)?;
    let Window {
        before,
        after,
        at,
        reply_to,
        read_up_to,
    } = window;
    let rows = db::conversations::list_for(&mut rc.conn(), me.id()).await?;
    let size = match read_up_to {
        Some(marker) => db::messages::count_after(&mut rc.conn(), id, marker)
            .await?
            .saturating_add(5)
            .clamp(PAGE_SIZE, MAX_UNREAD_PAGE),
        None => PAGE_SIZE,
    };
    let Loaded {
        messages,
        older,
        newer,
        prev,
        live,
    } = load_window(&mut rc.conn(), id, window, size).await?;
    let members = db::conversations::members(&mut rc.conn(), id).await?;
    let other = members
        .iter()
        .find(|u| u.id != me.id() && m.is_direct())
        .map(|u| u.user_ref());
    let open = match &other {
        Some(o) => db::friends::are_friends(&mut rc.conn(), me.id(), o.id).await?,
        None => !m.is_direct(),
    };
    let data = chat::messages::hydrate(&mut rc.conn(), &messages, prev).await?;
    let reply = match reply_to {
        Some(r) => chat::messages::load(&mut rc.conn(), id, r).await?,
        None => None,
    };
    drop(rc);
    // Read markers: each member's chip sits under the newest message they have read. Mine, and
    // an author's on their own message, are there but hidden (as live.js hides them live).
    let mut readers: HashMap<i64, Vec<ReaderView>> = HashMap::new();
    for u in &members {
        readers
            .entry(u.last_read_message_id)
            .or_default()
            .push(ReaderView {
                conversation_id: id,
                user: UserView::new(&u.user_ref(), false),
                hidden: u.id == me.id(),
            });
    }
    let owner = m.owner_id == Some(me.id());
    let divider = read_up_to.and_then(|marker| {
        data.iter()
            .find(|d| d.id > marker && d.author.id != me.id() && !d.note)
            .map(|d| d.id)
    });
    let mut views: Vec<MessageView> = Vec::with_capacity(data.len());
    for d in &data {
        let mut v = MessageView::new(d);
        v.hide_edit = d.author.id != me.id();
        v.hide_delete = d.author.id != me.id() && !owner;
        v.highlight = at == Some(d.id);
        let mut rs = readers.remove(&d.id).unwrap_or_default();
        for r in &mut rs {
            r.hidden |= r.user.id == d.author.id;
        }
        rs.sort_by_key(|r| r.user.id);
        v.readers = rs;
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
    let mut composer = composer.unwrap_or_else(|| ComposerView::new(id, open));
    if let Some(r) = reply {
        composer.reply = Some((
            r.id,
            format!(
                "{}: {}",
                r.author.name(),
                one_line(&markup::plain(&r.body), 80)
            ),
        ));
    }
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
            divider,
            notify: m.notify.clone(),
            typing_id: dom::typing(id),
            // Only the list that ends with the newest message takes live appends.
            list_id: match (live, before, after, at) {
                (true, ..) => dom::messages(id),
                (false, Some(b), ..) => dom::messages_page(id, b),
                (false, None, Some(a), _) => dom::messages_after(id, a),
                (false, None, None, Some(m)) => dom::messages_at(id, m),
                (false, None, None, None) => dom::messages(id),
            },
            older,
            newer,
            paged: !live,
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
    let cursor = |v: Option<&str>, name: &'static str| match v {
        None | Some("") => Ok(None),
        Some(b) => parse_id(name, b).map(Some).map_err(|_| AppError::NotFound),
    };
    let before = cursor(q.before.as_deref(), "before")?;
    let after = cursor(q.after.as_deref(), "after")?;
    if before.is_some() && after.is_some() {
        return Err(AppError::NotFound);
    }
    let mut read_up_to = None;
    // A link on another site shows the conversation but moves nothing (no state change cross-site).
    if before.is_none() && after.is_none() && !super::security::from_another_site(&headers) {
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
            read_up_to = Some(latest.last_read_message_id);
            chat::messages::mark_read(&state.cx(), &me.user, id, last).await?;
        }
    }
    let reply_to = q.reply.as_deref().and_then(|r| r.parse::<i64>().ok());
    show_page(
        &state,
        &me,
        id,
        Window {
            before,
            after,
            at: None,
            reply_to,
            read_up_to,
        },
        StatusCode::OK,
        None,
        FieldErrors::default(),
    )
    .await
}

// GET /conversations/{id}/messages/{message_id}
/// A message's permanent link: the conversation around it, the message highlighted. Moves no
/// read marker (it may be far back in history).
pub(super) async fn permalink(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, message_id)): Path<(i64, i64)>,
) -> AppResult<Response> {
    show_page(
        &state,
        &me,
        id,
        Window {
            at: Some(message_id),
            ..Window::default()
        },
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
                Window::default(),
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
    let r = match Username::parse_handle("username", &form.username) {
        Ok(u) => chat::conversations::add_member(&state.cx(), &me.user, id, &u).await,
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
    let r = chat::conversations::remove_member(&state.cx(), &me.user, id, user_id).await;
    member_result(&state, &me, id, r, format!("/conversations/{id}")).await
}

#[derive(Deserialize)]
struct TitleForm {
    #[serde(default)]
    title: String,
}

// POST /conversations/{id}/title
async fn rename(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<i64>,
    Form(form): Form<TitleForm>,
) -> AppResult<Response> {
    let r = match GroupTitle::parse("title", &form.title) {
        Ok(t) => chat::conversations::rename(&state.cx(), &me.user, id, &t).await,
        Err(e) => {
            // Strangers get 404 before they learn anything about their input.
            ensure_member(&state, id, &me).await?;
            Err(AppError::Invalid(e))
        }
    };
    member_result(&state, &me, id, r, format!("/conversations/{id}")).await
}

#[derive(Deserialize)]
struct NotifyForm {
    #[serde(default)]
    level: String,
}

// POST /conversations/{id}/notifications
async fn notifications(
    State(state): State<AppState>,
    me: CurrentUser,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<NotifyForm>,
) -> AppResult<Response> {
    let r = match chat::conversations::NotifyLevel::parse(form.level.trim()) {
        Some(level) => chat::conversations::set_notify(&state.cx(), &me.user, id, level).await,
        None => {
            // Strangers get 404 before they learn anything about their input.
            ensure_member(&state, id, &me).await?;
            Err(AppError::invalid("level", "Choose all, mentions or mute."))
        }
    };
    if r.is_ok() && is_fetch(&headers) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    member_result(&state, &me, id, r, format!("/conversations/{id}")).await
}

// POST /conversations/{id}/leave
async fn leave(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<i64>,
) -> AppResult<Response> {
    let r = chat::conversations::leave(&state.cx(), &me.user, id).await;
    member_result(&state, &me, id, r, "/conversations".into()).await
}

// POST /conversations/{id}/delete
async fn destroy(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<i64>,
) -> AppResult<Response> {
    let r = chat::conversations::delete(&state.cx(), &me.user, id).await;
    member_result(&state, &me, id, r, "/conversations".into()).await
}

// POST /conversations/{id}/messages
//
// A url-encoded form (text only, 64 KiB at most), or `multipart/form-data` with files
// (`files`, repeated) up to the upload limit; a message with files may have no text.
async fn create_message(
    State(state): State<AppState>,
    me: CurrentUser,
    headers: HeaderMap,
    Path(id): Path<i64>,
    req: Request,
) -> AppResult<Response> {
    if !uploads::is_multipart(&headers) {
        let Form(form) = Form::<MessageForm>::from_request(req, &state).await?;
        return send_message(state, me, &headers, id, form, Vec::new()).await;
    }
    // Strangers get 404 before a byte of their upload is stored.
    ensure_member(&state, id, &me).await?;
    let limit = state.config.max_upload_bytes();
    match uploads::read(&state.files, req, limit).await {
        Ok(up) => send_message(state, me, &headers, id, up.form, up.files).await,
        Err(AppError::TooLarge) => {
            let mib = state.config.max_upload_mib;
            let errors = FieldErrors::one(
                "files",
                format!("The files are too large: at most {mib} MiB per message in all."),
            );
            let mut r = failed_send(
                &state,
                &me,
                &headers,
                id,
                MessageForm::default(),
                (StatusCode::PAYLOAD_TOO_LARGE, errors),
            )
            .await?;
            // The rest of the body may still be on its way: this connection is done.
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Ok(r)
        }
        Err(e) => {
            let failure = e.form_errors()?;
            failed_send(&state, &me, &headers, id, MessageForm::default(), failure).await
        }
    }
}

/// Posts a message (with its files, already on disk) and answers.
async fn send_message(
    state: AppState,
    me: CurrentUser,
    headers: &HeaderMap,
    id: i64,
    form: MessageForm,
    files: Vec<(Stored, Doomed)>,
) -> AppResult<Response> {
    let fetch = is_fetch(headers);
    let reply_to = match form.reply_to.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(r) => parse_id("reply_to", r).map(Some),
    };
    let body = if files.is_empty() {
        MessageBody::parse("body", &form.body)
    } else {
        MessageBody::parse_with_files("body", &form.body)
    };
    let stored: Vec<Stored> = files.iter().map(|(s, _)| s.clone()).collect();
    let parsed = body.and_then(|b| {
        ClientId::parse_opt("client_id", form.client_id.as_deref())
            .and_then(|c| reply_to.clone().map(|r| (b, c, r)))
    });
    let result = match parsed {
        Ok((body, client_id, reply_to)) => match state.limits.message(me.id()) {
            Ok(shared) => {
                chat::messages::post(
                    &state.cx(),
                    &me.user,
                    id,
                    &body,
                    client_id.as_ref(),
                    reply_to,
                    &stored,
                    shared.as_ref(),
                )
                .await
            }
            Err(e) => Err(e),
        },
        Err(errors) => {
            // Strangers get 404 before they learn anything about their input.
            ensure_member(&state, id, &me).await?;
            Err(AppError::Invalid(errors))
        }
    };
    if let Ok(message) = &result {
        keep_attached(&state, message, files).await?;
    }
    match result {
        Ok(message) if fetch => {
            let html = render_fragment(&MessagePartial {
                message: MessageView::new(&message),
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
            let failure = e.form_errors()?;
            failed_send(&state, &me, headers, id, form, failure).await
        }
    }
}

/// Keeps the files the message holds; any other (a retried send answered with the message stored
/// the first time) is deleted with its guard.
async fn keep_attached(
    state: &AppState,
    message: &crate::events::MessageData,
    files: Vec<(Stored, Doomed)>,
) -> AppResult<()> {
    if files.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = files.iter().map(|(s, _)| s.key.clone()).collect();
    let held = {
        let mut rc = state.db.read().await?;
        db::attachments::existing_keys(&mut rc.conn(), &keys).await?
    };
    tracing::debug!(
        message_id = message.id,
        files = held.len(),
        "stored attachments"
    );
    for (s, guard) in files {
        if held.contains(&s.key) {
            guard.keep();
        }
    }
    Ok(())
}

/// Answers a send that did not happen: the reason as text (fetch), or the page with the draft
/// and the reason in the composer.
async fn failed_send(
    state: &AppState,
    me: &CurrentUser,
    headers: &HeaderMap,
    id: i64,
    form: MessageForm,
    (status, errors): (StatusCode, FieldErrors),
) -> AppResult<Response> {
    if is_fetch(headers) {
        return Ok((
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            errors.to_string(),
        )
            .into_response());
    }
    let reply_to = form
        .reply_to
        .as_deref()
        .and_then(|r| r.trim().parse::<i64>().ok());
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
        reply: None,
    };
    show_page(
        state,
        me,
        id,
        Window {
            reply_to,
            ..Window::default()
        },
        status,
        Some(composer),
        FieldErrors::default(),
    )
    .await
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
        Ok(mid) => chat::messages::mark_read(&state.cx(), &me.user, id, mid)
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

// POST /conversations/{id}/typing
async fn typing(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<i64>,
) -> AppResult<Response> {
    let members = {
        let mut rc = state.db.read().await?;
        db::conversations::membership(&mut rc.conn(), id, me.id())
            .await?
            .ok_or(AppError::NotFound)?;
        db::conversations::member_ids(&mut rc.conn(), id).await?
    };
    crate::live::typing(&state.hub, &state.db, id, &me.user, &members).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

//! One message: edit (a page without JS, inline with JS), delete (with a confirmation), react.
//! Posting and reading markers live with the conversation (`web::conversations`).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::{Form, Path, is_fetch};
use super::layout;
use crate::chat;
use crate::db;
use crate::domain::{FieldErrors, MessageBody};
use crate::error::{AppError, AppResult};
use crate::events::MessageData;
use crate::state::AppState;
use crate::views::markup::is_emoji;
use crate::views::partials::one_line;
use crate::views::{
    MessageDeletePage, MessageEditPage, MessagePartial, MessageView, render, render_fragment,
};
use crate::web::login::CurrentUser;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/conversations/{id}/messages/{message_id}",
            get(super::conversations::permalink).post(update),
        )
        .route("/conversations/{id}/messages/{message_id}/edit", get(edit))
        .route(
            "/conversations/{id}/messages/{message_id}/delete",
            get(confirm_destroy).post(destroy),
        )
        .route(
            "/conversations/{id}/messages/{message_id}/reactions",
            post(react),
        )
}

/// The message if I can see it (member of its conversation); 404 otherwise.
async fn visible(
    state: &AppState,
    me: &CurrentUser,
    id: i64,
    message_id: i64,
) -> AppResult<MessageData> {
    let mut rc = state.db.read().await?;
    db::conversations::membership(&mut rc.conn(), id, me.id())
        .await?
        .ok_or(AppError::NotFound)?;
    chat::messages::load(&mut rc.conn(), id, message_id)
        .await?
        .ok_or(AppError::NotFound)
}

fn fragment(message: &MessageData) -> Response {
    let html = render_fragment(&MessagePartial {
        message: MessageView::new(message),
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

async fn edit_page(
    state: &AppState,
    me: &CurrentUser,
    (id, message_id): (i64, i64),
    status: StatusCode,
    body: String,
    errors: FieldErrors,
) -> AppResult<Response> {
    let layout = layout(state, me).await?;
    Ok(render(
        status,
        &MessageEditPage {
            layout,
            conversation_id: id,
            message_id,
            body,
            errors,
        },
    ))
}

// GET /conversations/{id}/messages/{message_id}/edit
async fn edit(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, message_id)): Path<(i64, i64)>,
) -> AppResult<Response> {
    let m = visible(&state, &me, id, message_id).await?;
    if m.author.id != me.id() {
        return Err(AppError::Forbidden(chat::messages::ONLY_AUTHOR_EDITS));
    }
    edit_page(
        &state,
        &me,
        (id, message_id),
        StatusCode::OK,
        m.body,
        FieldErrors::default(),
    )
    .await
}

#[derive(Deserialize)]
struct EditForm {
    #[serde(default)]
    body: String,
}

// POST /conversations/{id}/messages/{message_id}
async fn update(
    State(state): State<AppState>,
    me: CurrentUser,
    headers: HeaderMap,
    Path((id, message_id)): Path<(i64, i64)>,
    Form(form): Form<EditForm>,
) -> AppResult<Response> {
    let fetch = is_fetch(&headers);
    let parsed = match MessageBody::parse("body", &form.body) {
        // A message with files may lose its text (and so be files only, as it could be sent).
        Err(errors) if MessageBody::parse_with_files("body", &form.body).is_ok() => {
            let m = visible(&state, &me, id, message_id).await?;
            if m.attachments.is_empty() {
                Err(errors)
            } else {
                MessageBody::parse_with_files("body", &form.body)
            }
        }
        other => other,
    };
    let body = match parsed {
        Ok(b) => b,
        Err(errors) => {
            // Strangers get 404 before they learn anything about their input.
            let m = visible(&state, &me, id, message_id).await?;
            if m.author.id != me.id() {
                return Err(AppError::Forbidden(chat::messages::ONLY_AUTHOR_EDITS));
            }
            if fetch {
                // live.js gets the message as plain text (`fetch_errors_as_text`).
                return Err(AppError::Invalid(errors));
            }
            return edit_page(
                &state,
                &me,
                (id, message_id),
                StatusCode::UNPROCESSABLE_ENTITY,
                form.body,
                errors,
            )
            .await;
        }
    };
    let m = chat::messages::edit(&state.cx(), &me.user, id, message_id, &body).await?;
    if fetch {
        return Ok(fragment(&m));
    }
    Ok(Redirect::to(&format!("/conversations/{id}#message-{message_id}")).into_response())
}

// GET /conversations/{id}/messages/{message_id}/delete
async fn confirm_destroy(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, message_id)): Path<(i64, i64)>,
) -> AppResult<Response> {
    let m = visible(&state, &me, id, message_id).await?;
    let owner = {
        let mut rc = state.db.read().await?;
        db::conversations::membership(&mut rc.conn(), id, me.id())
            .await?
            .is_some_and(|c| c.owner_id == Some(me.id()))
    };
    if m.author.id != me.id() && !owner {
        return Err(AppError::Forbidden(
            chat::messages::ONLY_AUTHOR_OR_OWNER_DELETES,
        ));
    }
    let layout = layout(&state, &me).await?;
    Ok(render(
        StatusCode::OK,
        &MessageDeletePage {
            layout,
            conversation_id: id,
            message_id,
            excerpt: one_line(&m.body, 200),
        },
    ))
}

// POST /conversations/{id}/messages/{message_id}/delete
async fn destroy(
    State(state): State<AppState>,
    me: CurrentUser,
    headers: HeaderMap,
    Path((id, message_id)): Path<(i64, i64)>,
) -> AppResult<Response> {
    chat::messages::delete(&state.cx(), &me.user, id, message_id).await?;
    if is_fetch(&headers) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(Redirect::to(&format!("/conversations/{id}")).into_response())
}

/// The first emoji given: a quick button's value, or what was typed in the field.
fn chosen_emoji(pairs: &[(String, String)]) -> Result<String, FieldErrors> {
    let typed = pairs
        .iter()
        .filter(|(k, _)| k == "emoji")
        .map(|(_, v)| v.trim())
        .find(|v| !v.is_empty());
    match typed {
        Some(e) if is_emoji(e) => Ok(e.to_owned()),
        Some(_) => Err(FieldErrors::one("emoji", "React with one emoji.")),
        None => Err(FieldErrors::one("emoji", "Pick an emoji.")),
    }
}

/// Where a plain form goes back to: the page it was sent from, when that is this conversation.
fn back_to(headers: &HeaderMap, id: i64, message_id: i64) -> String {
    let here = format!("/conversations/{id}");
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find(&here).map(|i| r[i..].to_owned()))
        .filter(|p| p == &here || p.starts_with(&format!("{here}?")))
        .map(|p| {
            format!(
                "{}#message-{message_id}",
                p.split('#').next().unwrap_or(&here)
            )
        })
        .unwrap_or_else(|| format!("{here}#message-{message_id}"))
}

// POST /conversations/{id}/messages/{message_id}/reactions
async fn react(
    State(state): State<AppState>,
    me: CurrentUser,
    headers: HeaderMap,
    Path((id, message_id)): Path<(i64, i64)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let emoji = match chosen_emoji(&pairs) {
        Ok(e) => e,
        Err(errors) => {
            // Strangers get 404 before they learn anything about their input.
            visible(&state, &me, id, message_id).await?;
            return Err(AppError::Invalid(errors));
        }
    };
    let m = chat::messages::react(&state.cx(), &me.user, id, message_id, &emoji).await?;
    if is_fetch(&headers) {
        return Ok(fragment(&m));
    }
    Ok(Redirect::to(&back_to(&headers, id, message_id)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_emoji_given_counts_and_text_is_refused() {
        let p = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            chosen_emoji(&p(&[("emoji", "👍"), ("emoji", "")])).ok(),
            Some("👍".into())
        );
        assert_eq!(
            chosen_emoji(&p(&[("emoji", ""), ("emoji", " 🎉 ")])).ok(),
            Some("🎉".into())
        );
        assert!(chosen_emoji(&p(&[("emoji", "lol")])).is_err());
        assert!(chosen_emoji(&p(&[("emoji", "👍👍")])).is_err());
        assert!(chosen_emoji(&p(&[])).is_err());
    }
}

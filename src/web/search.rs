//! `GET /search`: the messages I may read that match a query, newest first, a page at a time.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::layout;
use crate::db;
use crate::db::users::UserRef;
use crate::domain::parse_id;
use crate::domain::search::SearchQuery;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::views::search::{SNIPPET_CHARS, highlight};
use crate::views::{ResultView, SearchPage, Stamp, UserView, render};
use crate::web::login::CurrentUser;

/// Results per page.
pub const PAGE_SIZE: i64 = 20;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/search", get(index))
}

#[derive(Deserialize)]
struct SearchParams {
    #[serde(default)]
    q: String,
    before: Option<String>,
}

// GET /search
#[tracing::instrument(skip_all, fields(user_id = me.id()))]
async fn index(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(params): Query<SearchParams>,
) -> AppResult<Response> {
    let mut layout = layout(&state, &me).await?;
    layout.search = params.q.clone();
    let before = match params.before.as_deref() {
        None | Some("") => None,
        Some(b) => Some(parse_id("before", b).map_err(AppError::Invalid)?),
    };
    let mut page = SearchPage {
        layout,
        q: params.q.clone(),
        searched: false,
        results: Vec::new(),
        next: None,
        paged: before.is_some(),
        notice: None,
    };
    let query = match SearchQuery::parse(&params.q) {
        Ok(q) => q,
        Err(errors) => {
            page.notice = Some(errors.to_string());
            return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
        }
    };
    if query.is_empty() {
        if !params.q.trim().is_empty() {
            page.notice =
                Some("Type a word to search for (punctuation alone finds nothing).".into());
        }
        return Ok(render(StatusCode::OK, &page));
    }
    let found = {
        state.db.catch_up_search().await?;
        let mut rc = state.db.read().await?;
        db::search::run(&mut rc.conn(), me.id(), &query, before, PAGE_SIZE + 1).await?
    };
    page.searched = true;
    if found.no_such_conversation
        && let Some(name) = &query.within
    {
        page.notice = Some(format!("None of your conversations is called “{name}”."));
    }
    let names: HashMap<i64, String> = found
        .conversations
        .iter()
        .map(|s| {
            let name = match (&s.title, &s.other_username) {
                (Some(t), _) => t.clone(),
                (None, Some(u)) => match s.other_display_name.as_deref() {
                    Some(d) if !d.is_empty() => d.to_owned(),
                    _ => u.clone(),
                },
                (None, None) => "(just you)".to_owned(),
            };
            (s.id, name)
        })
        .collect();
    let terms = query.folded_words();
    let mut hits = found.hits;
    if hits.len() as i64 > PAGE_SIZE {
        hits.truncate(PAGE_SIZE as usize);
        page.next = hits.last().map(|h| h.id);
    }
    page.results = hits
        .into_iter()
        .map(|h| ResultView {
            id: h.id,
            conversation_id: h.conversation_id,
            conversation: names.get(&h.conversation_id).cloned().unwrap_or_default(),
            author: UserView::new(
                &UserRef {
                    id: h.author_id,
                    username: h.author_username,
                    display_name: h.author_display_name,
                },
                false,
            ),
            at: Stamp::new(h.created_at),
            pieces: highlight(&h.body, &terms, SNIPPET_CHARS),
        })
        .collect();
    Ok(render(StatusCode::OK, &page))
}

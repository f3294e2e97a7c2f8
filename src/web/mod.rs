//! HTTP only: routes, layers, and handlers that parse input, call `chat::*` or read pages, and
//! answer. No SQL here and no HTML strings.

pub mod admin;
pub mod attachments;
pub mod conversations;
pub mod events;
pub mod extract;
pub mod friends;
pub mod invites;
pub mod login;
pub mod messages;
pub mod push;
pub mod search;
pub mod security;
pub mod sessions;
pub mod settings;
pub mod uploads;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::auth::AuthSession;
use crate::db;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::views::Layout;
use crate::web::login::CurrentUser;

/// The largest form body accepted.
pub const FORM_LIMIT: usize = 64 * 1024;

/// The layout of a page for `me`. Read FIRST, before the page's data, so the page's `data-after`
/// never claims an event the page does not reflect (the stream replays from there).
pub async fn layout(state: &AppState, me: &CurrentUser) -> AppResult<Layout> {
    let mut rc = state.db.read().await?;
    let after = db::events::last_id(&mut rc.conn()).await?;
    let requests = db::friends::incoming_count(&mut rc.conn(), me.id()).await?;
    let unread = db::conversations::total_unread(&mut rc.conn(), me.id()).await?;
    let prefs = db::conversations::notify_prefs(&mut rc.conn(), me.id()).await?;
    Ok(Layout {
        me: Some(me.user.clone()),
        after,
        requests,
        unread,
        bare: false,
        prefs: crate::views::NotifyPrefsView::new(&prefs),
        search: String::new(),
        admin: me.is_admin,
    })
}

/// The layout of a page for an anonymous visitor.
pub fn anonymous_layout() -> Layout {
    Layout::default()
}

// GET /
async fn root(auth: AuthSession) -> Redirect {
    if auth.user.is_some() {
        Redirect::to("/conversations")
    } else {
        Redirect::to("/login")
    }
}

/// The favicon with an unread count (live.js swaps it in; an SVG, so the CSP needs no data: URLs).
// GET /icon/{count}
async fn icon(axum::extract::Path(count): axum::extract::Path<String>) -> impl IntoResponse {
    let n: u32 = count.trim_end_matches(".svg").parse().unwrap_or(0);
    let label = if n > 99 {
        "99+".to_owned()
    } else {
        n.to_string()
    };
    let size = if label.len() > 2 { 20 } else { 28 };
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 64 64\">\
         <path fill=\"#3a5bd9\" d=\"M14 6h36a10 10 0 0 1 10 10v22a10 10 0 0 1-10 10H28l-13 10a2 2 0 0 1-3.2-1.6V48A10 10 0 0 1 4 38V16A10 10 0 0 1 14 6z\"/>\
         <circle cx=\"44\" cy=\"20\" r=\"20\" fill=\"#d93025\"/>\
         <text x=\"44\" y=\"29\" font-family=\"Arial,sans-serif\" font-weight=\"700\" font-size=\"{size}\" \
         text-anchor=\"middle\" fill=\"#fff\">{label}</text></svg>"
    );
    (
        [
            (axum::http::header::CONTENT_TYPE, "image/svg+xml"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        svg,
    )
}

// GET /healthz
async fn healthz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state.db.ping().await {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
    }
}

async fn not_found() -> Response {
    AppError::NotFound.into_response()
}

/// The static directory: as configured, else the one in the source tree (for `cargo run` from
/// elsewhere).
fn static_dir(configured: &Path) -> PathBuf {
    if configured.is_dir() {
        return configured.to_path_buf();
    }
    let built_in = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/static"));
    if built_in.is_dir() {
        built_in
    } else {
        configured.to_path_buf()
    }
}

/// live.js's `fetch` gets an error as its message in plain text, which it shows beside the form
/// it came from; a browser without JavaScript gets the page.
async fn fetch_errors_as_text(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let fetch = extract::is_fetch(req.headers());
    let resp = next.run(req).await;
    match resp.extensions().get::<crate::error::PublicMessage>() {
        Some(m) if fetch => (
            resp.status(),
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            m.0.clone(),
        )
            .into_response(),
        _ => resp,
    }
}

/// The application's routes and layers, minus sessions (added in `app`).
pub fn router(state: AppState) -> Router {
    let origin: Arc<str> = state.config.public_origin().into();
    let https = state.config.is_https();
    let assets = Router::new()
        .fallback_service(ServeDir::new(static_dir(&state.config.static_dir)))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        ));
    let mut app = Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .route("/icon/{count}", get(icon))
        .merge(sessions::routes())
        .merge(settings::routes())
        .merge(friends::routes())
        .merge(conversations::routes())
        .merge(messages::routes())
        .merge(search::routes())
        .merge(attachments::routes())
        .merge(events::routes())
        .merge(push::routes())
        .merge(admin::routes())
        .merge(invites::routes())
        .nest_service("/static", assets)
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(fetch_errors_as_text))
        .layer(axum::middleware::from_fn_with_state(
            origin,
            security::cross_origin_guard,
        ))
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
            ),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        // No window we open keeps a handle on ours, and none of theirs on us.
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ))
        // Pages carry private conversations: no cache (browser back/forward cache, shared proxy)
        // keeps them. Static assets and the stream set their own.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    if https {
        app = app.layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("strict-transport-security"),
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    app.layer(
        TraceLayer::new_for_http()
            .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
            .on_response(DefaultOnResponse::new().level(Level::INFO)),
    )
}

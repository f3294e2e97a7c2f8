//! HTTP only: routes, layers, and handlers that parse input, call `chat::*` or read pages, and
//! answer. No SQL here and no HTML strings.

pub mod conversations;
pub mod events;
pub mod extract;
pub mod friends;
pub mod security;
pub mod sessions;
pub mod settings;

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

use crate::auth::{AuthSession, CurrentUser};
use crate::db;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::views::Layout;

/// The largest form body accepted.
pub const FORM_LIMIT: usize = 64 * 1024;

/// The layout of a page for `me`. Read FIRST, before the page's data, so the page's `data-after`
/// never claims an event the page does not reflect (the stream replays from there).
pub async fn layout(state: &AppState, me: &CurrentUser) -> AppResult<Layout> {
    let mut rc = state.db.read().await?;
    let after = db::events::last_id(&mut rc.conn()).await?;
    let requests = db::friends::incoming_count(&mut rc.conn(), me.id()).await?;
    let unread = db::conversations::total_unread(&mut rc.conn(), me.id()).await?;
    Ok(Layout {
        me: Some(me.user.clone()),
        after,
        requests,
        unread,
        bare: false,
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
        .merge(sessions::routes())
        .merge(settings::routes())
        .merge(friends::routes())
        .merge(conversations::routes())
        .merge(events::routes())
        .nest_service("/static", assets)
        .fallback(not_found)
        .with_state(state)
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

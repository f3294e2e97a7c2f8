//! The installable app (manifest, service worker, offline page) and the Web Push devices of a
//! user (turn on, turn off, remove).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::anonymous_layout;
use super::extract::{Form, Path, is_fetch};
use crate::chat;
use crate::error::{AppError, AppResult};
use crate::push::{NewSubscription, device_label};
use crate::state::AppState;
use crate::views::{OfflinePage, render};
use crate::web::login::CurrentUser;

/// The service worker: offline page, push and notification clicks. Served from the root so its
/// scope covers every page.
const SERVICE_WORKER: &str = include_str!("../../static/sw.js");

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/manifest.webmanifest", get(manifest))
        .route("/sw.js", get(service_worker))
        .route("/offline", get(offline))
        .route("/push/subscriptions", post(create))
        .route("/push/subscriptions/delete", post(destroy_endpoint))
        .route("/push/subscriptions/{id}/delete", post(destroy))
}

// GET /manifest.webmanifest
async fn manifest() -> Response {
    let icon = |src: &str, size: &str, purpose: &str| serde_json::json!({ "src": src, "sizes": size, "type": "image/png", "purpose": purpose });
    let body = serde_json::json!({
        "name": "Parley",
        "short_name": "Parley",
        "description": "Chat with your friends and small teams.",
        "id": "/",
        "start_url": "/conversations",
        "scope": "/",
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": THEME_COLOR,
        "icons": [
            icon("/static/icons/icon-192.png", "192x192", "any"),
            icon("/static/icons/icon-512.png", "512x512", "any"),
            icon("/static/icons/maskable-192.png", "192x192", "maskable"),
            icon("/static/icons/maskable-512.png", "512x512", "maskable"),
        ],
    });
    (
        [
            (header::CONTENT_TYPE, "application/manifest+json"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The theme colour of the installed app (the brand blue of the icon).
pub const THEME_COLOR: &str = "#3a5bd9";

// GET /sw.js
async fn service_worker() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            // Browsers check for a new worker at most daily anyway; no-cache makes it prompt.
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::HeaderName::from_static("service-worker-allowed"),
                "/",
            ),
        ],
        SERVICE_WORKER,
    )
        .into_response()
}

// GET /offline
async fn offline() -> Response {
    let mut layout = anonymous_layout();
    layout.bare = true;
    let mut r = render(StatusCode::OK, &OfflinePage { layout });
    // The service worker keeps it (the Cache API ignores this); browsers need not.
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    r
}

#[derive(Deserialize)]
struct SubscriptionForm {
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    p256dh: String,
    #[serde(default)]
    auth: String,
}

fn done(headers: &HeaderMap, saved: &str) -> Response {
    if is_fetch(headers) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        Redirect::to(&format!("/settings?saved={saved}")).into_response()
    }
}

// POST /push/subscriptions
async fn create(
    State(state): State<AppState>,
    me: CurrentUser,
    headers: HeaderMap,
    Form(form): Form<SubscriptionForm>,
) -> AppResult<Response> {
    let sub = NewSubscription::parse(
        &form.endpoint,
        &form.p256dh,
        &form.auth,
        state.config.push_allow_insecure,
    )
    .map_err(AppError::Invalid)?;
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    chat::push::subscribe(&state.cx(), &me.user, &sub, &device_label(ua)).await?;
    Ok(done(&headers, "push-on"))
}

#[derive(Deserialize)]
struct EndpointForm {
    #[serde(default)]
    endpoint: String,
}

// POST /push/subscriptions/delete
async fn destroy_endpoint(
    State(state): State<AppState>,
    me: CurrentUser,
    headers: HeaderMap,
    Form(form): Form<EndpointForm>,
) -> AppResult<Response> {
    chat::push::remove_endpoint(&state.cx(), &me.user, form.endpoint.trim()).await?;
    Ok(done(&headers, "push-off"))
}

// POST /push/subscriptions/{id}/delete
async fn destroy(
    State(state): State<AppState>,
    me: CurrentUser,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> AppResult<Response> {
    chat::push::remove(&state.cx(), &me.user, id).await?;
    Ok(done(&headers, "push-off"))
}

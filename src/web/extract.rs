//! Extractors whose rejections are [`AppError`]s, so bad input gets our page and status.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::domain::FieldErrors;
use crate::error::AppError;

/// A url-encoded form; a malformed one is a 422 with a clear message, an oversized one a 413.
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(Form(v)),
            Err(e) => {
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    return Err(AppError::TooLarge);
                }
                Err(AppError::Invalid(FieldErrors::one(
                    "form",
                    "The form was incomplete or malformed. Reload the page and try again.",
                )))
            }
        }
    }
}

/// A path parameter; one that does not parse is a 404 (no such thing).
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|_| AppError::NotFound)
    }
}

/// True when the request came from live.js's `fetch` (answer 204 or a fragment, not a redirect).
pub fn is_fetch(headers: &axum::http::HeaderMap) -> bool {
    headers.get("x-parley-fetch").is_some()
}

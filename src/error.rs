//! One error type for the request path: each variant knows its status and renders a page.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::domain::FieldErrors;
use crate::views::ErrorPage;

/// What can go wrong while handling a request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 404: missing, or not yours to see (the two look the same on purpose).
    #[error("not found")]
    NotFound,
    /// 403: the person may see this but not do that (the message says what only whom may do).
    /// Cross-site requests are refused earlier, by `web::security`.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// 303 to `/login?next=…` (pages); 401 to live.js's `fetch` and the stream, which must not
    /// follow a redirect to the login page and take it for an answer.
    #[error("not logged in")]
    Unauthenticated {
        /// Local path to come back to.
        next: Option<String>,
        /// The request came from live.js's `fetch`.
        fetch: bool,
    },
    /// 422: the input broke a rule; forms re-render with these messages.
    #[error("invalid input: {0}")]
    Invalid(FieldErrors),
    /// 409: the thing changed under you (a request that is no longer pending).
    #[error("conflict: {0}")]
    Conflict(String),
    /// 429: too many attempts.
    #[error("too many requests")]
    TooManyRequests,
    /// 429: this user did this too often lately; forms re-render with the message and the input.
    #[error("throttled: {0}")]
    Throttled(FieldErrors),
    /// 413: the request body is over the size limit.
    #[error("request body too large")]
    TooLarge,
    /// 500: the database failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// 500: anything else.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

/// Result of the request path.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// A message refused by the rate limit (this node's or the shared one).
    pub fn message_throttled() -> AppError {
        AppError::Throttled(FieldErrors::one(
            "body",
            "You are sending messages very fast. Wait a moment, then send this one again.",
        ))
    }

    /// One field's error.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> AppError {
        AppError::Invalid(FieldErrors::one(field, message))
    }

    /// For a form that re-renders itself: the status and the messages of a broken rule (422) or of
    /// a throttled action (429); any other error is handed back.
    pub fn form_errors(self) -> Result<(StatusCode, FieldErrors), AppError> {
        match self {
            AppError::Invalid(errs) => Ok((StatusCode::UNPROCESSABLE_ENTITY, errs)),
            AppError::Throttled(errs) => Ok((StatusCode::TOO_MANY_REQUESTS, errs)),
            other => Err(other),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::TooManyRequests | AppError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Db(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the person is told.
    fn public_message(&self) -> (&'static str, String) {
        match self {
            AppError::NotFound => (
                "Not found",
                "There is nothing here, or it is not yours to see.".into(),
            ),
            AppError::Forbidden(why) => ("Not allowed", (*why).into()),
            AppError::Unauthenticated { .. } => (
                "Log in",
                "You are not logged in (or your session ended). Log in and try again.".into(),
            ),
            AppError::Invalid(errs) => ("That did not work", errs.to_string()),
            AppError::Conflict(msg) => ("Already changed", msg.clone()),
            AppError::TooManyRequests => (
                "Slow down",
                "Too many attempts. Wait a minute and try again.".into(),
            ),
            AppError::Throttled(errs) => ("Slow down", errs.to_string()),
            AppError::TooLarge => (
                "Too much at once",
                "That was too much text for one form (64 KiB at most). Go back and shorten it."
                    .into(),
            ),
            AppError::Db(_) | AppError::Internal(_) => (
                "Something went wrong",
                "Something went wrong on our side. Try again in a moment.".into(),
            ),
        }
    }
}

/// Map a unique violation to a field error (the realworld `on_unique` idiom). It keys on
/// `is_unique_violation()` because SQLite reports no constraint names.
pub trait ResultExt<T> {
    /// Turns a unique violation into `Invalid(field: message)`.
    fn on_unique(self, field: &'static str, message: &str) -> AppResult<T>;
}

impl<T, E: Into<AppError>> ResultExt<T> for Result<T, E> {
    fn on_unique(self, field: &'static str, message: &str) -> AppResult<T> {
        self.map_err(|e| match e.into() {
            AppError::Db(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                AppError::invalid(field, message)
            }
            other => other,
        })
    }
}

/// True when `next` is a local path we may redirect to (no scheme, no `//host`, no backslash).
pub fn is_local_path(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control())
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Unauthenticated { next, fetch: false } = &self {
            let to = match next.as_deref().filter(|n| is_local_path(n) && *n != "/") {
                Some(n) => format!("/login?next={}", urlencode(n)),
                None => "/login".to_owned(),
            };
            return Redirect::to(&to).into_response();
        }
        let status = self.status();
        if status.is_server_error() {
            // Logged once, here; the client sees a generic message.
            tracing::error!(error = ?self, "request failed");
        }
        let (title, message) = self.public_message();
        let mut resp = ErrorPage::new(title, message.clone()).into_response_with(status);
        resp.extensions_mut().insert(PublicMessage(message));
        resp
    }
}

/// An error's message for the person, beside its page: `web::fetch_errors_as_text` answers live.js's
/// `fetch` with it alone, so the page can show it next to the form instead of a page's source.
#[derive(Debug, Clone)]
pub struct PublicMessage(pub String);

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert!(is_local_path("/conversations/3"));
        assert!(!is_local_path("//evil.example"));
        assert!(!is_local_path("https://evil.example"));
        assert!(!is_local_path("/\\evil.example"));
        assert!(!is_local_path("evil"));
    }
}

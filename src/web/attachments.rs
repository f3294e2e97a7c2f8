//! Serving attachments, to the conversation's members only (anyone else gets the same 404 as
//! for an id that does not exist). Only images we decoded and re-encoded ourselves are served
//! inline with their type; everything else (HTML and SVG included) is an
//! `application/octet-stream` download. No file response may run script or be sniffed.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::io::ReaderStream;

use super::extract::Path;
use crate::db;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::login::CurrentUser;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/conversations/{id}/attachments/{attachment_id}", get(show))
        .route(
            "/conversations/{id}/attachments/{attachment_id}/thumbnail",
            get(thumbnail),
        )
}

/// The image types served inline (only ever stored for images we re-encoded).
const INLINE: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// A file response may not run anything, even opened on its own.
const FILE_CSP: &str = "default-src 'none'; sandbox";

// GET /conversations/{id}/attachments/{attachment_id}
async fn show(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, attachment_id)): Path<(i64, i64)>,
) -> AppResult<Response> {
    let a = readable(&state, &me, id, attachment_id).await?;
    let path = state.files.path(&a.storage_key).ok_or(AppError::NotFound)?;
    let inline = a
        .content_type
        .as_deref()
        .and_then(|t| INLINE.iter().find(|i| **i == t).copied());
    serve(&path, inline, &a.name).await
}

// GET /conversations/{id}/attachments/{attachment_id}/thumbnail
async fn thumbnail(
    State(state): State<AppState>,
    me: CurrentUser,
    Path((id, attachment_id)): Path<(i64, i64)>,
) -> AppResult<Response> {
    let a = readable(&state, &me, id, attachment_id).await?;
    let kind = a
        .thumb_type
        .as_deref()
        .and_then(|t| INLINE.iter().find(|i| **i == t).copied())
        .ok_or(AppError::NotFound)?;
    let path = state
        .files
        .thumb_path(&a.storage_key)
        .ok_or(AppError::NotFound)?;
    serve(&path, Some(kind), &a.name).await
}

async fn readable(
    state: &AppState,
    me: &CurrentUser,
    id: i64,
    attachment_id: i64,
) -> AppResult<db::attachments::AttachmentRow> {
    let mut rc = state.db.read().await?;
    db::attachments::readable(&mut rc.conn(), id, attachment_id, me.id())
        .await?
        .ok_or(AppError::NotFound)
}

/// Streams the file at `path`: inline as `inline` when that is an image type, else as a
/// download named `name`.
async fn serve(
    path: &std::path::Path,
    inline: Option<&'static str>,
    name: &str,
) -> AppResult<Response> {
    let file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        // A row whose file is gone (deleted during a backup, a lost volume): nothing to show.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(AppError::NotFound),
        Err(e) => return Err(anyhow::Error::from(e).into()),
    };
    let len = file.metadata().await.map_err(anyhow::Error::from)?.len();
    let disposition = content_disposition(
        if inline.is_some() {
            "inline"
        } else {
            "attachment"
        },
        name,
    );
    let mut r = Body::from_stream(ReaderStream::new(file)).into_response();
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(inline.unwrap_or("application/octet-stream")),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(FILE_CSP),
    );
    // Files never change under an id; a private cache may keep them a while (not shared caches).
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(r)
}

/// `inline` or `attachment` with the file name: an ASCII fallback and the exact name in
/// RFC 8187 encoding (`filename*=UTF-8''…`).
pub fn content_disposition(kind: &str, name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        // RFC 8187 attr-char: ALPHA / DIGIT / "!#$&+-.^_`|~"
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_encoded_for_the_header() {
        assert_eq!(
            content_disposition("attachment", "a b.txt"),
            "attachment; filename=\"a b.txt\"; filename*=UTF-8''a%20b.txt"
        );
        assert_eq!(
            content_disposition("inline", "é\"x;.png"),
            "inline; filename=\"__x;.png\"; filename*=UTF-8''%C3%A9%22x%3B.png"
        );
    }
}

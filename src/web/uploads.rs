//! Reading a message posted as `multipart/form-data` (the composer with files): text fields into
//! the same form the url-encoded post has, files streamed to disk chunk by chunk (never whole in
//! memory) and handed to `files::Files::store`.
//!
//! The request body is counted as it arrives: past the upload limit the read stops with 413.
//! Whatever stops a read early (limit, bad field, disconnect, disk error) drops the guards of the
//! files written so far, which deletes them. The rest of a refused body is read and thrown away
//! (up to twice the limit) so that the client, still sending, gets to read our answer.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{BodyDataStream, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, header};
use futures_util::{Stream, StreamExt};

use crate::chat::attachments::MAX_FILES;
use crate::domain::FieldErrors;
use crate::error::{AppError, AppResult};
use crate::files::{Doomed, Files, Stored};

/// The text fields of a message post (the same as the url-encoded form's).
#[derive(Debug, Default, serde::Deserialize)]
pub struct MessageForm {
    /// The text.
    #[serde(default)]
    pub body: String,
    /// Makes a retried send idempotent.
    pub client_id: Option<String>,
    /// The message this one answers.
    pub reply_to: Option<String>,
}

/// A message post with its files on disk (deleted again unless their guards are kept).
pub struct Upload {
    /// The text fields.
    pub form: MessageForm,
    /// The files, each with its guard, in upload order.
    pub files: Vec<(Stored, Doomed)>,
}

/// The most text one field of an upload may have (as for every other form).
const TEXT_LIMIT: usize = super::FORM_LIMIT;

/// True for a `multipart/form-data` request.
pub fn is_multipart(headers: &HeaderMap) -> bool {
    crate::server::is_upload(headers)
}

/// The body, shared so that what a failed read left unread can still be drained.
type Shared = Arc<Mutex<BodyDataStream>>;

/// The body as multer reads it: counted, failing once it passes the limit.
struct Capped {
    inner: Shared,
    seen: u64,
    limit: u64,
}

/// The error a body yields past the limit.
#[derive(Debug, thiserror::Error)]
#[error("the upload is over the limit")]
struct OverLimit;

impl Stream for Capped {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = {
            let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            inner.poll_next_unpin(cx)
        };
        match polled {
            Poll::Ready(Some(Ok(b))) => {
                self.seen += b.len() as u64;
                if self.seen > self.limit {
                    return Poll::Ready(Some(Err(io::Error::other(OverLimit))));
                }
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(io::Error::other(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Reads and discards up to `cap` more bytes of the body (so the client reads our answer).
async fn drain(shared: &Shared, cap: u64) {
    let mut read = 0u64;
    loop {
        let next = std::future::poll_fn(|cx| {
            let mut inner = shared.lock().unwrap_or_else(|p| p.into_inner());
            inner.poll_next_unpin(cx)
        })
        .await;
        match next {
            Some(Ok(b)) => {
                read += b.len() as u64;
                if read > cap {
                    return;
                }
            }
            _ => return,
        }
    }
}

/// A file name as shown and offered for download: its last path component, without control
/// characters, at most 200 characters; "file" when nothing is left.
pub fn clean_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let name: String = last.chars().filter(|c| !c.is_control()).take(200).collect();
    let name = name.trim().trim_start_matches('.').trim();
    if name.is_empty() {
        "file".to_owned()
    } else {
        name.to_owned()
    }
}

fn is_over_limit(e: &multer::Error) -> bool {
    use std::error::Error;
    let mut source: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<OverLimit>() {
            return true;
        }
        if let Some(io) = s.downcast_ref::<io::Error>()
            && io.get_ref().is_some_and(|i| i.is::<OverLimit>())
        {
            return true;
        }
        source = s.source();
    }
    false
}

fn multipart_error(e: multer::Error) -> AppError {
    if is_over_limit(&e) {
        return AppError::TooLarge;
    }
    tracing::debug!(error = %e, "a multipart body did not parse");
    AppError::invalid("form", "The upload was incomplete or malformed. Try again.")
}

/// Reads a message post with files from `req`; at most `limit` bytes of body in all.
pub async fn read(files: &Files, req: Request, limit: u64) -> AppResult<Upload> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| multer::parse_boundary(v).ok());
    let shared: Shared = Arc::new(Mutex::new(req.into_body().into_data_stream()));
    let result = match (boundary, declared) {
        (None, _) => Err(AppError::invalid(
            "form",
            "The upload was incomplete or malformed. Try again.",
        )),
        // Said too much up front: no need to read any of it.
        (Some(_), Some(n)) if n > limit => Err(AppError::TooLarge),
        (Some(boundary), _) => {
            let capped = Capped {
                inner: shared.clone(),
                seen: 0,
                limit,
            };
            read_fields(files, multer::Multipart::new(capped, boundary)).await
        }
    };
    if result.is_err() {
        drain(&shared, limit.saturating_mul(2)).await;
    }
    result
}

async fn read_fields(files: &Files, mut parts: multer::Multipart<'_>) -> AppResult<Upload> {
    let mut up = Upload {
        form: MessageForm::default(),
        files: Vec::new(),
    };
    while let Some(mut field) = parts.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "files" {
            let file_name = field.file_name().map(str::to_owned);
            let mut w = files.create().await.map_err(anyhow::Error::from)?;
            while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                w.write(&chunk).await.map_err(anyhow::Error::from)?;
            }
            let tmp = w.finish().await.map_err(anyhow::Error::from)?;
            // A file input with nothing chosen still sends an empty part with no name.
            if tmp.size == 0 && file_name.as_deref().unwrap_or_default().is_empty() {
                continue;
            }
            if up.files.len() >= MAX_FILES {
                return Err(AppError::Invalid(FieldErrors::one(
                    "files",
                    format!("At most {MAX_FILES} files per message."),
                )));
            }
            let stored = files
                .store(tmp, clean_name(file_name.as_deref().unwrap_or_default()))
                .await?;
            up.files.push(stored);
            continue;
        }
        let mut text = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            if text.len() + chunk.len() > TEXT_LIMIT {
                return Err(AppError::TooLarge);
            }
            text.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&text).into_owned();
        match name.as_str() {
            "body" => up.form.body = text,
            "client_id" => up.form.client_id = Some(text),
            "reply_to" => up.form.reply_to = Some(text),
            _ => {}
        }
    }
    Ok(up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_their_paths_and_controls() {
        assert_eq!(clean_name("C:\\Users\\ann\\cat.png"), "cat.png");
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(clean_name(""), "file");
        assert_eq!(clean_name(".."), "file");
        assert_eq!(clean_name(&"x".repeat(500)).chars().count(), 200);
    }
}

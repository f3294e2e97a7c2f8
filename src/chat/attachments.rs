//! The files of a message: stored with it in its transaction, described in its events.

use crate::db::attachments::{AttachmentRow, NewAttachment};
use crate::db::{self, Tx};
use crate::error::AppResult;
use crate::events::AttachmentData;
use crate::files::Stored;

/// How many files one message may carry.
pub const MAX_FILES: usize = 10;

/// Records `files` (already on disk) as message `message`'s attachments; returns them as
/// events carry them.
pub async fn attach(
    tx: &mut Tx,
    message: i64,
    files: &[Stored],
    now: i64,
) -> AppResult<Vec<AttachmentData>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<NewAttachment<'_>> = files
        .iter()
        .map(|f| NewAttachment {
            storage_key: &f.key,
            name: &f.name,
            size: i64::try_from(f.size).unwrap_or(i64::MAX),
            content_type: f.content_type,
            thumb: f.thumb.map(|(t, w, h)| (t, i64::from(w), i64::from(h))),
        })
        .collect();
    let ids = db::attachments::insert(&mut tx.conn(), message, &rows, now).await?;
    Ok(ids
        .into_iter()
        .zip(&rows)
        .map(|(id, r)| AttachmentData {
            id,
            name: r.name.to_owned(),
            size: r.size,
            image: r.content_type.is_some(),
            thumb: r.thumb.map(|(_, w, h)| (w, h)),
        })
        .collect())
}

/// What pages and frames show of a row.
pub fn data_of(a: &AttachmentRow) -> AttachmentData {
    AttachmentData {
        id: a.id,
        name: a.name.clone(),
        size: a.size,
        image: a.content_type.is_some(),
        thumb: a.thumb_width.zip(a.thumb_height),
    }
}

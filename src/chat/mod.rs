//! Use cases: the only code that changes state. Each opens ONE transaction, makes its change,
//! records what happened in the event log (reactions to those events run in the same transaction),
//! commits, and then wakes the Hub.

pub mod accounts;
pub mod admin;
pub mod attachments;
pub mod conversations;
pub mod friends;
pub mod messages;
pub mod posting;
pub mod push;
pub mod reactions;

use std::collections::VecDeque;

use crate::auth::password::Hasher;
use crate::db::conversations::Membership;
use crate::db::{self, Db, Tx};
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::live::hub::Hub;

/// What use cases work with: plain values, no HTTP types.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// The database.
    pub db: &'a Db,
    /// Woken after each commit.
    pub hub: &'a Hub,
    /// Password hashing (accounts).
    pub hasher: &'a Hasher,
    /// Attachment storage (files of deleted messages are removed after the commit).
    pub files: &'a crate::files::Files,
    /// Plain posts, combined on SQLite.
    pub posts: &'a posting::Combiner,
}

/// The conversation if I am a member; 404 otherwise, whether or not it exists.
pub async fn member_of(tx: &mut Tx, conversation: i64, me: i64) -> AppResult<Membership> {
    db::conversations::membership(&mut tx.conn(), conversation, me)
        .await?
        .ok_or(AppError::NotFound)
}

/// Metric: events appended to the log by this node (counted here; exported by `crate::metrics`).
pub const EVENTS_WRITTEN: &str = "parley_events_written_total";

/// Appends `event` to the log, then runs the reactions to it (and to what they record), all
/// inside `tx`: a consequence can never exist without its cause, or the reverse. The audience of
/// a conversation event is its conversation's members (`audience` is not needed for it, see
/// `db::events::audience_of`); for any other event it is `audience`.
pub async fn record(tx: &mut Tx, event: Event, audience: Vec<i64>) -> AppResult<()> {
    let mut queue = VecDeque::from([(event, audience)]);
    let now = db::now_ms();
    while let Some((event, audience)) = queue.pop_front() {
        let payload = serde_json::to_string(&event).map_err(anyhow::Error::from)?;
        let log = db::events::audience_of(&event, audience);
        db::events::append(tx, event.kind(), &payload, &log, now).await?;
        metrics::counter!(EVENTS_WRITTEN).increment(1);
        queue.extend(reactions::react(tx, &event).await?);
    }
    Ok(())
}

/// Commits (once its batch is durable) and tells the Hub there is news.
pub async fn commit(cx: &Ctx<'_>, tx: Tx) -> AppResult<()> {
    tx.commit().await?;
    cx.hub.wake();
    Ok(())
}

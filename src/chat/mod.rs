//! Use cases: the only code that changes state. Each opens ONE transaction, makes its change,
//! records what happened in the event log (reactions to those events run in the same transaction),
//! commits, and then wakes the Hub.

pub mod accounts;
pub mod conversations;
pub mod friends;
pub mod messages;
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
}

/// The conversation if I am a member; 404 otherwise, whether or not it exists.
pub async fn member_of(tx: &mut Tx, conversation: i64, me: i64) -> AppResult<Membership> {
    db::conversations::membership(&mut tx.conn(), conversation, me)
        .await?
        .ok_or(AppError::NotFound)
}

/// Appends `event` for `audience` to the log, then runs the reactions to it (and to what they
/// record), all inside `tx`: a consequence can never exist without its cause, or the reverse.
pub async fn record(tx: &mut Tx, event: Event, audience: Vec<i64>) -> AppResult<()> {
    let mut queue = VecDeque::from([(event, audience)]);
    let now = db::now_ms();
    let mut notified = false;
    while let Some((event, mut audience)) = queue.pop_front() {
        audience.sort_unstable();
        audience.dedup();
        let payload = serde_json::to_string(&event).map_err(anyhow::Error::from)?;
        let mut c = tx.conn();
        let id = db::events::next_id(&mut c).await?;
        db::events::append(&mut c, id, event.kind(), &payload, &audience, now).await?;
        metrics::counter!(crate::metrics::EVENTS_WRITTEN).increment(1);
        if !notified {
            db::events::notify(&mut c).await?;
            notified = true;
        }
        queue.extend(reactions::react(tx, &event).await?);
    }
    Ok(())
}

/// Commits and tells the Hub there is news.
pub async fn commit(cx: &Ctx<'_>, tx: Tx) -> AppResult<()> {
    tx.commit().await?;
    cx.hub.wake();
    Ok(())
}

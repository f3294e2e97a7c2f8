//! Reactions to events, run inside the transaction that recorded them (DESIGN.md, "How a change
//! flows"): an accepted request makes a friendship; a friendship makes (or reopens) the direct
//! conversation.

use crate::db::Tx;
use crate::error::AppResult;
use crate::events::{Event, RequestStatus};

/// The events that follow from `event`, with their audiences.
pub async fn react(tx: &mut Tx, event: &Event) -> AppResult<Vec<(Event, Vec<i64>)>> {
    match event {
        Event::FriendRequestUpdated {
            requester,
            recipient,
            status: RequestStatus::Accepted,
            ..
        } => Ok(super::friends::add_friend(tx, requester, recipient)
            .await?
            .into_iter()
            .collect()),
        Event::FriendAdded { a, b } => Ok(super::conversations::open_direct(tx, a, b)
            .await?
            .into_iter()
            .collect()),
        _ => Ok(Vec::new()),
    }
}

//! Friend requests and friendships.

use crate::db::users::UserRef;
use crate::db::{self, Tx};
use crate::domain::Username;
use crate::error::{AppError, AppResult, ResultExt};
use crate::events::{Event, RequestStatus};

use super::{Ctx, commit, record};

/// Sends a friend request to `username`.
#[tracing::instrument(skip_all, fields(user_id = me.id))]
pub async fn send_request(cx: &Ctx<'_>, me: &UserRef, username: &Username) -> AppResult<i64> {
    let mut tx = cx.db.begin().await?;
    // A deactivated account is nobody to befriend.
    let target = db::users::by_username(&mut tx.conn(), username.as_str())
        .await?
        .filter(|t| !t.is_deactivated());
    let Some(target) = target else {
        return Err(AppError::invalid(
            "username",
            format!(
                "Nobody here is called “{}”. Check the spelling.",
                username.as_str()
            ),
        ));
    };
    if target.id == me.id {
        return Err(AppError::invalid(
            "username",
            "That is you. Send the request to a friend.",
        ));
    }
    if db::friends::are_friends(&mut tx.conn(), me.id, target.id).await? {
        return Err(AppError::invalid(
            "username",
            format!("You are already friends with {}.", target.username),
        ));
    }
    if let Some(pending) = db::friends::pending_between(&mut tx.conn(), me.id, target.id).await? {
        let msg = if pending.requester_id == me.id {
            format!(
                "You already sent {} a request. Wait for an answer.",
                target.username
            )
        } else {
            format!(
                "{} already sent you a request: accept it under “Requests for you”.",
                target.username
            )
        };
        return Err(AppError::invalid("username", msg));
    }
    let now = db::now_ms();
    let id = db::friends::insert_request(&mut tx.conn(), me.id, target.id, now)
        .await
        .on_unique(
            "username",
            "There is already a pending request between you two.",
        )?;
    let audience = vec![me.id, target.id];
    let recipient = UserRef {
        id: target.id,
        username: target.username,
        display_name: target.display_name,
    };
    let recipient_pending = db::friends::incoming_count(&mut tx.conn(), recipient.id).await?;
    let event = Event::FriendRequestCreated {
        request_id: id,
        requester: me.clone(),
        recipient,
        created_at: now,
        recipient_pending,
    };
    record(&mut tx, event, audience).await?;
    commit(cx, tx).await?;
    Ok(id)
}

/// Accepts, rejects or cancels a pending request. Only the recipient accepts or rejects, only the
/// requester cancels; a non-party gets 404; a request no longer pending cannot change again, and
/// of two racing answers exactly one wins.
#[tracing::instrument(skip_all, fields(user_id = me.id, request_id))]
pub async fn answer_request(
    cx: &Ctx<'_>,
    me: &UserRef,
    request_id: i64,
    status: RequestStatus,
) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    let Some(req) = db::friends::request_for_party(&mut tx.conn(), request_id, me.id).await? else {
        return Err(AppError::NotFound);
    };
    let allowed = match status {
        RequestStatus::Accepted | RequestStatus::Rejected => req.recipient_id == me.id,
        RequestStatus::Cancelled => req.requester_id == me.id,
    };
    if !allowed {
        return Err(AppError::Forbidden(match status {
            RequestStatus::Cancelled => "Only the person who sent a friend request can cancel it.",
            _ => "Only the person a friend request was sent to can accept or reject it.",
        }));
    }
    let now = db::now_ms();
    if req.status != "pending"
        || !db::friends::resolve_request(&mut tx.conn(), request_id, status.as_str(), now).await?
    {
        return Err(AppError::Conflict(
            "This request was already answered or cancelled.".into(),
        ));
    }
    let requester = db::users::user_ref(&mut tx.conn(), req.requester_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let recipient = db::users::user_ref(&mut tx.conn(), req.recipient_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let audience = vec![requester.id, recipient.id];
    let recipient_pending = db::friends::incoming_count(&mut tx.conn(), recipient.id).await?;
    record(
        &mut tx,
        Event::FriendRequestUpdated {
            request_id,
            requester,
            recipient,
            status,
            recipient_pending,
        },
        audience,
    )
    .await?;
    commit(cx, tx).await
}

/// Reaction to an accepted request: the two become friends.
pub async fn add_friend(
    tx: &mut Tx,
    a: &UserRef,
    b: &UserRef,
) -> AppResult<Option<(Event, Vec<i64>)>> {
    db::friends::add_friendship(&mut tx.conn(), a.id, b.id, db::now_ms()).await?;
    Ok(Some((
        Event::FriendAdded {
            a: a.clone(),
            b: b.clone(),
        },
        vec![a.id, b.id],
    )))
}

/// Ends a friendship, for both. Their direct conversation stays readable but closed.
#[tracing::instrument(skip_all, fields(user_id = me.id, friend_id))]
pub async fn unfriend(cx: &Ctx<'_>, me: &UserRef, friend_id: i64) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    if !db::friends::remove_friendship(&mut tx.conn(), me.id, friend_id).await? {
        return Err(AppError::NotFound);
    }
    let other = db::users::user_ref(&mut tx.conn(), friend_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let conversation_id = db::conversations::find_direct(&mut tx.conn(), me.id, friend_id).await?;
    record(
        &mut tx,
        Event::FriendRemoved {
            a: me.clone(),
            b: other,
            conversation_id,
        },
        vec![me.id, friend_id],
    )
    .await?;
    commit(cx, tx).await
}

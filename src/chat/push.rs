//! Web Push devices: turning push on and off per browser. Every change tells the user's own
//! tabs the new list of devices (the settings page shows it).

use crate::db::users::UserRef;
use crate::db::{self, Tx};
use crate::error::{AppError, AppResult};
use crate::events::{Event, PushDevice};
use crate::push::{MAX_DEVICES, NewSubscription};

use super::{Ctx, commit, record};

/// `user`'s devices as events and pages show them.
pub async fn devices(c: &mut db::Conn<'_>, user: i64) -> AppResult<Vec<PushDevice>> {
    Ok(db::push::devices(c, user)
        .await?
        .into_iter()
        .map(|d| PushDevice {
            id: d.id,
            label: d.label,
            service: d
                .endpoint
                .parse::<axum::http::Uri>()
                .ok()
                .and_then(|u| u.host().map(str::to_owned))
                .unwrap_or_default(),
            created_at: d.created_at,
        })
        .collect())
}

async fn record_devices(tx: &mut Tx, user: i64) -> AppResult<()> {
    let devices = devices(&mut tx.conn(), user).await?;
    record(
        tx,
        Event::PushDevicesChanged {
            user_id: user,
            devices,
        },
        vec![user],
    )
    .await
}

/// Turns push on for a browser of mine (again: its keys are replaced). At most
/// [`MAX_DEVICES`] devices.
#[tracing::instrument(skip_all, fields(user_id = me.id))]
pub async fn subscribe(
    cx: &Ctx<'_>,
    me: &UserRef,
    sub: &NewSubscription,
    label: &str,
) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    if db::push::count_other(&mut tx.conn(), me.id, &sub.endpoint).await? >= MAX_DEVICES {
        return Err(AppError::invalid(
            "endpoint",
            format!(
                "Push is on for {MAX_DEVICES} devices already. Turn it off on one of them first."
            ),
        ));
    }
    db::push::subscribe(
        &mut tx.conn(),
        me.id,
        &sub.endpoint,
        &sub.p256dh,
        &sub.auth,
        label,
        db::now_ms(),
    )
    .await?;
    record_devices(&mut tx, me.id).await?;
    commit(cx, tx).await
}

/// Turns push off for my device `id`; 404 when I have no such device.
#[tracing::instrument(skip_all, fields(user_id = me.id))]
pub async fn remove(cx: &Ctx<'_>, me: &UserRef, id: i64) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    if !db::push::delete(&mut tx.conn(), me.id, id).await? {
        return Err(AppError::NotFound);
    }
    record_devices(&mut tx, me.id).await?;
    commit(cx, tx).await
}

/// Turns push off for the browser with `endpoint` (the browser asks itself); 404 when it is not
/// one of mine.
#[tracing::instrument(skip_all, fields(user_id = me.id))]
pub async fn remove_endpoint(cx: &Ctx<'_>, me: &UserRef, endpoint: &str) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    if !db::push::delete_endpoint(&mut tx.conn(), me.id, endpoint).await? {
        return Err(AppError::NotFound);
    }
    record_devices(&mut tx, me.id).await?;
    commit(cx, tx).await
}

/// The push service says subscription `id` is gone: it goes, and its owner's pages follow.
pub async fn remove_dead(cx: &Ctx<'_>, id: i64, endpoint: &str) -> AppResult<()> {
    let mut tx = cx.db.begin().await?;
    let Some(user) = db::push::delete_dead(&mut tx.conn(), id, endpoint).await? else {
        return Ok(());
    };
    record_devices(&mut tx, user).await?;
    commit(cx, tx).await
}

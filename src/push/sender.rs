//! The push sender: takes new messages from the event log, decides who gets a push, encrypts
//! and sends it. Entirely off the request and delivery paths.
//!
//! - **Feed.** A task moves a cursor shared by all nodes (`push_state`) from where it is to the
//!   newest committed event with a compare-and-set, and only then reads the messages in between
//!   (`kind = 'MessageAdded'`, in SQL): the node that wins takes those events, the others skip
//!   them. So a message is pushed by
//!   exactly one node (at most once: a node that dies after taking a batch loses it). It polls
//!   every [`POLL`]; a push may lag a message by that much. Messages older than [`TOO_OLD`]
//!   (a node that was down) are not pushed.
//! - **Queue.** Messages go to a bounded queue ([`QUEUE`]); when it is full, the message is not
//!   pushed (counted in `parley_push_dropped_total`, logged), rather than anything waiting.
//! - **Work.** Per message, at most [`CONCURRENT`] at once: the members with a device, minus the
//!   author, muted members, mentions-only members not named, and members with a live stream open
//!   anywhere (this node's Hub; on PostgreSQL also `live_streams` rows refreshed within
//!   [`STREAM_ALIVE_MS`]); then each of their devices gets the payload, encrypted for it, with a
//!   [`TIMEOUT`]. A 404 or 410 from the push service removes the subscription; any other failure
//!   is logged and dropped: no retries.

use std::sync::Arc;
use std::time::Duration;

use base64ct::{Base64UrlUnpadded, Encoding};
use futures_util::StreamExt;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use web_push_native::{Auth, WebPushBuilder, p256::PublicKey};

use super::{Payload, Vapid};
use crate::db::{self, Db};
use crate::events::{Event, MessageData};
use crate::state::AppState;

/// How often the feed looks for new messages.
pub const POLL: Duration = Duration::from_millis(500);
/// Messages waiting to be worked on; beyond it new ones are dropped (not pushed).
pub const QUEUE: usize = 256;
/// Messages worked on at once.
const CONCURRENT: usize = 8;
/// Pushes to devices of one message in flight at once.
const PER_MESSAGE: usize = 8;
/// The longest a push service may take to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Older messages are not pushed (news to nobody by then).
const TOO_OLD_MS: i64 = 10 * 60 * 1000;
/// A `live_streams` row not refreshed for this long belongs to a dead node (the presence
/// publisher refreshes every 30 s; the stream cap uses the same window).
pub const STREAM_ALIVE_MS: i64 = 95_000;
/// Messages read per query.
const BATCH: i64 = 256;

/// Pushes sent, by result (`ok`, `gone`, `failed`).
pub const PUSH_SENT: &str = "parley_push_sent_total";
/// Messages not pushed because the queue was full.
pub const PUSH_DROPPED: &str = "parley_push_dropped_total";

/// Runs the feed and the worker until shutdown.
pub async fn run(state: AppState, vapid: Arc<Vapid>, shutdown: CancellationToken) {
    let mut builder = reqwest::Client::builder();
    if !state.config.push_allow_insecure {
        // Host names only reach public addresses (endpoints are checked to be names, not IPs).
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    let client = match builder
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client for Web Push; pushes are off");
            return;
        }
    };
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::join!(
        feed(state.db.clone(), tx, shutdown.clone()),
        work(state, vapid, client, rx, shutdown),
    );
}

/// Reads the log and queues new messages this node took.
async fn feed(db: Db, tx: mpsc::Sender<MessageData>, shutdown: CancellationToken) {
    if let Err(e) = start_cursor(&db).await {
        tracing::error!(error = %e, "push cursor unavailable; pushes are off");
        return;
    }
    loop {
        let more = match take(&db, &tx).await {
            Ok(more) => more,
            Err(e) => {
                tracing::warn!(error = %e, "reading the log for pushes failed");
                false
            }
        };
        if more {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn start_cursor(db: &Db) -> sqlx::Result<()> {
    let mut tx = db.begin().await?;
    let last = db::events::last_id(&mut tx.conn()).await?;
    db::push::init_cursor(&mut tx.conn(), last, db::now_ms()).await?;
    tx.commit().await
}

/// Takes the events logged since the shared cursor, if this node wins them, and queues their
/// messages; true when another node won (look again at once).
async fn take(db: &Db, tx: &mpsc::Sender<MessageData>) -> sqlx::Result<bool> {
    let (from, to) = {
        let mut rc = db.read().await?;
        let from = db::push::cursor(&mut rc.conn()).await?;
        // Every event at or below this is committed and visible (see db::events).
        (from, db::events::last_id(&mut rc.conn()).await?)
    };
    if to <= from {
        return Ok(false);
    }
    let won = {
        let mut w = db.begin().await?;
        let won = db::push::advance_cursor(&mut w.conn(), from, to, db::now_ms()).await?;
        w.commit().await?;
        won
    };
    if !won {
        return Ok(true);
    }
    let since = db::now_ms() - TOO_OLD_MS;
    let mut lo = from;
    loop {
        let rows = {
            let mut rc = db.read().await?;
            db::push::messages_between(&mut rc.conn(), lo, to, since, BATCH).await?
        };
        for (id, payload) in &rows {
            let Ok(Event::MessageAdded { message, .. }) = serde_json::from_str::<Event>(payload)
            else {
                continue;
            };
            if message.note {
                continue;
            }
            if tx.try_send(message).is_err() {
                metrics::counter!(PUSH_DROPPED).increment(1);
                tracing::warn!(event_id = id, "push queue full; a message is not pushed");
            }
        }
        match rows.last() {
            Some((id, _)) if rows.len() as i64 == BATCH => lo = *id,
            _ => return Ok(false),
        }
    }
}

/// Works on queued messages, [`CONCURRENT`] at once.
async fn work(
    state: AppState,
    vapid: Arc<Vapid>,
    client: reqwest::Client,
    mut rx: mpsc::Receiver<MessageData>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(CONCURRENT));
    loop {
        let message = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => return,
            },
            _ = shutdown.cancelled() => return,
        };
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.cancelled() => return,
        };
        let (state, vapid, client, stop) = (
            state.clone(),
            vapid.clone(),
            client.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                r = push_message(&state, &vapid, &client, &message) => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, message_id = message.id, "pushing a message failed");
                    }
                }
                _ = stop.cancelled() => {}
            }
        });
    }
}

/// Who gets `message` pushed: members with a device, not its author, not muted, mentions-only
/// only when named, and with no stream open anywhere.
async fn push_message(
    state: &AppState,
    vapid: &Vapid,
    client: &reqwest::Client,
    message: &MessageData,
) -> anyhow::Result<()> {
    let members = {
        let mut rc = state.db.read().await?;
        db::push::recipients(&mut rc.conn(), message.conversation_id).await?
    };
    let Some(first) = members.first() else {
        return Ok(());
    };
    let payload = Payload::of(message, &first.kind, first.title.as_deref());
    let mut users: Vec<i64> = members
        .iter()
        .filter(|m| m.user_id != message.author.id)
        .filter(|m| match m.notify.as_str() {
            "mute" => false,
            "mentions" => message.mentions.iter().any(|x| x.id == m.user_id),
            _ => true,
        })
        .map(|m| m.user_id)
        .filter(|u| state.hub.stream_count(*u) == 0)
        .collect();
    if let Db::Postgres(pool) = &state.db
        && !users.is_empty()
    {
        let live = db::push::streaming(pool, &users, db::now_ms() - STREAM_ALIVE_MS).await?;
        users.retain(|u| !live.contains(u));
    }
    if users.is_empty() {
        return Ok(());
    }
    let subs = {
        let mut rc = state.db.read().await?;
        db::push::for_users(&mut rc.conn(), &users).await?
    };
    let body = serde_json::to_vec(&payload)?;
    futures_util::stream::iter(subs)
        .for_each_concurrent(PER_MESSAGE, |sub| {
            let body = body.clone();
            async move {
                match send(vapid, client, &sub, body).await {
                    Ok(Outcome::Delivered) => {
                        metrics::counter!(PUSH_SENT, "result" => "ok").increment(1);
                    }
                    Ok(Outcome::Gone) => {
                        metrics::counter!(PUSH_SENT, "result" => "gone").increment(1);
                        tracing::info!(subscription = sub.id, "push subscription gone; removed");
                        if let Err(e) =
                            crate::chat::push::remove_dead(&state.cx(), sub.id, &sub.endpoint).await
                        {
                            tracing::warn!(error = %e, "removing a dead subscription failed");
                        }
                    }
                    Err(e) => {
                        metrics::counter!(PUSH_SENT, "result" => "failed").increment(1);
                        tracing::warn!(subscription = sub.id, error = %e, "push failed; dropped");
                    }
                }
            }
        })
        .await;
    Ok(())
}

enum Outcome {
    Delivered,
    Gone,
}

/// Encrypts `body` for one device and posts it to its push service.
async fn send(
    vapid: &Vapid,
    client: &reqwest::Client,
    sub: &db::push::SubscriptionRow,
    body: Vec<u8>,
) -> anyhow::Result<Outcome> {
    let key = Base64UrlUnpadded::decode_vec(&sub.p256dh)
        .map_err(|e| anyhow::anyhow!("stored p256dh: {e}"))?;
    let auth = Base64UrlUnpadded::decode_vec(&sub.auth)
        .map_err(|e| anyhow::anyhow!("stored auth: {e}"))?;
    if auth.len() != 16 {
        anyhow::bail!("stored auth secret is not 16 bytes");
    }
    let request = WebPushBuilder::new(
        sub.endpoint.parse()?,
        PublicKey::from_sec1_bytes(&key).map_err(|e| anyhow::anyhow!("stored p256dh: {e}"))?,
        Auth::clone_from_slice(&auth),
    )
    .with_vapid(vapid.key(), &vapid.contact)
    .build(body)
    .map_err(|e| anyhow::anyhow!("encrypting: {e}"))?;
    let request = reqwest::Request::try_from(request)?;
    let status = client.execute(request).await?.status();
    match status.as_u16() {
        200..=299 => Ok(Outcome::Delivered),
        404 | 410 => Ok(Outcome::Gone),
        _ => anyhow::bail!("push service answered {status}"),
    }
}

/// Resolves push services' names to public addresses only: a name that points inside the network
/// (at the metadata service, a database…) is not connected to.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| super::is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{} has no public address", name.as_str()).into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

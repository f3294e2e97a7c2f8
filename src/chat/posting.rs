//! Plain posts on SQLite, combined: concurrent senders' messages go to the writer in ONE call
//! and one savepoint, instead of one lease and one round trip to the driver's thread each.
//!
//! With many senders the writer connection is the one serial resource, and what kept it busy
//! was not SQLite's work but the hand-offs around it: the lease passing from task to task, and
//! each call crossing to the driver's thread and back. A combining task takes every plain post
//! queued meanwhile (up to [`MAX_COMBINED`]), runs them as consecutive statements of one call —
//! each post sees the ones before it exactly as if they had run one by one — records their
//! events and joins the batch commit; each sender is answered once it is durable.
//!
//! Posts with a reply, files or mentions take the usual path (they need more statements, and a
//! failure there must roll back that post alone). So does anything unusual: a post the combined
//! call did not insert (not a member, a read-only conversation, a client id seen before) or any
//! error in the call is handed back to its sender, who runs it the usual way, which says why;
//! nothing of it was written.
//!
//! When the call opens a new batch, its `BEGIN IMMEDIATE` goes in the same call
//! ([`Db::begin_folded`]): one round trip less per commit.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::db::messages::{PostArgs, Posted};
use crate::db::users::UserRef;
use crate::db::{self, Db};
use crate::error::{AppError, AppResult};
use crate::events::{Event, MessageData, PrevMessage};
use crate::live::hub::Hub;

/// The most posts in one call (each distinct count is a statement the driver keeps prepared).
pub const MAX_COMBINED: usize = 16;

/// Posts waiting for the combining task; beyond this, senders take the usual path.
const QUEUE: usize = 1024;

/// Where plain posts go: on SQLite the combining task; on PostgreSQL, where each plain post is
/// one statement of its own, a turn per conversation ([`Turns`]).
#[derive(Clone, Default)]
pub struct Combiner {
    queue: Option<mpsc::Sender<Job>>,
    turns: Arc<Turns>,
}

/// A plain post waiting to be combined.
struct Job {
    me: UserRef,
    conversation_id: i64,
    body: String,
    client_id: Option<String>,
    done: oneshot::Sender<Outcome>,
}

/// What became of a combined post.
pub enum Outcome {
    /// Posted (durable), or refused with this error (nothing written).
    Done(Box<AppResult<MessageData>>),
    /// Not placed: run it the usual way (nothing of it was written).
    Alone,
}

impl Combiner {
    /// Starts the combining task for a SQLite database (none for PostgreSQL).
    pub fn start(db: &Db, hub: &Arc<Hub>) -> Combiner {
        if !matches!(db, Db::Sqlite { .. }) {
            return Combiner::default();
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(db.clone(), hub.clone(), rx));
        Combiner {
            queue: Some(tx),
            turns: Arc::default(),
        }
    }

    /// Waits for this node's turn to post a plain message to `conversation` (PostgreSQL).
    pub async fn turn(&self, conversation: i64) -> Turn<'_> {
        self.turns.take(conversation).await
    }

    /// Queues a plain post; None when there is no combiner or its queue is full.
    pub fn submit(
        &self,
        me: UserRef,
        conversation_id: i64,
        body: String,
        client_id: Option<String>,
    ) -> Option<oneshot::Receiver<Outcome>> {
        let q = self.queue.as_ref()?;
        let (done, rx) = oneshot::channel();
        q.try_send(Job {
            me,
            conversation_id,
            body,
            client_id,
            done,
        })
        .ok()?;
        Some(rx)
    }
}

/// On PostgreSQL, plain posts from this node to one conversation go to the database one at a
/// time, in arrival order.
///
/// Two that reached it together would race for the conversation's lock, and the loser would
/// take the general path: a transaction of several round trips that waits for the lock. Under a
/// burst every later post then finds the lock held as well, and posts queue behind those slow
/// transactions (a convoy of 15–20 ms waits at 200 posts a second to one group). Waiting here
/// costs a wake-up instead. Posts from other nodes still race in the database, which settles
/// them (`db::messages::post_pg`).
#[derive(Default)]
pub struct Turns(std::sync::Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>);

/// A conversation's turn, held until dropped.
pub struct Turn<'a> {
    turns: &'a Turns,
    conversation: i64,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Turns {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<tokio::sync::Mutex<()>>>> {
        // Every update of the map is one step: a panic elsewhere leaves it consistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn take(&self, conversation: i64) -> Turn<'_> {
        let line = self.map().entry(conversation).or_default().clone();
        let guard = line.lock_owned().await;
        Turn {
            turns: self,
            conversation,
            guard: Some(guard),
        }
    }

    /// True when no post holds or waits for a turn.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        // Every holder and waiter holds a clone: the map's alone means nobody else wants this
        // conversation's turn. (A waiter dropped just as it got the turn leaves its entry to
        // the next post there.)
        let mut map = self.turns.map();
        if map
            .get(&self.conversation)
            .is_some_and(|line| Arc::strong_count(line) == 1)
        {
            map.remove(&self.conversation);
        }
    }
}

/// Takes what else is queued, up to [`MAX_COMBINED`] in all.
fn take_more(rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>) {
    while jobs.len() < MAX_COMBINED {
        match rx.try_recv() {
            Ok(j) => jobs.push(j),
            Err(_) => break,
        }
    }
}

async fn run(db: Db, hub: Arc<Hub>, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        take_more(&mut rx, &mut jobs);
        let mut tx = match db.begin_folded().await {
            Ok(tx) => tx,
            Err(_) => {
                // Each sender meets the error (or not) on the usual path.
                alone(jobs);
                continue;
            }
        };
        // More arrived while the writer was busy: they go in the same call.
        take_more(&mut rx, &mut jobs);
        let now = db::now_ms();
        let args: Vec<PostArgs<'_>> = jobs
            .iter()
            .map(|j| PostArgs {
                conversation: j.conversation_id,
                author: j.me.id,
                body: &j.body,
                client_id: j.client_id.as_deref(),
                reply_to: None,
                now,
            })
            .collect();
        let posted = match db::messages::post_many(&mut tx, &args).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, posts = jobs.len(), "a combined post failed; posting one by one");
                // Dropping `tx` rolls the call back.
                drop(tx);
                alone(jobs);
                continue;
            }
        };
        drop(args);
        let mut settled = Vec::with_capacity(jobs.len());
        let mut later = Vec::new();
        for (job, p) in jobs.into_iter().zip(posted) {
            match p.and_then(|p| posted_message(&job, p, now)) {
                Some(m) => settled.push((job, m)),
                None => later.push(job),
            }
        }
        let mut recorded = Ok(());
        for (_, (message, author_total_unread)) in &settled {
            let event = Event::MessageAdded {
                message: message.clone(),
                author_total_unread: *author_total_unread,
                author_gone: false,
            };
            // On SQLite this only queues the event for the batch's commit.
            recorded = super::record(&mut tx, event, Vec::new()).await;
            if recorded.is_err() {
                break;
            }
        }
        if let Err(e) = recorded {
            tracing::error!(error = %e, "recording combined posts failed; posting one by one");
            drop(tx);
            alone(settled.into_iter().map(|(j, _)| j).chain(later));
            continue;
        }
        match tx.commit_in_place().await {
            Ok(()) => {
                hub.wake();
                for (job, (message, _)) in settled {
                    let _ = job.done.send(Outcome::Done(Box::new(Ok(message))));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "committing combined posts failed");
                for (job, _) in settled {
                    let err = AppError::Internal(anyhow::anyhow!("the commit failed: {e}"));
                    let _ = job.done.send(Outcome::Done(Box::new(Err(err))));
                }
            }
        }
        alone(later);
    }
}

/// Hands posts back to their senders, to run the usual way.
fn alone(jobs: impl IntoIterator<Item = Job>) {
    for job in jobs {
        let _ = job.done.send(Outcome::Alone);
    }
}

/// The message a combined post stored, and its author's badge; None if it stored nothing, for
/// the usual path to find out why (not a member, a conversation that takes no messages, or a
/// retry of a stored send).
fn posted_message(job: &Job, p: Posted, now: i64) -> Option<(MessageData, i64)> {
    let (ctx, id) = p.ctx.zip(p.id)?;
    let message = new_message(&job.me, job.conversation_id, &job.body, now, id, &ctx);
    Some((message, p.author_total_unread))
}

/// The error of a post to a direct conversation whose friendship ended.
pub(super) fn read_only() -> AppError {
    AppError::invalid(
        "body",
        "You are no longer friends, so this conversation is read-only.",
    )
}

/// The message before a new one, as its grouping needs it.
pub(super) fn prev_of(ctx: &db::messages::PostContext) -> Option<PrevMessage> {
    ctx.prev_author_id
        .zip(ctx.prev_created_at)
        .map(|(author_id, created_at)| PrevMessage {
            author_id,
            created_at,
            note: ctx.prev_kind.as_deref() == Some("note"),
        })
}

/// A message just posted, from what the post knows: no reactions, quote, mentions or files, not
/// edited.
pub(super) fn new_message(
    me: &UserRef,
    conversation_id: i64,
    body: &str,
    now: i64,
    id: i64,
    ctx: &db::messages::PostContext,
) -> MessageData {
    let prev = prev_of(ctx);
    MessageData {
        id,
        conversation_id,
        author: me.clone(),
        body: body.to_owned(),
        created_at: now,
        prev,
        edited: false,
        reply: None,
        reactions: Vec::new(),
        mentions: Vec::new(),
        note: false,
        attachments: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn turns_are_taken_in_arrival_order_per_conversation_and_leave_nothing_behind() {
        let turns = Turns::default();
        let held = turns.take(7).await;
        // Another conversation does not wait.
        let other = tokio::time::timeout(Duration::from_secs(5), turns.take(8))
            .await
            .expect("another conversation's turn at once");
        drop(other);
        // This one does, until the turn is given back.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), turns.take(7))
                .await
                .is_err()
        );
        let order = std::sync::Mutex::new(Vec::new());
        let wait = |n: u32| {
            let (turns, order) = (&turns, &order);
            async move {
                let _turn = turns.take(7).await;
                order.lock().unwrap().push(n);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let seen = &order;
        let give_back = async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            // Nobody posted while the turn was held.
            assert!(seen.lock().unwrap().is_empty());
            drop(held);
        };
        tokio::join!(wait(1), wait(2), wait(3), give_back);
        assert_eq!(*order.lock().unwrap(), vec![1, 2, 3]);
        assert!(turns.is_empty());
    }
}

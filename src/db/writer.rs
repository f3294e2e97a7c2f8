//! Group commit on SQLite: the ONE writer connection, shared by concurrent use cases.
//!
//! A use case takes the writer (a fair FIFO lease), runs inside the batch's open transaction —
//! the first use case of a batch opens it with `BEGIN IMMEDIATE` (in the call of its first
//! statement, for the post combiner), every later one runs in a `SAVEPOINT`, so a failing use
//! case rolls back alone — and hands the writer on. The batch
//! commits (one fsync, `synchronous=FULL`) when nobody is waiting for the writer or [`MAX_BATCH`]
//! use cases are in it; every use case is answered only once its batch is durable.
//!
//! Event ids come from a counter held here (this process is the only writer of the file);
//! `log_state.last_id` is written once per batch, just before the commit. New messages go into
//! the search index in chunks, behind the log (see [`INDEX_AT`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteOperation;
use tokio::sync::{Mutex, OwnedMutexGuard, mpsc, oneshot};

/// The most use cases one commit covers (bounds the wait of the first of them).
pub const MAX_BATCH: usize = 256;

/// How often, at most, the WAL is checkpointed beside the writer. A page written again and again
/// (a conversation's row, an index's upper pages) is copied into the database file once per
/// checkpoint, so every 100 ms cost ~10 % more CPU per message under load than once a second
/// (tenth session). But each checkpoint ends with a sync of the database file on the disk the
/// commits sync their WAL to, and the paced tail came in bursts a second apart, with the
/// checkpoints. Every 250 ms each copies and syncs less at once: the paced p99 was lower in six
/// pairs of six, with no fewer messages a second, once commits wrote less (docs/performance.md,
/// fifteenth session).
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// The writer's own checkpoint threshold (pages): only a backstop (see
/// [`Writer::checkpoint_beside`]). 16,384 pages of 4 KiB: a 64 MiB WAL.
pub const BACKSTOP_CHECKPOINT_PAGES: u32 = 16_384;

/// A WAL this long (frames: 16 MiB) is started again from its beginning before the next batch
/// (see `WriterState::settle`) instead of growing to the backstop, where every commit would
/// copy and sync the database file until SQLite got to restart it (docs/performance.md,
/// eleventh session).
pub const RESTART_WAL_FRAMES: i64 = 4096;

/// The checkpoint beside the writer's next wait after it found the WAL that long: under a load
/// that writes 16 MiB of WAL a second, a second's wait would reach the backstop.
pub const CHECKPOINT_SOON: std::time::Duration = std::time::Duration::from_millis(200);

/// New messages go into the search index just before a commit once this many were inserted
/// since the last time (counted by the update hook); else a while after the commit that left
/// them out ([`Writer::index_behind`]: 500 ms, `--search-index-lag-ms`), or at once before a
/// search ([`Writer::index_now`]), so a search still finds every message committed before it.
/// Indexing at every commit more than doubled what a lone post's commit wrote to the WAL (a new
/// FTS5 segment and a merge each time) and added to the writer's time per post under load
/// (docs/performance.md, fourteenth session); in chunks, one segment and one merge cover many
/// messages.
pub const INDEX_AT: usize = 128;

/// Puts messages not yet indexed into the search index: one FTS5 segment for all of them (see
/// migrations/sqlite/0012). Cheap when there are none: a seek past the last indexed id. Then
/// merges at most 64 pages of the index's segments, and only where a level holds 4 or more
/// (FTS5's `usermerge`): automerge is off (0013), since it merged in bursts of hundreds of pages
/// inside one commit.
const INDEX_NEW_MESSAGES: &str = "\
    INSERT INTO messages_fts (rowid, body, conversation_id, author_id) \
    SELECT id, body, conversation_id, author_id FROM messages \
    WHERE id > (SELECT fts_through FROM log_state WHERE singleton = 1) AND kind = 'text'; \
    INSERT INTO messages_fts (messages_fts, rank) VALUES ('merge', 64); \
    UPDATE log_state SET fts_through = m FROM (SELECT MAX(id) AS m FROM messages) \
    WHERE singleton = 1 AND fts_through < m";

/// What a use case learns about its batch's commit.
type Durable = Result<(), Arc<sqlx::Error>>;

/// The writer connection and the batch it is building.
pub struct WriterState {
    /// The connection.
    pub(crate) conn: SqliteConnection,
    /// A batch transaction is open.
    open: bool,
    /// Use cases in the open batch, waiting for its commit.
    members: Vec<oneshot::Sender<Durable>>,
    /// The last event id handed out.
    last_event: i64,
    /// The last event id written to `log_state`.
    logged_event: i64,
    /// A use case was dropped where no task could roll it back: do it before anything else.
    owed_rollback: Option<bool>,
    /// Events recorded in the open batch: written just before its commit (nothing reads them
    /// inside the transaction), then handed to the feed.
    pub(crate) pending: Vec<super::events::PendingEvent>,
    /// Where committed events go (the Hub's log reader), in commit order.
    feed: Option<mpsc::Sender<Vec<super::events::EventRow>>>,
    /// Set when the feed was full: the reader reads the log instead.
    lost: Arc<AtomicBool>,
    /// Told after each commit (before anyone in the batch is answered).
    users: Arc<UserCache>,
    /// Told after each commit: the WAL has grown (see [`Writer::checkpoint_beside`]).
    checkpoint: Option<mpsc::Sender<()>>,
    /// Set beside the writer when the WAL has grown long: copy the rest before the next batch.
    restart_wal: Arc<AtomicBool>,
    /// Messages inserted and not yet in a committed search index (over-counted by rollbacks).
    unindexed: Arc<AtomicUsize>,
    /// What `unindexed` was when this batch last indexed: taken off it when the batch commits.
    indexed: usize,
    /// Told after a commit that left messages out of the search index ([`Writer::index_behind`]).
    indexer: Option<mpsc::Sender<()>>,
}

/// Committed events, straight from the writer, so the Hub need not read them back.
pub struct Feed {
    /// Batches in commit order.
    pub rx: mpsc::Receiver<Vec<super::events::EventRow>>,
    /// True when a batch could not be queued: read the log to catch up.
    pub lost: Arc<AtomicBool>,
}

/// Recently read users, valid while no committed write touched the `users` table since (the
/// writer's update hook says when). Saves a read per request on SQLite, where this process is
/// the only writer.
#[derive(Default)]
pub struct UserCache {
    inner: std::sync::Mutex<UserCacheInner>,
    /// Set by the update hook when a statement writes `users`.
    touched: AtomicBool,
}

struct UserCacheInner {
    generation: u64,
    users: hashlink::LruCache<i64, (u64, super::users::UserRow)>,
}

impl Default for UserCacheInner {
    fn default() -> Self {
        UserCacheInner {
            generation: 0,
            users: hashlink::LruCache::new(CACHED_USERS),
        }
    }
}

/// Users kept in memory, the least recently used going first.
const CACHED_USERS: usize = 1024;

impl UserCache {
    fn inner(&self) -> std::sync::MutexGuard<'_, UserCacheInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current generation (read before reading a user from the database).
    pub fn generation(&self) -> u64 {
        self.inner().generation
    }

    /// A user read in this generation, if any.
    pub fn get(&self, id: i64) -> Option<super::users::UserRow> {
        let mut inner = self.inner();
        let generation = inner.generation;
        inner
            .users
            .get(&id)
            .filter(|(g, _)| *g == generation)
            .map(|(_, u)| u.clone())
    }

    /// Keeps `user`, read from the database in `generation` (unless a write committed since).
    pub fn put(&self, generation: u64, user: &super::users::UserRow) {
        let mut inner = self.inner();
        if inner.generation != generation {
            return;
        }
        inner.users.insert(user.id, (generation, user.clone()));
    }

    /// After a commit: if it wrote `users`, every cached user is stale.
    fn committed(&self) {
        if self.touched.swap(false, Ordering::SeqCst) {
            let mut inner = self.inner();
            inner.generation += 1;
            inner.users.clear();
        }
    }
}

/// The shared writer (cheap to clone).
#[derive(Clone)]
pub struct Writer {
    state: Arc<Mutex<WriterState>>,
    /// Users cached for reads (see [`UserCache`]).
    pub users: Arc<UserCache>,
    /// Tasks queued for the lease: a batch stays open while someone is waiting.
    waiting: Arc<AtomicUsize>,
    /// Messages not yet in a committed search index (see [`WriterState::unindexed`]).
    unindexed: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

/// Copies the WAL into the database file without waiting for the writer or a reader (PASSIVE), and
/// never making them wait; returns the WAL's length in frames (0 when this failed).
async fn passive_checkpoint(conn: &mut SqliteConnection) -> i64 {
    match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(conn)
        .await
    {
        Ok((_, log, done)) => {
            tracing::trace!(log, done, "checkpointed the WAL");
            log
        }
        Err(e) => {
            tracing::warn!(error = %e, "checkpointing the WAL failed");
            0
        }
    }
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> sqlx::Result<()> {
    sqlx::query(sql).execute(&mut *conn).await.map(|_| ())
}

impl Writer {
    /// Wraps the writer connection; `last_event` is the newest event id already in the log.
    pub async fn new(mut conn: SqliteConnection, last_event: i64) -> sqlx::Result<Writer> {
        let users = Arc::new(UserCache::default());
        let hook = users.clone();
        let unindexed = Arc::new(AtomicUsize::new(0));
        let inserted = unindexed.clone();
        conn.lock_handle().await?.set_update_hook(move |u| {
            if u.table == "users" {
                hook.touched.store(true, Ordering::SeqCst);
            } else if u.table == "messages" && u.operation == SqliteOperation::Insert {
                inserted.fetch_add(1, Ordering::SeqCst);
            }
        });
        Ok(Writer {
            users: users.clone(),
            unindexed: unindexed.clone(),
            state: Arc::new(Mutex::new(WriterState {
                conn,
                open: false,
                members: Vec::new(),
                last_event,
                logged_event: last_event,
                owed_rollback: None,
                pending: Vec::new(),
                feed: None,
                lost: Arc::new(AtomicBool::new(false)),
                users: users.clone(),
                checkpoint: None,
                restart_wal: Arc::new(AtomicBool::new(false)),
                unindexed,
                indexed: 0,
                indexer: None,
            })),
            waiting: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Takes the writer outside any batch (migrations, checks at start, shutdown).
    pub async fn exclusive(&self) -> OwnedMutexGuard<WriterState> {
        let mut g = self.lease().await;
        g.flush().await;
        g
    }

    /// Waits for the writer; counted as waiting meanwhile (also if the caller goes away).
    async fn lease(&self) -> OwnedMutexGuard<WriterState> {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _w = Waiting(&self.waiting);
        let mut g = self.state.clone().lock_owned().await;
        drop(_w);
        g.settle().await;
        g
    }

    /// From now on the WAL is copied into the database file by `conn`, a connection of its own,
    /// in a task beside the writer, at most every [`CHECKPOINT_EVERY`] while commits come (every
    /// [`CHECKPOINT_SOON`] while the WAL grows fast) and not at all while none do. SQLite's own checkpoint runs inside the commit that crosses its
    /// threshold, so every thousandth page or so a commit (and every use case waiting on it) also
    /// paid for copying and syncing the database file. The writer connection should keep a high
    /// `wal_autocheckpoint` as a backstop, in case this task cannot keep up (a long read holds
    /// old pages). Ends when the writer is dropped.
    pub async fn checkpoint_beside(&self, mut conn: SqliteConnection) {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let restart = {
            let mut g = self.exclusive().await;
            g.checkpoint = Some(tx);
            g.restart_wal.clone()
        };
        tokio::spawn(async move {
            let mut wait = CHECKPOINT_EVERY;
            while rx.recv().await.is_some() {
                // Commits during the wait share this checkpoint.
                tokio::time::sleep(wait).await;
                while rx.try_recv().is_ok() {}
                wait = CHECKPOINT_EVERY;
                if passive_checkpoint(&mut conn).await >= RESTART_WAL_FRAMES {
                    // Under steady commits the WAL only grows (see `WriterState::settle`). A
                    // second pass copies what was committed during the first, so the writer's
                    // own copy before its next batch is short; then the WAL starts again.
                    passive_checkpoint(&mut conn).await;
                    restart.store(true, Ordering::SeqCst);
                    // At this rate a second's wait would take the WAL to the backstop.
                    wait = CHECKPOINT_SOON;
                }
            }
        });
    }

    /// From now on, committed events also go to the returned feed.
    pub async fn feed(&self) -> Feed {
        let (tx, rx) = mpsc::channel(1024);
        let mut g = self.exclusive().await;
        g.feed = Some(tx);
        Feed {
            rx,
            lost: g.lost.clone(),
        }
    }

    /// From now on, messages a commit left out of the search index are indexed `lag` later, by
    /// a task beside the writer (those a previous run left out, too). Call after the
    /// migrations: the index must exist. Ends when the writer is dropped.
    pub async fn index_behind(&self, lag: std::time::Duration) {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        {
            let mut g = self.exclusive().await;
            let left: bool = sqlx::query_scalar(
                "SELECT COALESCE((SELECT MAX(id) FROM messages), 0) > fts_through \
                 FROM log_state WHERE singleton = 1",
            )
            .fetch_optional(&mut g.conn)
            .await
            .ok()
            .flatten()
            .unwrap_or(true);
            if left {
                self.unindexed.fetch_add(1, Ordering::SeqCst);
                let _ = tx.try_send(());
            }
            g.indexer = Some(tx);
        }
        // Weak: the task must not keep the writer (and so its own channel) alive.
        let state = Arc::downgrade(&self.state);
        let (users, waiting, unindexed) = (
            self.users.clone(),
            self.waiting.clone(),
            self.unindexed.clone(),
        );
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                // Commits during the wait share this indexing.
                tokio::time::sleep(lag).await;
                while rx.try_recv().is_ok() {}
                let Some(state) = Weak::upgrade(&state) else {
                    break;
                };
                let writer = Writer {
                    state,
                    users: users.clone(),
                    waiting: waiting.clone(),
                    unindexed: unindexed.clone(),
                };
                if let Err(e) = writer.index_now().await {
                    tracing::warn!(error = %e, "indexing new messages for search failed");
                }
            }
        });
    }

    /// Puts every committed message into the search index, if any is missing (before a search:
    /// it then finds everything committed before it began). Waits for that commit.
    pub async fn index_now(&self) -> sqlx::Result<()> {
        if self.unindexed.load(Ordering::SeqCst) == 0 {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let seen = self.unindexed.load(Ordering::SeqCst);
        exec(&mut tx.state().conn, INDEX_NEW_MESSAGES).await?;
        tx.log().indexed = seen;
        tx.commit(true).await
    }

    /// Starts a use case in the current batch (or a new one).
    pub async fn begin(&self) -> sqlx::Result<SqliteTx> {
        self.begin_with(false, false).await
    }

    /// Like [`Writer::begin`], but a savepoint is left for the caller to open together with its
    /// first statement ([`SqliteTx::take_prefix`]): one round trip less.
    pub async fn begin_deferred(&self) -> sqlx::Result<SqliteTx> {
        self.begin_with(true, false).await
    }

    /// Like [`Writer::begin_deferred`], and the `BEGIN IMMEDIATE` of a new batch is left to the
    /// caller's first statement too: one round trip less per batch. Only for a use case whose
    /// FIRST statement carries [`SqliteTx::take_prefix`] (the post combiner).
    pub async fn begin_folded(&self) -> sqlx::Result<SqliteTx> {
        self.begin_with(true, true).await
    }

    async fn begin_with(&self, defer: bool, fold: bool) -> sqlx::Result<SqliteTx> {
        let mut g = self.lease().await;
        let savepoint = g.open;
        let deferred = defer && (savepoint || fold);
        if !deferred {
            let sql = if savepoint {
                "SAVEPOINT use_case"
            } else {
                "BEGIN IMMEDIATE"
            };
            if let Err(e) = exec(&mut g.conn, sql).await {
                // The batch may hold other use cases waiting for a commit: do not strand them.
                if self.nobody_waiting() {
                    g.flush().await;
                }
                return Err(e);
            }
        }
        // A deferred BEGIN opens the batch once its statement ran (`prefix_done`).
        g.open = savepoint || !deferred;
        let mark = g.pending.len();
        Ok(SqliteTx {
            mark,
            guard: Some(g),
            writer: self.clone(),
            savepoint,
            deferred,
            unsure: false,
        })
    }

    fn nobody_waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) == 0
    }
}

impl WriterState {
    /// Pays a rollback owed by a use case dropped outside the runtime.
    async fn settle(&mut self) {
        if let Some(savepoint) = self.owed_rollback.take() {
            let mark = self.pending.len();
            self.abort(savepoint, mark).await;
        }
        if !self.open && self.restart_wal.swap(false, Ordering::SeqCst) {
            // SQLite starts the WAL again from its beginning when a write transaction begins
            // with every frame copied into the database file and no reader in the WAL. Under
            // steady commits the checkpoint beside the writer never catches up with the last
            // one, so it grew to the backstop. Here no commit can come between this copy (only
            // what was committed since that checkpoint, so short) and the next BEGIN. PASSIVE:
            // a reader still in the WAL is not waited for; the WAL then restarts next time.
            passive_checkpoint(&mut self.conn).await;
        }
    }

    /// Rolls back the current use case: its savepoint, or (the first of a batch) the transaction.
    async fn abort(&mut self, savepoint: bool, mark: usize) {
        self.pending.truncate(mark);
        if savepoint {
            if let Err(e) = exec(&mut self.conn, "ROLLBACK TO use_case").await {
                tracing::error!(error = %e, "rolling back a use case failed; dropping the batch");
                self.fail_batch(e).await;
            }
        } else {
            if let Err(e) = exec(&mut self.conn, "ROLLBACK").await {
                tracing::error!(error = %e, "rolling back failed");
            }
            self.open = false;
        }
    }

    async fn fail_batch(&mut self, e: sqlx::Error) {
        self.pending.clear();
        self.indexed = 0;
        self.users.committed();
        let _ = exec(&mut self.conn, "ROLLBACK").await;
        self.open = false;
        let e = Arc::new(e);
        for m in self.members.drain(..) {
            let _ = m.send(Err(e.clone()));
        }
    }

    /// Commits the batch and tells every use case in it.
    async fn flush(&mut self) {
        if !self.open {
            return;
        }
        // The batch's events, the log position, new messages into the search index when enough
        // have come, and the COMMIT go in one call to the driver's thread (each call is a hand-off
        // there and back). If a statement fails, those after it do not run, and the batch is
        // rolled back below.
        let unindexed = self.unindexed.load(Ordering::SeqCst);
        let index = unindexed >= INDEX_AT;
        let mut q = sqlx::QueryBuilder::new("");
        if index {
            q.push(INDEX_NEW_MESSAGES);
            q.push("; ");
        }
        let chunks = self.pending.chunks(128).count();
        for (i, chunk) in self.pending.chunks(128).enumerate() {
            q.push(
                "INSERT INTO events (id, kind, payload, conversation_id, audience, created_at) ",
            );
            q.push_values(chunk, |mut b, e| {
                b.push_bind(e.row.id)
                    .push_bind(e.kind)
                    .push_bind(e.row.payload.as_str())
                    .push_bind(e.row.conversation_id)
                    .push_bind(e.row.audience.as_str())
                    .push_bind(e.created_at);
            });
            if i + 1 < chunks {
                q.push("; ");
            }
        }
        if self.last_event > self.logged_event {
            if chunks > 0 {
                q.push("; ");
            }
            q.push("UPDATE log_state SET last_id = ")
                .push_bind(self.last_event)
                .push(" WHERE singleton = 1 AND last_id < ")
                .push_bind(self.last_event);
        }
        if chunks > 0 || self.last_event > self.logged_event {
            q.push("; ");
        }
        q.push("COMMIT");
        let committed = q.build().execute(&mut self.conn).await.map(|_| ());
        match committed {
            Ok(()) => {
                self.open = false;
                self.logged_event = self.last_event;
                self.users.committed();
                if index {
                    self.indexed = unindexed;
                }
                // Never below zero, whatever happens (the closure always answers).
                let indexed = std::mem::take(&mut self.indexed);
                let before = self
                    .unindexed
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                        Some(n.saturating_sub(indexed))
                    })
                    .unwrap_or(0);
                if !self.pending.is_empty() {
                    let events = self.pending.drain(..).map(|e| e.row).collect();
                    if let Some(feed) = &self.feed
                        && feed.try_send(events).is_err()
                    {
                        self.lost.store(true, Ordering::SeqCst);
                    }
                }
                for m in self.members.drain(..) {
                    let _ = m.send(Ok(()));
                }
                if let Some(c) = &self.checkpoint {
                    // Full: a checkpoint is already due.
                    let _ = c.try_send(());
                }
                if before > indexed
                    && let Some(i) = &self.indexer
                {
                    // Full: indexing is already due.
                    let _ = i.try_send(());
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "committing a batch failed");
                self.fail_batch(e).await;
            }
        }
    }

    /// Sets the newest event id already in the log (at start, after migrations).
    pub(crate) fn set_last_event(&mut self, id: i64) {
        self.last_event = id;
        self.logged_event = id;
    }

    /// The next event id (ids of a rolled-back use case are never reused).
    pub(crate) fn next_event_id(&mut self) -> i64 {
        self.last_event += 1;
        self.last_event
    }
}

/// One use case's part of a batch. Dropped without [`SqliteTx::commit`], it rolls back.
pub struct SqliteTx {
    guard: Option<OwnedMutexGuard<WriterState>>,
    /// Events of the batch before this use case.
    mark: usize,
    writer: Writer,
    savepoint: bool,
    /// Its savepoint is not open yet (see [`Writer::begin_deferred`]).
    deferred: bool,
    /// Statements may have run outside its savepoint: if it fails, the whole batch fails (never
    /// a rollback that would reach into the use case before it).
    unsure: bool,
}

impl SqliteTx {
    /// The writer state, for statements.
    pub(crate) fn state(&mut self) -> &mut WriterState {
        if self.deferred {
            // A statement without the savepoint: a misuse, made safe (see `unsure`).
            self.deferred = false;
            self.unsure = true;
            if !self.savepoint {
                // Without its BEGIN the statement runs on its own; the batch's COMMIT then fails
                // and says so, rather than anyone waiting for a commit that never comes.
                tracing::error!("a statement ran before its batch began");
                self.log().open = true;
            }
        }
        self.log()
    }

    /// The writer state, for bookkeeping (event ids).
    pub(crate) fn log(&mut self) -> &mut WriterState {
        match self.guard.as_mut() {
            Some(g) => g,
            // `guard` is only taken by commit and drop, which consume the value.
            None => unreachable!("a finished transaction was used"),
        }
    }

    /// SQL to run first, in the same call as the use case's first statement ("" if none); then
    /// [`SqliteTx::prefix_done`] once that statement succeeded.
    pub fn take_prefix(&mut self) -> &'static str {
        if !std::mem::take(&mut self.deferred) {
            return "";
        }
        self.unsure = true;
        if self.savepoint {
            "SAVEPOINT use_case; "
        } else {
            "BEGIN IMMEDIATE; "
        }
    }

    /// The statement that carried the prefix succeeded: the savepoint, or the batch, is open.
    pub fn prefix_done(&mut self) {
        self.unsure = false;
        if !self.savepoint {
            self.log().open = true;
        }
    }

    /// Adds this use case to its batch and waits until the batch is durable. With `spawn`, a
    /// commit it must run goes in a task of its own (see below); without, it runs here.
    pub async fn commit(mut self, spawn: bool) -> sqlx::Result<()> {
        let Some(guard) = self.guard.take() else {
            return Ok(());
        };
        let (tx, rx) = oneshot::channel();
        let mut g = guard;
        // No RELEASE: the batch's savepoints simply nest, and COMMIT keeps them all (a round trip
        // saved per use case). A later ROLLBACK TO use_case reaches the newest one only.
        g.members.push(tx);
        if self.writer.nobody_waiting() || g.members.len() >= MAX_BATCH {
            // The commit runs in its own task, so a caller that goes away (a closed connection)
            // never leaves the shared transaction half done.
            if spawn {
                tokio::spawn(async move { g.flush().await });
            } else {
                g.flush().await;
                drop(g);
            }
        } else {
            // The next use case carries the batch on.
            drop(g);
        }
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(sqlx::Error::Protocol(format!("batch commit failed: {e}"))),
            Err(_) => Err(sqlx::Error::WorkerCrashed),
        }
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        let Some(mut g) = self.guard.take() else {
            return;
        };
        let savepoint = self.savepoint;
        let mark = self.mark;
        let writer = self.writer.clone();
        let (nothing_ran, unsure) = (self.deferred, self.unsure);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if unsure {
                        let e =
                            sqlx::Error::Protocol("a use case failed outside its savepoint".into());
                        g.fail_batch(e).await;
                    } else if nothing_ran {
                        g.pending.truncate(mark);
                    } else {
                        g.abort(savepoint, mark).await;
                    }
                    if writer.nobody_waiting() {
                        g.flush().await;
                    }
                });
            }
            // No runtime (shutting down): the next holder of the writer rolls back first.
            Err(_) => {
                g.pending.truncate(mark);
                g.owed_rollback = Some(savepoint);
            }
        }
    }
}

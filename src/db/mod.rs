//! All SQL lives under this module. [`Db`] is the one handle over the two backends; every query is
//! written once, in SQL both accept, and run through [`run!`] on whichever arm is live.
//!
//! SQLite: every write (the session store's too) goes through ONE writer connection, reads through a
//! read-only pool, so a read-then-write transaction never fails with "database is locked".
//! Concurrent use cases share the writer's transaction and commit together ([`writer`]).
//! PostgreSQL: one pool; each use case commits on its own (PostgreSQL flushes concurrent commits
//! together), and the log is read commit-order-safely below the oldest running transaction (see
//! `events.rs`).

pub mod admin;
pub mod attachments;
pub mod cache;
pub mod conversations;
pub mod events;
pub mod friends;
pub mod limits;
pub mod messages;
pub mod push;
pub mod search;
pub mod users;
pub mod writer;

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{
    ConnectOptions, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool,
    Transaction,
};
use writer::{SqliteTx, Writer};

/// Runs `$body` with `$e` bound to the live backend's connection (`&mut SqliteConnection` or
/// `&mut PgConnection`); the body is compiled once per backend.
macro_rules! run {
    ($conn:expr, $e:ident => $body:expr) => {
        match $conn {
            $crate::db::Conn::Sqlite(c) => {
                let $e = &mut **c;
                $body
            }
            $crate::db::Conn::Pg(c) => {
                let $e = &mut **c;
                $body
            }
        }
    };
}
pub(crate) use run;

/// Like [`run!`] for statements run with `execute`: yields the number of rows affected, so both
/// arms have one type.
macro_rules! exec {
    ($conn:expr, $e:ident => $body:expr) => {
        match $conn {
            $crate::db::Conn::Sqlite(c) => {
                let $e = &mut **c;
                $body.map(|r| r.rows_affected())
            }
            $crate::db::Conn::Pg(c) => {
                let $e = &mut **c;
                $body.map(|r| r.rows_affected())
            }
        }
    };
}
pub(crate) use exec;

/// The database: SQLite (one writer, a read pool) or PostgreSQL.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite: one writer connection, shared by concurrent use cases (group commit).
    Sqlite {
        /// The single writer.
        write: Writer,
        /// Read-only connections.
        read: SqlitePool,
    },
    /// PostgreSQL.
    Postgres(PgPool),
}

/// A borrowed connection of either backend; what every `db::*` function takes.
pub enum Conn<'a> {
    /// SQLite connection.
    Sqlite(&'a mut SqliteConnection),
    /// PostgreSQL connection.
    Pg(&'a mut PgConnection),
}

/// Metric: time to commit a write transaction, by backend (recorded here; exported by
/// `crate::metrics`).
pub const DB_COMMIT: &str = "parley_db_commit_duration_seconds";

/// An open write transaction: one use case.
pub enum Tx {
    /// A use case in the SQLite writer's batch (its own savepoint).
    Sqlite(SqliteTx),
    /// On PostgreSQL, with the number of events recorded so far and [`cache::user_writes`] when
    /// it began.
    Pg(Transaction<'static, Postgres>, i64, u64),
}

impl Tx {
    /// The transaction's connection, for `db::*` calls.
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Sqlite(t) => Conn::Sqlite(&mut t.state().conn),
            Tx::Pg(t, ..) => Conn::Pg(&mut *t),
        }
    }

    /// SQL to put before the first statement of a use case begun with [`Db::begin_deferred`]
    /// (SQLite only; "" otherwise). Call [`Tx::prefix_done`] when that statement succeeded.
    pub fn take_prefix(&mut self) -> &'static str {
        match self {
            Tx::Sqlite(t) => t.take_prefix(),
            Tx::Pg(..) => "",
        }
    }

    /// The statement carrying [`Tx::take_prefix`] succeeded.
    pub fn prefix_done(&mut self) {
        if let Tx::Sqlite(t) = self {
            t.prefix_done();
        }
    }

    /// Commits (on SQLite: once the batch is durable); on PostgreSQL this also delivers the
    /// `NOTIFY` raised inside.
    pub async fn commit(self) -> sqlx::Result<()> {
        self.commit_with(true).await
    }

    /// Like [`Tx::commit`], for a caller that is never dropped half way (the post combiner): on
    /// SQLite the batch commits in the caller's own task instead of one spawned for it.
    pub async fn commit_in_place(self) -> sqlx::Result<()> {
        self.commit_with(false).await
    }

    async fn commit_with(self, spawn: bool) -> sqlx::Result<()> {
        let started = std::time::Instant::now();
        let (backend, r) = match self {
            Tx::Sqlite(t) => ("sqlite", t.commit(spawn).await),
            Tx::Pg(t, _, users_at_begin) => {
                let r = t.commit().await;
                // A users row written by this node is seen by its next request, whether or not
                // this node's own notice has arrived yet (see `cache::users_written`).
                cache::users_committed(users_at_begin);
                ("postgres", r)
            }
        };
        metrics::histogram!(DB_COMMIT, "backend" => backend)
            .record(started.elapsed().as_secs_f64());
        r
    }
}

/// A pooled read connection.
pub enum ReadConn {
    /// From the SQLite read pool.
    Sqlite(PoolConnection<Sqlite>),
    /// From the PostgreSQL pool.
    Pg(PoolConnection<Postgres>),
}

impl ReadConn {
    /// The connection, for `db::*` calls.
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            ReadConn::Sqlite(c) => Conn::Sqlite(&mut *c),
            ReadConn::Pg(c) => Conn::Pg(&mut *c),
        }
    }
}

/// `$1, $2, …, $n`: the placeholders of an `IN (…)` list (both backends take `$n`).
pub(crate) fn placeholders(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A pooled PostgreSQL connection idle this long is pinged before use.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Set on every pooled PostgreSQL connection.
/// - `synchronous_commit = on`: a message acknowledged to a user must survive a crash, whatever
///   the server's default.
/// - `plan_cache_mode = force_generic_plan`: each prepared statement is planned once per
///   connection. Left to choose (`auto`), PostgreSQL in some runs planned the post statement
///   (one large `WITH` of reads and writes) anew for about half of all posts, at ~1.2 ms of its
///   CPU each: as much as running it. Every query here looks rows up by key or by a range of
///   ids, where a plan made for the values at hand is no better, and `auto` already settled on
///   the generic plan for nearly every other statement.
const SESSION_SETTINGS: &str =
    "SET synchronous_commit = on; SET plan_cache_mode = force_generic_plan";

/// Which backend a URL selects.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl Db {
    /// Connects to `url` (`sqlite://…` or `postgres://…`), creating a SQLite file if missing, and
    /// checks the SQLite pragmas took effect.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        if is_postgres_url(url) {
            let opts = PgConnectOptions::from_str(url).context("parsing DATABASE_URL")?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                // A connection in use a moment ago is alive: pinging it would add a round trip
                // to every request. One idle for longer may have been cut (a restarted server, a
                // firewall's timeout), so it is pinged first and replaced if that fails.
                .test_before_acquire(false)
                .before_acquire(|c, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PING_IF_IDLE_FOR {
                            sqlx::Connection::ping(c).await?;
                        }
                        Ok(true)
                    })
                })
                .after_connect(|c, _| {
                    Box::pin(async move {
                        // One round trip: without arguments, the two run as one simple query.
                        sqlx::Executor::execute(&mut *c, SESSION_SETTINGS).await?;
                        Ok(())
                    })
                })
                .connect_with(opts)
                .await
                .context("connecting to PostgreSQL")?;
            return Ok(Db::Postgres(pool));
        }
        let base = SqliteConnectOptions::from_str(url)
            .context("parsing DATABASE_URL")?
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a message acknowledged to a user survives a power loss.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let write = base
            .clone()
            .create_if_missing(true)
            .pragma(
                "wal_autocheckpoint",
                writer::BACKSTOP_CHECKPOINT_PAGES.to_string(),
            )
            .connect()
            .await
            .context("opening the SQLite database")?;
        let checkpointer = base
            .clone()
            .connect()
            .await
            .context("opening the SQLite database for checkpoints")?;
        // Reads run beside the writer; the pool opens connections as they are needed.
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(30))
            // A connection to a local file cannot be cut, and a ping is a round trip to its
            // driver thread on every read.
            .test_before_acquire(false)
            // A small page cache each: the operating system caches the file anyway.
            .connect_lazy_with(base.read_only(true).pragma("cache_size", "-256"));
        let write = Writer::new(write, 0)
            .await
            .context("hooking the SQLite writer")?;
        write.checkpoint_beside(checkpointer).await;
        let db = Db::Sqlite { write, read };
        db.check_pragmas().await?;
        Ok(db)
    }

    /// Reads the pragmas back: a silently ignored pragma would weaken durability or integrity.
    async fn check_pragmas(&self) -> anyhow::Result<()> {
        let Db::Sqlite { write, .. } = self else {
            return Ok(());
        };
        let mut g = write.exclusive().await;
        let c = &mut g.conn;
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *c)
            .await?;
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *c)
            .await?;
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *c)
            .await?;
        if !journal.eq_ignore_ascii_case("wal") || sync != 2 || fk != 1 {
            bail!(
                "SQLite pragmas not in effect: journal_mode={journal} synchronous={sync} foreign_keys={fk}"
            );
        }
        Ok(())
    }

    /// Applies the embedded migrations of the live backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Sqlite { write, .. } => {
                let mut g = write.exclusive().await;
                // Each migration commits without syncing the WAL (a fresh database has 18, and
                // their syncs were most of its start). Safe, as on PostgreSQL below: in WAL mode
                // a commit not yet synced can be lost but never leaves the file inconsistent; a
                // migration and its `_sqlx_migrations` row are lost together and applied again at
                // the next start; and the first commit after them is FULL, which syncs the WAL
                // through every earlier commit. Checkpoints (another connection, FULL) sync
                // the WAL before copying from it.
                sqlx::query("PRAGMA synchronous = NORMAL")
                    .execute(&mut g.conn)
                    .await?;
                let applied = sqlx::migrate!("migrations/sqlite").run(&mut g.conn).await;
                // Back to FULL whatever happened: every later commit on this connection is one
                // that a user may be told is durable.
                sqlx::query("PRAGMA synchronous = FULL")
                    .execute(&mut g.conn)
                    .await?;
                applied?;
                // A batch's savepoints stay open until its COMMIT, so their statement journal
                // outgrew SQLite's in-memory 64 KiB and went to a temporary file, a write per
                // page: in memory it is up to a few MiB for the length of one batch. Only after
                // the migrations, whose index builds may sort a large table in temporary files.
                sqlx::query("PRAGMA temp_store = MEMORY")
                    .execute(&mut g.conn)
                    .await?;
                let last: i64 = sqlx::query_scalar(
                    "SELECT MAX(last_id, COALESCE((SELECT MAX(id) FROM events), 0)) FROM log_state",
                )
                .fetch_one(&mut g.conn)
                .await?;
                g.set_last_event(last);
                drop(g);
                // The writer must be back to FULL before anyone is told a write is durable.
                self.check_pragmas().await?;
            }
            Db::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                // Each migration commits without waiting for its WAL flush (the DDL's own cost
                // stays). Safe: a migration's changes and its `_sqlx_migrations` row commit
                // together, so a crash before the flush loses both and the next start applies it
                // again; and the first acknowledged write after start commits synchronously,
                // which flushes the WAL through every earlier commit, migrations included.
                sqlx::query("SET synchronous_commit = off")
                    .execute(&mut *conn)
                    .await?;
                let applied = sqlx::migrate!("migrations/postgres").run(&mut *conn).await;
                // Back to full durability before the pool hands this connection out again; if
                // that cannot be done, the connection is closed rather than reused.
                if sqlx::query("SET synchronous_commit = on")
                    .execute(&mut *conn)
                    .await
                    .is_err()
                {
                    conn.close_on_drop();
                }
                applied?;
            }
        }
        Ok(())
    }

    /// On SQLite, from now on messages left out of the search index by a commit are indexed
    /// `lag` later by a task beside the writer (see `writer::INDEX_AT`). After the migrations.
    pub async fn index_behind(&self, lag: Duration) {
        if let Db::Sqlite { write, .. } = self {
            write.index_behind(lag).await;
        }
    }

    /// Brings the search index up to every committed message. On SQLite new messages join it in
    /// chunks, behind the log (`writer::INDEX_AT`): a search calls this first, so it finds
    /// everything committed before it. PostgreSQL indexes each message as it is written.
    pub async fn catch_up_search(&self) -> sqlx::Result<()> {
        match self {
            Db::Sqlite { write, .. } => write.index_now().await,
            Db::Postgres(_) => Ok(()),
        }
    }

    /// Starts a write transaction (on SQLite: a use case in the writer's current batch).
    pub async fn begin(&self) -> sqlx::Result<Tx> {
        Ok(match self {
            Db::Sqlite { write, .. } => Tx::Sqlite(write.begin().await?),
            Db::Postgres(pool) => Tx::Pg(pool.begin().await?, 0, cache::user_writes()),
        })
    }

    /// Like [`Db::begin`], for a use case whose first statement takes [`Tx::take_prefix`] (on
    /// SQLite the savepoint then opens in the same round trip).
    pub async fn begin_deferred(&self) -> sqlx::Result<Tx> {
        Ok(match self {
            Db::Sqlite { write, .. } => Tx::Sqlite(write.begin_deferred().await?),
            Db::Postgres(pool) => Tx::Pg(pool.begin().await?, 0, cache::user_writes()),
        })
    }

    /// Like [`Db::begin_deferred`], and on SQLite a new batch's `BEGIN` is left to the first
    /// statement as well ([`Writer::begin_folded`]): only for a use case whose first statement
    /// carries [`Tx::take_prefix`].
    pub async fn begin_folded(&self) -> sqlx::Result<Tx> {
        Ok(match self {
            Db::Sqlite { write, .. } => Tx::Sqlite(write.begin_folded().await?),
            Db::Postgres(pool) => Tx::Pg(pool.begin().await?, 0, cache::user_writes()),
        })
    }

    /// A connection for reads.
    pub async fn read(&self) -> sqlx::Result<ReadConn> {
        Ok(match self {
            Db::Sqlite { read, .. } => ReadConn::Sqlite(read.acquire().await?),
            Db::Postgres(pool) => ReadConn::Pg(pool.acquire().await?),
        })
    }

    /// True when the database answers (for `/healthz`).
    pub async fn ping(&self) -> bool {
        match self {
            Db::Sqlite { read, .. } => sqlx::query("SELECT 1").execute(read).await.is_ok(),
            Db::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.is_ok(),
        }
    }

    /// Closes the pools (at shutdown, after the last request).
    pub async fn close(&self) {
        match self {
            Db::Sqlite { write, read, .. } => {
                read.close().await;
                // Commits whatever batch is open; the connection closes with the last handle.
                drop(write.exclusive().await);
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// Milliseconds since the Unix epoch: how every timestamp is stored.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migrations commit without syncing (`synchronous = NORMAL`); the writer must be FULL again
    /// afterwards, or acknowledged messages could be lost in a power cut.
    #[tokio::test]
    async fn after_the_migrations_the_writer_syncs_every_commit_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
        let db = Db::connect(&url).await.expect("connect");
        db.migrate().await.expect("migrate");
        let Db::Sqlite { write, .. } = &db else {
            panic!("a sqlite:// URL opens SQLite");
        };
        let mut g = write.exclusive().await;
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut g.conn)
            .await
            .expect("read the pragma");
        assert_eq!(sync, 2, "FULL");
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&mut g.conn)
            .await
            .expect("count migrations");
        assert_eq!(
            applied as usize,
            sqlx::migrate!("migrations/sqlite").iter().count()
        );
    }
}

//! The session store, in the same database as everything else, so a restart logs nobody out. One
//! enum so the session layer has one type whatever the backend.
//!
//! On SQLite the store is ours, in tower-sessions-sqlx-store's table and format: loads read through
//! the read pool, and writes go through the group-committing writer like every other write (so they
//! share its batches instead of queueing for the one connection). On PostgreSQL it is
//! tower-sessions-sqlx-store's table, read through this node's copies (`db::cache`): every save
//! and delete tells every node in the same statement.

use hashlink::LruCache;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::PostgresStore;

use crate::db::{Conn, Db};

/// The session store of the live backend.
#[derive(Debug, Clone)]
pub enum Store {
    /// SQLite: reads on the read pool, writes through the writer.
    Sqlite(SqliteSessions),
    /// On PostgreSQL.
    Postgres(PgSessions),
}

/// Sessions on PostgreSQL: tower-sessions-sqlx-store's table and format, loads served from this
/// node's copies while no node changed a session since (see `db::cache`).
#[derive(Debug, Clone)]
pub struct PgSessions {
    inner: PostgresStore,
    pool: sqlx::PgPool,
    caches: Arc<PgCaches>,
}

/// This node's copies of sessions and users on PostgreSQL.
pub type PgCaches = crate::db::cache::PgCaches<Record>;

/// The statement of [`PgSessions::save`]; what tower-sessions-sqlx-store runs, and the notice.
const PG_SAVE: &str = "WITH s AS (INSERT INTO \"tower_sessions\".\"session\" (id, data, expiry_date) \
     VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET data = excluded.data, \
     expiry_date = excluded.expiry_date RETURNING 1) \
     SELECT pg_notify('parley_cache', 's')::text FROM s";

/// The statement of [`PgSessions::delete`].
/// No notice when there was nothing to delete (a login replacing an anonymous session).
const PG_DELETE: &str = "WITH d AS (DELETE FROM \"tower_sessions\".\"session\" WHERE id = $1 RETURNING 1) \
     SELECT pg_notify('parley_cache', 's')::text FROM (SELECT 1 FROM d LIMIT 1) AS deleted";

impl PgSessions {
    async fn write(
        &self,
        sql: &str,
        id: &Id,
        record: Option<&Record>,
    ) -> session_store::Result<()> {
        let mut q = sqlx::query(sql).bind(id.to_string());
        if let Some(r) = record {
            let data =
                rmp_serde::to_vec(r).map_err(|e| session_store::Error::Encode(e.to_string()))?;
            q = q.bind(data).bind(r.expiry_date);
        }
        // Dropped here before the write too: a load racing with it must not keep the old one
        // (the generation moves on again after it).
        self.caches.sessions.invalidate();
        let r = q.execute(&self.pool).await.map_err(backend);
        self.caches.sessions.invalidate();
        r.map(|_| ())
    }
}

#[async_trait]
impl SessionStore for PgSessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // A new id: no node has a copy of it.
        self.inner.create(record).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.write(PG_SAVE, &record.id, Some(record)).await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let key = id.to_string();
        if let Some(r) = self.caches.sessions.get(&key)
            && r.expiry_date > OffsetDateTime::now_utc()
        {
            return Ok(Some(r));
        }
        let generation = self.caches.sessions.generation();
        let record = self.inner.load(id).await?;
        if let Some(r) = &record {
            self.caches.sessions.put(generation, key, r.clone());
        }
        Ok(record)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.write(PG_DELETE, id, None).await
    }
}

#[async_trait]
impl ExpiredDeletion for PgSessions {
    async fn delete_expired(&self) -> session_store::Result<()> {
        // Copies are checked against their expiry when used: no notice needed.
        self.inner.delete_expired().await
    }
}

/// Sessions in SQLite (table `tower_sessions`: id, MessagePack data, expiry). Recently used
/// records are kept in memory too: every write goes through this store (one process writes a
/// SQLite file), so the copy is never stale, and a request's session costs no read.
#[derive(Debug, Clone)]
pub struct SqliteSessions {
    db: Db,
    /// `None`: deleted (a read racing with the delete must not bring it back).
    recent: Arc<Mutex<LruCache<Id, Option<Record>>>>,
}

/// Sessions kept in memory (about half a KiB each), the least recently used going first.
const RECENT_SESSIONS: usize = 1024;

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

impl SqliteSessions {
    fn recent(&self) -> MutexGuard<'_, LruCache<Id, Option<Record>>> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `record` (`written`: it was just stored; otherwise it was read, and a delete since
    /// then wins).
    fn remember(&self, id: Id, record: Option<&Record>, written: bool) {
        let mut recent = self.recent();
        if !written && matches!(recent.peek(&id), Some(None)) {
            return;
        }
        recent.insert(id, record.cloned());
    }

    async fn migrate(&self) -> sqlx::Result<()> {
        let mut tx = self.db.begin().await?;
        if let Conn::Sqlite(c) = tx.conn() {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS tower_sessions \
                 (id TEXT PRIMARY KEY NOT NULL, data BLOB NOT NULL, expiry_date INTEGER NOT NULL)",
            )
            .execute(c)
            .await?;
        }
        tx.commit().await
    }

    /// Runs one statement on the writer, in the current batch.
    async fn write(
        &self,
        sql: &str,
        record: Option<&Record>,
        id: &Id,
    ) -> session_store::Result<u64> {
        let data = match record {
            Some(r) => Some(
                rmp_serde::to_vec(r).map_err(|e| session_store::Error::Encode(e.to_string()))?,
            ),
            None => None,
        };
        let mut tx = self.db.begin().await.map_err(backend)?;
        let Conn::Sqlite(c) = tx.conn() else {
            return Err(backend("not SQLite"));
        };
        let mut q = sqlx::query(sql).bind(id.to_string());
        if let (Some(r), Some(data)) = (record, data) {
            q = q.bind(data).bind(r.expiry_date);
        }
        let n = q.execute(c).await.map_err(backend)?.rows_affected();
        tx.commit().await.map_err(backend)?;
        Ok(n)
    }
}

#[async_trait]
impl SessionStore for SqliteSessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // A new random id colliding with a stored one is next to impossible; try another if so.
        while self
            .write(
                "INSERT INTO tower_sessions (id, data, expiry_date) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO NOTHING",
                Some(record),
                &record.id,
            )
            .await?
            == 0
        {
            record.id = Id::default();
        }
        self.remember(record.id, Some(record), true);
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        // Forgotten first: a failed write must not leave a copy newer than the database.
        self.recent().remove(&record.id);
        self.write(
            "INSERT INTO tower_sessions (id, data, expiry_date) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date",
            Some(record),
            &record.id,
        )
        .await?;
        self.remember(record.id, Some(record), true);
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self.recent().get(id) {
            Some(Some(r)) if r.expiry_date > OffsetDateTime::now_utc() => {
                return Ok(Some(r.clone()));
            }
            Some(None) => return Ok(None),
            _ => {}
        }
        let Db::Sqlite { read, .. } = &self.db else {
            return Err(backend("not SQLite"));
        };
        let data: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT data FROM tower_sessions WHERE id = $1 AND expiry_date > $2",
        )
        .bind(id.to_string())
        .bind(OffsetDateTime::now_utc())
        .fetch_optional(read)
        .await
        .map_err(backend)?;
        let record: Option<Record> = data
            .map(|d| {
                rmp_serde::from_slice(&d).map_err(|e| session_store::Error::Decode(e.to_string()))
            })
            .transpose()?;
        if let Some(r) = &record {
            self.remember(*id, Some(r), false);
        }
        Ok(record)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.remember(*id, None, true);
        self.write("DELETE FROM tower_sessions WHERE id = $1", None, id)
            .await?;
        self.remember(*id, None, true);
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for SqliteSessions {
    async fn delete_expired(&self) -> session_store::Result<()> {
        let now = OffsetDateTime::now_utc();
        {
            let mut recent = self.recent();
            let expired: Vec<Id> = recent
                .iter()
                .filter(|(_, r)| r.as_ref().is_none_or(|r| r.expiry_date <= now))
                .map(|(id, _)| *id)
                .collect();
            for id in expired {
                recent.remove(&id);
            }
        }
        let mut tx = self.db.begin().await.map_err(backend)?;
        if let Conn::Sqlite(c) = tx.conn() {
            sqlx::query("DELETE FROM tower_sessions WHERE datetime(expiry_date) < datetime('now')")
                .execute(c)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }
}

impl Store {
    /// The store for `db`.
    pub fn new(db: &Db) -> Store {
        match db {
            Db::Sqlite { .. } => Store::Sqlite(SqliteSessions {
                db: db.clone(),
                recent: Arc::new(Mutex::new(LruCache::new(RECENT_SESSIONS))),
            }),
            Db::Postgres(pool) => Store::Postgres(PgSessions {
                inner: PostgresStore::new(pool.clone()),
                pool: pool.clone(),
                caches: Arc::default(),
            }),
        }
    }

    /// Creates the session table if missing.
    pub async fn migrate(&self) -> sqlx::Result<()> {
        match self {
            Store::Sqlite(s) => s.migrate().await,
            Store::Postgres(s) => s.inner.migrate().await,
        }
    }

    /// On PostgreSQL: this node's copies of sessions and users (the auth backend reads users
    /// through them; the listener drops them on notice).
    pub fn pg_caches(&self) -> Option<Arc<PgCaches>> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(s) => Some(s.caches.clone()),
        }
    }
}

#[async_trait]
impl SessionStore for Store {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Store::Sqlite(s) => s.create(record).await,
            Store::Postgres(s) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Store::Sqlite(s) => s.save(record).await,
            Store::Postgres(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Store::Sqlite(s) => s.load(id).await,
            Store::Postgres(s) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            Store::Sqlite(s) => s.delete(id).await,
            Store::Postgres(s) => s.delete(id).await,
        }
    }
}

#[async_trait]
impl ExpiredDeletion for Store {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            Store::Sqlite(s) => s.delete_expired().await,
            Store::Postgres(s) => s.delete_expired().await,
        }
    }
}

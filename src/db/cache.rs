//! On PostgreSQL: this node's copies of sessions and users, so a request costs no database read
//! for either (SQLite has its own, see `writer::UserCache` and `sessions`).
//!
//! Several nodes write the same rows, so a copy is only as good as what this node hears: every
//! write of a session or a user sends `NOTIFY parley_cache` in the same statement (delivered at
//! its commit, in commit order, to every node, this one included), and the listener
//! (`live::run_pg_listener`) drops the copies when it arrives. A deactivation, a password change
//! or a logout on one node therefore ends the copies on every node as soon as its commit is
//! heard: the notice comes before the `parley_events` notice of the same transaction, so by the
//! time its event closes a stream anywhere, no node still holds the old row.
//!
//! Nothing is cached while the listener is not connected (a notice could be missed then), each
//! reconnect starts empty, and a copy read from the database before a notice arrived is never
//! kept after it (the generation moved on). A copy also expires after [`TTL`], a bound for a
//! listener whose connection died without an error.

use hashlink::LruCache;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Users writes started in this process (`update_users!`).
static USER_WRITES: AtomicU64 = AtomicU64::new(0);
/// Bumped after a transaction that overlapped a users write here has committed: every node in
/// this process drops its copies of users then, so the node that made a change serves its next
/// request from the changed row without waiting for its own notice. (Any transaction that ran
/// while a users write started counts: a few needless drops, never a stale copy.)
static USERS_EPOCH: AtomicU64 = AtomicU64::new(0);

/// A users row is about to be written here.
pub fn users_written() {
    USER_WRITES.fetch_add(1, Ordering::SeqCst);
}

/// The count of users writes so far (taken when a transaction begins).
pub fn user_writes() -> u64 {
    USER_WRITES.load(Ordering::SeqCst)
}

/// A transaction that began when [`user_writes`] was `at_begin` has ended.
pub fn users_committed(at_begin: u64) {
    if user_writes() != at_begin {
        USERS_EPOCH.fetch_add(1, Ordering::SeqCst);
    }
}

/// The channel every node listens on.
pub const CHANNEL: &str = "parley_cache";

/// The longest a copy is used without being read again.
pub const TTL: Duration = Duration::from_secs(60);

/// Copies kept of each kind (a user row or a session record is well under a KiB), the least
/// recently used going first.
const CAPACITY: usize = 1024;

/// Copies of one kind of row.
pub struct Cached<K, V> {
    inner: Mutex<Inner<K, V>>,
    /// Also stale whenever this moves ([`USERS_EPOCH`] for users).
    external: Option<&'static AtomicU64>,
}

struct Inner<K, V> {
    /// Moves on whenever copies may have gone stale.
    generation: u64,
    /// The listener is connected: notices arrive.
    live: bool,
    /// The external epoch the copies were made in.
    external_seen: u64,
    map: LruCache<K, (Instant, V)>,
}

impl<K: Hash + Eq, V> Default for Cached<K, V> {
    fn default() -> Self {
        Cached {
            inner: Mutex::new(Inner {
                generation: 0,
                live: false,
                external_seen: 0,
                map: LruCache::new(CAPACITY),
            }),
            external: None,
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Cached<K, V> {
    fn inner(&self) -> MutexGuard<'_, Inner<K, V>> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = self.external {
            let now = e.load(Ordering::SeqCst);
            if now != inner.external_seen {
                inner.external_seen = now;
                inner.generation += 1;
                inner.map.clear();
            }
        }
        inner
    }

    /// The generation to pass to [`Cached::put`], taken BEFORE reading the row; None when
    /// nothing may be cached now.
    pub fn generation(&self) -> Option<u64> {
        let inner = self.inner();
        inner.live.then_some(inner.generation)
    }

    /// A fresh copy, if any.
    pub fn get(&self, key: &K) -> Option<V> {
        let mut inner = self.inner();
        if !inner.live {
            return None;
        }
        inner
            .map
            .get(key)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, v)| v.clone())
    }

    /// Keeps `value`, read from the database after [`Cached::generation`] gave `generation`,
    /// unless copies went stale since.
    pub fn put(&self, generation: Option<u64>, key: K, value: V) {
        let mut inner = self.inner();
        if !inner.live || generation != Some(inner.generation) {
            return;
        }
        inner.map.insert(key, (Instant::now(), value));
    }

    /// Drops every copy (a write was heard of, or made here).
    pub fn invalidate(&self) {
        let mut inner = self.inner();
        inner.generation += 1;
        inner.map.clear();
    }

    fn set_live(&self, live: bool) {
        let mut inner = self.inner();
        inner.live = live;
        inner.generation += 1;
        inner.map.clear();
    }
}

/// This node's copies (one per node: tests run several nodes in one process).
pub struct PgCaches<S> {
    /// Users by id.
    pub users: Cached<i64, super::users::UserRow>,
    /// Session records by id.
    pub sessions: Cached<String, S>,
}

impl<S> std::fmt::Debug for PgCaches<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgCaches")
    }
}

impl<S> Default for PgCaches<S> {
    fn default() -> Self {
        PgCaches {
            users: Cached {
                external: Some(&USERS_EPOCH),
                ..Cached::default()
            },
            sessions: Cached::default(),
        }
    }
}

impl<S: Clone> PgCaches<S> {
    /// The listener connected (`true`: copies may be kept from now on) or was lost.
    pub fn set_live(&self, live: bool) {
        self.users.set_live(live);
        self.sessions.set_live(live);
    }

    /// A `parley_cache` notice: `u` a user changed, `s` a session.
    pub fn notice(&self, payload: &str) {
        match payload {
            USER_NOTICE => self.users.invalidate(),
            SESSION_NOTICE => self.sessions.invalidate(),
            _ => {
                self.users.invalidate();
                self.sessions.invalidate();
            }
        }
    }
}

/// The notice that a user row changed.
pub const USER_NOTICE: &str = "u";
/// The notice that a session changed or ended.
pub const SESSION_NOTICE: &str = "s";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_kept_only_while_live_and_never_across_a_notice() {
        let c: Cached<i64, &str> = Cached::default();
        c.put(c.generation(), 1, "a");
        assert_eq!(c.get(&1), None, "not live: nothing kept");
        c.set_live(true);
        c.put(c.generation(), 1, "a");
        assert_eq!(c.get(&1), Some("a"));
        // Read before a notice, kept after it: refused.
        let g = c.generation();
        c.invalidate();
        assert_eq!(c.get(&1), None);
        c.put(g, 1, "old");
        assert_eq!(c.get(&1), None);
        c.put(c.generation(), 1, "new");
        assert_eq!(c.get(&1), Some("new"));
        c.set_live(false);
        assert_eq!(c.get(&1), None, "listener lost: copies dropped");
    }

    #[test]
    fn a_full_cache_lets_the_least_recently_used_copy_go() {
        let c: Cached<usize, usize> = Cached::default();
        c.set_live(true);
        for k in 0..CAPACITY {
            c.put(c.generation(), k, k);
        }
        // Many more keys pass through, and key 0 is used all along: it stays.
        for k in CAPACITY..3 * CAPACITY {
            assert_eq!(c.get(&0), Some(0));
            c.put(c.generation(), k, k);
        }
        assert_eq!(c.get(&0), Some(0));
        assert_eq!(c.get(&1), None, "unused since: gone first");
        assert_eq!(c.get(&(3 * CAPACITY - 1)), Some(3 * CAPACITY - 1));
    }

    #[test]
    fn a_users_write_committed_here_drops_copies_without_waiting_for_its_notice() {
        let caches: PgCaches<()> = PgCaches::default();
        caches.set_live(true);
        let g = caches.users.generation();
        let at_begin = user_writes();
        users_written();
        users_committed(at_begin);
        // Read before the commit, kept after it: refused; and nothing older survives.
        caches.users.put(g, 1, dummy());
        assert!(caches.users.get(&1).is_none());
        caches.users.put(caches.users.generation(), 1, dummy());
        assert!(caches.users.get(&1).is_some());
    }

    fn dummy() -> super::super::users::UserRow {
        super::super::users::UserRow {
            id: 1,
            username: "ann".into(),
            display_name: String::new(),
            password_hash: String::new(),
            is_admin: 0,
            deactivated_at: None,
            session_epoch: 0,
        }
    }
}

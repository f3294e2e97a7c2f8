//! The Hub: routes each frame only to its audience's open streams (tabs, devices), each through a
//! bounded queue, and keeps presence (who has at least one stream open, and who sees it).
//!
//! The map sits behind a std `Mutex` that is never held across `.await`; delivering is `try_send`
//! into each recipient's queue, so one slow reader never slows anyone else. Recipients who get the
//! same frames of an event share one [`Delivery`], whose bytes were encoded once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::frame::{self, Delivery, Rendered, audience};

/// Metric: deliveries queued to streams (counted here; exported by `crate::metrics`).
pub const EVENTS_DELIVERED: &str = "parley_events_delivered_total";
/// Metric: streams dropped because their queue was full.
pub const HUB_DROPS: &str = "parley_hub_queue_drops_total";

/// Deliveries a connection may have queued. A full queue means the reader fell this far behind:
/// the connection gets `reload` and is closed instead of growing memory or slowing the others.
pub const CONNECTION_QUEUE: usize = 256;

/// Rendered events kept for replay, so a reconnect after a short blip renders nothing again.
const RECENT_CACHE: usize = 2048;

struct Connection {
    id: u64,
    login_id: u64,
    tx: mpsc::Sender<Arc<Delivery>>,
    kill: CancellationToken,
    overflowed: Arc<AtomicBool>,
}

#[derive(Default)]
struct UserEntry {
    conns: Vec<Connection>,
    /// Who sees this user's presence (and whose presence this user sees): friends and everyone
    /// sharing a conversation, and the user themself.
    contacts: HashSet<i64>,
    /// Online on this node (a stream open, or closed within the grace period).
    online: bool,
    /// Other nodes (PostgreSQL deployments) where this user is online, and when they last said so.
    remote: HashMap<u64, Instant>,
    /// Bumped at every connect: a pending "offline" from an earlier disconnect is then stale.
    generation: u64,
}

impl UserEntry {
    /// Online anywhere: here or on another node.
    fn anywhere(&self) -> bool {
        self.online || !self.remote.is_empty()
    }
}

/// A change of local presence, for the other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceChange {
    /// Who.
    pub user: i64,
    /// Now online here, or now offline here.
    pub online: bool,
}

/// The in-process fan-out.
pub struct Hub {
    users: Mutex<HashMap<i64, UserEntry>>,
    recent: Mutex<VecDeque<Arc<Rendered>>>,
    next_conn: AtomicU64,
    grace: Duration,
    /// Wakes the log reader: an event was committed.
    pub(crate) wake: Notify,
    /// This node's random id (presence messages from other nodes carry theirs).
    pub node: u64,
    /// Where local presence changes go to reach other nodes (set on PostgreSQL).
    outbox: Mutex<Option<mpsc::Sender<PresenceChange>>>,
}

/// A registered stream: its queue and how it ends. Dropping it unregisters the connection.
pub struct Subscription {
    /// The queue.
    pub rx: mpsc::Receiver<Arc<Delivery>>,
    /// Cancelled when the Hub closes this connection (logout, overflow).
    pub kill: CancellationToken,
    /// Set when the close was an overflow (then the client must reload).
    pub overflowed: Arc<AtomicBool>,
    hub: Arc<Hub>,
    user: i64,
    conn: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.clone().unregister(self.user, self.conn);
    }
}

impl Hub {
    /// A hub whose users stay online `grace` after their last stream closes.
    pub fn new(grace: Duration) -> Arc<Hub> {
        Arc::new(Hub {
            users: Mutex::new(HashMap::new()),
            recent: Mutex::new(VecDeque::with_capacity(RECENT_CACHE)),
            next_conn: AtomicU64::new(1),
            grace,
            wake: Notify::new(),
            node: rand::random(),
            outbox: Mutex::new(None),
        })
    }

    fn users(&self) -> MutexGuard<'_, HashMap<i64, UserEntry>> {
        // A panic while holding the lock leaves the map consistent (every update is one step).
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the log reader that events were committed.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Registers a stream of `user`; `contacts` are who sees their presence.
    pub fn register(self: &Arc<Self>, user: i64, login_id: u64, contacts: &[i64]) -> Subscription {
        let users = self.users();
        self.register_locked(users, user, login_id, contacts)
    }

    /// Like [`Hub::register`], but refuses (`None`) when `user` has `max` streams open here already.
    pub fn try_register(
        self: &Arc<Self>,
        user: i64,
        login_id: u64,
        contacts: &[i64],
        max: usize,
    ) -> Option<Subscription> {
        let users = self.users();
        if users.get(&user).is_some_and(|e| e.conns.len() >= max) {
            return None;
        }
        Some(self.register_locked(users, user, login_id, contacts))
    }

    /// Streams `user` has open on this node.
    pub fn stream_count(&self, user: i64) -> usize {
        self.users().get(&user).map_or(0, |e| e.conns.len())
    }

    fn register_locked(
        self: &Arc<Self>,
        mut users: MutexGuard<'_, HashMap<i64, UserEntry>>,
        user: i64,
        login_id: u64,
        contacts: &[i64],
    ) -> Subscription {
        let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
        let kill = CancellationToken::new();
        let overflowed = Arc::new(AtomicBool::new(false));
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let entry = users.entry(user).or_default();
        entry.conns.push(Connection {
            id: conn,
            login_id,
            tx,
            kill: kill.clone(),
            overflowed: overflowed.clone(),
        });
        entry.contacts.extend(contacts.iter().copied());
        entry.contacts.insert(user);
        entry.generation += 1;
        let came_online = !entry.online;
        if came_online {
            let was_anywhere = entry.anywhere();
            entry.online = true;
            if !was_anywhere {
                let to: Vec<i64> = entry.contacts.iter().copied().collect();
                Self::send_presence(&mut users, user, true, &to);
            }
        }
        drop(users);
        if came_online {
            self.announce(user, true);
        }
        Subscription {
            rx,
            kill,
            overflowed,
            hub: self.clone(),
            user,
            conn,
        }
    }

    fn unregister(self: Arc<Self>, user: i64, conn: u64) {
        let generation = {
            let mut users = self.users();
            let Some(entry) = users.get_mut(&user) else {
                return;
            };
            entry.conns.retain(|c| c.id != conn);
            if !entry.conns.is_empty() {
                return;
            }
            entry.generation
        };
        // Offline only if no stream came back within the grace period (a reload is not a goodbye).
        let grace = self.grace;
        let hub = self;
        let go_offline = move || {
            let mut users = hub.users();
            let Some(entry) = users.get_mut(&user) else {
                return;
            };
            if !entry.conns.is_empty() || entry.generation != generation {
                return;
            }
            entry.online = false;
            let to: Vec<i64> = entry.contacts.iter().copied().collect();
            if entry.remote.is_empty() {
                users.remove(&user);
                Self::send_presence(&mut users, user, false, &to);
            }
            drop(users);
            hub.announce(user, false);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(grace).await;
                    go_offline();
                });
            }
            Err(_) => go_offline(),
        }
    }

    fn send_presence(users: &mut HashMap<i64, UserEntry>, user: i64, online: bool, to: &[i64]) {
        // A user's own tabs learn their presence from the snapshot of each new stream.
        let to: Vec<i64> = to
            .iter()
            .copied()
            .filter(|u| *u != user && users.get(u).is_some_and(|e| !e.conns.is_empty()))
            .collect();
        if to.is_empty() {
            return;
        }
        let f = frame::presence(user, online, audience(to.iter().copied()));
        let delivery = Arc::new(Delivery {
            id: None,
            chunks: vec![f.encode(None)],
        });
        for u in to {
            if let Some(entry) = users.get_mut(&u) {
                Self::push(entry, &delivery);
            }
        }
    }

    /// Queues `delivery` to each of the entry's streams; returns how many took it.
    fn push(entry: &mut UserEntry, delivery: &Arc<Delivery>) -> u64 {
        let mut queued = 0;
        for c in &entry.conns {
            match c.tx.try_send(delivery.clone()) {
                Ok(()) => queued += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!(HUB_DROPS).increment(1);
                    c.overflowed.store(true, Ordering::Relaxed);
                    c.kill.cancel();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        queued
    }

    /// Sends an ephemeral frame (never logged, never replayed: typing) to its audience's streams.
    pub fn send_ephemeral(&self, frame: &frame::Frame) {
        let delivery = Arc::new(Delivery {
            id: None,
            chunks: vec![frame.encode(None)],
        });
        let mut users = self.users();
        for u in frame.audience.iter() {
            if let Some(entry) = users.get_mut(u) {
                Self::push(entry, &delivery);
            }
        }
    }

    /// Routes each frame of a logged event to the open streams of its audience. Recipients who
    /// get the same frames share one delivery; nobody gets a frame meant for someone else.
    pub fn deliver(&self, rendered: Arc<Rendered>) {
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() == RECENT_CACHE {
                recent.pop_front();
            }
            recent.push_back(rendered.clone());
        }
        let mut users = self.users();
        let mut per_user: HashMap<i64, Vec<usize>> = HashMap::new();
        for (i, (f, _)) in rendered.frames.iter().enumerate() {
            for u in f.audience.iter() {
                if users.get(u).is_some_and(|e| !e.conns.is_empty()) {
                    per_user.entry(*u).or_default().push(i);
                }
            }
        }
        let mut shared: HashMap<Vec<usize>, Arc<Delivery>> = HashMap::new();
        let mut queued = 0;
        for (user, frames) in per_user {
            let delivery = shared
                .entry(frames)
                .or_insert_with_key(|idx| {
                    Arc::new(Delivery {
                        id: Some(rendered.id),
                        chunks: idx.iter().map(|i| rendered.frames[*i].1.clone()).collect(),
                    })
                })
                .clone();
            if let Some(entry) = users.get_mut(&user) {
                queued += Self::push(entry, &delivery);
            }
        }
        drop(users);
        metrics::counter!(EVENTS_DELIVERED).increment(queued);
    }

    /// An event rendered earlier, if still cached.
    pub fn cached(&self, id: i64) -> Option<Arc<Rendered>> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let i = recent.binary_search_by_key(&id, |r| r.id).ok()?;
        Some(recent[i].clone())
    }

    /// Closes the streams of one login (logout).
    pub fn close_login(&self, user: i64, login_id: u64) {
        if let Some(entry) = self.users().get(&user) {
            for c in entry.conns.iter().filter(|c| c.login_id == login_id) {
                c.kill.cancel();
            }
        }
    }

    /// Closes every stream of `user` (deactivation).
    pub fn close_user(&self, user: i64) {
        if let Some(entry) = self.users().get(&user) {
            for c in &entry.conns {
                c.kill.cancel();
            }
        }
    }

    /// Closes every stream of `user` but those of `keep` (password change).
    pub fn close_other_logins(&self, user: i64, keep: u64) {
        if let Some(entry) = self.users().get(&user) {
            for c in entry.conns.iter().filter(|c| c.login_id != keep) {
                c.kill.cancel();
            }
        }
    }

    /// These users now see each other's presence (new friends, or new co-members). The frames that
    /// show them to each other are rendered with their current presence, so nothing is sent here.
    pub fn link(&self, users_in: &[i64]) {
        let mut users = self.users();
        for u in users_in {
            if let Some(e) = users.get_mut(u) {
                e.contacts.extend(users_in.iter().copied());
            }
        }
    }

    /// These users see `added`'s presence and the reverse (members added to a group).
    pub fn link_to(&self, members: &[i64], added: &[i64]) {
        let mut users = self.users();
        for u in members {
            if let Some(e) = users.get_mut(u) {
                e.contacts.extend(added.iter().copied());
            }
        }
        for u in added {
            if let Some(e) = users.get_mut(u) {
                e.contacts.extend(members.iter().copied());
            }
        }
    }

    /// True when `user` has a stream open (or closed it within the grace period).
    pub fn is_online(&self, user: i64) -> bool {
        self.users().get(&user).is_some_and(UserEntry::anywhere)
    }

    /// Who `user` sees (for the presence snapshot of a new stream).
    pub fn contacts_of(&self, user: i64) -> Vec<i64> {
        self.users()
            .get(&user)
            .map(|e| e.contacts.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Which of `users` are online.
    pub fn online_among(&self, users: &[i64]) -> Vec<i64> {
        let map = self.users();
        users
            .iter()
            .copied()
            .filter(|u| map.get(u).is_some_and(UserEntry::anywhere))
            .collect()
    }

    /// Sends local presence changes to `outbox` from now on (for the other nodes).
    pub fn set_outbox(&self, outbox: mpsc::Sender<PresenceChange>) {
        *self.outbox.lock().unwrap_or_else(|p| p.into_inner()) = Some(outbox);
    }

    fn announce(&self, user: i64, online: bool) {
        let outbox = self.outbox.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = outbox.as_ref() {
            // Best effort: a full outbox drops the change; the periodic refresh repairs "online",
            // and the expiry of stale entries repairs "offline".
            let _ = tx.try_send(PresenceChange { user, online });
        }
    }

    /// Users online on this node (for the periodic refresh to other nodes).
    pub fn local_online(&self) -> Vec<i64> {
        self.users()
            .iter()
            .filter(|(_, e)| e.online)
            .map(|(u, _)| *u)
            .collect()
    }

    /// Another node says `user` is online (or offline) there.
    pub fn remote_presence(&self, node: u64, user: i64, online: bool) {
        if node == self.node {
            return;
        }
        let mut users = self.users();
        let entry = users.entry(user).or_default();
        let before = entry.anywhere();
        if online {
            entry.remote.insert(node, Instant::now());
        } else {
            entry.remote.remove(&node);
        }
        let after = entry.anywhere();
        if !after && entry.conns.is_empty() {
            users.remove(&user);
        }
        if before != after {
            Self::tell_local_friends(&mut users, user, after);
        }
    }

    /// Forgets other nodes' presence not refreshed since `max_age` (a node that died says nothing).
    pub fn expire_remote(&self, max_age: Duration) {
        let mut users = self.users();
        let mut gone = Vec::new();
        for (user, entry) in users.iter_mut() {
            let before = entry.anywhere();
            entry.remote.retain(|_, seen| seen.elapsed() < max_age);
            if before && !entry.anywhere() {
                gone.push(*user);
            }
        }
        for user in gone {
            if users.get(&user).is_some_and(|e| e.conns.is_empty()) {
                users.remove(&user);
            }
            Self::tell_local_friends(&mut users, user, false);
        }
    }

    /// Presence of a user connected elsewhere, sent to the local users who see them.
    fn tell_local_friends(users: &mut HashMap<i64, UserEntry>, user: i64, online: bool) {
        let to: Vec<i64> = users
            .iter()
            .filter(|(_, e)| !e.conns.is_empty() && e.contacts.contains(&user))
            .map(|(u, _)| *u)
            .collect();
        Self::send_presence(users, user, online, &to);
    }

    /// A snapshot for the metrics endpoint (one pass under the lock, at scrape time only).
    pub fn stats(&self) -> HubStats {
        let users = self.users();
        let mut s = HubStats::default();
        for e in users.values() {
            s.streams += e.conns.len();
            s.online_here += usize::from(e.online);
            s.online_anywhere += usize::from(e.anywhere());
            for c in &e.conns {
                let depth = CONNECTION_QUEUE - c.tx.capacity();
                s.queued += depth;
                s.max_queue = s.max_queue.max(depth);
            }
        }
        s
    }

    /// How many streams are open (for logs and tests).
    pub fn connection_count(&self) -> usize {
        self.users().values().map(|e| e.conns.len()).sum()
    }
}

/// Counts describing the Hub at one moment (see [`Hub::stats`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HubStats {
    /// Open streams.
    pub streams: usize,
    /// Users online on this node.
    pub online_here: usize,
    /// Users online on this node or another one that announced them.
    pub online_anywhere: usize,
    /// Deliveries waiting in all queues.
    pub queued: usize,
    /// Deliveries waiting in the fullest queue.
    pub max_queue: usize,
}

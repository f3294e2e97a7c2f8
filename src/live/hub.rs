//! The Hub: routes each frame only to its audience's open streams (tabs, devices), each through a
//! small bounded mailbox, and keeps presence (who has at least one stream open, and who sees it).
//!
//! It also knows, for every user with a stream open here, which conversations they are in, kept
//! in log order by [`Hub::publish`]: the audience of a conversation event is that conversation's
//! members at that point in the log, read from memory, never from the database.
//!
//! The state sits behind one std `Mutex` that is never held across `.await`; delivering is a push
//! into each recipient's mailbox, so one slow reader never slows anyone else. Recipients who get
//! the same frames of an event share one [`Delivery`], whose bytes were encoded once. A mailbox
//! allocates nothing while empty: an idle stream costs its ids and a few words.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};

use super::frame::{self, Audience, Delivery, Rendered, audience};
use super::{share, wire};
use crate::db::events::StreamStart;
use crate::events::Event;

/// Metric: deliveries queued to streams (counted here; exported by `crate::metrics`).
pub const EVENTS_DELIVERED: &str = "parley_events_delivered_total";
/// Metric: streams dropped because their queue was full.
pub const HUB_DROPS: &str = "parley_hub_queue_drops_total";

/// Deliveries a connection may have queued. A full mailbox means the reader fell this far behind:
/// the connection gets `reload` and is closed instead of growing memory or slowing the others.
pub const CONNECTION_QUEUE: usize = 256;

/// Rendered events kept for replay, so a reconnect after a short blip renders nothing again.
const RECENT_CACHE: usize = 1024;

/// Membership changes kept for streams that register with a slightly older snapshot.
const RECENT_CHANGES: usize = 4096;

/// One connection's queue: empty (and unallocated) while idle.
#[derive(Default)]
struct Mailbox {
    inbox: Mutex<Inbox>,
    notify: Notify,
}

#[derive(Default)]
struct Inbox {
    queue: VecDeque<Arc<Delivery>>,
    closed: bool,
    overflowed: bool,
    /// The stream's socket, lent while its task waits with nothing queued: a delivery is then
    /// written straight to it by the publisher, and no task is woken (see [`Mailbox::push`]).
    socket: Option<Arc<TcpStream>>,
    /// The newest logged event this stream has (by replay or delivery): older ones are skipped.
    last_sent: i64,
    /// The queue's head is the rest of a frame already partly written.
    partial: bool,
}

impl Mailbox {
    fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers `d`: with `direct`, written to the socket at once when it is lent and takes all
    /// of it; queued for the stream's task otherwise. False when the mailbox is closed or just
    /// overflowed (and closed), or the stream has `d` already.
    fn push(&self, d: &Arc<Delivery>, direct: bool) -> bool {
        let queued = {
            let mut inbox = self.inbox();
            if inbox.closed {
                return false;
            }
            if let Some(id) = d.id {
                if id <= inbox.last_sent {
                    return false;
                }
                inbox.last_sent = id;
            }
            // Lent only while nothing is queued; anything queued takes it back (the task writes
            // the queue in order, then lends it again).
            let socket = inbox.socket.take();
            if let Some(socket) = socket.filter(|_| direct) {
                match wire::write_now(&socket, &d.chunks) {
                    Ok(pos) if wire::done(&d.chunks, pos) => {
                        inbox.socket = Some(socket);
                        return true;
                    }
                    // The rest of a frame: the task writes it first, with its deadline.
                    Ok(pos) => {
                        inbox.queue.push_back(Arc::new(Delivery {
                            id: None,
                            chunks: wire::rest(&d.chunks, pos),
                        }));
                        inbox.partial = true;
                        true
                    }
                    // The connection is broken (and part of the frame may be out): end the
                    // stream; the client's reconnect replays from its last whole event.
                    Err(_) => {
                        inbox.closed = true;
                        false
                    }
                }
            } else if inbox.queue.len() >= CONNECTION_QUEUE {
                metrics::counter!(HUB_DROPS).increment(1);
                inbox.overflowed = true;
                inbox.closed = true;
                // Keep the rest of a half-written frame, so the `reload` after it starts on a
                // frame boundary.
                let rest = if inbox.partial {
                    inbox.queue.pop_front()
                } else {
                    None
                };
                inbox.queue = VecDeque::new();
                inbox.queue.extend(rest);
                false
            } else {
                inbox.queue.push_back(d.clone());
                true
            }
        };
        self.notify.notify_one();
        queued
    }

    fn close(&self) {
        {
            let mut inbox = self.inbox();
            inbox.closed = true;
            inbox.socket = None;
        }
        self.notify.notify_one();
    }
}

struct Connection {
    id: u64,
    login_id: u64,
    mailbox: Arc<Mailbox>,
}

#[derive(Default)]
struct UserEntry {
    conns: Vec<Connection>,
    /// Conversations the user is in (tracked while a stream is open here).
    conversations: Vec<i64>,
    /// Who sees this user's presence (and whose presence this user sees): friends and everyone
    /// sharing a conversation, and the user themself.
    contacts: Contacts,
    /// Online on this node (a stream open, or closed within the grace period).
    online: bool,
    /// Other nodes (PostgreSQL deployments) where this user is online, and when they last said so.
    /// A short list (one entry per node), empty and unallocated on a single node.
    remote: Vec<(u64, Instant)>,
    /// Bumped at every connect: a pending "offline" from an earlier disconnect is then stale.
    generation: u64,
}

/// A set of user ids as a sorted list: a third of a `HashSet`'s size for the few ids most users
/// have, and one entry exists per user with a stream open.
#[derive(Default)]
struct Contacts(Vec<i64>);

impl Contacts {
    fn extend(&mut self, ids: impl IntoIterator<Item = i64>) {
        self.0.extend(ids);
        self.0.sort_unstable();
        self.0.dedup();
    }

    fn contains(&self, id: &i64) -> bool {
        self.0.binary_search(id).is_ok()
    }

    fn iter(&self) -> std::slice::Iter<'_, i64> {
        self.0.iter()
    }
}

impl UserEntry {
    /// Online anywhere: here or on another node.
    fn anywhere(&self) -> bool {
        self.online || !self.remote.is_empty()
    }
}

/// A change of who is in a conversation, as the log says it.
#[derive(Debug, Clone)]
enum Change {
    Join(i64, Vec<i64>),
    Leave(i64, Vec<i64>),
    Delete(i64),
}

impl Change {
    /// The change applied to one user's conversations.
    fn apply_to(&self, user: i64, conversations: &mut Vec<i64>) {
        match self {
            Change::Join(c, users) if users.contains(&user) && !conversations.contains(c) => {
                conversations.push(*c)
            }
            Change::Leave(c, users) if users.contains(&user) => conversations.retain(|x| x != c),
            Change::Delete(c) => conversations.retain(|x| x != c),
            _ => {}
        }
    }
}

#[derive(Default)]
struct State {
    users: HashMap<i64, UserEntry>,
    /// Conversation → its members with a stream open here.
    conversations: HashMap<i64, Vec<i64>>,
    /// Recent membership changes, by event id, for registrations behind the reader.
    changes: VecDeque<(i64, Change)>,
    /// Every change with a larger id is in `changes`.
    changes_floor: i64,
    /// The last event applied.
    applied: i64,
}

impl State {
    fn join(&mut self, conversation: i64, user: i64) {
        let members = self.conversations.entry(conversation).or_default();
        if !members.contains(&user) {
            members.push(user);
        }
    }

    fn leave(&mut self, conversation: i64, user: i64) {
        if let Some(members) = self.conversations.get_mut(&conversation) {
            members.retain(|u| *u != user);
            if members.is_empty() {
                self.conversations.remove(&conversation);
            }
        }
    }

    /// Applies a membership change to the users with streams open here.
    fn change(&mut self, id: i64, change: Change) {
        match &change {
            Change::Join(c, users) => {
                for u in users {
                    if let Some(e) = self.users.get_mut(u).filter(|e| !e.conns.is_empty()) {
                        if !e.conversations.contains(c) {
                            e.conversations.push(*c);
                        }
                        self.join(*c, *u);
                    }
                }
            }
            Change::Leave(c, users) => {
                for u in users {
                    if let Some(e) = self.users.get_mut(u) {
                        e.conversations.retain(|x| x != c);
                    }
                    self.leave(*c, *u);
                }
            }
            Change::Delete(c) => {
                for u in self.conversations.remove(c).unwrap_or_default() {
                    if let Some(e) = self.users.get_mut(&u) {
                        e.conversations.retain(|x| x != c);
                    }
                }
            }
        }
        if self.changes.len() == RECENT_CHANGES
            && let Some((old, _)) = self.changes.pop_front()
        {
            self.changes_floor = old;
        }
        self.changes.push_back((id, change));
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

/// Why a stream could not register.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The registration's snapshot is older than the membership changes the Hub still
    /// remembers: read it again.
    Stale,
    /// The user has the most streams allowed open here already.
    TooMany,
}

/// A logged event as the Hub routes it.
#[derive(Debug, Clone, Copy)]
pub struct Logged<'a> {
    /// Its id.
    pub id: i64,
    /// The event (None if unreadable).
    pub event: Option<&'a Event>,
    /// The conversation whose members are its audience.
    pub conversation: Option<i64>,
    /// Its explicit audience.
    pub explicit: &'a [i64],
}

/// The in-process fan-out.
pub struct Hub {
    state: Mutex<State>,
    recent: Mutex<VecDeque<Arc<Rendered>>>,
    next_conn: AtomicU64,
    grace: Duration,
    /// Wakes the log reader: an event was committed.
    pub(crate) wake: Notify,
    /// Wakes the announcer (PostgreSQL): events were committed that other nodes have not been
    /// told of (see `live::run_event_announcer`).
    pub(crate) announce: Notify,
    /// The newest event position known to be committed (PostgreSQL): by this node quietly, or
    /// named by any node's `NOTIFY`. The reader looks again soon while its cursor is below it
    /// (the event may be held back behind an older transaction).
    pub(crate) committed_high: std::sync::atomic::AtomicI64,
    /// This node's random id (presence messages from other nodes carry theirs).
    pub node: u64,
    /// Where local presence changes go to reach other nodes (set on PostgreSQL).
    outbox: Mutex<Option<mpsc::Sender<PresenceChange>>>,
    /// Set when the writer feeds the reader (see [`Hub::set_fed`]).
    fed: std::sync::atomic::AtomicBool,
    /// Shares a large fan-out's writes with a second thread.
    writes: share::Helper<Direct>,
}

/// A delivery to write straight to a stream (see [`Mailbox::push`]).
struct Direct(Arc<Mailbox>, Arc<Delivery>);

impl share::Write for Direct {
    fn write(&self) -> bool {
        self.0.push(&self.1, true)
    }
}

/// A registered stream: its mailbox. Dropping it unregisters the connection.
pub struct Subscription {
    mailbox: Arc<Mailbox>,
    hub: Arc<Hub>,
    user: i64,
    conn: u64,
    /// The last event the Hub had applied when this stream registered: later ones arrive here.
    pub position: i64,
}

impl Subscription {
    /// The next delivery; None once the Hub closed this connection (logout, overflow).
    pub async fn next(&self) -> Option<Arc<Delivery>> {
        loop {
            if let Some(d) = self.try_next() {
                return Some(d);
            }
            if self.is_closed() {
                return None;
            }
            self.mailbox.notify.notified().await;
        }
    }

    /// A queued delivery, if any.
    pub fn try_next(&self) -> Option<Arc<Delivery>> {
        let mut inbox = self.mailbox.inbox();
        let d = inbox.queue.pop_front();
        inbox.partial = false;
        if inbox.queue.is_empty() && inbox.queue.capacity() > 8 {
            // Give back what a burst took.
            inbox.queue = VecDeque::new();
        }
        d
    }

    /// This stream has every logged event up to `id` (its replay): deliveries of those are
    /// skipped, queued ones included.
    pub fn sent_through(&self, id: i64) {
        let mut inbox = self.mailbox.inbox();
        inbox.last_sent = inbox.last_sent.max(id);
        inbox.queue.retain(|d| d.id.is_none_or(|i| i > id));
    }

    /// Lends the stream's socket to the publisher while the task waits: deliveries are written
    /// straight to it. Only when nothing is queued (false then: take the queue first), and only
    /// while the task itself writes nothing (see [`Subscription::reclaim`]).
    pub fn lend(&self, socket: &Arc<TcpStream>) -> bool {
        let mut inbox = self.mailbox.inbox();
        if !inbox.queue.is_empty() || inbox.closed {
            return false;
        }
        inbox.socket = Some(socket.clone());
        true
    }

    /// Takes the socket back before the task writes to it itself; once this returns, nothing
    /// else writes to it until it is lent again. False when something is queued: it may be the
    /// rest of a half-written frame, so it goes out before anything else the task would write.
    pub fn reclaim(&self) -> bool {
        let mut inbox = self.mailbox.inbox();
        inbox.socket = None;
        inbox.queue.is_empty()
    }

    /// Whose stream this is.
    pub fn user(&self) -> i64 {
        self.user
    }

    /// True when the Hub closed this connection.
    pub fn is_closed(&self) -> bool {
        self.mailbox.inbox().closed
    }

    /// True when it was closed for falling behind (then the client must reload).
    pub fn overflowed(&self) -> bool {
        self.mailbox.inbox().overflowed
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.mailbox.inbox().socket = None;
        self.hub.clone().unregister(self.user, self.conn);
    }
}

impl Hub {
    /// A hub whose users stay online `grace` after their last stream closes.
    pub fn new(grace: Duration) -> Arc<Hub> {
        Arc::new(Hub {
            state: Mutex::new(State::default()),
            recent: Mutex::new(VecDeque::new()),
            next_conn: AtomicU64::new(1),
            grace,
            wake: Notify::new(),
            announce: Notify::new(),
            committed_high: std::sync::atomic::AtomicI64::new(0),
            node: rand::random(),
            outbox: Mutex::new(None),
            fed: std::sync::atomic::AtomicBool::new(false),
            writes: share::Helper::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the map consistent (every update is one step).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the log reader that events were committed (unless the writer feeds it directly).
    pub fn wake(&self) {
        if !self.fed.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    /// Events committed without a `NOTIFY` of their own: wakes this node's reader, and has the
    /// announcer tell the other nodes (one `NOTIFY` for all commits made while it was busy).
    pub fn committed_quietly(&self, event_id: i64) {
        self.committed_high.fetch_max(event_id, Ordering::SeqCst);
        self.wake();
        self.announce.notify_one();
    }

    /// A `NOTIFY` said events up to `position` were committed (PostgreSQL): wakes the reader,
    /// which keeps looking until it has read past `position`.
    pub fn committed_at(&self, position: i64) {
        self.committed_high.fetch_max(position, Ordering::SeqCst);
        self.wake();
    }

    /// The writer hands committed events to the reader itself (SQLite): [`Hub::wake`] has
    /// nothing to do.
    pub fn set_fed(&self) {
        self.fed.store(true, Ordering::Relaxed);
    }

    /// The reader starts after `position` (at start: the end of the log).
    pub fn start_at(&self, position: i64) {
        let mut st = self.lock();
        st.applied = position;
        st.changes_floor = position;
    }

    /// Registers a stream of `user` from `start`, read at some log position, unless `user` has
    /// `max` streams open here already. Fails with [`Refused::Stale`] when the Hub no longer
    /// remembers the membership changes since then.
    pub fn register(
        self: &Arc<Self>,
        user: i64,
        login_id: u64,
        start: &StreamStart,
        max: usize,
    ) -> Result<Subscription, Refused> {
        let mailbox = Arc::new(Mailbox::default());
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        if st.users.get(&user).is_some_and(|e| e.conns.len() >= max) {
            return Err(Refused::TooMany);
        }
        if start.position < st.changes_floor {
            return Err(Refused::Stale);
        }
        let position = st.applied;
        let tracked = st.users.get(&user).is_some_and(|e| !e.conns.is_empty());
        if !tracked {
            // The snapshot, brought up to what the Hub has applied since it was read.
            let mut conversations = start.conversations.clone();
            for (_, change) in st.changes.iter().filter(|(id, _)| *id > start.position) {
                change.apply_to(user, &mut conversations);
            }
            for c in &conversations {
                st.join(*c, user);
            }
            st.users.entry(user).or_default().conversations = conversations;
        }
        let entry = st.users.entry(user).or_default();
        // Most users have one stream: room for exactly one (a `Vec` would take four).
        entry.conns.reserve_exact(1);
        entry.conns.push(Connection {
            id: conn,
            login_id,
            mailbox: mailbox.clone(),
        });
        entry
            .contacts
            .extend(start.contacts.iter().copied().chain([user]));
        entry.generation += 1;
        let came_online = !entry.online;
        if came_online {
            let was_anywhere = entry.anywhere();
            entry.online = true;
            if !was_anywhere {
                let to: Vec<i64> = entry.contacts.iter().copied().collect();
                Self::send_presence(&mut st.users, user, true, &to);
            }
        }
        drop(st);
        if came_online {
            self.announce(user, true);
        }
        Ok(Subscription {
            mailbox,
            hub: self.clone(),
            user,
            conn,
            position,
        })
    }

    fn unregister(self: Arc<Self>, user: i64, conn: u64) {
        let generation = {
            let mut st = self.lock();
            let Some(entry) = st.users.get_mut(&user) else {
                return;
            };
            entry.conns.retain(|c| c.id != conn);
            if !entry.conns.is_empty() {
                return;
            }
            // Membership is tracked only while a stream is open; the next one reads it again.
            let conversations = std::mem::take(&mut entry.conversations);
            let generation = entry.generation;
            for c in conversations {
                st.leave(c, user);
            }
            generation
        };
        // Offline only if no stream came back within the grace period (a reload is not a goodbye).
        let grace = self.grace;
        let hub = self;
        let go_offline = move || {
            let mut st = hub.lock();
            let Some(entry) = st.users.get_mut(&user) else {
                return;
            };
            if !entry.conns.is_empty() || entry.generation != generation {
                return;
            }
            entry.online = false;
            let to: Vec<i64> = entry.contacts.iter().copied().collect();
            if entry.remote.is_empty() {
                st.users.remove(&user);
                Self::send_presence(&mut st.users, user, false, &to);
            }
            drop(st);
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
            if let Some(entry) = users.get(&u) {
                Self::push(entry, &delivery);
            }
        }
    }

    /// Queues `delivery` to each of the entry's streams (under the Hub's lock, so never written
    /// to a socket here: the streams' tasks write them); returns how many took it.
    fn push(entry: &UserEntry, delivery: &Arc<Delivery>) -> u64 {
        entry
            .conns
            .iter()
            .map(|c| u64::from(c.mailbox.push(delivery, false)))
            .sum()
    }

    /// Sends an ephemeral frame (never logged, never replayed: typing) to its audience's streams.
    pub fn send_ephemeral(&self, frame: &frame::Frame) {
        let delivery = Arc::new(Delivery {
            id: None,
            chunks: vec![frame.encode(None)],
        });
        // Ephemeral frames name their audience (nothing in the log resolves `Everyone` for them).
        let Audience::Users(to) = &frame.audience else {
            return;
        };
        let st = self.lock();
        for u in to.iter() {
            if let Some(entry) = st.users.get(u) {
                Self::push(entry, &delivery);
            }
        }
    }

    /// Streams `user` has open on this node.
    pub fn stream_count(&self, user: i64) -> usize {
        self.lock().users.get(&user).map_or(0, |e| e.conns.len())
    }

    /// Applies a logged event to the Hub (streams that close, who sees whose presence, who is in
    /// which conversation), then routes each of its frames to the open streams of its audience:
    /// `Everyone` frames to the conversation's members at this point of the log and the explicit
    /// audience, the others to the users they name (always some of those). Recipients who get
    /// the same frames share one delivery; nobody gets a frame meant for someone else. The frames
    /// are rendered (`render`, outside the lock) only if someone here is to receive them; replay
    /// renders the others when asked.
    pub fn publish(&self, logged: Logged<'_>, render: impl FnOnce() -> Arc<Rendered>) {
        let everyone = {
            let mut st = self.lock();
            if let Some(event) = logged.event {
                Self::apply(&mut st, logged.id, event);
            }
            st.applied = st.applied.max(logged.id);
            let mut everyone: Vec<i64> = logged
                .conversation
                .and_then(|c| st.conversations.get(&c))
                .cloned()
                .unwrap_or_default();
            everyone.extend(logged.explicit.iter().copied());
            everyone.sort_unstable();
            everyone.dedup();
            let users = &st.users;
            if !everyone
                .iter()
                .any(|u| users.get(u).is_some_and(|e| !e.conns.is_empty()))
            {
                return;
            }
            everyone
        };
        let rendered = render();
        {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() == RECENT_CACHE {
                recent.pop_front();
            }
            recent.push_back(rendered.clone());
        }
        let st = self.lock();
        let to = Self::route(&st.users, &everyone, &rendered);
        drop(st);
        // Outside the lock: most of these are socket writes (shared with a helper thread when
        // there are many). Only this reader publishes, and all of one event's writes are done
        // before the next event's start, so each stream still gets them in log order.
        let queued = self.writes.write_all(to);
        metrics::counter!(EVENTS_DELIVERED).increment(queued);
    }

    /// Who gets which of `rendered`'s frames: a delivery per open stream. Recipients who get the
    /// same frames share one delivery. Most frames go to `everyone` (sorted), so the few users a
    /// frame names get their own mix and everyone else the one shared delivery: no map per user.
    fn route(
        users: &HashMap<i64, UserEntry>,
        everyone: &[i64],
        rendered: &Rendered,
    ) -> Vec<Direct> {
        let conns = |u: i64| users.get(&u).map(|e| e.conns.as_slice()).unwrap_or(&[]);
        let delivery = |frames: &[usize]| {
            Arc::new(Delivery {
                id: Some(rendered.id),
                chunks: frames
                    .iter()
                    .map(|i| rendered.frames[*i].1.clone())
                    .collect(),
            })
        };
        let mut common = Vec::new();
        // (user, frame) for each user a frame names, in that order.
        let mut named: Vec<(i64, usize)> = Vec::new();
        for (i, (f, _)) in rendered.frames.iter().enumerate() {
            match &f.audience {
                Audience::Everyone => common.push(i),
                Audience::Users(list) => named.extend(list.iter().map(|u| (*u, i))),
            }
        }
        named.sort_unstable();
        let mut to = Vec::with_capacity(everyone.len());
        // The distinct mixes of the named users (few), each delivery shared.
        let mut mixes: Vec<(Vec<usize>, Arc<Delivery>)> = Vec::new();
        for group in named.chunk_by(|a, b| a.0 == b.0) {
            let user = group[0].0;
            let cs = conns(user);
            if cs.is_empty() {
                continue;
            }
            let mut frames: Vec<usize> = group.iter().map(|(_, i)| *i).collect();
            if everyone.binary_search(&user).is_ok() {
                frames.extend_from_slice(&common);
                frames.sort_unstable();
                frames.dedup();
            }
            let d = match mixes.iter().find(|(m, _)| *m == frames) {
                Some((_, d)) => d.clone(),
                None => {
                    let d = delivery(&frames);
                    mixes.push((frames, d.clone()));
                    d
                }
            };
            to.extend(cs.iter().map(|c| Direct(c.mailbox.clone(), d.clone())));
        }
        if !common.is_empty() {
            let d = delivery(&common);
            for &user in everyone {
                let cs = conns(user);
                if cs.is_empty() || named.binary_search_by_key(&user, |(u, _)| *u).is_ok() {
                    continue;
                }
                to.extend(cs.iter().map(|c| Direct(c.mailbox.clone(), d.clone())));
            }
        }
        to
    }

    /// The Hub's side of an event, in log order.
    fn apply(st: &mut State, id: i64, event: &Event) {
        match event {
            Event::SessionEnded { user_id, login_id } => {
                Self::close(st, *user_id, |c| c.login_id == *login_id)
            }
            Event::PasswordChanged {
                user_id,
                keep_login_id,
            } => Self::close(st, *user_id, |c| c.login_id != *keep_login_id),
            Event::UserDeactivated { user_id } => Self::close(st, *user_id, |_| true),
            Event::FriendAdded { a, b } => Self::link(st, &[a.id, b.id]),
            Event::ConversationCreated { conversation } => {
                let ids: Vec<i64> = conversation.members.iter().map(|m| m.id).collect();
                Self::link(st, &ids);
                st.change(id, Change::Join(conversation.id, ids));
            }
            Event::MembersChanged {
                conversation,
                added,
                removed,
                ..
            } => {
                if !added.is_empty() {
                    let ids: Vec<i64> = conversation.members.iter().map(|m| m.id).collect();
                    let added: Vec<i64> = added.iter().map(|m| m.id).collect();
                    Self::link_to(st, &ids, &added);
                    st.change(id, Change::Join(conversation.id, added));
                }
                if !removed.is_empty() {
                    let removed = removed.iter().map(|m| m.id).collect();
                    st.change(id, Change::Leave(conversation.id, removed));
                }
            }
            Event::ConversationDeleted {
                conversation_id, ..
            } => st.change(id, Change::Delete(*conversation_id)),
            _ => {}
        }
    }

    /// An event rendered earlier, if still cached.
    pub fn cached(&self, id: i64) -> Option<Arc<Rendered>> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let i = recent.binary_search_by_key(&id, |r| r.id).ok()?;
        Some(recent[i].clone())
    }

    fn close(st: &mut State, user: i64, which: impl Fn(&Connection) -> bool) {
        if let Some(entry) = st.users.get(&user) {
            for c in entry.conns.iter().filter(|c| which(c)) {
                c.mailbox.close();
            }
        }
    }

    /// Closes every stream of `user` but those of `keep` (password change).
    pub fn close_other_logins(&self, user: i64, keep: u64) {
        Self::close(&mut self.lock(), user, |c| c.login_id != keep);
    }

    /// These users now see each other's presence (new friends, or new co-members). The frames that
    /// show them to each other are rendered with their current presence, so nothing is sent here.
    fn link(st: &mut State, users_in: &[i64]) {
        for u in users_in {
            if let Some(e) = st.users.get_mut(u) {
                e.contacts.extend(users_in.iter().copied());
            }
        }
    }

    /// These users see `added`'s presence and the reverse (members added to a group).
    fn link_to(st: &mut State, members: &[i64], added: &[i64]) {
        for u in members {
            if let Some(e) = st.users.get_mut(u) {
                e.contacts.extend(added.iter().copied());
            }
        }
        for u in added {
            if let Some(e) = st.users.get_mut(u) {
                e.contacts.extend(members.iter().copied());
            }
        }
    }

    /// True when `user` has a stream open (or closed it within the grace period).
    pub fn is_online(&self, user: i64) -> bool {
        self.lock()
            .users
            .get(&user)
            .is_some_and(UserEntry::anywhere)
    }

    /// Who among `user`'s contacts is online (the presence snapshot of a new stream).
    pub fn online_contacts(&self, user: i64) -> Vec<i64> {
        let st = self.lock();
        let Some(e) = st.users.get(&user) else {
            return Vec::new();
        };
        e.contacts
            .iter()
            .copied()
            .filter(|u| st.users.get(u).is_some_and(UserEntry::anywhere))
            .collect()
    }

    /// Which of `users` are online.
    pub fn online_among(&self, users: &[i64]) -> Vec<i64> {
        let st = self.lock();
        users
            .iter()
            .copied()
            .filter(|u| st.users.get(u).is_some_and(UserEntry::anywhere))
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
        self.lock()
            .users
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
        let mut st = self.lock();
        let users = &mut st.users;
        let entry = users.entry(user).or_default();
        let before = entry.anywhere();
        entry.remote.retain(|(n, _)| *n != node);
        if online {
            entry.remote.push((node, Instant::now()));
        }
        let after = entry.anywhere();
        if !after && entry.conns.is_empty() {
            users.remove(&user);
        }
        if before != after {
            Self::tell_local_friends(users, user, after);
        }
    }

    /// Forgets other nodes' presence not refreshed since `max_age` (a node that died says nothing).
    pub fn expire_remote(&self, max_age: Duration) {
        let mut st = self.lock();
        let users = &mut st.users;
        let mut gone = Vec::new();
        for (user, entry) in users.iter_mut() {
            let before = entry.anywhere();
            entry.remote.retain(|(_, seen)| seen.elapsed() < max_age);
            if before && !entry.anywhere() {
                gone.push(*user);
            }
        }
        for user in gone {
            if users.get(&user).is_some_and(|e| e.conns.is_empty()) {
                users.remove(&user);
            }
            Self::tell_local_friends(users, user, false);
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
        let st = self.lock();
        let mut s = HubStats::default();
        for e in st.users.values() {
            s.streams += e.conns.len();
            s.online_here += usize::from(e.online);
            s.online_anywhere += usize::from(e.anywhere());
            for c in &e.conns {
                let depth = c.mailbox.inbox().queue.len();
                s.queued += depth;
                s.max_queue = s.max_queue.max(depth);
            }
        }
        s
    }

    /// How many streams are open (for logs and tests).
    pub fn connection_count(&self) -> usize {
        self.lock().users.values().map(|e| e.conns.len()).sum()
    }

    /// Who of `conversation`'s members have a stream open here, as the Hub tracks it (tests).
    pub fn members_online(&self, conversation: i64) -> Vec<i64> {
        let mut v = self
            .lock()
            .conversations
            .get(&conversation)
            .cloned()
            .unwrap_or_default();
        v.sort_unstable();
        v
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

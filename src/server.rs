//! The HTTP server: our own accept loop over hyper's HTTP/1 connections, so that no client can hold
//! a connection, a file descriptor or a restart hostage.
//!
//! - **Timeouts.** A connection must deliver a request's headers within the header timeout (from
//!   connecting, or from the first byte of a later request), may sit idle between requests for the
//!   idle timeout, must send a body within the body timeout (then 408), and must keep reading what
//!   we write (write timeout). A request being handled, and a live stream, are never idle.
//! - **Connection budget.** At most `max_connections` in all and `max_per_ip` per client address.
//!   When a limit is reached the connection idle the longest (preferring ones that never sent a
//!   request) is closed to make room; when none is idle the newcomer gets a quick 503. Running out
//!   of file descriptors anyway sheds the pending connection through a reserved descriptor instead
//!   of stalling accept.
//! - **Bounded shutdown.** On stop: accept nothing more, end the live streams, let in-flight requests
//!   finish within the shutdown timeout, then drop whatever is left.
//!
//! HTTP/1.1 only: browsers speak HTTP/2 only over TLS, which a reverse proxy terminates.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Descriptors kept for everything but client connections (database, WAL files, static files,
/// logs) when the connection budget is derived from the open-file limit.
const FD_RESERVE: u64 = 128;

/// The automatic connection budget never exceeds this (memory, not descriptors, is then the limit).
const AUTO_MAX_CONNECTIONS: u64 = 10_000;

/// What a shed connection reads before we close it.
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 5\r\nContent-Length: 32\r\n\r\nServer busy. Try again shortly.\n";

/// The server's limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time to send a request's headers.
    pub header_timeout: Duration,
    /// Time to send a request's body, from the end of its headers.
    pub body_timeout: Duration,
    /// Time to send an upload's body (`multipart/form-data`), from the end of its headers.
    pub upload_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Time a write may stay blocked because the client does not read.
    pub write_timeout: Duration,
    /// Time in-flight requests get at shutdown.
    pub shutdown_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections per client IP at most (0: no cap).
    pub max_per_ip: usize,
}

impl Limits {
    /// The limits configured in `config`, the automatic budget derived from `fd_soft_limit`.
    pub fn from_config(config: &crate::Config, fd_soft_limit: u64) -> Limits {
        let secs = Duration::from_secs;
        let max_connections = if config.max_connections > 0 {
            config.max_connections
        } else {
            auto_max_connections(fd_soft_limit)
        };
        Limits {
            header_timeout: secs(config.header_timeout_secs.max(1)),
            body_timeout: secs(config.body_timeout_secs.max(1)),
            upload_timeout: secs(
                config
                    .upload_timeout_secs
                    .max(config.body_timeout_secs)
                    .max(1),
            ),
            idle_timeout: secs(config.idle_timeout_secs.max(1)),
            write_timeout: secs(config.write_timeout_secs.max(1)),
            shutdown_timeout: secs(config.shutdown_timeout_secs),
            max_connections,
            max_per_ip: if config.trust_proxy {
                0
            } else {
                config.max_connections_per_ip
            },
        }
    }
}

/// The connection budget the open-file limit allows.
pub fn auto_max_connections(fd_soft_limit: u64) -> usize {
    let usable = fd_soft_limit.saturating_sub(FD_RESERVE) * 9 / 10;
    usize::try_from(usable.clamp(16, AUTO_MAX_CONNECTIONS)).unwrap_or(16)
}

/// Connections the kernel may hold for us before we accept them (it caps this at
/// `net.core.somaxconn`). Tokio's default of 1024 overflowed under a burst of 1,500 connects: the
/// overflow's handshakes then wait for SYN-ACK retries, and a new client waits a second or more.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the listening socket, with a backlog for bursts of connections.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // A restart must not wait for the old process's connections in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Raises the soft open-file limit to the hard limit and returns both (soft, hard) afterwards.
/// Each connection costs a descriptor: the usual soft limit of 1024 is what let ~1,100 silent
/// connections starve the server.
pub fn raise_fd_limit() -> io::Result<(u64, u64)> {
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    let raised = rlimit::increase_nofile_limit(u64::MAX)?;
    if raised != soft {
        tracing::info!(from = soft, to = raised, hard, "raised the open-file limit");
    } else {
        tracing::info!(soft, hard, "open-file limit");
    }
    Ok((raised, hard))
}

// ---------------------------------------------------------------- activity of one connection

/// What one connection is doing, shared by its I/O, its requests and its watchdog.
struct Activity {
    state: Mutex<ActivityState>,
    /// Wakes the watchdog: the deadline may have moved.
    changed: Notify,
}

struct ActivityState {
    /// Requests being handled (or whose response is being written).
    in_flight: usize,
    /// Requests answered so far.
    served: u64,
    /// Since when the connection waits for its next request (connect or end of the last response).
    waiting_since: Instant,
    /// When the first byte of the next request's head arrived (after the first request).
    head_since: Option<Instant>,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                served: 0,
                waiting_since: Instant::now(),
                head_since: None,
            }),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ActivityState> {
        // Every update is one step, so a poisoned lock still holds consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the connection is to be closed if nothing happens, or `None` while a request is busy.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let s = self.lock();
        if s.in_flight > 0 {
            return None;
        }
        Some(if s.served == 0 {
            s.waiting_since + limits.header_timeout
        } else if let Some(head) = s.head_since {
            head + limits.header_timeout
        } else {
            s.waiting_since + limits.idle_timeout
        })
    }

    /// Idle (no request in flight): when it started waiting, and whether it ever sent a request.
    fn idle_since(&self) -> Option<(bool, Instant)> {
        let s = self.lock();
        (s.in_flight == 0).then_some((s.served > 0, s.waiting_since))
    }

    fn bytes_read(&self) {
        let mut s = self.lock();
        if s.in_flight == 0 && s.served > 0 && s.head_since.is_none() {
            s.head_since = Some(Instant::now());
            drop(s);
            self.changed.notify_one();
        }
    }

    fn begin(self: &Arc<Self>) -> RequestGuard {
        {
            let mut s = self.lock();
            s.in_flight += 1;
            s.head_since = None;
        }
        self.changed.notify_one();
        RequestGuard(self.clone())
    }
}

/// Held from a request's head to the end of its response body.
struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        {
            let mut s = self.0.lock();
            s.in_flight = s.in_flight.saturating_sub(1);
            s.served += 1;
            if s.in_flight == 0 {
                s.waiting_since = Instant::now();
            }
        }
        self.0.changed.notify_one();
    }
}

// ---------------------------------------------------------------- the connection registry

struct Entry {
    ip: IpAddr,
    activity: Arc<Activity>,
    evict: CancellationToken,
    /// Told to close, not closed yet: its descriptor still counts.
    closing: bool,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    conns: HashMap<u64, Entry>,
    /// Open connections per IP, closing ones included.
    per_ip: HashMap<IpAddr, usize>,
    /// Connections told to close that have not yet, in all and per IP.
    closing: usize,
    closing_per_ip: HashMap<IpAddr, usize>,
}

/// What to do with a new connection.
enum Admission {
    /// Serve it.
    Admit(u64, Arc<Activity>, CancellationToken),
    /// Idle connections are closing to make room: ask again when one has.
    Wait,
    /// Every connection is busy: answer 503.
    Shed,
}

fn decrement(map: &mut HashMap<IpAddr, usize>, ip: &IpAddr) {
    if let Some(n) = map.get_mut(ip) {
        *n -= 1;
        if *n == 0 {
            map.remove(ip);
        }
    }
}

impl Registry {
    fn remove(&mut self, id: u64) {
        let Some(e) = self.conns.remove(&id) else {
            return;
        };
        decrement(&mut self.per_ip, &e.ip);
        if e.closing {
            self.closing -= 1;
            decrement(&mut self.closing_per_ip, &e.ip);
        }
    }

    /// Tells the connection idle the longest (of `ip`, or of anyone) to close, preferring
    /// connections that never sent a request. False when every candidate is busy or closing.
    fn evict_one(&mut self, ip: Option<IpAddr>) -> bool {
        let victim = self
            .conns
            .iter()
            .filter(|(_, e)| !e.closing && ip.is_none_or(|ip| e.ip == ip))
            .filter_map(|(id, e)| e.activity.idle_since().map(|k| (k, *id)))
            .min()
            .map(|(_, id)| id);
        let Some(e) = victim.and_then(|id| self.conns.get_mut(&id)) else {
            return false;
        };
        e.closing = true;
        e.evict.cancel();
        let ip = e.ip;
        self.closing += 1;
        *self.closing_per_ip.entry(ip).or_default() += 1;
        true
    }

    /// Makes sure enough connections are closing that `open` falls below `max`; false when
    /// there are not enough idle ones.
    fn make_room(&mut self, ip: Option<IpAddr>, open: usize, max: usize) -> bool {
        let closing = |r: &Registry| match ip {
            Some(ip) => r.closing_per_ip.get(&ip).copied().unwrap_or(0),
            None => r.closing,
        };
        while open.saturating_sub(closing(self)) >= max {
            if !self.evict_one(ip) {
                return false;
            }
        }
        true
    }
}

/// The open connections, counted in all and per client IP.
pub struct Connections {
    registry: Mutex<Registry>,
    /// Wakes an admission waiting for a closing connection to be gone.
    released: Notify,
    /// What every live stream's entry shares: busy for good, never told to close (a stream
    /// then keeps no watchdog state of its own).
    stream_activity: Arc<Activity>,
    stream_evict: CancellationToken,
}

impl Default for Connections {
    fn default() -> Connections {
        let stream_activity = Activity::new();
        // A stream is in flight for its whole life.
        stream_activity.lock().in_flight = 1;
        Connections {
            registry: Mutex::default(),
            released: Notify::new(),
            stream_activity,
            stream_evict: CancellationToken::new(),
        }
    }
}

impl Connections {
    /// An empty registry.
    pub fn new() -> Arc<Connections> {
        Arc::new(Connections::default())
    }

    /// The connection became a live stream: still counted, busy for good, its own watchdog state
    /// freed.
    fn became_stream(&self, id: u64) {
        if let Some(e) = self.lock().conns.get_mut(&id) {
            e.activity = self.stream_activity.clone();
            e.evict = self.stream_evict.clone();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open connections (closing ones included: their descriptors are still open).
    pub fn count(&self) -> usize {
        self.lock().conns.len()
    }

    /// Open connections from `ip`.
    pub fn count_from(&self, ip: IpAddr) -> usize {
        self.lock().per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Makes room for a connection from `ip` within `limits`.
    fn admit(&self, ip: IpAddr, limits: &Limits) -> Admission {
        let mut r = self.lock();
        let max = limits.max_connections.max(1);
        let from_ip = r.per_ip.get(&ip).copied().unwrap_or(0);
        if limits.max_per_ip > 0 && from_ip >= limits.max_per_ip {
            if !r.make_room(Some(ip), from_ip, limits.max_per_ip) {
                return Admission::Shed;
            }
            return Admission::Wait;
        }
        let open = r.conns.len();
        if open >= max {
            if !r.make_room(None, open, max) {
                return Admission::Shed;
            }
            return Admission::Wait;
        }
        r.next_id += 1;
        let id = r.next_id;
        let activity = Activity::new();
        let evict = CancellationToken::new();
        r.conns.insert(
            id,
            Entry {
                ip,
                activity: activity.clone(),
                evict: evict.clone(),
                closing: false,
            },
        );
        *r.per_ip.entry(ip).or_default() += 1;
        Admission::Admit(id, activity, evict)
    }

    /// Admits a connection from `ip`, waiting (briefly) for idle connections closed to make room.
    async fn admit_or_wait(
        &self,
        ip: IpAddr,
        limits: &Limits,
    ) -> Option<(u64, Arc<Activity>, CancellationToken)> {
        // A closing connection is gone within microseconds; this bounds a stuck one.
        let deadline = Instant::now() + Duration::from_millis(250);
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before asking, so a release in between is not missed.
            released.as_mut().enable();
            match self.admit(ip, limits) {
                Admission::Admit(id, activity, evict) => return Some((id, activity, evict)),
                Admission::Shed => return None,
                Admission::Wait => {
                    if tokio::time::timeout_at(deadline, released).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    fn release(&self, id: u64) {
        self.lock().remove(id);
        self.released.notify_waiters();
    }
}

// ---------------------------------------------------------------- I/O and bodies

/// The client socket: reports reads to the watchdog and fails a write blocked for too long.
struct GuardedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
    write_timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl GuardedIo {
    fn on_write<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.write_timeout;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client stopped reading",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        r
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.on_write(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.on_write(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.on_write(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The error a request body yields when it did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the body timeout")]
pub struct BodyTimeout;

/// A request body that must be complete by a deadline.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    timed_out: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        // The data first: a body that is complete is never failed by a timer that just fired.
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyTimeout.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as in flight until it is written or dropped.
struct GuardedBody {
    inner: Body,
    _guard: RequestGuard,
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn request_timeout() -> Response<Body> {
    let mut res = Response::new(Body::from(
        "The request took too long to arrive. Try again.\n",
    ));
    *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

/// True for a `multipart/form-data` request: an upload, which gets the upload timeout.
pub fn is_upload(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// Hands one request to the router, with the body deadline, the peer address and in-flight
/// accounting around it.
async fn handle(
    router: Router,
    activity: Arc<Activity>,
    peer: SocketAddr,
    (body_timeout, upload_timeout): (Duration, Duration),
    takeover: Takeover,
    req: Request<Incoming>,
) -> Result<Response<GuardedBody>, Infallible> {
    let guard = activity.begin();
    // Files take longer to arrive than forms (25 MiB on a slow line).
    let body_timeout = if is_upload(req.headers()) {
        upload_timeout
    } else {
        body_timeout
    };
    let timed_out = Arc::new(AtomicBool::new(false));
    let mut req = req.map(|b| {
        if b.is_end_stream() {
            Body::new(b)
        } else {
            Body::new(DeadlineBody {
                inner: b,
                deadline: Box::pin(tokio::time::sleep(body_timeout)),
                timed_out: timed_out.clone(),
            })
        }
    });
    req.extensions_mut().insert(ConnectInfo(peer));
    req.extensions_mut().insert(takeover);
    let res = match router.oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    // Whatever the handler made of a body cut short, the client hears why, and the connection
    // (with the rest of that body unread) closes.
    let res = if timed_out.load(Ordering::Relaxed) {
        tracing::debug!(%peer, "request body timed out");
        request_timeout()
    } else {
        res
    };
    Ok(res.map(|inner| GuardedBody {
        inner,
        _guard: guard,
    }))
}

// ---------------------------------------------------------------- accepting and serving

/// Tokens that end connections at shutdown.
#[derive(Clone)]
struct Shutdown {
    /// Finish the request in flight, then close.
    graceful: CancellationToken,
    /// Close now.
    hard: CancellationToken,
}

/// A live stream to run on the bare socket once its response head is written: it spawns the
/// stream's task (one allocation: the task is the stream) and holds the guard until it ends.
pub type StreamRunner = Box<dyn FnOnce(TcpStream, StreamGuard) + Send>;

/// Keeps a stream's connection counted in the budget; dropped when the stream ends.
pub struct StreamGuard(#[allow(dead_code, reason = "held for its Drop")] Admitted);

/// Where a handler (`GET /events`) leaves the stream that takes its connection over, for the
/// server loop (one slot per connection).
#[derive(Clone, Default)]
pub struct Takeover(Arc<Mutex<Option<StreamRunner>>>);

impl Takeover {
    /// Leaves `run` for the server loop.
    pub fn put(&self, run: StreamRunner) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(run);
    }

    fn take(&self) -> Option<StreamRunner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Keeps a connection counted in the budget until dropped (with the connection's task, or with
/// the stream that took the connection over).
struct Admitted {
    connections: Arc<Connections>,
    id: u64,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.connections.release(self.id);
    }
}

/// One HTTP/1.1 connection. When `GET /events` answered on it, the connection is the stream's
/// from then on: hyper hands the bare socket back (no more HTTP buffers) and the stream runs on it
/// in a small task of its own, still counted in the budget and never idle.
#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Arc<Limits>,
    activity: Arc<Activity>,
    evict: CancellationToken,
    shutdown: Shutdown,
    admitted: Admitted,
) {
    let _ = stream.set_nodelay(true);
    let io = GuardedIo {
        inner: stream,
        activity: activity.clone(),
        write_timeout: limits.write_timeout,
        stalled: None,
    };
    let takeover = Takeover::default();
    let service = {
        let activity = activity.clone();
        let body_timeout = (limits.body_timeout, limits.upload_timeout);
        let slot = takeover.clone();
        hyper::service::service_fn(move |req| {
            Box::pin(handle(
                router.clone(),
                activity.clone(),
                peer,
                body_timeout,
                slot.clone(),
                req,
            ))
        })
    };
    // Our watchdog enforces the header and idle timeouts (hyper's own header timer would also
    // cut idle keep-alive at the header timeout).
    let mut conn = http1::Builder::new()
        .keep_alive(true)
        .header_read_timeout(None)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(io), service);
    let mut graceful = false;
    loop {
        let deadline = activity.deadline(&limits);
        let changed = activity.changed.notified();
        let mut go_graceful = false;
        tokio::select! {
            r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => {
                match r {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                        return;
                    }
                }
            }
            _ = changed => {}
            _ = sleep_until(deadline) => {
                if activity.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(%peer, "closing a connection that sent nothing in time");
                    return;
                }
            }
            _ = evict.cancelled() => {
                tracing::debug!(%peer, "closing an idle connection to make room");
                return;
            }
            _ = shutdown.graceful.cancelled(), if !graceful => go_graceful = true,
            _ = shutdown.hard.cancelled() => return,
        }
        if go_graceful {
            graceful = true;
            Pin::new(&mut conn).graceful_shutdown();
        }
    }
    let Some(stream) = takeover.take() else {
        let mut io = conn.into_parts().io.into_inner();
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
        return;
    };
    // The stream is busy for its whole life: never idle, never evicted to make room. It ends
    // at shutdown with the streams, before the connections are waited for.
    admitted.connections.became_stream(admitted.id);
    let io = conn.into_parts().io.into_inner().inner;
    stream(io, StreamGuard(admitted));
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Answers a connection we cannot take with a 503 (best effort, never waiting) and closes it.
fn shed(stream: TcpStream) {
    let _ = stream.try_write(BUSY_RESPONSE);
}

/// `accept` failed for want of file descriptors (EMFILE, ENFILE).
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}

/// A descriptor held in reserve: released, it lets us accept and shed a connection when the
/// process has no descriptor left, so clients get a quick answer instead of waiting in the
/// backlog, and accept does not spin.
fn reserve_fd() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// Logs accept errors at most once every ten seconds, with how many there were.
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    fn note(&mut self, detail: impl std::fmt::Display, what: &str) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < Duration::from_secs(10))
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(%detail, also = self.suppressed, "{what}");
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// Serves `router` on `listener` until `stop` is cancelled; then cancels `streams` (the live
/// streams end), lets in-flight requests finish within the shutdown timeout, and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    connections: Arc<Connections>,
    stop: CancellationToken,
    streams: CancellationToken,
) {
    let limits = Arc::new(limits);
    let shutdown = Shutdown {
        graceful: CancellationToken::new(),
        hard: CancellationToken::new(),
    };
    // A tracker, not a JoinSet: a finished connection's task is freed at once (a JoinSet keeps
    // it until reaped, which during a burst of connects left ~1 KiB per live stream behind).
    let tasks = TaskTracker::new();
    let mut reserve = reserve_fd();
    let mut errors = ErrorLog {
        last: None,
        suppressed: 0,
    };
    let mut shed_log = ErrorLog {
        last: None,
        suppressed: 0,
    };
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let admitted = connections.admit_or_wait(peer.ip(), &limits).await;
                    let Some((id, activity, evict)) = admitted else {
                        shed_log.note(
                            peer.ip(),
                            "connection limit reached and every connection busy: shedding",
                        );
                        shed(stream);
                        continue;
                    };
                    let admitted = Admitted { connections: connections.clone(), id };
                    tasks.spawn(serve_connection(
                        stream,
                        peer,
                        router.clone(),
                        limits.clone(),
                        activity,
                        evict,
                        shutdown.clone(),
                        admitted,
                    ));
                }
                Err(e) if out_of_descriptors(&e) => {
                    errors.note(&e, "out of file descriptors: shedding new connections");
                    // Free the reserve, take the waiting connection and close it at once.
                    reserve = None;
                    if let Ok(Ok((stream, _))) =
                        tokio::time::timeout(Duration::from_millis(5), listener.accept()).await
                    {
                        shed(stream);
                    }
                    reserve = reserve.or_else(reserve_fd);
                    if reserve.is_none() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                Err(e) => {
                    // Per-connection failures (a client that reset before we accepted) and
                    // anything else: note it and go on, without a long pause.
                    errors.note(&e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            },
        }
    }
    drop(listener);
    drop(reserve);
    streams.cancel();
    shutdown.graceful.cancel();
    tasks.close();
    let open = tasks.len();
    let finished = tokio::time::timeout(limits.shutdown_timeout, tasks.wait())
        .await
        .is_ok();
    if !finished {
        tracing::warn!(
            connections = tasks.len(),
            of = open,
            "requests still in flight at the shutdown deadline: closing them"
        );
        // Every connection's task ends at this (the request in flight is dropped with it).
        shutdown.hard.cancel();
        if tokio::time::timeout(Duration::from_secs(1), tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections did not close; exiting anyway");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            upload_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            max_connections: 3,
            max_per_ip: 2,
        }
    }

    #[test]
    fn the_automatic_budget_leaves_room_for_files_and_stays_bounded() {
        assert_eq!(auto_max_connections(1024), 806);
        assert_eq!(auto_max_connections(100), 16);
        assert_eq!(auto_max_connections(1 << 20), 10_000);
    }

    fn admitted(a: Admission) -> (u64, Arc<Activity>, CancellationToken) {
        match a {
            Admission::Admit(id, activity, evict) => (id, activity, evict),
            Admission::Wait => panic!("waits"),
            Admission::Shed => panic!("shed"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_ip_makes_room_by_closing_its_idlest_connection_and_busy_ones_are_kept() {
        let conns = Connections::new();
        let l = limits();
        let a: IpAddr = "10.0.0.1".parse().expect("a valid address");
        let b: IpAddr = "10.0.0.2".parse().expect("a valid address");
        let (first_id, first, first_evict) = admitted(conns.admit(a, &l));
        tokio::time::advance(Duration::from_secs(1)).await;
        let (_, second, second_evict) = admitted(conns.admit(a, &l));
        // The IP is full: its oldest idle connection is told to close, and the newcomer waits
        // until it has (its descriptor is still open until then).
        assert!(matches!(conns.admit(a, &l), Admission::Wait));
        assert!(first_evict.is_cancelled() && !second_evict.is_cancelled());
        assert!(
            matches!(conns.admit(a, &l), Admission::Wait),
            "one closing is enough"
        );
        conns.release(first_id);
        let (_, third, _) = admitted(conns.admit(a, &l));
        assert_eq!(conns.count_from(a), 2);
        // Busy connections are never closed to make room: the newcomer is shed instead.
        let _busy = (first.begin(), second.begin(), third.begin());
        assert!(matches!(conns.admit(a, &l), Admission::Shed));
        // Another IP still gets in; at the total cap, the idle one makes room.
        let (c_id, _c, c_evict) = admitted(conns.admit(b, &l));
        assert_eq!(conns.count(), 3);
        assert!(matches!(conns.admit(b, &l), Admission::Wait));
        assert!(c_evict.is_cancelled());
        conns.release(c_id);
        let (_, d, _) = admitted(conns.admit(b, &l));
        assert_eq!(conns.count(), 3);
        // Everything busy: shed.
        let _d_busy = d.begin();
        assert!(matches!(conns.admit(b, &l), Admission::Shed));
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_what_the_connection_does() {
        let l = limits();
        let act = Activity::new();
        let t0 = Instant::now();
        assert_eq!(act.deadline(&l), Some(t0 + l.header_timeout));
        let guard = act.begin();
        assert_eq!(act.deadline(&l), None, "busy: no deadline");
        tokio::time::advance(Duration::from_secs(5)).await;
        drop(guard);
        let t1 = Instant::now();
        assert_eq!(act.deadline(&l), Some(t1 + l.idle_timeout));
        tokio::time::advance(Duration::from_secs(20)).await;
        act.bytes_read();
        assert_eq!(
            act.deadline(&l),
            Some(Instant::now() + l.header_timeout),
            "a new head started: the header timeout counts from its first byte"
        );
    }
}

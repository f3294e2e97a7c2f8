//! Building and running the application: database, migrations, session store, the Hub and its
//! log reader, background tasks, the listener, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum_login::AuthManagerLayerBuilder;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower_sessions::cookie::SameSite;
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::auth::Backend;
use crate::auth::password::Hasher;
use crate::config::Config;
use crate::db::{self, Db};
use crate::live::{self, hub::Hub};
use crate::sessions::Store;
use crate::state::{AppState, RateLimits};
use crate::web;
use crate::web::events::{Takeover, run_stream};

/// A built, not yet running, application.
pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
    store: Store,
    start_cursor: i64,
    feed: Option<db::writer::Feed>,
}

/// Connects to the database and applies all migrations (ours and the session store's).
pub async fn connect_and_migrate(config: &Config) -> anyhow::Result<(Db, Store)> {
    let db = Db::connect(&config.database_url).await?;
    db.migrate().await.context("applying migrations")?;
    let store = Store::new(&db);
    store
        .migrate()
        .await
        .context("creating the session table")?;
    Ok((db, store))
}

impl App {
    /// Builds the app: connects, migrates, binds the listener (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let (db, store) = connect_and_migrate(&config).await?;
        // Before the log's end is read: a batch committed in between comes through the feed.
        let feed = match &db {
            Db::Sqlite { write, .. } => Some(write.feed().await),
            Db::Postgres(_) => None,
        };
        let start_cursor = {
            let mut rc = db.read().await?;
            db::events::last_id(&mut rc.conn()).await?
        };
        let hasher = Hasher::new(2).await?;
        let config = Arc::new(config);
        let state = AppState {
            db: db.clone(),
            hub: Hub::new(Duration::from_secs(config.presence_grace_secs)),
            limits: Arc::new(RateLimits::new(
                config.rate_limit_ip,
                config.rate_limit_account,
            )),
            hasher: hasher.clone(),
            config: config.clone(),
            shutdown: CancellationToken::new(),
        };
        let https = config.is_https();
        let session_layer = SessionManagerLayer::new(store.clone())
            .with_name(if https { "__Host-parley" } else { "parley" })
            .with_secure(https)
            .with_same_site(SameSite::Lax)
            .with_http_only(true)
            .with_path("/")
            .with_expiry(Expiry::OnInactivity(time::Duration::days(i64::from(
                config.session_idle_days,
            ))));
        let auth_layer =
            AuthManagerLayerBuilder::new(Backend::new(db, hasher), session_layer).build();
        let router = web::router(state.clone()).layer(auth_layer);
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        Ok(App {
            listener,
            router,
            state,
            store,
            start_cursor,
            feed,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.config.addr)
    }

    /// The shared state (tests look at the Hub through it).
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `stop` is cancelled; then open streams end and in-flight requests finish.
    pub async fn run_until(self, stop: CancellationToken) -> anyhow::Result<()> {
        let App {
            listener,
            router,
            state,
            store,
            start_cursor,
            feed,
        } = self;
        let shutdown = state.shutdown.clone();
        let mut tasks = tokio::task::JoinSet::new();
        state.hub.start_at(start_cursor);
        if feed.is_some() {
            state.hub.set_fed();
        }
        tasks.spawn(live::run_log_reader(
            state.hub.clone(),
            state.db.clone(),
            start_cursor,
            feed,
            shutdown.clone(),
        ));
        if let Db::Postgres(pool) = &state.db {
            // Several nodes may share this database: events and presence travel between them.
            let refresh_now = Arc::new(tokio::sync::Notify::new());
            let (presence_tx, presence_rx) = tokio::sync::mpsc::channel(1024);
            state.hub.set_outbox(presence_tx);
            tasks.spawn(live::run_pg_listener(
                state.hub.clone(),
                pool.clone(),
                refresh_now.clone(),
                shutdown.clone(),
            ));
            tasks.spawn(live::run_presence_publisher(
                state.hub.clone(),
                pool.clone(),
                presence_rx,
                refresh_now,
                shutdown.clone(),
            ));
        }
        tasks.spawn(housekeeping(state.clone(), store, shutdown.clone()));

        tracing::info!(addr = %listener.local_addr()?, url = %state.config.public_url(), "Parley is listening");
        let signal = {
            let shutdown = shutdown.clone();
            async move {
                stop.cancelled().await;
                tracing::info!("shutting down");
                // Streams end now, so the server's graceful wait is for real requests only.
                shutdown.cancel();
            }
        };
        serve(listener, router, signal, shutdown.clone()).await;
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
        state.db.close().await;
        Ok(())
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run(self) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let trigger = stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            trigger.cancel();
        });
        self.run_until(stop).await
    }
}

/// Accepts connections until `stop` resolves, then lets in-flight requests finish.
async fn serve(
    listener: TcpListener,
    router: Router,
    stop: impl std::future::Future<Output = ()>,
    shutdown: CancellationToken,
) {
    let conns = TaskTracker::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    conns.spawn(serve_connection(tcp, peer, router.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = &mut stop => break,
        }
    }
    drop(listener);
    conns.close();
    if tokio::time::timeout(Duration::from_secs(10), conns.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s; stopping anyway");
    }
}

/// One HTTP/1.1 connection. When `GET /events` answered on it, the connection is the stream's
/// from then on: the HTTP server hands the bare socket back (no more buffers) and the stream
/// runs on it in its own small task.
async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) {
    // Small frames go out at once (no Nagle delay).
    let _ = tcp.set_nodelay(true);
    let takeover = Takeover::default();
    let slot = takeover.clone();
    let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(slot.clone());
        Box::pin(router.clone().oneshot(req.map(Body::new)))
    });
    let mut conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(TokioIo::new(tcp), svc);
    let done = tokio::select! {
        r = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => r,
        _ = shutdown.cancelled() => {
            Pin::new(&mut conn).graceful_shutdown();
            std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)).await
        }
    };
    let job = takeover.take();
    match (done, job) {
        (Ok(()), Some(job)) => {
            let io = conn.into_parts().io.into_inner();
            let stream = run_stream(io, job);
            tracing::trace!(bytes = std::mem::size_of_val(&stream), "stream task");
            tokio::spawn(stream);
        }
        (Ok(()), None) => {
            let mut io = conn.into_parts().io.into_inner();
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut io).await;
        }
        (Err(e), _) => tracing::debug!(error = %e, "connection ended"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Periodic cleanup: expired sessions, old events, idle rate-limit keys. Stops at shutdown.
async fn housekeeping(state: AppState, store: Store, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(e) = store.delete_expired().await {
            tracing::warn!(error = %e, "deleting expired sessions failed");
        }
        let cutoff = db::now_ms() - i64::from(state.config.event_retention_hours) * 3_600_000;
        match prune(&state.db, cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "pruned old events"),
            Err(e) => tracing::warn!(error = %e, "pruning events failed"),
        }
        state.limits.sweep();
    }
}

/// Deletes events older than `cutoff_ms` (clients asking for them get `reload`).
pub async fn prune(db: &Db, cutoff_ms: i64) -> sqlx::Result<u64> {
    let mut tx = db.begin().await?;
    let n = db::events::prune(&mut tx.conn(), cutoff_ms).await?;
    tx.commit().await?;
    Ok(n)
}

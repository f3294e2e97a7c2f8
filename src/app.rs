//! Building and running the application: database, migrations, session store, the Hub and its
//! log reader, background tasks, the listener (served by [`crate::server`]), and a shutdown that
//! ends within its deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::{HeaderName, HeaderValue};
use axum_login::AuthManagerLayerBuilder;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::auth::Backend;
use crate::auth::password::Hasher;
use crate::config::Config;
use crate::db::{self, Db};
use crate::live::{self, hub::Hub};
use crate::server::{self, Connections, Limits};
use crate::sessions::Store;
use crate::state::{AppState, RateLimits};
use crate::web;

/// A built, not yet running, application.
pub struct App {
    listener: TcpListener,
    router: Router,
    state: AppState,
    store: Store,
    start_cursor: i64,
    limits: Limits,
    metrics: Option<(TcpListener, PrometheusHandle)>,
    feed: Option<db::writer::Feed>,
}

/// Connects to the database and applies all migrations (ours and the session store's).
pub async fn connect_and_migrate(config: &Config) -> anyhow::Result<(Db, Store)> {
    let db = Db::connect(&config.database_url).await?;
    db.migrate().await.context("applying migrations")?;
    db.index_behind(Duration::from_millis(config.search_index_lag_ms))
        .await;
    let store = Store::new(&db);
    store
        .migrate()
        .await
        .context("creating the session table")?;
    fill_name_keys(&db)
        .await
        .context("computing look-alike keys of names")?;
    Ok((db, store))
}

/// Computes the look-alike keys of users that have none of the current version (an upgraded
/// install, or new Unicode data), in batches.
async fn fill_name_keys(db: &Db) -> anyhow::Result<()> {
    use crate::domain::{NAME_KEYS_VERSION, name_keys};
    let mut total = 0;
    loop {
        let mut tx = db.begin().await?;
        let users = db::users::without_name_keys(&mut tx.conn(), NAME_KEYS_VERSION, 500).await?;
        if users.is_empty() {
            break;
        }
        let now = db::now_ms();
        for u in &users {
            let (user, display) = (name_keys(&u.username), name_keys(&u.display_name));
            let v = NAME_KEYS_VERSION;
            db::users::set_name_keys(&mut tx.conn(), u.id, "u", &user, v, now).await?;
            db::users::set_name_keys(&mut tx.conn(), u.id, "d", &display, v, now).await?;
        }
        tx.commit().await?;
        total += users.len();
    }
    if total > 0 {
        tracing::info!(users = total, "computed look-alike keys of names");
    }
    Ok(())
}

impl App {
    /// Builds the app: connects, migrates, binds the listener (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<App> {
        // First, so that everything recorded from here on is counted.
        let metrics = match config.metrics_addr {
            Some(addr) => {
                let handle = crate::metrics::install()?;
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the metrics address {addr}"))?;
                Some((listener, handle))
            }
            None => None,
        };
        let fd_soft_limit = match server::raise_fd_limit() {
            Ok((soft, _)) => soft,
            Err(e) => {
                tracing::warn!(error = %e, "could not read or raise the open-file limit");
                1024
            }
        };
        let limits = Limits::from_config(&config, fd_soft_limit);
        tracing::info!(
            max_connections = limits.max_connections,
            per_ip = limits.max_per_ip,
            "connection budget"
        );
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
        let files = Arc::new(crate::files::Files::open(&config.files_dir())?);
        let vapid = Arc::new(
            crate::push::Vapid::load_or_create(&db, config.push_contact())
                .await
                .context("loading the Web Push (VAPID) keys")?,
        );
        let config = Arc::new(config);
        let hub = Hub::new(Duration::from_secs(config.presence_grace_secs));
        let state = AppState {
            posts: crate::chat::posting::Combiner::start(&db, &hub),
            db: db.clone(),
            hub,
            limits: Arc::new(match &db {
                Db::Postgres(pool) => RateLimits::new(&config).shared_in(pool.clone(), &config),
                Db::Sqlite { .. } => RateLimits::new(&config),
            }),
            connections: Connections::new(),
            hasher: hasher.clone(),
            config: config.clone(),
            shutdown: CancellationToken::new(),
            files,
            vapid,
            admin_wake: Arc::new(tokio::sync::Notify::new()),
        };
        let https = config.is_https();
        let idle = time::Duration::try_from(config.session_idle()).unwrap_or(time::Duration::MAX);
        let session_layer = SessionManagerLayer::new(store.clone())
            .with_name(if https { "__Host-parley" } else { "parley" })
            .with_secure(https)
            .with_same_site(SameSite::Lax)
            .with_http_only(true)
            .with_path("/")
            .with_expiry(Expiry::OnInactivity(idle));
        let auth_layer = AuthManagerLayerBuilder::new(
            Backend::new(db, hasher, store.pg_caches()),
            session_layer,
        )
        .build();
        let mut router = web::router(state.clone()).layer(auth_layer);
        if metrics.is_some() {
            router = router.layer(axum::middleware::from_fn(crate::metrics::track_http));
        }
        if let Some(name) = &config.node_name {
            let value =
                HeaderValue::from_str(name).context("--node-name must be a header value")?;
            router = router.layer(SetResponseHeaderLayer::overriding(
                HeaderName::from_static("x-parley-node"),
                value,
            ));
        }
        let listener =
            server::bind(config.addr).with_context(|| format!("binding {}", config.addr))?;
        Ok(App {
            listener,
            router,
            state,
            store,
            start_cursor,
            limits,
            metrics,
            feed,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| self.state.config.addr)
    }

    /// The bound metrics address, when metrics are on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The shared state (tests look at the Hub through it).
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `stop` is cancelled; then open streams end and in-flight requests get the
    /// shutdown timeout to finish before their connections are dropped.
    pub async fn run_until(self, stop: CancellationToken) -> anyhow::Result<()> {
        let App {
            listener,
            router,
            state,
            store,
            start_cursor,
            limits,
            metrics,
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
            Duration::from_millis(state.config.log_poll_ms),
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
                store.pg_caches(),
                refresh_now.clone(),
                state.admin_wake.clone(),
                shutdown.clone(),
            ));
            tasks.spawn(live::run_event_announcer(
                state.hub.clone(),
                pool.clone(),
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
        tasks.spawn(sweep_files(state.clone()));
        // Web Push reads the committed log on its own, apart from delivery (see push::sender).
        tasks.spawn(crate::push::sender::run(
            state.clone(),
            state.vapid.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(apply_admin_changes(state.clone(), shutdown.clone()));
        if let Some((listener, handle)) = metrics {
            tracing::info!(addr = %listener.local_addr()?, "metrics at /metrics");
            tasks.spawn(crate::metrics::upkeep(handle.clone(), shutdown.clone()));
            let app = crate::metrics::router(handle, state.hub.clone());
            let stop = shutdown.clone();
            tasks.spawn(async move {
                let served = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            });
        }

        tracing::info!(addr = %listener.local_addr()?, url = %state.config.public_url(), "Parley is listening");
        let deadline = limits.shutdown_timeout;
        let logged_stop = {
            let stop = stop.clone();
            let signalled = CancellationToken::new();
            let out = signalled.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                tracing::info!(deadline_secs = deadline.as_secs(), "shutting down");
                signalled.cancel();
            });
            out
        };
        // Streams end first (the server cancels `shutdown`), so the wait is for real requests only.
        server::serve(
            listener,
            router,
            limits,
            state.connections.clone(),
            logged_stop,
            shutdown.clone(),
        )
        .await;
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
        // Every acknowledged write is already committed (and, on SQLite, synced); closing waits
        // for connections a cut-off request may still hold, so it is bounded too.
        if tokio::time::timeout(Duration::from_secs(5), state.db.close())
            .await
            .is_err()
        {
            tracing::warn!("database connections still busy at exit");
        }
        tracing::info!("stopped");
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
        state.limits.sweep_shared().await;
    }
}

/// Removes attachment files that no row refers to (a crash between a deletion's commit and the
/// removal of its files, or an upload cut short by one). Once, at start-up.
async fn sweep_files(state: AppState) {
    match state.files.sweep(&state.db).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(files = n, "removed orphaned attachment files"),
        Err(e) => tracing::warn!(error = %e, "sweeping attachment files failed"),
    }
}

/// Acts on what `parley admin` wrote (closing a deactivated user's streams, updating admin
/// pages), until shutdown. SQLite: a poll of the pending entries (an indexed read of an empty
/// range) every second, since another process cannot wake us. PostgreSQL: `NOTIFY parley_admin`
/// wakes every node, and a slower poll covers a lost listener.
async fn apply_admin_changes(state: AppState, shutdown: CancellationToken) {
    let poll = match state.db {
        Db::Sqlite { .. } => Duration::from_secs(1),
        Db::Postgres(_) => Duration::from_secs(5),
    };
    loop {
        match crate::chat::admin::apply_pending(&state.cx()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(entries = n, "applied changes made by parley admin"),
            Err(e) => tracing::warn!(error = %e, "applying changes made by parley admin failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = state.admin_wake.notified() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Deletes events older than `cutoff_ms` (clients asking for them get `reload`).
pub async fn prune(db: &Db, cutoff_ms: i64) -> sqlx::Result<u64> {
    let mut tx = db.begin().await?;
    let n = db::events::prune(&mut tx.conn(), cutoff_ms).await?;
    tx.commit().await?;
    Ok(n)
}

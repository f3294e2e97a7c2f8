//! Configuration: command-line flags, each with an environment variable (clap).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `parley`: a self-hosted real-time chat server.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings shared by every command.
    #[command(flatten)]
    pub config: Config,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Copy a whole instance into an empty database (the way from SQLite to PostgreSQL).
    Copy(CopyArgs),
    /// Write a consistent copy of the SQLite database to FILE while the server keeps running.
    Backup(BackupArgs),
    /// Manage accounts, on a stopped or a running instance (a running one acts within seconds).
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// `parley admin …`: each goes straight to the database and is recorded in the admin log.
#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Create an account (whatever the registration mode); the password is read from the first
    /// line of standard input.
    CreateUser {
        /// The username.
        username: String,
        /// Make it an administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Make a user an administrator.
    Promote {
        /// The username.
        username: String,
    },
    /// Make an administrator a regular user (the last active one cannot be).
    Demote {
        /// The username.
        username: String,
    },
    /// Print a one-time link (valid 24 hours) that lets the user set a new password; uses
    /// --public-url.
    ResetPassword {
        /// The username.
        username: String,
    },
    /// Deactivate an account: its sessions and live streams end, it cannot log in; its messages
    /// stay.
    Deactivate {
        /// The username.
        username: String,
    },
    /// Let a deactivated account log in again.
    Reactivate {
        /// The username.
        username: String,
    },
}

/// `parley copy`: what to copy where.
#[derive(Debug, Clone, Args)]
pub struct CopyArgs {
    /// The instance to copy, e.g. `sqlite://parley.db` (read only; stop the server first, or
    /// what it writes after the copy started is not copied).
    #[arg(long)]
    pub from: String,
    /// An empty database to copy into, e.g. `postgres://parley:secret@localhost/parley`.
    /// Migrations are applied to it first; a target holding any data is refused.
    #[arg(long)]
    pub to: String,
    /// Also copy login sessions, so nobody has to log in again after the move.
    #[arg(long)]
    pub sessions: bool,
}

/// `parley backup`: where to write the copy.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// The file to create (it must not exist). Restore by starting Parley on it.
    pub file: PathBuf,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Every setting, with its default.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(
        long,
        env = "PARLEY_ADDR",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub addr: SocketAddr,

    /// Database: `sqlite://FILE` (created on first start) or `postgres://USER:PASS@HOST/DB`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://parley.db",
        global = true
    )]
    pub database_url: String,

    /// The URL people open, e.g. `https://chat.example.org`. Its origin is what cross-site checks
    /// compare with; https turns on Secure cookies (with the `__Host-` prefix) and HSTS.
    /// Default: `http://` + the listen address.
    #[arg(long, env = "PARLEY_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Log format.
    #[arg(long, env = "PARLEY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Directory with the static assets (CSS, JS).
    #[arg(
        long,
        env = "PARLEY_STATIC_DIR",
        default_value = "static",
        global = true
    )]
    pub static_dir: PathBuf,

    /// Login and register attempts allowed per client IP per minute.
    #[arg(
        long,
        env = "PARLEY_RATE_LIMIT_IP",
        default_value_t = 30,
        global = true
    )]
    pub rate_limit_ip: u32,

    /// Login attempts allowed per account from one client IP per minute (then 429 for that pair
    /// only: the account's owner elsewhere is not locked out).
    #[arg(
        long,
        env = "PARLEY_RATE_LIMIT_ACCOUNT",
        default_value_t = 10,
        global = true
    )]
    pub rate_limit_account: u32,

    /// Failed logins of one account (from all IPs together, within 15 minutes) before each further
    /// attempt on it is slowed down: 0.25 s, doubling with each failure, at most 5 s. Never refused.
    #[arg(
        long,
        env = "PARLEY_LOGIN_BACKOFF_AFTER",
        default_value_t = 5,
        global = true
    )]
    pub login_backoff_after: u32,

    /// Take the client IP from the last `X-Forwarded-For` hop (only behind your own reverse proxy).
    /// The per-IP connection cap then does not apply (every connection comes from the proxy).
    #[arg(
        long,
        env = "PARLEY_TRUST_PROXY",
        default_value_t = false,
        global = true
    )]
    pub trust_proxy: bool,

    /// A session unused for this many days ends (fractions allowed).
    #[arg(
        long,
        env = "PARLEY_SESSION_IDLE_DAYS",
        default_value_t = 14.0,
        global = true
    )]
    pub session_idle_days: f64,

    /// A session ends this many days after login, used or not (fractions allowed).
    #[arg(
        long,
        env = "PARLEY_SESSION_MAX_DAYS",
        default_value_t = 90.0,
        global = true
    )]
    pub session_max_days: f64,

    /// Seconds a client has to send a request's headers: from connecting, or from the first byte of
    /// a later request on a kept-alive connection. Silent or trickling clients are disconnected.
    #[arg(
        long,
        env = "PARLEY_HEADER_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    pub header_timeout_secs: u64,

    /// Seconds a client has to send a request's whole body, counted from the end of its headers
    /// (then 408 and the connection closes).
    #[arg(
        long,
        env = "PARLEY_BODY_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    pub body_timeout_secs: u64,

    /// Seconds a kept-alive connection may sit idle between requests.
    #[arg(
        long,
        env = "PARLEY_IDLE_TIMEOUT_SECS",
        default_value_t = 60,
        global = true
    )]
    pub idle_timeout_secs: u64,

    /// Seconds a client may leave the server unable to write to it (it does not read) before the
    /// connection is dropped.
    #[arg(
        long,
        env = "PARLEY_WRITE_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    pub write_timeout_secs: u64,

    /// Seconds in-flight requests get to finish at shutdown (SIGTERM, Ctrl-C); then the process
    /// exits anyway. Live streams end at once.
    #[arg(
        long,
        env = "PARLEY_SHUTDOWN_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    pub shutdown_timeout_secs: u64,

    /// Open connections at most; 0 = automatic (90% of the open-file limit left after 128 for the
    /// database and files, at most 10000). When full, the connection idle the longest is closed to
    /// make room; if every one is busy, the new one gets a quick 503.
    #[arg(
        long,
        env = "PARLEY_MAX_CONNECTIONS",
        default_value_t = 0,
        global = true
    )]
    pub max_connections: usize,

    /// Open connections per client IP at most (0 = no cap); as with the total, an idle one of that
    /// IP makes room, else 503.
    #[arg(
        long,
        env = "PARLEY_MAX_CONNECTIONS_PER_IP",
        default_value_t = 256,
        global = true
    )]
    pub max_connections_per_ip: usize,

    /// Live streams (`/events`) one user may have open on this node; one more answers 429.
    /// A browser opens one however many tabs it shows.
    #[arg(
        long,
        env = "PARLEY_MAX_STREAMS_PER_USER",
        default_value_t = 10,
        global = true
    )]
    pub max_streams_per_user: u32,

    /// Messages one user may post per second, on average (see `--message-burst`).
    #[arg(long, env = "PARLEY_MESSAGE_RATE", default_value_t = 2, global = true)]
    pub message_rate: u32,

    /// Messages one user may post in a quick burst before `--message-rate` applies.
    #[arg(
        long,
        env = "PARLEY_MESSAGE_BURST",
        default_value_t = 10,
        global = true
    )]
    pub message_burst: u32,

    /// Friend requests one user may send per hour.
    #[arg(
        long,
        env = "PARLEY_FRIEND_REQUESTS_PER_HOUR",
        default_value_t = 30,
        global = true
    )]
    pub friend_requests_per_hour: u32,

    /// Groups one user may create per hour.
    #[arg(
        long,
        env = "PARLEY_GROUPS_PER_HOUR",
        default_value_t = 20,
        global = true
    )]
    pub groups_per_hour: u32,

    /// How long the event log keeps events for clients that reconnect (hours).
    #[arg(
        long,
        env = "PARLEY_EVENT_RETENTION_HOURS",
        default_value_t = 72,
        global = true
    )]
    pub event_retention_hours: u32,

    /// Seconds a user stays "online" after their last stream closes (so a reload does not flicker).
    #[arg(
        long,
        env = "PARLEY_PRESENCE_GRACE_SECS",
        default_value_t = 5,
        global = true
    )]
    pub presence_grace_secs: u64,

    /// Serve Prometheus metrics at `http://ADDR/metrics` (a separate listener, so the public
    /// address never exposes them). Off unless set.
    #[arg(long, env = "PARLEY_METRICS_ADDR", global = true)]
    pub metrics_addr: Option<SocketAddr>,

    /// Where attachments are stored. Default: beside the SQLite database (`parley.db` ->
    /// `parley-files/`); with PostgreSQL, `parley-files/` in the working directory. Several nodes
    /// must all mount ONE shared directory here (see README, Attachments).
    #[arg(long, env = "PARLEY_FILES_DIR", global = true)]
    pub files_dir: Option<PathBuf>,

    /// The largest upload: one message's files and text together, in MiB (then 413). Every other
    /// form stays limited to 64 KiB.
    #[arg(
        long,
        env = "PARLEY_MAX_UPLOAD_MIB",
        default_value_t = 25,
        global = true
    )]
    pub max_upload_mib: u64,

    /// Seconds a client has to send an upload's whole body (instead of `--body-timeout-secs`,
    /// which is too short for 25 MiB on a slow line).
    #[arg(
        long,
        env = "PARLEY_UPLOAD_TIMEOUT_SECS",
        default_value_t = 600,
        global = true
    )]
    pub upload_timeout_secs: u64,

    /// Name this node in an `X-Parley-Node` response header (to see which node behind a load
    /// balancer answered). Off unless set.
    #[arg(long, env = "PARLEY_NODE_NAME", global = true)]
    pub node_name: Option<String>,

    /// Who runs this server, for push services (the VAPID `sub`): a `mailto:` or `https:` URL.
    /// Defaults to the public URL.
    #[arg(long, env = "PARLEY_PUSH_CONTACT", global = true)]
    pub push_contact: Option<String>,

    /// Accept push endpoints on http://127.0.0.1 (tests run a push service there). Never in
    /// production: a push endpoint is otherwise always https.
    #[arg(long, env = "PARLEY_PUSH_ALLOW_INSECURE", hide = true, global = true)]
    pub push_allow_insecure: bool,

    /// PostgreSQL: how often (ms) a node reads the event log without being woken by another
    /// node's `NOTIFY`. Only a lost notice waits this long. Tests raise it to show that the
    /// notices alone carry events between nodes.
    #[arg(
        long,
        env = "PARLEY_LOG_POLL_MS",
        default_value_t = 500,
        value_parser = clap::value_parser!(u64).range(10..),
        hide = true,
        global = true
    )]
    pub log_poll_ms: u64,

    /// SQLite: the most positions of the event log a reconnecting stream is replayed across;
    /// further behind, its page reloads instead (replay reads every event in the range). Tests
    /// lower it.
    #[arg(
        long,
        env = "PARLEY_REPLAY_SPAN",
        default_value_t = 20_000,
        value_parser = clap::value_parser!(u64).range(1..),
        hide = true,
        global = true
    )]
    pub replay_span: u64,

    /// SQLite: how long (ms) new messages may wait to join the search index when fewer than
    /// `writer::INDEX_AT` came (a search indexes what is left first, so it never misses them).
    /// Tests change it.
    #[arg(
        long,
        env = "PARLEY_SEARCH_INDEX_LAG_MS",
        default_value_t = 500,
        value_parser = clap::value_parser!(u64).range(1..),
        hide = true,
        global = true
    )]
    pub search_index_lag_ms: u64,
}

impl Config {
    /// The public URL without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.addr),
        }
    }

    /// `scheme://host[:port]` of the public URL: what a browser sends as `Origin`.
    pub fn public_origin(&self) -> String {
        let url = self.public_url();
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", url.as_str()));
        let host = rest.split('/').next().unwrap_or(rest);
        format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            host.to_ascii_lowercase()
        )
    }

    /// True when served over https (Secure cookies, HSTS).
    pub fn is_https(&self) -> bool {
        self.public_url()
            .to_ascii_lowercase()
            .starts_with("https://")
    }

    /// The VAPID contact: `--push-contact`, else the public URL.
    pub fn push_contact(&self) -> String {
        self.push_contact
            .clone()
            .unwrap_or_else(|| self.public_url())
    }

    /// The longest a session lives after login.
    pub fn session_max_age(&self) -> std::time::Duration {
        days(self.session_max_days)
    }

    /// How long an unused session lives.
    pub fn session_idle(&self) -> std::time::Duration {
        days(self.session_idle_days)
    }

    /// The attachments directory: as configured, else beside the SQLite database.
    pub fn files_dir(&self) -> PathBuf {
        match &self.files_dir {
            Some(d) => d.clone(),
            None => default_files_dir(&self.database_url),
        }
    }

    /// The largest upload in bytes.
    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_mib.saturating_mul(1024 * 1024)
    }

    /// A config for tests and embedding: defaults, with the given database.
    pub fn for_database(database_url: impl Into<String>) -> Config {
        let mut cli = Cli::parse_from(["parley"]);
        cli.config.database_url = database_url.into();
        cli.config
    }
}

/// Where a database's attachments live unless configured: `DIR/NAME.db` -> `DIR/NAME-files`
/// (so a backup `b.db` finds its `b-files`); PostgreSQL (or an in-memory SQLite): `parley-files`.
pub fn default_files_dir(database_url: &str) -> PathBuf {
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|p| p.split('?').next().unwrap_or(p))
        .filter(|p| !p.is_empty() && !p.contains(":memory:"));
    let Some(path) = path else {
        return PathBuf::from("parley-files");
    };
    let path = std::path::Path::new(path);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "parley".into());
    path.with_file_name(format!("{stem}-files"))
}

/// `d` days as a duration (negative or NaN: zero; huge: about a century).
fn days(d: f64) -> std::time::Duration {
    let secs = d * 86_400.0;
    if secs.is_nan() || secs <= 0.0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::from_secs_f64(secs.min(3.2e9))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_origin_drops_path_and_case() {
        let mut c = Config::for_database("sqlite::memory:");
        c.public_url = Some("HTTPS://Chat.Example.org/app/".into());
        assert_eq!(c.public_origin(), "https://chat.example.org");
        assert!(c.is_https());
        c.public_url = None;
        assert_eq!(c.public_origin(), "http://127.0.0.1:3000");
    }

    #[test]
    fn files_live_beside_the_sqlite_database_by_default() {
        let d = |u: &str| default_files_dir(u).display().to_string();
        assert_eq!(d("sqlite://parley.db"), "parley-files");
        assert_eq!(
            d("sqlite:///var/lib/parley/chat.db?mode=rwc"),
            "/var/lib/parley/chat-files"
        );
        assert_eq!(d("sqlite::memory:"), "parley-files");
        assert_eq!(d("postgres://u:p@h/db"), "parley-files");
        let mut c = Config::for_database("sqlite://x.db");
        c.files_dir = Some("/srv/files".into());
        assert_eq!(c.files_dir().display().to_string(), "/srv/files");
    }

    #[test]
    fn session_lifetimes_accept_fractions_of_a_day() {
        let mut c = Config::for_database("sqlite::memory:");
        assert_eq!(c.session_max_age().as_secs(), 90 * 86_400);
        c.session_max_days = 0.5;
        assert_eq!(c.session_max_age().as_secs(), 43_200);
        c.session_idle_days = -1.0;
        assert_eq!(c.session_idle().as_secs(), 0);
        c.session_idle_days = f64::INFINITY;
        assert!(c.session_idle().as_secs() > 3_000_000_000);
    }
}

//! Shared application state, handed to handlers through `State`, and the rate limits in it.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRef;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::auth::password::Hasher;
use crate::config::Config;
use crate::db::Db;
use crate::domain::FieldErrors;
use crate::error::AppError;
use crate::live::hub::Hub;
use crate::server::Connections;

/// Everything a handler may need.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The live fan-out.
    pub hub: Arc<Hub>,
    /// Settings.
    pub config: Arc<Config>,
    /// Password hashing.
    pub hasher: Hasher,
    /// Login, register and per-user rate limits.
    pub limits: Arc<RateLimits>,
    /// Open client connections (the server's budget).
    pub connections: Arc<Connections>,
    /// Cancelled at shutdown: open streams end.
    pub shutdown: CancellationToken,
    /// Attachment storage.
    pub files: Arc<crate::files::Files>,
    /// Plain posts, combined on SQLite.
    pub posts: crate::chat::posting::Combiner,
    /// The server's Web Push (VAPID) identity.
    pub vapid: Arc<crate::push::Vapid>,
    /// Woken when `parley admin` changed something (PostgreSQL's `NOTIFY parley_admin`).
    pub admin_wake: Arc<tokio::sync::Notify>,
}

impl AppState {
    /// What use cases need of the state.
    pub fn cx(&self) -> crate::chat::Ctx<'_> {
        crate::chat::Ctx {
            db: &self.db,
            hub: &self.hub,
            hasher: &self.hasher,
            files: &self.files,
            posts: &self.posts,
        }
    }
}

impl FromRef<AppState> for Db {
    fn from_ref(s: &AppState) -> Db {
        s.db.clone()
    }
}

/// Failed logins of one account are forgotten this long after the last one.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// The first slowed-down login attempt waits this long; each further failure doubles it.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// The longest a login attempt is slowed down.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Accounts whose failures are remembered at once at most (a spray of made-up usernames must not
/// grow memory without bound); beyond it, the oldest are forgotten first.
const FAILURE_KEYS: usize = 100_000;

/// How long to slow down a login attempt on an account with `failures` recent failures.
pub fn login_backoff(failures: u32, after: u32) -> Duration {
    if failures < after.max(1) {
        return Duration::ZERO;
    }
    let doublings = (failures - after.max(1)).min(16);
    BACKOFF_BASE.saturating_mul(1 << doublings).min(BACKOFF_MAX)
}

/// Rate limits, in memory, per node.
///
/// - login and register attempts per client IP (`--rate-limit-ip` a minute);
/// - login attempts per (account, client IP) (`--rate-limit-account` a minute): strict, 429;
/// - failed logins per account across all IPs: past `--login-backoff-after`, every attempt on that
///   account waits a doubling delay first (at most 5 s). Slowed, never refused, so an attacker
///   elsewhere cannot lock a user out of their own account;
/// - per user: messages (a rate with a burst), friend requests and groups per hour.
pub struct RateLimits {
    per_ip: DefaultKeyedRateLimiter<String>,
    per_account_ip: DefaultKeyedRateLimiter<(String, String)>,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
    backoff_after: u32,
    messages: DefaultKeyedRateLimiter<i64>,
    friend_requests: DefaultKeyedRateLimiter<i64>,
    groups: DefaultKeyedRateLimiter<i64>,
    /// On PostgreSQL (several nodes): the same quotas counted in the database, so that a limit
    /// is not multiplied by the number of nodes.
    shared: Option<Shared>,
}

/// The quotas as GCRA parameters (interval between attempts in ms, burst), for the database.
#[derive(Clone)]
struct Shared {
    pool: sqlx::PgPool,
    per_ip: (i64, i64),
    per_account_ip: (i64, i64),
    messages: (i64, i64),
    friend_requests: (i64, i64),
    groups: (i64, i64),
}

/// `n` attempts per `period_ms`, all at once if need be.
fn gcra(n: u32, period_ms: i64) -> (i64, i64) {
    let n = i64::from(n.max(1));
    ((period_ms / n).max(1), n)
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(nonzero(n))
}

fn per_hour(n: u32) -> Quota {
    Quota::per_hour(nonzero(n))
}

fn throttled(field: &'static str, message: &str) -> AppError {
    AppError::Throttled(FieldErrors::one(field, message))
}

impl RateLimits {
    /// The limits configured in `config`.
    pub fn new(config: &Config) -> RateLimits {
        RateLimits {
            per_ip: RateLimiter::keyed(per_minute(config.rate_limit_ip)),
            per_account_ip: RateLimiter::keyed(per_minute(config.rate_limit_account)),
            failures: Mutex::new(HashMap::new()),
            backoff_after: config.login_backoff_after,
            messages: RateLimiter::keyed(
                Quota::per_second(nonzero(config.message_rate))
                    .allow_burst(nonzero(config.message_burst)),
            ),
            friend_requests: RateLimiter::keyed(per_hour(config.friend_requests_per_hour)),
            groups: RateLimiter::keyed(per_hour(config.groups_per_hour)),
            shared: None,
        }
    }

    /// Counts every limit in this PostgreSQL database too, across all nodes.
    pub fn shared_in(mut self, pool: sqlx::PgPool, config: &Config) -> RateLimits {
        let rate = i64::from(config.message_rate.max(1));
        self.shared = Some(Shared {
            pool,
            per_ip: gcra(config.rate_limit_ip, 60_000),
            per_account_ip: gcra(config.rate_limit_account, 60_000),
            messages: ((1000 / rate).max(1), i64::from(config.message_burst.max(1))),
            friend_requests: gcra(config.friend_requests_per_hour, 3_600_000),
            groups: gcra(config.groups_per_hour, 3_600_000),
        });
        self
    }

    /// One attempt on `key` in the shared count (always allowed on one node, or when the
    /// database cannot be asked: the node's own limit still holds).
    async fn shared_allows(&self, key: String, pick: fn(&Shared) -> (i64, i64)) -> bool {
        let Some(s) = &self.shared else {
            return true;
        };
        let (interval, burst) = pick(s);
        match crate::db::limits::gcra(&s.pool, &key, crate::db::now_ms(), interval, burst).await {
            Ok(allowed) => allowed,
            Err(e) => {
                tracing::warn!(error = %e, "shared rate limit unavailable; this node's applies");
                true
            }
        }
    }

    /// Takes one attempt from `ip`'s allowance; false when spent.
    pub async fn allow_ip(&self, ip: &str) -> bool {
        self.per_ip.check_key(&ip.to_owned()).is_ok()
            && self.shared_allows(format!("ip:{ip}"), |s| s.per_ip).await
    }

    /// Takes one login attempt on `account` from `ip`; false when that pair's allowance is spent.
    pub async fn allow_account(&self, account: &str, ip: &str) -> bool {
        self.per_account_ip
            .check_key(&(account.to_owned(), ip.to_owned()))
            .is_ok()
            && self
                .shared_allows(format!("login:{account}:{ip}"), |s| s.per_account_ip)
                .await
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long to slow down the next login attempt on `account`.
    pub fn login_delay(&self, account: &str) -> Duration {
        let failures = self
            .failures()
            .get(account)
            .filter(|(_, at)| at.elapsed() < FAILURE_MEMORY)
            .map_or(0, |(n, _)| *n);
        login_backoff(failures, self.backoff_after)
    }

    /// A login on `account` failed.
    pub fn login_failed(&self, account: &str) {
        let mut map = self.failures();
        if map.len() >= FAILURE_KEYS && !map.contains_key(account) {
            map.retain(|_, (_, at)| at.elapsed() < FAILURE_MEMORY);
            if map.len() >= FAILURE_KEYS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(account.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= FAILURE_MEMORY {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = Instant::now();
    }

    /// A login on `account` succeeded: its failures are forgotten.
    pub fn login_succeeded(&self, account: &str) {
        self.failures().remove(account);
    }

    /// One message by `user` on this node; `Throttled` when they post faster than the configured
    /// rate. On PostgreSQL also returns the shared quota, which the post itself takes from in its
    /// own statement (`chat::messages::post`): no round trip or commit of its own, and a refused
    /// post writes nothing.
    pub fn message(&self, user: i64) -> Result<Option<crate::db::limits::Gcra>, AppError> {
        if self.messages.check_key(&user).is_err() {
            return Err(AppError::message_throttled());
        }
        Ok(self.shared.as_ref().map(|s| crate::db::limits::Gcra {
            key: format!("msg:{user}"),
            interval: s.messages.0,
            burst: s.messages.1,
        }))
    }

    /// One friend request by `user`; `Throttled` past the hourly allowance.
    pub async fn friend_request(&self, user: i64) -> Result<(), AppError> {
        let ok = self.friend_requests.check_key(&user).is_ok()
            && self
                .shared_allows(format!("req:{user}"), |s| s.friend_requests)
                .await;
        if ok {
            Ok(())
        } else {
            Err(throttled(
                "username",
                "You have sent a lot of friend requests in the last hour. Try again later.",
            ))
        }
    }

    /// One new group by `user`; `Throttled` past the hourly allowance.
    pub async fn group(&self, user: i64) -> Result<(), AppError> {
        let ok = self.groups.check_key(&user).is_ok()
            && self
                .shared_allows(format!("group:{user}"), |s| s.groups)
                .await;
        if ok {
            Ok(())
        } else {
            Err(throttled(
                "title",
                "You have created a lot of groups in the last hour. Try again later.",
            ))
        }
    }

    /// Forgets shared keys whose allowance is full again (keeps the table small).
    pub async fn sweep_shared(&self) {
        if let Some(s) = &self.shared
            && let Err(e) = crate::db::limits::sweep(&s.pool, crate::db::now_ms()).await
        {
            tracing::warn!(error = %e, "sweeping shared rate limits failed");
        }
    }

    /// Forgets keys whose allowance is full again (keeps memory bounded).
    pub fn sweep(&self) {
        self.per_ip.retain_recent();
        self.per_account_ip.retain_recent();
        self.messages.retain_recent();
        self.friend_requests.retain_recent();
        self.groups.retain_recent();
        self.per_ip.shrink_to_fit();
        self.per_account_ip.shrink_to_fit();
        self.messages.shrink_to_fit();
        self.friend_requests.shrink_to_fit();
        self.groups.shrink_to_fit();
        self.failures()
            .retain(|_, (_, at)| at.elapsed() < FAILURE_MEMORY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_backoff_starts_after_the_threshold_doubles_and_is_capped() {
        assert_eq!(login_backoff(4, 5), Duration::ZERO);
        assert_eq!(login_backoff(5, 5), Duration::from_millis(250));
        assert_eq!(login_backoff(6, 5), Duration::from_millis(500));
        assert_eq!(login_backoff(9, 5), Duration::from_secs(4));
        assert_eq!(login_backoff(10, 5), Duration::from_secs(5));
        assert_eq!(login_backoff(u32::MAX, 5), Duration::from_secs(5));
    }

    #[test]
    fn failures_slow_down_an_account_until_a_success() {
        let mut c = Config::for_database("sqlite::memory:");
        c.login_backoff_after = 2;
        let l = RateLimits::new(&c);
        l.login_failed("ann");
        assert_eq!(l.login_delay("ann"), Duration::ZERO);
        l.login_failed("ann");
        assert!(l.login_delay("ann") > Duration::ZERO);
        assert_eq!(l.login_delay("bob"), Duration::ZERO, "per account");
        l.login_succeeded("ann");
        assert_eq!(l.login_delay("ann"), Duration::ZERO);
    }

    #[tokio::test]
    async fn per_user_limits_allow_a_burst_then_throttle_that_user_only() {
        let mut c = Config::for_database("sqlite::memory:");
        c.message_rate = 1;
        c.message_burst = 3;
        c.friend_requests_per_hour = 1;
        let l = RateLimits::new(&c);
        for _ in 0..3 {
            assert!(l.message(1).is_ok());
        }
        assert!(matches!(l.message(1), Err(AppError::Throttled(_))));
        assert!(l.message(2).is_ok());
        assert!(l.friend_request(1).await.is_ok());
        assert!(l.friend_request(1).await.is_err());
    }
}

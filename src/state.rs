//! Shared application state, handed to handlers through `State`.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::FromRef;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::auth::password::Hasher;
use crate::config::Config;
use crate::db::Db;
use crate::live::hub::Hub;

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
    /// Login and register rate limits.
    pub limits: Arc<RateLimits>,
    /// Cancelled at shutdown: open streams end.
    pub shutdown: CancellationToken,
}

impl AppState {
    /// What use cases need of the state.
    pub fn cx(&self) -> crate::chat::Ctx<'_> {
        crate::chat::Ctx {
            db: &self.db,
            hub: &self.hub,
            hasher: &self.hasher,
        }
    }
}

impl FromRef<AppState> for Db {
    fn from_ref(s: &AppState) -> Db {
        s.db.clone()
    }
}

/// Per-IP and per-account attempt limits (in memory, per node).
pub struct RateLimits {
    per_ip: DefaultKeyedRateLimiter<String>,
    per_account: DefaultKeyedRateLimiter<String>,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN))
}

impl RateLimits {
    /// Limits of `per_ip` and `per_account` attempts a minute.
    pub fn new(per_ip: u32, per_account: u32) -> RateLimits {
        RateLimits {
            per_ip: RateLimiter::keyed(per_minute(per_ip)),
            per_account: RateLimiter::keyed(per_minute(per_account)),
        }
    }

    /// Takes one attempt from `ip`'s allowance; false when spent.
    pub fn allow_ip(&self, ip: &str) -> bool {
        self.per_ip.check_key(&ip.to_owned()).is_ok()
    }

    /// Takes one attempt from `account`'s allowance; false when spent.
    pub fn allow_account(&self, account: &str) -> bool {
        self.per_account.check_key(&account.to_owned()).is_ok()
    }

    /// Forgets keys whose allowance is full again (keeps memory bounded).
    pub fn sweep(&self) {
        self.per_ip.retain_recent();
        self.per_account.retain_recent();
        self.per_ip.shrink_to_fit();
        self.per_account.shrink_to_fit();
    }
}

//! Shared state of the daemon's handlers.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use offerhub::config::Config;
use offerhub::services::users::{NoHooks, UserHooks};
use offerhub::store::Store;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub rate_limiter: Arc<RateLimiter>,
    pub started_at: Instant,
    /// Called after a user is created (wallet provisioning in crypto mode).
    pub user_hooks: Arc<dyn UserHooks>,
    /// Fan-out of committed events to SSE subscribers.
    pub events: Arc<crate::events::EventHub>,
    /// Crypto mode: wallets on Stellar (`None` otherwise).
    pub stellar: Option<Arc<offerhub::services::wallets::StellarContext>>,
    /// Wakes the wallet activation worker.
    pub wallet_wake: Arc<tokio::sync::Notify>,
}

impl AppState {
    /// Builds the state and starts the event pump (call inside a Tokio runtime).
    pub fn new(store: Store, config: Config) -> Self {
        let events = crate::events::EventHub::start(
            store.clone(),
            Some(config.database_url.expose().to_string()),
        );
        let rate_limiter = Arc::new(RateLimiter::per_minute(config.rate_limit_per_minute));
        AppState {
            store,
            config: Arc::new(config),
            rate_limiter,
            started_at: Instant::now(),
            user_hooks: Arc::new(NoHooks),
            events,
            stellar: None,
            wallet_wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Crypto mode: new users get wallets (activated by the worker that
    /// [`crate::workers::start`] runs).
    pub fn with_stellar(mut self, sc: Arc<offerhub::services::wallets::StellarContext>) -> Self {
        self.user_hooks = Arc::new(crate::wallets::WalletProvisioner {
            store: self.store.clone(),
            stellar: sc.clone(),
            wake: self.wallet_wake.clone(),
        });
        self.stellar = Some(sc);
        self
    }
}

/// Per-API-key request budget (GCRA via `governor`): `n` requests per minute with a
/// burst of `n`.
pub struct RateLimiter {
    inner: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl RateLimiter {
    pub fn per_minute(n: u32) -> Self {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        RateLimiter {
            inner: governor::RateLimiter::keyed(Quota::per_minute(n)),
            clock: DefaultClock::default(),
        }
    }

    /// `Ok` when `key` may proceed; otherwise the whole seconds to wait (at least 1).
    pub fn check(&self, key: &str) -> Result<(), u64> {
        match self.inner.check_key(&key.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1))
            }
        }
    }
}

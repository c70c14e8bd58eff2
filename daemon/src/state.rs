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
    /// Escrow orchestration (crypto mode with Trustless Work configured).
    pub escrow: Option<Arc<offerhub::services::escrow::EscrowContext>>,
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
            escrow: None,
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
        self.escrow = escrow_context(&self.config, &sc);
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

/// The escrow context: Trustless Work at `TRUSTLESS_API_URL` (on the sandbox network,
/// the sandbox itself, which serves TW beside Horizon, with any key).
pub fn escrow_context(
    config: &Config,
    sc: &Arc<offerhub::services::wallets::StellarContext>,
) -> Option<Arc<offerhub::services::escrow::EscrowContext>> {
    use offerhub::config::Network;
    let url = match (&config.trustless_api_url, config.network) {
        (Some(u), _) => u.clone(),
        (None, Network::Sandbox) => config.horizon_url.clone()?,
        (None, _) => return None,
    };
    let key = match (&config.trustless_api_key, config.network) {
        (Some(k), _) => k.expose().to_string(),
        (None, Network::Sandbox) => "sandbox".to_string(),
        (None, _) => return None,
    };
    let tw = match offerhub::trustless::TrustlessWork::new(
        url,
        key,
        config.trustless_requests_per_minute,
    ) {
        Ok(tw) => tw,
        Err(e) => {
            tracing::error!(error = %e, "Trustless Work client unavailable; escrow disabled");
            return None;
        }
    };
    Some(Arc::new(offerhub::services::escrow::EscrowContext {
        sc: sc.clone(),
        tw,
        settings: offerhub::services::escrow::EscrowSettings {
            platform_fee_bps: config.trustless_platform_fee_bps,
            max_fee_stroops: config.trustless_max_fee_stroops,
            factory_contract: config.trustless_factory_contract.clone(),
            wait: std::time::Duration::from_millis(config.saga_wait_ms),
            max_attempts: config.saga_max_attempts,
            lease_secs: i64::from(config.saga_lease_secs),
        },
    }))
}

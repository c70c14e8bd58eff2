//! Shared state of the daemon's handlers.

use std::sync::Arc;
use std::time::Instant;

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
    /// Airtm mode (`PAYMENT_PROVIDER=airtm`): top-ups and payouts.
    pub airtm: Option<Arc<offerhub::services::airtm::AirtmContext>>,
    /// Svix verification of `POST /webhooks/airtm` (empty = intake disabled).
    pub airtm_webhooks: Arc<offerhub::airtm::svix::SvixVerifier>,
    /// Wakes the Airtm inbox/reconciler worker.
    pub airtm_wake: Option<Arc<tokio::sync::Notify>>,
    /// Seals secrets at rest (webhook endpoint secrets; wallets use the same keys through
    /// [`offerhub::services::wallets::StellarContext::vault`]). `None` without
    /// `WALLET_ENCRYPTION_KEY`.
    pub vault: Option<Arc<offerhub::vault::Vault>>,
}

impl AppState {
    /// Builds the state and starts the event pump (call inside a Tokio runtime).
    pub fn new(store: Store, config: Config) -> Self {
        // Before any client records (e.g. the Trustless Work budget at construction).
        crate::metrics::install();
        let events = crate::events::EventHub::start(
            store.clone(),
            Some(config.database_url.expose().to_string()),
        );
        let rate_limiter = Arc::new(RateLimiter::per_minute(
            &store,
            config.rate_limit_per_minute,
        ));
        let vault = config.wallet_encryption_key.as_ref().and_then(|k| {
            offerhub::vault::Vault::new(k, &config.wallet_encryption_keys_previous)
                .map(Arc::new)
                .map_err(|e| tracing::error!(error = %e, "the vault cannot be opened"))
                .ok()
        });
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
            airtm: None,
            airtm_webhooks: Arc::new(webhook_verifier(&[])),
            airtm_wake: None,
            vault,
        }
    }

    /// The vault, or 422 `FEATURE_NOT_ENABLED` naming `WALLET_ENCRYPTION_KEY`.
    pub fn vault(&self) -> Result<&Arc<offerhub::vault::Vault>, offerhub::error::Error> {
        self.vault.as_ref().ok_or_else(|| {
            offerhub::error::Error::feature_not_enabled(
                "Secrets at rest are sealed with WALLET_ENCRYPTION_KEY, which is not set",
                "WALLET_ENCRYPTION_KEY",
            )
        })
    }

    /// Crypto mode: new users get wallets (activated by the worker that
    /// [`crate::workers::start`] runs).
    pub fn with_stellar(mut self, sc: Arc<offerhub::services::wallets::StellarContext>) -> Self {
        self.user_hooks = Arc::new(crate::wallets::WalletProvisioner {
            store: self.store.clone(),
            stellar: sc.clone(),
            wake: self.wallet_wake.clone(),
        });
        self.vault = Some(sc.vault.clone());
        self.escrow = escrow_context(&self.config, &sc, &self.store);
        self.airtm = airtm_context(&self.config, &sc);
        if self.airtm.is_some() {
            self.airtm_webhooks = Arc::new(webhook_verifier(&self.config.airtm.webhook_secrets));
            self.airtm_wake = Some(Arc::new(tokio::sync::Notify::new()));
        }
        self.stellar = Some(sc);
        self
    }

    /// Adds a webhook secret (the embedded sandbox's generated one).
    pub fn with_airtm_webhook_secret(mut self, secret: offerhub::config::Secret) -> Self {
        let mut all = self.config.airtm.webhook_secrets.clone();
        all.push(secret);
        self.airtm_webhooks = Arc::new(webhook_verifier(&all));
        self
    }
}

/// A Svix verifier for `secrets`; a malformed secret is logged (never shown) and the
/// intake then refuses every delivery rather than accepting unsigned ones.
fn webhook_verifier(secrets: &[offerhub::config::Secret]) -> offerhub::airtm::svix::SvixVerifier {
    match offerhub::airtm::svix::SvixVerifier::new(secrets) {
        Ok(v) => v,
        Err(problem) => {
            tracing::error!(%problem, "Airtm webhook intake disabled");
            offerhub::airtm::svix::SvixVerifier::disabled()
        }
    }
}

/// The Airtm context in `PAYMENT_PROVIDER=airtm` mode: the API at `AIRTM_BASE_URL` (on
/// the sandbox network without it, the embedded simulator's `/airtm/v2`, with sandbox
/// credentials when none are set).
pub fn airtm_context(
    config: &Config,
    sc: &Arc<offerhub::services::wallets::StellarContext>,
) -> Option<Arc<offerhub::services::airtm::AirtmContext>> {
    use offerhub::config::{Network, PaymentProvider};
    if config.payment_provider != PaymentProvider::Airtm {
        return None;
    }
    let base = match (&config.airtm.base_url, config.network) {
        (Some(u), _) => u.clone(),
        (None, Network::Sandbox) => config.horizon_url.as_ref()?.join("/airtm/v2").ok()?,
        (None, _) => return None,
    };
    let sandbox = config.network == Network::Sandbox;
    let key = match (&config.airtm.api_key, sandbox) {
        (Some(k), _) => k.expose_secret().to_string(),
        (None, true) => "sandbox".to_string(),
        (None, false) => return None,
    };
    let secret = match (&config.airtm.api_secret, sandbox) {
        (Some(k), _) => k.expose_secret().to_string(),
        (None, true) => "sandbox".to_string(),
        (None, false) => return None,
    };
    let client = match offerhub::airtm::Airtm::new(base.clone(), &key, &secret) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "Airtm client unavailable; Airtm disabled");
            return None;
        }
    };
    Some(Arc::new(offerhub::services::airtm::AirtmContext {
        client: Arc::new(client),
        sc: sc.clone(),
        checkout_template: config
            .airtm
            .checkout_url
            .clone()
            .unwrap_or_else(|| offerhub::services::airtm::default_checkout_template(&base)),
        public_base_url: config.public_base_url.clone(),
        require_verified: config.airtm.require_verified,
    }))
}

/// Per-API-key request budget: `n` requests per minute with a burst of `n`, shared by
/// every daemon on the database ([`offerhub::budget`]; leases of n/20).
pub struct RateLimiter {
    budget: offerhub::budget::SharedBudget,
}

impl RateLimiter {
    pub fn per_minute(store: &Store, n: u32) -> Self {
        let n = n.max(1);
        RateLimiter {
            budget: offerhub::budget::SharedBudget::new(store, "api:", n, n, (n / 20).max(1)),
        }
    }

    /// `Ok` when `key` may proceed; otherwise the whole seconds to wait (at least 1).
    /// When the database cannot be asked, the request proceeds (it needs the database
    /// anyway, and will fail there).
    pub async fn check(&self, key: &str) -> Result<(), u64> {
        match self.budget.try_acquire(key).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(wait)) => Err((wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)),
            Err(e) => {
                tracing::warn!(error = %e, "rate limit budget unavailable; request allowed");
                Ok(())
            }
        }
    }
}

/// The escrow context: Trustless Work at `TRUSTLESS_API_URL` (on the sandbox network,
/// the sandbox itself, which serves TW beside Horizon, with any key).
pub fn escrow_context(
    config: &Config,
    sc: &Arc<offerhub::services::wallets::StellarContext>,
    store: &Store,
) -> Option<Arc<offerhub::services::escrow::EscrowContext>> {
    use offerhub::config::Network;
    let url = match (&config.trustless_api_url, config.network) {
        (Some(u), _) => u.clone(),
        (None, Network::Sandbox) => config.horizon_url.clone()?,
        (None, _) => return None,
    };
    let key = match (&config.trustless_api_key, config.network) {
        (Some(k), _) => k.expose_secret().to_string(),
        (None, Network::Sandbox) => "sandbox".to_string(),
        (None, _) => return None,
    };
    let tw = match offerhub::trustless::TrustlessWork::new(
        url,
        key,
        config.trustless_requests_per_minute,
    ) {
        Ok(tw) => tw.share_budget(store),
        Err(e) => {
            tracing::error!(error = %e, "Trustless Work client unavailable; escrow disabled");
            return None;
        }
    };
    let terms = offerhub::trustless::calls::CallTerms {
        network: sc.network.clone(),
        usdc: sc.usdc.clone(),
        usdc_issuer: sc.usdc_issuer.clone(),
        max_fee_stroops: config.trustless_max_fee_stroops,
        factory_contract: config.trustless_factory_contract.clone(),
    };
    let provider = offerhub::trustless::TrustlessWorkEscrows::new(tw, sc.horizon.clone(), terms);
    Some(Arc::new(offerhub::services::escrow::EscrowContext {
        sc: sc.clone(),
        provider: Arc::new(provider),
        settings: offerhub::services::escrow::EscrowSettings {
            platform_fee_bps: config.trustless_platform_fee_bps,
            wait: std::time::Duration::from_millis(config.saga_wait_ms),
            max_attempts: config.saga_max_attempts,
            lease_secs: i64::from(config.saga_lease_secs),
        },
    }))
}

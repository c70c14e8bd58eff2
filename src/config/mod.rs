//! Configuration: `offerhub.toml`, then `.env`, then process environment variables —
//! a later source wins. Every setting has one environment name (the seed's names, such as
//! `DATABASE_URL`, `STELLAR_NETWORK`) and one TOML path (`database.url`,
//! `stellar.network`); see [`SETTINGS`]. Everything is validated at load time and every
//! problem is reported at once, each naming its variable.
//!
//! Each setting is declared once (`settings!` in `settings.rs`: section, key, type,
//! variable, default). The sources are figment providers that put every value, as text,
//! at its TOML path; figment merges them (an empty value then counts as unset), fills in
//! generated sandbox secrets and the defaults, and extracts the result into `Deserialize`
//! structs whose fields keep an invalid value as a problem instead of stopping, so one
//! extraction finds every problem. The rules between settings come after.
//!
//! Relative paths (the data directory, a relative SQLite file) are resolved against the
//! directory that holds `offerhub.toml`, or the working directory when there is none.
//!
//! Secrets are held in [`Secret`], whose `Debug`/`Display` print `[redacted]`.
//!
//! The parts: `types` (the public value types), `settings` (the table of settings),
//! `values` (how each setting's text is read), `sources` (files, environment, layering),
//! `generated` (sandbox secrets generated on first run), `validate` (the rules between
//! settings and the assembly of [`Config`]).

mod generated;
mod settings;
mod sources;
mod types;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use url::Url;

pub use generated::{
    GeneratedSecrets, generate_master_key, generate_wallet_key, generated_secrets_path,
    write_private_file,
};
pub use settings::{SETTINGS, Setting};
pub use sources::{Sources, read_dotenv};
pub use types::{DatabaseUrl, Environment, Network, PaymentProvider, Secret};
pub use values::read_keyring;

use sources::{Layered, base_dir};

/// Airtm settings (base URLs: docs/PROVIDERS.md, Airtm: base URLs).
#[derive(Clone, Debug)]
pub struct AirtmConfig {
    /// `sandbox` or `production` (Airtm's environments).
    pub env: String,
    /// Airtm API base ending in `/v2`; `None` on the sandbox network without
    /// `AIRTM_BASE_URL`: the embedded simulator's `/airtm/v2` is used.
    pub base_url: Option<Url>,
    /// Airtm's hosted checkout, `{id}` standing for the payin id; `None` = derived from
    /// the base URL (`{origin}/payin/{id}`, docs/PROVIDERS.md, Airtm: base URLs).
    pub checkout_url: Option<String>,
    /// Linking requires an ID-verified Airtm account.
    pub require_verified: bool,
    /// The reconciler re-reads open top-ups and payouts untouched for this long, every
    /// this long (seconds).
    pub reconcile_secs: u32,
    pub api_key: Option<Secret>,
    pub api_secret: Option<Secret>,
    /// Svix signing secrets (`whsec_…`); several during a rotation, comma-separated.
    pub webhook_secrets: Vec<Secret>,
}

/// The validated configuration of one OfferHub instance.
#[derive(Clone, Debug)]
pub struct Config {
    /// Directory for the SQLite file, generated secrets and other local state.
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    pub host: IpAddr,
    pub port: u16,
    /// Where to serve Prometheus metrics in plain text at `/metrics`, without
    /// authentication (`OFFERHUB_METRICS_ADDR`, e.g. `127.0.0.1:9464`); `None` (the
    /// default): no separate listener. `GET /api/v1/metrics` (scope `support`) works
    /// either way.
    pub metrics_addr: Option<std::net::SocketAddr>,
    pub public_base_url: Url,
    pub environment: Environment,
    /// Bootstraps API keys; full scopes.
    pub master_key: Option<Secret>,
    /// 32 bytes as 64 hex characters: AES-256-GCM key of wallet secrets.
    pub wallet_encryption_key: Option<Secret>,
    /// Earlier keys that still open wallet secrets during a rotation (comma-separated).
    pub wallet_encryption_keys_previous: Vec<Secret>,
    pub payment_provider: PaymentProvider,
    pub network: Network,
    /// `None` on the sandbox network: the embedded sandbox's address is used.
    pub horizon_url: Option<Url>,
    pub usdc_asset_code: String,
    /// `None` on the sandbox network.
    pub usdc_issuer: Option<String>,
    pub platform_user_id: Option<String>,
    pub trustless_api_url: Option<Url>,
    pub trustless_api_key: Option<Secret>,
    /// Default platform fee of new escrows, basis points (`TRUSTLESS_PLATFORM_FEE` is a
    /// percentage, default 0).
    pub trustless_platform_fee_bps: u32,
    /// Largest fee OfferHub signs for a Trustless Work transaction (stroops).
    pub trustless_max_fee_stroops: u32,
    /// The TW factory contract deploys must call (`C…`); unset = not pinned.
    pub trustless_factory_contract: Option<String>,
    /// Pacing of Trustless Work requests (TW allows 50/min).
    pub trustless_requests_per_minute: u32,
    /// How long an escrow call waits for its saga before answering 202.
    pub saga_wait_ms: u64,
    /// Transient failures of one saga step before it parks `NEEDS_ATTENTION`.
    pub saga_max_attempts: u32,
    /// How long a crashed executor's saga stays leased before another resumes it.
    pub saga_lease_secs: u32,
    pub airtm: AirtmConfig,
    /// Requests per minute per API key.
    pub rate_limit_per_minute: u32,
    /// Maximum request body in bytes.
    pub body_limit_bytes: usize,
    /// How long idempotency records are kept.
    pub idempotency_ttl_hours: u32,
    /// Smallest and largest order amount accepted.
    pub order_min_amount: crate::money::Amount,
    pub order_max_amount: crate::money::Amount,
    /// Unit of the webhook retry schedule (5 s by default: retries after 5 s, 1 min,
    /// 5 min, 30 min, 2 h, 5 h, then every 10 h, about 3 days in all).
    pub webhook_backoff_base_ms: u64,
    /// An endpoint failing continuously for this long is disabled.
    pub webhook_disable_after_hours: u32,
    /// Whether webhook endpoints may target loopback, private, link-local and other
    /// non-public addresses (`OFFERHUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS`, default false:
    /// for local development only).
    pub webhook_allow_private_networks: bool,
    /// Largest magnitude of one support balance adjustment (`OFFERHUB_MAX_ADJUSTMENT`,
    /// default 1000000.00 USDC).
    pub max_adjustment: crate::money::Amount,
    /// The marketplace's default inspection window of new orders, seconds
    /// (`OFFERHUB_AUTO_RELEASE_AFTER`, ISO-8601 duration or seconds; unset = off).
    pub auto_release_after_secs: Option<u64>,
    /// Orders in `FUNDS_RESERVED` untouched for this long are canceled and their hold
    /// voided (`OFFERHUB_ORDER_RESERVATION_TTL`; unset = off).
    pub order_reservation_ttl_secs: Option<u64>,
    /// How often the daemon reconciles with the network (`OFFERHUB_RECONCILE_EVERY`;
    /// unset = never, run `offerhub reconcile` from cron instead).
    pub reconcile_every_secs: Option<u64>,
    /// How often a scheduled run checks every wallet and escrow rather than only those
    /// with movement (`OFFERHUB_RECONCILE_FULL_EVERY`, default one day).
    pub reconcile_full_every_secs: u64,
}

/// A configuration problem, naming the variable (environment spelling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The environment variable (`OFFERHUB_CONFIG` for the configuration file itself).
    pub variable: String,
    /// What is wrong, such as `must be a port number between 1 and 65535 (got "x")`.
    pub problem: String,
}

/// All problems found while loading; `Display` lists one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for i in &self.0 {
            writeln!(f, "  {}: {}", i.variable, i.problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

fn issue(variable: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError(vec![ConfigIssue {
        variable: variable.to_string(),
        problem: problem.into(),
    }])
}

impl Config {
    /// Loads and validates without side effects (no generated secrets).
    pub fn from_sources(sources: &Sources) -> Result<Config, ConfigError> {
        let layered = Layered::read(sources)?;
        let base = base_dir(sources.config_file.as_deref());
        validate::config(&layered.settings(None)?, &base, layered.issues)
    }

    /// The data directory these sources name (`OFFERHUB_DATA_DIR`, default `data` next to
    /// the config file), without validating or generating anything.
    pub fn data_dir(sources: &Sources) -> Result<PathBuf, ConfigError> {
        let layered = Layered::read(sources)?;
        if !layered.issues.is_empty() {
            return Err(ConfigError(layered.issues));
        }
        Ok(layered.data_dir(&base_dir(sources.config_file.as_deref())))
    }

    /// Loads, validates, and — on the sandbox network only — fills a missing master key
    /// or wallet encryption key from `{data_dir}/secrets.env`, generating and persisting
    /// them there (mode 0600) on first run. On testnet/mainnet missing secrets are errors.
    pub fn load(sources: &Sources) -> Result<(Config, GeneratedSecrets), ConfigError> {
        generated::load(sources, true)
    }

    /// Like [`Config::load`] but never writes anything: secrets already generated into
    /// `{data_dir}/secrets.env` are read, missing ones stay missing (operator commands).
    pub fn load_existing(sources: &Sources) -> Result<Config, ConfigError> {
        generated::load(sources, false).map(|(c, _)| c)
    }

    /// Builds a configuration from values named by their environment variables (an empty
    /// value is unset). `base` resolves relative paths. Reports every problem, each
    /// naming its variable.
    pub fn from_map(map: &BTreeMap<String, String>, base: &Path) -> Result<Config, ConfigError> {
        let layered = Layered::from_map(map)?;
        validate::config(&layered.settings(None)?, base, layered.issues)
    }

    /// `host:port` to bind.
    pub fn bind_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }
}

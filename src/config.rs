//! Configuration: `offerhub.toml`, then `.env`, then process environment variables —
//! a later source wins. Every setting has one environment name (the seed's names, such as
//! `DATABASE_URL`, `STELLAR_NETWORK`) and one TOML path (`database.url`,
//! `stellar.network`); see [`SETTINGS`]. Everything is validated at load time and every
//! problem is reported at once, each naming its variable.
//!
//! Relative paths (the data directory, a relative SQLite file) are resolved against the
//! directory that holds `offerhub.toml`, or the working directory when there is none.
//!
//! Secrets are held in [`Secret`], whose `Debug`/`Display` print `[redacted]`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use url::Url;

/// A secret string (API key, wallet key, signing secret), held in a
/// [`secrecy::SecretString`]: zeroized when dropped, never printed (`Debug` and `Display`
/// show `[redacted]`), compared in constant time, and read only through
/// [`Secret::expose_secret`].
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps `s`; the caller's copy is moved in, not duplicated.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(SecretString::from(s.into()))
    }
    /// The secret itself; call only where it is used (hashing, signing, encrypting,
    /// showing a newly created credential once).
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl ExposeSecret<str> for Secret {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

/// Constant-time in the contents (the length may show): a comparison never tells how
/// much of a guess was right.
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        bool::from(
            self.expose_secret()
                .as_bytes()
                .ct_eq(other.expose_secret().as_bytes()),
        )
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A database URL. `Debug`/`Display` hide the password (`postgres://u:***@h/db`).
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(s: impl Into<String>) -> Self {
        DatabaseUrl(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_postgres(&self) -> bool {
        self.0.starts_with("postgres://") || self.0.starts_with("postgresql://")
    }
    fn redacted(&self) -> String {
        match Url::parse(&self.0) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                u.to_string()
            }
            _ => self.0.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The Stellar network OfferHub works on. `Sandbox` is the embedded simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    Sandbox,
    Testnet,
    Mainnet,
}

impl Network {
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Sandbox => "sandbox",
            Network::Testnet => "testnet",
            Network::Mainnet => "mainnet",
        }
    }
    /// Default Horizon URL; `None` for the sandbox (its address is known at start).
    pub fn default_horizon_url(self) -> Option<&'static str> {
        match self {
            Network::Sandbox => None,
            Network::Testnet => Some("https://horizon-testnet.stellar.org"),
            Network::Mainnet => Some("https://horizon.stellar.org"),
        }
    }
    /// Default Trustless Work base URL (research/trustless-stellar.md §A.1).
    pub fn default_trustless_url(self) -> Option<&'static str> {
        match self {
            Network::Sandbox => None,
            Network::Testnet => Some("https://dev.api.trustlesswork.com"),
            Network::Mainnet => Some("https://api.trustlesswork.com"),
        }
    }
    /// Circle's USDC issuer on this network (research/trustless-stellar.md line "USDC
    /// issuers"); `None` for the sandbox, whose issuer is the sandbox's own.
    pub fn default_usdc_issuer(self) -> Option<&'static str> {
        match self {
            Network::Sandbox => None,
            Network::Testnet => Some("GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"),
            Network::Mainnet => Some("GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN"),
        }
    }
}

/// Where deposits and withdrawals go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentProvider {
    Crypto,
    Airtm,
}

/// `development` shows more detail in logs; `production` refuses unsafe settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// Airtm settings (research/airtm.md §1 for base URLs).
#[derive(Clone, Debug)]
pub struct AirtmConfig {
    /// `sandbox` or `production` (Airtm's environments).
    pub env: String,
    /// Airtm API base ending in `/v2`; `None` on the sandbox network without
    /// `AIRTM_BASE_URL`: the embedded simulator's `/airtm/v2` is used.
    pub base_url: Option<Url>,
    /// Airtm's hosted checkout, `{id}` standing for the payin id; `None` = derived from
    /// the base URL (`{origin}/payin/{id}`, research/airtm.md §5).
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

/// One setting: its environment name, TOML path, and whether it is a secret.
pub struct Setting {
    pub env: &'static str,
    pub toml: &'static str,
    pub secret: bool,
}

const fn s(env: &'static str, toml: &'static str) -> Setting {
    Setting {
        env,
        toml,
        secret: false,
    }
}
const fn secret(env: &'static str, toml: &'static str) -> Setting {
    Setting {
        env,
        toml,
        secret: true,
    }
}

/// Every setting OfferHub reads, with its environment name and `offerhub.toml` path.
pub const SETTINGS: &[Setting] = &[
    s("OFFERHUB_DATA_DIR", "server.data_dir"),
    s("HOST", "server.host"),
    s("PORT", "server.port"),
    s("OFFERHUB_METRICS_ADDR", "server.metrics_addr"),
    s("PUBLIC_BASE_URL", "server.public_base_url"),
    s("OFFERHUB_ENV", "server.environment"),
    s(
        "OFFERHUB_RATE_LIMIT_PER_MINUTE",
        "server.rate_limit_per_minute",
    ),
    s("OFFERHUB_BODY_LIMIT_BYTES", "server.body_limit_bytes"),
    s(
        "OFFERHUB_IDEMPOTENCY_TTL_HOURS",
        "server.idempotency_ttl_hours",
    ),
    s("DATABASE_URL", "database.url"),
    secret("OFFERHUB_MASTER_KEY", "secrets.master_key"),
    secret("WALLET_ENCRYPTION_KEY", "secrets.wallet_encryption_key"),
    secret(
        "WALLET_ENCRYPTION_KEYS_PREVIOUS",
        "secrets.wallet_encryption_keys_previous",
    ),
    s("PAYMENT_PROVIDER", "payments.provider"),
    s("STELLAR_NETWORK", "stellar.network"),
    s("STELLAR_HORIZON_URL", "stellar.horizon_url"),
    s("STELLAR_USDC_ASSET_CODE", "stellar.usdc_asset_code"),
    s("STELLAR_USDC_ISSUER", "stellar.usdc_issuer"),
    s("PLATFORM_USER_ID", "stellar.platform_user_id"),
    s("TRUSTLESS_API_URL", "trustless.api_url"),
    secret("TRUSTLESS_API_KEY", "trustless.api_key"),
    s("TRUSTLESS_PLATFORM_FEE", "trustless.platform_fee"),
    s("TRUSTLESS_MAX_FEE_STROOPS", "trustless.max_fee_stroops"),
    s("TRUSTLESS_FACTORY_CONTRACT", "trustless.factory_contract"),
    s(
        "TRUSTLESS_REQUESTS_PER_MINUTE",
        "trustless.requests_per_minute",
    ),
    s(
        "OFFERHUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS",
        "webhooks.allow_private_networks",
    ),
    s(
        "OFFERHUB_WEBHOOK_BACKOFF_BASE_MS",
        "webhooks.backoff_base_ms",
    ),
    s(
        "OFFERHUB_WEBHOOK_DISABLE_AFTER_HOURS",
        "webhooks.disable_after_hours",
    ),
    s("OFFERHUB_ORDER_MIN_AMOUNT", "limits.order_min_amount"),
    s("OFFERHUB_ORDER_MAX_AMOUNT", "limits.order_max_amount"),
    s("OFFERHUB_MAX_ADJUSTMENT", "limits.max_adjustment"),
    s(
        "OFFERHUB_AUTO_RELEASE_AFTER",
        "lifecycle.auto_release_after",
    ),
    s(
        "OFFERHUB_ORDER_RESERVATION_TTL",
        "lifecycle.order_reservation_ttl",
    ),
    s("OFFERHUB_RECONCILE_EVERY", "lifecycle.reconcile_every"),
    s(
        "OFFERHUB_RECONCILE_FULL_EVERY",
        "lifecycle.reconcile_full_every",
    ),
    s("OFFERHUB_SAGA_WAIT_MS", "sagas.wait_ms"),
    s("OFFERHUB_SAGA_MAX_ATTEMPTS", "sagas.max_attempts"),
    s("OFFERHUB_SAGA_LEASE_SECS", "sagas.lease_secs"),
    s("AIRTM_ENV", "airtm.env"),
    s("AIRTM_BASE_URL", "airtm.base_url"),
    s("AIRTM_CHECKOUT_URL", "airtm.checkout_url"),
    s("AIRTM_REQUIRE_VERIFIED", "airtm.require_verified"),
    s("AIRTM_RECONCILE_SECS", "airtm.reconcile_secs"),
    secret("AIRTM_API_KEY", "airtm.api_key"),
    secret("AIRTM_API_SECRET", "airtm.api_secret"),
    secret("AIRTM_WEBHOOK_SECRET", "airtm.webhook_secret"),
];

/// A configuration problem, naming the variable (environment spelling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub variable: String,
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

/// Where configuration comes from. `Sources::discover` finds the usual files.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `offerhub.toml`; relative paths in the configuration resolve against its directory.
    pub config_file: Option<PathBuf>,
    /// A dotenv file (`KEY=value` lines).
    pub dotenv_file: Option<PathBuf>,
    /// Environment variables (usually `std::env::vars()`); highest priority.
    pub env: BTreeMap<String, String>,
}

impl Sources {
    /// `config` (explicit, must exist) or `./offerhub.toml` when present; the `.env`
    /// beside the configuration file (or in the working directory); the process
    /// environment. `OFFERHUB_CONFIG` names the file when `config` is `None`.
    pub fn discover(config: Option<PathBuf>) -> Result<Sources, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let explicit = config.or_else(|| env.get("OFFERHUB_CONFIG").map(PathBuf::from));
        let config_file = match explicit {
            Some(p) => {
                if !p.is_file() {
                    return Err(issue(
                        "OFFERHUB_CONFIG",
                        format!("configuration file {} does not exist", p.display()),
                    ));
                }
                Some(p)
            }
            None => Some(PathBuf::from("offerhub.toml")).filter(|p| p.is_file()),
        };
        let base = base_dir(config_file.as_deref());
        let dotenv_file = Some(base.join(".env")).filter(|p| p.is_file());
        Ok(Sources {
            config_file,
            dotenv_file,
            env,
        })
    }
}

fn base_dir(config_file: Option<&Path>) -> PathBuf {
    let dir = config_file
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    std::path::absolute(&dir).unwrap_or(dir)
}

/// Flattens the TOML file into environment names. Unknown keys are errors (typos must
/// not silently fall back to defaults).
fn read_toml(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        issue(
            "OFFERHUB_CONFIG",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let value: toml::Table = toml::from_str(&text).map_err(|e| {
        issue(
            "OFFERHUB_CONFIG",
            format!("{} is not valid TOML: {e}", path.display()),
        )
    })?;
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (section, table) in &value {
        let Some(table) = table.as_table() else {
            problems.push(ConfigIssue {
                variable: "OFFERHUB_CONFIG".into(),
                problem: format!("[{section}] must be a table"),
            });
            continue;
        };
        for (key, v) in table {
            let dotted = format!("{section}.{key}");
            let Some(setting) = SETTINGS.iter().find(|s| s.toml == dotted) else {
                problems.push(ConfigIssue {
                    variable: "OFFERHUB_CONFIG".into(),
                    problem: format!("unknown setting `{dotted}` in {}", path.display()),
                });
                continue;
            };
            let text = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            out.insert(setting.env.to_string(), text);
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ConfigError(problems))
    }
}

/// Reads a dotenv file into a map (without touching the process environment).
pub fn read_dotenv(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let iter = dotenvy::from_path_iter(path).map_err(|e| {
        issue(
            "OFFERHUB_CONFIG",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let mut out = BTreeMap::new();
    for item in iter {
        let (k, v) = item.map_err(|e| {
            issue(
                "OFFERHUB_CONFIG",
                format!("{} has a malformed line: {e}", path.display()),
            )
        })?;
        out.insert(k, v);
    }
    Ok(out)
}

/// The file holding secrets generated on first run of a sandbox instance.
pub fn generated_secrets_path(data_dir: &Path) -> PathBuf {
    data_dir.join("secrets.env")
}

/// Secrets generated by [`Config::load`] on a sandbox instance that had none.
#[derive(Debug, Clone, Default)]
pub struct GeneratedSecrets {
    /// The file they were written to (mode 0600), when any were generated now.
    pub written_to: Option<PathBuf>,
    pub names: Vec<&'static str>,
}

/// A fresh master key: `ohk_master_` + 48 hex characters (24 random bytes).
pub fn generate_master_key() -> String {
    format!("ohk_master_{}", hex::encode(rand::random::<[u8; 24]>()))
}

/// A fresh wallet encryption key: 32 random bytes as 64 hex characters.
pub fn generate_wallet_key() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Writes `contents` to `path` with mode 0600 (owner read/write only) on Unix.
pub fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

fn data_dir_of(map: &BTreeMap<String, String>, base: &Path) -> PathBuf {
    resolve_path(
        base,
        map.get("OFFERHUB_DATA_DIR")
            .map(String::as_str)
            .unwrap_or("data"),
    )
}

impl Config {
    /// Loads and validates without side effects (no generated secrets).
    pub fn from_sources(sources: &Sources) -> Result<Config, ConfigError> {
        let map = merged(sources, None)?;
        Config::from_map(&map, &base_dir(sources.config_file.as_deref()))
    }

    /// The data directory these sources name (`OFFERHUB_DATA_DIR`, default `data` next to
    /// the config file), without validating or generating anything.
    pub fn data_dir(sources: &Sources) -> Result<PathBuf, ConfigError> {
        let base = base_dir(sources.config_file.as_deref());
        Ok(data_dir_of(&merged(sources, None)?, &base))
    }

    /// Loads, validates, and — on the sandbox network only — fills a missing master key
    /// or wallet encryption key from `{data_dir}/secrets.env`, generating and persisting
    /// them there (mode 0600) on first run. On testnet/mainnet missing secrets are errors.
    pub fn load(sources: &Sources) -> Result<(Config, GeneratedSecrets), ConfigError> {
        Config::load_with(sources, true)
    }

    /// Like [`Config::load`] but never writes anything: secrets already generated into
    /// `{data_dir}/secrets.env` are read, missing ones stay missing (operator commands).
    pub fn load_existing(sources: &Sources) -> Result<Config, ConfigError> {
        Config::load_with(sources, false).map(|(c, _)| c)
    }

    fn load_with(
        sources: &Sources,
        generate: bool,
    ) -> Result<(Config, GeneratedSecrets), ConfigError> {
        let base = base_dir(sources.config_file.as_deref());
        let first = merged(sources, None)?;
        let network = first.get("STELLAR_NETWORK").map(String::as_str);
        let sandbox = matches!(network, None | Some("sandbox"));
        let missing: Vec<&'static str> = ["OFFERHUB_MASTER_KEY", "WALLET_ENCRYPTION_KEY"]
            .into_iter()
            .filter(|k| first.get(*k).is_none_or(|v| v.is_empty()))
            .collect();
        if !sandbox || missing.is_empty() {
            return Ok((
                Config::from_map(&first, &base)?,
                GeneratedSecrets::default(),
            ));
        }
        let data_dir = data_dir_of(&first, &base);
        let path = generated_secrets_path(&data_dir);
        let mut stored = if path.is_file() {
            read_dotenv(&path)?
        } else {
            BTreeMap::new()
        };
        let mut generated = GeneratedSecrets::default();
        for name in &missing {
            if generate && stored.get(*name).is_none_or(|v| v.is_empty()) {
                let value = if *name == "OFFERHUB_MASTER_KEY" {
                    generate_master_key()
                } else {
                    generate_wallet_key()
                };
                stored.insert(name.to_string(), value);
                generated.names.push(name);
            }
        }
        if !generated.names.is_empty() {
            crate::store::private_dir(&data_dir).map_err(|e| {
                issue(
                    "OFFERHUB_DATA_DIR",
                    format!("cannot create {}: {e}", data_dir.display()),
                )
            })?;
            let mut text = String::from(
                "# Secrets generated by `offerhub serve` on first run (sandbox network).\n\
                 # Keep this file private; losing WALLET_ENCRYPTION_KEY loses the wallets.\n",
            );
            for (k, v) in &stored {
                text.push_str(&format!("{k}={v}\n"));
            }
            write_private_file(&path, &text).map_err(|e| {
                issue(
                    "OFFERHUB_DATA_DIR",
                    format!("cannot write {}: {e}", path.display()),
                )
            })?;
            generated.written_to = Some(path);
        }
        let map = merged(sources, Some(&stored))?;
        Ok((Config::from_map(&map, &base)?, generated))
    }

    /// Builds a configuration from environment-named values. `base` resolves relative
    /// paths. Reports every problem, each naming its variable.
    pub fn from_map(map: &BTreeMap<String, String>, base: &Path) -> Result<Config, ConfigError> {
        let mut p = Parser {
            map,
            issues: Vec::new(),
        };
        let data_dir = resolve_path(base, p.get("OFFERHUB_DATA_DIR").unwrap_or("data"));
        let database_url = match p.get("DATABASE_URL") {
            None => DatabaseUrl::new(format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("offerhub.db").display()
            )),
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                DatabaseUrl::new(u)
            }
            Some(u) if u.starts_with("sqlite:") => DatabaseUrl::new(resolve_sqlite_url(base, u)),
            Some(_) => {
                p.bad(
                    "DATABASE_URL",
                    "must start with sqlite:// or postgres:// (e.g. sqlite://./data/offerhub.db)",
                );
                DatabaseUrl::new("")
            }
        };
        let host = p.parse_with(
            "HOST",
            "127.0.0.1",
            "an IP address such as 127.0.0.1 or 0.0.0.0",
            |v| v.parse::<IpAddr>().ok(),
        );
        let port = p.parse_with("PORT", "4000", "a port number between 1 and 65535", |v| {
            v.parse::<u16>().ok().filter(|p| *p > 0)
        });
        let metrics_addr = match p.get("OFFERHUB_METRICS_ADDR") {
            None => None,
            Some(v) => match v.parse::<std::net::SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    p.bad(
                        "OFFERHUB_METRICS_ADDR",
                        "must be an address and port such as 127.0.0.1:9464",
                    );
                    None
                }
            },
        };
        let environment = p.parse_with(
            "OFFERHUB_ENV",
            "development",
            "one of development, production",
            |v| match v {
                "development" => Some(Environment::Development),
                "production" => Some(Environment::Production),
                _ => None,
            },
        );
        let public_base_url = match p.get("PUBLIC_BASE_URL") {
            Some(v) => p.url("PUBLIC_BASE_URL", v),
            None => Url::parse(&format!("http://localhost:{}", port.unwrap_or(4000))).ok(),
        };
        let master_key = p.get("OFFERHUB_MASTER_KEY").and_then(|v| {
            if v.len() < 32 {
                p.bad(
                    "OFFERHUB_MASTER_KEY",
                    "must be at least 32 characters (generate one with `openssl rand -hex 32`)",
                );
                None
            } else {
                Some(Secret::new(v))
            }
        });
        let wallet_key_raw = match p.get("WALLET_ENCRYPTION_KEY") {
            Some(v) if v.starts_with("keyring:") => match read_keyring(v) {
                Ok(k) => Some(k),
                Err(problem) => {
                    p.bad("WALLET_ENCRYPTION_KEY", problem);
                    None
                }
            },
            other => other.map(str::to_string),
        };
        let wallet_encryption_key = wallet_key_raw.as_deref().and_then(|v| {
            if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
                Some(Secret::new(v))
            } else {
                p.bad(
                    "WALLET_ENCRYPTION_KEY",
                    "must be 64 hexadecimal characters (32 bytes; `openssl rand -hex 32`)",
                );
                None
            }
        });
        let mut wallet_encryption_keys_previous = Vec::new();
        for k in p
            .get("WALLET_ENCRYPTION_KEYS_PREVIOUS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
        {
            if k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()) {
                wallet_encryption_keys_previous.push(Secret::new(k));
            } else {
                p.bad(
                    "WALLET_ENCRYPTION_KEYS_PREVIOUS",
                    "must be a comma-separated list of 64-hex-character keys",
                );
            }
        }
        let payment_provider = p.parse_with(
            "PAYMENT_PROVIDER",
            "crypto",
            "one of crypto, airtm",
            |v| match v {
                "crypto" => Some(PaymentProvider::Crypto),
                "airtm" => Some(PaymentProvider::Airtm),
                _ => None,
            },
        );
        let network = p.parse_with(
            "STELLAR_NETWORK",
            "sandbox",
            "one of sandbox, testnet, mainnet",
            |v| match v {
                "sandbox" => Some(Network::Sandbox),
                "testnet" => Some(Network::Testnet),
                "mainnet" => Some(Network::Mainnet),
                _ => None,
            },
        );
        let net = network.unwrap_or(Network::Sandbox);
        let horizon_url = match p.get("STELLAR_HORIZON_URL") {
            Some(v) => p.url("STELLAR_HORIZON_URL", v).and_then(|u| {
                if net != Network::Sandbox && u.scheme() != "https" {
                    p.bad(
                        "STELLAR_HORIZON_URL",
                        format!("must use https on {}", net.as_str()),
                    );
                    None
                } else {
                    Some(u)
                }
            }),
            None => net.default_horizon_url().and_then(|u| Url::parse(u).ok()),
        };
        let usdc_asset_code = p
            .get("STELLAR_USDC_ASSET_CODE")
            .unwrap_or("USDC")
            .to_string();
        if usdc_asset_code.is_empty()
            || usdc_asset_code.len() > 12
            || !usdc_asset_code.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            p.bad(
                "STELLAR_USDC_ASSET_CODE",
                "must be 1 to 12 letters or digits",
            );
        }
        let usdc_issuer = match p.get("STELLAR_USDC_ISSUER") {
            Some(v) => {
                if stellar_strkey::ed25519::PublicKey::from_string(v).is_err() {
                    p.bad(
                        "STELLAR_USDC_ISSUER",
                        "must be a Stellar account id (G…, 56 characters, valid checksum)",
                    );
                }
                Some(v.to_string())
            }
            None => net.default_usdc_issuer().map(str::to_string),
        };
        let platform_user_id = p.get("PLATFORM_USER_ID").map(str::to_string);
        if let Some(id) = &platform_user_id
            && !crate::ids::is_valid(crate::ids::IdKind::User, id)
        {
            p.bad("PLATFORM_USER_ID", "must be a user id such as usr_…");
        }
        let trustless_api_url = match p.get("TRUSTLESS_API_URL") {
            Some(v) => p.url("TRUSTLESS_API_URL", v),
            None => net.default_trustless_url().and_then(|u| Url::parse(u).ok()),
        };
        let trustless_api_key = p.get("TRUSTLESS_API_KEY").map(Secret::new);
        if net != Network::Sandbox {
            if trustless_api_key.is_none() {
                p.bad(
                    "TRUSTLESS_API_KEY",
                    format!(
                        "is required on {} (get one at trustlesswork.com)",
                        net.as_str()
                    ),
                );
            }
            if master_key.is_none() && p.get("OFFERHUB_MASTER_KEY").is_none() {
                p.bad(
                    "OFFERHUB_MASTER_KEY",
                    format!("is required on {}", net.as_str()),
                );
            }
            if wallet_encryption_key.is_none() && p.get("WALLET_ENCRYPTION_KEY").is_none() {
                p.bad(
                    "WALLET_ENCRYPTION_KEY",
                    format!(
                        "is required on {} (every user has a Stellar wallet, in airtm mode too)",
                        net.as_str()
                    ),
                );
            }
        }
        let airtm_env = p.get("AIRTM_ENV").unwrap_or("sandbox").to_string();
        let airtm_default = match airtm_env.as_str() {
            "sandbox" => Some("https://api.stg.enterprise.airtm.com/v2"),
            "production" => Some("https://api.enterprise.airtm.com/v2"),
            _ => {
                p.bad("AIRTM_ENV", "must be one of sandbox, production");
                None
            }
        };
        let airtm_base_url = match p.get("AIRTM_BASE_URL") {
            Some(v) => p.url("AIRTM_BASE_URL", v),
            None if net == Network::Sandbox => None,
            None => airtm_default.and_then(|u| Url::parse(u).ok()),
        };
        let airtm_checkout_url = p.get("AIRTM_CHECKOUT_URL").map(str::to_string);
        if let Some(t) = &airtm_checkout_url
            && (!t.contains("{id}") || Url::parse(&t.replace("{id}", "x")).is_err())
        {
            p.bad(
                "AIRTM_CHECKOUT_URL",
                "must be a URL containing {id} (the payin id), such as https://app.airtm.com/payin/{id}",
            );
        }
        let airtm_require_verified = p.parse_with(
            "AIRTM_REQUIRE_VERIFIED",
            "false",
            "true or false",
            |v| match v {
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" => Some(false),
                _ => None,
            },
        );
        let airtm_api_key = p.get("AIRTM_API_KEY").map(Secret::new);
        let airtm_api_secret = p.get("AIRTM_API_SECRET").map(Secret::new);
        let airtm_reconcile_secs = p.parse_with(
            "AIRTM_RECONCILE_SECS",
            "60",
            "a number of seconds between 1 and 86400",
            |v| v.parse::<u32>().ok().filter(|n| (1..=86_400).contains(n)),
        );
        let webhook_secrets: Vec<Secret> = p
            .get("AIRTM_WEBHOOK_SECRET")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(Secret::new)
                    .collect()
            })
            .unwrap_or_default();
        if crate::airtm::svix::SvixVerifier::new(&webhook_secrets).is_err() {
            p.bad(
                "AIRTM_WEBHOOK_SECRET",
                "must be whsec_ + base64 secrets (comma-separated during a rotation), as Airtm's webhook settings show them",
            );
        }
        if payment_provider == Some(PaymentProvider::Airtm) && net != Network::Sandbox {
            if airtm_api_key.is_none() {
                p.bad("AIRTM_API_KEY", "is required when PAYMENT_PROVIDER=airtm");
            }
            if airtm_api_secret.is_none() {
                p.bad(
                    "AIRTM_API_SECRET",
                    "is required when PAYMENT_PROVIDER=airtm",
                );
            }
            if environment == Some(Environment::Production) && webhook_secrets.is_empty() {
                p.bad(
                    "AIRTM_WEBHOOK_SECRET",
                    "is required in production when PAYMENT_PROVIDER=airtm",
                );
            }
        }
        let rate_limit_per_minute = p.parse_with(
            "OFFERHUB_RATE_LIMIT_PER_MINUTE",
            "600",
            "a whole number between 1 and 1000000",
            |v| {
                v.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
            },
        );
        let body_limit_bytes = p.parse_with(
            "OFFERHUB_BODY_LIMIT_BYTES",
            "1048576",
            "a byte count between 1024 and 104857600",
            |v| {
                v.parse::<usize>()
                    .ok()
                    .filter(|n| (1024..=104_857_600).contains(n))
            },
        );
        let idempotency_ttl_hours = p.parse_with(
            "OFFERHUB_IDEMPOTENCY_TTL_HOURS",
            "24",
            "a number of hours between 1 and 8760",
            |v| v.parse::<u32>().ok().filter(|n| (1..=8760).contains(n)),
        );

        let positive_amount = |v: &str| crate::money::Amount::parse_positive(v).ok();
        let order_min_amount = p.parse_with(
            "OFFERHUB_ORDER_MIN_AMOUNT",
            "1.00",
            "a positive decimal amount such as 1.00",
            positive_amount,
        );
        let order_max_amount = p.parse_with(
            "OFFERHUB_ORDER_MAX_AMOUNT",
            "50000.00",
            "a positive decimal amount such as 50000.00",
            positive_amount,
        );
        let max_adjustment = p.parse_with(
            "OFFERHUB_MAX_ADJUSTMENT",
            "1000000.00",
            "a positive decimal amount such as 1000000.00",
            positive_amount,
        );
        let webhook_allow_private_networks = p.parse_with(
            "OFFERHUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS",
            "false",
            "true or false",
            |v| match v {
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" => Some(false),
                _ => None,
            },
        );
        if let (Some(min), Some(max)) = (order_min_amount, order_max_amount)
            && min > max
        {
            p.bad(
                "OFFERHUB_ORDER_MAX_AMOUNT",
                "must not be below OFFERHUB_ORDER_MIN_AMOUNT",
            );
        }

        let webhook_backoff_base_ms = p.parse_with(
            "OFFERHUB_WEBHOOK_BACKOFF_BASE_MS",
            "5000",
            "a number of milliseconds between 1 and 3600000",
            |v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| (1..=3_600_000).contains(n))
            },
        );
        let trustless_platform_fee_bps = p.parse_with(
            "TRUSTLESS_PLATFORM_FEE",
            "0",
            "a percentage between 0 and 99 with at most two decimals, such as 2.5",
            |v| {
                crate::services::escrow::fee_bps(
                    "TRUSTLESS_PLATFORM_FEE",
                    &serde_json::Value::String(v.to_string()),
                )
                .ok()
            },
        );
        let trustless_max_fee_stroops = p.parse_with(
            "TRUSTLESS_MAX_FEE_STROOPS",
            "10000000",
            "a number of stroops between 100 and 1000000000",
            |v| {
                v.parse::<u32>()
                    .ok()
                    .filter(|n| (100..=1_000_000_000).contains(n))
            },
        );
        let trustless_factory_contract = p.get("TRUSTLESS_FACTORY_CONTRACT").map(str::to_string);
        if let Some(c) = &trustless_factory_contract
            && stellar_strkey::Contract::from_string(c).is_err()
        {
            p.bad("TRUSTLESS_FACTORY_CONTRACT", "must be a contract id (C…)");
        }
        let trustless_requests_per_minute = p.parse_with(
            "TRUSTLESS_REQUESTS_PER_MINUTE",
            "45",
            "a number between 1 and 50 (Trustless Work allows 50 per minute)",
            |v| v.parse::<u32>().ok().filter(|n| (1..=50).contains(n)),
        );
        let saga_wait_ms = p.parse_with(
            "OFFERHUB_SAGA_WAIT_MS",
            "20000",
            "a number of milliseconds between 0 and 120000",
            |v| v.parse::<u64>().ok().filter(|n| *n <= 120_000),
        );
        let saga_max_attempts = p.parse_with(
            "OFFERHUB_SAGA_MAX_ATTEMPTS",
            "30",
            "a number between 1 and 1000",
            |v| v.parse::<u32>().ok().filter(|n| (1..=1000).contains(n)),
        );
        let saga_lease_secs = p.parse_with(
            "OFFERHUB_SAGA_LEASE_SECS",
            "30",
            "a number of seconds between 1 and 3600",
            |v| v.parse::<u32>().ok().filter(|n| (1..=3600).contains(n)),
        );
        let webhook_disable_after_hours = p.parse_with(
            "OFFERHUB_WEBHOOK_DISABLE_AFTER_HOURS",
            "72",
            "a number of hours between 1 and 8760",
            |v| v.parse::<u32>().ok().filter(|n| (1..=8760).contains(n)),
        );

        // Durations: ISO-8601 (`P7D`, `PT2S`, `PT36H`) or a whole number of seconds.
        const DURATION: &str = "an ISO-8601 duration such as P7D or PT2S, or a number of seconds, between 1 second and 3650 days";
        let optional_duration = |p: &mut Parser, key: &str| {
            p.get(key).and_then(|raw| {
                let v = crate::services::lifecycle::parse_duration(raw);
                if v.is_none() {
                    p.bad(key, format!("must be {DURATION} (got {raw:?})"));
                }
                v
            })
        };
        let auto_release_after_secs = optional_duration(&mut p, "OFFERHUB_AUTO_RELEASE_AFTER");
        let order_reservation_ttl_secs =
            optional_duration(&mut p, "OFFERHUB_ORDER_RESERVATION_TTL");
        let reconcile_every_secs = optional_duration(&mut p, "OFFERHUB_RECONCILE_EVERY");
        let reconcile_full_every_secs = p.parse_with(
            "OFFERHUB_RECONCILE_FULL_EVERY",
            "P1D",
            DURATION,
            crate::services::lifecycle::parse_duration,
        );

        if !p.issues.is_empty() {
            return Err(ConfigError(p.issues));
        }
        // Every Option below is Some when no issue was recorded.
        let missing = |v: &str| issue(v, "internal: value missing after validation");
        Ok(Config {
            data_dir,
            database_url,
            host: host.ok_or_else(|| missing("HOST"))?,
            port: port.ok_or_else(|| missing("PORT"))?,
            metrics_addr,
            public_base_url: public_base_url.ok_or_else(|| missing("PUBLIC_BASE_URL"))?,
            environment: environment.ok_or_else(|| missing("OFFERHUB_ENV"))?,
            master_key,
            wallet_encryption_key,
            wallet_encryption_keys_previous,
            payment_provider: payment_provider.ok_or_else(|| missing("PAYMENT_PROVIDER"))?,
            network: net,
            horizon_url,
            usdc_asset_code,
            usdc_issuer,
            platform_user_id,
            trustless_api_url,
            trustless_api_key,
            trustless_platform_fee_bps: trustless_platform_fee_bps
                .ok_or_else(|| missing("TRUSTLESS_PLATFORM_FEE"))?,
            trustless_max_fee_stroops: trustless_max_fee_stroops
                .ok_or_else(|| missing("TRUSTLESS_MAX_FEE_STROOPS"))?,
            trustless_factory_contract,
            trustless_requests_per_minute: trustless_requests_per_minute
                .ok_or_else(|| missing("TRUSTLESS_REQUESTS_PER_MINUTE"))?,
            saga_wait_ms: saga_wait_ms.ok_or_else(|| missing("OFFERHUB_SAGA_WAIT_MS"))?,
            saga_max_attempts: saga_max_attempts
                .ok_or_else(|| missing("OFFERHUB_SAGA_MAX_ATTEMPTS"))?,
            saga_lease_secs: saga_lease_secs.ok_or_else(|| missing("OFFERHUB_SAGA_LEASE_SECS"))?,
            airtm: AirtmConfig {
                env: airtm_env,
                base_url: airtm_base_url,
                checkout_url: airtm_checkout_url,
                require_verified: airtm_require_verified
                    .ok_or_else(|| missing("AIRTM_REQUIRE_VERIFIED"))?,
                reconcile_secs: airtm_reconcile_secs
                    .ok_or_else(|| missing("AIRTM_RECONCILE_SECS"))?,
                api_key: airtm_api_key,
                api_secret: airtm_api_secret,
                webhook_secrets,
            },
            rate_limit_per_minute: rate_limit_per_minute
                .ok_or_else(|| missing("OFFERHUB_RATE_LIMIT_PER_MINUTE"))?,
            body_limit_bytes: body_limit_bytes
                .ok_or_else(|| missing("OFFERHUB_BODY_LIMIT_BYTES"))?,
            idempotency_ttl_hours: idempotency_ttl_hours
                .ok_or_else(|| missing("OFFERHUB_IDEMPOTENCY_TTL_HOURS"))?,
            order_min_amount: order_min_amount
                .ok_or_else(|| missing("OFFERHUB_ORDER_MIN_AMOUNT"))?,
            order_max_amount: order_max_amount
                .ok_or_else(|| missing("OFFERHUB_ORDER_MAX_AMOUNT"))?,
            webhook_backoff_base_ms: webhook_backoff_base_ms
                .ok_or_else(|| missing("OFFERHUB_WEBHOOK_BACKOFF_BASE_MS"))?,
            webhook_disable_after_hours: webhook_disable_after_hours
                .ok_or_else(|| missing("OFFERHUB_WEBHOOK_DISABLE_AFTER_HOURS"))?,
            webhook_allow_private_networks: webhook_allow_private_networks
                .ok_or_else(|| missing("OFFERHUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS"))?,
            max_adjustment: max_adjustment.ok_or_else(|| missing("OFFERHUB_MAX_ADJUSTMENT"))?,
            auto_release_after_secs,
            order_reservation_ttl_secs,
            reconcile_every_secs,
            reconcile_full_every_secs: reconcile_full_every_secs
                .ok_or_else(|| missing("OFFERHUB_RECONCILE_FULL_EVERY"))?,
        })
    }

    /// `host:port` to bind.
    pub fn bind_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }
}

fn merged(
    sources: &Sources,
    generated: Option<&BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut map = BTreeMap::new();
    if let Some(path) = &sources.config_file {
        map.extend(read_toml(path)?);
    }
    if let Some(g) = generated {
        for (k, v) in g {
            if map.get(k).is_none_or(|x: &String| x.is_empty()) {
                map.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(path) = &sources.dotenv_file {
        map.extend(read_dotenv(path)?);
    }
    for setting in SETTINGS {
        if let Some(v) = sources.env.get(setting.env) {
            map.insert(setting.env.to_string(), v.clone());
        }
    }
    // An empty value means "not set" (as in `KEY=` lines of a template).
    map.retain(|_, v| !v.trim().is_empty());
    if let Some(g) = generated {
        for (k, v) in g {
            map.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Ok(map)
}

/// Reads a secret from the OS keyring: `keyring:<service>/<user>` (Linux: the kernel
/// keyring via keyutils; no desktop session needed). Store one with e.g.
/// `keyctl add user "<user>@<service>" <hex> @u` or any keyring-crate client.
pub fn read_keyring(spec: &str) -> Result<String, String> {
    let rest = spec.strip_prefix("keyring:").unwrap_or(spec);
    let (service, user) = rest
        .split_once('/')
        .filter(|(s, u)| !s.is_empty() && !u.is_empty())
        .ok_or_else(|| {
            "must be keyring:<service>/<user> when read from the OS keyring".to_string()
        })?;
    keyring::Entry::new(service, user)
        .and_then(|e| e.get_password())
        .map(|k| k.trim().to_string())
        .map_err(|e| format!("cannot read {service}/{user} from the OS keyring: {e}"))
}

fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

/// `sqlite://relative/x.db?…`, `sqlite:relative/x.db`, `sqlite:///abs/x.db` →
/// `sqlite:///abs/…/x.db?…` so that the file does not depend on the working directory
/// of the process; without a query, `mode=rwc` (`serve` creates the file).
fn resolve_sqlite_url(base: &Path, url: &str) -> String {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if rest.starts_with(':') {
        return url.to_string();
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let abs = resolve_path(base, path);
    match query {
        Some(q) => format!("sqlite://{}?{q}", abs.display()),
        None => format!("sqlite://{}?mode=rwc", abs.display()),
    }
}

struct Parser<'a> {
    map: &'a BTreeMap<String, String>,
    issues: Vec<ConfigIssue>,
}

impl<'a> Parser<'a> {
    fn get(&self, key: &str) -> Option<&'a str> {
        self.map.get(key).map(|v| v.trim())
    }
    fn bad(&mut self, key: &str, problem: impl Into<String>) {
        self.issues.push(ConfigIssue {
            variable: key.to_string(),
            problem: problem.into(),
        });
    }
    fn parse_with<T>(
        &mut self,
        key: &str,
        default: &str,
        expected: &str,
        f: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let raw = self.get(key).unwrap_or(default);
        let v = f(raw);
        if v.is_none() {
            self.bad(key, format!("must be {expected} (got {raw:?})"));
        }
        v
    }
    fn url(&mut self, key: &str, v: &str) -> Option<Url> {
        match Url::parse(v) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Some(u),
            _ => {
                self.bad(key, format!("must be an http(s) URL (got {v:?})"));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_map(&map(pairs), Path::new("/srv/oh"))
    }

    #[test]
    fn defaults_are_the_embedded_sandbox() {
        let c = load(&[]).unwrap();
        assert_eq!(c.port, 4000);
        assert_eq!(c.network, Network::Sandbox);
        assert_eq!(c.payment_provider, PaymentProvider::Crypto);
        assert_eq!(c.data_dir, PathBuf::from("/srv/oh/data"));
        assert_eq!(
            c.database_url.expose(),
            "sqlite:///srv/oh/data/offerhub.db?mode=rwc"
        );
        assert!(c.horizon_url.is_none());
        assert_eq!(c.public_base_url.as_str(), "http://localhost:4000/");
    }

    #[test]
    fn every_problem_is_reported_naming_its_variable() {
        let err = load(&[
            ("PORT", "70000"),
            ("OFFERHUB_METRICS_ADDR", "localhost"),
            ("STELLAR_NETWORK", "moonnet"),
            ("WALLET_ENCRYPTION_KEY", "abc"),
            ("DATABASE_URL", "mysql://x"),
            ("STELLAR_USDC_ISSUER", "GNOTVALID"),
        ])
        .unwrap_err();
        let vars: Vec<_> = err.0.iter().map(|i| i.variable.as_str()).collect();
        for v in [
            "PORT",
            "OFFERHUB_METRICS_ADDR",
            "STELLAR_NETWORK",
            "WALLET_ENCRYPTION_KEY",
            "DATABASE_URL",
            "STELLAR_USDC_ISSUER",
        ] {
            assert!(vars.contains(&v), "{v} missing in {err}");
        }
        assert!(err.to_string().contains("PORT: must be a port number"));
    }

    #[test]
    fn lifecycle_durations_are_validated_together() {
        let c = load(&[]).unwrap();
        assert_eq!(
            (
                c.auto_release_after_secs,
                c.order_reservation_ttl_secs,
                c.reconcile_every_secs,
                c.reconcile_full_every_secs
            ),
            (None, None, None, 86_400),
            "off by default, daily full sweep"
        );
        let c = load(&[
            ("OFFERHUB_AUTO_RELEASE_AFTER", "P7D"),
            ("OFFERHUB_ORDER_RESERVATION_TTL", "3600"),
            ("OFFERHUB_RECONCILE_EVERY", "PT15M"),
            ("OFFERHUB_RECONCILE_FULL_EVERY", "PT6H"),
        ])
        .unwrap();
        assert_eq!(c.auto_release_after_secs, Some(604_800));
        assert_eq!(c.order_reservation_ttl_secs, Some(3600));
        assert_eq!(c.reconcile_every_secs, Some(900));
        assert_eq!(c.reconcile_full_every_secs, 21_600);
        let err = load(&[
            ("OFFERHUB_AUTO_RELEASE_AFTER", "a week"),
            ("OFFERHUB_ORDER_RESERVATION_TTL", "0"),
            ("OFFERHUB_RECONCILE_EVERY", "P1M"),
            ("OFFERHUB_RECONCILE_FULL_EVERY", "-1"),
        ])
        .unwrap_err();
        let vars: Vec<_> = err.0.iter().map(|i| i.variable.as_str()).collect();
        for v in [
            "OFFERHUB_AUTO_RELEASE_AFTER",
            "OFFERHUB_ORDER_RESERVATION_TTL",
            "OFFERHUB_RECONCILE_EVERY",
            "OFFERHUB_RECONCILE_FULL_EVERY",
        ] {
            assert!(vars.contains(&v), "{v} not reported: {err}");
        }
        assert!(err.to_string().contains("ISO-8601"), "{err}");
    }

    #[test]
    fn testnet_requires_its_secrets() {
        let err = load(&[("STELLAR_NETWORK", "testnet")]).unwrap_err();
        let vars: Vec<_> = err.0.iter().map(|i| i.variable.as_str()).collect();
        assert!(vars.contains(&"TRUSTLESS_API_KEY"));
        assert!(vars.contains(&"OFFERHUB_MASTER_KEY"));
        assert!(vars.contains(&"WALLET_ENCRYPTION_KEY"));
        let ok = load(&[
            ("STELLAR_NETWORK", "testnet"),
            ("TRUSTLESS_API_KEY", "tw_1"),
            ("OFFERHUB_MASTER_KEY", &"m".repeat(40)),
            ("WALLET_ENCRYPTION_KEY", &"ab".repeat(32)),
        ])
        .unwrap();
        assert_eq!(
            ok.usdc_issuer.as_deref(),
            Some("GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5")
        );
        assert_eq!(
            ok.horizon_url.unwrap().as_str(),
            "https://horizon-testnet.stellar.org/"
        );
    }

    #[test]
    fn wallet_key_from_the_os_keyring() {
        let service = format!("offerhub-test-{}", crate::ids::random_alphanumeric(8));
        let key = "ef".repeat(32);
        let stored = keyring::Entry::new(&service, "wallet").and_then(|e| e.set_password(&key));
        if stored.is_err() {
            eprintln!("skipped: this machine's kernel keyring is not usable ({stored:?})");
            return;
        }
        let spec = format!("keyring:{service}/wallet");
        let c = load(&[("WALLET_ENCRYPTION_KEY", &spec)]).unwrap();
        assert_eq!(c.wallet_encryption_key.unwrap().expose_secret(), key);
        let err = load(&[("WALLET_ENCRYPTION_KEY", "keyring:missing-service/none")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("WALLET_ENCRYPTION_KEY: cannot read"),
            "{err}"
        );
        let _ = keyring::Entry::new(&service, "wallet").and_then(|e| e.delete_credential());
    }

    #[test]
    fn mainnet_horizon_must_be_https() {
        let err = load(&[
            ("STELLAR_NETWORK", "mainnet"),
            ("STELLAR_HORIZON_URL", "http://horizon.example"),
        ])
        .unwrap_err();
        assert!(err.0.iter().any(|i| i.variable == "STELLAR_HORIZON_URL"));
    }

    #[test]
    fn airtm_settings_are_validated() {
        let err = load(&[
            ("AIRTM_WEBHOOK_SECRET", "whsec_%%%"),
            ("AIRTM_CHECKOUT_URL", "https://app.example/payin"),
            ("AIRTM_REQUIRE_VERIFIED", "maybe"),
            ("AIRTM_RECONCILE_SECS", "0"),
        ])
        .unwrap_err();
        for v in [
            "AIRTM_WEBHOOK_SECRET",
            "AIRTM_CHECKOUT_URL",
            "AIRTM_REQUIRE_VERIFIED",
            "AIRTM_RECONCILE_SECS",
        ] {
            assert!(err.0.iter().any(|i| i.variable == v), "{v}: {err}");
        }
        assert!(!err.to_string().contains("%%%"));
        let c = load(&[
            ("PAYMENT_PROVIDER", "airtm"),
            ("AIRTM_WEBHOOK_SECRET", "whsec_b2xk,whsec_bmV3"),
        ])
        .unwrap();
        assert_eq!(c.airtm.webhook_secrets.len(), 2);
        assert!(c.airtm.base_url.is_none()); // the embedded simulator on the sandbox network
        let c = load(&[
            ("STELLAR_NETWORK", "testnet"),
            ("PAYMENT_PROVIDER", "airtm"),
        ])
        .unwrap_err();
        assert!(c.0.iter().any(|i| i.variable == "AIRTM_API_KEY"));
    }

    #[test]
    fn secrets_are_redacted() {
        let c = load(&[
            (
                "OFFERHUB_MASTER_KEY",
                "super-secret-master-key-0123456789abcdef",
            ),
            ("WALLET_ENCRYPTION_KEY", &"cd".repeat(32)),
            ("DATABASE_URL", "postgres://oh:hunter2@db.example/oh"),
            ("AIRTM_API_SECRET", "airtm-secret-value"),
        ])
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("super-secret"));
        assert!(!dbg.contains(&"cd".repeat(32)));
        assert!(!dbg.contains("hunter2"));
        assert!(!dbg.contains("airtm-secret-value"));
        assert!(dbg.contains("[redacted]"));
        assert_eq!(
            c.database_url.to_string(),
            "postgres://oh:***@db.example/oh"
        );
    }

    #[test]
    fn a_secret_shows_only_through_expose_secret() {
        let s = Secret::new("ohk_master_0123456789abcdef0123456789abcdef");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(
            s.expose_secret(),
            "ohk_master_0123456789abcdef0123456789abcdef"
        );
        assert_eq!(s, s.clone());
        assert_ne!(
            s,
            Secret::new("ohk_master_0123456789abcdef0123456789abcdeF")
        );
        assert_ne!(s, Secret::new("ohk_master"));
    }

    #[test]
    fn sources_layer_toml_then_dotenv_then_env() {
        let dir =
            std::env::temp_dir().join(format!("oh-cfg-{}", crate::ids::random_alphanumeric(8)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("offerhub.toml"),
            "[server]\nport = 5000\nhost = \"0.0.0.0\"\n[stellar]\nusdc_asset_code = \"USDX\"\n",
        )
        .unwrap();
        std::fs::write(
            dir.join(".env"),
            "PORT=6000\nSTELLAR_USDC_ASSET_CODE=USDY\n",
        )
        .unwrap();
        let sources = Sources {
            config_file: Some(dir.join("offerhub.toml")),
            dotenv_file: Some(dir.join(".env")),
            env: map(&[("PORT", "7000")]),
        };
        let c = Config::from_sources(&sources).unwrap();
        assert_eq!(c.port, 7000);
        assert_eq!(c.host.to_string(), "0.0.0.0");
        assert_eq!(c.usdc_asset_code, "USDY");
        assert_eq!(c.data_dir, dir.join("data"));

        std::fs::write(dir.join("offerhub.toml"), "[server]\nprot = 5000\n").unwrap();
        let err = Config::from_sources(&sources).unwrap_err();
        assert!(err.to_string().contains("unknown setting `server.prot`"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sandbox_secrets_are_generated_once_and_persisted() {
        let dir =
            std::env::temp_dir().join(format!("oh-cfg-{}", crate::ids::random_alphanumeric(8)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("offerhub.toml"), "[server]\nport = 4100\n").unwrap();
        let sources = Sources {
            config_file: Some(dir.join("offerhub.toml")),
            dotenv_file: None,
            env: BTreeMap::new(),
        };
        let (c1, g1) = Config::load(&sources).unwrap();
        assert_eq!(g1.names.len(), 2);
        let path = g1.written_to.unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let (c2, g2) = Config::load(&sources).unwrap();
        assert!(g2.names.is_empty());
        assert_eq!(c1.master_key, c2.master_key);
        assert_eq!(c1.wallet_encryption_key, c2.wallet_encryption_key);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

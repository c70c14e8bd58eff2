//! Configuration: `offerhub.toml`, then `.env`, then process environment variables —
//! a later source wins. Every setting has one environment name (the seed's names, such as
//! `DATABASE_URL`, `STELLAR_NETWORK`) and one TOML path (`database.url`,
//! `stellar.network`); see [`SETTINGS`]. Everything is validated at load time and every
//! problem is reported at once, each naming its variable.
//!
//! Each setting is declared once (`settings!` below: section, key, type, variable,
//! default). The sources are figment providers that put every value, as text, at its
//! TOML path; figment merges them (an empty value then counts as unset), fills in
//! generated sandbox secrets and the defaults, and extracts the result into `Deserialize`
//! structs whose fields keep an invalid value as a problem instead of stopping, so one
//! extraction finds every problem. The rules between settings come after.
//!
//! Relative paths (the data directory, a relative SQLite file) are resolved against the
//! directory that holds `offerhub.toml`, or the working directory when there is none.
//!
//! Secrets are held in [`Secret`], whose `Debug`/`Display` print `[redacted]`.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Value};
use figment::{Figment, Metadata, Profile, Provider};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use subtle::ConstantTimeEq;
use url::Url;

/// A secret string (API key, wallet key, signing secret), held in a
/// [`secrecy::SecretString`]: zeroized when dropped, never printed (`Debug` and `Display`
/// show `[redacted]`), compared in constant time, and read only through
/// [`Secret::expose_secret`].
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps `s` (a `String` is moved in, not copied).
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

/// One setting: its environment name, `offerhub.toml` path, default, and whether it is a
/// secret.
pub struct Setting {
    /// The environment variable (also the name in `.env` and in reported problems).
    pub env: &'static str,
    /// `section.key` in `offerhub.toml`.
    pub toml: &'static str,
    /// The value used when no source sets one; `None`: unset, or derived from other
    /// settings (the database in the data directory, per-network URLs, …).
    pub default: Option<&'static str>,
    /// Never echoed in a reported problem; `[redacted]` in `Debug`.
    pub secret: bool,
}

/// Declares every setting once — `offerhub.toml` section and key, type, environment
/// name, default — and makes from that the `Deserialize` structs the layered sources are
/// extracted into, their walk that reports each invalid value under its variable, and
/// [`SETTINGS`].
macro_rules! settings {
    (@default) => { None };
    (@default $default:literal) => { Some($default) };
    ($(
        $(#[doc = $section_doc:literal])*
        $section:ident: $Section:ident {
            $(
                $(#[doc = $doc:literal])*
                $key:ident: $ty:ty = $env:literal $(, default $default:literal)?;
            )*
        }
    )*) => {
        $(
            $(#[doc = $section_doc])*
            #[derive(Default, Deserialize)]
            #[serde(default)]
            struct $Section {
                $($(#[doc = $doc])* $key: Field<$ty>,)*
            }

            impl $Section {
                /// Each invalid value of the section, under its variable.
                fn problems(&self, out: &mut Vec<ConfigIssue>) {
                    $(self.$key.report($env, out);)*
                }
            }
        )*

        /// Every setting as extracted from the layered sources, each unset, valid, or
        /// invalid with its problem: one extraction finds every problem.
        #[derive(Default, Deserialize)]
        #[serde(default)]
        struct Settings {
            $($section: $Section,)*
        }

        impl Settings {
            /// Every invalid value, each naming its variable, in [`SETTINGS`] order.
            fn problems(&self) -> Vec<ConfigIssue> {
                let mut out = Vec::new();
                $(self.$section.problems(&mut out);)*
                out
            }
        }

        /// Every setting OfferHub reads, with its environment name, `offerhub.toml` path
        /// and default.
        pub const SETTINGS: &[Setting] = &[$($(
            Setting {
                env: $env,
                toml: concat!(stringify!($section), ".", stringify!($key)),
                default: settings!(@default $($default)?),
                secret: <$ty as FromSetting>::SECRET,
            },
        )*)*];
    };
}

settings! {
    /// `[server]`: the listener, request limits, local state.
    server: ServerSettings {
        data_dir: PathBuf = "OFFERHUB_DATA_DIR", default "data";
        host: IpAddr = "HOST", default "127.0.0.1";
        port: NonZeroU16 = "PORT", default "4000";
        metrics_addr: SocketAddr = "OFFERHUB_METRICS_ADDR";
        /// Default: `http://localhost:{port}`.
        public_base_url: HttpUrl = "PUBLIC_BASE_URL";
        environment: Environment = "OFFERHUB_ENV", default "development";
        rate_limit_per_minute: Within<1, 1_000_000, Whole> =
            "OFFERHUB_RATE_LIMIT_PER_MINUTE", default "600";
        body_limit_bytes: Within<1024, 104_857_600, Bytes> =
            "OFFERHUB_BODY_LIMIT_BYTES", default "1048576";
        idempotency_ttl_hours: Within<1, 8760, Hours> =
            "OFFERHUB_IDEMPOTENCY_TTL_HOURS", default "24";
    }
    /// `[database]`.
    database: DatabaseSettings {
        /// Default: `sqlite://{data_dir}/offerhub.db?mode=rwc`.
        url: DatabaseUrlText = "DATABASE_URL";
    }
    /// `[secrets]`: generated on the sandbox network when unset.
    secrets: SecretSettings {
        master_key: MasterKey = "OFFERHUB_MASTER_KEY";
        wallet_encryption_key: WalletKey = "WALLET_ENCRYPTION_KEY";
        wallet_encryption_keys_previous: PreviousWalletKeys = "WALLET_ENCRYPTION_KEYS_PREVIOUS";
    }
    /// `[payments]`.
    payments: PaymentSettings {
        provider: PaymentProvider = "PAYMENT_PROVIDER", default "crypto";
    }
    /// `[stellar]`: URL and issuer default per network.
    stellar: StellarSettings {
        network: Network = "STELLAR_NETWORK", default "sandbox";
        horizon_url: HttpUrl = "STELLAR_HORIZON_URL";
        usdc_asset_code: AssetCode = "STELLAR_USDC_ASSET_CODE", default "USDC";
        usdc_issuer: AccountId = "STELLAR_USDC_ISSUER";
        platform_user_id: UserId = "PLATFORM_USER_ID";
    }
    /// `[trustless]`: Trustless Work; the URL defaults per network.
    trustless: TrustlessSettings {
        api_url: HttpUrl = "TRUSTLESS_API_URL";
        api_key: Secret = "TRUSTLESS_API_KEY";
        platform_fee: FeePercent = "TRUSTLESS_PLATFORM_FEE", default "0";
        max_fee_stroops: Within<100, 1_000_000_000, Stroops> =
            "TRUSTLESS_MAX_FEE_STROOPS", default "10000000";
        factory_contract: ContractId = "TRUSTLESS_FACTORY_CONTRACT";
        requests_per_minute: Within<1, 50, TrustlessPace> =
            "TRUSTLESS_REQUESTS_PER_MINUTE", default "45";
    }
    /// `[webhooks]`.
    webhooks: WebhookSettings {
        allow_private_networks: bool =
            "OFFERHUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS", default "false";
        backoff_base_ms: Within<1, 3_600_000, Millis> =
            "OFFERHUB_WEBHOOK_BACKOFF_BASE_MS", default "5000";
        disable_after_hours: Within<1, 8760, Hours> =
            "OFFERHUB_WEBHOOK_DISABLE_AFTER_HOURS", default "72";
    }
    /// `[limits]`.
    limits: LimitSettings {
        order_min_amount: PositiveAmount = "OFFERHUB_ORDER_MIN_AMOUNT", default "1.00";
        order_max_amount: PositiveAmount = "OFFERHUB_ORDER_MAX_AMOUNT", default "50000.00";
        max_adjustment: PositiveAmount = "OFFERHUB_MAX_ADJUSTMENT", default "1000000.00";
    }
    /// `[lifecycle]`: durations; unset = off.
    lifecycle: LifecycleSettings {
        auto_release_after: Period = "OFFERHUB_AUTO_RELEASE_AFTER";
        order_reservation_ttl: Period = "OFFERHUB_ORDER_RESERVATION_TTL";
        reconcile_every: Period = "OFFERHUB_RECONCILE_EVERY";
        reconcile_full_every: Period = "OFFERHUB_RECONCILE_FULL_EVERY", default "P1D";
    }
    /// `[sagas]`.
    sagas: SagaSettings {
        wait_ms: Within<0, 120_000, Millis> = "OFFERHUB_SAGA_WAIT_MS", default "20000";
        max_attempts: Within<1, 1000, Number> = "OFFERHUB_SAGA_MAX_ATTEMPTS", default "30";
        lease_secs: Within<1, 3600, Secs> = "OFFERHUB_SAGA_LEASE_SECS", default "30";
    }
    /// `[airtm]`: the base URL defaults per `AIRTM_ENV` off the sandbox network.
    airtm: AirtmSettings {
        env: AirtmEnv = "AIRTM_ENV", default "sandbox";
        base_url: HttpUrl = "AIRTM_BASE_URL";
        checkout_url: CheckoutUrl = "AIRTM_CHECKOUT_URL";
        require_verified: bool = "AIRTM_REQUIRE_VERIFIED", default "false";
        reconcile_secs: Within<1, 86_400, Secs> = "AIRTM_RECONCILE_SECS", default "60";
        api_key: Secret = "AIRTM_API_KEY";
        api_secret: Secret = "AIRTM_API_SECRET";
        webhook_secret: WebhookSecrets = "AIRTM_WEBHOOK_SECRET";
    }
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

/// One source of settings as a figment [`Provider`]: each value at its `offerhub.toml`
/// path (`server.port`) and kept as text, so that a value reads the same whichever
/// source gave it (each setting's type reads the text).
struct Layer {
    name: String,
    file: Option<PathBuf>,
    values: Dict,
}

impl Layer {
    /// Values named by environment variables (the process environment, a `.env` file,
    /// generated secrets); names that are no setting are ignored.
    fn variables(name: impl Into<String>, vars: &BTreeMap<String, String>) -> Layer {
        let mut values = Dict::new();
        for setting in SETTINGS {
            if let Some(v) = vars.get(setting.env) {
                insert(&mut values, setting.toml, v.clone());
            }
        }
        Layer {
            name: name.into(),
            file: None,
            values,
        }
    }

    /// Every setting's default.
    fn defaults() -> Layer {
        let mut values = Dict::new();
        for setting in SETTINGS {
            if let Some(d) = setting.default {
                insert(&mut values, setting.toml, d.to_string());
            }
        }
        Layer {
            name: "defaults".into(),
            file: None,
            values,
        }
    }

    /// `offerhub.toml`, with the problems of its layout: unknown keys are errors (typos
    /// must not silently fall back to defaults), and so are top-level values outside a
    /// `[section]`. Numbers, booleans and arrays (joined with commas) become the text an
    /// environment variable would hold.
    fn toml_file(path: &Path) -> Result<(Layer, Vec<ConfigIssue>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            issue(
                "OFFERHUB_CONFIG",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            issue(
                "OFFERHUB_CONFIG",
                format!("{} is not valid TOML: {e}", path.display()),
            )
        })?;
        let mut values = Dict::new();
        let mut problems = Vec::new();
        for (section, entries) in &table {
            let Some(entries) = entries.as_table() else {
                problems.push(ConfigIssue {
                    variable: "OFFERHUB_CONFIG".into(),
                    problem: format!("[{section}] must be a table"),
                });
                continue;
            };
            for (key, v) in entries {
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
                insert(&mut values, setting.toml, text);
            }
        }
        let layer = Layer {
            name: "offerhub.toml".into(),
            file: Some(path.to_path_buf()),
            values,
        };
        Ok((layer, problems))
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        match &self.file {
            Some(path) => Metadata::from(self.name.clone(), path.as_path()),
            None => Metadata::named(self.name.clone()),
        }
    }

    fn data(&self) -> Result<figment::value::Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

/// Puts `text` at `section.key`.
fn insert(dict: &mut Dict, path: &str, text: String) {
    let (section, key) = path.split_once('.').unwrap_or(("", path));
    let table = dict
        .entry(section.to_string())
        .or_insert_with(|| Value::from(Dict::new()));
    if let Value::Dict(_, table) = table {
        table.insert(key.to_string(), Value::from(text));
    }
}

/// Removes the empty values: an empty value means "not set" (as in `KEY=` lines of a
/// template), also where it overrode a lower source.
fn strip_blanks(dict: &mut Dict) {
    dict.retain(|_, v| match v {
        Value::String(_, s) => !s.trim().is_empty(),
        Value::Dict(_, inner) => {
            strip_blanks(inner);
            true
        }
        _ => true,
    });
}

fn internal(e: figment::Error) -> ConfigError {
    issue("OFFERHUB_CONFIG", format!("internal: {e}"))
}

/// What the sources set: `offerhub.toml`, then `.env`, then the environment merged by
/// figment (a later source wins, also with an empty value), then the empty values
/// removed; with the problems of `offerhub.toml`'s layout.
struct Layered {
    set: Dict,
    issues: Vec<ConfigIssue>,
}

impl Layered {
    fn read(sources: &Sources) -> Result<Layered, ConfigError> {
        let mut figment = Figment::new();
        let mut issues = Vec::new();
        if let Some(path) = &sources.config_file {
            let (layer, problems) = Layer::toml_file(path)?;
            figment = figment.merge(layer);
            issues = problems;
        }
        if let Some(path) = &sources.dotenv_file {
            figment = figment.merge(Layer::variables(
                path.display().to_string(),
                &read_dotenv(path)?,
            ));
        }
        figment = figment.merge(Layer::variables("environment", &sources.env));
        Layered::new(figment, issues)
    }

    /// Values named by environment variables, as [`Config::from_map`] takes them.
    fn from_map(map: &BTreeMap<String, String>) -> Result<Layered, ConfigError> {
        Layered::new(Figment::from(Layer::variables("values", map)), Vec::new())
    }

    fn new(figment: Figment, issues: Vec<ConfigIssue>) -> Result<Layered, ConfigError> {
        let mut set: Dict = figment.extract().map_err(internal)?;
        strip_blanks(&mut set);
        Ok(Layered { set, issues })
    }

    /// The text a source set at `path` (`section.key`), as given.
    fn text(&self, path: &str) -> Option<&str> {
        let (section, key) = path.split_once('.')?;
        self.set.get(section)?.as_dict()?.get(key)?.as_str()
    }

    /// Every setting: what the sources set, then (where unset) `generated` secrets, then
    /// the defaults.
    fn settings(
        &self,
        generated: Option<&BTreeMap<String, String>>,
    ) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Layer {
            name: "configuration".into(),
            file: None,
            values: self.set.clone(),
        });
        if let Some(g) = generated {
            figment = figment.join(Layer::variables("generated secrets", g));
        }
        figment.join(Layer::defaults()).extract().map_err(internal)
    }

    /// The data directory, relative to `base` (`data` by default).
    fn data_dir(&self, base: &Path) -> PathBuf {
        resolve_path(base, self.text("server.data_dir").unwrap_or("data"))
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

impl Config {
    /// Loads and validates without side effects (no generated secrets).
    pub fn from_sources(sources: &Sources) -> Result<Config, ConfigError> {
        let layered = Layered::read(sources)?;
        let base = base_dir(sources.config_file.as_deref());
        Config::validate(&layered.settings(None)?, &base, layered.issues)
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
        let layered = Layered::read(sources)?;
        let sandbox = matches!(layered.text("stellar.network"), None | Some("sandbox"));
        let missing: Vec<&'static str> = [
            ("OFFERHUB_MASTER_KEY", "secrets.master_key"),
            ("WALLET_ENCRYPTION_KEY", "secrets.wallet_encryption_key"),
        ]
        .into_iter()
        .filter(|(_, path)| layered.text(path).is_none())
        .map(|(env, _)| env)
        .collect();
        if !sandbox || missing.is_empty() || !layered.issues.is_empty() {
            let config = Config::validate(&layered.settings(None)?, &base, layered.issues)?;
            return Ok((config, GeneratedSecrets::default()));
        }
        let data_dir = layered.data_dir(&base);
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
        let settings = layered.settings(Some(&stored))?;
        Ok((
            Config::validate(&settings, &base, layered.issues)?,
            generated,
        ))
    }

    /// Builds a configuration from values named by their environment variables (an empty
    /// value is unset). `base` resolves relative paths. Reports every problem, each
    /// naming its variable.
    pub fn from_map(map: &BTreeMap<String, String>, base: &Path) -> Result<Config, ConfigError> {
        let layered = Layered::from_map(map)?;
        Config::validate(&layered.settings(None)?, base, layered.issues)
    }

    /// The configuration of extracted settings: `issues` (found earlier), each invalid
    /// value, then the rules between settings — every problem at once.
    fn validate(
        s: &Settings,
        base: &Path,
        mut issues: Vec<ConfigIssue>,
    ) -> Result<Config, ConfigError> {
        issues.extend(s.problems());
        let mut bad = |variable: &str, problem: String| {
            issues.push(ConfigIssue {
                variable: variable.to_string(),
                problem,
            })
        };
        let data_dir = resolve_path(
            base,
            s.server
                .data_dir
                .get()
                .and_then(|p| p.to_str())
                .unwrap_or("data"),
        );
        let database_url = match s.database.url.get() {
            Some(DatabaseUrlText(u)) if u.starts_with("sqlite:") => {
                DatabaseUrl::new(resolve_sqlite_url(base, u))
            }
            Some(DatabaseUrlText(u)) => DatabaseUrl::new(u.clone()),
            None => DatabaseUrl::new(format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("offerhub.db").display()
            )),
        };
        let port = s.server.port.get().map(|p| p.get());
        let public_base_url = match s.server.public_base_url.get() {
            Some(HttpUrl(u)) => Some(u.clone()),
            None => Url::parse(&format!("http://localhost:{}", port.unwrap_or(4000))).ok(),
        };

        let net = s.stellar.network.get().copied().unwrap_or(Network::Sandbox);
        let horizon_url = match s.stellar.horizon_url.get() {
            Some(HttpUrl(u)) => {
                if net != Network::Sandbox && u.scheme() != "https" {
                    bad(
                        "STELLAR_HORIZON_URL",
                        format!("must use https on {}", net.as_str()),
                    );
                }
                Some(u.clone())
            }
            None => net.default_horizon_url().and_then(|u| Url::parse(u).ok()),
        };
        let usdc_issuer = match s.stellar.usdc_issuer.get() {
            Some(AccountId(a)) => Some(a.clone()),
            None => net.default_usdc_issuer().map(str::to_string),
        };
        let trustless_api_url = match s.trustless.api_url.get() {
            Some(HttpUrl(u)) => Some(u.clone()),
            None => net.default_trustless_url().and_then(|u| Url::parse(u).ok()),
        };
        if net != Network::Sandbox {
            let on = net.as_str();
            if s.trustless.api_key.is_unset() {
                bad(
                    "TRUSTLESS_API_KEY",
                    format!("is required on {on} (get one at trustlesswork.com)"),
                );
            }
            if s.secrets.master_key.is_unset() {
                bad("OFFERHUB_MASTER_KEY", format!("is required on {on}"));
            }
            if s.secrets.wallet_encryption_key.is_unset() {
                bad(
                    "WALLET_ENCRYPTION_KEY",
                    format!(
                        "is required on {on} (every user has a Stellar wallet, in airtm mode too)"
                    ),
                );
            }
        }

        let airtm_env = s.airtm.env.get().copied();
        let airtm_base_url = match s.airtm.base_url.get() {
            Some(HttpUrl(u)) => Some(u.clone()),
            None if net == Network::Sandbox => None,
            None => airtm_env.and_then(|e| Url::parse(e.default_base_url()).ok()),
        };
        let payment_provider = s.payments.provider.get().copied();
        if payment_provider == Some(PaymentProvider::Airtm) && net != Network::Sandbox {
            if s.airtm.api_key.is_unset() {
                bad(
                    "AIRTM_API_KEY",
                    "is required when PAYMENT_PROVIDER=airtm".into(),
                );
            }
            if s.airtm.api_secret.is_unset() {
                bad(
                    "AIRTM_API_SECRET",
                    "is required when PAYMENT_PROVIDER=airtm".into(),
                );
            }
            let no_webhook_secret = match &s.airtm.webhook_secret {
                Field::Unset => true,
                Field::Set(WebhookSecrets(secrets)) => secrets.is_empty(),
                Field::Invalid(_) => false,
            };
            if s.server.environment.get() == Some(&Environment::Production) && no_webhook_secret {
                bad(
                    "AIRTM_WEBHOOK_SECRET",
                    "is required in production when PAYMENT_PROVIDER=airtm".into(),
                );
            }
        }
        if let (Some(min), Some(max)) = (
            s.limits.order_min_amount.get(),
            s.limits.order_max_amount.get(),
        ) && min.0 > max.0
        {
            bad(
                "OFFERHUB_ORDER_MAX_AMOUNT",
                "must not be below OFFERHUB_ORDER_MIN_AMOUNT".into(),
            );
        }

        if !issues.is_empty() {
            return Err(ConfigError(issues));
        }
        // Every setting with a default has a value when no problem was found.
        let config = || -> Option<Config> {
            Some(Config {
                data_dir,
                database_url,
                host: *s.server.host.get()?,
                port: port?,
                metrics_addr: s.server.metrics_addr.get().copied(),
                public_base_url: public_base_url?,
                environment: *s.server.environment.get()?,
                master_key: s.secrets.master_key.get().map(|k| k.0.clone()),
                wallet_encryption_key: s.secrets.wallet_encryption_key.get().map(|k| k.0.clone()),
                wallet_encryption_keys_previous: s
                    .secrets
                    .wallet_encryption_keys_previous
                    .get()
                    .map(|k| k.0.clone())
                    .unwrap_or_default(),
                payment_provider: payment_provider?,
                network: net,
                horizon_url,
                usdc_asset_code: s.stellar.usdc_asset_code.get()?.0.clone(),
                usdc_issuer,
                platform_user_id: s.stellar.platform_user_id.get().map(|u| u.0.clone()),
                trustless_api_url,
                trustless_api_key: s.trustless.api_key.get().cloned(),
                trustless_platform_fee_bps: s.trustless.platform_fee.get()?.0,
                trustless_max_fee_stroops: s.trustless.max_fee_stroops.get()?.value()?,
                trustless_factory_contract: s.trustless.factory_contract.get().map(|c| c.0.clone()),
                trustless_requests_per_minute: s.trustless.requests_per_minute.get()?.value()?,
                saga_wait_ms: s.sagas.wait_ms.get()?.value()?,
                saga_max_attempts: s.sagas.max_attempts.get()?.value()?,
                saga_lease_secs: s.sagas.lease_secs.get()?.value()?,
                airtm: AirtmConfig {
                    env: airtm_env?.as_str().to_string(),
                    base_url: airtm_base_url,
                    checkout_url: s.airtm.checkout_url.get().map(|c| c.0.clone()),
                    require_verified: *s.airtm.require_verified.get()?,
                    reconcile_secs: s.airtm.reconcile_secs.get()?.value()?,
                    api_key: s.airtm.api_key.get().cloned(),
                    api_secret: s.airtm.api_secret.get().cloned(),
                    webhook_secrets: s
                        .airtm
                        .webhook_secret
                        .get()
                        .map(|w| w.0.clone())
                        .unwrap_or_default(),
                },
                rate_limit_per_minute: s.server.rate_limit_per_minute.get()?.value()?,
                body_limit_bytes: s.server.body_limit_bytes.get()?.value()?,
                idempotency_ttl_hours: s.server.idempotency_ttl_hours.get()?.value()?,
                order_min_amount: s.limits.order_min_amount.get()?.0,
                order_max_amount: s.limits.order_max_amount.get()?.0,
                webhook_backoff_base_ms: s.webhooks.backoff_base_ms.get()?.value()?,
                webhook_disable_after_hours: s.webhooks.disable_after_hours.get()?.value()?,
                webhook_allow_private_networks: *s.webhooks.allow_private_networks.get()?,
                max_adjustment: s.limits.max_adjustment.get()?.0,
                auto_release_after_secs: s.lifecycle.auto_release_after.get().map(|p| p.0),
                order_reservation_ttl_secs: s.lifecycle.order_reservation_ttl.get().map(|p| p.0),
                reconcile_every_secs: s.lifecycle.reconcile_every.get().map(|p| p.0),
                reconcile_full_every_secs: s.lifecycle.reconcile_full_every.get()?.0,
            })
        };
        config().ok_or_else(|| {
            issue(
                "OFFERHUB_CONFIG",
                "internal: a setting with a default has no value",
            )
        })
    }

    /// `host:port` to bind.
    pub fn bind_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, self.port)
    }
}

/// One setting as the layered sources give it.
#[derive(Default)]
enum Field<T> {
    /// No source sets it (and it has no default).
    #[default]
    Unset,
    Set(T),
    /// Its text is not a valid value: the problem, without the text of a secret.
    Invalid(String),
}

/// Never fails: an invalid value is kept as a problem, so that extraction goes on to the
/// next setting and every problem is reported at once.
impl<'de, T: FromSetting> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(match T::from_setting(text.trim()) {
            Ok(v) => Field::Set(v),
            Err(problem) => Field::Invalid(problem),
        })
    }
}

impl<T> Field<T> {
    fn get(&self) -> Option<&T> {
        match self {
            Field::Set(v) => Some(v),
            _ => None,
        }
    }

    fn is_unset(&self) -> bool {
        matches!(self, Field::Unset)
    }

    fn report(&self, variable: &str, out: &mut Vec<ConfigIssue>) {
        if let Field::Invalid(problem) = self {
            out.push(ConfigIssue {
                variable: variable.to_string(),
                problem: problem.clone(),
            });
        }
    }
}

/// The type of a setting: reads its (trimmed, non-empty) text.
trait FromSetting: Sized {
    /// A secret's text is never part of a problem.
    const SECRET: bool = false;
    /// The value, or what it must be (`must be …`).
    fn from_setting(text: &str) -> Result<Self, String>;
}

/// `must be {what} (got "{text}")`, for settings that are not secrets.
fn expected(what: &str, text: &str) -> String {
    format!("must be {what} (got {text:?})")
}

impl FromSetting for PathBuf {
    fn from_setting(text: &str) -> Result<Self, String> {
        Ok(PathBuf::from(text))
    }
}

impl FromSetting for IpAddr {
    fn from_setting(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|_| expected("an IP address such as 127.0.0.1 or 0.0.0.0", text))
    }
}

impl FromSetting for NonZeroU16 {
    fn from_setting(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|_| expected("a port number between 1 and 65535", text))
    }
}

impl FromSetting for SocketAddr {
    fn from_setting(text: &str) -> Result<Self, String> {
        text.parse()
            .map_err(|_| "must be an address and port such as 127.0.0.1:9464".to_string())
    }
}

/// `true`/`1`/`yes` or `false`/`0`/`no`.
impl FromSetting for bool {
    fn from_setting(text: &str) -> Result<Self, String> {
        match text {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(expected("true or false", text)),
        }
    }
}

impl FromSetting for Environment {
    fn from_setting(text: &str) -> Result<Self, String> {
        match text {
            "development" => Ok(Environment::Development),
            "production" => Ok(Environment::Production),
            _ => Err(expected("one of development, production", text)),
        }
    }
}

impl FromSetting for PaymentProvider {
    fn from_setting(text: &str) -> Result<Self, String> {
        match text {
            "crypto" => Ok(PaymentProvider::Crypto),
            "airtm" => Ok(PaymentProvider::Airtm),
            _ => Err(expected("one of crypto, airtm", text)),
        }
    }
}

impl FromSetting for Network {
    fn from_setting(text: &str) -> Result<Self, String> {
        match text {
            "sandbox" => Ok(Network::Sandbox),
            "testnet" => Ok(Network::Testnet),
            "mainnet" => Ok(Network::Mainnet),
            _ => Err(expected("one of sandbox, testnet, mainnet", text)),
        }
    }
}

impl FromSetting for Secret {
    const SECRET: bool = true;
    fn from_setting(text: &str) -> Result<Self, String> {
        Ok(Secret::new(text))
    }
}

/// An `http` or `https` URL.
struct HttpUrl(Url);

impl FromSetting for HttpUrl {
    fn from_setting(text: &str) -> Result<Self, String> {
        match Url::parse(text) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(HttpUrl(u)),
            _ => Err(expected("an http(s) URL", text)),
        }
    }
}

/// `sqlite:…` or `postgres://…` as written; never echoed (it may hold a password).
struct DatabaseUrlText(String);

impl FromSetting for DatabaseUrlText {
    fn from_setting(text: &str) -> Result<Self, String> {
        if ["postgres://", "postgresql://", "sqlite:"]
            .iter()
            .any(|p| text.starts_with(p))
        {
            Ok(DatabaseUrlText(text.to_string()))
        } else {
            Err(
                "must start with sqlite:// or postgres:// (e.g. sqlite://./data/offerhub.db)"
                    .into(),
            )
        }
    }
}

/// At least 32 characters.
struct MasterKey(Secret);

impl FromSetting for MasterKey {
    const SECRET: bool = true;
    fn from_setting(text: &str) -> Result<Self, String> {
        if text.len() < 32 {
            return Err(
                "must be at least 32 characters (generate one with `openssl rand -hex 32`)".into(),
            );
        }
        Ok(MasterKey(Secret::new(text)))
    }
}

fn is_hex_key(k: &str) -> bool {
    k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit())
}

/// 64 hex characters, or `keyring:<service>/<user>` naming them in the OS keyring.
struct WalletKey(Secret);

impl FromSetting for WalletKey {
    const SECRET: bool = true;
    fn from_setting(text: &str) -> Result<Self, String> {
        let key = if text.starts_with("keyring:") {
            Secret::new(read_keyring(text)?)
        } else {
            Secret::new(text)
        };
        if !is_hex_key(key.expose_secret()) {
            return Err(
                "must be 64 hexadecimal characters (32 bytes; `openssl rand -hex 32`)".into(),
            );
        }
        Ok(WalletKey(key))
    }
}

/// Comma-separated wallet keys.
struct PreviousWalletKeys(Vec<Secret>);

impl FromSetting for PreviousWalletKeys {
    const SECRET: bool = true;
    fn from_setting(text: &str) -> Result<Self, String> {
        let keys: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .collect();
        if !keys.iter().all(|k| is_hex_key(k)) {
            return Err("must be a comma-separated list of 64-hex-character keys".into());
        }
        Ok(PreviousWalletKeys(
            keys.into_iter().map(Secret::new).collect(),
        ))
    }
}

/// A Stellar asset code: 1 to 12 letters or digits.
struct AssetCode(String);

impl FromSetting for AssetCode {
    fn from_setting(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("must be 1 to 12 letters or digits".into());
        }
        Ok(AssetCode(text.to_string()))
    }
}

/// A Stellar account id (`G…`), checksum verified.
struct AccountId(String);

impl FromSetting for AccountId {
    fn from_setting(text: &str) -> Result<Self, String> {
        stellar_strkey::ed25519::PublicKey::from_string(text)
            .map(|_| AccountId(text.to_string()))
            .map_err(|_| {
                "must be a Stellar account id (G…, 56 characters, valid checksum)".to_string()
            })
    }
}

/// A Soroban contract id (`C…`).
struct ContractId(String);

impl FromSetting for ContractId {
    fn from_setting(text: &str) -> Result<Self, String> {
        stellar_strkey::Contract::from_string(text)
            .map(|_| ContractId(text.to_string()))
            .map_err(|_| "must be a contract id (C…)".to_string())
    }
}

/// An OfferHub user id (`usr_…`).
struct UserId(String);

impl FromSetting for UserId {
    fn from_setting(text: &str) -> Result<Self, String> {
        if !crate::ids::is_valid(crate::ids::IdKind::User, text) {
            return Err("must be a user id such as usr_…".into());
        }
        Ok(UserId(text.to_string()))
    }
}

/// A percentage as basis points (`2.5` → 250), as an order's `platformFee` is read.
struct FeePercent(u32);

impl FromSetting for FeePercent {
    fn from_setting(text: &str) -> Result<Self, String> {
        crate::services::escrow::fee_bps(
            "TRUSTLESS_PLATFORM_FEE",
            &serde_json::Value::String(text.to_string()),
        )
        .map(FeePercent)
        .map_err(|_| {
            expected(
                "a percentage between 0 and 99 with at most two decimals, such as 2.5",
                text,
            )
        })
    }
}

/// A positive decimal amount.
struct PositiveAmount(crate::money::Amount);

impl FromSetting for PositiveAmount {
    fn from_setting(text: &str) -> Result<Self, String> {
        crate::money::Amount::parse_positive(text)
            .map(PositiveAmount)
            .map_err(|_| expected("a positive decimal amount such as 1.00", text))
    }
}

/// A duration in seconds: ISO-8601 (`P7D`, `PT2S`, `PT36H`) or a whole number of seconds.
struct Period(u64);

impl FromSetting for Period {
    fn from_setting(text: &str) -> Result<Self, String> {
        crate::services::lifecycle::parse_duration(text)
            .map(Period)
            .ok_or_else(|| {
                expected(
                    "an ISO-8601 duration such as P7D or PT2S, or a number of seconds, between 1 second and 3650 days",
                    text,
                )
            })
    }
}

/// Airtm's environments.
#[derive(Clone, Copy)]
enum AirtmEnv {
    Sandbox,
    Production,
}

impl AirtmEnv {
    fn as_str(self) -> &'static str {
        match self {
            AirtmEnv::Sandbox => "sandbox",
            AirtmEnv::Production => "production",
        }
    }
    /// Airtm's API base (research/airtm.md §1).
    fn default_base_url(self) -> &'static str {
        match self {
            AirtmEnv::Sandbox => "https://api.stg.enterprise.airtm.com/v2",
            AirtmEnv::Production => "https://api.enterprise.airtm.com/v2",
        }
    }
}

impl FromSetting for AirtmEnv {
    fn from_setting(text: &str) -> Result<Self, String> {
        match text {
            "sandbox" => Ok(AirtmEnv::Sandbox),
            "production" => Ok(AirtmEnv::Production),
            _ => Err("must be one of sandbox, production".into()),
        }
    }
}

/// A URL with `{id}` standing for the payin id.
struct CheckoutUrl(String);

impl FromSetting for CheckoutUrl {
    fn from_setting(text: &str) -> Result<Self, String> {
        if !text.contains("{id}") || Url::parse(&text.replace("{id}", "x")).is_err() {
            return Err(
                "must be a URL containing {id} (the payin id), such as https://app.airtm.com/payin/{id}"
                    .into(),
            );
        }
        Ok(CheckoutUrl(text.to_string()))
    }
}

/// Svix signing secrets (`whsec_…`), comma-separated.
struct WebhookSecrets(Vec<Secret>);

impl FromSetting for WebhookSecrets {
    const SECRET: bool = true;
    fn from_setting(text: &str) -> Result<Self, String> {
        let secrets: Vec<Secret> = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Secret::new)
            .collect();
        if crate::airtm::svix::SvixVerifier::new(&secrets).is_err() {
            return Err("must be whsec_ + base64 secrets (comma-separated during a rotation), as Airtm's webhook settings show them".into());
        }
        Ok(WebhookSecrets(secrets))
    }
}

/// What a [`Within`] counts, for its problem: `{WHAT} between {MIN} and {MAX}{NOTE}`.
trait Unit {
    const WHAT: &'static str;
    const NOTE: &'static str = "";
}

macro_rules! units {
    ($($(#[doc = $doc:literal])* $name:ident = $what:literal $(, $note:literal)?;)*) => {$(
        $(#[doc = $doc])*
        enum $name {}
        impl Unit for $name {
            const WHAT: &'static str = $what;
            $(const NOTE: &'static str = $note;)?
        }
    )*};
}

units! {
    Whole = "a whole number";
    Number = "a number";
    Bytes = "a byte count";
    Hours = "a number of hours";
    Secs = "a number of seconds";
    Millis = "a number of milliseconds";
    Stroops = "a number of stroops";
    /// Trustless Work requests per minute.
    TrustlessPace = "a number", " (Trustless Work allows 50 per minute)";
}

/// A whole number from `MIN` to `MAX` counting `U`.
struct Within<const MIN: u64, const MAX: u64, U>(u64, PhantomData<U>);

impl<const MIN: u64, const MAX: u64, U> Within<MIN, MAX, U> {
    /// The number as the configuration's type (`MAX` fits it).
    fn value<T: TryFrom<u64>>(&self) -> Option<T> {
        T::try_from(self.0).ok()
    }
}

impl<const MIN: u64, const MAX: u64, U: Unit> FromSetting for Within<MIN, MAX, U> {
    fn from_setting(text: &str) -> Result<Self, String> {
        match text.parse::<u64>() {
            Ok(n) if (MIN..=MAX).contains(&n) => Ok(Within(n, PhantomData)),
            _ => Err(expected(
                &format!("{} between {MIN} and {MAX}{}", U::WHAT, U::NOTE),
                text,
            )),
        }
    }
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

fn resolve_path(base: &Path, p: impl AsRef<Path>) -> PathBuf {
    let path = p.as_ref();
    if path.is_absolute() {
        path.to_path_buf()
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

    /// README's configuration table, `.env.example` and the `offerhub init` template
    /// name the settings as they are declared: variable, TOML path, default.
    #[test]
    fn the_docs_list_every_setting_as_declared() {
        let read = |p: &str| {
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(p)).unwrap()
        };
        let readme = read("README.md");
        let rows: Vec<Vec<&str>> = readme
            .lines()
            .skip_while(|l| !l.starts_with("## Configuration"))
            .skip(1)
            .take_while(|l| !l.starts_with("## "))
            .filter(|l| l.starts_with("| `"))
            .map(|l| l.split('|').map(str::trim).collect())
            .collect();
        assert!(rows.len() > 30, "README's configuration table not found");
        let example = read(".env.example");
        for s in SETTINGS {
            let name = format!("`{}`", s.env);
            let row = rows
                .iter()
                .find(|r| r[1].contains(&name))
                .unwrap_or_else(|| panic!("README.md has no row for {}", s.env));
            assert!(
                row[2].contains(&format!("`{}`", s.toml)),
                "{}: {row:?}",
                s.toml
            );
            if let Some(d) = s.default {
                assert!(
                    row[3].contains(&format!("`{d}`")),
                    "{} = {d}: {row:?}",
                    s.env
                );
            }
            assert!(
                example.contains(&format!("{}=", s.env)),
                ".env.example lacks {}",
                s.env
            );
        }
        for row in &rows {
            for name in row[1].split('`').skip(1).step_by(2) {
                assert!(
                    SETTINGS.iter().any(|s| s.env == name) || row[2].contains("environment only"),
                    "README.md lists {name}, which is no setting"
                );
            }
        }
        // `key = value  # [VARIABLE]` lines of the template, commented out or not.
        let mut section = String::new();
        let mut checked = 0;
        for line in read("templates/offerhub.toml").lines() {
            let line = line.trim_start_matches('#').trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
            } else if let (Some((key, _)), Some((_, env))) =
                (line.split_once(" = "), line.split_once("# ["))
            {
                let env = env.split(']').next().unwrap();
                let path = format!("{section}.{}", key.trim());
                assert!(
                    SETTINGS.iter().any(|s| s.toml == path && s.env == env),
                    "templates/offerhub.toml: {path} [{env}]"
                );
                checked += 1;
            }
        }
        assert!(checked >= 10, "{checked} template lines checked");
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
    fn an_empty_value_is_unset_also_over_a_lower_source() {
        let dir =
            std::env::temp_dir().join(format!("oh-cfg-{}", crate::ids::random_alphanumeric(8)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("offerhub.toml"),
            "[server]\nport = 5000\nhost = \" \"\n[trustless]\nplatform_fee = 2.5\n\
             [secrets]\nwallet_encryption_keys_previous = []\n",
        )
        .unwrap();
        let sources = Sources {
            config_file: Some(dir.join("offerhub.toml")),
            dotenv_file: None,
            env: map(&[("PORT", ""), ("OFFERHUB_SAGA_WAIT_MS", " 0 ")]),
        };
        let c = Config::from_sources(&sources).unwrap();
        assert_eq!(c.port, 4000, "the default, not offerhub.toml's 5000");
        assert_eq!(c.host.to_string(), "127.0.0.1");
        assert_eq!(c.trustless_platform_fee_bps, 250);
        assert_eq!(c.saga_wait_ms, 0);
        assert!(c.wallet_encryption_keys_previous.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn layout_and_value_problems_are_reported_together_without_secrets() {
        let dir =
            std::env::temp_dir().join(format!("oh-cfg-{}", crate::ids::random_alphanumeric(8)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("offerhub.toml"),
            "[server]\nprot = 5000\nport = \"x\"\n[secrets]\nmaster_key = \"hunter2-too-short\"\n",
        )
        .unwrap();
        let sources = Sources {
            config_file: Some(dir.join("offerhub.toml")),
            dotenv_file: None,
            env: map(&[
                ("WALLET_ENCRYPTION_KEY", "not-hex-swordfish"),
                ("WALLET_ENCRYPTION_KEYS_PREVIOUS", "old-swordfish"),
            ]),
        };
        let err = Config::from_sources(&sources).unwrap_err().to_string();
        for expected in [
            "OFFERHUB_CONFIG: unknown setting `server.prot`",
            "PORT: must be a port number between 1 and 65535 (got \"x\")",
            "OFFERHUB_MASTER_KEY: must be at least 32 characters",
            "WALLET_ENCRYPTION_KEY: must be 64 hexadecimal characters",
            "WALLET_ENCRYPTION_KEYS_PREVIOUS: must be a comma-separated list",
        ] {
            assert!(err.contains(expected), "{expected} missing in {err}");
        }
        assert!(
            !err.contains("hunter2") && !err.contains("swordfish"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn settings_declare_secrets_and_defaults() {
        let find = |env: &str| SETTINGS.iter().find(|s| s.env == env).unwrap();
        assert_eq!(SETTINGS.len(), 46);
        assert_eq!(find("PORT").toml, "server.port");
        assert_eq!(find("PORT").default, Some("4000"));
        assert_eq!(find("OFFERHUB_ENV").toml, "server.environment");
        assert_eq!(find("DATABASE_URL").default, None);
        let secrets: Vec<_> = SETTINGS
            .iter()
            .filter(|s| s.secret)
            .map(|s| s.env)
            .collect();
        assert_eq!(
            secrets,
            [
                "OFFERHUB_MASTER_KEY",
                "WALLET_ENCRYPTION_KEY",
                "WALLET_ENCRYPTION_KEYS_PREVIOUS",
                "TRUSTLESS_API_KEY",
                "AIRTM_API_KEY",
                "AIRTM_API_SECRET",
                "AIRTM_WEBHOOK_SECRET",
            ]
        );
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

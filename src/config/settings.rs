//! The table of settings: each declared once by the `settings!` macro (section, key,
//! type, environment variable, default), which makes from it [`SETTINGS`] and the
//! `Deserialize` structs the layered sources are extracted into; and [`Field`], one
//! extracted setting, which keeps an invalid value as a problem.
//!
//! The `settings!` invocation below lists every setting in one place (about ninety lines,
//! growing with each setting) and is meant to stay whole: split, the settings would be
//! declared in several places.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU16;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::ConfigIssue;
use super::types::{Environment, Network, PaymentProvider, Secret};
use super::values::{
    AccountId, AirtmEnv, AssetCode, Bytes, CheckoutUrl, ContractId, DatabaseUrlText, FeePercent,
    FromSetting, Hours, HttpUrl, MasterKey, Millis, Number, Period, PositiveAmount,
    PreviousWalletKeys, Secs, Stroops, TrustlessPace, UserId, WalletKey, WebhookSecrets, Whole,
    Within,
};

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
            pub(super) struct $Section {
                $($(#[doc = $doc])* pub(super) $key: Field<$ty>,)*
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
        pub(super) struct Settings {
            $(pub(super) $section: $Section,)*
        }

        impl Settings {
            /// Every invalid value, each naming its variable, in [`SETTINGS`] order.
            pub(super) fn problems(&self) -> Vec<ConfigIssue> {
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

/// One setting as the layered sources give it.
#[derive(Default)]
pub(super) enum Field<T> {
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
    pub(super) fn get(&self) -> Option<&T> {
        match self {
            Field::Set(v) => Some(v),
            _ => None,
        }
    }

    pub(super) fn is_unset(&self) -> bool {
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

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
}

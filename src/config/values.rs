//! How each setting's text is read: the [`FromSetting`] trait, its implementations for
//! the configuration's types, and the checked types only the configuration uses (URLs,
//! keys, Stellar ids, amounts, durations, bounded numbers via [`Within`]) — each with its
//! problem text, `must be …`. Also [`read_keyring`] for keys kept in the OS keyring.

use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU16;
use std::path::PathBuf;

use url::Url;

use super::types::{Environment, Network, PaymentProvider, Secret};

/// The type of a setting: reads its (trimmed, non-empty) text.
pub(super) trait FromSetting: Sized {
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
pub(super) struct HttpUrl(pub(super) Url);

impl FromSetting for HttpUrl {
    fn from_setting(text: &str) -> Result<Self, String> {
        match Url::parse(text) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(HttpUrl(u)),
            _ => Err(expected("an http(s) URL", text)),
        }
    }
}

/// `sqlite:…` or `postgres://…` as written; never echoed (it may hold a password).
pub(super) struct DatabaseUrlText(pub(super) String);

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
pub(super) struct MasterKey(pub(super) Secret);

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
pub(super) struct WalletKey(pub(super) Secret);

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
pub(super) struct PreviousWalletKeys(pub(super) Vec<Secret>);

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
pub(super) struct AssetCode(pub(super) String);

impl FromSetting for AssetCode {
    fn from_setting(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("must be 1 to 12 letters or digits".into());
        }
        Ok(AssetCode(text.to_string()))
    }
}

/// A Stellar account id (`G…`), checksum verified.
pub(super) struct AccountId(pub(super) String);

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
pub(super) struct ContractId(pub(super) String);

impl FromSetting for ContractId {
    fn from_setting(text: &str) -> Result<Self, String> {
        stellar_strkey::Contract::from_string(text)
            .map(|_| ContractId(text.to_string()))
            .map_err(|_| "must be a contract id (C…)".to_string())
    }
}

/// An OfferHub user id (`usr_…`).
pub(super) struct UserId(pub(super) String);

impl FromSetting for UserId {
    fn from_setting(text: &str) -> Result<Self, String> {
        if !crate::ids::is_valid(crate::ids::IdKind::User, text) {
            return Err("must be a user id such as usr_…".into());
        }
        Ok(UserId(text.to_string()))
    }
}

/// A percentage as basis points (`2.5` → 250), as an order's `platformFee` is read.
pub(super) struct FeePercent(pub(super) u32);

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
pub(super) struct PositiveAmount(pub(super) crate::money::Amount);

impl FromSetting for PositiveAmount {
    fn from_setting(text: &str) -> Result<Self, String> {
        crate::money::Amount::parse_positive(text)
            .map(PositiveAmount)
            .map_err(|_| expected("a positive decimal amount such as 1.00", text))
    }
}

/// A duration in seconds: ISO-8601 (`P7D`, `PT2S`, `PT36H`) or a whole number of seconds.
pub(super) struct Period(pub(super) u64);

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
pub(super) enum AirtmEnv {
    Sandbox,
    Production,
}

impl AirtmEnv {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            AirtmEnv::Sandbox => "sandbox",
            AirtmEnv::Production => "production",
        }
    }
    /// Airtm's API base (docs/PROVIDERS.md, Airtm: base URLs).
    pub(super) fn default_base_url(self) -> &'static str {
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
pub(super) struct CheckoutUrl(pub(super) String);

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
pub(super) struct WebhookSecrets(pub(super) Vec<Secret>);

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
pub(super) trait Unit {
    const WHAT: &'static str;
    const NOTE: &'static str = "";
}

macro_rules! units {
    ($($(#[doc = $doc:literal])* $name:ident = $what:literal $(, $note:literal)?;)*) => {$(
        $(#[doc = $doc])*
        pub(super) enum $name {}
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
pub(super) struct Within<const MIN: u64, const MAX: u64, U>(u64, PhantomData<U>);

impl<const MIN: u64, const MAX: u64, U> Within<MIN, MAX, U> {
    /// The number as the configuration's type (`MAX` fits it).
    pub(super) fn value<T: TryFrom<u64>>(&self) -> Option<T> {
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

#[cfg(test)]
mod tests {
    use crate::config::tests::load;

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
}

//! The public value types of the configuration: [`Secret`] (never printed), [`DatabaseUrl`]
//! (printed without its password), and the choices [`Network`], [`PaymentProvider`] and
//! [`Environment`].

use std::fmt;

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
    /// Default Trustless Work base URL (docs/PROVIDERS.md, Trustless Work: base URLs
    /// and auth).
    pub fn default_trustless_url(self) -> Option<&'static str> {
        match self {
            Network::Sandbox => None,
            Network::Testnet => Some("https://dev.api.trustlesswork.com"),
            Network::Mainnet => Some("https://api.trustlesswork.com"),
        }
    }
    /// Circle's USDC issuer on this network (docs/PROVIDERS.md, Stellar and Horizon:
    /// USDC); `None` for the sandbox, whose issuer is the sandbox's own.
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

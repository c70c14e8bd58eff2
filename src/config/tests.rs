//! Tests of the configuration as a whole (defaults, every problem at once, redaction),
//! and the helpers the tests beside each part use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

/// Values named by their environment variables.
pub(super) fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The configuration of `pairs`, relative paths resolved against `/srv/oh`.
pub(super) fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
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

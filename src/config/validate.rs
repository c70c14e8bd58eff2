//! From extracted settings to a [`Config`]: the values derived from other settings or
//! from per-network defaults, the rules between settings — per concern: the network and
//! its secrets, Airtm, order amounts — and the assembly of the result. Every problem is
//! reported at once, after those of each value, in this order.

use std::path::{Path, PathBuf};

use url::Url;

use super::settings::{Field, Settings};
use super::sources::{resolve_path, resolve_sqlite_url};
use super::types::{DatabaseUrl, Environment, Network, PaymentProvider};
use super::values::{AccountId, DatabaseUrlText, HttpUrl, WebhookSecrets};
use super::{AirtmConfig, Config, ConfigError, ConfigIssue, issue};

/// The configuration of extracted settings: `issues` (found earlier), each invalid
/// value, then the rules between settings — every problem at once.
pub(super) fn config(
    s: &Settings,
    base: &Path,
    mut issues: Vec<ConfigIssue>,
) -> Result<Config, ConfigError> {
    issues.extend(s.problems());
    let derived = Derived::of(s, base);
    network_rules(s, derived.network, &mut issues);
    airtm_rules(s, derived.network, &mut issues);
    amount_rules(s, &mut issues);
    if !issues.is_empty() {
        return Err(ConfigError(issues));
    }
    // Every setting with a default has a value when no problem was found.
    assemble(s, derived).ok_or_else(|| {
        issue(
            "OFFERHUB_CONFIG",
            "internal: a setting with a default has no value",
        )
    })
}

/// Records that `variable` is `problem`.
fn bad(issues: &mut Vec<ConfigIssue>, variable: &str, problem: String) {
    issues.push(ConfigIssue {
        variable: variable.to_string(),
        problem,
    })
}

/// The values that come from other settings or from per-network defaults where their own
/// setting is unset; `None` where a setting they need is invalid (then a problem is
/// reported and no configuration is built).
struct Derived {
    data_dir: PathBuf,
    database_url: DatabaseUrl,
    port: Option<u16>,
    public_base_url: Option<Url>,
    /// The sandbox also where `STELLAR_NETWORK` is invalid, for the rules.
    network: Network,
    horizon_url: Option<Url>,
    usdc_issuer: Option<String>,
    trustless_api_url: Option<Url>,
    airtm_base_url: Option<Url>,
}

impl Derived {
    fn of(s: &Settings, base: &Path) -> Derived {
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
            Some(HttpUrl(u)) => Some(u.clone()),
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
        let airtm_base_url = match s.airtm.base_url.get() {
            Some(HttpUrl(u)) => Some(u.clone()),
            None if net == Network::Sandbox => None,
            None => s
                .airtm
                .env
                .get()
                .and_then(|e| Url::parse(e.default_base_url()).ok()),
        };
        Derived {
            data_dir,
            database_url,
            port,
            public_base_url,
            network: net,
            horizon_url,
            usdc_issuer,
            trustless_api_url,
            airtm_base_url,
        }
    }
}

/// Off the sandbox: Horizon over https, and the Trustless Work key, the master key and
/// the wallet encryption key set.
fn network_rules(s: &Settings, net: Network, issues: &mut Vec<ConfigIssue>) {
    if let Some(HttpUrl(u)) = s.stellar.horizon_url.get()
        && net != Network::Sandbox
        && u.scheme() != "https"
    {
        bad(
            issues,
            "STELLAR_HORIZON_URL",
            format!("must use https on {}", net.as_str()),
        );
    }
    if net != Network::Sandbox {
        let on = net.as_str();
        if s.trustless.api_key.is_unset() {
            bad(
                issues,
                "TRUSTLESS_API_KEY",
                format!("is required on {on} (get one at trustlesswork.com)"),
            );
        }
        if s.secrets.master_key.is_unset() {
            bad(
                issues,
                "OFFERHUB_MASTER_KEY",
                format!("is required on {on}"),
            );
        }
        if s.secrets.wallet_encryption_key.is_unset() {
            bad(
                issues,
                "WALLET_ENCRYPTION_KEY",
                format!("is required on {on} (every user has a Stellar wallet, in airtm mode too)"),
            );
        }
    }
}

/// With `PAYMENT_PROVIDER=airtm` off the sandbox: Airtm's API key and secret set, and in
/// production a webhook signing secret.
fn airtm_rules(s: &Settings, net: Network, issues: &mut Vec<ConfigIssue>) {
    let payment_provider = s.payments.provider.get().copied();
    if payment_provider != Some(PaymentProvider::Airtm) || net == Network::Sandbox {
        return;
    }
    if s.airtm.api_key.is_unset() {
        bad(
            issues,
            "AIRTM_API_KEY",
            "is required when PAYMENT_PROVIDER=airtm".into(),
        );
    }
    if s.airtm.api_secret.is_unset() {
        bad(
            issues,
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
            issues,
            "AIRTM_WEBHOOK_SECRET",
            "is required in production when PAYMENT_PROVIDER=airtm".into(),
        );
    }
}

/// The smallest order amount not above the largest.
fn amount_rules(s: &Settings, issues: &mut Vec<ConfigIssue>) {
    if let (Some(min), Some(max)) = (
        s.limits.order_min_amount.get(),
        s.limits.order_max_amount.get(),
    ) && min.0 > max.0
    {
        bad(
            issues,
            "OFFERHUB_ORDER_MAX_AMOUNT",
            "must not be below OFFERHUB_ORDER_MIN_AMOUNT".into(),
        );
    }
}

/// The configuration, once no problem was found; `None` where a setting with a default
/// has no value (which would be a bug).
fn assemble(s: &Settings, d: Derived) -> Option<Config> {
    Some(Config {
        data_dir: d.data_dir,
        database_url: d.database_url,
        host: *s.server.host.get()?,
        port: d.port?,
        metrics_addr: s.server.metrics_addr.get().copied(),
        public_base_url: d.public_base_url?,
        environment: *s.server.environment.get()?,
        master_key: s.secrets.master_key.get().map(|k| k.0.clone()),
        wallet_encryption_key: s.secrets.wallet_encryption_key.get().map(|k| k.0.clone()),
        wallet_encryption_keys_previous: s
            .secrets
            .wallet_encryption_keys_previous
            .get()
            .map(|k| k.0.clone())
            .unwrap_or_default(),
        payment_provider: *s.payments.provider.get()?,
        network: d.network,
        horizon_url: d.horizon_url,
        usdc_asset_code: s.stellar.usdc_asset_code.get()?.0.clone(),
        usdc_issuer: d.usdc_issuer,
        platform_user_id: s.stellar.platform_user_id.get().map(|u| u.0.clone()),
        trustless_api_url: d.trustless_api_url,
        trustless_api_key: s.trustless.api_key.get().cloned(),
        trustless_platform_fee_bps: s.trustless.platform_fee.get()?.0,
        trustless_max_fee_stroops: s.trustless.max_fee_stroops.get()?.value()?,
        trustless_factory_contract: s.trustless.factory_contract.get().map(|c| c.0.clone()),
        trustless_requests_per_minute: s.trustless.requests_per_minute.get()?.value()?,
        saga_wait_ms: s.sagas.wait_ms.get()?.value()?,
        saga_max_attempts: s.sagas.max_attempts.get()?.value()?,
        saga_lease_secs: s.sagas.lease_secs.get()?.value()?,
        airtm: airtm(s, d.airtm_base_url)?,
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
}

/// The Airtm part of the configuration.
fn airtm(s: &Settings, base_url: Option<Url>) -> Option<AirtmConfig> {
    Some(AirtmConfig {
        env: s.airtm.env.get()?.as_str().to_string(),
        base_url,
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
    })
}

#[cfg(test)]
mod tests {
    use crate::config::tests::load;

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
}

//! Setup shared by the core's integration tests (each test file that needs it declares
//! `mod common;`; not every file uses every helper).
#![allow(dead_code)]

use std::sync::Arc;

use offerhub::config::{DatabaseUrl, Secret};
use offerhub::services::wallets::StellarContext;
use offerhub::stellar::horizon::Horizon;
use offerhub::stellar::network::StellarNetwork;
use offerhub::stellar::tx::CreditAsset;
use offerhub::store::Store;
use offerhub::vault::Vault;
use offerhub_sandbox::{Sandbox, SandboxOptions, start};

/// A migrated store on `url`.
pub async fn store(url: &str) -> Store {
    let store = Store::connect(&DatabaseUrl::new(url)).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// A sandbox network served in-process over HTTP on a free loopback port, and the
/// Stellar context of the services on it (USDC of the sandbox's issuer, a vault whose
/// key is 32 × `vault_byte`, 1 XLM float, the sandbox's friendbot). Returns the context
/// and the sandbox's base URL.
pub async fn sandbox_context(vault_byte: u8) -> (StellarContext, String) {
    let sb = Sandbox::new(SandboxOptions::default()).unwrap();
    let addr = start(sb.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{addr}");
    let horizon = Horizon::new(base.parse().unwrap()).unwrap();
    let network = StellarNetwork::from_passphrase(&horizon.network_passphrase().await.unwrap());
    let issuer = sb.usdc().issuer;
    let key = Secret::new(hex::encode([vault_byte; 32]));
    let sc = StellarContext {
        horizon,
        network,
        usdc: CreditAsset {
            code: "USDC".into(),
            issuer: offerhub::stellar::keys::parse_account(&issuer, "issuer").unwrap(),
        },
        usdc_issuer: issuer,
        vault: Arc::new(Vault::new(&key, &[]).unwrap()),
        float_stroops: 10_000_000,
        friendbot: Some(format!("{base}/friendbot").parse().unwrap()),
    };
    (sc, base)
}

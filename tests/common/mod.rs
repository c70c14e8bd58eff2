//! Setup shared by the core's integration tests (each test file that needs it declares
//! `mod common;`; not every file uses every helper).
#![allow(dead_code)]

use std::sync::Arc;

use offerhub::config::{DatabaseUrl, Secret};
use offerhub::context::Context;
use offerhub::services::users::{self, NewUser, NoHooks, UserType};
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

/// A user (buyer and seller) with external id `ext`, created by the system; its id.
pub async fn create_user(store: &Store, ext: &str) -> String {
    users::create(
        store,
        &Context::system(),
        &NoHooks,
        NewUser {
            external_user_id: ext.into(),
            email: None,
            user_type: UserType::Both,
        },
    )
    .await
    .unwrap()
    .0
    .id
}

/// A sandbox network served in-process over HTTP on a free loopback port: a Horizon
/// client of it, its network, its USDC and the base URL.
pub struct SandboxNet {
    pub horizon: Horizon,
    pub network: StellarNetwork,
    pub usdc: CreditAsset,
    /// The USDC issuer's address (`G…`).
    pub usdc_issuer: String,
    pub base: String,
    pub sandbox: Arc<Sandbox>,
}

/// Starts a [`SandboxNet`].
pub async fn sandbox_network() -> SandboxNet {
    let sb = Sandbox::new(SandboxOptions::default()).unwrap();
    let addr = start(sb.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{addr}");
    let horizon = Horizon::new(base.parse().unwrap()).unwrap();
    let network = StellarNetwork::from_passphrase(&horizon.network_passphrase().await.unwrap());
    let issuer = sb.usdc().issuer;
    SandboxNet {
        horizon,
        network,
        usdc: CreditAsset {
            code: "USDC".into(),
            issuer: offerhub::stellar::keys::parse_account(&issuer, "issuer").unwrap(),
        },
        usdc_issuer: issuer,
        base,
        sandbox: sb,
    }
}

/// A [`sandbox_network`] and the Stellar context of the services on it (a vault whose
/// key is 32 × `vault_byte`, 1 XLM float, the sandbox's friendbot). Returns the context
/// and the sandbox's base URL.
pub async fn sandbox_context(vault_byte: u8) -> (StellarContext, String) {
    let net = sandbox_network().await;
    let key = Secret::new(hex::encode([vault_byte; 32]));
    let sc = StellarContext {
        friendbot: Some(format!("{}/friendbot", net.base).parse().unwrap()),
        horizon: net.horizon,
        network: net.network,
        usdc: net.usdc,
        usdc_issuer: net.usdc_issuer,
        vault: Arc::new(Vault::new(&key, &[]).unwrap()),
        float_stroops: 10_000_000,
    };
    (sc, net.base)
}

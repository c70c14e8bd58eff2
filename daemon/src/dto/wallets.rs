//! Wallets (crypto mode): [`WalletView`], [`DepositInstructions`], [`SyncOutcome`].

use offerhub::domain::wallet::{WalletKind, WalletStatus};
use offerhub::services::wallets;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::enums;
use super::ledger::Balance;

/// `GET /users/{id}/wallet`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletView {
    pub id: String,
    pub user_id: Option<String>,
    #[schema(value_type = enums::WalletKind)]
    pub kind: WalletKind,
    /// `G…`.
    pub public_key: String,
    /// `PENDING_ACTIVATION`, `ACTIVE` or `FAILED`.
    #[schema(value_type = enums::WalletStatus)]
    pub status: WalletStatus,
    pub failure_reason: Option<String>,
    pub activation_hash: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Read from the network.
    pub balances: WalletBalances,
}

impl WalletView {
    pub fn new(w: wallets::Wallet, balances: WalletBalances) -> Self {
        WalletView {
            id: w.id,
            user_id: w.user_id,
            kind: w.kind,
            public_key: w.public_key,
            status: w.status,
            failure_reason: w.failure_reason,
            activation_hash: w.activation_hash,
            created_at: w.created_at,
            updated_at: w.updated_at,
            balances,
        }
    }
}

/// A wallet's balances on chain, decimal strings; each `null` until the account exists
/// (USDC also until its trustline does).
#[derive(Clone, Debug, Default, Serialize, ToSchema)]
#[schema(examples(json!({"usdc": "150.0000000", "xlm": "1.0000000"})))]
pub struct WalletBalances {
    pub usdc: Option<String>,
    pub xlm: Option<String>,
}

/// `GET /users/{id}/wallet/deposit`: how a user funds their balance.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DepositInstructions {
    #[schema(example = "crypto")]
    pub provider: &'static str,
    #[schema(example = "stellar_address")]
    pub method: &'static str,
    pub address: String,
    #[schema(value_type = Object, example = json!({"code": "USDC", "issuer": "GBBD47…"}))]
    pub asset: Value,
    pub network: String,
    #[schema(value_type = enums::WalletStatus)]
    pub wallet_status: WalletStatus,
    pub instructions: &'static str,
}

/// `POST /users/{id}/balance/sync`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncOutcome {
    pub deposits_credited: u64,
    /// The wallet-vs-ledger check of `offerhub reconcile` for this user.
    pub reconciliation: Value,
    pub balance: Balance,
}

super::bodies!(WalletView, DepositInstructions, SyncOutcome);

//! Wallets (crypto mode): [`WalletView`], [`DepositInstructions`], [`SyncOutcome`],
//! [`WalletTransaction`].

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

/// One on-chain movement of a wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalletTransaction {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `in` or `out`.
    pub direction: &'static str,
    /// `XLM`, or the credit asset's code; `null` when Horizon names none (a
    /// contract's XLM transfer, an account merge).
    pub asset: Option<String>,
    /// Horizon's 7-decimal string.
    pub amount: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub transaction_hash: String,
    pub created_at: String,
}

impl WalletTransaction {
    /// The movements of `wallet` (a `G…` address) in one record of Horizon's
    /// `GET /accounts/{wallet}/payments`: a `create_account` is one movement in (XLM,
    /// its starting balance, from the funder); an `invoke_host_function` is each of its
    /// `asset_balance_changes` to or from `wallet`; any other record (payments, path
    /// payments, merges) is one movement, in when it pays `wallet`. Texts are copied as
    /// Horizon wrote them; a missing one is `null` (or empty for the record's id, type,
    /// hash and time, which Horizon always writes).
    pub fn from_record(record: &Value, wallet: &str) -> Vec<WalletTransaction> {
        let text = |v: &Value| v.as_str().map(str::to_string);
        let direction = |to: &Value| if *to == wallet { "in" } else { "out" };
        let movement =
            |direction, asset, amount: &Value, from: &Value, to: &Value| WalletTransaction {
                id: text(&record["id"]).unwrap_or_default(),
                kind: text(&record["type"]).unwrap_or_default(),
                direction,
                asset,
                amount: text(amount),
                from: text(from),
                to: text(to),
                transaction_hash: text(&record["transaction_hash"]).unwrap_or_default(),
                created_at: text(&record["created_at"]).unwrap_or_default(),
            };
        let r = record;
        match r["type"].as_str().unwrap_or_default() {
            "create_account" => vec![movement(
                "in",
                Some("XLM".into()),
                &r["starting_balance"],
                &r["funder"],
                &r["account"],
            )],
            "invoke_host_function" => r["asset_balance_changes"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|c| c["to"] == wallet || c["from"] == wallet)
                .map(|c| {
                    movement(
                        direction(&c["to"]),
                        text(&c["asset_code"]),
                        &c["amount"],
                        &c["from"],
                        &c["to"],
                    )
                })
                .collect(),
            _ => {
                let asset = match r["asset_type"].as_str() {
                    Some("native") => Some("XLM".into()),
                    Some(_) => text(&r["asset_code"]),
                    None => None,
                };
                vec![movement(
                    direction(&r["to"]),
                    asset,
                    &r["amount"],
                    &r["from"],
                    &r["to"],
                )]
            }
        }
    }
}

super::bodies!(
    WalletView,
    DepositInstructions,
    SyncOutcome,
    WalletTransaction
);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ME: &str = "GME";

    fn movements(record: Value) -> Value {
        json!(WalletTransaction::from_record(&record, ME))
    }

    fn base(kind: &str) -> Value {
        json!({"id": "1", "paging_token": "1", "type": kind, "transaction_hash": "h",
               "created_at": "2025-01-01T00:00:00Z"})
    }

    fn with(mut v: Value, fields: Value) -> Value {
        if let (Some(v), Some(f)) = (v.as_object_mut(), fields.as_object()) {
            v.extend(f.clone());
        }
        v
    }

    fn expected(kind: &str, fields: Value) -> Value {
        with(
            json!({"id": "1", "type": kind, "transactionHash": "h",
                   "createdAt": "2025-01-01T00:00:00Z"}),
            fields,
        )
    }

    #[test]
    fn an_account_creation_is_xlm_in() {
        let r = with(
            base("create_account"),
            json!({"starting_balance": "1.0000000", "funder": "GF", "account": ME}),
        );
        assert_eq!(
            movements(r),
            json!([expected(
                "create_account",
                json!({"direction": "in", "asset": "XLM", "amount": "1.0000000", "from": "GF", "to": ME})
            )])
        );
    }

    #[test]
    fn payments_are_in_when_they_pay_the_wallet() {
        let r = with(
            base("payment"),
            json!({"asset_type": "credit_alphanum4", "asset_code": "USDC", "asset_issuer": "GI",
                   "amount": "25.0000000", "from": "GI", "to": ME}),
        );
        assert_eq!(
            movements(r),
            json!([expected(
                "payment",
                json!({"direction": "in", "asset": "USDC", "amount": "25.0000000", "from": "GI", "to": ME})
            )])
        );
        let r = with(
            base("path_payment_strict_send"),
            json!({"asset_type": "native", "amount": "2.0000000", "from": ME, "to": "GX"}),
        );
        assert_eq!(
            movements(r),
            json!([expected(
                "path_payment_strict_send",
                json!({"direction": "out", "asset": "XLM", "amount": "2.0000000", "from": ME, "to": "GX"})
            )])
        );
    }

    /// A merge names `account` and `into`, none of the fields read: nulls, and `out`.
    #[test]
    fn a_record_without_the_fields_read_keeps_nulls() {
        let r = with(base("account_merge"), json!({"account": "GX", "into": ME}));
        assert_eq!(
            movements(r),
            json!([expected(
                "account_merge",
                json!({"direction": "out", "asset": null, "amount": null, "from": null, "to": null})
            )])
        );
    }

    #[test]
    fn a_contract_call_is_each_change_of_the_wallet() {
        let r = with(
            base("invoke_host_function"),
            json!({"asset_balance_changes": [
                {"asset_type": "credit_alphanum4", "asset_code": "USDC", "type": "transfer",
                 "from": ME, "to": "CESCROW", "amount": "10.0000000"},
                {"asset_type": "credit_alphanum4", "asset_code": "USDC", "type": "transfer",
                 "from": "CESCROW", "to": "GOTHER", "amount": "1.0000000"},
                {"asset_type": "native", "type": "transfer",
                 "from": "CESCROW", "to": ME, "amount": "0.5000000"},
            ]}),
        );
        assert_eq!(
            movements(r),
            json!([
                expected(
                    "invoke_host_function",
                    json!({"direction": "out", "asset": "USDC", "amount": "10.0000000", "from": ME, "to": "CESCROW"})
                ),
                expected(
                    "invoke_host_function",
                    json!({"direction": "in", "asset": null, "amount": "0.5000000", "from": "CESCROW", "to": ME})
                ),
            ])
        );
        assert_eq!(movements(base("invoke_host_function")), json!([]));
    }
}

//! Balances: [`Balance`], [`HistoryEntry`], [`Adjustment`].

use offerhub::ledger;
use offerhub::money;
use offerhub::services::balances;
use serde::Serialize;
use utoipa::ToSchema;

/// A user's balance: `total = available + reserved`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    pub user_id: String,
    #[schema(value_type = super::Amount)]
    pub available: money::Amount,
    #[schema(value_type = super::Amount)]
    pub reserved: money::Amount,
    #[schema(value_type = super::Amount)]
    pub total: money::Amount,
    pub currency: &'static str,
}

impl From<ledger::Balance> for Balance {
    fn from(b: ledger::Balance) -> Self {
        Balance {
            user_id: b.user_id,
            available: b.available,
            reserved: b.reserved,
            total: b.total,
            currency: b.currency,
        }
    }
}

/// One posting on a user's account, as the balance history shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// The journal transaction id (`jtx_…`).
    pub transaction_id: String,
    pub kind: String,
    pub reference: String,
    pub description: String,
    /// `available` or `reserved`.
    pub account: String,
    /// Signed change.
    #[schema(value_type = super::Amount)]
    pub amount: money::Amount,
    #[schema(value_type = super::Amount)]
    pub balance_after: money::Amount,
    pub created_at: String,
}

impl From<ledger::HistoryEntry> for HistoryEntry {
    fn from(h: ledger::HistoryEntry) -> Self {
        HistoryEntry {
            transaction_id: h.transaction_id,
            kind: h.kind,
            reference: h.reference,
            description: h.description,
            account: h.account,
            amount: h.amount,
            balance_after: h.balance_after,
            created_at: h.created_at,
        }
    }
}

/// Outcome of a balance adjustment.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Adjustment {
    /// Journal transaction id (`jtx_…`).
    pub transaction_id: String,
    pub user_id: String,
    /// Signed change applied to `available`.
    #[schema(value_type = super::Amount)]
    pub amount: money::Amount,
    pub reason: String,
    pub balance: Balance,
}

impl From<balances::Adjustment> for Adjustment {
    fn from(a: balances::Adjustment) -> Self {
        Adjustment {
            transaction_id: a.transaction_id,
            user_id: a.user_id,
            amount: a.amount,
            reason: a.reason,
            balance: a.balance.into(),
        }
    }
}

super::bodies!(Balance, HistoryEntry, Adjustment);

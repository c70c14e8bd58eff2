//! Escrows: [`Escrow`], shown inside its order.

use offerhub::domain::escrow::{EscrowKind, EscrowStatus};
use offerhub::money;
use offerhub::services::escrow;
use serde::Serialize;
use utoipa::ToSchema;

use super::enums;

/// The escrow of an order as the API shows it (inside the order).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Escrow {
    pub id: String,
    pub order_id: String,
    #[schema(value_type = enums::EscrowKind)]
    pub kind: EscrowKind,
    /// The contract (`C…`) once deployed.
    pub contract_id: Option<String>,
    #[schema(value_type = enums::EscrowStatus)]
    pub status: EscrowStatus,
    #[schema(value_type = super::Amount)]
    pub amount: money::Amount,
    /// Percent, e.g. `2.5`.
    pub platform_fee: f64,
    /// What the ledger holds in `escrow:{order}` (equals the contract's balance).
    #[schema(value_type = super::Amount)]
    pub balance: money::Amount,
    pub deploy_transaction_hash: Option<String>,
    pub funded_at: Option<String>,
    pub closed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<escrow::Escrow> for Escrow {
    fn from(e: escrow::Escrow) -> Self {
        Escrow {
            id: e.id,
            order_id: e.order_id,
            kind: e.kind,
            contract_id: e.contract_id,
            status: e.status,
            amount: e.amount,
            platform_fee: e.platform_fee,
            balance: e.balance,
            deploy_transaction_hash: e.deploy_transaction_hash,
            funded_at: e.funded_at,
            closed_at: e.closed_at,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

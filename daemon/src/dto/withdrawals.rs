//! Withdrawals (crypto and Airtm payouts): [`Withdrawal`].

use offerhub::domain::withdrawal::WithdrawalStatus;
use offerhub::money;
use offerhub::services::withdrawals;
use serde::Serialize;
use utoipa::ToSchema;

use super::enums;

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Withdrawal {
    pub id: String,
    pub user_id: String,
    #[schema(value_type = super::Amount)]
    pub amount: money::Amount,
    pub currency: String,
    pub destination_type: String,
    pub destination_ref: String,
    /// Crypto: `WITHDRAWAL_CREATED`, `WITHDRAWAL_PENDING`, `WITHDRAWAL_COMPLETED`,
    /// `WITHDRAWAL_FAILED`. Airtm payouts (`bank`, `airtm_balance`) add
    /// `WITHDRAWAL_COMMITTED`, `WITHDRAWAL_PENDING_USER_ACTION`, `WITHDRAWAL_SETTLING`,
    /// `WITHDRAWAL_CANCELED` and `WITHDRAWAL_NEEDS_ATTENTION`.
    #[schema(value_type = enums::WithdrawalStatus)]
    pub status: WithdrawalStatus,
    /// Crypto: the payment's transaction hash.
    pub tx_hash: Option<String>,
    /// Airtm payouts: Airtm's payout id, its status text and the recipient's email.
    pub airtm_payout_id: Option<String>,
    pub airtm_status: Option<String>,
    pub airtm_email: Option<String>,
    /// Airtm payouts: the sweep of the USDC from the user's wallet to the treasury.
    pub settlement_tx_hash: Option<String>,
    pub failure_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
}

impl From<withdrawals::Withdrawal> for Withdrawal {
    fn from(w: withdrawals::Withdrawal) -> Self {
        Withdrawal {
            id: w.id,
            user_id: w.user_id,
            amount: w.amount,
            currency: w.currency,
            destination_type: w.destination_type,
            destination_ref: w.destination_ref,
            status: w.status,
            tx_hash: w.tx_hash,
            airtm_payout_id: w.airtm_payout_id,
            airtm_status: w.airtm_status,
            airtm_email: w.airtm_email,
            settlement_tx_hash: w.settlement_tx_hash,
            failure_reason: w.failure_reason,
            created_at: w.created_at,
            updated_at: w.updated_at,
            completed_at: w.completed_at,
        }
    }
}

super::bodies!(Withdrawal);

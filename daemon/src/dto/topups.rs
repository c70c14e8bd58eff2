//! Top-ups (Airtm payins): [`TopUp`].

use offerhub::domain::topup::TopUpStatus;
use offerhub::money;
use offerhub::services::topups;
use serde::Serialize;
use utoipa::ToSchema;

use super::enums;

/// A top-up as the API shows it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopUp {
    pub id: String,
    pub user_id: String,
    /// What the user pays (decimal string, USD).
    #[schema(value_type = super::Amount)]
    pub amount: money::Amount,
    pub currency: String,
    /// `TOPUP_CREATED`, `TOPUP_AWAITING_USER_CONFIRMATION`, `TOPUP_PROCESSING`,
    /// `TOPUP_SETTLING`, `TOPUP_SUCCEEDED`, `TOPUP_FAILED`, `TOPUP_CANCELED`.
    #[schema(value_type = enums::TopUpStatus)]
    pub status: TopUpStatus,
    /// Airtm's hosted checkout: send the buyer's browser here.
    pub confirmation_uri: Option<String>,
    pub airtm_payin_id: Option<String>,
    /// Airtm's own status text of the payin.
    pub airtm_status: Option<String>,
    pub return_url: String,
    pub cancel_url: String,
    /// USDC credited (the payin's `netAmount`), once confirmed.
    #[schema(value_type = Option<super::Amount>)]
    pub credited_amount: Option<money::Amount>,
    #[schema(value_type = Option<super::Amount>)]
    pub airtm_fee: Option<money::Amount>,
    pub failure_reason: Option<String>,
    /// The treasury's USDC transfer to the user's wallet.
    pub settlement_tx_hash: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
}

impl From<topups::TopUp> for TopUp {
    fn from(t: topups::TopUp) -> Self {
        TopUp {
            id: t.id,
            user_id: t.user_id,
            amount: t.amount,
            currency: t.currency,
            status: t.status,
            confirmation_uri: t.confirmation_uri,
            airtm_payin_id: t.airtm_payin_id,
            airtm_status: t.airtm_status,
            return_url: t.return_url,
            cancel_url: t.cancel_url,
            credited_amount: t.credited_amount,
            airtm_fee: t.airtm_fee,
            failure_reason: t.failure_reason,
            settlement_tx_hash: t.settlement_tx_hash,
            created_at: t.created_at,
            updated_at: t.updated_at,
            completed_at: t.completed_at,
        }
    }
}

super::bodies!(TopUp);

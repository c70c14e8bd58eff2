//! Orders: [`Order`] (with its escrow and latest dispute), [`Milestone`].

use offerhub::domain::escrow::MilestoneStatus;
use offerhub::domain::order::{AutoReleaseStatus, OrderStatus};
use offerhub::money;
use offerhub::services::orders;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::disputes::Dispute;
use super::enums;
use super::escrow::Escrow;

/// A milestone of an order (multi-release escrow).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Milestone {
    pub milestone_ref: String,
    pub title: String,
    #[schema(value_type = super::Amount)]
    pub amount: money::Amount,
    #[schema(value_type = enums::MilestoneStatus)]
    pub status: MilestoneStatus,
    pub created_at: String,
    pub updated_at: String,
}

impl From<orders::Milestone> for Milestone {
    fn from(m: orders::Milestone) -> Self {
        Milestone {
            milestone_ref: m.milestone_ref,
            title: m.title,
            amount: m.amount,
            status: m.status,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// An order as the API returns it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: String,
    pub client_order_ref: Option<String>,
    pub buyer_id: String,
    pub seller_id: String,
    #[schema(value_type = super::Amount)]
    pub amount: money::Amount,
    pub currency: String,
    pub title: String,
    pub description: Option<String>,
    pub metadata: Option<Value>,
    #[schema(value_type = enums::OrderStatus)]
    pub status: OrderStatus,
    pub hold_id: Option<String>,
    pub cancel_reason: Option<String>,
    pub milestones: Vec<Milestone>,
    /// The order's escrow once created (an `Escrow`); `null` before.
    pub escrow: Option<Escrow>,
    /// The latest dispute (a `Dispute`); `null` when none.
    pub dispute: Option<Dispute>,
    /// The inspection window counted from the seller's completion, as an ISO-8601
    /// duration (`P7D`); `null` when the order releases only on request.
    pub auto_release_after: Option<String>,
    /// When the order is released automatically: the absolute time given at creation, or
    /// once the clock started, its start + `autoReleaseAfter`; `null` before.
    pub auto_release_at: Option<String>,
    /// `PENDING` (clock not started), `SCHEDULED`, `STOPPED` (a dispute was opened),
    /// `RELEASING`, `RELEASED`, `FAILED` (the automatic release compensated), `CANCELED`
    /// (the order ended another way); `null` without automatic release.
    #[schema(value_type = Option<enums::AutoReleaseStatus>)]
    pub auto_release_status: Option<AutoReleaseStatus>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<orders::Order> for Order {
    fn from(o: orders::Order) -> Self {
        Order {
            id: o.id,
            client_order_ref: o.client_order_ref,
            buyer_id: o.buyer_id,
            seller_id: o.seller_id,
            amount: o.amount,
            currency: o.currency,
            title: o.title,
            description: o.description,
            metadata: o.metadata,
            status: o.status,
            hold_id: o.hold_id,
            cancel_reason: o.cancel_reason,
            milestones: o.milestones.into_iter().map(Milestone::from).collect(),
            escrow: o.escrow.map(Escrow::from),
            dispute: o.dispute.map(Dispute::from),
            auto_release_after: o.auto_release_after,
            auto_release_at: o.auto_release_at,
            auto_release_status: o.auto_release_status,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

super::bodies!(Order, Milestone);

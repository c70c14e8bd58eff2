//! Disputes: [`Dispute`], [`Comment`], [`DisputeWithOrder`].

use offerhub::domain::dispute::{Decision, DisputeStatus};
use offerhub::money;
use offerhub::services::disputes;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::enums;
use super::orders::Order;

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    pub id: String,
    pub author: String,
    pub body: String,
    pub created_at: String,
}

impl From<disputes::Comment> for Comment {
    fn from(c: disputes::Comment) -> Self {
        Comment {
            id: c.id,
            author: c.author,
            body: c.body,
            created_at: c.created_at,
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dispute {
    pub id: String,
    pub order_id: String,
    /// `BUYER` or `SELLER`.
    pub opened_by: String,
    pub reason: String,
    pub evidence: Option<Value>,
    #[schema(value_type = enums::DisputeStatus)]
    pub status: DisputeStatus,
    pub assigned_to: Option<String>,
    #[schema(value_type = Option<enums::Decision>)]
    pub decision: Option<Decision>,
    /// Gross amounts of the decision (before fees).
    #[schema(value_type = Option<super::Amount>)]
    pub release_amount: Option<money::Amount>,
    #[schema(value_type = Option<super::Amount>)]
    pub refund_amount: Option<money::Amount>,
    pub decision_note: Option<String>,
    pub resolved_by: Option<String>,
    /// Only in single-dispute reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comments: Option<Vec<Comment>>,
    pub created_at: String,
    pub updated_at: String,
    pub resolved_at: Option<String>,
}

impl From<disputes::Dispute> for Dispute {
    fn from(d: disputes::Dispute) -> Self {
        Dispute {
            id: d.id,
            order_id: d.order_id,
            opened_by: d.opened_by,
            reason: d.reason,
            evidence: d.evidence,
            status: d.status,
            assigned_to: d.assigned_to,
            decision: d.decision,
            release_amount: d.release_amount,
            refund_amount: d.refund_amount,
            decision_note: d.decision_note,
            resolved_by: d.resolved_by,
            comments: d
                .comments
                .map(|cs| cs.into_iter().map(Comment::from).collect()),
            created_at: d.created_at,
            updated_at: d.updated_at,
            resolved_at: d.resolved_at,
        }
    }
}

/// A dispute with its order (dispute reads and outcomes).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DisputeWithOrder {
    #[serde(flatten)]
    pub dispute: Dispute,
    pub order: Order,
}

super::bodies!(Dispute, Comment, DisputeWithOrder);

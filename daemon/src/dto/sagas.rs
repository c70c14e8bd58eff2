//! Sagas: [`Saga`] with its [`Step`]s and [`DoneStep`]s, and [`Accepted`], the `202`
//! of an escrow action still settling on chain ([`SagaAccepted`], [`MilestoneAccepted`]).

use offerhub::domain::saga::{SagaKind, SagaStatus};
use offerhub::services::sagas;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::enums;
use super::orders::{Milestone, Order};

/// Who signs a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Party {
    Platform,
    Buyer,
    Seller,
}

impl From<sagas::Party> for Party {
    fn from(p: sagas::Party) -> Self {
        match p {
            sagas::Party::Platform => Party::Platform,
            sagas::Party::Buyer => Party::Buyer,
            sagas::Party::Seller => Party::Seller,
        }
    }
}

/// One on-chain call of a saga.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Deploy,
    Fund,
    ChangeMilestoneStatus,
    ApproveMilestone,
    ReleaseFunds,
    DisputeEscrow,
    ResolveDispute,
    ReleaseMilestoneFunds,
    DisputeMilestone,
    ResolveMilestoneDispute,
}

impl From<sagas::Action> for Action {
    fn from(a: sagas::Action) -> Self {
        use sagas::Action as A;
        match a {
            A::Deploy => Action::Deploy,
            A::Fund => Action::Fund,
            A::ChangeMilestoneStatus => Action::ChangeMilestoneStatus,
            A::ApproveMilestone => Action::ApproveMilestone,
            A::ReleaseFunds => Action::ReleaseFunds,
            A::DisputeEscrow => Action::DisputeEscrow,
            A::ResolveDispute => Action::ResolveDispute,
            A::ReleaseMilestoneFunds => Action::ReleaseMilestoneFunds,
            A::DisputeMilestone => Action::DisputeMilestone,
            A::ResolveMilestoneDispute => Action::ResolveMilestoneDispute,
        }
    }
}

/// A share of a resolution: `amount` in base units (gross), `None` = the whole
/// on-chain balance of the escrow.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Share {
    pub party: Party,
    pub amount: Option<i64>,
}

impl From<sagas::Share> for Share {
    fn from(s: sagas::Share) -> Self {
        Share {
            party: s.party.into(),
            amount: s.amount,
        }
    }
}

/// One step of a plan.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub action: Action,
    pub signer: Party,
    /// The on-chain milestone index (milestone calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub milestone: Option<u32>,
    /// Resolutions: the gross shares.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<Share>,
}

impl From<sagas::Step> for Step {
    fn from(s: sagas::Step) -> Self {
        Step {
            action: s.action.into(),
            signer: s.signer.into(),
            milestone: s.milestone,
            shares: s.shares.into_iter().map(Share::from).collect(),
        }
    }
}

/// A step already applied.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DoneStep {
    pub action: Action,
    pub transaction_hash: String,
    pub at: String,
}

impl From<sagas::DoneStep> for DoneStep {
    fn from(d: sagas::DoneStep) -> Self {
        DoneStep {
            action: d.action.into(),
            transaction_hash: d.transaction_hash,
            at: d.at,
        }
    }
}

/// A saga as the API and the CLI show it.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Saga {
    pub id: String,
    #[schema(value_type = enums::SagaKind)]
    pub kind: SagaKind,
    pub order_id: String,
    pub dispute_id: Option<String>,
    #[schema(value_type = enums::SagaStatus)]
    pub status: SagaStatus,
    pub steps: Vec<Step>,
    /// Index of the next step.
    pub step: i64,
    pub done: Vec<DoneStep>,
    /// Hash of the stored, not yet settled envelope of the current step.
    pub pending_transaction_hash: Option<String>,
    /// `{code, message, details?}` of the last failure.
    pub last_error: Option<Value>,
    pub attempts: i64,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
}

impl From<sagas::Saga> for Saga {
    fn from(s: sagas::Saga) -> Self {
        Saga {
            id: s.id,
            kind: s.kind,
            order_id: s.order_id,
            dispute_id: s.dispute_id,
            status: s.status,
            steps: s.steps.into_iter().map(Step::from).collect(),
            step: s.step,
            done: s.done.into_iter().map(DoneStep::from).collect(),
            pending_transaction_hash: s.pending_transaction_hash,
            last_error: s.last_error,
            attempts: s.attempts,
            created_at: s.created_at,
            updated_at: s.updated_at,
            finished_at: s.finished_at,
        }
    }
}

/// An escrow action still settling on chain: `202` with the order and its saga.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SagaAccepted {
    #[serde(flatten)]
    pub order: Order,
    pub saga: Saga,
}

/// A milestone step still settling on chain: `202` with the milestone and its saga.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MilestoneAccepted {
    #[serde(flatten)]
    pub milestone: Milestone,
    pub saga: Saga,
}

/// A dispute action (open, resolve) still settling on chain: `202` with the dispute, its
/// order and the saga.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DisputeAccepted {
    #[serde(flatten)]
    pub dispute: super::disputes::DisputeWithOrder,
    pub saga: Saga,
}

/// The `202` of any action run as a saga: what the action answers once done (the
/// order, the dispute with its order, a milestone) with the running saga beside its
/// fields. Described as [`SagaAccepted`] (an order), [`DisputeAccepted`] or
/// [`MilestoneAccepted`] in the document.
#[derive(Clone, Debug, Serialize)]
pub struct Accepted<T> {
    #[serde(flatten)]
    pub body: T,
    pub saga: Saga,
}

impl<T: super::Body> super::Body for Accepted<T> {}

super::bodies!(Saga, SagaAccepted, MilestoneAccepted);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parties_and_actions_serialise_as_the_core_does() {
        for p in [
            sagas::Party::Platform,
            sagas::Party::Buyer,
            sagas::Party::Seller,
        ] {
            assert_eq!(
                serde_json::to_value(Party::from(p)).unwrap(),
                serde_json::to_value(p).unwrap()
            );
        }
        use sagas::Action as A;
        for a in [
            A::Deploy,
            A::Fund,
            A::ChangeMilestoneStatus,
            A::ApproveMilestone,
            A::ReleaseFunds,
            A::DisputeEscrow,
            A::ResolveDispute,
            A::ReleaseMilestoneFunds,
            A::DisputeMilestone,
            A::ResolveMilestoneDispute,
        ] {
            assert_eq!(
                serde_json::to_value(Action::from(a)).unwrap(),
                serde_json::to_value(a).unwrap()
            );
        }
    }

    fn saga() -> Saga {
        Saga {
            id: "sag_1".into(),
            kind: SagaKind::Release,
            order_id: "ord_1".into(),
            dispute_id: None,
            status: SagaStatus::Running,
            steps: Vec::new(),
            step: 0,
            done: Vec::new(),
            pending_transaction_hash: None,
            last_error: None,
            attempts: 0,
            created_at: "t".into(),
            updated_at: "t".into(),
            finished_at: None,
        }
    }

    /// The `202` is the body's fields with `saga` beside them; an absent body (a
    /// milestone not found after its step) leaves the saga alone, as `v["saga"] = …` on
    /// `null` did.
    #[test]
    fn accepted_puts_the_saga_beside_the_body() {
        let saga = serde_json::to_value(saga()).unwrap();
        let v = serde_json::to_value(Accepted {
            body: serde_json::json!({"id": "ord_1"}),
            saga: super::tests::saga(),
        })
        .unwrap();
        assert_eq!(v, serde_json::json!({"id": "ord_1", "saga": saga}));
        let v = serde_json::to_value(Accepted::<Option<Value>> {
            body: None,
            saga: super::tests::saga(),
        })
        .unwrap();
        assert_eq!(v, serde_json::json!({"saga": saga}));
    }
}

//! Escrow and resolution routes of an order (docs/API.md, Escrow):
//!
//! - `POST /orders/{id}/escrow` `{platformFee?}`, `POST /orders/{id}/escrow/fund`
//! - `POST /orders/{id}/resolution/release` `{requestedBy?, reason?}`,
//!   `…/refund` `{reason}`, `…/dispute` `{openedBy, reason, evidence?}`
//! - `GET /orders/{id}/milestones`, `POST /orders/{id}/milestones/{ref}/complete|approve|release`
//!
//! Disputes, once open, are [`super::disputes`]; the sagas these operations run are
//! [`super::sagas`].
//!
//! Operations that move money on chain run as sagas: the call waits for its saga up to
//! `OFFERHUB_SAGA_WAIT_MS`, then answers `200` with the result, the saga's error when
//! it was compensated (nothing changed), or `202` with the current state and the saga
//! (`saga.status` `RUNNING` or `NEEDS_ATTENTION`) — follow it with `GET /sagas/{id}`
//! or the events.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use offerhub::error::{Error, ErrorCode};
use offerhub::services::disputes;
use offerhub::services::escrow;
use offerhub::services::orders;
use serde::Deserialize;
use serde_json::Value;

use super::disputes::dispute_with_order;
use super::sagas::outcome;
use super::{Empty, escrow_ctx};
use crate::api::{ApiJson, ApiResult, Auth, Read, Write, respond};
use crate::dto::orders::{Milestone, Order};
use crate::state::AppState;

async fn order(state: &AppState, id: &str) -> Result<Order, Error> {
    Ok(orders::get(&state.store, id).await?.into())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateEscrow {
    /// Percent (0–99, two decimals) overriding `TRUSTLESS_PLATFORM_FEE` for this order.
    #[serde(alias = "platform_fee")]
    #[schema(schema_with = crate::openapi::fields::platform_fee)]
    platform_fee: Option<Value>,
}

/// `FUNDS_RESERVED → ESCROW_CREATING → ESCROW_FUNDING`: deploys the contract.
#[utoipa::path(
    post,
    operation_id = "createEscrow",
    path = "/orders/{id}/escrow",
    tag = "Escrow",
    params(("id" = String, Path, description = "Order id (ord_…)")),
    request_body = CreateEscrow,
    security(("bearer" = ["write"])),
    responses((status = 201, description = "ESCROW_FUNDING: the contract is deployed", body = crate::openapi::Data<crate::dto::orders::Order>), (status = 202, description = "Still settling on chain: the order with its running saga; poll the order or the saga", body = crate::openapi::Data<crate::dto::sagas::SagaAccepted>))
)]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<CreateEscrow>,
) -> ApiResult {
    let ec = escrow_ctx(&state)?;
    let fee = b
        .platform_fee
        .as_ref()
        .map(|v| escrow::fee_bps("platformFee", v))
        .transpose()?;
    let saga = escrow::create(&state.store, &ec, &auth.context(), &id, fee).await?;
    outcome(&state, &auth.request_id, saga, StatusCode::CREATED, || {
        order(&state, &id)
    })
    .await
}

/// `ESCROW_FUNDING → IN_PROGRESS`: the buyer's wallet funds the contract.
#[utoipa::path(
    post,
    operation_id = "fundEscrow",
    path = "/orders/{id}/escrow/fund",
    tag = "Escrow",
    params(("id" = String, Path, description = "Order id (ord_…)")),
    security(("bearer" = ["write"])),
    responses((status = 200, description = "IN_PROGRESS: the contract holds the amount", body = crate::openapi::Data<crate::dto::orders::Order>), (status = 202, description = "Still settling on chain: the order with its running saga; poll the order or the saga", body = crate::openapi::Data<crate::dto::sagas::SagaAccepted>))
)]
pub async fn fund(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
    ApiJson(_): ApiJson<Empty>,
) -> ApiResult {
    escrow_ctx(&state)?;
    let saga = escrow::fund(&state.store, &auth.context(), &id).await?;
    outcome(&state, &auth.request_id, saga, StatusCode::OK, || {
        order(&state, &id)
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReleaseBody {
    /// Accepted for compatibility with the seed's example; informational.
    #[serde(alias = "requested_by")]
    requested_by: Option<String>,
    reason: Option<String>,
}

/// `IN_PROGRESS → … → CLOSED`: complete, approve and release on chain.
#[utoipa::path(
    post,
    operation_id = "releaseEscrow",
    path = "/orders/{id}/resolution/release",
    tag = "Escrow",
    params(("id" = String, Path, description = "Order id (ord_…)")),
    request_body = ReleaseBody,
    security(("bearer" = ["write"])),
    responses((status = 200, description = "CLOSED: released to the seller", body = crate::openapi::Data<crate::dto::orders::Order>), (status = 202, description = "Still settling on chain: the order with its running saga; poll the order or the saga", body = crate::openapi::Data<crate::dto::sagas::SagaAccepted>))
)]
pub async fn release(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ReleaseBody>,
) -> ApiResult {
    escrow_ctx(&state)?;
    let _ = (b.requested_by, b.reason);
    let saga = escrow::release(&state.store, &auth.context(), &id).await?;
    outcome(&state, &auth.request_id, saga, StatusCode::OK, || {
        order(&state, &id)
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"\S",
        example = "Not delivered"
    )]
    reason: String,
}

/// `IN_PROGRESS → … → CLOSED`: dispute and resolve 100 % to the buyer.
#[utoipa::path(
    post,
    operation_id = "refundEscrow",
    path = "/orders/{id}/resolution/refund",
    tag = "Escrow",
    params(("id" = String, Path, description = "Order id (ord_…)")),
    request_body = RefundBody,
    security(("bearer" = ["write"])),
    responses((status = 200, description = "CLOSED: refunded to the buyer", body = crate::openapi::Data<crate::dto::orders::Order>), (status = 202, description = "Still settling on chain: the order with its running saga; poll the order or the saga", body = crate::openapi::Data<crate::dto::sagas::SagaAccepted>))
)]
pub async fn refund(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<RefundBody>,
) -> ApiResult {
    escrow_ctx(&state)?;
    let saga = escrow::refund(&state.store, &auth.context(), &id, &b.reason).await?;
    outcome(&state, &auth.request_id, saga, StatusCode::OK, || {
        order(&state, &id)
    })
    .await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DisputeBody {
    #[serde(alias = "opened_by")]
    #[schema(schema_with = crate::openapi::fields::opened_by)]
    opened_by: String,
    #[schema(schema_with = crate::openapi::fields::dispute_reason)]
    reason: String,
    /// Any JSON, at most 16 KiB.
    evidence: Option<Value>,
}

/// Opens a dispute and disputes the escrow on chain → `DISPUTED`. 201 with the dispute
/// (and its order).
#[utoipa::path(
    post,
    operation_id = "openDispute",
    path = "/orders/{id}/resolution/dispute",
    tag = "Escrow",
    params(("id" = String, Path, description = "Order id (ord_…)")),
    request_body = DisputeBody,
    security(("bearer" = ["write"])),
    responses((status = 201, description = "The dispute (OPEN) and its order (DISPUTED)", body = crate::openapi::Data<crate::dto::disputes::DisputeWithOrder>), (status = 202, description = "Still settling on chain: the dispute and its order with the running saga; poll the dispute or the saga", body = crate::openapi::Data<crate::dto::sagas::DisputeAccepted>))
)]
pub async fn dispute(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<DisputeBody>,
) -> ApiResult {
    escrow_ctx(&state)?;
    let (d, saga) = disputes::open(
        &state.store,
        &auth.context(),
        &id,
        &b.opened_by,
        &b.reason,
        b.evidence,
    )
    .await?;
    outcome(&state, &auth.request_id, saga, StatusCode::CREATED, || {
        dispute_with_order(&state, &d.id)
    })
    .await
}

/// The order's milestones.
#[utoipa::path(
    get,
    operation_id = "listMilestones",
    path = "/orders/{id}/milestones",
    tag = "Escrow",
    params(("id" = String, Path, description = "Order id (ord_…)")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "The milestones", body = crate::openapi::Data<Vec<crate::dto::orders::Milestone>>))
)]
pub async fn milestones(
    State(state): State<AppState>,
    auth: Auth<Read>,
    Path(id): Path<String>,
) -> ApiResult {
    let order = orders::get(&state.store, &id).await?;
    let milestones: Vec<Milestone> = order.milestones.into_iter().map(Milestone::from).collect();
    Ok(respond(StatusCode::OK, &auth.request_id, milestones))
}

/// `complete` (seller), `approve` (buyer) or `release` (buyer) one milestone of a
/// multi-release order.
#[utoipa::path(
    post,
    operation_id = "advanceMilestone",
    path = "/orders/{id}/milestones/{milestone_ref}/{op}",
    tag = "Escrow",
    params(("id" = String, Path, description = "Order id (ord_…)"), ("milestone_ref" = String, Path, description = "The milestone's milestoneRef"), ("op" = String, Path, description = "complete (seller), approve (buyer) or release (buyer)")),
    security(("bearer" = ["write"])),
    responses((status = 200, description = "The milestone after the step", body = crate::openapi::Data<crate::dto::orders::Milestone>), (status = 202, description = "Still settling on chain: the milestone with its running saga; poll the order or the saga", body = crate::openapi::Data<crate::dto::sagas::MilestoneAccepted>))
)]
pub async fn milestone(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path((id, milestone_ref, op)): Path<(String, String, String)>,
    ApiJson(_): ApiJson<Empty>,
) -> Result<Response, crate::api::ApiError> {
    if !matches!(op.as_str(), "complete" | "approve" | "release") {
        return Err(Error::new(ErrorCode::NotFound, "No such route").into());
    }
    escrow_ctx(&state)?;
    let saga = escrow::milestone(&state.store, &auth.context(), &id, &milestone_ref, &op).await?;
    outcome(&state, &auth.request_id, saga, StatusCode::OK, || async {
        let order = orders::get(&state.store, &id).await?;
        Ok(order
            .milestones
            .into_iter()
            .find(|m| m.milestone_ref == milestone_ref)
            .map(Milestone::from))
    })
    .await
}

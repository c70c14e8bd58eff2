//! Escrow, resolution, milestone, dispute and saga routes (seed 004 flows 1–6):
//!
//! - `POST /orders/{id}/escrow` `{platformFee?}`, `POST /orders/{id}/escrow/fund`
//! - `POST /orders/{id}/resolution/release` `{requestedBy?, reason?}`,
//!   `…/refund` `{reason}`, `…/dispute` `{openedBy, reason, evidence?}`
//! - `GET /orders/{id}/milestones`, `POST /orders/{id}/milestones/{ref}/complete|approve|release`
//! - `GET /disputes`, `GET /disputes/{id}`, `POST /disputes/{id}/assign|comments|resolve`
//! - `GET /sagas`, `GET /sagas/{id}`, `POST /sagas/{id}/retry`
//!
//! Operations that move money on chain run as sagas: the call waits for its saga up to
//! `OFFERHUB_SAGA_WAIT_MS`, then answers `200` with the result, the saga's error when
//! it was compensated (nothing changed), or `202` with the current state and the saga
//! (`saga.status` `RUNNING` or `NEEDS_ATTENTION`) — follow it with `GET /sagas/{id}`
//! or the events.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use offerhub::error::{Error, ErrorCode};
use offerhub::money::Amount;
use offerhub::pagination::PageRequest;
use offerhub::services::disputes::{self, DisputeFilter};
use offerhub::services::escrow::{self, EscrowContext};
use offerhub::services::orders;
use offerhub::services::sagas::{self, Saga};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiJson, ApiQuery, ApiResult, Auth, Read, Support, Write, respond, respond_page};
use crate::state::AppState;

fn escrow_ctx(state: &AppState) -> Result<Arc<EscrowContext>, Error> {
    state.escrow.clone().ok_or_else(|| {
        Error::feature_not_enabled(
            "Escrow needs crypto mode with a Stellar network and Trustless Work configured",
            "TRUSTLESS_API_KEY",
        )
    })
}

/// Drives the saga and renders the outcome: `ok_status` with `body()` when it
/// completed, its error when compensated, 202 with `body()` + `saga` otherwise.
async fn outcome<F, Fut>(
    state: &AppState,
    request_id: &str,
    saga: Saga,
    ok_status: StatusCode,
    body: F,
) -> ApiResult
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Value, Error>>,
{
    let ec = escrow_ctx(state)?;
    let saga = escrow::drive(ec, state.store.clone(), saga.id.clone()).await?;
    match saga.status {
        sagas::SagaStatus::Completed => Ok(respond(ok_status, request_id, body().await?)),
        sagas::SagaStatus::Compensated => {
            Err(sagas::error_of(saga.last_error.as_ref().unwrap_or(&Value::Null)).into())
        }
        _ => {
            let mut v = body().await?;
            v["saga"] = json!(saga);
            Ok(respond(StatusCode::ACCEPTED, request_id, v))
        }
    }
}

async fn order_json(state: &AppState, id: &str) -> Result<Value, Error> {
    Ok(json!(orders::get(&state.store, id).await?))
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
    responses((status = 201, description = "ESCROW_FUNDING: the contract is deployed", body = crate::openapi::Data<offerhub::services::orders::Order>), (status = 202, description = "Still settling on chain: the order with its running saga; poll the order or the saga", body = crate::openapi::Data<crate::openapi::SagaAccepted>))
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
        order_json(&state, &id)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// `ESCROW_FUNDING → IN_PROGRESS`: the buyer's wallet funds the contract.
#[utoipa::path(
    post,
    operation_id = "fundEscrow",
    path = "/orders/{id}/escrow/fund",
    tag = "Escrow",
    params(("id" = String, Path, description = "Order id (ord_…)")),
    security(("bearer" = ["write"])),
    responses((status = 200, description = "IN_PROGRESS: the contract holds the amount", body = crate::openapi::Data<offerhub::services::orders::Order>), (status = 202, description = "Still settling on chain: the order with its running saga; poll the order or the saga", body = crate::openapi::Data<crate::openapi::SagaAccepted>))
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
        order_json(&state, &id)
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
    responses((status = 200, description = "CLOSED: released to the seller", body = crate::openapi::Data<offerhub::services::orders::Order>), (status = 202, description = "Still settling on chain: the order with its running saga; poll the order or the saga", body = crate::openapi::Data<crate::openapi::SagaAccepted>))
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
        order_json(&state, &id)
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
    responses((status = 200, description = "CLOSED: refunded to the buyer", body = crate::openapi::Data<offerhub::services::orders::Order>), (status = 202, description = "Still settling on chain: the order with its running saga; poll the order or the saga", body = crate::openapi::Data<crate::openapi::SagaAccepted>))
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
        order_json(&state, &id)
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
    responses((status = 201, description = "The dispute (OPEN) and its order (DISPUTED)", body = crate::openapi::Data<crate::openapi::DisputeWithOrder>), (status = 202, description = "Still settling on chain: the order with its running saga; poll the order or the saga", body = crate::openapi::Data<crate::openapi::SagaAccepted>))
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
        dispute_json(&state, &d.id)
    })
    .await
}

async fn dispute_json(state: &AppState, id: &str) -> Result<Value, Error> {
    let d = disputes::get(&state.store, id).await?;
    let mut v = json!(d);
    v["order"] = json!(orders::get(&state.store, &d.order_id).await?);
    Ok(v)
}

/// The order's milestones.
#[utoipa::path(
    get,
    operation_id = "listMilestones",
    path = "/orders/{id}/milestones",
    tag = "Escrow",
    params(("id" = String, Path, description = "Order id (ord_…)")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "The milestones", body = crate::openapi::Data<Vec<offerhub::services::orders::Milestone>>))
)]
pub async fn milestones(
    State(state): State<AppState>,
    auth: Auth<Read>,
    Path(id): Path<String>,
) -> ApiResult {
    let order = orders::get(&state.store, &id).await?;
    Ok(respond(StatusCode::OK, &auth.request_id, order.milestones))
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
    responses((status = 200, description = "The order after the milestone step", body = crate::openapi::Data<offerhub::services::orders::Order>), (status = 202, description = "Still settling on chain: the order with its running saga; poll the order or the saga", body = crate::openapi::Data<crate::openapi::SagaAccepted>))
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
        let m = order
            .milestones
            .into_iter()
            .find(|m| m.milestone_ref == milestone_ref);
        Ok(json!(m))
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListDisputes {
    #[serde(alias = "order_id")]
    order_id: Option<String>,
    #[param(schema_with = crate::openapi::fields::dispute_status)]
    status: Option<String>,
    #[serde(alias = "opened_by")]
    #[param(schema_with = crate::openapi::fields::opened_by)]
    opened_by: Option<String>,
    #[serde(alias = "assigned_to")]
    assigned_to: Option<String>,
    /// Page size, 1–100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Disputes newest first; filters combine with AND.
#[utoipa::path(
    get,
    operation_id = "listDisputes",
    path = "/disputes",
    tag = "Disputes",
    params(ListDisputes),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "Disputes, newest first", body = crate::openapi::Page<offerhub::services::disputes::Dispute>))
)]
pub async fn list_disputes(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiQuery(q): ApiQuery<ListDisputes>,
) -> ApiResult {
    let page = PageRequest::new(q.limit, q.cursor)?;
    if let Some(s) = &q.status
        && disputes::DisputeStatus::parse(s).is_none()
    {
        return Err(Error::validation("status", format!("{s:?} is not a dispute status")).into());
    }
    if let Some(o) = &q.opened_by
        && !["BUYER", "SELLER"].contains(&o.as_str())
    {
        return Err(Error::validation("openedBy", "must be BUYER or SELLER").into());
    }
    let f = DisputeFilter {
        order_id: q.order_id,
        status: q.status,
        opened_by: q.opened_by,
        assigned_to: q.assigned_to,
    };
    Ok(respond_page(
        &auth.request_id,
        disputes::list(&state.store, &f, &page).await?,
    ))
}

/// One dispute with its comments and its order.
#[utoipa::path(
    get,
    operation_id = "getDispute",
    path = "/disputes/{id}",
    tag = "Disputes",
    params(("id" = String, Path, description = "Dispute id (dsp_…)")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "The dispute with comments and order", body = crate::openapi::Data<crate::openapi::DisputeWithOrder>))
)]
pub async fn get_dispute(
    State(state): State<AppState>,
    auth: Auth<Read>,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(respond(
        StatusCode::OK,
        &auth.request_id,
        dispute_json(&state, &id).await?,
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AssignBody {
    #[serde(alias = "assigned_to")]
    #[schema(min_length = 1, max_length = 200, pattern = r"\S", example = "agent-7")]
    assigned_to: String,
}

/// `OPEN → UNDER_REVIEW` with a reviewer (support scope).
#[utoipa::path(
    post,
    operation_id = "assignDispute",
    path = "/disputes/{id}/assign",
    tag = "Disputes",
    params(("id" = String, Path, description = "Dispute id (dsp_…)")),
    request_body = AssignBody,
    security(("bearer" = ["support"])),
    responses((status = 200, description = "UNDER_REVIEW", body = crate::openapi::Data<offerhub::services::disputes::Dispute>))
)]
pub async fn assign(
    State(state): State<AppState>,
    auth: Auth<Support>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<AssignBody>,
) -> ApiResult {
    let d = disputes::assign(&state.store, &auth.context(), &id, &b.assigned_to).await?;
    Ok(respond(StatusCode::OK, &auth.request_id, d))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S", example = "agent-7")]
    author: String,
    #[schema(min_length = 1, max_length = 5000, pattern = r"\S")]
    body: String,
}

/// Adds a comment; 201 with it.
#[utoipa::path(
    post,
    operation_id = "commentOnDispute",
    path = "/disputes/{id}/comments",
    tag = "Disputes",
    params(("id" = String, Path, description = "Dispute id (dsp_…)")),
    request_body = CommentBody,
    security(("bearer" = ["write"])),
    responses((status = 201, description = "The comment", body = crate::openapi::Data<offerhub::services::disputes::Comment>))
)]
pub async fn comment(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<CommentBody>,
) -> ApiResult {
    let c = disputes::comment(&state.store, &auth.context(), &id, &b.author, &b.body).await?;
    Ok(respond(StatusCode::CREATED, &auth.request_id, c))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResolveBody {
    /// `SPLIT` needs `releaseAmount` and `refundAmount` summing to the escrow balance
    /// (400 `INVALID_AMOUNT_FORMAT` naming `releaseAmount` otherwise).
    #[schema(schema_with = crate::openapi::fields::decision)]
    decision: String,
    #[serde(alias = "release_amount")]
    #[schema(schema_with = crate::openapi::fields::non_negative_amount)]
    release_amount: Option<String>,
    #[serde(alias = "refund_amount")]
    #[schema(schema_with = crate::openapi::fields::non_negative_amount)]
    refund_amount: Option<String>,
    #[schema(max_length = 2000)]
    note: Option<String>,
}

/// Resolves on chain (support scope): each party is credited its net share → `CLOSED`.
#[utoipa::path(
    post,
    operation_id = "resolveDispute",
    path = "/disputes/{id}/resolve",
    tag = "Disputes",
    params(("id" = String, Path, description = "Dispute id (dsp_…)")),
    request_body = ResolveBody,
    security(("bearer" = ["support"])),
    responses((status = 200, description = "RESOLVED; the order CLOSED", body = crate::openapi::Data<crate::openapi::DisputeWithOrder>), (status = 202, description = "Still settling on chain: the order with its running saga; poll the order or the saga", body = crate::openapi::Data<crate::openapi::SagaAccepted>))
)]
pub async fn resolve(
    State(state): State<AppState>,
    auth: Auth<Support>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<ResolveBody>,
) -> ApiResult {
    escrow_ctx(&state)?;
    let parse = |field: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| Amount::parse_non_negative(s).map_err(|e| e.at(field)))
            .transpose()
    };
    let release = parse("releaseAmount", &b.release_amount)?;
    let refund = parse("refundAmount", &b.refund_amount)?;
    let (d, saga) = disputes::resolve(
        &state.store,
        &auth.context(),
        &id,
        &b.decision,
        release,
        refund,
        b.note,
    )
    .await?;
    outcome(&state, &auth.request_id, saga, StatusCode::OK, || {
        dispute_json(&state, &d.id)
    })
    .await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListSagas {
    #[param(schema_with = crate::openapi::fields::saga_status)]
    status: Option<String>,
    #[serde(alias = "order_id")]
    order_id: Option<String>,
    /// Page size, 1–100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Sagas newest first (`status`: RUNNING, COMPLETED, COMPENSATED, NEEDS_ATTENTION).
#[utoipa::path(
    get,
    operation_id = "listSagas",
    path = "/sagas",
    tag = "Sagas",
    params(ListSagas),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "Sagas, newest first", body = crate::openapi::Page<offerhub::services::sagas::Saga>))
)]
pub async fn list_sagas(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiQuery(q): ApiQuery<ListSagas>,
) -> ApiResult {
    let page = PageRequest::new(q.limit, q.cursor)?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            sagas::SagaStatus::parse(s)
                .ok_or_else(|| Error::validation("status", format!("{s:?} is not a saga status")))
        })
        .transpose()?;
    let p = sagas::list(&state.store, status, q.order_id.as_deref(), &page).await?;
    Ok(respond_page(&auth.request_id, p))
}

#[utoipa::path(
    get,
    operation_id = "getSaga",
    path = "/sagas/{id}",
    tag = "Sagas",
    params(("id" = String, Path, description = "Saga id (sag_…)")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "The saga", body = crate::openapi::Data<offerhub::services::sagas::Saga>))
)]
pub async fn get_saga(
    State(state): State<AppState>,
    auth: Auth<Read>,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(respond(
        StatusCode::OK,
        &auth.request_id,
        sagas::get(&state.store, &id).await?,
    ))
}

/// Puts a `NEEDS_ATTENTION` saga back to work (support scope) and waits for it like
/// the original call.
#[utoipa::path(
    post,
    operation_id = "retrySaga",
    path = "/sagas/{id}/retry",
    tag = "Sagas",
    params(("id" = String, Path, description = "Saga id (sag_…)")),
    security(("bearer" = ["support"])),
    responses((status = 200, description = "Completed on retry", body = crate::openapi::Data<offerhub::services::sagas::Saga>), (status = 202, description = "Back to work, still running", body = crate::openapi::Data<offerhub::services::sagas::Saga>))
)]
pub async fn retry_saga(
    State(state): State<AppState>,
    auth: Auth<Support>,
    Path(id): Path<String>,
    ApiJson(_): ApiJson<Empty>,
) -> ApiResult {
    let ec = escrow_ctx(&state)?;
    sagas::retry(&state.store, &auth.context(), &id).await?;
    let saga = escrow::drive(ec, state.store.clone(), id).await?;
    let code = if saga.status == sagas::SagaStatus::Running {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(respond(code, &auth.request_id, saga))
}

//! Disputes: `GET /disputes`, `GET /disputes/{id}`,
//! `POST /disputes/{id}/assign|comments|resolve`. A dispute is opened on its order
//! (`POST /orders/{id}/resolution/dispute`, [`super::escrow`]); resolving it runs a
//! saga like the escrow operations do.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use offerhub::error::Error;
use offerhub::money::Amount;
use offerhub::pagination::PageRequest;
use offerhub::services::disputes::{self, DisputeFilter};
use offerhub::services::orders;
use serde::Deserialize;

use super::escrow_ctx;
use super::sagas::outcome;
use crate::api::{ApiJson, ApiQuery, ApiResult, Auth, Read, Support, Write, respond, respond_page};
use crate::dto::disputes::{Comment, Dispute, DisputeWithOrder};
use crate::state::AppState;

/// The dispute with its comments and its order.
pub(super) async fn dispute_with_order(
    state: &AppState,
    id: &str,
) -> Result<DisputeWithOrder, Error> {
    let d = disputes::get(&state.store, id).await?;
    let order = orders::get(&state.store, &d.order_id).await?;
    Ok(DisputeWithOrder {
        dispute: d.into(),
        order: order.into(),
    })
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
    responses((status = 200, description = "Disputes, newest first", body = crate::openapi::Page<crate::dto::disputes::Dispute>))
)]
pub async fn list(
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
        Dispute::from,
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
    responses((status = 200, description = "The dispute with comments and order", body = crate::openapi::Data<crate::dto::disputes::DisputeWithOrder>))
)]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Read>,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(respond(
        StatusCode::OK,
        &auth.request_id,
        dispute_with_order(&state, &id).await?,
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
    responses((status = 200, description = "UNDER_REVIEW", body = crate::openapi::Data<crate::dto::disputes::Dispute>))
)]
pub async fn assign(
    State(state): State<AppState>,
    auth: Auth<Support>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<AssignBody>,
) -> ApiResult {
    let d = disputes::assign(&state.store, &auth.context(), &id, &b.assigned_to).await?;
    Ok(respond(StatusCode::OK, &auth.request_id, Dispute::from(d)))
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
    responses((status = 201, description = "The comment", body = crate::openapi::Data<crate::dto::disputes::Comment>))
)]
pub async fn comment(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<CommentBody>,
) -> ApiResult {
    let c = disputes::comment(&state.store, &auth.context(), &id, &b.author, &b.body).await?;
    Ok(respond(
        StatusCode::CREATED,
        &auth.request_id,
        Comment::from(c),
    ))
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
    responses((status = 200, description = "RESOLVED; the order CLOSED", body = crate::openapi::Data<crate::dto::disputes::DisputeWithOrder>), (status = 202, description = "Still settling on chain: the dispute and its order with the running saga; poll the dispute or the saga", body = crate::openapi::Data<crate::dto::sagas::DisputeAccepted>))
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
        dispute_with_order(&state, &d.id)
    })
    .await
}

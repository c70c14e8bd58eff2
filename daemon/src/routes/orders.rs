//! Orders: `POST /orders`, `GET /orders`, `GET /orders/{id}`,
//! `POST /orders/{id}/reserve`, `POST /orders/{id}/cancel`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use offerhub::domain::order::OrderStatus;
use offerhub::error::Error;
use offerhub::money::Amount;
use offerhub::pagination::PageRequest;
use offerhub::services::orders::{self, NewMilestone, NewOrder, OrderFilter, OrderLimits};
use serde::Deserialize;
use serde_json::Value;

use crate::api::{ApiJson, ApiQuery, ApiResult, Auth, Read, Write, respond, respond_page};
use crate::dto::orders::Order;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MilestoneBody {
    #[serde(alias = "milestone_ref")]
    #[schema(min_length = 1, max_length = 100, pattern = r"\S", example = "m1")]
    milestone_ref: String,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    title: String,
    #[schema(schema_with = crate::openapi::fields::positive_amount)]
    amount: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateOrder {
    /// A user id (`usr_…`); differs from `sellerId`.
    #[serde(alias = "buyer_id")]
    #[schema(min_length = 1)]
    buyer_id: String,
    #[serde(alias = "seller_id")]
    #[schema(min_length = 1)]
    seller_id: String,
    /// Decimal string greater than zero, e.g. `"100.00"`; between `ORDER_MIN_AMOUNT` and
    /// `ORDER_MAX_AMOUNT` (400 `INVALID_AMOUNT_FORMAT` otherwise).
    #[schema(schema_with = crate::openapi::fields::positive_amount)]
    amount: String,
    /// `USD` (default) or `USDC`.
    #[schema(schema_with = crate::openapi::fields::order_currency)]
    currency: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"\S",
        example = "Logo design"
    )]
    title: String,
    #[schema(max_length = 5000)]
    description: Option<String>,
    /// Your reference, unique per order (409 `CLIENT_ORDER_REF_CONFLICT`).
    #[serde(alias = "client_order_ref")]
    #[schema(min_length = 1, max_length = 255, pattern = r"\S")]
    client_order_ref: Option<String>,
    /// Multi-release orders: unique `milestoneRef`s whose amounts sum to `amount`.
    #[serde(default)]
    #[schema(max_items = 50)]
    milestones: Vec<MilestoneBody>,
    /// A JSON object of at most 16 KiB.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// Inspection window: the order is released automatically this long after the
    /// seller's completion (multi-release: the last milestone completed; single-release:
    /// the escrow funded) unless a dispute is opened first. An ISO-8601 duration (`P7D`,
    /// `PT36H`, `PT2S`; no years or months) or a whole number of seconds, 1 s to 3650
    /// days. Default `OFFERHUB_AUTO_RELEASE_AFTER` (unset: no automatic release).
    #[serde(alias = "auto_release_after")]
    #[schema(schema_with = crate::openapi::fields::duration)]
    auto_release_after: Option<Value>,
    /// Absolute time (RFC 3339, in the future) of the automatic release, instead of
    /// `autoReleaseAfter`; it fires once the seller's work is complete (at once if that
    /// comes later).
    #[serde(alias = "auto_release_at")]
    #[schema(format = DateTime, example = "2026-12-24T12:00:00Z")]
    auto_release_at: Option<String>,
}

fn amount(field: &str, v: &str) -> Result<Amount, Error> {
    Amount::parse_positive(v).map_err(|e| e.at(field))
}

/// 201 with the order in `ORDER_CREATED`.
#[utoipa::path(
    post,
    operation_id = "createOrder",
    path = "/orders",
    tag = "Orders",
    request_body = CreateOrder,
    security(("bearer" = ["write"])),
    responses((status = 201, description = "ORDER_CREATED", body = crate::openapi::Data<crate::dto::orders::Order>))
)]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Write>,
    ApiJson(b): ApiJson<CreateOrder>,
) -> ApiResult {
    let mut milestones = Vec::with_capacity(b.milestones.len());
    for (i, m) in b.milestones.into_iter().enumerate() {
        milestones.push(NewMilestone {
            amount: amount(&format!("milestones[{i}].amount"), &m.amount)?,
            milestone_ref: m.milestone_ref,
            title: m.title,
        });
    }
    let auto_release_after_secs = match &b.auto_release_after {
        Some(v) => Some(offerhub::services::lifecycle::duration_field(
            "autoReleaseAfter",
            v,
        )?),
        None if b.auto_release_at.is_none() => state.config.auto_release_after_secs,
        None => None,
    };
    let auto_release_at = match &b.auto_release_at {
        Some(at) => Some(offerhub::clock::parse_ts(at).ok_or_else(|| {
            Error::validation(
                "autoReleaseAt",
                "must be an RFC 3339 date-time such as 2026-12-24T12:00:00Z",
            )
        })?),
        None => None,
    };
    let new = NewOrder {
        buyer_id: b.buyer_id,
        seller_id: b.seller_id,
        amount: amount("amount", &b.amount)?,
        currency: b.currency.unwrap_or_else(|| "USD".into()),
        title: b.title,
        description: b.description,
        client_order_ref: b.client_order_ref,
        milestones,
        metadata: b.metadata,
        auto_release_after_secs,
        auto_release_at,
    };
    let limits = OrderLimits {
        min: state.config.order_min_amount,
        max: state.config.order_max_amount,
    };
    let order = orders::create(&state.store, &auth.context(), limits, new).await?;
    Ok(respond(
        StatusCode::CREATED,
        &auth.request_id,
        Order::from(order),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListOrders {
    #[serde(alias = "buyer_id")]
    buyer_id: Option<String>,
    #[serde(alias = "seller_id")]
    seller_id: Option<String>,
    #[param(value_type = Option<crate::dto::enums::OrderStatus>)]
    status: Option<String>,
    /// Page size, 1–100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Filters combine with AND; an unknown `status` is a 400 naming it.
#[utoipa::path(
    get,
    operation_id = "listOrders",
    path = "/orders",
    tag = "Orders",
    params(ListOrders),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "Orders, newest first", body = crate::openapi::Page<crate::dto::orders::Order>))
)]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiQuery(q): ApiQuery<ListOrders>,
) -> ApiResult {
    let page = PageRequest::new(q.limit, q.cursor)?;
    let status = q
        .status
        .map(|s| {
            OrderStatus::parse(&s)
                .ok_or_else(|| Error::validation("status", format!("{s:?} is not an order status")))
        })
        .transpose()?;
    let filter = OrderFilter {
        buyer_id: q.buyer_id,
        seller_id: q.seller_id,
        status,
    };
    let page = orders::list(&state.store, &filter, &page).await?;
    Ok(respond_page(&auth.request_id, page, Order::from))
}

#[utoipa::path(
    get,
    operation_id = "getOrder",
    path = "/orders/{id}",
    tag = "Orders",
    params(("id" = String, Path, description = "Order id (ord_…)")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "The order with its escrow and latest dispute", body = crate::openapi::Data<crate::dto::orders::Order>))
)]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Read>,
    Path(id): Path<String>,
) -> ApiResult {
    let order = orders::get(&state.store, &id).await?;
    Ok(respond(
        StatusCode::OK,
        &auth.request_id,
        Order::from(order),
    ))
}

/// Holds the order amount on the buyer's balance → `FUNDS_RESERVED`.
#[utoipa::path(
    post,
    operation_id = "reserveOrderFunds",
    path = "/orders/{id}/reserve",
    tag = "Orders",
    params(("id" = String, Path, description = "Order id (ord_…)")),
    security(("bearer" = ["write"])),
    responses((status = 200, description = "FUNDS_RESERVED", body = crate::openapi::Data<crate::dto::orders::Order>))
)]
pub async fn reserve(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult {
    let order = orders::reserve(&state.store, &auth.context(), &id).await?;
    Ok(respond(
        StatusCode::OK,
        &auth.request_id,
        Order::from(order),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// From `ORDER_CREATED` or `FUNDS_RESERVED` → `CLOSED`, voiding the hold.
#[utoipa::path(
    post,
    operation_id = "cancelOrder",
    path = "/orders/{id}/cancel",
    tag = "Orders",
    params(("id" = String, Path, description = "Order id (ord_…)")),
    request_body = CancelBody,
    security(("bearer" = ["write"])),
    responses((status = 200, description = "CLOSED", body = crate::openapi::Data<crate::dto::orders::Order>))
)]
pub async fn cancel(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<CancelBody>,
) -> ApiResult {
    let order = orders::cancel(&state.store, &auth.context(), &id, b.reason).await?;
    Ok(respond(
        StatusCode::OK,
        &auth.request_id,
        Order::from(order),
    ))
}

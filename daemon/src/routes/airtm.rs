//! Airtm mode routes: account linking (`POST /users/{id}/airtm/link`), top-ups
//! (`POST|GET /topups`, `GET /topups/{id}`, `POST /topups/{id}/refresh|cancel`, the
//! public browser return `GET /topups/{id}/callback`), payout actions
//! (`POST /withdrawals/{id}/commit|refresh|cancel`) and the public Svix-verified intake
//! `POST /webhooks/airtm`. Without `PAYMENT_PROVIDER=airtm` they answer 503
//! `PROVIDER_UNAVAILABLE`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use offerhub::error::{Error, ErrorCode};
use offerhub::ids::{self, IdKind};
use offerhub::money::Amount;
use offerhub::pagination::PageRequest;
use offerhub::services::airtm::{self as airtm_service, AirtmContext};
use offerhub::services::{inbox, payouts, topups};
use serde::Deserialize;
use serde_json::json;

use crate::api::{
    ApiError, ApiJson, ApiQuery, ApiResult, Auth, Read, Write, respond, respond_page,
};
use crate::state::AppState;

/// The Airtm context, or 422 `FEATURE_NOT_ENABLED` naming the setting.
pub fn context(state: &AppState) -> Result<Arc<AirtmContext>, Error> {
    state.airtm.clone().ok_or_else(|| {
        Error::feature_not_enabled(
            "Airtm is not enabled on this deployment (set PAYMENT_PROVIDER=airtm)",
            "PAYMENT_PROVIDER=airtm",
        )
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LinkBody {
    /// The user's Airtm account email.
    #[schema(schema_with = crate::openapi::fields::email)]
    email: String,
}

/// 200 with the user, its `airtm` link filled.
#[utoipa::path(
    post,
    operation_id = "linkAirtmAccount",
    path = "/users/{id}/airtm/link",
    tag = "Top-ups",
    params(("id" = String, Path, description = "User id (usr_…)")),
    request_body = LinkBody,
    security(("bearer" = ["write"])),
    responses((status = 200, description = "The user with its airtm link", body = crate::openapi::Data<offerhub::services::users::User>))
)]
pub async fn link(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<LinkBody>,
) -> ApiResult {
    let ac = context(&state)?;
    let user = airtm_service::link(&state.store, &auth.context(), &ac, &id, &b.email).await?;
    Ok(respond(StatusCode::OK, &auth.request_id, user))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateTopUp {
    #[serde(alias = "user_id")]
    #[schema(min_length = 1)]
    user_id: String,
    /// Decimal string, USD, greater than zero, at most 2 decimals.
    #[schema(schema_with = crate::openapi::fields::usd_amount)]
    amount: String,
    /// `USD` (the default; Airtm settles in US dollars).
    #[serde(default)]
    #[schema(schema_with = crate::openapi::fields::topup_currency)]
    currency: Option<String>,
    #[serde(alias = "return_url")]
    #[schema(schema_with = crate::openapi::fields::http_url)]
    return_url: String,
    #[serde(alias = "cancel_url")]
    #[schema(schema_with = crate::openapi::fields::http_url)]
    cancel_url: String,
}

/// 201 with the top-up; send the buyer to `confirmationUri`.
#[utoipa::path(
    post,
    operation_id = "createTopUp",
    path = "/topups",
    tag = "Top-ups",
    request_body = CreateTopUp,
    security(("bearer" = ["write"])),
    responses((status = 201, description = "Awaiting the buyer at confirmationUri", body = crate::openapi::Data<offerhub::services::topups::TopUp>))
)]
pub async fn create_topup(
    State(state): State<AppState>,
    auth: Auth<Write>,
    ApiJson(b): ApiJson<CreateTopUp>,
) -> ApiResult {
    let ac = context(&state)?;
    let amount = Amount::parse_positive(&b.amount).map_err(|e| e.at("amount"))?;
    let t = topups::create(
        &state.store,
        &auth.context(),
        &ac,
        &topups::NewTopUp {
            user_id: &b.user_id,
            amount,
            currency: b.currency.as_deref().unwrap_or("USD"),
            return_url: &b.return_url,
            cancel_url: &b.cancel_url,
        },
    )
    .await?;
    Ok(respond(StatusCode::CREATED, &auth.request_id, t))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListTopUps {
    #[serde(alias = "user_id")]
    user_id: Option<String>,
    status: Option<String>,
    /// Page size, 1–100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    operation_id = "listTopUps",
    path = "/topups",
    tag = "Top-ups",
    params(ListTopUps),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "Top-ups, newest first", body = crate::openapi::Page<offerhub::services::topups::TopUp>))
)]
pub async fn list_topups(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiQuery(q): ApiQuery<ListTopUps>,
) -> ApiResult {
    let page = PageRequest::new(q.limit, q.cursor)?;
    Ok(respond_page(
        &auth.request_id,
        topups::list(
            &state.store,
            q.user_id.as_deref(),
            q.status.as_deref(),
            &page,
        )
        .await?,
    ))
}

/// 404 with `code` for a path id that is not shaped like an id of `kind` (nothing is
/// looked up).
fn known_id(kind: IdKind, code: ErrorCode, noun: &str, id: &str) -> Result<(), Error> {
    if ids::is_valid(kind, id) {
        Ok(())
    } else {
        Err(Error::new(code, format!("{noun} {id} does not exist")))
    }
}

fn topup_id(id: &str) -> Result<(), Error> {
    known_id(IdKind::TopUp, ErrorCode::TopupNotFound, "Top-up", id)
}

fn withdrawal_id(id: &str) -> Result<(), Error> {
    known_id(
        IdKind::Withdrawal,
        ErrorCode::WithdrawalNotFound,
        "Withdrawal",
        id,
    )
}

#[utoipa::path(
    get,
    operation_id = "getTopUp",
    path = "/topups/{id}",
    tag = "Top-ups",
    params(("id" = String, Path, description = "Top-up id (top_…)")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "The top-up", body = crate::openapi::Data<offerhub::services::topups::TopUp>))
)]
pub async fn get_topup(
    State(state): State<AppState>,
    auth: Auth<Read>,
    Path(id): Path<String>,
) -> ApiResult {
    topup_id(&id)?;
    Ok(respond(
        StatusCode::OK,
        &auth.request_id,
        topups::get(&state.store, &id).await?,
    ))
}

/// Re-reads the payin from Airtm and applies it (may credit a confirmed top-up, once).
#[utoipa::path(
    post,
    operation_id = "refreshTopUp",
    path = "/topups/{id}/refresh",
    tag = "Top-ups",
    params(("id" = String, Path, description = "Top-up id (top_…)")),
    security(("bearer" = ["write"])),
    responses((status = 200, description = "Re-read from Airtm and applied", body = crate::openapi::Data<offerhub::services::topups::TopUp>))
)]
pub async fn refresh_topup(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult {
    topup_id(&id)?;
    let ac = context(&state)?;
    let t = topups::refresh(&state.store, &ac, &id).await?;
    Ok(respond(StatusCode::OK, &auth.request_id, t))
}

#[utoipa::path(
    post,
    operation_id = "cancelTopUp",
    path = "/topups/{id}/cancel",
    tag = "Top-ups",
    params(("id" = String, Path, description = "Top-up id (top_…)")),
    security(("bearer" = ["write"])),
    responses((status = 200, description = "Canceled", body = crate::openapi::Data<offerhub::services::topups::TopUp>))
)]
pub async fn cancel_topup(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult {
    topup_id(&id)?;
    let ac = context(&state)?;
    let t = topups::cancel(&state.store, &auth.context(), &ac, &id).await?;
    Ok(respond(StatusCode::OK, &auth.request_id, t))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    result: Option<String>,
}

/// The buyer's browser returning from Airtm's checkout (public, no API key): a 303 to
/// the marketplace's `returnUrl` (`result=confirmed`) or `cancelUrl`, with `topupId` and
/// `status` added. Never credits: only Airtm's own word does (webhook or re-fetch).
#[utoipa::path(
    get,
    operation_id = "topUpCallback",
    path = "/topups/{id}/callback",
    tag = "Top-ups",
    params(("id" = String, Path, description = "Top-up id (top_…)"), CallbackQuery),
    security(()),
    responses((status = 303, description = "Redirect to returnUrl or cancelUrl with topupId and status"))
)]
pub async fn topup_callback(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> ApiResult {
    topup_id(&id)?;
    let t = topups::get(&state.store, &id).await?;
    let target = if q.result.as_deref() == Some("confirmed") {
        &t.return_url
    } else {
        &t.cancel_url
    };
    let mut url = url::Url::parse(target)
        .map_err(|_| Error::internal(format!("stored URL of top-up {id} is invalid")))?;
    url.query_pairs_mut()
        .append_pair("topupId", &t.id)
        .append_pair("status", t.status.as_str());
    if let Some(wake) = &state.airtm_wake {
        // Let the reconciler look at it soon; the browser is not a proof of payment.
        wake.notify_one();
    }
    Ok(Redirect::to(url.as_str()).into_response())
}

/// `POST /webhooks/airtm` (public): verifies the Svix signature over the raw body
/// (`svix-id`, `svix-timestamp` within 5 minutes, any `v1,` entry, every configured
/// secret), stores the message in the inbox unique on `svix-id` and answers 200 at once;
/// the worker processes it. 401 `UNAUTHORIZED` for a missing, forged, foreign-secret or
/// stale signature (nothing stored); 422 `FEATURE_NOT_ENABLED` when Airtm is not enabled or no
/// `AIRTM_WEBHOOK_SECRET` is configured.
#[utoipa::path(
    post,
    operation_id = "receiveAirtmWebhook",
    path = "/webhooks/airtm",
    tag = "Webhooks",
    params(("svix-id" = String, Header, description = "Svix message id"), ("svix-timestamp" = String, Header, description = "Unix seconds"), ("svix-signature" = String, Header, description = "v1,<base64 HMAC-SHA256> entries")),
    request_body = Object,
    security(()),
    responses((status = 200, description = "Stored (or already stored); processed asynchronously", body = crate::openapi::Data<crate::openapi::WebhookReceipt>), (status = 401, description = "Signature verification failed (nothing stored)", body = crate::openapi::ErrorResponse))
)]
pub async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    match intake(&state, &headers, &body).await {
        Ok(r) => r,
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn intake(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Response, Error> {
    context(state)?;
    if state.airtm_webhooks.is_empty() {
        return Err(Error::feature_not_enabled(
            "Airtm webhook intake is disabled: AIRTM_WEBHOOK_SECRET is not set",
            "AIRTM_WEBHOOK_SECRET",
        ));
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = state.airtm_webhooks.verify(
        header("svix-id"),
        header("svix-timestamp"),
        header("svix-signature"),
        body,
        now,
    ) {
        tracing::warn!(reason = %e, "Airtm webhook refused");
        return Err(Error::new(
            ErrorCode::Unauthorized,
            format!("Webhook signature verification failed: {e}"),
        ));
    }
    let svix_id = header("svix-id").unwrap_or_default();
    let parsed: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| Error::validation("body", "must be a JSON object {type, data}"))?;
    let event_type = airtm_service::event_type(&parsed)
        .ok_or_else(|| Error::validation("body", "must be a JSON object {type, data}"))?
        .to_string();
    let text = std::str::from_utf8(body).map_err(|_| Error::validation("body", "must be UTF-8"))?;
    let new = inbox::receive(&state.store, "airtm", svix_id, &event_type, text).await?;
    if let Some(wake) = &state.airtm_wake {
        wake.notify_one();
    }
    Ok((
        StatusCode::OK,
        axum::Json(json!({ "data": { "received": true, "duplicate": !new } })),
    )
        .into_response())
}

#[utoipa::path(
    post,
    operation_id = "commitWithdrawal",
    path = "/withdrawals/{id}/commit",
    tag = "Withdrawals",
    params(("id" = String, Path, description = "Withdrawal id (wd_…)")),
    security(("bearer" = ["write"])),
    responses((status = 200, description = "Committed; Airtm's outcome applied", body = crate::openapi::Data<offerhub::services::withdrawals::Withdrawal>))
)]
pub async fn commit_withdrawal(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult {
    withdrawal_id(&id)?;
    let ac = context(&state)?;
    let w = payouts::commit(&state.store, &auth.context(), &ac, &id).await?;
    Ok(respond(StatusCode::OK, &auth.request_id, w))
}

#[utoipa::path(
    post,
    operation_id = "refreshWithdrawal",
    path = "/withdrawals/{id}/refresh",
    tag = "Withdrawals",
    params(("id" = String, Path, description = "Withdrawal id (wd_…)")),
    security(("bearer" = ["write"])),
    responses((status = 200, description = "Re-read from Airtm and applied", body = crate::openapi::Data<offerhub::services::withdrawals::Withdrawal>))
)]
pub async fn refresh_withdrawal(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult {
    withdrawal_id(&id)?;
    let ac = context(&state)?;
    let w = payouts::refresh(&state.store, &ac, &id).await?;
    Ok(respond(StatusCode::OK, &auth.request_id, w))
}

#[utoipa::path(
    post,
    operation_id = "cancelWithdrawal",
    path = "/withdrawals/{id}/cancel",
    tag = "Withdrawals",
    params(("id" = String, Path, description = "Withdrawal id (wd_…)")),
    security(("bearer" = ["write"])),
    responses((status = 200, description = "Canceled; the hold returned to available", body = crate::openapi::Data<offerhub::services::withdrawals::Withdrawal>))
)]
pub async fn cancel_withdrawal(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult {
    withdrawal_id(&id)?;
    let ac = context(&state)?;
    let w = payouts::cancel(&state.store, &auth.context(), &ac, &id).await?;
    Ok(respond(StatusCode::OK, &auth.request_id, w))
}

//! Withdrawals: `POST /withdrawals` (write), `GET /withdrawals?userId=` and
//! `GET /withdrawals/{id}` (read). Crypto withdrawals pay USDC on Stellar; Airtm
//! payouts (`bank`, `airtm_balance`, [`offerhub::services::payouts`]) pay the user's
//! linked Airtm account, and are committed, re-read or canceled with
//! `POST /withdrawals/{id}/commit|refresh|cancel` (Airtm only: 422
//! `FEATURE_NOT_ENABLED` without `PAYMENT_PROVIDER=airtm`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use offerhub::error::{Error, ErrorCode};
use offerhub::ids::IdKind;
use offerhub::money::Amount;
use offerhub::pagination::PageRequest;
use offerhub::services::{payouts, withdrawals};
use serde::Deserialize;

use super::{airtm_ctx, known_id};
use crate::api::{ApiJson, ApiQuery, ApiResult, Auth, Read, Write, respond, respond_page};
use crate::dto::withdrawals::Withdrawal;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateWithdrawal {
    #[serde(alias = "user_id")]
    #[schema(min_length = 1)]
    user_id: String,
    /// Decimal string of USDC greater than zero.
    #[schema(schema_with = crate::openapi::fields::positive_amount)]
    amount: String,
    /// `crypto` needs crypto mode, `bank` and `airtm_balance` need
    /// `PAYMENT_PROVIDER=airtm` (422 `FEATURE_NOT_ENABLED` otherwise).
    #[serde(alias = "destination_type")]
    #[schema(schema_with = crate::openapi::fields::destination_type)]
    destination_type: String,
    /// Crypto: the Stellar account (required). Airtm: an optional reference.
    #[serde(alias = "destination_ref", default)]
    #[schema(example = "GC55YOUXIMQAE3CFJNLBG3L4WGEASB2MPOWO5WX2OYLNFC6PBQSSAUAJ")]
    destination_ref: Option<String>,
    /// Airtm payouts only: commit at once (default false: `POST /withdrawals/{id}/commit`).
    #[serde(default)]
    commit: Option<bool>,
}

/// 201 with the withdrawal in its resulting state. Crypto: `WITHDRAWAL_COMPLETED` when
/// the payment landed, `WITHDRAWAL_PENDING` when its outcome is still being settled.
/// Airtm: `WITHDRAWAL_CREATED` (commit later) or, with `commit: true`, whatever Airtm
/// reports (`WITHDRAWAL_COMMITTED`, … `WITHDRAWAL_COMPLETED`).
#[utoipa::path(
    post,
    operation_id = "createWithdrawal",
    path = "/withdrawals",
    tag = "Withdrawals",
    request_body = CreateWithdrawal,
    security(("bearer" = ["write"])),
    responses((status = 201, description = "The withdrawal in its resulting state", body = crate::openapi::Data<crate::dto::withdrawals::Withdrawal>))
)]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Write>,
    ApiJson(b): ApiJson<CreateWithdrawal>,
) -> ApiResult {
    let amount = Amount::parse_positive(&b.amount).map_err(|e| e.at("amount"))?;
    match b.destination_type.as_str() {
        "crypto" => {
            let sc = state.stellar.as_ref().ok_or_else(|| {
                Error::feature_not_enabled(
                    "Crypto withdrawals need crypto mode (a Stellar network and WALLET_ENCRYPTION_KEY)",
                    "WALLET_ENCRYPTION_KEY",
                )
            })?;
            let w = withdrawals::create_crypto(
                &state.store,
                &auth.context(),
                sc,
                &b.user_id,
                amount,
                b.destination_ref.as_deref().ok_or_else(|| {
                    Error::validation("destinationRef", "is required for crypto withdrawals")
                })?,
            )
            .await?;
            Ok(respond(
                StatusCode::CREATED,
                &auth.request_id,
                Withdrawal::from(w),
            ))
        }
        "bank" | "airtm_balance" => {
            let ac = airtm_ctx(&state)?;
            let w = offerhub::services::payouts::create(
                &state.store,
                &auth.context(),
                &ac,
                &offerhub::services::payouts::NewPayoutWithdrawal {
                    user_id: &b.user_id,
                    amount,
                    destination_type: &b.destination_type,
                    destination_ref: b.destination_ref.as_deref(),
                    commit: b.commit.unwrap_or(false),
                },
            )
            .await?;
            Ok(respond(
                StatusCode::CREATED,
                &auth.request_id,
                Withdrawal::from(w),
            ))
        }
        other => Err(Error::validation(
            "destinationType",
            format!("must be crypto, bank or airtm_balance (got {other:?})"),
        )
        .into()),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListWithdrawals {
    #[serde(alias = "user_id")]
    user_id: Option<String>,
    /// Page size, 1–100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    operation_id = "listWithdrawals",
    path = "/withdrawals",
    tag = "Withdrawals",
    params(ListWithdrawals),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "Withdrawals, newest first", body = crate::openapi::Page<crate::dto::withdrawals::Withdrawal>))
)]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiQuery(q): ApiQuery<ListWithdrawals>,
) -> ApiResult {
    let page = PageRequest::new(q.limit, q.cursor)?;
    Ok(respond_page(
        &auth.request_id,
        withdrawals::list(&state.store, q.user_id.as_deref(), &page).await?,
        Withdrawal::from,
    ))
}

#[utoipa::path(
    get,
    operation_id = "getWithdrawal",
    path = "/withdrawals/{id}",
    tag = "Withdrawals",
    params(("id" = String, Path, description = "Withdrawal id (wd_…)")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "The withdrawal", body = crate::openapi::Data<crate::dto::withdrawals::Withdrawal>))
)]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Read>,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(respond(
        StatusCode::OK,
        &auth.request_id,
        Withdrawal::from(withdrawals::get(&state.store, &id).await?),
    ))
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
    post,
    operation_id = "commitWithdrawal",
    path = "/withdrawals/{id}/commit",
    tag = "Withdrawals",
    params(("id" = String, Path, description = "Withdrawal id (wd_…)")),
    security(("bearer" = ["write"])),
    responses((status = 200, description = "Committed; Airtm's outcome applied", body = crate::openapi::Data<crate::dto::withdrawals::Withdrawal>))
)]
pub async fn commit(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult {
    withdrawal_id(&id)?;
    let ac = airtm_ctx(&state)?;
    let w = payouts::commit(&state.store, &auth.context(), &ac, &id).await?;
    Ok(respond(
        StatusCode::OK,
        &auth.request_id,
        Withdrawal::from(w),
    ))
}

#[utoipa::path(
    post,
    operation_id = "refreshWithdrawal",
    path = "/withdrawals/{id}/refresh",
    tag = "Withdrawals",
    params(("id" = String, Path, description = "Withdrawal id (wd_…)")),
    security(("bearer" = ["write"])),
    responses((status = 200, description = "Re-read from Airtm and applied", body = crate::openapi::Data<crate::dto::withdrawals::Withdrawal>))
)]
pub async fn refresh(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult {
    withdrawal_id(&id)?;
    let ac = airtm_ctx(&state)?;
    let w = payouts::refresh(&state.store, &ac, &id).await?;
    Ok(respond(
        StatusCode::OK,
        &auth.request_id,
        Withdrawal::from(w),
    ))
}

#[utoipa::path(
    post,
    operation_id = "cancelWithdrawal",
    path = "/withdrawals/{id}/cancel",
    tag = "Withdrawals",
    params(("id" = String, Path, description = "Withdrawal id (wd_…)")),
    security(("bearer" = ["write"])),
    responses((status = 200, description = "Canceled; the hold returned to available", body = crate::openapi::Data<crate::dto::withdrawals::Withdrawal>))
)]
pub async fn cancel(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult {
    withdrawal_id(&id)?;
    let ac = airtm_ctx(&state)?;
    let w = payouts::cancel(&state.store, &auth.context(), &ac, &id).await?;
    Ok(respond(
        StatusCode::OK,
        &auth.request_id,
        Withdrawal::from(w),
    ))
}

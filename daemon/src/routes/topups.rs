//! Top-ups (Airtm payins) and the Airtm account link they need:
//! `POST /users/{id}/airtm/link`, `POST|GET /topups`, `GET /topups/{id}`,
//! `POST /topups/{id}/refresh|cancel`, and the public browser return
//! `GET /topups/{id}/callback`. Without `PAYMENT_PROVIDER=airtm` they answer 422
//! `FEATURE_NOT_ENABLED`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use offerhub::error::{Error, ErrorCode};
use offerhub::ids::IdKind;
use offerhub::money::Amount;
use offerhub::pagination::PageRequest;
use offerhub::services::airtm as airtm_service;
use offerhub::services::topups;
use serde::Deserialize;

use super::{airtm_ctx, known_id};
use crate::api::{ApiJson, ApiQuery, ApiResult, Auth, Read, Write, respond, respond_page};
use crate::dto::topups::TopUp;
use crate::dto::users::User;
use crate::state::AppState;

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
    responses((status = 200, description = "The user with its airtm link", body = crate::openapi::Data<crate::dto::users::User>))
)]
pub async fn link(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<LinkBody>,
) -> ApiResult {
    let ac = airtm_ctx(&state)?;
    let user = airtm_service::link(&state.store, &auth.context(), &ac, &id, &b.email).await?;
    Ok(respond(StatusCode::OK, &auth.request_id, User::from(user)))
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
    responses((status = 201, description = "Awaiting the buyer at confirmationUri", body = crate::openapi::Data<crate::dto::topups::TopUp>))
)]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Write>,
    ApiJson(b): ApiJson<CreateTopUp>,
) -> ApiResult {
    let ac = airtm_ctx(&state)?;
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
    Ok(respond(
        StatusCode::CREATED,
        &auth.request_id,
        TopUp::from(t),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListTopUps {
    #[serde(alias = "user_id")]
    user_id: Option<String>,
    /// An unknown status is a 400 naming `status`.
    #[param(value_type = Option<crate::dto::enums::TopUpStatus>)]
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
    responses((status = 200, description = "Top-ups, newest first", body = crate::openapi::Page<crate::dto::topups::TopUp>))
)]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiQuery(q): ApiQuery<ListTopUps>,
) -> ApiResult {
    let page = PageRequest::new(q.limit, q.cursor)?;
    if let Some(s) = &q.status
        && offerhub::domain::topup::TopUpStatus::parse(s).is_none()
    {
        return Err(Error::validation("status", format!("{s:?} is not a top-up status")).into());
    }
    Ok(respond_page(
        &auth.request_id,
        topups::list(
            &state.store,
            q.user_id.as_deref(),
            q.status.as_deref(),
            &page,
        )
        .await?,
        TopUp::from,
    ))
}

fn topup_id(id: &str) -> Result<(), Error> {
    known_id(IdKind::TopUp, ErrorCode::TopupNotFound, "Top-up", id)
}

#[utoipa::path(
    get,
    operation_id = "getTopUp",
    path = "/topups/{id}",
    tag = "Top-ups",
    params(("id" = String, Path, description = "Top-up id (top_…)")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "The top-up", body = crate::openapi::Data<crate::dto::topups::TopUp>))
)]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Read>,
    Path(id): Path<String>,
) -> ApiResult {
    topup_id(&id)?;
    Ok(respond(
        StatusCode::OK,
        &auth.request_id,
        TopUp::from(topups::get(&state.store, &id).await?),
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
    responses((status = 200, description = "Re-read from Airtm and applied", body = crate::openapi::Data<crate::dto::topups::TopUp>))
)]
pub async fn refresh(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult {
    topup_id(&id)?;
    let ac = airtm_ctx(&state)?;
    let t = topups::refresh(&state.store, &ac, &id).await?;
    Ok(respond(StatusCode::OK, &auth.request_id, TopUp::from(t)))
}

#[utoipa::path(
    post,
    operation_id = "cancelTopUp",
    path = "/topups/{id}/cancel",
    tag = "Top-ups",
    params(("id" = String, Path, description = "Top-up id (top_…)")),
    security(("bearer" = ["write"])),
    responses((status = 200, description = "Canceled", body = crate::openapi::Data<crate::dto::topups::TopUp>))
)]
pub async fn cancel(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult {
    topup_id(&id)?;
    let ac = airtm_ctx(&state)?;
    let t = topups::cancel(&state.store, &auth.context(), &ac, &id).await?;
    Ok(respond(StatusCode::OK, &auth.request_id, TopUp::from(t)))
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
pub async fn callback(
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

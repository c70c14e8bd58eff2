//! Users and balances: `POST/GET /users`, `GET/PATCH /users/{id}`,
//! `GET /users/{id}/balance` (alias `GET /balances/{userId}`),
//! `GET /users/{id}/balance/history`, `POST /users/{id}/balance/adjustments` (support).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use offerhub::error::Error;
use offerhub::ledger;
use offerhub::money::Amount;
use offerhub::pagination::PageRequest;
use offerhub::services::balances;
use offerhub::services::users::{self, NewUser, UserPatch, UserStatus, UserType};
use serde::Deserialize;
use serde_json::Value;

use crate::api::{ApiJson, ApiQuery, ApiResult, Auth, Read, Support, Write, respond, respond_page};
use crate::dto::ledger::{Adjustment, Balance, HistoryEntry};
use crate::dto::users::User;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateUser {
    #[serde(alias = "external_user_id")]
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"\S",
        example = "your-user-123"
    )]
    external_user_id: String,
    #[schema(schema_with = crate::openapi::fields::optional_email)]
    email: Option<String>,
    #[serde(rename = "type")]
    #[schema(value_type = Option<crate::dto::users::UserType>)]
    user_type: Option<UserType>,
}

/// 201 with the new user, or 200 with the existing one for a known `externalUserId`.
#[utoipa::path(
    post,
    operation_id = "createUser",
    path = "/users",
    tag = "Users",
    request_body = CreateUser,
    security(("bearer" = ["write"])),
    responses((status = 201, description = "Created (with a wallet in crypto mode)", body = crate::openapi::Data<crate::dto::users::User>), (status = 200, description = "A user with this externalUserId exists: that user", body = crate::openapi::Data<crate::dto::users::User>))
)]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Write>,
    ApiJson(body): ApiJson<CreateUser>,
) -> ApiResult {
    let (user, created) = users::create(
        &state.store,
        &auth.context(),
        state.user_hooks.as_ref(),
        NewUser {
            external_user_id: body.external_user_id,
            email: body.email,
            user_type: body.user_type.unwrap_or(UserType::Both),
        },
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(respond(status, &auth.request_id, User::from(user)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListUsers {
    #[serde(alias = "external_user_id")]
    external_user_id: Option<String>,
    /// Page size, 1–100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    operation_id = "listUsers",
    path = "/users",
    tag = "Users",
    params(ListUsers),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "Users, newest first", body = crate::openapi::Page<crate::dto::users::User>))
)]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiQuery(q): ApiQuery<ListUsers>,
) -> ApiResult {
    let page = PageRequest::new(q.limit, q.cursor)?;
    let users = users::list(&state.store, q.external_user_id.as_deref(), &page).await?;
    Ok(respond_page(&auth.request_id, users, User::from))
}

#[utoipa::path(
    get,
    operation_id = "getUser",
    path = "/users/{id}",
    tag = "Users",
    params(("id" = String, Path, description = "User id (usr_…)")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "The user", body = crate::openapi::Data<crate::dto::users::User>))
)]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Read>,
    Path(id): Path<String>,
) -> ApiResult {
    let user = users::get(&state.store, &id).await?;
    Ok(respond(StatusCode::OK, &auth.request_id, User::from(user)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    /// A string sets, `null` clears, absent leaves as is.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = crate::openapi::fields::nullable_email)]
    email: Option<Value>,
    #[serde(rename = "type")]
    #[schema(value_type = Option<crate::dto::users::UserType>)]
    user_type: Option<UserType>,
    #[schema(value_type = Option<crate::dto::enums::UserStatus>)]
    status: Option<UserStatus>,
}

#[utoipa::path(
    patch,
    operation_id = "updateUser",
    path = "/users/{id}",
    tag = "Users",
    params(("id" = String, Path, description = "User id (usr_…)")),
    request_body = PatchUser,
    security(("bearer" = ["write"])),
    responses((status = 200, description = "The updated user", body = crate::openapi::Data<crate::dto::users::User>))
)]
pub async fn update(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchUser>,
) -> ApiResult {
    let email = match body.email {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s)),
        Some(_) => return Err(Error::validation("email", "must be a string or null").into()),
    };
    let user = users::update(
        &state.store,
        &auth.context(),
        &id,
        UserPatch {
            email,
            user_type: body.user_type,
            status: body.status,
        },
    )
    .await?;
    Ok(respond(StatusCode::OK, &auth.request_id, User::from(user)))
}

/// `{userId, available, reserved, total, currency: "USD"}`.
#[utoipa::path(
    get,
    operation_id = "getUserBalance",
    path = "/users/{id}/balance",
    tag = "Users",
    params(("id" = String, Path, description = "User id (usr_…)")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "The balance", body = crate::openapi::Data<crate::dto::ledger::Balance>))
)]
pub async fn balance(
    State(state): State<AppState>,
    auth: Auth<Read>,
    Path(id): Path<String>,
) -> ApiResult {
    let b = balances::get(&state.store, &id).await?;
    Ok(respond(StatusCode::OK, &auth.request_id, Balance::from(b)))
}

/// Alias of `GET /users/{id}/balance` (the seed's path).
#[utoipa::path(
    get,
    operation_id = "getBalance",
    path = "/balances/{id}",
    tag = "Users",
    params(("id" = String, Path, description = "User id (usr_…)")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "The balance", body = crate::openapi::Data<crate::dto::ledger::Balance>))
)]
pub async fn balance_alias(
    state: State<AppState>,
    auth: Auth<Read>,
    id: Path<String>,
) -> ApiResult {
    balance(state, auth, id).await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Page size, 1–100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Postings on the user's available and reserved accounts, newest first.
#[utoipa::path(
    get,
    operation_id = "listBalanceHistory",
    path = "/users/{id}/balance/history",
    tag = "Users",
    params(("id" = String, Path, description = "User id (usr_…)"), HistoryQuery),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "Postings, newest first", body = crate::openapi::Page<crate::dto::ledger::HistoryEntry>))
)]
pub async fn history(
    State(state): State<AppState>,
    auth: Auth<Read>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult {
    let page = PageRequest::new(q.limit, q.cursor)?;
    users::get(&state.store, &id).await?;
    let entries = ledger::history(&state.store, &id, &page).await?;
    Ok(respond_page(&auth.request_id, entries, HistoryEntry::from))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustBody {
    /// Signed decimal string, e.g. `"25.00"` or `"-1.00"`, not zero; at most
    /// `OFFERHUB_MAX_ADJUSTMENT` either way (422 `AMOUNT_OUT_OF_RANGE`).
    #[schema(value_type = crate::dto::Amount)]
    amount: String,
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: String,
}

/// 201 with `{transactionId, userId, amount, reason, balance}`.
#[utoipa::path(
    post,
    operation_id = "adjustBalance",
    path = "/users/{id}/balance/adjustments",
    tag = "Users",
    params(("id" = String, Path, description = "User id (usr_…)")),
    request_body = AdjustBody,
    security(("bearer" = ["support"])),
    responses((status = 201, description = "Adjusted", body = crate::openapi::Data<crate::dto::ledger::Adjustment>))
)]
pub async fn adjust(
    State(state): State<AppState>,
    auth: Auth<Support>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AdjustBody>,
) -> ApiResult {
    let amount = Amount::parse(&body.amount).map_err(|e| e.at("amount"))?;
    let max = state.config.max_adjustment;
    if amount > max || amount.checked_neg().is_none_or(|n| n > max) {
        return Err(Error::out_of_range(
            "amount",
            format!("must be at most {max} in either direction (OFFERHUB_MAX_ADJUSTMENT)"),
        )
        .into());
    }
    let adj = balances::adjust(&state.store, &auth.context(), &id, amount, &body.reason).await?;
    Ok(respond(
        StatusCode::CREATED,
        &auth.request_id,
        Adjustment::from(adj),
    ))
}

/// Distinguishes a field given as `null` (`Some(Value::Null)`) from an absent one (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

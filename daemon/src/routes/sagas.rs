//! Sagas, the multi-step chain operations behind escrow and dispute routes, and their
//! recovery: `GET /sagas`, `GET /sagas/{id}`, `POST /sagas/{id}/retry`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use offerhub::error::Error;
use offerhub::pagination::PageRequest;
use offerhub::services::escrow;
use offerhub::services::sagas;
use serde::Deserialize;
use serde_json::Value;

use super::{Empty, escrow_ctx};
use crate::api::{ApiJson, ApiQuery, ApiResult, Auth, Read, Support, respond, respond_page};
use crate::dto::Body;
use crate::dto::sagas::{Accepted, Saga};
use crate::state::AppState;

/// Drives the saga and renders the outcome: `ok_status` with `body()` when it
/// completed, its error when compensated, 202 with `body()` + `saga` otherwise
/// ([`Accepted`]).
pub(super) async fn outcome<F, Fut, T>(
    state: &AppState,
    request_id: &str,
    saga: sagas::Saga,
    ok_status: StatusCode,
    body: F,
) -> ApiResult
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
    T: Body,
{
    let ec = escrow_ctx(state)?;
    let saga = escrow::drive(ec, state.store.clone(), saga.id.clone()).await?;
    match saga.status {
        sagas::SagaStatus::Completed => Ok(respond(ok_status, request_id, body().await?)),
        sagas::SagaStatus::Compensated => {
            Err(sagas::error_of(saga.last_error.as_ref().unwrap_or(&Value::Null)).into())
        }
        _ => {
            let accepted = Accepted {
                body: body().await?,
                saga: saga.into(),
            };
            Ok(respond(StatusCode::ACCEPTED, request_id, accepted))
        }
    }
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
    responses((status = 200, description = "Sagas, newest first", body = crate::openapi::Page<crate::dto::sagas::Saga>))
)]
pub async fn list(
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
    Ok(respond_page(&auth.request_id, p, Saga::from))
}

#[utoipa::path(
    get,
    operation_id = "getSaga",
    path = "/sagas/{id}",
    tag = "Sagas",
    params(("id" = String, Path, description = "Saga id (sag_…)")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "The saga", body = crate::openapi::Data<crate::dto::sagas::Saga>))
)]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Read>,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(respond(
        StatusCode::OK,
        &auth.request_id,
        Saga::from(sagas::get(&state.store, &id).await?),
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
    responses((status = 200, description = "Completed on retry", body = crate::openapi::Data<crate::dto::sagas::Saga>), (status = 202, description = "Back to work, still running", body = crate::openapi::Data<crate::dto::sagas::Saga>))
)]
pub async fn retry(
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
    Ok(respond(code, &auth.request_id, Saga::from(saga)))
}

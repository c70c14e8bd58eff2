//! Outbound webhook endpoints and deliveries: `POST/GET /webhooks/endpoints`,
//! `DELETE /webhooks/endpoints/{id}`, `GET /webhooks/deliveries`,
//! `POST /webhooks/deliveries/{id}/replay`; and Airtm's inbound webhooks, the public
//! Svix-verified intake `POST /webhooks/airtm`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use offerhub::error::{Error, ErrorCode};
use offerhub::pagination::PageRequest;
use offerhub::services::airtm as airtm_service;
use offerhub::services::inbox;
use offerhub::services::webhooks::{self, DeliveryFilter};
use serde::Deserialize;

use super::airtm_ctx;
use crate::api::{
    ApiError, ApiJson, ApiQuery, ApiResult, Auth, Read, Write, respond, respond_page,
};
use crate::dto::webhooks::{CreatedEndpoint, Delivery, Endpoint, WebhookReceipt};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// Absolute http(s) URL, at most 2048 characters; private addresses are refused
    /// unless `WEBHOOK_ALLOW_PRIVATE_NETWORKS`.
    #[schema(schema_with = crate::openapi::fields::http_url)]
    url: String,
    /// Event type patterns (`order.*`, `balance.credited`, `*`); default all.
    #[serde(default)]
    events: Vec<String>,
}

/// 201 with the endpoint and its `secret` (`whsec_…`, shown only here).
#[utoipa::path(
    post,
    operation_id = "createWebhookEndpoint",
    path = "/webhooks/endpoints",
    tag = "Webhooks",
    request_body = CreateEndpoint,
    security(("bearer" = ["write"])),
    responses((status = 201, description = "The endpoint and its secret (shown only here)", body = crate::openapi::Data<crate::dto::webhooks::CreatedEndpoint>))
)]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Write>,
    ApiJson(b): ApiJson<CreateEndpoint>,
) -> ApiResult {
    let created = webhooks::create_endpoint(
        &state.store,
        &auth.context(),
        webhooks::EndpointPolicy {
            vault: state.vault()?,
            allow_private_networks: state.config.webhook_allow_private_networks,
        },
        &b.url,
        &b.events,
    )
    .await?;
    Ok(respond(
        StatusCode::CREATED,
        &auth.request_id,
        CreatedEndpoint::from(created),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Page size, 1–100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    operation_id = "listWebhookEndpoints",
    path = "/webhooks/endpoints",
    tag = "Webhooks",
    params(Paging),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "Endpoints", body = crate::openapi::Page<crate::dto::webhooks::Endpoint>))
)]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiQuery(q): ApiQuery<Paging>,
) -> ApiResult {
    let page = PageRequest::new(q.limit, q.cursor)?;
    Ok(respond_page(
        &auth.request_id,
        webhooks::list_endpoints(&state.store, &page).await?,
        Endpoint::from,
    ))
}

#[utoipa::path(
    delete,
    operation_id = "deleteWebhookEndpoint",
    path = "/webhooks/endpoints/{id}",
    tag = "Webhooks",
    params(("id" = String, Path, description = "Endpoint id (whe_…)")),
    security(("bearer" = ["write"])),
    responses((status = 200, description = "Deleted", body = crate::openapi::Data<crate::dto::webhooks::Endpoint>))
)]
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult {
    let e = webhooks::delete_endpoint(&state.store, &auth.context(), &id).await?;
    Ok(respond(StatusCode::OK, &auth.request_id, Endpoint::from(e)))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    endpoint_id: Option<String>,
    event_id: Option<String>,
    /// An unknown status is a 400 naming `status`.
    #[param(value_type = Option<crate::dto::enums::DeliveryStatus>)]
    status: Option<String>,
    /// Page size, 1–100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    operation_id = "listWebhookDeliveries",
    path = "/webhooks/deliveries",
    tag = "Webhooks",
    params(DeliveryQuery),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "Deliveries, newest first", body = crate::openapi::Page<crate::dto::webhooks::Delivery>))
)]
pub async fn deliveries(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> ApiResult {
    let page = PageRequest::new(q.limit, q.cursor)?;
    if let Some(s) = &q.status
        && offerhub::domain::webhook::DeliveryStatus::parse(s).is_none()
    {
        return Err(Error::validation("status", format!("{s:?} is not a delivery status")).into());
    }
    let filter = DeliveryFilter {
        endpoint_id: q.endpoint_id,
        event_id: q.event_id,
        status: q.status,
    };
    Ok(respond_page(
        &auth.request_id,
        webhooks::list_deliveries(&state.store, &filter, &page).await?,
        Delivery::from,
    ))
}

/// 201 with the new delivery, due at once.
#[utoipa::path(
    post,
    operation_id = "replayWebhookDelivery",
    path = "/webhooks/deliveries/{id}/replay",
    tag = "Webhooks",
    params(("id" = String, Path, description = "Delivery id (whd_…)")),
    security(("bearer" = ["write"])),
    responses((status = 201, description = "A new delivery, due at once", body = crate::openapi::Data<crate::dto::webhooks::Delivery>))
)]
pub async fn replay(
    State(state): State<AppState>,
    auth: Auth<Write>,
    Path(id): Path<String>,
) -> ApiResult {
    let d = webhooks::replay_delivery(&state.store, &auth.context(), &id).await?;
    Ok(respond(
        StatusCode::CREATED,
        &auth.request_id,
        Delivery::from(d),
    ))
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
    responses((status = 200, description = "Stored (or already stored); processed asynchronously", body = crate::openapi::Data<crate::dto::webhooks::WebhookReceipt>), (status = 401, description = "Signature verification failed (nothing stored)", body = crate::openapi::ErrorResponse))
)]
pub async fn receive_airtm(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match intake(&state, &headers, &body).await {
        Ok(r) => r,
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn intake(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Response, Error> {
    airtm_ctx(state)?;
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
    Ok(respond(
        StatusCode::OK,
        &crate::api::request_id(headers),
        WebhookReceipt::stored(new),
    ))
}

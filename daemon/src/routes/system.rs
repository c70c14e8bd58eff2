//! System: `GET /health` (public liveness), `GET /health/detailed` (public; database
//! and provider reachability), `GET /metrics` (scope `support`; the Prometheus
//! exposition of [`crate::metrics`]) and `GET /openapi.json` (public; the document of
//! [`crate::openapi`]).

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::{Auth, Support, request_id, respond};
use crate::dto::system::{Dependencies, Health, HealthDetailed, HealthStatus, Probe};
use crate::state::AppState;

/// `200 {"data": {"status": "healthy", "version", "uptimeSeconds"}}`.
#[utoipa::path(
    get,
    operation_id = "getHealth",
    path = "/health",
    tag = "System",
    security(()),
    responses((status = 200, description = "Alive", body = crate::openapi::Data<crate::dto::system::Health>))
)]
pub async fn health(State(state): State<AppState>, headers: HeaderMap) -> Response {
    respond(
        StatusCode::OK,
        &request_id(&headers),
        Health::new(state.started_at.elapsed()),
    )
}

/// Checks each dependency. `status` is `unhealthy` (HTTP 503) when the database is
/// down, `degraded` when Horizon or Trustless Work is not `healthy` or Airtm is
/// `degraded`, else `healthy`.
#[utoipa::path(
    get,
    operation_id = "getHealthDetailed",
    path = "/health/detailed",
    tag = "System",
    security(()),
    responses((status = 200, description = "Healthy or degraded", body = crate::openapi::Data<crate::dto::system::HealthDetailed>), (status = 503, description = "The database is down", body = crate::openapi::Data<crate::dto::system::HealthDetailed>))
)]
pub async fn detailed(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let health = HealthDetailed::new(Dependencies {
        database: database(&state).await,
        stellar_horizon: horizon(&state).await,
        trustless_work: trustless_work(&state),
        airtm: airtm(&state).await,
    });
    let code = if health.is_database_up() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    respond(code, &request_id(&headers), health)
}

/// The database: a ping within 5 s (`latencyMs`), else `unhealthy` with the error.
async fn database(state: &AppState) -> Probe {
    let t = Instant::now();
    match tokio::time::timeout(std::time::Duration::from_secs(5), state.store.ping()).await {
        Ok(Ok(())) => Probe::new(
            HealthStatus::Healthy,
            json!({
                "backend": state.store.backend().as_str(),
                "latencyMs": t.elapsed().as_millis() as u64,
            }),
        ),
        Ok(Err(e)) => Probe::new(
            HealthStatus::Unhealthy,
            json!({ "backend": state.store.backend().as_str(), "error": e.message }),
        ),
        Err(_) => Probe::new(
            HealthStatus::Unhealthy,
            json!({ "backend": state.store.backend().as_str(), "error": "timed out after 5 s" }),
        ),
    }
}

/// Horizon: its root within 5 s (passphrase, latest ledger, `latencyMs`); `unavailable`
/// without a Horizon URL.
async fn horizon(state: &AppState) -> Probe {
    let network = state.config.network;
    match &state.config.horizon_url {
        None => Probe::new(
            HealthStatus::Unavailable,
            json!({ "network": network.as_str(), "detail": "no Horizon URL configured" }),
        ),
        Some(url) => {
            let t = Instant::now();
            let probe = reqwest::Client::new()
                .get(url.as_str())
                .timeout(std::time::Duration::from_secs(5))
                .send()
                .await;
            match probe {
                Ok(r) if r.status().is_success() => {
                    let root: serde_json::Value = r.json().await.unwrap_or_default();
                    Probe::new(
                        HealthStatus::Healthy,
                        json!({
                            "network": network.as_str(),
                            "url": url.as_str(),
                            "networkPassphrase": root["network_passphrase"],
                            "latestLedger": root["history_latest_ledger"],
                            "latencyMs": t.elapsed().as_millis() as u64,
                        }),
                    )
                }
                Ok(r) => Probe::new(
                    HealthStatus::Unhealthy,
                    json!({ "network": network.as_str(), "url": url.as_str(), "error": format!("HTTP {}", r.status()) }),
                ),
                Err(_) => Probe::new(
                    HealthStatus::Unhealthy,
                    json!({ "network": network.as_str(), "url": url.as_str(), "error": "unreachable" }),
                ),
            }
        }
    }
}

/// Trustless Work: configured or not; not probed, as every request counts against its
/// 50/min budget.
fn trustless_work(state: &AppState) -> Probe {
    match &state.escrow {
        Some(_) => Probe::new(
            HealthStatus::Healthy,
            json!({ "detail": "configured (not probed: Trustless Work allows 50 requests/min)" }),
        ),
        None => Probe::new(
            HealthStatus::Unavailable,
            json!({ "detail": "escrow needs crypto mode with Trustless Work configured" }),
        ),
    }
}

/// Airtm mode: the treasury (platform wallet) that settles top-ups in USDC (its
/// balance read within 5 s), and whether webhook intake can verify signatures. Airtm
/// itself is not probed.
async fn airtm(state: &AppState) -> Probe {
    match &state.airtm {
        None => Probe::new(
            HealthStatus::Disabled,
            json!({ "detail": "PAYMENT_PROVIDER is not airtm" }),
        ),
        Some(ac) => {
            let platform = offerhub::services::wallets::platform(&state.store)
                .await
                .ok()
                .flatten();
            let treasury_usdc = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                offerhub::services::treasury::balance(&state.store, &ac.sc),
            )
            .await
            {
                Ok(Ok(b)) => b,
                _ => None,
            };
            let intake = !state.airtm_webhooks.is_empty();
            let status = if intake {
                HealthStatus::Healthy
            } else {
                HealthStatus::Degraded
            };
            Probe::new(
                status,
                json!({
                    "webhookIntake": if intake { "enabled" } else { "disabled: AIRTM_WEBHOOK_SECRET is not set" },
                    "treasury": { "publicKey": platform.map(|p| p.public_key), "usdc": treasury_usdc },
                }),
            )
        }
    }
}

/// `GET /metrics` (scope `support`): Prometheus text exposition format.
#[utoipa::path(
    get,
    operation_id = "getMetrics",
    path = "/metrics",
    tag = "System",
    security(("bearer" = ["support"])),
    responses((status = 200, description = "Prometheus text exposition format (version 0.0.4) of every `offerhub_*` series; see docs/OPERATIONS.md", content_type = "text/plain", body = String))
)]
pub async fn metrics(State(state): State<AppState>, _auth: Auth<Support>) -> Response {
    crate::metrics::render(&state.store).await
}

/// `GET /openapi.json` (public): the OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    operation_id = "getOpenApiDocument",
    path = "/openapi.json",
    tag = "System",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn openapi(State(state): State<AppState>) -> Response {
    let body = crate::openapi::document_json(state.config.public_base_url.as_str()).to_string();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

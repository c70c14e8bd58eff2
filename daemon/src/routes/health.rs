//! `GET /health` (public liveness) and `GET /health/detailed` (public; database and
//! provider reachability).

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use offerhub::config::Network;
use serde_json::json;

use crate::api::{request_id, respond};
use crate::state::AppState;

/// `200 {"data": {"status": "healthy", "version", "uptimeSeconds"}}`.
pub async fn health(State(state): State<AppState>, headers: HeaderMap) -> Response {
    respond(
        StatusCode::OK,
        &request_id(&headers),
        json!({
            "status": "healthy",
            "version": offerhub::VERSION,
            "uptimeSeconds": state.started_at.elapsed().as_secs(),
        }),
    )
}

/// Checks each dependency. `status` is `unhealthy` (HTTP 503) when the database is
/// down, `degraded` when a provider is unavailable, else `healthy`.
pub async fn detailed(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let t = Instant::now();
    let db = match tokio::time::timeout(std::time::Duration::from_secs(5), state.store.ping()).await
    {
        Ok(Ok(())) => json!({
            "status": "healthy",
            "backend": state.store.backend().as_str(),
            "latencyMs": t.elapsed().as_millis() as u64,
        }),
        Ok(Err(e)) => {
            json!({ "status": "unhealthy", "backend": state.store.backend().as_str(), "error": e.message })
        }
        Err(_) => {
            json!({ "status": "unhealthy", "backend": state.store.backend().as_str(), "error": "timed out after 5 s" })
        }
    };
    let network = state.config.network;
    let providers = match network {
        Network::Sandbox => json!({
            "status": "unavailable",
            "network": network.as_str(),
            "detail": "the embedded sandbox network is not part of this build yet",
        }),
        _ => json!({
            "status": "unavailable",
            "network": network.as_str(),
            "detail": "Stellar and Trustless Work clients are not part of this build yet",
        }),
    };
    let db_ok = db["status"] == "healthy";
    let status = if !db_ok {
        "unhealthy"
    } else if providers["status"] != "healthy" {
        "degraded"
    } else {
        "healthy"
    };
    let code = if db_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    respond(
        code,
        &request_id(&headers),
        json!({
            "status": status,
            "version": offerhub::VERSION,
            "dependencies": { "database": db, "stellar": providers },
        }),
    )
}

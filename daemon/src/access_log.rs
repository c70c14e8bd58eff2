//! One access-log line per request: method, route template, status, latency, request
//! id and API key id (never the key itself), at `info` on the target `offerhub::access`.
//!
//! [`route_info`] runs as a layer of the API routes (after routing and authentication,
//! outside the idempotency layer) and leaves the matched route template and the
//! caller's key id in the response's extensions; [`access_log`], an outer layer (inside
//! the request's tracing span), measures the whole request, writes the line, counts it
//! in `offerhub_http_requests_total` / `offerhub_http_request_duration_seconds` and
//! records the route and status on the request span.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::api::REQUEST_ID;
use crate::middleware::Authenticated;

/// What the inner layer learnt about a request.
#[derive(Clone, Debug)]
pub struct RouteInfo {
    /// The route template, e.g. `/api/v1/users/{id}`.
    pub route: String,
    /// The authenticated API key id (`key_…`, or `master`), when any.
    pub api_key_id: Option<String>,
}

/// Route layer: records the route template and the API key id on the response.
pub async fn route_info(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let api_key_id = req
        .extensions()
        .get::<Authenticated>()
        .and_then(|a| a.0.as_ref().as_ref().ok().map(|p| p.id().to_string()));
    let mut resp = next.run(req).await;
    resp.extensions_mut()
        .insert(RouteInfo { route, api_key_id });
    resp
}

/// Outermost layer: writes the access line once the response is ready.
pub async fn access_log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let resp = next.run(req).await;
    let info = resp.extensions().get::<RouteInfo>();
    let route = info
        .map(|i| i.route.as_str())
        .filter(|r| !r.is_empty())
        .unwrap_or("(unmatched)");
    crate::metrics::http_request(
        method.as_str(),
        route,
        resp.status().as_u16(),
        start.elapsed(),
    );
    let span = tracing::Span::current();
    span.record("route", route);
    span.record("status", resp.status().as_u16());
    // The exported span's name: `METHOD route` (a no-op without the OpenTelemetry layer).
    {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        span.context()
            .span()
            .update_name(format!("{method} {route}"));
    }
    tracing::info!(
        target: "offerhub::access",
        method = %method,
        route,
        status = resp.status().as_u16(),
        latency_ms = start.elapsed().as_secs_f64() * 1000.0,
        request_id = %request_id,
        api_key_id = info.and_then(|i| i.api_key_id.as_deref()).unwrap_or("-"),
        "request"
    );
    resp
}

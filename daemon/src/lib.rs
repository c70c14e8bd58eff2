//! The OfferHub daemon: the REST API under `/api/v1` and, in later milestones, the
//! workers and the chain monitor. [`router`] builds the HTTP application; [`serve`] runs
//! it until SIGINT/SIGTERM.

pub mod access_log;
pub mod api;
pub mod dto;
pub mod events;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod routes;
pub mod state;
pub mod telemetry;
pub mod wallets;
pub mod workers;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::response::IntoResponse;
use offerhub::config::Config;
use offerhub::error::{Error, ErrorCode};
use offerhub::store::Store;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::api::{ApiError, REQUEST_ID};
pub use crate::state::AppState;

/// Declares the API once: [`ROUTES`] (what the OpenAPI test checks against) and the
/// axum router of the same routes, so the two cannot drift apart.
macro_rules! api_routes {
    ($($path:literal => $($method:ident $handler:path),+;)*) => {
        /// Every route under `/api/v1` as `(method, path)`, path parameters in `{braces}`
        /// as in OpenAPI. [`openapi::document`] must describe each of them (a test checks).
        pub const ROUTES: &[(&str, &str)] = &[$($((stringify!($method), $path)),+),*];

        fn api_routes() -> Router<AppState> {
            Router::new()
                $(.route($path, axum::routing::MethodRouter::new()$(.$method($handler))+))*
        }
    };
}

api_routes! {
    "/openapi.json" => get routes::system::openapi;
    "/health" => get routes::system::health;
    "/health/detailed" => get routes::system::detailed;
    "/metrics" => get routes::system::metrics;
    "/auth/api-keys" => post routes::keys::create, get routes::keys::list;
    "/auth/api-keys/{id}" => delete routes::keys::revoke;
    "/auth/me" => get routes::keys::me;
    "/users" => post routes::users::create, get routes::users::list;
    "/users/{id}" => get routes::users::get, patch routes::users::update;
    "/users/{id}/balance" => get routes::users::balance;
    "/users/{id}/balance/history" => get routes::users::history;
    "/users/{id}/balance/adjustments" => post routes::users::adjust;
    "/balances/{id}" => get routes::users::balance_alias;
    "/users/{id}/wallet" => get routes::wallets::get;
    "/users/{id}/wallet/deposit" => get routes::wallets::deposit;
    "/users/{id}/balance/sync" => post routes::wallets::sync;
    "/users/{id}/wallet/transactions" => get routes::wallets::transactions;
    "/withdrawals" => post routes::withdrawals::create, get routes::withdrawals::list;
    "/withdrawals/{id}" => get routes::withdrawals::get;
    "/withdrawals/{id}/commit" => post routes::withdrawals::commit;
    "/withdrawals/{id}/refresh" => post routes::withdrawals::refresh;
    "/withdrawals/{id}/cancel" => post routes::withdrawals::cancel;
    "/users/{id}/airtm/link" => post routes::topups::link;
    "/topups" => post routes::topups::create, get routes::topups::list;
    "/topups/{id}" => get routes::topups::get;
    "/topups/{id}/refresh" => post routes::topups::refresh;
    "/topups/{id}/cancel" => post routes::topups::cancel;
    "/topups/{id}/callback" => get routes::topups::callback;
    "/webhooks/airtm" => post routes::webhooks::receive_airtm;
    "/audit/logs" => get routes::audit::list;
    "/orders" => post routes::orders::create, get routes::orders::list;
    "/orders/{id}" => get routes::orders::get;
    "/orders/{id}/reserve" => post routes::orders::reserve;
    "/orders/{id}/cancel" => post routes::orders::cancel;
    "/orders/{id}/escrow" => post routes::escrow::create;
    "/orders/{id}/escrow/fund" => post routes::escrow::fund;
    "/orders/{id}/resolution/release" => post routes::escrow::release;
    "/orders/{id}/resolution/refund" => post routes::escrow::refund;
    "/orders/{id}/resolution/dispute" => post routes::escrow::dispute;
    "/orders/{id}/milestones" => get routes::escrow::milestones;
    "/orders/{id}/milestones/{milestone_ref}/{op}" => post routes::escrow::milestone;
    "/disputes" => get routes::disputes::list;
    "/disputes/{id}" => get routes::disputes::get;
    "/disputes/{id}/assign" => post routes::disputes::assign;
    "/disputes/{id}/comments" => post routes::disputes::comment;
    "/disputes/{id}/resolve" => post routes::disputes::resolve;
    "/sagas" => get routes::sagas::list;
    "/sagas/{id}" => get routes::sagas::get;
    "/sagas/{id}/retry" => post routes::sagas::retry;
    "/events" => get routes::events::stream;
    "/events/history" => get routes::events::history;
    "/webhooks/endpoints" => post routes::webhooks::create, get routes::webhooks::list;
    "/webhooks/endpoints/{id}" => delete routes::webhooks::delete;
    "/webhooks/deliveries" => get routes::webhooks::deliveries;
    "/webhooks/deliveries/{id}/replay" => post routes::webhooks::replay;
}

/// The full application: every route of [`ROUTES`] under `/api/v1`, JSON 404/405
/// fallbacks, the request-id, tracing and body-limit layers.
pub fn router(state: AppState) -> Router {
    crate::metrics::install();
    let body_limit = state.config.body_limit_bytes;
    // `route_info` sits outside the idempotency layer, so replayed and conflicting
    // answers are attributed to their route too (the access log and the metrics).
    let v1 = api_routes()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::idempotency,
        ))
        .layer(axum::middleware::from_fn(access_log::route_info))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authenticate,
        ))
        .layer(axum::middleware::from_fn(middleware::refuse_nul));
    let request_id = HeaderName::from_static(REQUEST_ID);
    Router::new()
        .nest("/api/v1", v1)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(access_log::access_log))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                // `route` (the template) and `status` are recorded once known, and the
                // exported span is renamed `METHOD route` then (access_log).
                tracing::info_span!(
                    "request",
                    method = %req.method(),
                    path = %req.uri().path(),
                    request_id = %id,
                    route = tracing::field::Empty,
                    status = tracing::field::Empty,
                    otel.kind = "server"
                )
            }),
        )
        .layer(axum::middleware::map_response(envelope_errors))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// A handler that panicked: 500 with the envelope (the panic is logged, never shown).
fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    ApiError::from(Error::internal("a request handler panicked")).into_response()
}

/// Errors produced by the HTTP stack itself (body limit 413, a rejected extractor, a
/// layer's timeout…) carry no envelope: give every non-JSON 4xx/5xx answer one, with the
/// code of its status, so clients can always branch on `error.code`.
async fn envelope_errors(resp: axum::response::Response) -> axum::response::Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/json") || v.starts_with("application/problem+json")
        });
    if is_json {
        return resp;
    }
    let (code, message) = match status.as_u16() {
        404 => (ErrorCode::NotFound, "No such route"),
        405 => (
            ErrorCode::MethodNotAllowed,
            "This route does not support this method",
        ),
        413 => (
            ErrorCode::PayloadTooLarge,
            "Request body is larger than the configured limit",
        ),
        415 => (
            ErrorCode::UnsupportedMediaType,
            "Content-Type must be application/json",
        ),
        401 => (ErrorCode::Unauthorized, "Missing or invalid API key"),
        429 => (ErrorCode::RateLimited, "Too many requests"),
        s if s >= 500 => (ErrorCode::Internal, "An internal error occurred"),
        _ => (
            ErrorCode::InvalidRequest,
            "The request cannot be understood",
        ),
    };
    let mut body = crate::api::error_body(&Error::new(code, message));
    // Keep the status the stack chose (e.g. 408 from a timeout) when it differs.
    body["error"]["statusCode"] = serde_json::json!(status.as_u16());
    let mut out = (status, axum::Json(body)).into_response();
    for name in [axum::http::header::RETRY_AFTER, axum::http::header::ALLOW] {
        if let Some(v) = resp.headers().get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

async fn not_found() -> impl IntoResponse {
    ApiError::from(Error::new(ErrorCode::NotFound, "No such route"))
}

async fn method_not_allowed() -> impl IntoResponse {
    ApiError::from(Error::new(
        ErrorCode::MethodNotAllowed,
        "This route does not support this method",
    ))
}

/// Migrates the database, binds `config.bind_addr()` and serves until SIGINT or
/// SIGTERM, then stops the workers and event streams, drains in-flight requests (up to
/// 30 s), waits for the background tasks to end and closes the store.
pub async fn serve(config: Config) -> Result<(), Error> {
    let opts = offerhub::store::StoreOptions {
        background_checkpoints: true,
        ..Default::default()
    };
    let store = Store::connect_with(&config.database_url, opts).await?;
    store.migrate().await?;
    let addr = config.bind_addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::internal(format!("cannot listen on {addr}: {e}")))?;
    serve_on(listener, store, config).await
}

/// Serves on an already bound listener (tests bind port 0).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    store: Store,
    config: Config,
) -> Result<(), Error> {
    // Test hooks (feature `failpoints`, never in a release build): from `FAILPOINTS`.
    #[cfg(feature = "failpoints")]
    offerhub::failpoints::setup()?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::internal(format!("listener: {e}")))?;
    tracing::info!(%addr, backend = store.backend().as_str(), network = config.network.as_str(), "OfferHub listening");
    let stellar = wallets::context(&config).await?;
    let mut state = AppState::new(store.clone(), config);
    if let Some(sc) = stellar {
        state = state.with_stellar(sc);
    }
    if state.airtm.is_some() {
        state = register_with_embedded_airtm(state, addr).await;
    }
    let metrics_listener = match state.config.metrics_addr {
        None => None,
        Some(maddr) => {
            let l = tokio::net::TcpListener::bind(maddr).await.map_err(|e| {
                Error::internal(format!(
                    "cannot listen on {maddr} (OFFERHUB_METRICS_ADDR): {e}"
                ))
            })?;
            tracing::info!(addr = %maddr, "Prometheus metrics at /metrics");
            Some(crate::metrics::spawn_listener(l, store.clone()))
        }
    };
    let upkeep = crate::metrics::spawn_upkeep();
    let workers = workers::start(&state);
    let events = state.events.clone();
    let app = router(state);
    // On SIGINT/SIGTERM: stop the workers (leadership of the deposit monitor goes with
    // its session) and end SSE streams at once, then let in-flight requests finish.
    let stopping = (workers.clone(), events.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: workers stopped, event streams closed");
            stopping.0.stop();
            stopping.1.shutdown();
        })
        .await
        .map_err(|e| Error::internal(format!("server: {e}")))?;
    // Nothing may use the store once it closes: wait for the workers, the event pump and
    // the SSE forwarders to have ended, then for the metrics tasks.
    if !workers.stopped(SHUTDOWN_TIMEOUT).await {
        tracing::warn!("some workers had not stopped when the store was closed");
    }
    if !events.stopped_within(SHUTDOWN_TIMEOUT).await {
        tracing::warn!("some event tasks had not stopped when the store was closed");
    }
    for task in [metrics_listener, upkeep].into_iter().flatten() {
        task.abort();
        let _ = task.await;
    }
    let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, store.close()).await;
    events.finish();
    tracing::info!("stopped");
    Ok(())
}

/// How long a shutdown waits for the background tasks to end, and then for the store to
/// close.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// On the sandbox network without `AIRTM_BASE_URL`, the Airtm simulator is the
/// embedded sandbox: register this daemon's `POST /api/v1/webhooks/airtm` with it, as an
/// operator does in Airtm's dashboard, with the configured secret or a fresh one.
async fn register_with_embedded_airtm(state: AppState, addr: std::net::SocketAddr) -> AppState {
    let config = state.config.clone();
    if config.network != offerhub::config::Network::Sandbox || config.airtm.base_url.is_some() {
        return state;
    }
    let Some(sandbox) = config.horizon_url.clone() else {
        return state;
    };
    let (secret, state) = match config.airtm.webhook_secrets.first() {
        Some(s) => (s.clone(), state),
        None => {
            use base64::Engine;
            let key: [u8; 24] = rand::random();
            let s = offerhub::config::Secret::new(format!(
                "whsec_{}",
                base64::engine::general_purpose::STANDARD.encode(key)
            ));
            (s.clone(), state.with_airtm_webhook_secret(s))
        }
    };
    let host = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    let target = format!(
        "http://{}/api/v1/webhooks/airtm",
        std::net::SocketAddr::new(host, addr.port())
    );
    let registered = async {
        reqwest::Client::new()
            .post(sandbox.join("/_sandbox/airtm/webhook-endpoints").ok()?)
            .json(&serde_json::json!({ "url": target, "secret": secret.expose_secret() }))
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()
    }
    .await;
    match registered {
        Some(_) => tracing::info!(%target, "registered with the sandbox's Airtm simulator"),
        None => tracing::warn!("could not register with the sandbox's Airtm simulator"),
    }
    state
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

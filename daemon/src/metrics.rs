//! Prometheus exposition of the series listed in [`offerhub::metrics::CATALOG`].
//!
//! The recorder is process-global: [`install`] sets it once (later calls return the
//! same handle), so every router of the process — tests build many — records into one
//! registry. Two ways to scrape it, both answering the Prometheus text format:
//!
//! - `GET /api/v1/metrics` on the API port, with an API key holding the `support`
//!   scope (never public there);
//! - plain `GET /metrics` on `OFFERHUB_METRICS_ADDR` (e.g. `127.0.0.1:9464`), without
//!   authentication: bind it to loopback or a private interface only.
//!
//! Gauges that are facts of the database (parked sagas, webhook endpoints by state,
//! pending deliveries) are read at scrape time, so every daemon of a cluster reports
//! the same values (aggregate them with `max`, not `sum`).

use offerhub::domain::saga::SagaStatus;
use offerhub::domain::webhook::{DeliveryStatus, EndpointStatus};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use offerhub::metrics::{self as m, CATALOG, Kind};
use offerhub::store::Store;

/// Histogram buckets of every `_seconds` series, seconds: 5 ms … 5 min.
pub const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's global `metrics` recorder, once,
/// and describes every series of the catalog. Returns `None` when another recorder
/// was installed first (nothing is then exported from here).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = match PrometheusBuilder::new().set_buckets(BUCKETS) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "metrics: invalid histogram buckets");
                    return None;
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("metrics: another recorder is installed; /metrics stays empty");
                return None;
            }
            for d in CATALOG {
                match d.kind {
                    Kind::Counter => metrics::describe_counter!(d.name, d.help),
                    Kind::Gauge => metrics::describe_gauge!(d.name, d.help),
                    Kind::Histogram => metrics::describe_histogram!(d.name, d.help),
                }
            }
            metrics::gauge!(m::BUILD_INFO, "version" => offerhub::VERSION).set(1.0);
            Some(handle)
        })
        .as_ref()
}

/// One HTTP request answered: `route` is the matched template (or `(unmatched)`).
pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    metrics::counter!(
        m::HTTP_REQUESTS,
        "method" => method.to_string(),
        "route" => route.to_string(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!(
        m::HTTP_DURATION,
        "method" => method.to_string(),
        "route" => route.to_string()
    )
    .record(elapsed.as_secs_f64());
}

/// Reads the database gauges (at most 5 s; on failure the previous values stay).
async fn refresh_gauges(store: &Store) {
    let read = async {
        let sagas: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, CAST(COUNT(*) AS BIGINT) FROM sagas \
             WHERE status IN ($1, $2) GROUP BY status",
        )
        .bind(SagaStatus::Running)
        .bind(SagaStatus::NeedsAttention)
        .fetch_all(store.reader())
        .await?;
        let endpoints: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, CAST(COUNT(*) AS BIGINT) FROM webhook_endpoints \
             WHERE status IN ($1, $2) GROUP BY status",
        )
        .bind(EndpointStatus::Active)
        .bind(EndpointStatus::Disabled)
        .fetch_all(store.reader())
        .await?;
        let pending: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM webhook_deliveries WHERE status = $1",
        )
        .bind(DeliveryStatus::Pending)
        .fetch_one(store.reader())
        .await?;
        Ok::<_, sqlx::Error>((sagas, endpoints, pending))
    };
    match tokio::time::timeout(Duration::from_secs(5), read).await {
        Ok(Ok((sagas, endpoints, pending))) => {
            let count = |rows: &[(String, i64)], status: &str| {
                rows.iter()
                    .find(|(s, _)| s == status)
                    .map_or(0.0, |(_, n)| *n as f64)
            };
            metrics::gauge!(m::SAGAS_RUNNING).set(count(&sagas, SagaStatus::Running.as_str()));
            metrics::gauge!(m::SAGAS_NEEDS_ATTENTION)
                .set(count(&sagas, SagaStatus::NeedsAttention.as_str()));
            metrics::gauge!(m::WEBHOOK_ENDPOINTS, "state" => "active")
                .set(count(&endpoints, EndpointStatus::Active.as_str()));
            metrics::gauge!(m::WEBHOOK_ENDPOINTS, "state" => "disabled")
                .set(count(&endpoints, EndpointStatus::Disabled.as_str()));
            metrics::gauge!(m::WEBHOOK_PENDING).set(pending as f64);
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: cannot read the database gauges"),
        Err(_) => tracing::warn!("metrics: reading the database gauges timed out"),
    }
}

/// The exposition: database gauges refreshed, then every series in text format.
pub async fn render(store: &Store) -> Response {
    let Some(handle) = install() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            "# metrics recorder not installed\n",
        )
            .into_response();
    };
    let started = Instant::now();
    refresh_gauges(store).await;
    handle.run_upkeep();
    let body = handle.render();
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "metrics rendered"
    );
    (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// The router of `OFFERHUB_METRICS_ADDR`: plain `GET /metrics`, nothing else (404).
pub fn router(store: Store) -> Router {
    Router::new()
        .route(
            "/metrics",
            axum::routing::get(|State(store): State<Store>| async move { render(&store).await }),
        )
        .with_state(store)
}

/// Serves [`router`] on `listener` until the returned task is aborted.
pub fn spawn_listener(
    listener: tokio::net::TcpListener,
    store: Store,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(store)).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    })
}

/// Keeps histogram storage bounded between scrapes (every 10 s).
pub fn spawn_upkeep() -> Option<tokio::task::JoinHandle<()>> {
    let handle = install()?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    }))
}

//! Traces: OpenTelemetry export over OTLP (HTTP, protobuf) when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, nothing otherwise.
//!
//! The daemon's `tracing` spans become OpenTelemetry spans through
//! `tracing-opentelemetry`: a request's span (`request`, carrying `request_id`, the
//! route template and the status) is the parent of the spans of the saga steps it
//! drives (`saga.step`) and of the provider calls they make (`provider.call`, with
//! `provider`, `operation` and the answer's `status`). Only spans of OfferHub's own
//! crates are exported (never those of the HTTP stack), so exporting cannot feed
//! itself.
//!
//! Configuration follows the OpenTelemetry conventions and is read from the process
//! environment (like every OpenTelemetry SDK): `OTEL_EXPORTER_OTLP_ENDPOINT` (the
//! collector's base URL, e.g. `http://otel-collector:4318`; spans go to
//! `/v1/traces`), or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full traces URL), and
//! `OTEL_SERVICE_NAME` (default `offerhub`). Spans are batched and sent by a
//! background thread; [`Tracing::shutdown`] flushes them.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

/// The base URL of the OTLP collector.
pub const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The full URL of the traces endpoint (overrides [`ENDPOINT_VAR`] for traces).
pub const TRACES_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// The service name of the exported resource.
pub const SERVICE_NAME_VAR: &str = "OTEL_SERVICE_NAME";

/// The traces URL the environment asks for: `None` when neither variable is set;
/// `Err` (naming the variable) when the value is not an `http(s)://` URL.
pub fn traces_url_from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<String>, String> {
    let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
    let (var, url) = match (non_empty(TRACES_ENDPOINT_VAR), non_empty(ENDPOINT_VAR)) {
        (Some(full), _) => (TRACES_ENDPOINT_VAR, full.trim().to_string()),
        (None, Some(base)) => (
            ENDPOINT_VAR,
            format!("{}/v1/traces", base.trim().trim_end_matches('/')),
        ),
        (None, None) => return Ok(None),
    };
    match url::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(Some(url)),
        _ => Err(format!(
            "{var}: must be an http:// or https:// URL such as http://otel-collector:4318"
        )),
    }
}

/// The tracer provider with `exporter`: batched (production) or one export per span
/// (tests). The resource's `service.name` is `OTEL_SERVICE_NAME` or `offerhub`.
pub fn provider<E: SpanExporter + 'static>(exporter: E, batch: bool) -> SdkTracerProvider {
    let mut resource = Resource::builder();
    if std::env::var_os(SERVICE_NAME_VAR).is_none() {
        resource = resource.with_service_name("offerhub");
    }
    let builder = SdkTracerProvider::builder().with_resource(resource.build());
    if batch {
        builder.with_batch_exporter(exporter)
    } else {
        builder.with_simple_exporter(exporter)
    }
    .build()
}

/// The `tracing` layer that turns OfferHub's spans into spans of `provider`'s tracer.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let own = Targets::new()
        .with_target("offerhub", tracing::Level::INFO)
        .with_target("offerhub_daemon", tracing::Level::INFO)
        .with_target("offerhub_cli", tracing::Level::INFO);
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("offerhub"))
        .with_filter(own)
}

/// The OTLP exporter of the environment's traces URL, when one is set.
pub struct Tracing {
    provider: SdkTracerProvider,
    /// Where spans go.
    pub url: String,
}

impl Tracing {
    /// Builds the OTLP/HTTP (protobuf) exporter for `url`. Its requests run on
    /// `runtime` (the daemon's), with a 10 s timeout.
    pub fn otlp(url: &str, runtime: tokio::runtime::Handle) -> Result<Tracing, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("OTLP http client: {e}"))?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(OnRuntime { client, runtime })
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("OTLP exporter: {e}"))?;
        Ok(Tracing {
            provider: provider(exporter, true),
            url: url.to_string(),
        })
    }

    /// The layer to add to the subscriber.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        layer(&self.provider)
    }

    /// Exports the spans still buffered and stops the exporter. Call it outside the
    /// async runtime, while the runtime still runs (the export uses it).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            eprintln!("warning: exporting the last traces failed: {e}");
        }
    }
}

/// The OTLP exporter's HTTP client: the daemon's reqwest, its requests spawned on the
/// daemon's Tokio runtime (the batch exporter runs on a thread of its own).
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut req = self
            .client
            .request(parts.method, parts.uri.to_string())
            .body(body);
        for (name, value) in &parts.headers {
            req = req.header(name, value);
        }
        let answer = self
            .runtime
            .spawn(async move {
                let resp = req.send().await?;
                let status = resp.status();
                let headers = resp.headers().clone();
                let body = resp.bytes().await?;
                Ok::<_, reqwest::Error>((status, headers, body))
            })
            .await??;
        let (status, headers, body) = answer;
        let mut out = Response::builder().status(status).body(body)?;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_url() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(traces_url_from_env(env(&[])), Ok(None));
        assert_eq!(
            traces_url_from_env(env(&[(ENDPOINT_VAR, "http://collector:4318/")])),
            Ok(Some("http://collector:4318/v1/traces".into()))
        );
        assert_eq!(
            traces_url_from_env(env(&[
                (ENDPOINT_VAR, "http://collector:4318"),
                (TRACES_ENDPOINT_VAR, "https://x.example/otlp/traces")
            ])),
            Ok(Some("https://x.example/otlp/traces".into()))
        );
        assert!(
            traces_url_from_env(env(&[(ENDPOINT_VAR, "collector:4318")]))
                .unwrap_err()
                .starts_with(ENDPOINT_VAR)
        );
    }
}

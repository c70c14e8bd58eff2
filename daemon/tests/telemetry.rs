//! Traces (issue #21): a request's trace holds the spans of the provider calls it makes,
//! and its span carries the request id (on SQLite and PostgreSQL); the OTLP exporter
//! really sends spans to a collector over HTTP.

mod common;

use std::sync::{Arc, Mutex, OnceLock};

use common::app_with_sandbox;
use offerhub_daemon::telemetry;
use offerhub_testkit::both_backends;
use opentelemetry::Value as OtelValue;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The in-memory exporter behind this test binary's global subscriber.
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = telemetry::provider(exporter.clone(), false);
        tracing_subscriber::registry()
            .with(telemetry::layer(&provider))
            .init();
        // Keep the provider alive for the whole process.
        std::mem::forget(provider);
        exporter
    })
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| match &kv.value {
            OtelValue::String(s) => s.to_string(),
            other => other.to_string(),
        })
}

async fn request_trace_holds_provider_calls(url: String) {
    let exporter = exporter();
    let (t, _sandbox) = app_with_sandbox(&url, &[]).await;
    let (_, rw) = t.key(&["read", "write"]).await;
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(&rw),
            Some(&json!({ "externalUserId": "traced" }).to_string()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let user = r.body["data"]["id"].as_str().unwrap().to_string();
    let request_id = format!("req-trace-{user}");
    let r = t
        .call_with(
            "POST",
            &format!("/api/v1/users/{user}/balance/sync"),
            Some(&rw),
            None,
            &[("x-request-id", request_id.as_str())],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["x-request-id"], request_id.as_str());

    let spans = finished_spans(exporter, &request_id, None).await;
    let root = spans
        .iter()
        .find(|s| attr(s, "request_id").as_deref() == Some(request_id.as_str()))
        .unwrap_or_else(|| panic!("no span carries request id {request_id}"));
    assert_eq!(
        root.name, "POST /api/v1/users/{id}/balance/sync",
        "the request span is named by its route template"
    );
    assert_eq!(attr(root, "status").as_deref(), Some("200"));
    let trace = root.span_context.trace_id();
    let calls: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace && s.name == "provider.call")
        .collect();
    assert!(
        calls
            .iter()
            .any(|s| attr(s, "provider").as_deref() == Some("horizon")),
        "the request's trace has no Horizon call: {:?}",
        spans
            .iter()
            .filter(|s| s.span_context.trace_id() == trace)
            .map(|s| (&s.name, &s.attributes))
            .collect::<Vec<_>>()
    );
    for c in &calls {
        let op = attr(c, "operation").unwrap();
        assert!(!op.contains(&user), "bounded operation names: {op}");
        assert!(!op.contains('?'), "no query strings: {op}");
    }
}
both_backends!(request_trace_on, request_trace_holds_provider_calls);

async fn active_user(t: &common::TestApp, key: &str, ext: &str) -> (String, String) {
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(key),
            Some(&json!({ "externalUserId": ext }).to_string()),
        )
        .await;
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    for _ in 0..200 {
        let w = t
            .call(
                "GET",
                &format!("/api/v1/users/{id}/wallet"),
                Some(key),
                None,
            )
            .await;
        if w.body["data"]["status"] == "ACTIVE" {
            let address = w.body["data"]["publicKey"].as_str().unwrap().to_string();
            return (id, address);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("wallet of {ext} not ACTIVE");
}

/// An escrow deploy: the request's trace holds the saga step and, under it, the
/// Trustless Work and Horizon calls it makes.
async fn saga_steps_belong_to_the_request(url: String) {
    let exporter = exporter();
    let (t, sandbox) = app_with_sandbox(&url, &[]).await;
    let (_, key) = t.key(&["read", "write"]).await;
    let (buyer, address) = active_user(&t, &key, "trace-buyer").await;
    let (seller, _) = active_user(&t, &key, "trace-seller").await;
    reqwest::Client::new()
        .post(format!("{sandbox}/_sandbox/fund"))
        .json(&json!({ "address": address, "amount": "50", "asset": "USDC" }))
        .send()
        .await
        .unwrap();
    for _ in 0..200 {
        let b = t
            .call(
                "GET",
                &format!("/api/v1/users/{buyer}/balance"),
                Some(&key),
                None,
            )
            .await;
        if b.body["data"]["available"] == "50.00" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let order =
        json!({ "buyerId": buyer, "sellerId": seller, "amount": "10.00", "title": "Traced" });
    let r = t
        .call(
            "POST",
            "/api/v1/orders",
            Some(&key),
            Some(&order.to_string()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let order = r.body["data"]["id"].as_str().unwrap().to_string();
    let r = t
        .call(
            "POST",
            &format!("/api/v1/orders/{order}/reserve"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let request_id = format!("req-deploy-{order}");
    let r = t
        .call_with(
            "POST",
            &format!("/api/v1/orders/{order}/escrow"),
            Some(&key),
            None,
            &[("x-request-id", request_id.as_str())],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let spans = finished_spans(exporter, &request_id, Some("saga.step")).await;
    let root = spans
        .iter()
        .find(|s| attr(s, "request_id").as_deref() == Some(request_id.as_str()))
        .expect("the request span");
    assert_eq!(root.name, "POST /api/v1/orders/{id}/escrow");
    let trace = root.span_context.trace_id();
    let in_trace: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect();
    let step = in_trace
        .iter()
        .find(|s| s.name == "saga.step")
        .unwrap_or_else(|| panic!("no saga step in the request's trace: {in_trace:?}"));
    assert_eq!(attr(step, "operation").as_deref(), Some("ESCROW_DEPLOY"));
    let under_step: Vec<&&SpanData> = in_trace
        .iter()
        .filter(|s| s.name == "provider.call" && s.parent_span_id == step.span_context.span_id())
        .collect();
    for provider in ["trustless_work", "horizon"] {
        assert!(
            under_step
                .iter()
                .any(|s| attr(s, "provider").as_deref() == Some(provider)),
            "no {provider} call under the saga step: {:?}",
            under_step.iter().map(|s| &s.attributes).collect::<Vec<_>>()
        );
    }
}
both_backends!(saga_trace_on, saga_steps_belong_to_the_request);

/// What the collector received: path, content type, body.
type Received = (String, String, Vec<u8>);

/// The OTLP/HTTP exporter posts protobuf spans to `/v1/traces` of the collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_exporter_sends_to_a_collector() {
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let sink = received.clone();
    let collector = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let sink = sink.clone();
        async move {
            let path = req.uri().path().to_string();
            let ct = req
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            sink.lock().unwrap().push((path, ct, body.to_vec()));
            ""
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, collector).await;
    });
    let base = format!("http://{addr}");
    let url =
        telemetry::traces_url_from_env(|k| (k == telemetry::ENDPOINT_VAR).then(|| base.clone()))
            .unwrap()
            .unwrap();
    let tracing = telemetry::Tracing::otlp(&url, tokio::runtime::Handle::current()).unwrap();
    let subscriber = tracing_subscriber::registry().with(tracing.layer());
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(target: "offerhub::test", "exported.span", request_id = "req-otlp-1");
        let _entered = span.enter();
        tracing::info_span!(target: "offerhub::test", "provider.call", provider = "horizon")
            .in_scope(|| {});
    });
    tokio::task::spawn_blocking(move || tracing.shutdown())
        .await
        .unwrap();
    let got = received.lock().unwrap().clone();
    assert_eq!(
        got.len(),
        1,
        "one export: {:?}",
        got.iter().map(|g| &g.0).collect::<Vec<_>>()
    );
    let (path, ct, body) = &got[0];
    assert_eq!(path, "/v1/traces");
    assert_eq!(ct, "application/x-protobuf");
    let has = |needle: &str| body.windows(needle.len()).any(|w| w == needle.as_bytes());
    for needle in ["exported.span", "provider.call", "req-otlp-1", "offerhub"] {
        assert!(has(needle), "the export carries {needle}");
    }
}

/// The finished spans once the request's own span is among them (it ends just after its
/// response is written), or after 10 s.
async fn finished_spans(
    exporter: &opentelemetry_sdk::trace::InMemorySpanExporter,
    request_id: &str,
    also: Option<&str>,
) -> Vec<SpanData> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let spans = exporter.get_finished_spans().unwrap();
        let root = spans
            .iter()
            .find(|s| attr(s, "request_id").as_deref() == Some(request_id));
        // `also`: a span of the request's trace that may be exported a moment after
        // the request's own (seen on a loaded CI machine).
        let complete = root.is_some_and(|r| {
            also.is_none_or(|name| {
                spans.iter().any(|s| {
                    s.name == name && s.span_context.trace_id() == r.span_context.trace_id()
                })
            })
        });
        if complete || std::time::Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

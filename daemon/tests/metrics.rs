//! Prometheus metrics (issue #21), on SQLite and PostgreSQL: real requests, then
//! `/metrics` scraped and parsed with a Prometheus text-format parser. The recorder is
//! process-global and shared by every test of this binary (and both backends run at
//! once), so counters are compared before/after and never to exact values.

mod common;

use std::collections::BTreeMap;

use common::{MASTER, TestApp, app};
use offerhub_testkit::both_backends;
use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue};
use serde_json::json;

type Scrape = MetricsExposition<PrometheusType, PrometheusValue>;

/// One sample: its labels and value.
#[derive(Debug)]
struct Sample {
    labels: BTreeMap<String, String>,
    value: PrometheusValue,
}

fn parse(body: &str) -> Scrape {
    parse_prometheus(body).expect("Prometheus text format")
}

/// Scrapes `GET /api/v1/metrics` with `token`.
async fn scrape(t: &TestApp, token: &str) -> Scrape {
    let r = t.call("GET", "/api/v1/metrics", Some(token), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ct = r.headers["content-type"].to_str().unwrap();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    parse(r.body.as_str().expect("a text body"))
}

/// The samples of family `name` whose labels include every pair of `labels`.
fn find(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<Sample> {
    let Some(family) = s.families.get(name) else {
        return Vec::new();
    };
    family
        .iter_samples()
        .map(|x| {
            let set = x.get_labelset().expect("labels");
            Sample {
                labels: set.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                value: x.value.clone(),
            }
        })
        .filter(|x| {
            labels
                .iter()
                .all(|(k, v)| x.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The sum of the counter or gauge values of `name` with `labels` (0 when absent).
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    find(s, name, labels)
        .iter()
        .map(|x| match &x.value {
            PrometheusValue::Counter(c) => c.value.as_f64(),
            PrometheusValue::Gauge(v) | PrometheusValue::Unknown(v) => v.as_f64(),
            other => panic!("{name} is not a counter or gauge: {other:?}"),
        })
        .sum()
}

async fn metrics_after_real_operations(url: String) {
    let t = app(&url, &[]).await;
    let (_, rw) = t.key(&["read", "write"]).await;
    let (_, support) = t.key(&["support"]).await;
    let before = scrape(&t, &support).await;

    // A user created with an Idempotency-Key, replayed, then the key reused for
    // another body (conflict).
    let body = json!({ "externalUserId": format!("metrics-{}", url.len()) }).to_string();
    let headers = [("idempotency-key", "metrics-test-key")];
    let first = t
        .call_with("POST", "/api/v1/users", Some(&rw), Some(&body), &headers)
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let user = first.body["data"]["id"].as_str().unwrap().to_string();
    let again = t
        .call_with("POST", "/api/v1/users", Some(&rw), Some(&body), &headers)
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let other = json!({ "externalUserId": "someone-else" }).to_string();
    let conflict = t
        .call_with("POST", "/api/v1/users", Some(&rw), Some(&other), &headers)
        .await;
    assert_eq!(conflict.status, 409, "{}", conflict.body);
    // A ledger transaction: a support adjustment.
    let r = t
        .call(
            "POST",
            &format!("/api/v1/users/{user}/balance/adjustments"),
            Some(MASTER),
            Some(&json!({ "amount": "12.50", "reason": "metrics test" }).to_string()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = t
        .call("GET", &format!("/api/v1/users/{user}"), Some(&rw), None)
        .await;
    assert_eq!(r.status, 200);

    let after = scrape(&t, &support).await;
    let grew = |name: &str, labels: &[(&str, &str)]| {
        let (a, b) = (value(&before, name, labels), value(&after, name, labels));
        assert!(
            b > a,
            "{name}{labels:?} did not grow: {a} -> {b}; {:?}",
            find(&after, name, &[])
        );
    };
    // HTTP requests by route template (never the concrete path), method and status.
    grew(
        "offerhub_http_requests_total",
        &[
            ("route", "/api/v1/users"),
            ("method", "POST"),
            ("status", "201"),
        ],
    );
    grew(
        "offerhub_http_requests_total",
        &[
            ("route", "/api/v1/users/{id}"),
            ("method", "GET"),
            ("status", "200"),
        ],
    );
    assert!(
        find(&after, "offerhub_http_requests_total", &[])
            .iter()
            .filter_map(|s| s.labels.get("route"))
            .all(|r| !r.contains("usr_")),
        "a concrete path leaked into a route label"
    );
    let latency = find(
        &after,
        "offerhub_http_request_duration_seconds",
        &[("route", "/api/v1/users"), ("method", "POST")],
    );
    assert!(
        latency.iter().any(|s| match &s.value {
            PrometheusValue::Histogram(h) =>
                h.buckets.len() > 5
                    && h.buckets.last().is_some_and(|b| b.count.as_f64() >= 1.0)
                    && h.count.is_some_and(|c| c >= 1),
            _ => false,
        }),
        "latency histogram of POST /api/v1/users: {latency:?}"
    );
    grew(
        "offerhub_ledger_transactions_total",
        &[("kind", "adjustment")],
    );
    grew(
        "offerhub_idempotency_requests_total",
        &[("outcome", "replayed")],
    );
    grew(
        "offerhub_idempotency_requests_total",
        &[("outcome", "conflict")],
    );
    // Database gauges, read at scrape time.
    assert_eq!(value(&after, "offerhub_sagas_needs_attention", &[]), 0.0);
    assert!(
        !find(
            &after,
            "offerhub_webhook_endpoints",
            &[("state", "disabled")]
        )
        .is_empty()
    );
    assert!(!find(&after, "offerhub_webhook_deliveries_pending", &[]).is_empty());
    assert_eq!(
        value(
            &after,
            "offerhub_build_info",
            &[("version", offerhub::VERSION)]
        ),
        1.0
    );
    // Help text comes from the catalog.
    assert!(
        after
            .families
            .get("offerhub_ledger_transactions_total")
            .is_some_and(|f| f.help.contains("journal")),
        "{:?}",
        after.families.keys().collect::<Vec<_>>()
    );

    // Never public on the API port; only the support scope reads it.
    let r = t.call("GET", "/api/v1/metrics", None, None).await;
    assert_eq!(r.status, 401);
    let r = t.call("GET", "/api/v1/metrics", Some(&rw), None).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"]["code"], "INSUFFICIENT_SCOPE");
    let r = t.call("GET", "/metrics", Some(&support), None).await;
    assert_eq!(r.status, 404, "no /metrics outside /api/v1 on the API port");

    // The separate listener (OFFERHUB_METRICS_ADDR): plain /metrics, nothing else.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = offerhub_daemon::metrics::spawn_listener(listener, t.store.clone());
    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let plain = parse(&resp.text().await.unwrap());
    assert!(
        value(
            &plain,
            "offerhub_ledger_transactions_total",
            &[("kind", "adjustment")]
        ) >= 1.0
    );
    let resp = reqwest::get(format!("http://{addr}/api/v1/users"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    task.abort();
}
both_backends!(metrics_on, metrics_after_real_operations);

/// A request refused by the per-key rate limit is counted.
async fn rate_limit_refusals(url: String) {
    let t = app(&url, &[("OFFERHUB_RATE_LIMIT_PER_MINUTE", "1")]).await;
    let before = value(
        &parse(&offerhub_daemon::metrics::install().unwrap().render()),
        "offerhub_rate_limited_total",
        &[],
    );
    let mut refused = 0;
    for _ in 0..3 {
        let r = t.call("GET", "/api/v1/auth/me", Some(MASTER), None).await;
        if r.status == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 2);
    let after = value(
        &parse(&offerhub_daemon::metrics::install().unwrap().render()),
        "offerhub_rate_limited_total",
        &[],
    );
    assert!(after >= before + 2.0, "{before} -> {after}");
}
both_backends!(rate_limit_on, rate_limit_refusals);

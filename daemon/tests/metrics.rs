//! Prometheus metrics (issue #21), on SQLite and PostgreSQL: real requests, then
//! `/metrics` scraped and parsed with a Prometheus text-format parser. The recorder is
//! process-global and shared by every test of this binary (and both backends run at
//! once), so counters are compared before/after and never to exact values.

mod common;

use std::collections::BTreeMap;

use common::{MASTER, TestApp, app, app_with_sandbox, app_with_workers};
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

fn render() -> Scrape {
    parse(&offerhub_daemon::metrics::install().unwrap().render())
}

fn histogram_count(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> u64 {
    find(s, name, labels)
        .iter()
        .map(|x| match &x.value {
            PrometheusValue::Histogram(h) => h.count.unwrap_or(0),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

/// Crypto mode against the sandbox: a USDC deposit is credited by the deposit monitor
/// (lag histogram, credited counter, ledger `deposit`), and Horizon calls are counted by
/// bounded operation; the Trustless Work budget is exported.
async fn deposit_and_provider_metrics(url: String) {
    let (t, sandbox) = app_with_sandbox(&url, &[]).await;
    let (_, key) = t.key(&["read", "write"]).await;
    let before = render();
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(&key),
            Some(&json!({ "externalUserId": "metrics-crypto" }).to_string()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let user = r.body["data"]["id"].as_str().unwrap().to_string();
    let mut address = None;
    for _ in 0..200 {
        let w = t
            .call(
                "GET",
                &format!("/api/v1/users/{user}/wallet"),
                Some(&key),
                None,
            )
            .await;
        if w.body["data"]["status"] == "ACTIVE" {
            address = w.body["data"]["publicKey"].as_str().map(str::to_string);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let address = address.expect("the wallet became ACTIVE");
    let r = reqwest::Client::new()
        .post(format!("{sandbox}/_sandbox/fund"))
        .json(&json!({ "address": address, "amount": "25", "asset": "USDC" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut credited = false;
    for _ in 0..200 {
        let b = t
            .call(
                "GET",
                &format!("/api/v1/users/{user}/balance"),
                Some(&key),
                None,
            )
            .await;
        if b.body["data"]["available"] == "25.00" {
            credited = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(credited, "the deposit monitor credited the deposit");
    let after = render();
    assert!(
        value(&after, "offerhub_deposits_credited_total", &[])
            > value(&before, "offerhub_deposits_credited_total", &[])
    );
    assert!(
        histogram_count(&after, "offerhub_deposit_credit_lag_seconds", &[])
            > histogram_count(&before, "offerhub_deposit_credit_lag_seconds", &[])
    );
    assert!(!find(&after, "offerhub_deposit_monitor_lag_seconds", &[]).is_empty());
    assert!(
        value(
            &after,
            "offerhub_ledger_transactions_total",
            &[("kind", "deposit")]
        ) > value(
            &before,
            "offerhub_ledger_transactions_total",
            &[("kind", "deposit")]
        )
    );
    let horizon = find(
        &after,
        "offerhub_provider_requests_total",
        &[("provider", "horizon")],
    );
    assert!(!horizon.is_empty(), "Horizon calls are counted");
    for s in &horizon {
        let op = &s.labels["operation"];
        assert!(
            !op.contains(&address) && !op.contains('?'),
            "bounded operation label: {op}"
        );
    }
    assert!(
        value(
            &after,
            "offerhub_provider_requests_total",
            &[
                ("provider", "horizon"),
                ("operation", "GET /accounts/{id}"),
                ("outcome", "ok")
            ]
        ) >= 1.0,
        "{horizon:?}"
    );
    assert!(
        histogram_count(
            &after,
            "offerhub_provider_request_duration_seconds",
            &[("provider", "horizon")]
        ) >= 1
    );
    assert_eq!(
        value(&after, "offerhub_trustless_budget_per_minute", &[]),
        45.0
    );

    // An escrow deploy: a saga of one step, with Trustless Work calls.
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(&key),
            Some(&json!({ "externalUserId": "metrics-seller" }).to_string()),
        )
        .await;
    let seller = r.body["data"]["id"].as_str().unwrap().to_string();
    for _ in 0..200 {
        let w = t
            .call(
                "GET",
                &format!("/api/v1/users/{seller}/wallet"),
                Some(&key),
                None,
            )
            .await;
        if w.body["data"]["status"] == "ACTIVE" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let order =
        json!({ "buyerId": user, "sellerId": seller, "amount": "10.00", "title": "Metrics" });
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
    let r = t
        .call(
            "POST",
            &format!("/api/v1/orders/{order}/escrow"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Reconciliation records its findings by check.
    let sc = t.stellar.as_ref().unwrap();
    let report = offerhub::services::reconcile::wallets(&t.store, sc, 2, &|_, _| {})
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    let deployed = render();
    let grew = |name: &str, labels: &[(&str, &str)]| {
        let (a, b) = (value(&after, name, labels), value(&deployed, name, labels));
        assert!(b > a, "{name}{labels:?} did not grow: {a} -> {b}");
    };
    grew(
        "offerhub_sagas_total",
        &[("operation", "ESCROW_DEPLOY"), ("status", "RUNNING")],
    );
    grew(
        "offerhub_sagas_total",
        &[("operation", "ESCROW_DEPLOY"), ("status", "COMPLETED")],
    );
    assert!(
        histogram_count(
            &deployed,
            "offerhub_saga_step_duration_seconds",
            &[("operation", "ESCROW_DEPLOY"), ("outcome", "ok")]
        ) > histogram_count(
            &after,
            "offerhub_saga_step_duration_seconds",
            &[("operation", "ESCROW_DEPLOY"), ("outcome", "ok")]
        )
    );
    grew(
        "offerhub_provider_requests_total",
        &[("provider", "trustless_work"), ("outcome", "ok")],
    );
    grew("offerhub_ledger_transactions_total", &[("kind", "hold")]);
    grew("offerhub_reconcile_runs_total", &[("check", "wallets")]);
    assert!(
        !find(
            &deployed,
            "offerhub_reconcile_discrepancies",
            &[("check", "wallets")]
        )
        .is_empty()
    );
    assert!(
        !find(
            &deployed,
            "offerhub_provider_pacing_wait_seconds",
            &[("provider", "trustless_work")]
        )
        .is_empty()
    );
}
both_backends!(deposits_on, deposit_and_provider_metrics);

/// Webhook deliveries by outcome: a healthy endpoint (`succeeded`), a failing one
/// (`retrying`) that is then disabled (`offerhub_webhook_endpoints_disabled_total`).
async fn webhook_metrics(url: String) {
    let t = app_with_workers(
        &url,
        &[
            ("OFFERHUB_WEBHOOK_BACKOFF_BASE_MS", "20"),
            ("OFFERHUB_WEBHOOK_DISABLE_AFTER_HOURS", "1"),
        ],
    )
    .await;
    let (_, key) = t.key(&["read", "write"]).await;
    let receiver = axum::Router::new()
        .route(
            "/ok",
            axum::routing::post(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .route(
            "/down",
            axum::routing::post(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });
    let before = render();
    let mut failing = String::new();
    for path in ["ok", "down"] {
        let r = t
            .call(
                "POST",
                "/api/v1/webhooks/endpoints",
                Some(&key),
                Some(&json!({ "url": format!("{base}/{path}") }).to_string()),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        failing = r.body["data"]["id"].as_str().unwrap().to_string();
    }
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(&key),
            Some(&json!({ "externalUserId": "hooked" }).to_string()),
        )
        .await;
    assert_eq!(r.status, 201);
    let counted = |s: &Scrape, outcome: &str| {
        value(
            s,
            "offerhub_webhook_deliveries_total",
            &[("outcome", outcome)],
        )
    };
    let disabled = |s: &Scrape| value(s, "offerhub_webhook_endpoints_disabled_total", &[]);
    for _ in 0..200 {
        // Failing since long ago: the next failure disables it.
        sqlx::query("UPDATE webhook_endpoints SET failing_since = '2000-01-01T00:00:00.000Z' WHERE id = $1 AND failing_since IS NOT NULL")
            .bind(&failing)
            .execute(t.store.reader())
            .await
            .unwrap();
        let now = render();
        if counted(&now, "succeeded") > counted(&before, "succeeded")
            && counted(&now, "retrying") > counted(&before, "retrying")
            && disabled(&now) > disabled(&before)
        {
            let h = find(&now, "offerhub_webhook_delivery_duration_seconds", &[]);
            assert!(!h.is_empty());
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let now = render();
    panic!(
        "webhook metrics: {:?} {:?}",
        find(&now, "offerhub_webhook_deliveries_total", &[]),
        find(&now, "offerhub_webhook_endpoints_disabled_total", &[])
    );
}
both_backends!(webhooks_on, webhook_metrics);

/// `serve_on` with `OFFERHUB_METRICS_ADDR`: the daemon opens the second listener, which
/// answers plain `/metrics` (no key) while the API port keeps refusing it without one.
async fn metrics_listener_of_the_daemon(url: String) {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_addr = free.local_addr().unwrap();
    drop(free);
    let mut map = BTreeMap::new();
    map.insert("DATABASE_URL".to_string(), url.clone());
    map.insert("OFFERHUB_MASTER_KEY".to_string(), MASTER.to_string());
    map.insert("WALLET_ENCRYPTION_KEY".to_string(), "ab".repeat(32));
    map.insert(
        "OFFERHUB_METRICS_ADDR".to_string(),
        metrics_addr.to_string(),
    );
    let config = offerhub::config::Config::from_map(&map, std::path::Path::new("/tmp")).unwrap();
    assert_eq!(config.metrics_addr, Some(metrics_addr));
    let store = offerhub::store::Store::connect(&offerhub::config::DatabaseUrl::new(&url))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = api.local_addr().unwrap();
    let daemon = tokio::spawn(offerhub_daemon::serve_on(api, store, config));
    let mut body = None;
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("http://{metrics_addr}/metrics")).await {
            assert_eq!(r.status(), 200);
            body = Some(r.text().await.unwrap());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let scraped = parse(&body.expect("the metrics listener answers"));
    assert_eq!(
        value(
            &scraped,
            "offerhub_build_info",
            &[("version", offerhub::VERSION)]
        ),
        1.0
    );
    let r = reqwest::get(format!("http://{api_addr}/api/v1/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    daemon.abort();
}
both_backends!(listener_on, metrics_listener_of_the_daemon);

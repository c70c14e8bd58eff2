//! Test harness: the real router over a fresh database, driven in-process with
//! `tower::ServiceExt::oneshot` (same handlers, middleware and store as `serve`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use offerhub::config::{Config, DatabaseUrl};
use offerhub::store::Store;
use offerhub_daemon::{AppState, router};
use serde_json::Value;
use tower::ServiceExt;

pub const MASTER: &str = "ohk_master_test_0123456789abcdef0123456789abcdef";

#[derive(Clone)]
pub struct TestApp {
    pub app: Router,
    pub store: Store,
    /// Crypto mode: the Stellar context the daemon uses (for reconciliation checks).
    pub stellar: Option<std::sync::Arc<offerhub::services::wallets::StellarContext>>,
    /// Escrow orchestration, when configured.
    pub escrow: Option<std::sync::Arc<offerhub::services::escrow::EscrowContext>>,
    /// Airtm mode, when configured.
    pub airtm: Option<std::sync::Arc<offerhub::services::airtm::AirtmContext>>,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

pub async fn app(url: &str, extra: &[(&str, &str)]) -> TestApp {
    build(url, extra, false).await
}

/// Like [`app`], with the background workers (webhooks) running.
pub async fn app_with_workers(url: &str, extra: &[(&str, &str)]) -> TestApp {
    build(url, extra, true).await
}

/// Like [`app_with_workers`], in crypto mode against an embedded sandbox network.
/// Returns the app and the sandbox's base URL.
pub async fn app_with_sandbox(url: &str, extra: &[(&str, &str)]) -> (TestApp, String) {
    let sb = offerhub_sandbox::Sandbox::new(offerhub_sandbox::SandboxOptions::default()).unwrap();
    let addr = offerhub_sandbox::start(sb, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{addr}");
    let key = "ab".repeat(32);
    let mut all: Vec<(&str, &str)> = vec![
        ("STELLAR_HORIZON_URL", base.as_str()),
        ("WALLET_ENCRYPTION_KEY", key.as_str()),
    ];
    all.extend_from_slice(extra);
    (build(url, &all, true).await, base)
}

/// Another daemon (workers running) in crypto mode on the sandbox network at `base`,
/// sharing its database with the daemons already there (PostgreSQL: several daemons).
pub async fn app_on_sandbox(url: &str, base: &str, extra: &[(&str, &str)]) -> TestApp {
    let key = "ab".repeat(32);
    let mut all: Vec<(&str, &str)> = vec![
        ("STELLAR_HORIZON_URL", base),
        ("WALLET_ENCRYPTION_KEY", key.as_str()),
    ];
    all.extend_from_slice(extra);
    build(url, &all, true).await
}

/// The daemon's state over the database at `url` (migrated), as `serve` builds it, with
/// no worker started.
pub async fn state(url: &str, extra: &[(&str, &str)]) -> AppState {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    map.insert("DATABASE_URL".into(), url.into());
    map.insert("OFFERHUB_MASTER_KEY".into(), MASTER.into());
    // Webhook secrets are sealed with the wallet key; test receivers listen on loopback.
    map.insert("WALLET_ENCRYPTION_KEY".into(), "ab".repeat(32));
    map.insert(
        "OFFERHUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS".into(),
        "true".into(),
    );
    for (k, v) in extra {
        map.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_map(&map, Path::new("/tmp")).expect("config");
    let store = Store::connect(&DatabaseUrl::new(url))
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    let stellar = offerhub_daemon::wallets::context(&config)
        .await
        .expect("stellar context");
    let mut state = AppState::new(store.clone(), config);
    if let Some(sc) = stellar {
        state = state.with_stellar(sc);
    }
    state
}

async fn build(url: &str, extra: &[(&str, &str)], workers: bool) -> TestApp {
    let state = state(url, extra).await;
    if workers {
        offerhub_daemon::workers::start(&state);
    }
    TestApp {
        stellar: state.stellar.clone(),
        escrow: state.escrow.clone(),
        airtm: state.airtm.clone(),
        store: state.store.clone(),
        app: router(state),
    }
}

impl TestApp {
    /// Serves the app on a loopback port (for callers that need real HTTP, such as the
    /// sandbox's webhook sender); returns its base URL.
    pub async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = self.app.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Resp {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(
                body.map(|b| Body::from(b.to_string()))
                    .unwrap_or_else(Body::empty),
            )
            .unwrap();
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Creates an API key through the API with the master key; returns (id, token).
    pub async fn key(&self, scopes: &[&str]) -> (String, String) {
        let body = serde_json::json!({ "name": "test", "scopes": scopes }).to_string();
        let r = self
            .call("POST", "/api/v1/auth/api-keys", Some(MASTER), Some(&body))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        (
            r.body["data"]["id"].as_str().unwrap().to_string(),
            r.body["data"]["key"].as_str().unwrap().to_string(),
        )
    }
}

/// Asserts the error envelope: status, code, statusCode.
pub fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.body);
    assert_eq!(r.body["error"]["code"], code, "body: {}", r.body);
    assert_eq!(r.body["error"]["statusCode"], status);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

/// A Server-Sent Events reader over a streaming response body.
pub struct SseClient {
    body: axum::body::Body,
    buf: String,
}

/// One SSE message: `id`, `event`, parsed `data`.
#[derive(Debug, Clone)]
pub struct SseMessage {
    pub id: String,
    pub event: String,
    pub data: Value,
}

impl TestApp {
    /// Opens `GET path` as an SSE stream (panics unless 200 text/event-stream).
    pub async fn sse(&self, path: &str, token: &str, last_event_id: Option<&str>) -> SseClient {
        let mut req = Request::builder()
            .method("GET")
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        SseClient {
            body: resp.into_body(),
            buf: String::new(),
        }
    }
}

impl SseClient {
    /// The next message (heartbeat comments skipped), or `None` after `wait`.
    pub async fn next(&mut self, wait: std::time::Duration) -> Option<SseMessage> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().into();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().into();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if event.is_empty() && data.is_empty() {
                    continue; // comment (heartbeat)
                }
                return Some(SseMessage {
                    id,
                    event,
                    data: serde_json::from_str(&data).unwrap_or(Value::Null),
                });
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??
                .ok()?;
            if let Ok(bytes) = frame.into_data() {
                self.buf.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }

    /// Collects messages until `n` arrived (panics after 10 s).
    pub async fn take(&mut self, n: usize) -> Vec<SseMessage> {
        let mut out = Vec::new();
        while out.len() < n {
            let m = self
                .next(std::time::Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("only {} of {n} SSE messages arrived", out.len()));
            out.push(m);
        }
        out
    }
}

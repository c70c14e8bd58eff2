//! Security hardening (issue #16), on SQLite and PostgreSQL: the auth matrix over every
//! documented route, scope rules, SSRF refusals (registration and delivery), strict
//! input (Content-Type, envelopes from the HTTP stack, event patterns), amount bounds,
//! features a mode lacks, and secrets at rest.

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{MASTER, TestApp, app, app_with_workers, assert_error};
use http_body_util::BodyExt;
use offerhub_testkit::both_backends;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Sends a request and reads the body unless it is an event stream (SSE never ends).
async fn send(
    t: &TestApp,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<(&str, &[u8])>,
) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let req = match body {
        Some((ct, b)) => req.header("content-type", ct).body(Body::from(b.to_vec())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = t.app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if ct.starts_with("text/event-stream") {
        return (status, Value::Null);
    }
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, v)
}

/// `(method, path, scope)` of every operation in the OpenAPI document; scope is `read`,
/// `write`, `support`, `any` or `public`.
async fn documented_operations(t: &TestApp) -> Vec<(String, String, String)> {
    let (status, doc) = send(t, "GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "patch", "put", "delete"].contains(&method.as_str()) {
                continue;
            }
            let security = op["security"].as_array().cloned().unwrap_or_default();
            let scope = security
                .iter()
                .find_map(|s| s["bearer"].as_array().and_then(|a| a.first()).cloned())
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "public".to_string());
            out.push((method.to_uppercase(), path.clone(), scope));
        }
    }
    assert!(
        out.len() > 50,
        "the document lists the routes: {}",
        out.len()
    );
    out
}

/// The concrete path: every `{param}` replaced by an id that does not exist.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map(|e| start + e + 1)
            .unwrap_or(rest.len());
        out.push_str("x_missing");
        rest = &rest[end..];
    }
    out.push_str(rest);
    format!("/api/v1{out}")
}

/// Every documented route × {none, malformed, revoked, read, write, support}: public
/// routes never answer 401/403; protected ones answer 401 without a valid key, 403
/// `INSUFFICIENT_SCOPE` to a key without the documented scope and neither to a key with
/// it. A route whose behaviour differs from its documented scope fails the test.
async fn auth_matrix_over_the_document(url: String) {
    let t = app(&url, &[("OFFERHUB_RATE_LIMIT_PER_MINUTE", "100000")]).await;
    let (revoked_id, revoked) = t.key(&["read", "write", "support"]).await;
    let r = t
        .call(
            "DELETE",
            &format!("/api/v1/auth/api-keys/{revoked_id}"),
            Some(MASTER),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let mut keys = Vec::new();
    for scope in ["read", "write", "support"] {
        keys.push((scope, t.key(&[scope]).await.1));
    }
    let ops = documented_operations(&t).await;
    let mut checked = 0;
    for (method, path, scope) in &ops {
        let uri = concrete(path);
        let body: Option<(&str, &[u8])> = if method == "GET" || method == "DELETE" {
            None
        } else {
            Some(("application/json", b"{}"))
        };
        let who = |label: &str| format!("{method} {path} ({label}, documented {scope})");
        let unauth = [
            ("no key", None),
            ("malformed", Some("Basic abc".to_string())),
            ("revoked", Some(format!("Bearer {revoked}"))),
        ];
        for (label, header) in unauth {
            let (status, body_json) = send(&t, method, &uri, header.as_deref(), body).await;
            if scope == "public" {
                assert!(
                    status != 401 && status != 403,
                    "{}: {status} {body_json}",
                    who(label)
                );
            } else {
                assert_eq!(status, 401, "{}: {body_json}", who(label));
                assert_eq!(body_json["error"]["code"], "UNAUTHORIZED", "{}", who(label));
            }
            checked += 1;
        }
        for (granted, token) in &keys {
            let (status, body_json) =
                send(&t, method, &uri, Some(&format!("Bearer {token}")), body).await;
            let allowed = scope == "public" || scope == "any" || scope == granted;
            if allowed {
                assert!(
                    status != 401 && status != 403,
                    "{}: {status} {body_json}",
                    who(granted)
                );
            } else {
                assert_eq!(status, 403, "{}: {body_json}", who(granted));
                assert_eq!(
                    body_json["error"]["code"],
                    "INSUFFICIENT_SCOPE",
                    "{}",
                    who(granted)
                );
            }
            assert!(status < 500, "{}: {status} {body_json}", who(granted));
            checked += 1;
        }
    }
    assert!(checked >= ops.len() * 6);
}
both_backends!(auth_matrix_on, auth_matrix_over_the_document);

/// SSE needs `read`; a key mints only keys within its own scopes.
async fn scope_rules(url: String) {
    let t = app(&url, &[]).await;
    let (_, write) = t.key(&["write"]).await;
    let (_, support) = t.key(&["support"]).await;
    let (_, read) = t.key(&["read"]).await;
    for token in [&write, &support] {
        let (status, body) = send(
            &t,
            "GET",
            "/api/v1/events",
            Some(&format!("Bearer {token}")),
            None,
        )
        .await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["error"]["details"]["required"], "read");
    }
    let (status, _) = send(
        &t,
        "GET",
        "/api/v1/events",
        Some(&format!("Bearer {read}")),
        None,
    )
    .await;
    assert_eq!(status, 200);

    // support alone cannot mint read/write; it can mint support.
    let before = t
        .call("GET", "/api/v1/auth/api-keys?limit=100", Some(MASTER), None)
        .await;
    let n = before.body["data"].as_array().unwrap().len();
    let r = t
        .call(
            "POST",
            "/api/v1/auth/api-keys",
            Some(&support),
            Some(r#"{"name":"escalate","scopes":["read","write","support"]}"#),
        )
        .await;
    assert_error(&r, 403, "INSUFFICIENT_SCOPE");
    assert_eq!(r.body["error"]["details"]["field"], "scopes");
    assert_eq!(
        r.body["error"]["details"]["required"],
        json!(["read", "write"])
    );
    let after = t
        .call("GET", "/api/v1/auth/api-keys?limit=100", Some(MASTER), None)
        .await;
    assert_eq!(
        after.body["data"].as_array().unwrap().len(),
        n,
        "nothing minted"
    );
    let r = t
        .call(
            "POST",
            "/api/v1/auth/api-keys",
            Some(&support),
            Some(r#"{"name":"peer","scopes":["support"]}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The master key mints anything.
    let r = t
        .call(
            "POST",
            "/api/v1/auth/api-keys",
            Some(MASTER),
            Some(r#"{"name":"all","scopes":["read","write","support"]}"#),
        )
        .await;
    assert_eq!(r.status, 201);
}
both_backends!(scope_rules_on, scope_rules);

/// Registration refuses every spelling of an internal address, names the field and the
/// setting, and stores nothing; event patterns must match the catalog.
async fn webhook_registration_refusals(url: String) {
    let t = app(
        &url,
        &[("OFFERHUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "false")],
    )
    .await;
    for target in [
        "http://127.0.0.1:4000/api/v1/users",
        "http://localhost:4000/",
        "http://0.0.0.0/",
        "http://127.1/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.8/",
        "http://192.168.1.20/",
        "http://100.64.1.1/",
        "http://[fd00::5]/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
    ] {
        let body = json!({ "url": target }).to_string();
        let r = t
            .call(
                "POST",
                "/api/v1/webhooks/endpoints",
                Some(MASTER),
                Some(&body),
            )
            .await;
        assert_error(&r, 400, "VALIDATION_ERROR");
        assert_eq!(r.body["error"]["details"]["field"], "url", "{target}");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("OFFERHUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS"),
            "{target}: {}",
            r.body
        );
    }
    for events in [
        json!(["no.such.event"]),
        json!(["nothing.*"]),
        json!(["order"]),
    ] {
        let body = json!({ "url": "https://93.184.216.34/hook", "events": events }).to_string();
        let r = t
            .call(
                "POST",
                "/api/v1/webhooks/endpoints",
                Some(MASTER),
                Some(&body),
            )
            .await;
        assert_error(&r, 400, "VALIDATION_ERROR");
        assert_eq!(r.body["error"]["details"]["field"], "events");
    }
    let r = t
        .call("GET", "/api/v1/webhooks/endpoints", Some(MASTER), None)
        .await;
    assert_eq!(r.body["data"], json!([]), "nothing was stored");
    // A public address and catalogued patterns are accepted.
    let body =
        json!({ "url": "https://93.184.216.34/hook", "events": ["order.*", "user.created", "*"] })
            .to_string();
    let r = t
        .call(
            "POST",
            "/api/v1/webhooks/endpoints",
            Some(MASTER),
            Some(&body),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The secret is sealed at rest: the row does not hold it.
    let secret = r.body["data"]["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let stored: String = sqlx::query_scalar("SELECT secret FROM webhook_endpoints")
        .fetch_one(t.store.reader())
        .await
        .unwrap();
    assert!(
        !stored.contains(&secret) && stored.starts_with("v1."),
        "{stored}"
    );
}
both_backends!(webhook_registration_on, webhook_registration_refusals);

/// An endpoint whose address is (or became) internal is never dialled: the delivery
/// records "refused", the listener receives nothing.
async fn webhook_delivery_refusals(url: String) {
    // A listener on loopback, counting connections.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = listener.accept().await {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let t = app_with_workers(
        &url,
        &[
            ("OFFERHUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "false"),
            ("OFFERHUB_WEBHOOK_BACKOFF_BASE_MS", "100000"),
        ],
    )
    .await;
    // Registered while allowed (or public at the time): the rows exist.
    let vault =
        offerhub::vault::Vault::new(&offerhub::config::Secret::new("ab".repeat(32)), &[]).unwrap();
    let policy = offerhub::services::webhooks::EndpointPolicy {
        vault: &vault,
        allow_private_networks: true,
    };
    let ctx = offerhub::context::Context::operator();
    for target in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://localhost:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
    ] {
        offerhub::services::webhooks::create_endpoint(
            &t.store,
            &ctx,
            policy,
            &target,
            &["user.created".to_string()],
        )
        .await
        .unwrap();
    }
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(MASTER),
            Some(r#"{"externalUserId":"ssrf-1"}"#),
        )
        .await;
    assert_eq!(r.status, 201);
    let mut deliveries = Vec::new();
    for _ in 0..100 {
        let r = t
            .call("GET", "/api/v1/webhooks/deliveries", Some(MASTER), None)
            .await;
        deliveries = r.body["data"].as_array().cloned().unwrap_or_default();
        if deliveries.len() == 3 && deliveries.iter().all(|d| d["attempts"] == 1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(deliveries.len(), 3, "{deliveries:?}");
    for d in &deliveries {
        assert_eq!(d["attempts"], 1, "{d}");
        assert_eq!(d["status"], "PENDING");
        assert_eq!(d["lastStatus"], Value::Null);
        assert_eq!(
            d["lastError"],
            offerhub::outbound::REFUSED,
            "the record says refused, nothing about reachability: {d}"
        );
    }
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no connection reached the internal listener"
    );
}
both_backends!(webhook_delivery_on, webhook_delivery_refusals);

/// Bodies must be JSON; errors of the HTTP stack carry the envelope.
async fn strict_input(url: String) {
    let t = app(&url, &[]).await;
    let users_before = t.call("GET", "/api/v1/users", Some(MASTER), None).await;
    for (ct, body) in [
        ("text/plain", &br#"{"externalUserId":"plain"}"#[..]),
        ("application/x-www-form-urlencoded", b"externalUserId=form"),
        (
            "multipart/form-data; boundary=X",
            b"--X\r\nContent-Disposition: form-data; name=\"externalUserId\"\r\n\r\nmp\r\n--X--\r\n",
        ),
    ] {
        let (status, b) = send(
            &t,
            "POST",
            "/api/v1/users",
            Some(&format!("Bearer {MASTER}")),
            Some((ct, body)),
        )
        .await;
        assert_eq!(status, 415, "{ct}: {b}");
        assert_eq!(b["error"]["code"], "UNSUPPORTED_MEDIA_TYPE");
        assert_eq!(b["error"]["statusCode"], 415);
    }
    // Without any Content-Type too.
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/users")
        .header("authorization", format!("Bearer {MASTER}"))
        .body(Body::from(r#"{"externalUserId":"none"}"#))
        .unwrap();
    let resp = t.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 415);
    // charset parameter is fine.
    let (status, _) = send(
        &t,
        "POST",
        "/api/v1/users",
        Some(&format!("Bearer {MASTER}")),
        Some((
            "application/json; charset=utf-8",
            br#"{"externalUserId":"json-ok"}"#,
        )),
    )
    .await;
    assert_eq!(status, 201);
    let users_after = t.call("GET", "/api/v1/users", Some(MASTER), None).await;
    assert_eq!(
        users_after.body["data"].as_array().unwrap().len(),
        users_before.body["data"].as_array().unwrap().len() + 1,
        "only the JSON request created a user"
    );
    // 10 MB to the Airtm webhook intake (raw body): 413 with the envelope.
    let big = vec![b'a'; 10 * 1024 * 1024];
    let (status, b) = send(
        &t,
        "POST",
        "/api/v1/webhooks/airtm",
        None,
        Some(("application/json", &big)),
    )
    .await;
    assert_eq!(status, 413, "{b}");
    assert_eq!(b["error"]["code"], "PAYLOAD_TOO_LARGE");
    let (status, b) = send(
        &t,
        "DELETE",
        "/api/v1/users",
        Some(&format!("Bearer {MASTER}")),
        None,
    )
    .await;
    assert_eq!(status, 405);
    assert_eq!(b["error"]["code"], "METHOD_NOT_ALLOWED");
    let (status, b) = send(&t, "GET", "/nothing/here", None, None).await;
    assert_eq!(status, 404);
    assert_eq!(b["error"]["code"], "NOT_FOUND");
}
both_backends!(strict_input_on, strict_input);

async fn balance(t: &TestApp, user: &str) -> Value {
    t.call(
        "GET",
        &format!("/api/v1/users/{user}/balance"),
        Some(MASTER),
        None,
    )
    .await
    .body["data"]
        .clone()
}

/// Amounts and balances stay within `Amount::MAX`; a configurable adjustment ceiling;
/// refusals change nothing and are 422, never 5xx.
async fn amount_bounds(url: String) {
    let t = app(&url, &[("OFFERHUB_MAX_ADJUSTMENT", "100000000000")]).await;
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(MASTER),
            Some(r#"{"externalUserId":"rich"}"#),
        )
        .await;
    let user = r.body["data"]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/users/{user}/balance/adjustments");
    // The issue's attack: 900000000000 twice (each beyond Amount::MAX).
    for _ in 0..2 {
        let r = t
            .call(
                "POST",
                &path,
                Some(MASTER),
                Some(r#"{"amount":"900000000000","reason":"x"}"#),
            )
            .await;
        assert_error(&r, 422, "AMOUNT_OUT_OF_RANGE");
        assert_eq!(r.body["error"]["details"]["field"], "amount");
    }
    // Within Amount::MAX once, but not twice.
    let r = t
        .call(
            "POST",
            &path,
            Some(MASTER),
            Some(r#"{"amount":"99999999999","reason":"x"}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = t
        .call(
            "POST",
            &path,
            Some(MASTER),
            Some(r#"{"amount":"99999999999","reason":"x"}"#),
        )
        .await;
    assert_error(&r, 422, "AMOUNT_OUT_OF_RANGE");
    assert_eq!(balance(&t, &user).await["available"], "99999999999.00");
    // Debits mirror it on the external account: also bounded, never 5xx.
    let r = t
        .call(
            "POST",
            &path,
            Some(MASTER),
            Some(r#"{"amount":"-99999999999","reason":"x"}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(balance(&t, &user).await["available"], "0.00");
    let report = offerhub::ledger::verify(&t.store).await.unwrap();
    assert!(report.is_clean(), "{report:?}");

    // The configurable ceiling (default 1000000.00).
    let t2 = app(&url, &[]).await;
    let r = t2
        .call(
            "POST",
            "/api/v1/users",
            Some(MASTER),
            Some(r#"{"externalUserId":"capped"}"#),
        )
        .await;
    let user2 = r.body["data"]["id"].as_str().unwrap().to_string();
    let path2 = format!("/api/v1/users/{user2}/balance/adjustments");
    for amount in ["1000000.01", "-1000000.01"] {
        let body = json!({ "amount": amount, "reason": "x" }).to_string();
        let r = t2.call("POST", &path2, Some(MASTER), Some(&body)).await;
        assert_error(&r, 422, "AMOUNT_OUT_OF_RANGE");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("OFFERHUB_MAX_ADJUSTMENT")
        );
    }
    let r = t2
        .call(
            "POST",
            &path2,
            Some(MASTER),
            Some(r#"{"amount":"1000000.00","reason":"x"}"#),
        )
        .await;
    assert_eq!(r.status, 201);
    // Order amounts beyond Amount::MAX: 422 as well.
    let body =
        json!({ "buyerId": user2, "sellerId": user, "amount": "100000000001", "title": "t" })
            .to_string();
    let r = t2
        .call("POST", "/api/v1/orders", Some(MASTER), Some(&body))
        .await;
    assert_error(&r, 422, "AMOUNT_OUT_OF_RANGE");
}
both_backends!(amount_bounds_on, amount_bounds);

/// Features this mode lacks are 422 `FEATURE_NOT_ENABLED` (never 503); cursors that
/// reach Horizon are validated (400) before anything is asked.
async fn mode_and_cursor_errors(url: String) {
    let (t, _sandbox) = common::app_with_sandbox(&url, &[]).await;
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(MASTER),
            Some(r#"{"externalUserId":"m1"}"#),
        )
        .await;
    let user = r.body["data"]["id"].as_str().unwrap().to_string();
    let topup = json!({
        "userId": user, "amount": "10.00",
        "returnUrl": "https://example.com/ok", "cancelUrl": "https://example.com/no"
    })
    .to_string();
    let link = r#"{"email":"a@example.com"}"#;
    let bank = json!({ "userId": user, "amount": "1.00", "destinationType": "bank", "destinationRef": "x" })
        .to_string();
    for (method, path, body) in [
        ("POST", "/api/v1/topups".to_string(), Some(topup.as_str())),
        (
            "POST",
            format!("/api/v1/users/{user}/airtm/link"),
            Some(link),
        ),
        (
            "POST",
            "/api/v1/withdrawals".to_string(),
            Some(bank.as_str()),
        ),
        ("POST", "/api/v1/withdrawals/wd_x/commit".to_string(), None),
        ("POST", "/api/v1/withdrawals/wd_x/refresh".to_string(), None),
        ("POST", "/api/v1/withdrawals/wd_x/cancel".to_string(), None),
        ("POST", "/api/v1/webhooks/airtm".to_string(), Some("{}")),
    ] {
        let token = if path.ends_with("/webhooks/airtm") {
            None
        } else {
            Some(MASTER)
        };
        let r = t.call(method, &path, token, body).await;
        assert_error(&r, 422, "FEATURE_NOT_ENABLED");
        assert!(
            r.body["error"]["details"]["setting"].is_string(),
            "{path}: {}",
            r.body
        );
    }
    for cursor in ["abc", "1%26limit%3D1", "-5", "1.5", "%00"] {
        let r = t
            .call(
                "GET",
                &format!("/api/v1/users/{user}/wallet/transactions?cursor={cursor}"),
                Some(MASTER),
                None,
            )
            .await;
        assert_error(&r, 400, "VALIDATION_ERROR");
        assert_eq!(r.body["error"]["details"]["field"], "cursor");
    }
    let r = t
        .call(
            "GET",
            &format!("/api/v1/users/{user}/wallet/transactions?cursor=123"),
            Some(MASTER),
            None,
        )
        .await;
    assert!(r.status.as_u16() < 500, "{}", r.body);
}
both_backends!(mode_and_cursor_on, mode_and_cursor_errors);

/// The SQLite file and its directory are private (0600 / 0700).
#[cfg(unix)]
#[tokio::test]
async fn sqlite_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("offerhub-perm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("data").join("offerhub.db");
    let url = format!("sqlite://{}", db.display());
    let store = offerhub::store::Store::connect(&offerhub::config::DatabaseUrl::new(&url))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("data")), 0o700);
    assert_eq!(mode(&db), 0o600);
    let wal = dir.join("data").join("offerhub.db-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600);
    }
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

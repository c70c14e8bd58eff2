//! HTTP conventions, health, API keys and the auth matrix — on SQLite and PostgreSQL.

mod common;

use common::{MASTER, app, assert_error};
use offerhub_testkit::both_backends;

async fn health_and_envelopes(url: String) {
    let t = app(&url, &[]).await;
    let r = t.call("GET", "/api/v1/health", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["status"], "healthy");
    // Exactly these fields.
    let uptime = r.body["data"]["uptimeSeconds"].as_u64().unwrap();
    assert_eq!(
        r.body["data"],
        serde_json::json!({"status": "healthy", "version": offerhub::VERSION, "uptimeSeconds": uptime})
    );
    let rid = r.headers["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(r.body["meta"]["requestId"], rid.as_str());
    assert!(r.body["meta"]["timestamp"].as_str().unwrap().ends_with('Z'));

    // A caller's X-Request-ID is echoed and used in meta.
    let r = t
        .call_with(
            "GET",
            "/api/v1/health",
            None,
            None,
            &[("x-request-id", "req-abc-123")],
        )
        .await;
    assert_eq!(r.headers["x-request-id"], "req-abc-123");
    assert_eq!(r.body["meta"]["requestId"], "req-abc-123");

    let r = t.call("GET", "/api/v1/health/detailed", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["data"]["dependencies"]["database"]["status"],
        "healthy"
    );
    assert_eq!(r.body["data"]["status"], "degraded");
    // Without a network or providers: the database alone is probed.
    let data = &r.body["data"];
    let latency = data["dependencies"]["database"]["latencyMs"]
        .as_u64()
        .unwrap();
    let backend = data["dependencies"]["database"]["backend"].clone();
    assert!(backend == "sqlite" || backend == "postgres", "{backend}");
    assert_eq!(
        *data,
        serde_json::json!({
            "status": "degraded",
            "version": offerhub::VERSION,
            "dependencies": {
                "database": {"status": "healthy", "backend": backend, "latencyMs": latency},
                "stellarHorizon": {"status": "unavailable", "network": data["dependencies"]["stellarHorizon"]["network"], "detail": "no Horizon URL configured"},
                "trustlessWork": {"status": "unavailable", "detail": "escrow needs crypto mode with Trustless Work configured"},
                "airtm": {"status": "disabled", "detail": "PAYMENT_PROVIDER is not airtm"},
            },
        })
    );
    assert!(data["dependencies"]["stellarHorizon"]["network"].is_string());

    let r = t.call("GET", "/api/v1/no/such/route", None, None).await;
    assert_error(&r, 404, "NOT_FOUND");
    let r = t.call("PUT", "/api/v1/health", None, None).await;
    assert_error(&r, 405, "METHOD_NOT_ALLOWED");
}
both_backends!(health_and_envelopes_on, health_and_envelopes);

async fn auth_matrix(url: String) {
    let t = app(&url, &[]).await;
    let (_, read) = t.key(&["read"]).await;
    let (write_id, write) = t.key(&["read", "write"]).await;

    // No key, malformed header, malformed key, unknown key.
    assert_error(
        &t.call("GET", "/api/v1/auth/me", None, None).await,
        401,
        "UNAUTHORIZED",
    );
    let r = t
        .call_with(
            "GET",
            "/api/v1/auth/me",
            None,
            None,
            &[("authorization", "Basic abc")],
        )
        .await;
    assert_error(&r, 401, "UNAUTHORIZED");
    assert_error(
        &t.call("GET", "/api/v1/auth/me", Some("nonsense"), None)
            .await,
        401,
        "UNAUTHORIZED",
    );
    let unknown = format!("ohk_live_{}_{}", "A".repeat(32), "B".repeat(40));
    assert_error(
        &t.call("GET", "/api/v1/auth/me", Some(&unknown), None).await,
        401,
        "UNAUTHORIZED",
    );
    // Right id, wrong secret.
    let forged = format!(
        "{}{}",
        &write[..write.len() - 1],
        if write.ends_with('x') { "y" } else { "x" }
    );
    assert_error(
        &t.call("GET", "/api/v1/auth/me", Some(&forged), None).await,
        401,
        "UNAUTHORIZED",
    );

    // Valid key: /auth/me answers with its scopes.
    let r = t.call("GET", "/api/v1/auth/me", Some(&write), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["apiKeyId"], write_id.as_str());
    assert_eq!(
        r.body["data"]["scopes"],
        serde_json::json!(["read", "write"])
    );
    // Exactly these fields; the master key holds every scope.
    assert_eq!(
        r.body["data"],
        serde_json::json!({"apiKeyId": write_id, "apiKeyName": "test", "scopes": ["read", "write"]})
    );
    let r = t.call("GET", "/api/v1/auth/me", Some(MASTER), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body["data"],
        serde_json::json!({"apiKeyId": "master", "apiKeyName": "master", "scopes": ["read", "write", "support"]})
    );

    // Wrong scope: key management needs `support`.
    let r = t
        .call("GET", "/api/v1/auth/api-keys", Some(&read), None)
        .await;
    assert_error(&r, 403, "INSUFFICIENT_SCOPE");
    assert_eq!(r.body["error"]["details"]["required"], "support");
    let body = r#"{"name":"x","scopes":["read"]}"#;
    assert_error(
        &t.call("POST", "/api/v1/auth/api-keys", Some(&write), Some(body))
            .await,
        403,
        "INSUFFICIENT_SCOPE",
    );

    // A support key may manage keys.
    let (_, support) = t.key(&["support"]).await;
    let r = t
        .call("GET", "/api/v1/auth/api-keys?limit=2", Some(&support), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["meta"]["pagination"]["hasMore"], true);
    let cursor = r.body["meta"]["pagination"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_string();
    let r2 = t
        .call(
            "GET",
            &format!("/api/v1/auth/api-keys?limit=2&cursor={cursor}"),
            Some(&support),
            None,
        )
        .await;
    assert_eq!(r2.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(r2.body["meta"]["pagination"]["hasMore"], false);
    assert!(
        !r.body.to_string().contains(&write),
        "a list must never hold a secret"
    );
    assert!(r.body["data"][0].get("key").is_none());

    // lastUsedAt is maintained.
    let r = t
        .call("GET", "/api/v1/auth/api-keys?limit=100", Some(MASTER), None)
        .await;
    let used = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == write_id.as_str())
        .unwrap();
    assert!(used["lastUsedAt"].is_string());

    // Revocation is effective on the next request.
    let r = t
        .call(
            "DELETE",
            &format!("/api/v1/auth/api-keys/{write_id}"),
            Some(&support),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body["data"]["revokedAt"].is_string());
    assert_error(
        &t.call("GET", "/api/v1/auth/me", Some(&write), None).await,
        401,
        "UNAUTHORIZED",
    );
    assert_error(
        &t.call(
            "DELETE",
            "/api/v1/auth/api-keys/key_doesnotexist",
            Some(&support),
            None,
        )
        .await,
        404,
        "API_KEY_NOT_FOUND",
    );

    // Creation and revocation are audited, without the secret.
    let rows = offerhub::audit::list(
        &t.store,
        &offerhub::audit::AuditFilter {
            resource_id: Some(write_id.clone()),
            ..Default::default()
        },
        &offerhub::pagination::PageRequest::default(),
    )
    .await
    .unwrap();
    let actions: Vec<_> = rows.items.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, vec!["api_key.revoked", "api_key.created"]);
    assert!(!serde_json::to_string(&rows.items).unwrap().contains(&write));
}
both_backends!(auth_matrix_on, auth_matrix);

async fn validation_errors_name_the_field(url: String) {
    let t = app(&url, &[("OFFERHUB_BODY_LIMIT_BYTES", "2048")]).await;
    let post = |b: &'static str| t.call("POST", "/api/v1/auth/api-keys", Some(MASTER), Some(b));
    let r = post(r#"{"name": 5, "scopes": ["read"]}"#).await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert_eq!(r.body["error"]["details"]["field"], "name");
    let r = post(r#"{"scopes": ["read"]}"#).await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert_eq!(r.body["error"]["message"], "name: is required");
    let r = post(r#"{"name": "x", "scopes": ["read", 3]}"#).await;
    assert_eq!(r.body["error"]["details"]["field"], "scopes[1]");
    let r = post(r#"{"name": "x", "scopes": ["admin"]}"#).await;
    assert_eq!(r.body["error"]["details"]["field"], "scopes");
    let r = post(r#"{"name": "x", "scopes": []}"#).await;
    assert_eq!(r.body["error"]["details"]["field"], "scopes");
    let r = post(r#"{"name": "x", "scopes": ["read"], "extra": 1}"#).await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    let r = post(r#"{"name": "x", "#).await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert_eq!(r.body["error"]["details"]["field"], "body");
    let r = t
        .call("GET", "/api/v1/auth/api-keys?limit=500", Some(MASTER), None)
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "limit");
    let r = t
        .call("GET", "/api/v1/auth/api-keys?limit=abc", Some(MASTER), None)
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "limit");
    let r = t
        .call(
            "GET",
            "/api/v1/auth/api-keys?cursor=zzz",
            Some(MASTER),
            None,
        )
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "cursor");
    let big = format!(r#"{{"name": "{}", "scopes": ["read"]}}"#, "x".repeat(4096));
    let r = t
        .call("POST", "/api/v1/auth/api-keys", Some(MASTER), Some(&big))
        .await;
    assert_error(&r, 413, "PAYLOAD_TOO_LARGE");
    // Nothing was created by any of these.
    let r = t
        .call("GET", "/api/v1/auth/api-keys", Some(MASTER), None)
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 0);
}
both_backends!(validation_errors_on, validation_errors_name_the_field);

async fn rate_limit_per_key(url: String) {
    let t = app(&url, &[("OFFERHUB_RATE_LIMIT_PER_MINUTE", "5")]).await;
    let (_, a) = t.key(&["read"]).await;
    let (_, b) = t.key(&["read"]).await;
    for _ in 0..5 {
        assert_eq!(
            t.call("GET", "/api/v1/auth/me", Some(&a), None)
                .await
                .status,
            200
        );
    }
    let r = t.call("GET", "/api/v1/auth/me", Some(&a), None).await;
    assert_error(&r, 429, "RATE_LIMITED");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // Another key has its own budget.
    assert_eq!(
        t.call("GET", "/api/v1/auth/me", Some(&b), None)
            .await
            .status,
        200
    );
}
both_backends!(rate_limit_on, rate_limit_per_key);

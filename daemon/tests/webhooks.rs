//! Outbound webhooks against a receiver on loopback — SQLite and PostgreSQL.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use common::{TestApp, app_with_workers, assert_error};
use hmac::{Hmac, Mac};
use offerhub_testkit::both_backends;
use serde_json::{Value, json};
use sha2::Sha256;

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    down: Arc<AtomicBool>,
}

async fn start_receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let state = r.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                if state.down.load(Ordering::SeqCst) {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                state.got.lock().unwrap().push((headers, body));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, url)
}

/// Verifies the Standard Webhooks headers independently of OfferHub's code: the key is
/// the base64 after `whsec_`, the MAC covers `id.timestamp.body`; and the deprecated
/// `OfferHub-Signature` (keyed with the whole secret string) as well.
fn verify(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let id = headers["webhook-id"].to_str().unwrap();
    let ts = headers["webhook-timestamp"].to_str().unwrap();
    let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap();
    let Ok(key) = b64.decode(secret.strip_prefix("whsec_").unwrap()) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let standard = headers["webhook-signature"]
        .to_str()
        .unwrap()
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| mac.clone().verify_slice(&b64.decode(s).unwrap()).is_ok());
    standard && age.abs() < 300 && verify_legacy(secret, headers, body)
}

/// The official Python `standardwebhooks` library verifies the delivery with the code
/// docs/EVENTS.md shows, and refuses a tampered body. `.ci/run` installs it and sets
/// `OFFERHUB_PY_STANDARDWEBHOOKS` to its Python; without it the check says so and skips.
fn verify_with_python_standardwebhooks(secret: &str, headers: &HeaderMap, body: &str) {
    let Ok(python) = std::env::var("OFFERHUB_PY_STANDARDWEBHOOKS") else {
        eprintln!(
            "OFFERHUB_PY_STANDARDWEBHOOKS unset: the Python standardwebhooks check is skipped"
        );
        return;
    };
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), json!(v.to_str().unwrap())))
        .collect();
    let script = r#"
import json, os, sys
from standardwebhooks.webhooks import Webhook
wh = Webhook(os.environ["OFFERHUB_WEBHOOK_SECRET"])
delivery = json.load(sys.stdin)
event = wh.verify(delivery["body"], delivery["headers"])
assert event["id"] == delivery["headers"]["webhook-id"], event
try:
    wh.verify(delivery["body"] + " ", delivery["headers"])
except Exception:
    print("ok")
else:
    raise SystemExit("a tampered body verified")
"#;
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .env("OFFERHUB_WEBHOOK_SECRET", secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(
                json!({ "headers": headers, "body": body })
                    .to_string()
                    .as_bytes(),
            )
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok",
        "standardwebhooks (Python): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The deprecated `OfferHub-Signature: t=…,v1=<hex>` header.
fn verify_legacy(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let sig = headers["offerhub-signature"].to_str().unwrap();
    let (t, v1) = sig.split_once(",v1=").unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let age = chrono::Utc::now().timestamp() - t.parse::<i64>().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    age.abs() < 300 && mac.verify_slice(&hex::decode(v1).unwrap()).is_ok()
}

fn v_id(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn wait_for(r: &Receiver, n: usize) -> Vec<(HeaderMap, String)> {
    for _ in 0..400 {
        if r.got.lock().unwrap().len() >= n {
            return r.got.lock().unwrap().clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "only {} of {n} deliveries arrived",
        r.got.lock().unwrap().len()
    );
}

async fn create_user(t: &TestApp, key: &str, ext: &str) -> String {
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(key),
            Some(&json!({ "externalUserId": ext }).to_string()),
        )
        .await;
    r.body["data"]["id"].as_str().unwrap().to_string()
}

async fn signed_deliveries_retries_and_replay(url: String) {
    let t = app_with_workers(&url, &[("OFFERHUB_WEBHOOK_BACKOFF_BASE_MS", "20")]).await;
    let (_, key) = t.key(&["read", "write"]).await;
    let (rx, hook_url) = start_receiver().await;

    let r = t
        .call(
            "POST",
            "/api/v1/webhooks/endpoints",
            Some(&key),
            Some(&json!({ "url": hook_url, "events": ["user.*"] }).to_string()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.body["data"]["secret"].as_str().unwrap().to_string();
    let endpoint = r.body["data"]["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    {
        use base64::Engine as _;
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .expect("whsec_<base64>");
        assert_eq!(key.len(), 32);
    }
    let r = t
        .call("GET", "/api/v1/webhooks/endpoints", Some(&key), None)
        .await;
    assert!(
        !r.body.to_string().contains(&secret),
        "the secret is shown once"
    );
    let r = t
        .call(
            "POST",
            "/api/v1/webhooks/endpoints",
            Some(&key),
            Some(r#"{"url": "ftp://x"}"#),
        )
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "url");

    let u1 = create_user(&t, &key, "w1").await;
    let got = wait_for(&rx, 1).await;
    let (headers, body) = &got[0];
    assert!(verify(&secret, headers, body), "signature verifies");
    verify_with_python_standardwebhooks(&secret, headers, body);
    assert!(!verify(
        "whsec_b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA==",
        headers,
        body
    ));
    assert_eq!(
        headers["webhook-id"],
        v_id(body),
        "webhook-id is the event id"
    );
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["type"], "user.created");
    assert_eq!(v["resourceId"], u1.as_str());
    assert_eq!(
        headers["offerhub-event-id"].to_str().unwrap(),
        v["id"].as_str().unwrap()
    );
    assert_eq!(headers["offerhub-event-type"], "user.created");

    // The receiver goes down for a while; the delivery arrives after it recovers.
    rx.down.store(true, Ordering::SeqCst);
    let u2 = create_user(&t, &key, "w2").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = t
        .call(
            "GET",
            &format!("/api/v1/webhooks/deliveries?endpointId={endpoint}&status=PENDING"),
            Some(&key),
            None,
        )
        .await;
    let pending = &r.body["data"][0];
    assert!(pending["attempts"].as_i64().unwrap() >= 1, "{}", r.body);
    assert_eq!(pending["lastStatus"], 503);
    rx.down.store(false, Ordering::SeqCst);
    let got = wait_for(&rx, 2).await;
    let v: Value = serde_json::from_str(&got[1].1).unwrap();
    assert_eq!(v["resourceId"], u2.as_str());
    assert!(verify(&secret, &got[1].0, &got[1].1));
    // The sender records the success once the receiver has answered: poll for it.
    let mut ds = Vec::new();
    for _ in 0..200 {
        let r = t
            .call(
                "GET",
                &format!("/api/v1/webhooks/deliveries?endpointId={endpoint}&status=SUCCEEDED"),
                Some(&key),
                None,
            )
            .await;
        ds = r.body["data"].as_array().unwrap().clone();
        if ds.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(ds.len(), 2);
    let bad = t
        .call(
            "GET",
            "/api/v1/webhooks/deliveries?status=DONE",
            Some(&key),
            None,
        )
        .await;
    assert_error(&bad, 400, "VALIDATION_ERROR");
    assert!(
        ds[0]["attempts"].as_i64().unwrap() >= 2,
        "retried: {}",
        r.body
    );

    // Manual replay sends the same event again.
    let first = ds[1]["id"].as_str().unwrap().to_string();
    let r = t
        .call(
            "POST",
            &format!("/api/v1/webhooks/deliveries/{first}/replay"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let got = wait_for(&rx, 3).await;
    let v: Value = serde_json::from_str(&got[2].1).unwrap();
    assert_eq!(v["resourceId"], u1.as_str());

    // Non-matching events are not delivered; a deleted endpoint receives nothing more.
    let (_, support) = t.key(&["support"]).await;
    let body = json!({ "amount": "1", "reason": "x" }).to_string();
    t.call(
        "POST",
        &format!("/api/v1/users/{u1}/balance/adjustments"),
        Some(&support),
        Some(&body),
    )
    .await;
    let r = t
        .call(
            "DELETE",
            &format!("/api/v1/webhooks/endpoints/{endpoint}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.body["data"]["status"], "DELETED");
    create_user(&t, &key, "w3").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rx.got.lock().unwrap().clone();
    let types: Vec<String> = got
        .iter()
        .map(|(_, b)| {
            serde_json::from_str::<Value>(b).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        types,
        ["user.created", "user.created", "user.created"],
        "balance.* filtered out, nothing after delete"
    );
}
both_backends!(webhooks_on, signed_deliveries_retries_and_replay);

async fn failing_endpoint_is_disabled(url: String) {
    let t = app_with_workers(
        &url,
        &[
            ("OFFERHUB_WEBHOOK_BACKOFF_BASE_MS", "20"),
            ("OFFERHUB_WEBHOOK_DISABLE_AFTER_HOURS", "1"),
        ],
    )
    .await;
    let (_, key) = t.key(&["read", "write"]).await;
    let (rx, hook_url) = start_receiver().await;
    rx.down.store(true, Ordering::SeqCst);
    let r = t
        .call(
            "POST",
            "/api/v1/webhooks/endpoints",
            Some(&key),
            Some(&json!({ "url": hook_url }).to_string()),
        )
        .await;
    let endpoint = r.body["data"]["id"].as_str().unwrap().to_string();
    create_user(&t, &key, "f1").await;
    // Failing since long ago: the next failure disables it.
    for _ in 0..100 {
        sqlx::query("UPDATE webhook_endpoints SET failing_since = '2000-01-01T00:00:00.000Z' WHERE id = $1 AND failing_since IS NOT NULL")
            .bind(&endpoint)
            .execute(t.store.reader())
            .await
            .unwrap();
        let r = t
            .call("GET", "/api/v1/webhooks/endpoints", Some(&key), None)
            .await;
        if r.body["data"][0]["status"] == "DISABLED" {
            assert!(r.body["data"][0]["disabledAt"].is_string());
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("endpoint was never disabled");
}
both_backends!(disable_on, failing_endpoint_is_disabled);

/// A secret issued before Standard Webhooks (`whsec_` + 40 alphanumerics, stored in plain
/// text by old versions) keeps working: its 40 characters are base64 of a 30-byte key,
/// and both the Standard Webhooks headers and `OfferHub-Signature` verify with it.
async fn legacy_secret_keeps_verifying(url: String) {
    let t = app_with_workers(&url, &[("OFFERHUB_WEBHOOK_BACKOFF_BASE_MS", "20")]).await;
    let (_, key) = t.key(&["read", "write"]).await;
    let (rx, hook_url) = start_receiver().await;
    let r = t
        .call(
            "POST",
            "/api/v1/webhooks/endpoints",
            Some(&key),
            Some(&json!({ "url": hook_url, "events": ["user.created"] }).to_string()),
        )
        .await;
    let endpoint = r.body["data"]["id"].as_str().unwrap().to_string();
    let legacy = "whsec_Q2xa8Vb7nRk3TzP0mWd5YhJ4uLs9GcXe1FoIvN6q";
    sqlx::query("UPDATE webhook_endpoints SET secret = $1 WHERE id = $2")
        .bind(legacy)
        .bind(&endpoint)
        .execute(t.store.reader())
        .await
        .unwrap();
    create_user(&t, &key, "legacy1").await;
    let got = wait_for(&rx, 1).await;
    assert!(
        verify(legacy, &got[0].0, &got[0].1),
        "legacy secret verifies"
    );
}
both_backends!(legacy_secret_on, legacy_secret_keeps_verifying);

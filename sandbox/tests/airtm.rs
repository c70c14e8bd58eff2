//! The Airtm simulator over real HTTP: Basic auth, the error envelope, and webhook
//! delivery with Svix signatures and Svix's retry schedule (scaled down).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use offerhub_sandbox::{Sandbox, SandboxOptions, start};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET_B64: &str = "c2FuZGJveC1haXJ0bS10ZXN0LXNlY3JldC0wMQ==";

type Seen = Arc<Mutex<Vec<(String, String, String, String)>>>;

/// A receiver that fails the first `fail_first` deliveries with 500.
async fn receiver(fail_first: usize) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let s = s.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let mut seen = s.lock().unwrap();
                seen.push((h("svix-id"), h("svix-timestamp"), h("svix-signature"), body));
                if seen.len() <= fail_first {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), seen)
}

fn basic() -> String {
    format!("Basic {}", STANDARD.encode("key:secret"))
}

#[tokio::test]
async fn webhooks_are_svix_signed_and_retried_on_schedule() {
    let sb = Sandbox::new(SandboxOptions::default()).unwrap();
    let base = format!(
        "http://{}",
        start(sb.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    );
    let http = reqwest::Client::new();
    let (hook, seen) = receiver(2).await;
    let r = http
        .post(format!("{base}/_sandbox/airtm/webhook-endpoints"))
        .json(&json!({ "url": hook, "secret": format!("whsec_{SECRET_B64}") }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // 5 s and 5 min become 5 ms and 300 ms.
    http.post(format!("{base}/_sandbox/airtm/config"))
        .json(&json!({ "retryScale": 0.001 }))
        .send()
        .await
        .unwrap();

    // No credentials: Airtm's 401 envelope.
    let r = http
        .get(format!("{base}/airtm/v2/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["code"], "415904");

    let payin = json!({ "code": "topup_1", "amount": 12.5, "description": "t",
        "items": [{ "description": "t", "amount": 12.5, "quantity": 1 }],
        "confirmationUri": "https://m.example/ok", "cancelUri": "https://m.example/no" });
    let r = http
        .post(format!("{base}/airtm/v2/payins"))
        .header("authorization", basic())
        .json(&payin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["status"], "CREATED");
    assert_eq!(created["netAmount"], json!(12.38)); // 1 % fee, rounded down to cents
    // A duplicate code is Airtm's 415029.
    let r = http
        .post(format!("{base}/airtm/v2/payins"))
        .header("authorization", basic())
        .json(&payin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "415029");

    // payin.created: two failures, then delivered on the third attempt (0, 5 s, 5 min
    // scaled), same svix-id every time, each attempt freshly signed.
    for _ in 0..200 {
        if seen.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let key = STANDARD.decode(SECRET_B64).unwrap();
    for (id, ts, sig, body) in &seen {
        assert_eq!(id, &seen[0].0);
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.{body}").as_bytes());
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        assert_eq!(sig, &expected);
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["type"], "payin.created");
        assert_eq!(v["data"]["code"], "topup_1");
    }
    let messages: Value = http
        .get(format!("{base}/_sandbox/airtm/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let attempts: Vec<u64> = messages["data"][0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, vec![500, 500, 200]);
    assert_eq!(messages["data"][0]["delivered"], true);
}

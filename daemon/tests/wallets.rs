//! Wallets through the API against the embedded sandbox — SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use common::{TestApp, app, app_with_sandbox, assert_error};
use offerhub_testkit::both_backends;
use serde_json::{Value, json};

async fn wait_active(t: &TestApp, key: &str, user: &str) -> Value {
    for _ in 0..200 {
        let r = t
            .call(
                "GET",
                &format!("/api/v1/users/{user}/wallet"),
                Some(key),
                None,
            )
            .await;
        if r.body["data"]["status"] == "ACTIVE" {
            return r.body["data"].clone();
        }
        assert_ne!(r.body["data"]["status"], "FAILED", "{}", r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the wallet did not become ACTIVE");
}

async fn new_user_gets_an_active_wallet(url: String) {
    let (t, sandbox) = app_with_sandbox(&url, &[]).await;
    let (_, key) = t.key(&["read", "write"]).await;
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(&key),
            Some(r#"{"externalUserId": "crypto-1"}"#),
        )
        .await;
    let user = r.body["data"]["id"].as_str().unwrap().to_string();
    let w = wait_active(&t, &key, &user).await;
    let address = w["publicKey"].as_str().unwrap().to_string();
    assert!(address.starts_with('G'));
    assert_eq!(w["balances"]["usdc"], "0.00");
    assert_eq!(w["balances"]["xlm"], "1.00");
    assert!(w.get("sealedSecret").is_none() && !w.to_string().contains("v1."));

    let d = t
        .call(
            "GET",
            &format!("/api/v1/users/{user}/wallet/deposit"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(d.body["data"]["provider"], "crypto");
    assert_eq!(d.body["data"]["method"], "stellar_address");
    assert_eq!(d.body["data"]["address"], address.as_str());
    assert_eq!(d.body["data"]["asset"]["code"], "USDC");
    assert_eq!(d.body["data"]["network"], "sandbox");

    // A faucet deposit lands on chain and the deposit monitor credits it, once.
    let r = reqwest::Client::new()
        .post(format!("{sandbox}/_sandbox/fund"))
        .json(&json!({ "address": address, "amount": "25", "asset": "USDC" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let w = t
        .call(
            "GET",
            &format!("/api/v1/users/{user}/wallet"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(w.body["data"]["balances"]["usdc"], "25.00");
    assert_error(
        &t.call("GET", "/api/v1/users/usr_none/wallet", Some(&key), None)
            .await,
        404,
        "USER_NOT_FOUND",
    );
}
both_backends!(wallet_on, new_user_gets_an_active_wallet);

async fn without_crypto_mode_wallets_are_unavailable(url: String) {
    let t = app(&url, &[]).await;
    let (_, key) = t.key(&["read", "write"]).await;
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(&key),
            Some(r#"{"externalUserId": "plain"}"#),
        )
        .await;
    let user = r.body["data"]["id"].as_str().unwrap().to_string();
    assert_error(
        &t.call(
            "GET",
            &format!("/api/v1/users/{user}/wallet"),
            Some(&key),
            None,
        )
        .await,
        503,
        "PROVIDER_UNAVAILABLE",
    );
}
both_backends!(no_crypto_on, without_crypto_mode_wallets_are_unavailable);

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

    // The wallet's on-chain movements, newest first, as Horizon records them.
    let txs = t
        .call(
            "GET",
            &format!("/api/v1/users/{user}/wallet/transactions"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(txs.status, 200, "{}", txs.body);
    let records: Value = reqwest::get(format!(
        "{sandbox}/accounts/{address}/payments?order=desc&limit=20"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let expected: Vec<Value> = records["_embedded"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let (asset, amount, from, to) = match r["type"].as_str().unwrap() {
                "create_account" => (
                    json!("XLM"),
                    &r["starting_balance"],
                    &r["funder"],
                    &r["account"],
                ),
                "payment" => (
                    if r["asset_type"] == "native" {
                        json!("XLM")
                    } else {
                        r["asset_code"].clone()
                    },
                    &r["amount"],
                    &r["from"],
                    &r["to"],
                ),
                other => panic!("unexpected record type {other}: {r}"),
            };
            json!({
                "id": r["id"], "type": r["type"],
                "direction": if *to == address.as_str() { "in" } else { "out" },
                "asset": asset, "amount": amount, "from": from, "to": to,
                "transactionHash": r["transaction_hash"], "createdAt": r["created_at"],
            })
        })
        .collect();
    assert_eq!(txs.body["data"], json!(expected));
    assert_eq!(txs.body["data"][0]["type"], "payment");
    assert_eq!(txs.body["data"][0]["direction"], "in");
    assert_eq!(txs.body["data"][0]["asset"], "USDC");
    assert_eq!(txs.body["data"][0]["amount"], "25.0000000");
    assert_eq!(txs.body["data"][0]["to"], address.as_str());
    assert_eq!(
        txs.body["meta"]["pagination"],
        json!({"hasMore": false, "nextCursor": null})
    );
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
        422,
        "FEATURE_NOT_ENABLED",
    );
}
both_backends!(no_crypto_on, without_crypto_mode_wallets_are_unavailable);

/// An external account on the sandbox with a USDC trustline.
async fn external_account(sandbox: &str, with_trustline: bool) -> String {
    use offerhub::stellar::{horizon::Horizon, keys::Keypair, network::StellarNetwork, tx};
    let kp = Keypair::random();
    reqwest::get(format!("{sandbox}/friendbot?addr={}", kp.public_key()))
        .await
        .unwrap();
    if with_trustline {
        let h = Horizon::new(sandbox.parse().unwrap()).unwrap();
        let net = StellarNetwork::from_passphrase(&h.network_passphrase().await.unwrap());
        let info: Value = reqwest::get(format!("{sandbox}/_sandbox/info"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let usdc = tx::CreditAsset {
            code: "USDC".into(),
            issuer: offerhub::stellar::keys::parse_account(
                info["usdc"]["issuer"].as_str().unwrap(),
                "issuer",
            )
            .unwrap(),
        };
        let seq = h.account(&kp.public_key()).await.unwrap().unwrap().sequence;
        let t = tx::transaction(
            &kp.public_bytes(),
            seq + 1,
            (chrono::Utc::now().timestamp() + 60) as u64,
            vec![tx::change_trust(&kp.public_bytes(), &usdc)],
        )
        .unwrap();
        h.submit(&tx::sign(t, &net, &[&kp]).unwrap()).await.unwrap();
    }
    kp.public_key()
}

async fn usdc_on_chain(sandbox: &str, account: &str) -> String {
    offerhub_sandbox::usdc_balance(sandbox, account)
        .await
        .unwrap()
        .unwrap_or_default()
}

async fn crypto_withdrawals(url: String) {
    let (t, sandbox) = app_with_sandbox(&url, &[]).await;
    let (_, key) = t.key(&["read", "write"]).await;
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(&key),
            Some(r#"{"externalUserId": "seller"}"#),
        )
        .await;
    let user = r.body["data"]["id"].as_str().unwrap().to_string();
    let w = wait_active(&t, &key, &user).await;
    let address = w["publicKey"].as_str().unwrap().to_string();
    reqwest::Client::new()
        .post(format!("{sandbox}/_sandbox/fund"))
        .json(&json!({ "address": address, "amount": "25", "asset": "USDC" }))
        .send()
        .await
        .unwrap();
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
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let dest = external_account(&sandbox, true).await;
    let body = |amount: &str, dest: &str| {
        json!({ "userId": user, "amount": amount, "destinationType": "crypto", "destinationRef": dest }).to_string()
    };

    // Destination checks and funds: 422, nothing changes.
    // Change the last character (to one that differs from it), breaking the checksum.
    let last = if dest.ends_with('A') { 'B' } else { 'A' };
    let bad_checksum = format!("{}{last}", &dest[..55]);
    for d in [
        bad_checksum.as_str(),
        "GNOPE",
        &external_account(&sandbox, false).await,
    ] {
        let r = t
            .call(
                "POST",
                "/api/v1/withdrawals",
                Some(&key),
                Some(&body("1", d)),
            )
            .await;
        assert_error(&r, 422, "WITHDRAWAL_DESTINATION_INVALID");
        assert_eq!(r.body["error"]["details"]["field"], "destinationRef");
    }
    let unknown = offerhub::stellar::keys::Keypair::random().public_key();
    assert_error(
        &t.call(
            "POST",
            "/api/v1/withdrawals",
            Some(&key),
            Some(&body("1", &unknown)),
        )
        .await,
        422,
        "WITHDRAWAL_DESTINATION_INVALID",
    );
    assert_error(
        &t.call(
            "POST",
            "/api/v1/withdrawals",
            Some(&key),
            Some(&body("26", &dest)),
        )
        .await,
        422,
        "INSUFFICIENT_FUNDS",
    );

    // Wallets OfferHub manages are no destination: the platform (treasury) wallet would
    // receive USDC no ledger account backs; another user's would bypass the ledger.
    let platform = offerhub::services::wallets::platform(&t.store)
        .await
        .unwrap()
        .unwrap()
        .public_key;
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(&key),
            Some(r#"{"externalUserId": "other"}"#),
        )
        .await;
    let other = r.body["data"]["id"].as_str().unwrap().to_string();
    let other_wallet = wait_active(&t, &key, &other).await["publicKey"]
        .as_str()
        .unwrap()
        .to_string();
    for (d, says) in [
        (&platform, "platform"),
        (&other_wallet, "another OfferHub user"),
    ] {
        let r = t
            .call(
                "POST",
                "/api/v1/withdrawals",
                Some(&key),
                Some(&body("1", d)),
            )
            .await;
        assert_error(&r, 422, "WITHDRAWAL_DESTINATION_INVALID");
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(says),
            "{}",
            r.body
        );
    }
    let b = t
        .call(
            "GET",
            &format!("/api/v1/users/{user}/balance"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        b.body["data"]["available"], "25.00",
        "refusals hold nothing"
    );

    // A withdrawal lands on chain and the ledger matches.
    let r = t
        .call(
            "POST",
            "/api/v1/withdrawals",
            Some(&key),
            Some(&body("10", &dest)),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "WITHDRAWAL_COMPLETED");
    assert!(r.body["data"]["txHash"].is_string());
    assert_eq!(usdc_on_chain(&sandbox, &dest).await, "10.0000000");
    assert_eq!(usdc_on_chain(&sandbox, &address).await, "15.0000000");
    let b = t
        .call(
            "GET",
            &format!("/api/v1/users/{user}/balance"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(
        (
            b.body["data"]["available"].as_str(),
            b.body["data"]["reserved"].as_str()
        ),
        (Some("15.00"), Some("0.00"))
    );

    // The sandbox answers 504 after applying: exactly one payment happens.
    reqwest::Client::new()
        .post(format!("{sandbox}/_sandbox/faults"))
        .json(&json!({ "timeoutAfterApply": 2 }))
        .send()
        .await
        .unwrap();
    let r = t
        .call(
            "POST",
            "/api/v1/withdrawals",
            Some(&key),
            Some(&body("4", &dest)),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "WITHDRAWAL_COMPLETED");
    assert_eq!(
        usdc_on_chain(&sandbox, &dest).await,
        "14.0000000",
        "paid exactly once"
    );
    let b = t
        .call(
            "GET",
            &format!("/api/v1/users/{user}/balance"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(b.body["data"]["available"], "11.00");

    let list = t
        .call(
            "GET",
            &format!("/api/v1/withdrawals?userId={user}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
    let h = t
        .call(
            "GET",
            "/api/v1/events/history?types=withdrawal.*",
            Some(&key),
            None,
        )
        .await;
    let types: Vec<_> = h.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "withdrawal.created",
            "withdrawal.pending",
            "withdrawal.completed",
            "withdrawal.created",
            "withdrawal.pending",
            "withdrawal.completed"
        ]
    );
    assert!(offerhub::ledger::verify(&t.store).await.unwrap().is_clean());
    assert_error(
        &t.call("GET", "/api/v1/withdrawals/wd_nope", Some(&key), None)
            .await,
        404,
        "WITHDRAWAL_NOT_FOUND",
    );

    // Reconciliation watches the platform wallet: clean now, and USDC that reaches it
    // from outside (no ledger account behind it) is a discrepancy.
    let sc = t.stellar.as_ref().unwrap();
    let mut report = offerhub::services::reconcile::wallets(&t.store, sc, 4, &|_, _| {})
        .await
        .unwrap();
    offerhub::services::reconcile::platform(&t.store, sc, false, &mut report)
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.platform.as_ref().unwrap().status.as_str(), "ok");
    reqwest::Client::new()
        .post(format!("{sandbox}/_sandbox/fund"))
        .json(&json!({ "address": platform, "amount": "3", "asset": "USDC" }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let mut report = offerhub::services::reconcile::wallets(&t.store, sc, 4, &|_, _| {})
        .await
        .unwrap();
    offerhub::services::reconcile::platform(&t.store, sc, false, &mut report)
        .await
        .unwrap();
    let p = report.platform.as_ref().unwrap();
    assert_eq!(
        (p.status.as_str(), p.difference.to_string()),
        ("mismatch", "3.00".to_string())
    );
    assert_eq!(report.discrepancies, 1);
}
both_backends!(withdrawals_on, crypto_withdrawals);

/// The deposit-monitor leader whose database session is terminated stops leading and
/// the lock is taken again (fencing); deposits keep being credited exactly once.
/// PostgreSQL only: SQLite has one daemon per file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn monitor_leadership_is_fenced_on_postgres() {
    let url = offerhub_testkit::fresh_database_url(offerhub_testkit::Backend::Postgres).await;
    let (t, sandbox) = app_with_sandbox(&url, &[]).await;
    let holder = || async {
        sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = 7301001 AND granted",
        )
        .fetch_optional(t.store.reader())
        .await
        .unwrap()
    };
    let mut first = None;
    for _ in 0..200 {
        first = holder().await;
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = first.expect("a daemon leads the deposit monitor");
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(t.store.reader())
        .await
        .unwrap();
    assert!(terminated);
    let mut second = None;
    for _ in 0..300 {
        second = holder().await.filter(|p| *p != first);
        if second.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        second.is_some(),
        "leadership was re-acquired on a new session"
    );
    let (_, key) = t.key(&["read", "write"]).await;
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(&key),
            Some(r#"{"externalUserId": "fenced"}"#),
        )
        .await;
    let user = r.body["data"]["id"].as_str().unwrap().to_string();
    let address = wait_active(&t, &key, &user).await["publicKey"]
        .as_str()
        .unwrap()
        .to_string();
    reqwest::Client::new()
        .post(format!("{sandbox}/_sandbox/fund"))
        .json(&json!({ "address": address, "amount": "7", "asset": "USDC" }))
        .send()
        .await
        .unwrap();
    let mut available = Value::Null;
    for _ in 0..200 {
        let b = t
            .call(
                "GET",
                &format!("/api/v1/users/{user}/balance"),
                Some(&key),
                None,
            )
            .await;
        available = b.body["data"]["available"].clone();
        if available == "7.00" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(available, "7.00", "the new leader credits deposits");
    assert!(offerhub::ledger::verify(&t.store).await.unwrap().is_clean());
}

//! Escrow orchestration through the API against the embedded sandbox (Horizon + Trustless
//! Work over real HTTP) — SQLite and PostgreSQL. Every flow ends with balances equal to
//! the chain (fees included), reconciliation clean and the ledger verified.

mod common;

use std::time::Duration;

use common::{TestApp, app_with_sandbox, assert_error};
use offerhub_testkit::both_backends;
use serde_json::{Value, json};

/// A marketplace with a buyer holding 500 USDC and a seller, fee 5 %.
struct Market {
    t: TestApp,
    key: String,
    sandbox: String,
    buyer: String,
    seller: String,
    buyer_address: String,
    seller_address: String,
}

async fn user(t: &TestApp, key: &str, ext: &str) -> (String, String) {
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(key),
            Some(&json!({ "externalUserId": ext }).to_string()),
        )
        .await;
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    for _ in 0..400 {
        let w = t
            .call(
                "GET",
                &format!("/api/v1/users/{id}/wallet"),
                Some(key),
                None,
            )
            .await;
        if w.body["data"]["status"] == "ACTIVE" {
            return (
                id,
                w.body["data"]["publicKey"].as_str().unwrap().to_string(),
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("wallet of {ext} did not become ACTIVE");
}

async fn market(url: &str, extra: &[(&str, &str)]) -> Market {
    let mut all = vec![("TRUSTLESS_PLATFORM_FEE", "5")];
    all.extend_from_slice(extra);
    let (t, sandbox) = app_with_sandbox(url, &all).await;
    let (_, key) = t.key(&["read", "write", "support"]).await;
    let (buyer, buyer_address) = user(&t, &key, "buyer").await;
    let (seller, seller_address) = user(&t, &key, "seller").await;
    reqwest::Client::new()
        .post(format!("{sandbox}/_sandbox/fund"))
        .json(&json!({ "address": buyer_address, "amount": "500", "asset": "USDC" }))
        .send()
        .await
        .unwrap();
    let m = Market {
        t,
        key,
        sandbox,
        buyer,
        seller,
        buyer_address,
        seller_address,
    };
    for _ in 0..400 {
        if m.balance(&m.buyer).await["available"] == "500.00" {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the deposit was not credited");
}

impl Market {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> common::Resp {
        let b = body.map(|b| b.to_string());
        self.t
            .call(
                method,
                &format!("/api/v1{path}"),
                Some(&self.key),
                b.as_deref(),
            )
            .await
    }

    async fn balance(&self, user: &str) -> Value {
        self.call("GET", &format!("/users/{user}/balance"), None)
            .await
            .body["data"]
            .clone()
    }

    /// An order of `amount` with funds reserved.
    async fn order(&self, amount: &str, milestones: Value) -> String {
        let r = self
            .call(
                "POST",
                "/orders",
                Some(json!({ "buyerId": self.buyer, "sellerId": self.seller, "amount": amount, "title": "Logo design", "milestones": milestones })),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.body["data"]["id"].as_str().unwrap().to_string();
        let r = self
            .call("POST", &format!("/orders/{id}/reserve"), None)
            .await;
        assert_eq!(r.body["data"]["status"], "FUNDS_RESERVED", "{}", r.body);
        id
    }

    /// An order in progress: reserved, escrow deployed and funded.
    async fn funded(&self, amount: &str) -> String {
        let id = self.order(amount, json!([])).await;
        let r = self
            .call("POST", &format!("/orders/{id}/escrow"), None)
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["data"]["status"], "ESCROW_FUNDING");
        assert_eq!(r.body["data"]["escrow"]["status"], "CREATED");
        assert!(
            r.body["data"]["escrow"]["contractId"]
                .as_str()
                .unwrap()
                .starts_with('C')
        );
        let r = self
            .call("POST", &format!("/orders/{id}/escrow/fund"), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["data"]["status"], "IN_PROGRESS");
        assert_eq!(r.body["data"]["escrow"]["status"], "FUNDED");
        assert_eq!(
            r.body["data"]["escrow"]["balance"],
            format!("{amount}.00").replace(".00.00", ".00")
        );
        id
    }

    /// On-chain USDC without trailing zeros (`"94.7"`).
    async fn usdc(&self, account: &str) -> String {
        offerhub_sandbox::usdc_balance(&self.sandbox, account)
            .await
            .unwrap()
            .unwrap_or_default()
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }

    async fn invocations(&self, function: &str) -> usize {
        let v: Value = reqwest::get(format!("{}/_sandbox/invocations", self.sandbox))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .filter(|i| i["function"] == function)
            .count()
    }

    /// Ledger verified, every wallet and escrow equal to the chain.
    async fn clean(&self) {
        let report = offerhub::ledger::verify(&self.t.store).await.unwrap();
        assert!(report.is_clean(), "{report:?}");
        let sc = self.t.stellar.as_ref().unwrap();
        let mut r = offerhub::services::reconcile::wallets(&self.t.store, sc, 4, &|_, _| {})
            .await
            .unwrap();
        offerhub::services::reconcile::escrows(
            &self.t.store,
            self.t.escrow.as_ref().unwrap(),
            &mut r,
        )
        .await
        .unwrap();
        // The platform wallet holds exactly the platform fees the ledger booked.
        offerhub::services::reconcile::platform(&self.t.store, sc, false, &mut r)
            .await
            .unwrap();
        assert!(r.is_clean(), "{r:#?}");
        assert!(r.escrows.iter().all(|e| e.status.as_str() == "ok"));
        assert!(
            r.platform
                .as_ref()
                .is_some_and(|p| p.status.as_str() == "ok"),
            "{r:#?}"
        );
    }

    /// Ledger balances equal the wallets on chain (available + reserved).
    async fn matches_chain(&self, user: &str, address: &str) -> String {
        let b = self.balance(user).await;
        let chain = self.usdc(address).await;
        let total = b["total"]
            .as_str()
            .unwrap()
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string();
        assert_eq!(total, chain, "ledger {b} vs chain {chain}");
        chain
    }

    async fn event_types(&self, order: &str) -> Vec<String> {
        // Every event that names the order, in sequence order (numbered first).
        offerhub::sequencer::catch_up(&self.t.store, std::time::Duration::from_secs(5))
            .await
            .unwrap();
        sqlx::query_scalar::<_, String>(
            "SELECT event_type FROM events WHERE resource_id = $1 OR data LIKE $2 ORDER BY seq",
        )
        .bind(order)
        .bind(format!("%{order}%"))
        .fetch_all(self.t.store.reader())
        .await
        .unwrap()
    }
}

async fn happy_path(url: String) {
    let m = market(&url, &[]).await;
    let id = m.funded("100").await;
    assert_eq!(m.balance(&m.buyer).await["available"], "400.00");
    assert_eq!(m.balance(&m.buyer).await["reserved"], "0.00");
    assert_eq!(m.usdc(&m.buyer_address).await, "400");

    let r = m
        .call(
            "POST",
            &format!("/orders/{id}/resolution/release"),
            Some(json!({ "requestedBy": m.buyer })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "CLOSED");
    assert_eq!(r.body["data"]["escrow"]["status"], "RELEASED");
    assert_eq!(r.body["data"]["escrow"]["balance"], "0.00");
    // 100 − 0.3 % Trustless Work − 5 % platform = 94.70 arrived and is credited once.
    assert_eq!(m.balance(&m.seller).await["available"], "94.70");
    assert_eq!(m.matches_chain(&m.seller, &m.seller_address).await, "94.7");
    m.matches_chain(&m.buyer, &m.buyer_address).await;
    // The deposit monitor does not credit the contract's transfer a second time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(m.balance(&m.seller).await["available"], "94.70");
    let types = m.event_types(&id).await;
    for t in [
        "order.escrow_creating",
        "order.escrow_funding",
        "order.escrow_funded",
        "order.in_progress",
        "order.release_requested",
        "escrow.milestone_completed",
        "order.released",
        "order.closed",
    ] {
        assert!(types.contains(&t.to_string()), "{t} missing from {types:?}");
    }
    let sagas = m.call("GET", &format!("/sagas?orderId={id}"), None).await;
    let kinds: Vec<&str> = sagas.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["RELEASE", "ESCROW_FUND", "ESCROW_DEPLOY"]);
    assert!(
        sagas.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "COMPLETED")
    );
    assert_eq!(sagas.body["data"][0]["done"].as_array().unwrap().len(), 3);
    m.clean().await;
}
both_backends!(happy, happy_path);

async fn open_dispute(m: &Market, id: &str, opened_by: &str) -> String {
    let r = m
        .call(
            "POST",
            &format!("/orders/{id}/resolution/dispute"),
            Some(json!({ "openedBy": opened_by, "reason": "QUALITY_ISSUE", "evidence": [{"url": "https://example.com/a.png"}] })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "OPEN");
    assert_eq!(r.body["data"]["order"]["status"], "DISPUTED");
    assert_eq!(r.body["data"]["order"]["escrow"]["status"], "DISPUTED");
    r.body["data"]["id"].as_str().unwrap().to_string()
}

async fn resolutions(url: String) {
    let m = market(&url, &[]).await;

    // Refund without dispute: dispute + resolve 100 % to the buyer; fees are taken.
    let a = m.funded("50").await;
    let r = m
        .call(
            "POST",
            &format!("/orders/{a}/resolution/refund"),
            Some(json!({})),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert_eq!(r.body["error"]["details"]["field"], "reason");
    let r = m
        .call(
            "POST",
            &format!("/orders/{a}/resolution/refund"),
            Some(json!({ "reason": "Seller cancelled" })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "CLOSED");
    assert_eq!(r.body["data"]["escrow"]["status"], "REFUNDED");
    // 500 − 50 + (50 − 0.15 − 2.50) = 497.35
    assert_eq!(m.balance(&m.buyer).await["available"], "497.35");
    assert_eq!(m.invocations("dispute_escrow").await, 1);

    // FULL_RELEASE, opened by the seller, reviewed and commented.
    let b = m.funded("100").await;
    let d = open_dispute(&m, &b, "SELLER").await;
    let again = m
        .call(
            "POST",
            &format!("/orders/{b}/resolution/dispute"),
            Some(json!({ "openedBy": "BUYER", "reason": "OTHER" })),
        )
        .await;
    assert_error(&again, 409, "DISPUTE_ALREADY_OPEN");
    let r = m
        .call(
            "POST",
            &format!("/disputes/{d}/assign"),
            Some(json!({ "assignedTo": "agent@support" })),
        )
        .await;
    assert_eq!(r.body["data"]["status"], "UNDER_REVIEW", "{}", r.body);
    let r = m
        .call(
            "POST",
            &format!("/disputes/{d}/comments"),
            Some(json!({ "author": "agent@support", "body": "Files received" })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = m.call("GET", &format!("/disputes/{d}"), None).await;
    assert_eq!(r.body["data"]["comments"][0]["body"], "Files received");
    assert_eq!(r.body["data"]["openedBy"], "SELLER");
    let r = m
        .call(
            "POST",
            &format!("/disputes/{d}/resolve"),
            Some(json!({ "decision": "FULL_RELEASE", "note": "Delivered" })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "RESOLVED");
    assert_eq!(r.body["data"]["order"]["status"], "CLOSED");
    assert_eq!(m.balance(&m.seller).await["available"], "94.70");

    // FULL_REFUND.
    let c = m.funded("100").await;
    let d = open_dispute(&m, &c, "BUYER").await;
    let r = m
        .call(
            "POST",
            &format!("/disputes/{d}/resolve"),
            Some(json!({ "decision": "FULL_REFUND" })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["order"]["escrow"]["status"], "REFUNDED");
    // 497.35 − 100 (B) − 100 (C) + 94.70
    assert_eq!(m.balance(&m.buyer).await["available"], "392.05");

    // SPLIT 80/20: amounts are validated against the escrow balance before anything moves.
    let e = m.funded("100").await;
    let d = open_dispute(&m, &e, "BUYER").await;
    let r = m
        .call(
            "POST",
            &format!("/disputes/{d}/resolve"),
            Some(json!({ "decision": "SPLIT", "releaseAmount": "80.00", "refundAmount": "30.00" })),
        )
        .await;
    assert_error(&r, 400, "INVALID_AMOUNT_FORMAT");
    assert_eq!(
        m.call("GET", &format!("/disputes/{d}"), None).await.body["data"]["status"],
        "OPEN"
    );
    let r = m
        .call("POST", &format!("/disputes/{d}/resolve"), Some(json!({ "decision": "SPLIT", "release_amount": "80.00", "refund_amount": "20.00", "note": "80% delivered" })))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["decision"], "SPLIT");
    assert_eq!(r.body["data"]["releaseAmount"], "80.00");
    // Fees 5.3 % pro rata: seller 80 − 4.24, buyer 20 − 1.06.
    assert_eq!(m.balance(&m.seller).await["available"], "170.46");
    assert_eq!(m.balance(&m.buyer).await["available"], "310.99");
    m.matches_chain(&m.seller, &m.seller_address).await;
    m.matches_chain(&m.buyer, &m.buyer_address).await;

    let list = m
        .call("GET", "/disputes?status=RESOLVED&limit=2", None)
        .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(list.body["meta"]["pagination"]["hasMore"], true);
    let types = m.event_types(&e).await;
    assert_eq!(
        types.iter().filter(|t| *t == "dispute.resolved").count(),
        1,
        "{types:?}"
    );
    assert!(types.contains(&"order.closed".to_string()));
    m.clean().await;
}
both_backends!(disputes, resolutions);

async fn cancel_before_escrow(url: String) {
    let m = market(&url, &[]).await;
    let a = m.order("10", json!([])).await;
    let r = m
        .call(
            "POST",
            &format!("/orders/{a}/cancel"),
            Some(json!({ "reason": "changed mind" })),
        )
        .await;
    assert_eq!(r.body["data"]["status"], "CLOSED", "{}", r.body);
    // Deployed but not funded: the contract stays empty, the hold is voided.
    let b = m.order("20", json!([])).await;
    let r = m.call("POST", &format!("/orders/{b}/escrow"), None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let again = m.call("POST", &format!("/orders/{b}/escrow"), None).await;
    assert_error(&again, 409, "ESCROW_ALREADY_EXISTS");
    let r = m.call("POST", &format!("/orders/{b}/cancel"), None).await;
    assert_eq!(r.body["data"]["status"], "CLOSED", "{}", r.body);
    assert_eq!(r.body["data"]["escrow"]["status"], "CANCELED");
    assert_error(
        &m.call("POST", &format!("/orders/{b}/escrow/fund"), None)
            .await,
        409,
        "INVALID_STATE_TRANSITION",
    );
    let bal = m.balance(&m.buyer).await;
    assert_eq!(
        (bal["available"].as_str(), bal["reserved"].as_str()),
        (Some("500.00"), Some("0.00"))
    );
    assert_eq!(m.invocations("fund_escrow").await, 0);
    m.clean().await;
}
both_backends!(cancel, cancel_before_escrow);

async fn tampered_xdr_is_refused(url: String) {
    let m = market(&url, &[]).await;
    let id = m.order("40", json!([])).await;
    let r = m.call("POST", &format!("/orders/{id}/escrow"), None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let faults = |kind: &str| {
        let url = format!("{}/_sandbox/faults", m.sandbox);
        let body = json!({ "tamperXdr": kind });
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };

    // Another amount in the fund call: refused, nothing signed, nothing moved.
    faults("amount").await;
    let r = m
        .call("POST", &format!("/orders/{id}/escrow/fund"), None)
        .await;
    assert_error(&r, 502, "XDR_VERIFICATION_FAILED");
    assert_eq!(r.body["error"]["details"]["check"], "argument 2");
    let o = m.call("GET", &format!("/orders/{id}"), None).await;
    assert_eq!(o.body["data"]["status"], "ESCROW_FUNDING");
    assert_eq!(o.body["data"]["escrow"]["status"], "CREATED");
    assert_eq!(m.invocations("fund_escrow").await, 0);
    assert_eq!(m.usdc(&m.buyer_address).await, "500");
    let audit = m
        .call("GET", "/audit/logs?action=escrow.xdr_refused", None)
        .await;
    assert!(
        audit.body.to_string().contains("escrow.xdr_refused"),
        "{}",
        audit.body
    );

    // The same call without tampering goes through.
    let r = m
        .call("POST", &format!("/orders/{id}/escrow/fund"), None)
        .await;
    assert_eq!(r.body["data"]["status"], "IN_PROGRESS", "{}", r.body);

    // Another destination in the first release step: refused, the order is restored.
    faults("destination").await;
    let r = m
        .call("POST", &format!("/orders/{id}/resolution/release"), None)
        .await;
    assert_error(&r, 502, "XDR_VERIFICATION_FAILED");
    let o = m.call("GET", &format!("/orders/{id}"), None).await;
    assert_eq!(o.body["data"]["status"], "IN_PROGRESS");
    assert_eq!(m.invocations("change_milestone_status").await, 0);
    let r = m
        .call("POST", &format!("/orders/{id}/resolution/release"), None)
        .await;
    assert_eq!(r.body["data"]["status"], "CLOSED", "{}", r.body);
    m.clean().await;
}
both_backends!(tampered, tampered_xdr_is_refused);

/// An internal error that is not the environment's fault (here: a wallet secret that no
/// longer opens) parks the saga at once instead of retrying it; nothing is signed or
/// moved, and once the cause is fixed an operator's retry completes it.
async fn an_internal_error_parks_the_saga_at_once(url: String) {
    let m = market(&url, &[]).await;
    let id = m.order("40", json!([])).await;
    let r = m.call("POST", &format!("/orders/{id}/escrow"), None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sealed: String = sqlx::query_scalar("SELECT sealed_secret FROM wallets WHERE user_id = $1")
        .bind(&m.buyer)
        .fetch_one(m.t.store.reader())
        .await
        .unwrap();
    let set_secret = |secret: String| {
        let (store, buyer) = (m.t.store.clone(), m.buyer.clone());
        async move {
            let mut tx = store.begin().await.unwrap();
            sqlx::query("UPDATE wallets SET sealed_secret = $1 WHERE user_id = $2")
                .bind(secret)
                .bind(buyer)
                .execute(tx.conn())
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    };
    set_secret("v1:corrupt".into()).await;
    let r = m
        .call("POST", &format!("/orders/{id}/escrow/fund"), None)
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let saga = &r.body["data"]["saga"];
    assert_eq!(saga["status"], "NEEDS_ATTENTION", "{saga}");
    assert_eq!(saga["attempts"], 0, "parked without retries: {saga}");
    assert_eq!(saga["lastError"]["code"], "INTERNAL_ERROR");
    assert_eq!(m.invocations("fund_escrow").await, 0);
    assert_eq!(m.usdc(&m.buyer_address).await, "500");
    let b = m.balance(&m.buyer).await;
    assert_eq!(
        (b["available"].as_str(), b["reserved"].as_str()),
        (Some("460.00"), Some("40.00"))
    );
    assert!(
        m.event_types(&id)
            .await
            .contains(&"saga.needs_attention".to_string())
    );

    // The cause fixed, the operator's retry completes the funding.
    set_secret(sealed).await;
    let saga_id = saga["id"].as_str().unwrap();
    let r = m
        .call("POST", &format!("/sagas/{saga_id}/retry"), Some(json!({})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "COMPLETED", "{}", r.body);
    let o = m.call("GET", &format!("/orders/{id}"), None).await;
    assert_eq!(o.body["data"]["status"], "IN_PROGRESS");
    assert_eq!(m.invocations("fund_escrow").await, 1);
    m.clean().await;
}
both_backends!(bug_parks, an_internal_error_parks_the_saga_at_once);

async fn concurrent_releases_execute_once(url: String) {
    let m = market(&url, &[]).await;
    let id = m.funded("60").await;
    let path = format!("/orders/{id}/resolution/release");
    let (a, b) = tokio::join!(m.call("POST", &path, None), m.call("POST", &path, None));
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{} / {}", a.body, b.body);
    let loser = if a.status == 409 { &a } else { &b };
    let code = loser.body["error"]["code"].as_str().unwrap();
    assert!(
        ["OPERATION_IN_PROGRESS", "INVALID_STATE_TRANSITION"].contains(&code),
        "{}",
        loser.body
    );
    assert_eq!(m.invocations("release_funds").await, 1);
    assert_eq!(m.invocations("approve_milestone").await, 1);
    assert_eq!(m.balance(&m.seller).await["available"], "56.82");
    m.clean().await;
}
both_backends!(concurrent_release, concurrent_releases_execute_once);

async fn milestones_release_one_by_one(url: String) {
    let m = market(&url, &[]).await;
    let id = m
        .order("30", json!([{ "milestoneRef": "design", "title": "Design", "amount": "10" }, { "milestoneRef": "build", "title": "Build", "amount": "20" }]))
        .await;
    let r = m.call("POST", &format!("/orders/{id}/escrow"), None).await;
    assert_eq!(
        r.body["data"]["escrow"]["kind"], "multi-release",
        "{}",
        r.body
    );
    let r = m
        .call("POST", &format!("/orders/{id}/escrow/fund"), None)
        .await;
    assert_eq!(r.body["data"]["status"], "IN_PROGRESS", "{}", r.body);
    let ms = |op: &str, r: &str| format!("/orders/{id}/milestones/{r}/{op}");
    assert_error(
        &m.call("POST", &ms("approve", "design"), None).await,
        409,
        "INVALID_STATE_TRANSITION",
    );
    assert_error(
        &m.call("POST", &ms("complete", "nope"), None).await,
        404,
        "MILESTONE_NOT_FOUND",
    );
    for (op, status) in [
        ("complete", "COMPLETED"),
        ("approve", "APPROVED"),
        ("release", "RELEASED"),
    ] {
        let r = m.call("POST", &ms(op, "design"), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["data"]["status"], status);
    }
    // 10 − 0.03 − 0.50
    assert_eq!(m.balance(&m.seller).await["available"], "9.47");
    assert_eq!(m.invocations("release_milestone_funds").await, 1);
    let list = m
        .call("GET", &format!("/orders/{id}/milestones"), None)
        .await;
    assert_eq!(list.body["data"][1]["status"], "PENDING");
    // The rest through the whole-order release.
    let r = m
        .call("POST", &format!("/orders/{id}/resolution/release"), None)
        .await;
    assert_eq!(r.body["data"]["status"], "CLOSED", "{}", r.body);
    assert_eq!(m.balance(&m.seller).await["available"], "28.41");
    m.matches_chain(&m.seller, &m.seller_address).await;
    m.clean().await;
}
both_backends!(milestones, milestones_release_one_by_one);

// ---------- every builder argument, tampered (issue #19, item 4) ----------

/// What must not change when a tampered transaction is refused.
#[derive(Debug, PartialEq)]
struct MoneySnapshot {
    buyer: Value,
    seller: Value,
    buyer_chain: String,
    seller_chain: String,
    invocations: usize,
}

impl Market {
    async fn money(&self) -> MoneySnapshot {
        let v: Value = reqwest::get(format!("{}/_sandbox/invocations", self.sandbox))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        MoneySnapshot {
            buyer: self.balance(&self.buyer).await,
            seller: self.balance(&self.seller).await,
            buyer_chain: self.usdc(&self.buyer_address).await,
            seller_chain: self.usdc(&self.seller_address).await,
            invocations: v.as_array().unwrap().len(),
        }
    }

    /// Arms the sandbox's `tamperArg` fault for the next `function` builder answer.
    async fn tamper(&self, function: &str, path: &str) {
        let r = reqwest::Client::new()
            .post(format!("{}/_sandbox/faults", self.sandbox))
            .json(&json!({ "tamperArg": { "function": function, "path": path } }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    /// `POST path` with the argument `arg` of `function` tampered: refused with
    /// XDR_VERIFICATION_FAILED naming `check`, nothing signed, no money moved. When
    /// the tampered call is not the saga's first step the saga is parked (earlier
    /// steps are on chain) and is retried here, untampered.
    async fn refused(&self, order: &str, path: &str, function: &str, arg: &str, check: &str) {
        self.refused_with(order, path, None, function, arg, check)
            .await
    }

    async fn refused_with(
        &self,
        order: &str,
        path: &str,
        body: Option<Value>,
        function: &str,
        arg: &str,
        check: &str,
    ) {
        let before = self.money().await;
        let status_before = self
            .call("GET", &format!("/orders/{order}"), None)
            .await
            .body["data"]["status"]
            .clone();
        self.tamper(function, arg).await;
        let r = self.call("POST", path, body).await;
        let sagas = self
            .call("GET", &format!("/sagas?orderId={order}"), None)
            .await;
        let saga = sagas.body["data"][0].clone();
        if r.status == 502 {
            assert_error(&r, 502, "XDR_VERIFICATION_FAILED");
            let found = r.body["error"]["details"]["check"].as_str().unwrap_or("");
            assert_eq!(found, check, "{function} {arg}: {}", r.body);
            // Refused at the first step: compensated, the order as it was.
            assert_eq!(saga["status"], "COMPENSATED", "{saga}");
            let o = self.call("GET", &format!("/orders/{order}"), None).await;
            assert_eq!(o.body["data"]["status"], status_before, "{function} {arg}");
            assert_eq!(self.money().await, before, "{function} {arg}: money moved");
            return;
        }
        // A later step: parked with the refusal, the money where it was.
        assert_eq!(
            saga["status"], "NEEDS_ATTENTION",
            "{function} {arg}: {} {saga}",
            r.body
        );
        assert_eq!(
            saga["lastError"]["code"], "XDR_VERIFICATION_FAILED",
            "{function} {arg}: {saga}"
        );
        assert_eq!(
            saga["lastError"]["details"]["check"], check,
            "{function} {arg}: {saga}"
        );
        let now = self.money().await;
        assert_eq!(
            (&now.buyer, &now.seller, &now.buyer_chain, &now.seller_chain),
            (
                &before.buyer,
                &before.seller,
                &before.buyer_chain,
                &before.seller_chain
            ),
            "{function} {arg}: money moved"
        );
        let report = offerhub::ledger::verify(&self.t.store).await.unwrap();
        assert!(report.is_clean(), "{report:?}");
        // Retried without tampering: the saga completes.
        let id = saga["id"].as_str().unwrap();
        let r = self.call("POST", &format!("/sagas/{id}/retry"), None).await;
        assert!(r.status.is_success(), "{}", r.body);
        for _ in 0..200 {
            let s = self.call("GET", &format!("/sagas/{id}"), None).await;
            if s.body["data"]["status"] == "COMPLETED" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{function} {arg}: the retried saga did not complete");
    }
}

/// Each argument of each single-release call OfferHub signs, tampered one at a time by
/// the sandbox: deploy, fund, release (status, approve, release), refund (dispute,
/// resolve) and a split resolution.
async fn every_single_release_argument_is_verified(url: String) {
    let m = market(&url, &[]).await;
    let id = m.order("40", json!([])).await;
    let deploy = format!("/orders/{id}/escrow");
    let escrow_args = [
        "engagement_id",
        "title",
        "description",
        "amount",
        "platform_fee",
        "roles.approver",
        "roles.service_provider",
        "roles.platform_address",
        "roles.release_signer",
        "roles.dispute_resolver",
        "roles.receiver",
        "trustline.address",
        "flags.disputed",
        "flags.released",
        "flags.resolved",
        "milestones",
        "milestones[0].description",
        "milestones[0].status",
        "milestones[0].evidence",
        "milestones[0].approved",
    ];
    let deploy_fn = offerhub_sandbox::tw::DEPLOY_FN;
    m.refused(&id, &deploy, deploy_fn, "deployer", "argument 0")
        .await;
    for a in escrow_args {
        let check = if a == "milestones" {
            "argument 1.milestones length".to_string()
        } else {
            format!("argument 1.{a}")
        };
        m.refused(&id, &deploy, deploy_fn, &format!("escrow.{a}"), &check)
            .await;
    }
    let r = m.call("POST", &deploy, None).await;
    assert_eq!(r.status, 201, "{}", r.body);

    let fund = format!("/orders/{id}/escrow/fund");
    m.refused(&id, &fund, "fund_escrow", "signer", "argument 0")
        .await;
    m.refused(&id, &fund, "fund_escrow", "amount", "argument 2")
        .await;
    for a in escrow_args {
        let check = if a == "milestones" {
            "argument 1.milestones length".to_string()
        } else {
            format!("argument 1.{a}")
        };
        // Paths without the `escrow.` prefix resolve inside the escrow argument
        // (`amount` alone is fund_escrow's own `amount` argument).
        let path = if a == "amount" { "escrow.amount" } else { a };
        m.refused(&id, &fund, "fund_escrow", path, &check).await;
    }
    let r = m.call("POST", &fund, None).await;
    assert_eq!(r.body["data"]["status"], "IN_PROGRESS", "{}", r.body);

    // Release: three calls; each argument of each.
    let release = format!("/orders/{id}/resolution/release");
    for (function, arg, check) in [
        ("change_milestone_status", "milestone_index", "argument 0"),
        ("change_milestone_status", "new_status", "argument 1"),
        ("change_milestone_status", "new_evidence", "argument 2"),
        ("change_milestone_status", "service_provider", "argument 3"),
    ] {
        m.refused(&id, &release, function, arg, check).await;
    }
    // The status change is now on chain; approve and release refusals park the saga
    // at their step and the retry finishes the release.
    m.refused(
        &id,
        &release,
        "approve_milestone",
        "milestone_index",
        "argument 0",
    )
    .await;
    let o = m.call("GET", &format!("/orders/{id}"), None).await;
    assert_eq!(o.body["data"]["status"], "CLOSED", "{}", o.body);
    // 40 − 0.3 % − 5 % = 37.88 to the seller, once.
    assert_eq!(m.balance(&m.seller).await["available"], "37.88");
    m.matches_chain(&m.seller, &m.seller_address).await;

    for (function, arg, check) in [
        ("approve_milestone", "approver", "argument 1"),
        ("release_funds", "release_signer", "argument 0"),
    ] {
        let id = m.funded("10").await;
        let release = format!("/orders/{id}/resolution/release");
        m.refused(&id, &release, function, arg, check).await;
        let o = m.call("GET", &format!("/orders/{id}"), None).await;
        assert_eq!(o.body["data"]["status"], "CLOSED", "{}", o.body);
    }

    // Refund: dispute (step 0: compensated) then resolve 100 % to the buyer (step 1:
    // parked, retried).
    let id = m.funded("20").await;
    let refund = format!("/orders/{id}/resolution/refund");
    let reason = Some(json!({ "reason": "tamper test" }));
    m.refused_with(
        &id,
        &refund,
        reason.clone(),
        "dispute_escrow",
        "signer",
        "argument 0",
    )
    .await;
    m.refused_with(
        &id,
        &refund,
        reason.clone(),
        "resolve_dispute",
        "dispute_resolver",
        "argument 0",
    )
    .await;
    for arg in [
        "distributions[0].amount",
        "distributions[0].address",
        "distributions",
    ] {
        let id = m.funded("20").await;
        let refund = format!("/orders/{id}/resolution/refund");
        m.refused_with(
            &id,
            &refund,
            reason.clone(),
            "resolve_dispute",
            arg,
            "argument 1 (distributions)",
        )
        .await;
        let o = m.call("GET", &format!("/orders/{id}"), None).await;
        assert_eq!(o.body["data"]["escrow"]["status"], "REFUNDED", "{}", o.body);
    }

    // A split resolution: two distributions, each entry tampered (one step:
    // compensated, the dispute stays open).
    let id = m.funded("50").await;
    let d = open_dispute(&m, &id, "BUYER").await;
    let resolve = format!("/disputes/{d}/resolve");
    let split = json!({ "decision": "SPLIT", "releaseAmount": "30.00", "refundAmount": "20.00" });
    for arg in [
        "distributions[0].amount",
        "distributions[1].amount",
        "distributions[0].address",
        "distributions[1].address",
        "distributions",
    ] {
        m.refused_with(
            &id,
            &resolve,
            Some(split.clone()),
            "resolve_dispute",
            arg,
            "argument 1 (distributions)",
        )
        .await;
        let dispute = m.call("GET", &format!("/disputes/{d}"), None).await;
        assert_ne!(dispute.body["data"]["status"], "RESOLVED", "{arg}");
    }
    let r = m.call("POST", &resolve, Some(split)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    m.clean().await;
}
both_backends!(tamper_single, every_single_release_argument_is_verified);

/// Each argument of each multi-release call OfferHub signs, tampered one at a time:
/// deploy, fund, complete/approve/release a milestone, dispute and resolve one.
async fn every_multi_release_argument_is_verified(url: String) {
    let m = market(&url, &[]).await;
    let id = m
        .order("30", json!([{ "milestoneRef": "design", "title": "Design", "amount": "10" }, { "milestoneRef": "build", "title": "Build", "amount": "20" }]))
        .await;
    let escrow_args = [
        "engagement_id",
        "title",
        "description",
        "platform_fee",
        "roles.approver",
        "roles.service_provider",
        "roles.platform_address",
        "roles.release_signer",
        "roles.dispute_resolver",
        "trustline.address",
        "milestones",
        "milestones[0].amount",
        "milestones[1].amount",
        "milestones[0].receiver",
        "milestones[1].receiver",
        "milestones[1].description",
        "milestones[0].status",
        "milestones[0].evidence",
        "milestones[0].flags.approved",
        "milestones[1].flags.disputed",
        "milestones[1].flags.released",
        "milestones[1].flags.resolved",
    ];
    let check = |a: &str| {
        if a == "milestones" {
            "argument 1.milestones length".to_string()
        } else {
            format!("argument 1.{a}")
        }
    };
    let deploy = format!("/orders/{id}/escrow");
    let deploy_fn = offerhub_sandbox::tw::DEPLOY_MULTI_FN;
    m.refused(&id, &deploy, deploy_fn, "deployer", "argument 0")
        .await;
    for a in escrow_args {
        m.refused(&id, &deploy, deploy_fn, &format!("escrow.{a}"), &check(a))
            .await;
    }
    let r = m.call("POST", &deploy, None).await;
    assert_eq!(
        r.body["data"]["escrow"]["kind"], "multi-release",
        "{}",
        r.body
    );

    let fund = format!("/orders/{id}/escrow/fund");
    m.refused(&id, &fund, "fund_escrow", "signer", "argument 0")
        .await;
    m.refused(&id, &fund, "fund_escrow", "amount", "argument 2")
        .await;
    for a in escrow_args {
        m.refused(&id, &fund, "fund_escrow", a, &check(a)).await;
    }
    let r = m.call("POST", &fund, None).await;
    assert_eq!(r.body["data"]["status"], "IN_PROGRESS", "{}", r.body);

    let ms = |op: &str| format!("/orders/{id}/milestones/design/{op}");
    for (op, function, args) in [
        (
            "complete",
            "change_milestone_status",
            &[
                ("milestone_index", "argument 0"),
                ("new_status", "argument 1"),
                ("new_evidence", "argument 2"),
                ("service_provider", "argument 3"),
            ][..],
        ),
        (
            "approve",
            "approve_milestone",
            &[
                ("milestone_index", "argument 0"),
                ("approver", "argument 1"),
            ][..],
        ),
        (
            "release",
            "release_milestone_funds",
            &[
                ("release_signer", "argument 0"),
                ("milestone_index", "argument 1"),
            ][..],
        ),
    ] {
        for (arg, check) in args {
            m.refused(&id, &ms(op), function, arg, check).await;
        }
        let r = m.call("POST", &ms(op), None).await;
        assert_eq!(r.status, 200, "{op}: {}", r.body);
    }
    // 10 − 0.03 − 0.50, once.
    assert_eq!(m.balance(&m.seller).await["available"], "9.47");

    // A dispute over the remaining milestone, then a split of its 20.
    let dispute = format!("/orders/{id}/resolution/dispute");
    let body = json!({ "openedBy": "BUYER", "reason": "QUALITY_ISSUE" });
    for (arg, check) in [("signer", "argument 0"), ("milestone_index", "argument 1")] {
        m.refused_with(
            &id,
            &dispute,
            Some(body.clone()),
            "dispute_milestone",
            arg,
            check,
        )
        .await;
    }
    let d = open_dispute(&m, &id, "BUYER").await;
    let resolve = format!("/disputes/{d}/resolve");
    let split = json!({ "decision": "SPLIT", "releaseAmount": "12.00", "refundAmount": "8.00" });
    for (arg, check) in [
        ("dispute_resolver", "argument 0"),
        ("milestone_index", "argument 1"),
        ("distributions[0].amount", "argument 2 (distributions)"),
        ("distributions[1].amount", "argument 2 (distributions)"),
        ("distributions[0].address", "argument 2 (distributions)"),
        ("distributions[1].address", "argument 2 (distributions)"),
        ("distributions", "argument 2 (distributions)"),
    ] {
        m.refused_with(
            &id,
            &resolve,
            Some(split.clone()),
            "resolve_milestone_dispute",
            arg,
            check,
        )
        .await;
    }
    let r = m.call("POST", &resolve, Some(split)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["order"]["status"], "CLOSED", "{}", r.body);
    m.matches_chain(&m.seller, &m.seller_address).await;
    m.matches_chain(&m.buyer, &m.buyer_address).await;
    m.clean().await;
}
both_backends!(tamper_multi, every_multi_release_argument_is_verified);

/// `update-escrow` through OfferHub's Trustless Work client (not exposed by the API: an
/// order's terms are fixed): before funding it builds an envelope for the platform that
/// the verifier accepts for the new properties and refuses for others; once funded the
/// contract refuses it.
async fn update_escrow_through_the_client(url: String) {
    use offerhub::trustless::verify::{self, Arg, Expected};
    let m = market(&url, &[]).await;
    let id = m.order("30", json!([])).await;
    let r = m.call("POST", &format!("/orders/{id}/escrow"), None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let contract = r.body["data"]["escrow"]["contractId"]
        .as_str()
        .unwrap()
        .to_string();
    // The sandbox serves Trustless Work beside Horizon and takes any key.
    let tw =
        offerhub::trustless::TrustlessWork::new(m.sandbox.parse().unwrap(), "sandbox".into(), 45)
            .unwrap();
    let platform = offerhub::services::wallets::platform(&m.t.store)
        .await
        .unwrap()
        .unwrap()
        .public_key;
    let mut escrow = tw.escrows(std::slice::from_ref(&contract)).await.unwrap()[0].clone();
    escrow["title"] = json!("Logo design, revised");
    let xdr = tw
        .build_update(
            offerhub::domain::escrow::EscrowKind::SingleRelease,
            &contract,
            &platform,
            &escrow,
        )
        .await
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expected = |title: &str| Expected {
        source: platform.clone(),
        contract: Some(contract.clone()),
        functions: vec!["update_escrow"],
        args: vec![
            Arg::Address(platform.clone()),
            Arg::Fields(vec![
                ("engagement_id", Arg::Str(id.clone())),
                ("title", Arg::Str(title.to_string())),
            ]),
        ],
        max_fee: 10_000_000,
        max_validity_secs: 900,
    };
    verify::verify(&xdr, &expected("Logo design, revised"), now).unwrap();
    let refused = verify::verify(&xdr, &expected("Logo design"), now).unwrap_err();
    assert_eq!(refused.code.as_str(), "XDR_VERIFICATION_FAILED");
    // Funded: the contract refuses any update (docs/PROVIDERS.md, Trustless Work:
    // contract rules).
    let r = m
        .call("POST", &format!("/orders/{id}/escrow/fund"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let e = tw
        .build_update(
            offerhub::domain::escrow::EscrowKind::SingleRelease,
            &contract,
            &platform,
            &escrow,
        )
        .await
        .unwrap_err();
    assert!(e.http_status() >= 400, "{e}");
    assert!(e.http_status() != 500, "{e}");
    m.clean().await;
}
both_backends!(update_escrow_on, update_escrow_through_the_client);

/// A sequence race on a step's source account (Trustless Work built the transaction
/// with a number another transaction used first: `tx_bad_seq`) is rebuilt, never
/// surfaced: deploy and fund still succeed, once.
async fn sequence_races_are_rebuilt(url: String) {
    let m = market(&url, &[]).await;
    let id = m.order("20", json!([])).await;
    let arm = || async {
        reqwest::Client::new()
            .post(format!("{}/_sandbox/faults", m.sandbox))
            .json(&json!({ "staleSequence": 1 }))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    };
    arm().await;
    let r = m.call("POST", &format!("/orders/{id}/escrow"), None).await;
    assert!(r.status == 201 || r.status == 202, "{}", r.body);
    for _ in 0..200 {
        let o = m.call("GET", &format!("/orders/{id}"), None).await;
        if o.body["data"]["status"] == "ESCROW_FUNDING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    arm().await;
    let r = m
        .call("POST", &format!("/orders/{id}/escrow/fund"), None)
        .await;
    assert!(r.status == 200 || r.status == 202, "{}", r.body);
    let mut status = Value::Null;
    for _ in 0..200 {
        let o = m.call("GET", &format!("/orders/{id}"), None).await;
        status = o.body["data"]["status"].clone();
        if status == "IN_PROGRESS" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "IN_PROGRESS");
    assert_eq!(m.invocations("fund_escrow").await, 1, "funded once");
    m.clean().await;
}
both_backends!(sequence_race_on, sequence_races_are_rebuilt);

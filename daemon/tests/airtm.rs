//! Airtm mode through the API against the sandbox's Airtm simulator over real HTTP
//! (payins with checkout, payouts, user lookup, Svix-signed webhooks delivered to the
//! daemon on a loopback port) — SQLite and PostgreSQL. Every flow ends with the ledger
//! equal to the chain (the treasury settles fiat as USDC) and the ledger verified.

mod common;

use std::time::Duration;

use common::{TestApp, app_with_sandbox, assert_error};
use offerhub::ledger;
use offerhub::services::{reconcile, wallets};
use offerhub_testkit::both_backends;
use serde_json::{Value, json};

const SECRET: &str = "whsec_c2FuZGJveC13ZWJob29rLXNlY3JldC1mb3ItdGVzdHM=";
const OTHER_SECRET: &str = "whsec_YW5vdGhlci1lbmRwb2ludC1zZWNyZXQtbm90LW91cnM=";

struct Airtm {
    t: TestApp,
    key: String,
    sandbox: String,
    daemon: String,
    http: reqwest::Client,
}

async fn setup(url: &str) -> Airtm {
    let (t, sandbox) = app_with_sandbox(
        url,
        &[
            ("PAYMENT_PROVIDER", "airtm"),
            ("AIRTM_WEBHOOK_SECRET", SECRET),
            ("AIRTM_RECONCILE_SECS", "3600"),
        ],
    )
    .await;
    let (_, key) = t.key(&["read", "write", "support"]).await;
    let daemon = t.serve().await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{sandbox}/_sandbox/airtm/webhook-endpoints"))
        .json(&json!({ "url": format!("{daemon}/api/v1/webhooks/airtm"), "secret": SECRET }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    http.post(format!("{sandbox}/_sandbox/airtm/config"))
        .json(&json!({ "retryScale": 0.001 }))
        .send()
        .await
        .unwrap();
    Airtm {
        t,
        key,
        sandbox,
        daemon,
        http,
    }
}

impl Airtm {
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

    /// A user with an active wallet; returns (id, public key).
    async fn user(&self, ext: &str) -> (String, String) {
        let r = self
            .call("POST", "/users", Some(json!({ "externalUserId": ext })))
            .await;
        let id = r.body["data"]["id"].as_str().unwrap().to_string();
        for _ in 0..400 {
            let w = self.call("GET", &format!("/users/{id}/wallet"), None).await;
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

    async fn fund(&self, address: &str, amount: &str) {
        let r = self
            .http
            .post(format!("{}/_sandbox/fund", self.sandbox))
            .json(&json!({ "address": address, "amount": amount, "asset": "USDC" }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    /// Funds the platform wallet (the treasury) with USDC.
    async fn fund_treasury(&self, amount: &str) -> String {
        let p = wallets::platform(&self.t.store).await.unwrap().unwrap();
        self.fund(&p.public_key, amount).await;
        p.public_key
    }

    async fn balance(&self, user: &str) -> Value {
        self.call("GET", &format!("/users/{user}/balance"), None)
            .await
            .body["data"]
            .clone()
    }

    async fn wait_balance(&self, user: &str, available: &str) {
        for _ in 0..400 {
            if self.balance(user).await["available"] == available {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "available of {user} never became {available}: {}",
            self.balance(user).await
        );
    }

    async fn wait_topup(&self, id: &str, status: &str) -> Value {
        for _ in 0..400 {
            let r = self.call("GET", &format!("/topups/{id}"), None).await;
            if r.body["data"]["status"] == status {
                return r.body["data"].clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("top-up {id} never reached {status}");
    }

    async fn sandbox(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        self.http
            .request(method, format!("{}{path}", self.sandbox))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    async fn messages(&self, event_type: &str) -> Vec<Value> {
        self.sandbox(
            reqwest::Method::GET,
            &format!("/_sandbox/airtm/messages?eventType={event_type}"),
            Value::Null,
        )
        .await["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn link(&self, user: &str, email: &str) -> common::Resp {
        self.call(
            "POST",
            &format!("/users/{user}/airtm/link"),
            Some(json!({ "email": email })),
        )
        .await
    }

    async fn topup(&self, user: &str, amount: &str) -> Value {
        let r = self
            .call(
                "POST",
                "/topups",
                Some(
                    json!({ "user_id": user, "amount": amount, "currency": "USD",
                             "return_url": "https://market.example/wallet/ok",
                             "cancel_url": "https://market.example/wallet/cancel" }),
                ),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["data"].clone()
    }

    async fn count(&self, sql: &str, bind: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_string()))
            .bind(bind)
            .fetch_one(self.t.store.reader())
            .await
            .unwrap()
    }

    /// Ledger = chain for every wallet, and the ledger proves itself.
    async fn assert_clean(&self) {
        let sc = self.t.stellar.as_ref().unwrap();
        let mut report = reconcile::wallets(&self.t.store, sc, 4, &|_, _| {})
            .await
            .unwrap();
        // The treasury's float (on chain − fees − external:airtm) is never negative.
        reconcile::platform(&self.t.store, sc, true, &mut report)
            .await
            .unwrap();
        assert!(
            report.is_clean(),
            "{}",
            serde_json::to_string_pretty(&report).unwrap()
        );
        let v = ledger::verify(&self.t.store).await.unwrap();
        assert!(v.is_clean(), "{v:?}");
    }

    /// Posts a webhook to the daemon with the given headers.
    async fn post_webhook(
        &self,
        id: &str,
        ts: i64,
        signature: &str,
        body: &str,
    ) -> reqwest::Response {
        self.http
            .post(format!("{}/api/v1/webhooks/airtm", self.daemon))
            .header("content-type", "application/json")
            .header("svix-id", id)
            .header("svix-timestamp", ts.to_string())
            .header("svix-signature", signature)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }
}

fn sign(secret: &str, id: &str, ts: i64, body: &str) -> String {
    let key = offerhub::airtm::svix::decode_secret(secret).unwrap();
    offerhub::airtm::svix::sign(&key, id, ts, body.as_bytes())
}

async fn topup_credits_exactly_once(url: String) {
    let a = setup(&url).await;
    let (buyer, buyer_address) = a.user("buyer").await;
    a.fund_treasury("1000").await;

    // Linking: bad input, unknown and inactive accounts are refused; nothing stored.
    assert_error(
        &a.link(&buyer, "not-an-email").await,
        400,
        "VALIDATION_ERROR",
    );
    assert_error(
        &a.link(&buyer, "unknown@example.com").await,
        422,
        "AIRTM_USER_NOT_FOUND",
    );
    assert_error(
        &a.link(&buyer, "inactive@example.com").await,
        422,
        "AIRTM_USER_INVALID",
    );
    let r = a.link(&buyer, "buyer@example.com").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["airtm"]["email"], "buyer@example.com");
    assert_eq!(
        r.body["data"]["airtm"]["airtmUserId"]
            .as_str()
            .unwrap()
            .len(),
        36
    );

    // Bad top-ups change nothing.
    for (body, code, field) in [
        (
            json!({ "userId": buyer, "amount": "10.005", "returnUrl": "https://m.example/a", "cancelUrl": "https://m.example/b" }),
            "INVALID_AMOUNT_FORMAT",
            "amount",
        ),
        (
            json!({ "userId": buyer, "amount": "10", "currency": "EUR", "returnUrl": "https://m.example/a", "cancelUrl": "https://m.example/b" }),
            "VALIDATION_ERROR",
            "currency",
        ),
        (
            json!({ "userId": buyer, "amount": "10", "returnUrl": "javascript:alert(1)", "cancelUrl": "https://m.example/b" }),
            "VALIDATION_ERROR",
            "returnUrl",
        ),
    ] {
        let r = a.call("POST", "/topups", Some(body)).await;
        assert_error(&r, 400, code);
        assert!(r.body["error"].to_string().contains(field), "{}", r.body);
    }
    assert_eq!(
        a.count(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM topups WHERE user_id = $1",
            &buyer
        )
        .await,
        0
    );

    let t = a.topup(&buyer, "50.00").await;
    let id = t["id"].as_str().unwrap().to_string();
    assert_eq!(t["status"], "TOPUP_AWAITING_USER_CONFIRMATION");
    let payin = t["airtmPayinId"].as_str().unwrap().to_string();
    let checkout = t["confirmationUri"].as_str().unwrap();
    assert_eq!(checkout, format!("{}/airtm/payin/{payin}", a.sandbox));
    let page = a.http.get(checkout).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Pay $50.00"));

    // The browser return before payment redirects and credits nothing.
    let r =
        a.t.call(
            "GET",
            &format!("/api/v1/topups/{id}/callback?result=confirmed&code={id}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 303);
    let location = r.headers["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://market.example/wallet/ok?topupId="),
        "{location}"
    );
    assert!(location.contains("status=TOPUP_AWAITING_USER_CONFIRMATION"));
    assert_eq!(a.balance(&buyer).await["available"], "0.00");

    // The payer confirms on Airtm's checkout (the form posts, Airtm redirects to our
    // callback). Then the webhook is delivered three times while a refresh races it.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .post(format!("{}/airtm/payin/{payin}/confirm", a.sandbox))
        .form(&[("email", "buyer@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let back = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        back.starts_with(&format!(
            "http://localhost:4000/api/v1/topups/{id}/callback?result=confirmed&code={id}"
        )) || back.contains(&format!("/api/v1/topups/{id}/callback?result=confirmed")),
        "{back}"
    );
    let msg = loop {
        if let Some(m) = a.messages("payin.confirmed").await.into_iter().next() {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let msg_id = msg["id"].as_str().unwrap().to_string();
    let resend = |a: &Airtm| {
        let url = format!("{}/_sandbox/airtm/messages/{msg_id}/resend", a.sandbox);
        let http = a.http.clone();
        async move { http.post(url).send().await.unwrap().status() }
    };
    let refresh_path = format!("/topups/{id}/refresh");
    let (r1, r2, refreshed) =
        tokio::join!(resend(&a), resend(&a), a.call("POST", &refresh_path, None));
    assert!(r1.is_success() && r2.is_success());
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let done = a.wait_topup(&id, "TOPUP_SUCCEEDED").await;
    assert_eq!(done["creditedAmount"], "49.50"); // 1 % Airtm fee in the sandbox
    assert_eq!(done["airtmFee"], "0.50");
    assert!(done["settlementTxHash"].as_str().is_some());
    a.wait_balance(&buyer, "49.50").await;
    // Once: one journal transaction, one topup.succeeded, one inbox row for the message.
    assert_eq!(a.count("SELECT CAST(COUNT(*) AS BIGINT) FROM journal_transactions WHERE kind = 'topup' AND reference = $1", &id).await, 1);
    assert_eq!(a.count("SELECT CAST(COUNT(*) AS BIGINT) FROM events WHERE event_type = 'topup.succeeded' AND resource_id = $1", &id).await, 1);
    assert_eq!(a.count("SELECT CAST(COUNT(*) AS BIGINT) FROM events WHERE event_type = 'balance.credited' AND resource_id = $1", &buyer).await, 1);
    assert_eq!(
        a.count(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM inbound_webhooks WHERE event_id = $1",
            &msg_id
        )
        .await,
        1
    );
    // Audit rows: Airtm's status changes, the signed treasury transfer, the credit.
    for action in [
        "topup.created",
        "topup.provider_status",
        "topup.confirmed",
        "treasury.transfer_signed",
        "topup.succeeded",
    ] {
        assert!(
            a.count(&format!("SELECT CAST(COUNT(*) AS BIGINT) FROM audit_logs WHERE action = '{action}' AND resource_id = $1"), &id).await >= 1,
            "{action}"
        );
    }
    assert_eq!(a.count("SELECT CAST(COUNT(*) AS BIGINT) FROM audit_logs WHERE action = 'treasury.transfer_signed' AND resource_id = $1", &id).await, 1);
    // The chain agrees: the treasury paid 49.50 USDC to the buyer's wallet.
    let sc = a.t.stellar.as_ref().unwrap();
    let acct = sc.horizon.account(&buyer_address).await.unwrap().unwrap();
    assert_eq!(
        acct.credit(&sc.usdc.code, &sc.usdc_issuer)
            .unwrap()
            .to_string(),
        "49.50"
    );
    // Let the webhook worker drain, then nothing more moves.
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.wait_balance(&buyer, "49.50").await;
    let r = a
        .call(
            "GET",
            &format!("/topups?userId={buyer}&status=TOPUP_SUCCEEDED"),
            None,
        )
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    // An unknown status is named, not an empty page.
    let r = a.call("GET", "/topups?status=SUCCEEDED", None).await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert_eq!(r.body["error"]["details"]["field"], "status");
    // A succeeded top-up cannot be canceled.
    assert_error(
        &a.call("POST", &format!("/topups/{id}/cancel"), None).await,
        409,
        "INVALID_STATE_TRANSITION",
    );

    // A second top-up canceled by the buyer: Airtm cancels, nothing is credited.
    let t2 = a.topup(&buyer, "20").await;
    let id2 = t2["id"].as_str().unwrap();
    let r = a.call("POST", &format!("/topups/{id2}/cancel"), None).await;
    assert_eq!(r.body["data"]["status"], "TOPUP_CANCELED", "{}", r.body);
    assert_eq!(r.body["data"]["airtmStatus"], "CANCELED");
    a.wait_balance(&buyer, "49.50").await;
    a.assert_clean().await;
}

async fn forged_or_stale_webhooks_are_refused_and_the_reconciler_catches_up(url: String) {
    let a = setup(&url).await;
    let (buyer, _) = a.user("buyer").await;
    a.fund_treasury("100").await;
    // Airtm's webhooks do not reach us (outage); Airtm confirms the payin meanwhile.
    a.sandbox(
        reqwest::Method::POST,
        "/_sandbox/airtm/config",
        json!({ "dropWebhooks": true }),
    )
    .await;
    let t = a.topup(&buyer, "10").await;
    let id = t["id"].as_str().unwrap().to_string();
    let payin = t["airtmPayinId"].as_str().unwrap().to_string();
    let confirmed = a
        .sandbox(
            reqwest::Method::POST,
            &format!("/_sandbox/airtm/payins/{payin}/confirm"),
            json!({ "email": "x@example.com" }),
        )
        .await;
    assert_eq!(confirmed["status"], "CONFIRMED");

    let body = json!({ "type": "payin.confirmed", "data": confirmed }).to_string();
    let now = chrono::Utc::now().timestamp();
    // Forged signature, another endpoint's secret, stale and future timestamps, no
    // signature, and a valid signature over another body: all 401.
    let cases = [
        (
            "msg_forged",
            now,
            "v1,Zm9yZ2VkLXNpZ25hdHVyZS1ub3QtdmFsaWQtYXQtYWxsISE=".to_string(),
            body.clone(),
        ),
        (
            "msg_other",
            now,
            sign(OTHER_SECRET, "msg_other", now, &body),
            body.clone(),
        ),
        (
            "msg_stale",
            now - 600,
            sign(SECRET, "msg_stale", now - 600, &body),
            body.clone(),
        ),
        (
            "msg_future",
            now + 600,
            sign(SECRET, "msg_future", now + 600, &body),
            body.clone(),
        ),
        ("msg_nosig", now, String::new(), body.clone()),
        (
            "msg_body",
            now,
            sign(SECRET, "msg_body", now, "{}"),
            body.clone(),
        ),
    ];
    for (mid, ts, sig, b) in &cases {
        let r = a.post_webhook(mid, *ts, sig, b).await;
        assert_eq!(r.status(), 401, "{mid}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "UNAUTHORIZED", "{mid}");
    }
    assert_eq!(
        a.count(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM inbound_webhooks WHERE event_type = $1",
            "payin.confirmed"
        )
        .await,
        0
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        a.call("GET", &format!("/topups/{id}"), None).await.body["data"]["status"],
        "TOPUP_AWAITING_USER_CONFIRMATION"
    );
    assert_eq!(a.balance(&buyer).await["available"], "0.00");

    // A valid signature with a body that only names an unrelated code is stored and
    // ignored; a duplicate svix-id is acknowledged without a second row.
    let stray = json!({ "type": "payin.confirmed", "data": { "id": "x", "code": "someone-else" } })
        .to_string();
    let r = a
        .post_webhook(
            "msg_stray",
            now,
            &sign(SECRET, "msg_stray", now, &stray),
            &stray,
        )
        .await;
    assert_eq!(r.status(), 200);
    // The receipt in the API's envelope.
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"], json!({"received": true, "duplicate": false}));
    assert!(v["meta"]["requestId"].is_string(), "{v}");
    let r = a
        .post_webhook(
            "msg_stray",
            now,
            &sign(SECRET, "msg_stray", now, &stray),
            &stray,
        )
        .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"], json!({"received": true, "duplicate": true}));
    assert_eq!(
        a.count(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM inbound_webhooks WHERE event_id = $1",
            "msg_stray"
        )
        .await,
        1
    );

    // The reconciler re-reads the open top-up from Airtm and credits it, once.
    let ac = a.t.airtm.as_ref().unwrap();
    offerhub::services::airtm::reconcile(&a.t.store, ac, 0)
        .await
        .unwrap();
    offerhub::services::airtm::reconcile(&a.t.store, ac, 0)
        .await
        .unwrap();
    a.wait_topup(&id, "TOPUP_SUCCEEDED").await;
    a.wait_balance(&buyer, "9.90").await;
    assert_eq!(a.count("SELECT CAST(COUNT(*) AS BIGINT) FROM journal_transactions WHERE kind = 'topup' AND reference = $1", &id).await, 1);
    for _ in 0..200 {
        if a.count("SELECT CAST(COUNT(*) AS BIGINT) FROM inbound_webhooks WHERE event_id = $1 AND status = 'IGNORED'", "msg_stray").await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(a.count("SELECT CAST(COUNT(*) AS BIGINT) FROM inbound_webhooks WHERE event_id = $1 AND status = 'IGNORED'", "msg_stray").await, 1);
    a.assert_clean().await;
}

async fn payouts_complete_fail_and_cancel(url: String) {
    let a = setup(&url).await;
    let (seller, seller_address) = a.user("seller").await;
    let treasury = a.fund_treasury("5").await;
    a.fund(&seller_address, "100").await;
    a.wait_balance(&seller, "100.00").await;

    let withdraw = |amount: &str, commit: bool, kind: &str| json!({ "userId": seller, "amount": amount, "destinationType": kind, "destinationRef": "Bancolombia ****1234", "commit": commit });
    // Not linked yet.
    assert_error(
        &a.call("POST", "/withdrawals", Some(withdraw("30", false, "bank")))
            .await,
        422,
        "AIRTM_USER_NOT_LINKED",
    );
    assert_eq!(a.link(&seller, "seller@example.com").await.status, 200);
    assert_error(
        &a.call(
            "POST",
            "/withdrawals",
            Some(withdraw("1.001", false, "bank")),
        )
        .await,
        400,
        "INVALID_AMOUNT_FORMAT",
    );
    assert_error(
        &a.call("POST", "/withdrawals", Some(withdraw("500", false, "bank")))
            .await,
        422,
        "INSUFFICIENT_FUNDS",
    );

    // Created, then committed: Airtm completes, the USDC is swept to the treasury.
    let r = a
        .call("POST", "/withdrawals", Some(withdraw("30", false, "bank")))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let w1 = r.body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["data"]["status"], "WITHDRAWAL_CREATED");
    assert_eq!(r.body["data"]["airtmStatus"], "CREATED");
    assert_eq!(a.balance(&seller).await["reserved"], "30.00");
    let r = a
        .call("POST", &format!("/withdrawals/{w1}/commit"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["data"]["status"], "WITHDRAWAL_COMPLETED",
        "{}",
        r.body
    );
    assert!(r.body["data"]["settlementTxHash"].as_str().is_some());
    let b = a.balance(&seller).await;
    assert_eq!(
        (b["available"].as_str(), b["reserved"].as_str()),
        (Some("70.00"), Some("0.00"))
    );
    assert_error(
        &a.call("POST", &format!("/withdrawals/{w1}/commit"), None)
            .await,
        409,
        "WITHDRAWAL_NOT_COMMITTABLE",
    );
    assert_error(
        &a.call("POST", &format!("/withdrawals/{w1}/cancel"), None)
            .await,
        409,
        "INVALID_STATE_TRANSITION",
    );
    let sc = a.t.stellar.as_ref().unwrap();
    let t = sc.horizon.account(&treasury).await.unwrap().unwrap();
    assert_eq!(
        t.credit(&sc.usdc.code, &sc.usdc_issuer)
            .unwrap()
            .to_string(),
        "35.00"
    );

    // A payout Airtm fails: the hold returns to available.
    assert_eq!(a.link(&seller, "seller+fail@example.com").await.status, 200);
    let r = a
        .call(
            "POST",
            "/withdrawals",
            Some(withdraw("20", true, "airtm_balance")),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let w2 = r.body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["data"]["status"], "WITHDRAWAL_FAILED", "{}", r.body);
    let b = a.balance(&seller).await;
    assert_eq!(
        (b["available"].as_str(), b["reserved"].as_str()),
        (Some("70.00"), Some("0.00"))
    );

    // A payout waiting on the recipient, canceled: the hold returns too.
    assert_eq!(
        a.link(&seller, "seller+pending@example.com").await.status,
        200
    );
    let r = a
        .call(
            "POST",
            "/withdrawals",
            Some(withdraw("10", true, "airtm_balance")),
        )
        .await;
    let w3 = r.body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.body["data"]["status"], "WITHDRAWAL_PENDING_USER_ACTION",
        "{}",
        r.body
    );
    assert_eq!(a.balance(&seller).await["reserved"], "10.00");
    let r = a
        .call("POST", &format!("/withdrawals/{w3}/cancel"), None)
        .await;
    assert_eq!(
        r.body["data"]["status"], "WITHDRAWAL_CANCELED",
        "{}",
        r.body
    );
    let b = a.balance(&seller).await;
    assert_eq!(
        (b["available"].as_str(), b["reserved"].as_str()),
        (Some("70.00"), Some("0.00"))
    );

    // A pending payout Airtm later completes (webhook only): settled from the webhook.
    let r = a
        .call(
            "POST",
            "/withdrawals",
            Some(withdraw("15", true, "airtm_balance")),
        )
        .await;
    let w4 = r.body["data"]["id"].as_str().unwrap().to_string();
    let payout = r.body["data"]["airtmPayoutId"]
        .as_str()
        .unwrap()
        .to_string();
    a.sandbox(
        reqwest::Method::POST,
        &format!("/_sandbox/airtm/payouts/{payout}/complete"),
        Value::Null,
    )
    .await;
    for _ in 0..400 {
        if a.call("GET", &format!("/withdrawals/{w4}"), None)
            .await
            .body["data"]["status"]
            == "WITHDRAWAL_COMPLETED"
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        a.call("GET", &format!("/withdrawals/{w4}"), None)
            .await
            .body["data"]["status"],
        "WITHDRAWAL_COMPLETED"
    );
    a.wait_balance(&seller, "55.00").await;

    // Events of each withdrawal, and exactly one hold resolution each.
    for (w, last) in [
        (&w1, "withdrawal.completed"),
        (&w2, "withdrawal.failed"),
        (&w3, "withdrawal.canceled"),
        (&w4, "withdrawal.completed"),
    ] {
        assert_eq!(a.count(&format!("SELECT CAST(COUNT(*) AS BIGINT) FROM events WHERE event_type = '{last}' AND resource_id = $1"), w).await, 1, "{w} {last}");
    }
    a.assert_clean().await;
}

async fn airtm_routes_without_airtm_mode(url: String) {
    let (t, _) = app_with_sandbox(&url, &[]).await;
    let (_, key) = t.key(&["read", "write"]).await;
    let r = t
        .call("POST", "/api/v1/topups", Some(&key), Some(&json!({ "userId": "usr_x", "amount": "1", "returnUrl": "https://a.example", "cancelUrl": "https://a.example" }).to_string()))
        .await;
    assert_error(&r, 422, "FEATURE_NOT_ENABLED");
    let r = t
        .call("POST", "/api/v1/webhooks/airtm", None, Some("{}"))
        .await;
    assert_error(&r, 422, "FEATURE_NOT_ENABLED");
}

both_backends!(topup_credits_exactly_once_on, topup_credits_exactly_once);
both_backends!(
    forged_or_stale_webhooks_are_refused_and_the_reconciler_catches_up_on,
    forged_or_stale_webhooks_are_refused_and_the_reconciler_catches_up
);
both_backends!(
    payouts_complete_fail_and_cancel_on,
    payouts_complete_fail_and_cancel
);
both_backends!(
    airtm_routes_without_airtm_mode_on,
    airtm_routes_without_airtm_mode
);

/// Top-ups still awaiting the buyer after Airtm's 15-day payin expiry are closed
/// (`TOPUP_CANCELED`, `topup.expired`, payin canceled at Airtm); one Airtm confirmed
/// meanwhile is re-read and credited instead; recent ones are left alone.
async fn unpaid_topups_expire(url: String) {
    use offerhub::services::topups;
    let a = setup(&url).await;
    let (buyer, _) = a.user("buyer").await;
    a.fund_treasury("100").await;
    assert_eq!(a.link(&buyer, "buyer@example.com").await.status, 200);
    let stale = a.topup(&buyer, "10").await;
    let paid = a.topup(&buyer, "20").await;
    let recent = a.topup(&buyer, "30").await;
    let id = |t: &Value| t["id"].as_str().unwrap().to_string();
    let (stale_id, paid_id, recent_id) = (id(&stale), id(&paid), id(&recent));
    for t in [&stale_id, &paid_id, &recent_id] {
        a.wait_topup(t, "TOPUP_AWAITING_USER_CONFIRMATION").await;
    }
    // Airtm confirms one payin, but its webhook never reaches us.
    a.sandbox(
        reqwest::Method::POST,
        "/_sandbox/airtm/config",
        json!({ "dropWebhooks": true }),
    )
    .await;
    let payin = paid["airtmPayinId"].as_str().unwrap();
    let confirmed = a
        .sandbox(
            reqwest::Method::POST,
            &format!("/_sandbox/airtm/payins/{payin}/confirm"),
            json!({ "email": "buyer@example.com" }),
        )
        .await;
    assert_eq!(confirmed["status"], "CONFIRMED");
    // Sixteen days pass for two of them.
    let old = offerhub::clock::format_ts(chrono::Utc::now() - chrono::Duration::days(16));
    let mut db = a.t.store.begin().await.unwrap();
    for t in [&stale_id, &paid_id] {
        sqlx::query("UPDATE topups SET created_at = $1 WHERE id = $2")
            .bind(&old)
            .bind(t)
            .execute(db.conn())
            .await
            .unwrap();
    }
    db.commit().await.unwrap();
    let ac = a.t.airtm.as_ref().unwrap();
    let n = topups::expire_stale(&a.t.store, ac, topups::PAYIN_EXPIRY_SECS, 50)
        .await
        .unwrap();
    assert_eq!(n, 1, "only the unpaid old top-up expires");
    let s = a.wait_topup(&stale_id, "TOPUP_CANCELED").await;
    assert_eq!(s["status"], "TOPUP_CANCELED");
    a.wait_topup(&paid_id, "TOPUP_SUCCEEDED").await;
    a.wait_balance(&buyer, "19.80").await; // 20 − Airtm's 1 % fee
    a.wait_topup(&recent_id, "TOPUP_AWAITING_USER_CONFIRMATION")
        .await;
    // Airtm's side is canceled too; a re-read and a second pass change nothing.
    let stale_payin = stale["airtmPayinId"].as_str().unwrap();
    let at_airtm = ac.client.payin(stale_payin).await.unwrap().unwrap();
    assert_eq!(at_airtm.status, offerhub::airtm::PayinStatus::Canceled);
    let again = topups::refresh(&a.t.store, ac, &stale_id).await.unwrap();
    assert_eq!(again.status.as_str(), "TOPUP_CANCELED");
    assert_eq!(
        topups::expire_stale(&a.t.store, ac, topups::PAYIN_EXPIRY_SECS, 50)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        a.count(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM events WHERE event_type = 'topup.expired' AND resource_id = $1",
            &stale_id
        )
        .await,
        1
    );
    a.assert_clean().await;
}
both_backends!(unpaid_topups_expire_on, unpaid_topups_expire);

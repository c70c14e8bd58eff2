//! The production lifecycle (issue #21) through the API, on SQLite and PostgreSQL:
//! automatic release after an inspection window (on PostgreSQL with two daemons sharing
//! the database and the sandbox: released exactly once), a dispute stopping the clock,
//! validation of the window, expiry of stale reservations (hold returned), and the
//! scheduled reconciliation announcing a discrepancy.

mod common;

use std::time::Duration;

use common::{
    MASTER, TestApp, app, app_on_sandbox, app_with_sandbox, app_with_workers, assert_error,
};
use offerhub_testkit::both_backends;
use serde_json::{Value, json};

async fn call(
    t: &TestApp,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> common::Resp {
    let b = body.map(|b| b.to_string());
    t.call(method, &format!("/api/v1{path}"), Some(key), b.as_deref())
        .await
}

async fn wallet_user(t: &TestApp, key: &str, ext: &str) -> (String, String) {
    let r = call(
        t,
        key,
        "POST",
        "/users",
        Some(json!({ "externalUserId": ext })),
    )
    .await;
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    for _ in 0..400 {
        let w = call(t, key, "GET", &format!("/users/{id}/wallet"), None).await;
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

async fn events_of(t: &TestApp, order: &str) -> Vec<(String, Value)> {
    // Numbered first (PostgreSQL numbers after commit).
    offerhub::sequencer::catch_up(&t.store, Duration::from_secs(5))
        .await
        .unwrap();
    sqlx::query_as::<_, (String, String)>(
        "SELECT event_type, data FROM events WHERE resource_id = $1 OR data LIKE $2 ORDER BY seq",
    )
    .bind(order)
    .bind(format!("%{order}%"))
    .fetch_all(t.store.reader())
    .await
    .unwrap()
    .into_iter()
    .map(|(k, d)| (k, serde_json::from_str(&d).unwrap_or(Value::Null)))
    .collect()
}

fn count(events: &[(String, Value)], kind: &str) -> usize {
    events.iter().filter(|(k, _)| k == kind).count()
}

async fn invocations(sandbox: &str, function: &str) -> usize {
    let v: Value = reqwest::get(format!("{sandbox}/_sandbox/invocations"))
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

/// An order of `amount` funded in escrow, created with `extra` fields.
async fn funded(
    t: &TestApp,
    key: &str,
    buyer: &str,
    seller: &str,
    extra: Value,
) -> (String, Value) {
    let mut body =
        json!({ "buyerId": buyer, "sellerId": seller, "amount": "100", "title": "Logo design" });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let r = call(t, key, "POST", "/orders", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    let created = r.body["data"].clone();
    let r = call(t, key, "POST", &format!("/orders/{id}/reserve"), None).await;
    assert_eq!(r.body["data"]["status"], "FUNDS_RESERVED", "{}", r.body);
    let r = call(t, key, "POST", &format!("/orders/{id}/escrow"), None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = call(t, key, "POST", &format!("/orders/{id}/escrow/fund"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "IN_PROGRESS");
    let _ = created;
    (id, r.body["data"].clone())
}

/// Done when (issue #21): an order with a 2-second window is released automatically
/// exactly once — on PostgreSQL with two daemons running against one database and one
/// sandbox (SQLite: one daemon owns the file). A second order's dispute stops its clock.
async fn auto_release(url: String) {
    let (a, sandbox) = app_with_sandbox(&url, &[("TRUSTLESS_PLATFORM_FEE", "5")]).await;
    let (_, key) = a.key(&["read", "write", "support"]).await;
    let (buyer, buyer_address) = wallet_user(&a, &key, "buyer").await;
    let (seller, _) = wallet_user(&a, &key, "seller").await;
    reqwest::Client::new()
        .post(format!("{sandbox}/_sandbox/fund"))
        .json(&json!({ "address": buyer_address, "amount": "500", "asset": "USDC" }))
        .send()
        .await
        .unwrap();
    for _ in 0..400 {
        let b = call(&a, &key, "GET", &format!("/users/{buyer}/balance"), None).await;
        if b.body["data"]["available"] == "500.00" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The second daemon (PostgreSQL): same database, same sandbox, its own workers.
    let b = if url.starts_with("postgres") {
        Some(app_on_sandbox(&url, &sandbox, &[("TRUSTLESS_PLATFORM_FEE", "5")]).await)
    } else {
        None
    };

    let (id, order) = funded(
        &a,
        &key,
        &buyer,
        &seller,
        json!({ "autoReleaseAfter": "PT2S" }),
    )
    .await;
    assert_eq!(order["autoReleaseAfter"], "PT2S");
    assert_eq!(order["autoReleaseStatus"], "SCHEDULED", "{order}");
    assert!(order["autoReleaseAt"].as_str().is_some(), "{order}");
    // A second order whose buyer disputes before its window (3 s) expires.
    let (disputed, _) = funded(&a, &key, &buyer, &seller, json!({ "autoReleaseAfter": 3 })).await;
    let r = call(
        &a,
        &key,
        "POST",
        &format!("/orders/{disputed}/resolution/dispute"),
        Some(json!({ "openedBy": "BUYER", "reason": "NOT_DELIVERED" })),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);

    // Released by whichever daemon claimed it; read through the other one.
    let reader = b.as_ref().unwrap_or(&a);
    let mut last = Value::Null;
    for _ in 0..600 {
        last = call(reader, &key, "GET", &format!("/orders/{id}"), None)
            .await
            .body["data"]
            .clone();
        if last["status"] == "CLOSED" && last["autoReleaseStatus"] == "RELEASED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["status"], "CLOSED", "{last}");
    assert_eq!(last["autoReleaseStatus"], "RELEASED", "{last}");
    assert_eq!(last["escrow"]["status"], "RELEASED");
    // Both daemons kept looking for due orders meanwhile: still exactly one release.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        invocations(&sandbox, "release_funds").await,
        1,
        "one release contract call"
    );
    let seller_balance = call(&a, &key, "GET", &format!("/users/{seller}/balance"), None).await;
    assert_eq!(seller_balance.body["data"]["available"], "94.70");
    let buyer_balance = call(&a, &key, "GET", &format!("/users/{buyer}/balance"), None).await;
    assert_eq!(buyer_balance.body["data"]["available"], "300.00");
    let events = events_of(&a, &id).await;
    assert_eq!(count(&events, "order.auto_release_scheduled"), 1);
    assert_eq!(count(&events, "order.auto_released"), 1);
    assert_eq!(count(&events, "order.release_requested"), 1);
    assert_eq!(count(&events, "order.released"), 1);
    let requested = events
        .iter()
        .find(|(k, _)| k == "order.release_requested")
        .unwrap();
    assert_eq!(requested.1["requestedBy"], "system");
    let audited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_logs WHERE resource_id = $1 AND action = 'order.auto_released' AND actor_type = 'system'",
    )
    .bind(&id)
    .fetch_one(a.store.reader())
    .await
    .unwrap();
    assert_eq!(audited, 1, "the automatic release is audited, actor system");

    // The disputed order: the clock stopped, nothing released.
    let d = call(&a, &key, "GET", &format!("/orders/{disputed}"), None)
        .await
        .body["data"]
        .clone();
    assert_eq!(d["autoReleaseStatus"], "STOPPED", "{d}");
    assert_eq!(d["status"], "DISPUTED", "{d}");
    assert_eq!(
        count(&events_of(&a, &disputed).await, "order.auto_released"),
        0
    );

    assert!(offerhub::ledger::verify(&a.store).await.unwrap().is_clean());
    let sc = a.stellar.as_ref().unwrap();
    let mut report = offerhub::services::reconcile::wallets(&a.store, sc, 4, &|_, _| {})
        .await
        .unwrap();
    offerhub::services::reconcile::escrows(&a.store, a.escrow.as_ref().unwrap(), &mut report)
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:#?}");
}
both_backends!(auto_release_after_window, auto_release);

/// The window is validated with a 400 naming the field and nothing created; the
/// marketplace default applies when the order gives none.
async fn window_validation(url: String) {
    let t = app(&url, &[("OFFERHUB_AUTO_RELEASE_AFTER", "P7D")]).await;
    let (_, key) = t.key(&["read", "write"]).await;
    let mut users = Vec::new();
    for ext in ["b", "s"] {
        let r = call(
            &t,
            &key,
            "POST",
            "/users",
            Some(json!({ "externalUserId": ext })),
        )
        .await;
        users.push(r.body["data"]["id"].as_str().unwrap().to_string());
    }
    let body = |extra: Value| {
        let mut b =
            json!({ "buyerId": users[0], "sellerId": users[1], "amount": "10", "title": "T" });
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    for (extra, field) in [
        (json!({ "autoReleaseAfter": "7 days" }), "autoReleaseAfter"),
        (json!({ "autoReleaseAfter": "P1M" }), "autoReleaseAfter"),
        (json!({ "autoReleaseAfter": 0 }), "autoReleaseAfter"),
        (json!({ "autoReleaseAfter": "P3651D" }), "autoReleaseAfter"),
        (json!({ "autoReleaseAfter": true }), "autoReleaseAfter"),
        (json!({ "autoReleaseAt": "tomorrow" }), "autoReleaseAt"),
        (
            json!({ "autoReleaseAt": "2020-01-01T00:00:00Z" }),
            "autoReleaseAt",
        ),
        (
            json!({ "autoReleaseAfter": "P1D", "autoReleaseAt": "2099-01-01T00:00:00Z" }),
            "autoReleaseAt",
        ),
    ] {
        let r = call(&t, &key, "POST", "/orders", Some(body(extra.clone()))).await;
        assert_error(&r, 400, "VALIDATION_ERROR");
        assert_eq!(
            r.body["error"]["details"]["field"], field,
            "{extra}: {}",
            r.body
        );
    }
    let listed = call(&t, &key, "GET", "/orders", None).await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        0,
        "nothing created"
    );
    // The marketplace default, an explicit window, seconds, an absolute time.
    let r = call(&t, &key, "POST", "/orders", Some(body(json!({})))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["autoReleaseAfter"], "P7D");
    assert_eq!(r.body["data"]["autoReleaseStatus"], "PENDING");
    assert_eq!(r.body["data"]["autoReleaseAt"], Value::Null);
    let r = call(
        &t,
        &key,
        "POST",
        "/orders",
        Some(body(json!({ "autoReleaseAfter": "PT36H" }))),
    )
    .await;
    assert_eq!(r.body["data"]["autoReleaseAfter"], "P1DT12H");
    let r = call(
        &t,
        &key,
        "POST",
        "/orders",
        Some(body(json!({ "auto_release_after": 90 }))),
    )
    .await;
    assert_eq!(r.body["data"]["autoReleaseAfter"], "PT1M30S");
    let r = call(
        &t,
        &key,
        "POST",
        "/orders",
        Some(body(
            json!({ "autoReleaseAt": "2099-01-01T01:00:00+01:00" }),
        )),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["autoReleaseAt"], "2099-01-01T00:00:00.000Z");
    assert_eq!(r.body["data"]["autoReleaseAfter"], Value::Null);
    assert_eq!(r.body["data"]["autoReleaseStatus"], "PENDING");
    // Without a default, orders release only on request.
    let t2 = app(
        &offerhub_testkit::fresh_database_url(offerhub_testkit::Backend::Sqlite).await,
        &[],
    )
    .await;
    let (_, key2) = t2.key(&["read", "write"]).await;
    let mut u2 = Vec::new();
    for ext in ["b", "s"] {
        let r = call(
            &t2,
            &key2,
            "POST",
            "/users",
            Some(json!({ "externalUserId": ext })),
        )
        .await;
        u2.push(r.body["data"]["id"].as_str().unwrap().to_string());
    }
    let r = call(
        &t2,
        &key2,
        "POST",
        "/orders",
        Some(json!({ "buyerId": u2[0], "sellerId": u2[1], "amount": "10", "title": "T" })),
    )
    .await;
    assert_eq!(r.body["data"]["autoReleaseStatus"], Value::Null);
    assert_eq!(r.body["data"]["autoReleaseAfter"], Value::Null);
}
both_backends!(auto_release_window_validation, window_validation);

/// Done when (issue #21): an expired reservation returns its hold — balance available
/// again, the order closed, `order.expired` once — and the ledger verifies.
async fn reservation_expiry(url: String) {
    let t = app_with_workers(&url, &[("OFFERHUB_ORDER_RESERVATION_TTL", "PT1S")]).await;
    let (_, key) = t.key(&["read", "write"]).await;
    let mut users = Vec::new();
    for ext in ["buyer", "seller"] {
        let r = call(
            &t,
            &key,
            "POST",
            "/users",
            Some(json!({ "externalUserId": ext })),
        )
        .await;
        users.push(r.body["data"]["id"].as_str().unwrap().to_string());
    }
    let (buyer, seller) = (users[0].clone(), users[1].clone());
    let r = t
        .call(
            "POST",
            &format!("/api/v1/users/{buyer}/balance/adjustments"),
            Some(MASTER),
            Some(&json!({ "amount": "150", "reason": "test funding" }).to_string()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let order_body =
        json!({ "buyerId": buyer, "sellerId": seller, "amount": "100", "title": "Logo" });
    let r = call(&t, &key, "POST", "/orders", Some(order_body.clone())).await;
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    // Created but never reserved: not a reservation, never expires.
    let r = call(&t, &key, "POST", "/orders", Some(order_body)).await;
    let unreserved = r.body["data"]["id"].as_str().unwrap().to_string();
    let r = call(&t, &key, "POST", &format!("/orders/{id}/reserve"), None).await;
    assert_eq!(r.body["data"]["status"], "FUNDS_RESERVED", "{}", r.body);
    let b = call(&t, &key, "GET", &format!("/users/{buyer}/balance"), None).await;
    assert_eq!(
        (
            b.body["data"]["available"].as_str(),
            b.body["data"]["reserved"].as_str()
        ),
        (Some("50.00"), Some("100.00"))
    );

    let mut order = Value::Null;
    for _ in 0..200 {
        order = call(&t, &key, "GET", &format!("/orders/{id}"), None)
            .await
            .body["data"]
            .clone();
        if order["status"] == "CLOSED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(order["status"], "CLOSED", "{order}");
    assert_eq!(order["cancelReason"], "reservation_expired");
    let b = call(&t, &key, "GET", &format!("/users/{buyer}/balance"), None).await;
    assert_eq!(
        b.body["data"]["available"], "150.00",
        "the hold is returned"
    );
    assert_eq!(b.body["data"]["reserved"], "0.00");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let events = events_of(&t, &id).await;
    assert_eq!(count(&events, "order.expired"), 1);
    assert_eq!(count(&events, "order.canceled"), 1);
    assert_eq!(count(&events, "balance.released"), 1);
    let expired = events.iter().find(|(k, _)| k == "order.expired").unwrap();
    assert_eq!(expired.1["amountReleased"], "100.00");
    assert_eq!(expired.1["reservationTtl"], "PT1S");
    let other = call(&t, &key, "GET", &format!("/orders/{unreserved}"), None).await;
    assert_eq!(other.body["data"]["status"], "ORDER_CREATED");
    // A canceled order cannot be canceled again; the expiry changed nothing else.
    let again = call(
        &t,
        &key,
        "POST",
        &format!("/orders/{id}/cancel"),
        Some(json!({})),
    )
    .await;
    assert_error(&again, 409, "INVALID_STATE_TRANSITION");
    assert!(offerhub::ledger::verify(&t.store).await.unwrap().is_clean());
    let audit = offerhub::audit::verify(&t.store).await.unwrap();
    assert!(
        matches!(audit, offerhub::audit::Verification::Intact { .. }),
        "{audit:?}"
    );
}
both_backends!(expired_reservation_returns_its_hold, reservation_expiry);

/// Done when (issue #21): the scheduled reconciliation emits a discrepancy event when
/// USDC reaches a managed wallet without a ledger entry (sent to the platform wallet from
/// outside), once, and stores its runs (`offerhub reconcile --last`).
async fn scheduled_reconciliation(url: String) {
    let (t, sandbox) = app_with_sandbox(&url, &[("OFFERHUB_RECONCILE_EVERY", "PT1S")]).await;
    let (_, key) = t.key(&["read", "write"]).await;
    wallet_user(&t, &key, "someone").await;
    // PostgreSQL: a second daemon with the same schedule; one leads, one run at a time.
    let second = if url.starts_with("postgres") {
        Some(app_on_sandbox(&url, &sandbox, &[("OFFERHUB_RECONCILE_EVERY", "PT1S")]).await)
    } else {
        None
    };
    use offerhub::services::reconcile_schedule;
    let mut first = None;
    for _ in 0..200 {
        first = reconcile_schedule::last(&t.store, None).await.unwrap();
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = first.expect("a scheduled run is stored");
    assert_eq!(first.discrepancies, 0, "{:#?}", first.report);
    let platform = offerhub::services::wallets::platform(&t.store)
        .await
        .unwrap()
        .unwrap()
        .public_key;
    reqwest::Client::new()
        .post(format!("{sandbox}/_sandbox/fund"))
        .json(&json!({ "address": platform, "amount": "3", "asset": "USDC" }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let discrepancies = || async {
        offerhub::sequencer::catch_up(&t.store, Duration::from_secs(5))
            .await
            .unwrap();
        sqlx::query_scalar::<_, String>(
            "SELECT data FROM events WHERE event_type = 'reconciliation.discrepancy' ORDER BY seq",
        )
        .fetch_all(t.store.reader())
        .await
        .unwrap()
    };
    let mut found = Vec::new();
    for _ in 0..200 {
        found = discrepancies().await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(found.len(), 1, "a discrepancy event");
    let data: Value = serde_json::from_str(&found[0]).unwrap();
    assert_eq!(data["kind"], "platform");
    assert_eq!(data["difference"], "3.00");
    assert_eq!(data["publicKey"], platform.as_str());
    // Later runs see the same difference: not announced again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(discrepancies().await.len(), 1, "announced once");
    let open: Vec<String> = sqlx::query_scalar("SELECT subject FROM reconciliation_discrepancies")
        .fetch_all(t.store.reader())
        .await
        .unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(open[0].starts_with("platform:wal_"), "{open:?}");
    if second.is_some() {
        let holders: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 7301002 AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(t.store.reader())
        .await
        .unwrap();
        assert_eq!(
            holders, 1,
            "exactly one daemon leads the scheduled reconciliation"
        );
        // Runs do not overlap: each starts after the previous one finished.
        let runs: Vec<(String, String)> =
            sqlx::query_as("SELECT started_at, finished_at FROM reconciliation_runs ORDER BY seq")
                .fetch_all(t.store.reader())
                .await
                .unwrap();
        for w in runs.windows(2) {
            assert!(w[1].0 >= w[0].1, "overlapping runs: {w:?}");
        }
    }
    let last = reconcile_schedule::last(&t.store, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.discrepancies, 1);
    assert_eq!(last.report["platform"]["status"], "mismatch");
    let scopes: Vec<String> = sqlx::query_scalar("SELECT DISTINCT scope FROM reconciliation_runs")
        .fetch_all(t.store.reader())
        .await
        .unwrap();
    assert!(
        scopes.contains(&"FULL".to_string()) && scopes.contains(&"ACTIVITY".to_string()),
        "{scopes:?}"
    );
}
both_backends!(
    scheduled_reconciliation_announces_discrepancies,
    scheduled_reconciliation
);

/// A multi-release order's clock starts when the seller has completed its last
/// milestone (not at funding), then releases every milestone through the release saga.
async fn milestone_clock(url: String) {
    let (a, sandbox) = app_with_sandbox(&url, &[]).await;
    let (_, key) = a.key(&["read", "write"]).await;
    let (buyer, buyer_address) = wallet_user(&a, &key, "buyer").await;
    let (seller, _) = wallet_user(&a, &key, "seller").await;
    reqwest::Client::new()
        .post(format!("{sandbox}/_sandbox/fund"))
        .json(&json!({ "address": buyer_address, "amount": "100", "asset": "USDC" }))
        .send()
        .await
        .unwrap();
    for _ in 0..400 {
        let b = call(&a, &key, "GET", &format!("/users/{buyer}/balance"), None).await;
        if b.body["data"]["available"] == "100.00" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let milestones = json!([
        { "milestoneRef": "m1", "title": "Sketch", "amount": "40" },
        { "milestoneRef": "m2", "title": "Final", "amount": "60" }
    ]);
    let (id, order) = funded(
        &a,
        &key,
        &buyer,
        &seller,
        json!({ "autoReleaseAfter": "PT1S", "milestones": milestones }),
    )
    .await;
    assert_eq!(
        order["autoReleaseStatus"], "PENDING",
        "funding alone starts nothing: {order}"
    );
    let complete = |m: &'static str| {
        let (a, key, id) = (&a, &key, &id);
        async move {
            let r = call(
                a,
                key,
                "POST",
                &format!("/orders/{id}/milestones/{m}/complete"),
                None,
            )
            .await;
            assert!(r.status == 200 || r.status == 202, "{}", r.body);
            for _ in 0..400 {
                let o = call(a, key, "GET", &format!("/orders/{id}"), None)
                    .await
                    .body["data"]
                    .clone();
                if o["milestones"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x["milestoneRef"] == m && x["status"] == "COMPLETED")
                {
                    return o;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("milestone {m} not completed");
        }
    };
    let o = complete("m1").await;
    assert_eq!(
        o["autoReleaseStatus"], "PENDING",
        "one milestone still open: {o}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(invocations(&sandbox, "release_milestone_funds").await, 0);
    complete("m2").await;
    let mut last = Value::Null;
    for _ in 0..600 {
        last = call(&a, &key, "GET", &format!("/orders/{id}"), None)
            .await
            .body["data"]
            .clone();
        if last["status"] == "CLOSED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["status"], "CLOSED", "{last}");
    assert_eq!(last["autoReleaseStatus"], "RELEASED");
    assert_eq!(invocations(&sandbox, "release_milestone_funds").await, 2);
    let events = events_of(&a, &id).await;
    assert_eq!(count(&events, "order.auto_release_scheduled"), 1);
    assert_eq!(count(&events, "order.auto_released"), 1);
    assert!(offerhub::ledger::verify(&a.store).await.unwrap().is_clean());
}
both_backends!(milestone_completion_starts_the_clock, milestone_clock);

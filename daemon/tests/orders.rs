//! Orders, idempotency and the event outbox — on SQLite and PostgreSQL.

mod common;

use common::{MASTER, TestApp, app, assert_error};
use offerhub_testkit::both_backends;
use serde_json::json;

struct Parties {
    key: String,
    buyer: String,
    seller: String,
}

async fn parties(t: &TestApp, funds: &str) -> Parties {
    let (_, key) = t.key(&["read", "write"]).await;
    let mut ids = Vec::new();
    for ext in ["buyer", "seller"] {
        let r = t
            .call(
                "POST",
                "/api/v1/users",
                Some(&key),
                Some(&json!({ "externalUserId": ext }).to_string()),
            )
            .await;
        ids.push(r.body["data"]["id"].as_str().unwrap().to_string());
    }
    if funds != "0" {
        let body = json!({ "amount": funds, "reason": "test funding" }).to_string();
        let r = t
            .call(
                "POST",
                &format!("/api/v1/users/{}/balance/adjustments", ids[0]),
                Some(MASTER),
                Some(&body),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    Parties {
        key,
        buyer: ids[0].clone(),
        seller: ids[1].clone(),
    }
}

fn order_body(p: &Parties, amount: &str) -> String {
    json!({ "buyerId": p.buyer, "sellerId": p.seller, "amount": amount, "currency": "USD", "title": "Logo design" }).to_string()
}

async fn balance(t: &TestApp, p: &Parties, user: &str) -> (String, String) {
    let r = t
        .call(
            "GET",
            &format!("/api/v1/users/{user}/balance"),
            Some(&p.key),
            None,
        )
        .await;
    (
        r.body["data"]["available"].as_str().unwrap().into(),
        r.body["data"]["reserved"].as_str().unwrap().into(),
    )
}

async fn event_types(t: &TestApp) -> Vec<String> {
    offerhub::sequencer::catch_up(&t.store, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    offerhub::events::after(&t.store, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

async fn order_lifecycle(url: String) {
    let t = app(&url, &[]).await;
    let p = parties(&t, "150.00").await;

    // Validation, each naming its field.
    let bad = |b: serde_json::Value| {
        let t = t.clone();
        let k = p.key.clone();
        async move {
            t.call("POST", "/api/v1/orders", Some(&k), Some(&b.to_string()))
                .await
        }
    };
    let base =
        json!({ "buyerId": p.buyer, "sellerId": p.seller, "amount": "100.00", "title": "x" });
    let mut same = base.clone();
    same["sellerId"] = json!(p.buyer);
    assert_error(&bad(same).await, 400, "INVALID_REQUEST");
    let mut ghost = base.clone();
    ghost["sellerId"] = json!("usr_ghost");
    let r = bad(ghost).await;
    assert_error(&r, 404, "USER_NOT_FOUND");
    assert_eq!(r.body["error"]["details"]["field"], "sellerId");
    for (field, value) in [
        ("amount", json!("0.50")),
        ("amount", json!("60000")),
        ("amount", json!("1e2")),
        ("currency", json!("EUR")),
        ("title", json!("")),
    ] {
        let mut b = base.clone();
        b[field] = value;
        let r = bad(b).await;
        assert_eq!(r.status, 400, "{field}: {}", r.body);
        assert_eq!(r.body["error"]["details"]["field"], field);
    }
    let mut ms = base.clone();
    ms["milestones"] = json!([{ "milestoneRef": "m1", "title": "a", "amount": "60" }, { "milestoneRef": "m2", "title": "b", "amount": "30" }]);
    assert_eq!(
        bad(ms).await.body["error"]["details"]["field"],
        "milestones"
    );
    offerhub::sequencer::catch_up(&t.store, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        offerhub::events::after(&t.store, 0, 100)
            .await
            .unwrap()
            .iter()
            .all(|e| e.event_type != "order.created")
    );

    // Create with milestones and snake_case aliases.
    let r = t
        .call("POST", "/api/v1/orders", Some(&p.key), Some(&json!({
            "buyer_id": p.buyer, "seller_id": p.seller, "amount": "100", "title": "Logo",
            "client_order_ref": "mkt-order-1", "metadata": { "sku": 7 },
            "milestones": [{ "milestone_ref": "m1", "title": "Draft", "amount": "40" }, { "milestoneRef": "m2", "title": "Final", "amount": "60.00" }]
        }).to_string()))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let o = r.body["data"].clone();
    let id = o["id"].as_str().unwrap().to_string();
    assert_eq!(o["status"], "ORDER_CREATED");
    assert_eq!(o["amount"], "100.00");
    assert_eq!(o["milestones"][1]["amount"], "60.00");
    assert_eq!(o["metadata"]["sku"], 7);
    assert!(o["escrow"].is_null());
    // clientOrderRef is unique.
    let dup = t.call("POST", "/api/v1/orders", Some(&p.key), Some(&json!({ "buyerId": p.buyer, "sellerId": p.seller, "amount": "5", "title": "y", "clientOrderRef": "mkt-order-1" }).to_string())).await;
    assert_error(&dup, 409, "CLIENT_ORDER_REF_CONFLICT");
    assert_eq!(dup.body["error"]["details"]["orderId"], id.as_str());

    // Reserve: balance moves from available to reserved.
    let r = t
        .call(
            "POST",
            &format!("/api/v1/orders/{id}/reserve"),
            Some(&p.key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "FUNDS_RESERVED");
    assert_eq!(
        balance(&t, &p, &p.buyer).await,
        ("50.00".into(), "100.00".into())
    );
    let again = t
        .call(
            "POST",
            &format!("/api/v1/orders/{id}/reserve"),
            Some(&p.key),
            None,
        )
        .await;
    assert_error(&again, 409, "INVALID_STATE_TRANSITION");
    assert_eq!(
        again.body["error"]["details"]["currentState"],
        "FUNDS_RESERVED"
    );
    assert_eq!(
        again.body["error"]["details"]["allowedStates"],
        json!(["ORDER_CREATED"])
    );

    // A second order beyond the remaining balance: 422, nothing changes.
    let r2 = t
        .call(
            "POST",
            "/api/v1/orders",
            Some(&p.key),
            Some(&order_body(&p, "60.00")),
        )
        .await;
    let id2 = r2.body["data"]["id"].as_str().unwrap().to_string();
    let r = t
        .call(
            "POST",
            &format!("/api/v1/orders/{id2}/reserve"),
            Some(&p.key),
            None,
        )
        .await;
    assert_error(&r, 422, "INSUFFICIENT_FUNDS");
    let r = t
        .call("GET", &format!("/api/v1/orders/{id2}"), Some(&p.key), None)
        .await;
    assert_eq!(r.body["data"]["status"], "ORDER_CREATED");

    // Filters combine with AND.
    let r = t
        .call(
            "GET",
            &format!("/api/v1/orders?buyerId={}&status=FUNDS_RESERVED", p.buyer),
            Some(&p.key),
            None,
        )
        .await;
    let ids: Vec<_> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec![id.clone()]);
    let r = t
        .call(
            "GET",
            &format!("/api/v1/orders?sellerId={}&buyerId={}", p.buyer, p.buyer),
            Some(&p.key),
            None,
        )
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 0);
    let r = t
        .call("GET", "/api/v1/orders?status=NOPE", Some(&p.key), None)
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "status");
    assert_error(
        &t.call("GET", "/api/v1/orders/ord_missing", Some(&p.key), None)
            .await,
        404,
        "ORDER_NOT_FOUND",
    );

    // Cancel releases the hold; a closed order cannot be cancelled again.
    let r = t
        .call(
            "POST",
            &format!("/api/v1/orders/{id}/cancel"),
            Some(&p.key),
            Some(r#"{"reason": "buyer changed mind"}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "CLOSED");
    assert_eq!(r.body["data"]["cancelReason"], "buyer changed mind");
    assert_eq!(
        balance(&t, &p, &p.buyer).await,
        ("150.00".into(), "0.00".into())
    );
    let r = t
        .call(
            "POST",
            &format!("/api/v1/orders/{id}/cancel"),
            Some(&p.key),
            None,
        )
        .await;
    assert_error(&r, 409, "INVALID_STATE_TRANSITION");
    assert_eq!(r.body["error"]["details"]["currentState"], "CLOSED");
    // Cancel straight from ORDER_CREATED.
    let r = t
        .call(
            "POST",
            &format!("/api/v1/orders/{id2}/cancel"),
            Some(&p.key),
            None,
        )
        .await;
    assert_eq!(r.body["data"]["status"], "CLOSED");

    let types = event_types(&t).await;
    let order_events: Vec<_> = types
        .iter()
        .filter(|t| t.starts_with("order.") || t.starts_with("balance.r"))
        .cloned()
        .collect();
    assert_eq!(
        order_events,
        [
            "order.created",
            "balance.reserved",
            "order.funds_reserved",
            "order.created",
            "balance.released",
            "order.canceled",
            "order.closed",
            "order.canceled",
            "order.closed",
        ]
    );
    offerhub::sequencer::catch_up(&t.store, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let evs = offerhub::events::after(&t.store, 0, 1000).await.unwrap();
    let reserved = evs
        .iter()
        .find(|e| e.event_type == "balance.reserved")
        .unwrap();
    assert_eq!(reserved.data["amount"], "100.00");
    assert_eq!(reserved.data["newAvailableBalance"], "50.00");
    assert_eq!(reserved.data["newReservedBalance"], "100.00");
    let seqs: Vec<i64> = evs.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "sequence numbers are gapless"
    );

    let report = offerhub::ledger::verify(&t.store).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.violations);
}
both_backends!(order_lifecycle_on, order_lifecycle);

async fn concurrent_reserves_make_one_hold(url: String) {
    let t = app(&url, &[("OFFERHUB_RATE_LIMIT_PER_MINUTE", "100000")]).await;
    let p = parties(&t, "100.00").await;
    let r = t
        .call(
            "POST",
            "/api/v1/orders",
            Some(&p.key),
            Some(&order_body(&p, "70.00")),
        )
        .await;
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (t, k, id) = (t.clone(), p.key.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            t.call(
                "POST",
                &format!("/api/v1/orders/{id}/reserve"),
                Some(&k),
                None,
            )
            .await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        let r = task.await.unwrap();
        match r.status.as_u16() {
            200 => ok += 1,
            409 => assert_eq!(r.body["error"]["code"], "INVALID_STATE_TRANSITION"),
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(
        balance(&t, &p, &p.buyer).await,
        ("30.00".into(), "70.00".into())
    );
    let holds: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM holds")
        .fetch_one(t.store.reader())
        .await
        .unwrap();
    assert_eq!(holds, 1);
    assert!(offerhub::ledger::verify(&t.store).await.unwrap().is_clean());
}
both_backends!(concurrent_reserves_on, concurrent_reserves_make_one_hold);

async fn idempotent_order_creation(url: String) {
    let t = app(&url, &[("OFFERHUB_RATE_LIMIT_PER_MINUTE", "100000")]).await;
    let p = parties(&t, "0").await;
    let body = order_body(&p, "25.00");
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (t, k, b) = (t.clone(), p.key.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            t.call_with(
                "POST",
                "/api/v1/orders",
                Some(&k),
                Some(&b),
                &[("idempotency-key", "7f1c2a9e-order-1")],
            )
            .await
        }));
    }
    let mut bodies = std::collections::BTreeSet::new();
    let mut replays = 0;
    for task in tasks {
        let r = task.await.unwrap();
        assert_eq!(r.status, 201, "{}", r.body);
        if r.headers
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
        {
            replays += 1;
        }
        bodies.insert(r.body.to_string());
    }
    assert_eq!(bodies.len(), 1, "50 identical bodies");
    assert_eq!(replays, 49);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(t.store.reader())
        .await
        .unwrap();
    assert_eq!(n, 1);

    // Same key, other body: 409. Same key with reordered JSON keys: a replay.
    let other = order_body(&p, "26.00");
    let r = t
        .call_with(
            "POST",
            "/api/v1/orders",
            Some(&p.key),
            Some(&other),
            &[("idempotency-key", "7f1c2a9e-order-1")],
        )
        .await;
    assert_error(&r, 409, "IDEMPOTENCY_CONFLICT");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let reordered = format!(
        r#"{{"title":{},"currency":"USD","amount":{},"sellerId":{},"buyerId":{}}}"#,
        v["title"], v["amount"], v["sellerId"], v["buyerId"]
    );
    let r = t
        .call_with(
            "POST",
            "/api/v1/orders",
            Some(&p.key),
            Some(&reordered),
            &[("idempotency-key", "7f1c2a9e-order-1")],
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.headers["idempotent-replayed"], "true");
    // Scoped per API key: another key runs its own request.
    let (_, other_key) = t.key(&["read", "write"]).await;
    let r = t
        .call_with(
            "POST",
            "/api/v1/orders",
            Some(&other_key),
            Some(&body),
            &[("idempotency-key", "7f1c2a9e-order-1")],
        )
        .await;
    assert!(r.headers.get("idempotent-replayed").is_none());
    // A 4xx is stored and replayed too; a malformed key is refused.
    let r = t
        .call_with(
            "POST",
            "/api/v1/orders/ord_nope/reserve",
            Some(&p.key),
            None,
            &[("idempotency-key", "k2")],
        )
        .await;
    assert_error(&r, 404, "ORDER_NOT_FOUND");
    let r = t
        .call_with(
            "POST",
            "/api/v1/orders/ord_nope/reserve",
            Some(&p.key),
            None,
            &[("idempotency-key", "k2")],
        )
        .await;
    assert_eq!(r.headers["idempotent-replayed"], "true");
    let r = t
        .call_with(
            "POST",
            "/api/v1/orders",
            Some(&p.key),
            Some(&body),
            &[("idempotency-key", "has space")],
        )
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "Idempotency-Key");
    // The record was committed with the order (same transaction).
    let state: String = sqlx::query_scalar("SELECT state FROM idempotency_keys WHERE idempotency_key = '7f1c2a9e-order-1' AND path = '/api/v1/orders' LIMIT 1")
        .fetch_one(t.store.reader())
        .await
        .unwrap();
    assert_eq!(state, "COMPLETED");
}
both_backends!(idempotency_on, idempotent_order_creation);

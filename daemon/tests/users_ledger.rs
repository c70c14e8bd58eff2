//! Users, balances, adjustments and the audit API — on SQLite and PostgreSQL.

mod common;

use common::{MASTER, TestApp, app, assert_error};
use offerhub_testkit::both_backends;
use serde_json::json;

async fn new_user(t: &TestApp, key: &str, ext: &str) -> String {
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(key),
            Some(&json!({ "externalUserId": ext }).to_string()),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["data"]["id"].as_str().unwrap().to_string()
}

async fn adjust(t: &TestApp, user: &str, amount: &str) -> common::Resp {
    let body = json!({ "amount": amount, "reason": "test" }).to_string();
    t.call(
        "POST",
        &format!("/api/v1/users/{user}/balance/adjustments"),
        Some(MASTER),
        Some(&body),
    )
    .await
}

async fn users_crud(url: String) {
    let t = app(&url, &[]).await;
    let (_, rw) = t.key(&["read", "write"]).await;
    let (_, ro) = t.key(&["read"]).await;

    let body = r#"{"externalUserId": "mkt-1", "email": "a@example.com", "type": "BUYER"}"#;
    let r = t.call("POST", "/api/v1/users", Some(&rw), Some(body)).await;
    assert_eq!(r.status, 201);
    let u = &r.body["data"];
    let id = u["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("usr_"));
    assert_eq!(u["type"], "BUYER");
    assert_eq!(u["status"], "ACTIVE");
    // Known externalUserId (snake_case alias accepted): 200 with the same user.
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(&rw),
            Some(r#"{"external_user_id": "mkt-1"}"#),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["id"], id.as_str());
    // Validation.
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(&rw),
            Some(r#"{"externalUserId": "x", "email": "nope"}"#),
        )
        .await;
    assert_error(&r, 400, "VALIDATION_ERROR");
    assert_eq!(r.body["error"]["details"]["field"], "email");
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(&rw),
            Some(r#"{"externalUserId": "x", "type": "ADMIN"}"#),
        )
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "type");
    let r = t
        .call(
            "POST",
            "/api/v1/users",
            Some(&rw),
            Some(r#"{"externalUserId": ""}"#),
        )
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "externalUserId");
    assert_error(
        &t.call("POST", "/api/v1/users", Some(&ro), Some(body)).await,
        403,
        "INSUFFICIENT_SCOPE",
    );

    let r = t
        .call("GET", &format!("/api/v1/users/{id}"), Some(&ro), None)
        .await;
    assert_eq!(r.body["data"]["email"], "a@example.com");
    assert_error(
        &t.call("GET", "/api/v1/users/usr_missing", Some(&ro), None)
            .await,
        404,
        "USER_NOT_FOUND",
    );
    assert_error(
        &t.call("GET", "/api/v1/users/../etc", Some(&ro), None).await,
        404,
        "NOT_FOUND",
    );

    new_user(&t, &rw, "mkt-2").await;
    let r = t
        .call("GET", "/api/v1/users?externalUserId=mkt-2", Some(&ro), None)
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["data"][0]["externalUserId"], "mkt-2");
    let r = t
        .call("GET", "/api/v1/users?limit=1", Some(&ro), None)
        .await;
    assert_eq!(r.body["meta"]["pagination"]["hasMore"], true);

    let r = t
        .call(
            "PATCH",
            &format!("/api/v1/users/{id}"),
            Some(&rw),
            Some(r#"{"status": "SUSPENDED", "email": null}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "SUSPENDED");
    assert!(r.body["data"]["email"].is_null());
    let r = t
        .call(
            "PATCH",
            &format!("/api/v1/users/{id}"),
            Some(&rw),
            Some(r#"{"status": "GONE"}"#),
        )
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "status");
    let r = t
        .call(
            "GET",
            &format!("/api/v1/audit/logs?resourceId={id}"),
            Some(MASTER),
            None,
        )
        .await;
    let actions: Vec<_> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, vec!["user.suspended", "user.created"]);
    assert_eq!(r.body["data"][0]["before"]["status"], "ACTIVE");
    assert_eq!(r.body["data"][0]["after"]["status"], "SUSPENDED");
    assert!(r.body["data"][0]["requestId"].is_string());
}
both_backends!(users_crud_on, users_crud);

async fn concurrent_creates_yield_one_user(url: String) {
    let t = app(&url, &[]).await;
    let (_, rw) = t.key(&["read", "write"]).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let t = t.clone();
        let rw = rw.clone();
        tasks.push(tokio::spawn(async move {
            t.call(
                "POST",
                "/api/v1/users",
                Some(&rw),
                Some(r#"{"externalUserId": "same"}"#),
            )
            .await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut created = 0;
    for task in tasks {
        let r = task.await.unwrap();
        assert!(r.status == 200 || r.status == 201, "{}", r.body);
        if r.status == 201 {
            created += 1;
        }
        ids.insert(r.body["data"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(created, 1);
}
both_backends!(concurrent_creates_on, concurrent_creates_yield_one_user);

async fn balances_and_adjustments(url: String) {
    let t = app(&url, &[]).await;
    let (_, rw) = t.key(&["read", "write"]).await;
    let (_, support) = t.key(&["support"]).await;
    let u = new_user(&t, &rw, "b-1").await;

    let r = t
        .call(
            "GET",
            &format!("/api/v1/users/{u}/balance"),
            Some(&rw),
            None,
        )
        .await;
    assert_eq!(
        r.body["data"],
        json!({"userId": u, "available": "0.00", "reserved": "0.00", "total": "0.00", "currency": "USD"})
    );

    // Adjustments need `support`.
    let body = r#"{"amount": "10.00", "reason": "goodwill"}"#;
    assert_error(
        &t.call(
            "POST",
            &format!("/api/v1/users/{u}/balance/adjustments"),
            Some(&rw),
            Some(body),
        )
        .await,
        403,
        "INSUFFICIENT_SCOPE",
    );
    let r = t
        .call(
            "POST",
            &format!("/api/v1/users/{u}/balance/adjustments"),
            Some(&support),
            Some(body),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["balance"]["available"], "10.00");
    assert_eq!(adjust(&t, &u, "-2.5").await.status, 201);
    // Never below zero; nothing changes.
    let r = adjust(&t, &u, "-7.5000001").await;
    assert_error(&r, 422, "INSUFFICIENT_FUNDS");
    // Bad amounts name the field.
    for bad in ["1e3", "1.00000001", "abc", "0"] {
        let r = adjust(&t, &u, bad).await;
        assert_error(&r, 400, "INVALID_AMOUNT_FORMAT");
        assert_eq!(r.body["error"]["details"]["field"], "amount");
    }
    let r = t
        .call(
            "POST",
            &format!("/api/v1/users/{u}/balance/adjustments"),
            Some(MASTER),
            Some(r#"{"amount": 5, "reason": "x"}"#),
        )
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "amount");
    let r = t
        .call(
            "POST",
            &format!("/api/v1/users/{u}/balance/adjustments"),
            Some(MASTER),
            Some(r#"{"amount": "5", "reason": " "}"#),
        )
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "reason");
    assert_error(&adjust(&t, "usr_nobody", "1").await, 404, "USER_NOT_FOUND");
    // A well-formed id of no user: 404 too (the posting finds no account, which the
    // ledger answers as the user's 404), nothing written.
    let r = adjust(&t, "usr_L5ayrEL6CzwPcAYRhnaRWmKjSLwBpfRM", "1").await;
    assert_error(&r, 404, "USER_NOT_FOUND");
    assert_eq!(
        r.body["error"]["details"]["userId"],
        "usr_L5ayrEL6CzwPcAYRhnaRWmKjSLwBpfRM"
    );
    assert!(offerhub::ledger::verify(&t.store).await.unwrap().is_clean());

    let r = t
        .call("GET", &format!("/api/v1/balances/{u}"), Some(&rw), None)
        .await;
    assert_eq!(r.body["data"]["available"], "7.50");
    assert_eq!(r.body["data"]["total"], "7.50");

    let r = t
        .call(
            "GET",
            &format!("/api/v1/users/{u}/balance/history?limit=1"),
            Some(&rw),
            None,
        )
        .await;
    assert_eq!(r.body["data"][0]["amount"], "-2.50");
    assert_eq!(r.body["data"][0]["balanceAfter"], "7.50");
    assert_eq!(r.body["data"][0]["account"], "available");
    assert_eq!(r.body["data"][0]["kind"], "adjustment");
    let cursor = r.body["meta"]["pagination"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t
        .call(
            "GET",
            &format!("/api/v1/users/{u}/balance/history?cursor={cursor}"),
            Some(&rw),
            None,
        )
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["data"][0]["amount"], "10.00");

    // Audit API: support only, filters by action and actor, time range validated.
    assert_error(
        &t.call("GET", "/api/v1/audit/logs", Some(&rw), None).await,
        403,
        "INSUFFICIENT_SCOPE",
    );
    let r = t
        .call(
            "GET",
            "/api/v1/audit/logs?action=balance.adjusted&actorId=master",
            Some(&support),
            None,
        )
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["data"][0]["after"]["amount"], "-2.50");
    let r = t
        .call(
            "GET",
            "/api/v1/audit/logs?from=yesterday",
            Some(&support),
            None,
        )
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "from");
    let r = t
        .call(
            "GET",
            "/api/v1/audit/logs?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z",
            Some(&support),
            None,
        )
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 0);

    let report = offerhub::ledger::verify(&t.store).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.violations);
}
both_backends!(balances_on, balances_and_adjustments);

/// Issue 3 acceptance: 1,000 concurrent -1.00 adjustments against 500.00.
async fn thousand_concurrent_debits(url: String) {
    let t = app(&url, &[("OFFERHUB_RATE_LIMIT_PER_MINUTE", "100000")]).await;
    let (_, rw) = t.key(&["read", "write"]).await;
    let u = new_user(&t, &rw, "hot").await;
    assert_eq!(adjust(&t, &u, "500.00").await.status, 201);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let t = t.clone();
        let u = u.clone();
        tasks.push(tokio::spawn(async move { adjust(&t, &u, "-1.00").await }));
    }
    let (mut ok, mut refused) = (0, 0);
    for task in tasks {
        let r = task.await.unwrap();
        match r.status.as_u16() {
            201 => ok += 1,
            422 => {
                assert_eq!(r.body["error"]["code"], "INSUFFICIENT_FUNDS");
                refused += 1
            }
            other => panic!("unexpected {other}: {}", r.body),
        }
    }
    assert_eq!((ok, refused), (500, 500));
    let r = t
        .call(
            "GET",
            &format!("/api/v1/users/{u}/balance"),
            Some(&rw),
            None,
        )
        .await;
    assert_eq!(r.body["data"]["available"], "0.00");
    let report = offerhub::ledger::verify(&t.store).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.violations);
    assert_eq!(
        offerhub::audit::verify(&t.store).await.unwrap(),
        offerhub::audit::Verification::Intact {
            rows: 1 + 1 + 1 + 500,
            unsequenced: 0
        }
    );
}
both_backends!(thousand_debits_on, thousand_concurrent_debits);

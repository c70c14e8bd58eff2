//! Events: SSE live + resume, filters, history, several daemons — SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use common::{MASTER, TestApp, app};
use offerhub_testkit::both_backends;
use serde_json::json;

async fn create_user(t: &TestApp, key: &str, ext: &str) -> String {
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

async fn sse_live_and_resume(url: String) {
    let t = app(&url, &[]).await;
    let (_, key) = t.key(&["read", "write"]).await;
    let mut sse = t.sse("/api/v1/events", &key, None).await;
    let u1 = create_user(&t, &key, "e1").await;
    let m = sse.take(1).await.remove(0);
    assert_eq!(m.event, "user.created");
    assert!(m.id.starts_with("evt_"));
    assert_eq!(m.data["id"], m.id.as_str());
    assert_eq!(m.data["type"], "user.created");
    assert_eq!(m.data["resourceType"], "user");
    assert_eq!(m.data["resourceId"], u1.as_str());
    assert_eq!(m.data["data"]["externalUserId"], "e1");
    assert!(m.data["occurredAt"].as_str().unwrap().ends_with('Z'));

    create_user(&t, &key, "e2").await;
    create_user(&t, &key, "e3").await;
    let got = sse.take(2).await;
    let resume_from = got[1].id.clone();
    drop(sse); // the client disconnects

    // Missed while disconnected.
    let mut missed = Vec::new();
    for i in 4..=8 {
        missed.push(create_user(&t, &key, &format!("e{i}")).await);
    }
    let mut sse = t.sse("/api/v1/events", &key, Some(&resume_from)).await;
    let replayed = sse.take(5).await;
    let ids: Vec<_> = replayed
        .iter()
        .map(|m| m.data["resourceId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, missed, "every missed event, in order");
    // Then live, with nothing duplicated at the seam.
    let u9 = create_user(&t, &key, "e9").await;
    let live = sse.take(1).await.remove(0);
    assert_eq!(live.data["resourceId"], u9.as_str());
    assert!(
        sse.next(Duration::from_millis(300)).await.is_none(),
        "no duplicates"
    );

    // ?cursor= works like Last-Event-ID; an unknown id is a 400 naming it.
    let mut sse = t
        .sse(
            &format!("/api/v1/events?cursor={}", replayed[3].id),
            &key,
            None,
        )
        .await;
    let two = sse.take(2).await;
    assert_eq!(two[0].id, replayed[4].id);
    assert_eq!(two[1].id, live.id);
    let r = t
        .call_with(
            "GET",
            "/api/v1/events",
            Some(&key),
            None,
            &[("last-event-id", "evt_unknown")],
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["details"]["field"], "Last-Event-ID");
    let r = t
        .call("GET", "/api/v1/events?cursor=evt_unknown", Some(&key), None)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["details"]["field"], "cursor");
    // An empty cursor is no cursor, as on /events/history (which answers 200 to it).
    let _stream = t.sse("/api/v1/events?cursor=", &key, None).await;
    let r = t
        .call("GET", "/api/v1/events/history?cursor=", Some(&key), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = t.call("GET", "/api/v1/events", None, None).await;
    assert_eq!(r.status, 401);
}
both_backends!(sse_resume_on, sse_live_and_resume);

async fn filters_and_history(url: String) {
    let t = app(&url, &[]).await;
    let (_, key) = t.key(&["read", "write"]).await;
    let mut orders_only = t.sse("/api/v1/events?types=order.*", &key, None).await;
    let mut credited = t
        .sse(
            "/api/v1/events?types=balance.credited&types=order.created",
            &key,
            None,
        )
        .await;
    let mut users = t.sse("/api/v1/events?resources=user", &key, None).await;
    let buyer = create_user(&t, &key, "b").await;
    let seller = create_user(&t, &key, "s").await;
    let body = json!({ "amount": "20", "reason": "fund" }).to_string();
    t.call(
        "POST",
        &format!("/api/v1/users/{buyer}/balance/adjustments"),
        Some(MASTER),
        Some(&body),
    )
    .await;
    let r = t
        .call(
            "POST",
            "/api/v1/orders",
            Some(&key),
            Some(
                &json!({ "buyerId": buyer, "sellerId": seller, "amount": "10", "title": "t" })
                    .to_string(),
            ),
        )
        .await;
    let order = r.body["data"]["id"].as_str().unwrap().to_string();
    t.call(
        "POST",
        &format!("/api/v1/orders/{order}/reserve"),
        Some(&key),
        None,
    )
    .await;

    let o: Vec<_> = orders_only
        .take(2)
        .await
        .into_iter()
        .map(|m| m.event)
        .collect();
    assert_eq!(o, ["order.created", "order.funds_reserved"]);
    assert!(orders_only.next(Duration::from_millis(200)).await.is_none());
    let c = credited.take(2).await;
    assert_eq!(c[0].event, "balance.credited");
    assert_eq!(c[0].data["data"]["amount"], "20.00");
    assert_eq!(c[0].data["data"]["newAvailableBalance"], "20.00");
    assert_eq!(c[1].event, "order.created");
    let u: Vec<_> = users.take(4).await.into_iter().map(|m| m.event).collect();
    assert_eq!(
        u,
        [
            "user.created",
            "user.created",
            "balance.credited",
            "balance.reserved"
        ]
    );

    // History: same rows, JSON pages, oldest first.
    let r = t
        .call("GET", "/api/v1/events/history?limit=2", Some(&key), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let page1: Vec<_> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(page1, ["user.created", "user.created"]);
    assert_eq!(r.body["meta"]["pagination"]["hasMore"], true);
    let next = r.body["meta"]["pagination"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_string();
    let r = t
        .call(
            "GET",
            &format!("/api/v1/events/history?limit=10&cursor={next}"),
            Some(&key),
            None,
        )
        .await;
    let rest: Vec<_> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        rest,
        [
            "balance.credited",
            "order.created",
            "balance.reserved",
            "order.funds_reserved"
        ]
    );
    let r = t
        .call(
            "GET",
            "/api/v1/events/history?types=order.*",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    let r = t
        .call(
            "GET",
            "/api/v1/events/history?types=bad%20type",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.body["error"]["details"]["field"], "types");
}
both_backends!(filters_on, filters_and_history);

async fn several_daemons_stream_every_event(url: String) {
    let a = app(&url, &[]).await;
    let b = app(&url, &[]).await; // a second daemon on the same database
    let (_, key) = a.key(&["read", "write"]).await;
    let mut on_b = b.sse("/api/v1/events", &key, None).await;
    let mut on_a = a.sse("/api/v1/events", &key, None).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let t = if i % 2 == 0 { &a } else { &b };
        ids.push(create_user(t, &key, &format!("m{i}")).await);
    }
    for sse in [&mut on_a, &mut on_b] {
        let got: Vec<_> = sse
            .take(5)
            .await
            .into_iter()
            .map(|m| m.data["resourceId"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, ids);
    }
}
both_backends!(several_daemons_on, several_daemons_stream_every_event);

/// Shutdown as `serve` does it, in crypto mode (the deposit monitor holds a Horizon
/// stream open, the activation worker has a wallet to activate) with an SSE client
/// connected: once asked, every worker, the event pump and the SSE forwarder end, and
/// the trackers say so well within 5 s.
async fn shutdown_stops_workers_and_streams(url: String) {
    let sb = offerhub_sandbox::Sandbox::new(offerhub_sandbox::SandboxOptions::default()).unwrap();
    let addr = offerhub_sandbox::start(sb, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{addr}");
    let key = "ab".repeat(32);
    let state = common::state(
        &url,
        &[
            ("STELLAR_HORIZON_URL", base.as_str()),
            ("WALLET_ENCRYPTION_KEY", key.as_str()),
        ],
    )
    .await;
    let workers = offerhub_daemon::workers::start(&state);
    let events = state.events.clone();
    let t = TestApp {
        stellar: state.stellar.clone(),
        escrow: state.escrow.clone(),
        airtm: state.airtm.clone(),
        store: state.store.clone(),
        app: offerhub_daemon::router(state),
    };
    let (_, api_key) = t.key(&["read", "write"]).await;
    let mut sse = t.sse("/api/v1/events", &api_key, None).await;
    create_user(&t, &api_key, "stopping").await;
    assert_eq!(sse.take(1).await.remove(0).event, "user.created");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = std::time::Instant::now();
    workers.stop();
    events.shutdown();
    assert!(workers.stopped(Duration::from_secs(5)).await, "workers");
    assert!(
        events.stopped_within(Duration::from_secs(5)).await,
        "event pump and forwarders"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Events sent before the shutdown may still be read; then the stream ends (rather
    // than waiting out the 5 s).
    let reading = std::time::Instant::now();
    while sse.next(Duration::from_secs(5)).await.is_some() {}
    assert!(
        reading.elapsed() < Duration::from_secs(4),
        "the SSE stream ended"
    );
}
both_backends!(shutdown_on, shutdown_stops_workers_and_streams);

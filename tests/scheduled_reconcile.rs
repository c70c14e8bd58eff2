//! The scheduled reconciliation's service ([`offerhub::services::reconcile_schedule`])
//! against the sandbox over HTTP, on SQLite and PostgreSQL, with no deposit monitor
//! running: a deposit withheld from the ledger is found by the next **activity** run
//! (from the network's payments since the stored paging token, not a full sweep) and
//! announced once as `reconciliation.discrepancy`; crediting it (`reconcile --fix`'s
//! path) resolves it.

mod common;

use offerhub::context::Context;
use offerhub::services::reconcile_schedule;
use offerhub::services::wallets::{self, StellarContext, WalletKind};
use offerhub::store::Store;
use offerhub_testkit::both_backends;

async fn setup(url: &str) -> (Store, StellarContext, String) {
    let store = common::store(url).await;
    let (sc, base) = common::sandbox_context(9).await;
    (store, sc, base)
}

async fn user(store: &Store, ext: &str) -> String {
    common::create_user(store, ext).await
}

async fn discrepancy_events(store: &Store) -> Vec<serde_json::Value> {
    offerhub::sequencer::catch_up(store, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    offerhub::events::after(store, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "reconciliation.discrepancy")
        .map(|e| e.data)
        .collect()
}

async fn withheld_deposit(url: String) {
    let (store, sc, base) = setup(&url).await;
    wallets::ensure_platform(&store, &sc, None).await.unwrap();
    let u = user(&store, "r1").await;
    let w = wallets::create(&store, &Context::system(), &sc, WalletKind::User, Some(&u))
        .await
        .unwrap();
    wallets::activate(&store, &sc, &w.id).await.unwrap();
    let quiet = user(&store, "r2").await;
    let w2 = wallets::create(
        &store,
        &Context::system(),
        &sc,
        WalletKind::User,
        Some(&quiet),
    )
    .await
    .unwrap();
    wallets::activate(&store, &sc, &w2.id).await.unwrap();

    // First run: a full sweep, clean; it stores the network's paging token.
    let first = reconcile_schedule::run(&store, &sc, None, false, 86_400)
        .await
        .unwrap();
    assert_eq!(first.scope, "FULL");
    assert_eq!(first.discrepancies, 0, "{:#}", first.report);
    assert!(first.payments_cursor.is_some());

    // A deposit no monitor credits: on chain 12, ledger 0.
    reqwest::Client::new()
        .post(format!("{base}/_sandbox/fund"))
        .json(&serde_json::json!({ "address": w.public_key, "amount": "12", "asset": "USDC" }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let second = reconcile_schedule::run(&store, &sc, None, false, 86_400)
        .await
        .unwrap();
    assert_eq!(second.scope, "ACTIVITY", "not a full sweep");
    assert_eq!(second.discrepancies, 1, "{:#}", second.report);
    // Only the account with movement was read from Horizon.
    assert_eq!(second.wallets_checked, 1, "{:#}", second.report);
    assert_eq!(second.report["wallets"][0]["userId"], u.as_str());
    let events = discrepancy_events(&store).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "wallet");
    assert_eq!(events[0]["subjectId"], w.id.as_str());
    assert_eq!(events[0]["userId"], u.as_str());
    assert_eq!(events[0]["difference"], "12.00");
    assert_eq!(events[0]["scope"], "ACTIVITY");

    // Runs without movement check nothing more and announce nothing again.
    let third = reconcile_schedule::run(&store, &sc, None, false, 86_400)
        .await
        .unwrap();
    assert_eq!(third.scope, "ACTIVITY");
    assert_eq!(third.wallets_checked, 0);
    // A full sweep finds it again: still not announced twice.
    let full = reconcile_schedule::run(&store, &sc, None, false, 0)
        .await
        .unwrap();
    assert_eq!(full.scope, "FULL");
    assert_eq!(full.discrepancies, 1);
    assert_eq!(discrepancy_events(&store).await.len(), 1, "announced once");

    // Credited (the deposit path of `reconcile --fix`): the next check finds it in order.
    assert_eq!(
        offerhub::services::reconcile::fix(&store, &sc)
            .await
            .unwrap(),
        1
    );
    let after = reconcile_schedule::run(&store, &sc, None, false, 86_400)
        .await
        .unwrap();
    assert_eq!(after.discrepancies, 0, "{:#}", after.report);
    let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reconciliation_discrepancies")
        .fetch_one(store.reader())
        .await
        .unwrap();
    assert_eq!(open, 0, "resolved");
    let last = reconcile_schedule::last(&store, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.id, after.id);
    assert!(offerhub::ledger::verify(&store).await.unwrap().is_clean());
}
both_backends!(withheld_deposit_is_announced, withheld_deposit);

//! Wallet lifecycle against the sandbox, on SQLite and PostgreSQL.

mod common;

use std::sync::Arc;

use offerhub::config::DatabaseUrl;
use offerhub::context::Context;
use offerhub::money::Amount;
use offerhub::services::wallets::{self, StellarContext, WalletKind};
use offerhub::stellar::horizon::Horizon;
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

async fn lifecycle(url: String) {
    let (store, sc, base) = setup(&url).await;
    let platform = wallets::ensure_platform(&store, &sc, None).await.unwrap();
    assert_eq!(platform.status.as_str(), "ACTIVE");
    let p = sc
        .horizon
        .account(&platform.public_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.credit("USDC", &sc.usdc_issuer), Some(Amount::ZERO));
    // Idempotent.
    assert_eq!(
        wallets::ensure_platform(&store, &sc, None)
            .await
            .unwrap()
            .id,
        platform.id
    );

    let u = user(&store, "w1").await;
    let w = wallets::create(&store, &Context::system(), &sc, WalletKind::User, Some(&u))
        .await
        .unwrap();
    assert_eq!(w.status.as_str(), "PENDING_ACTIVATION");
    assert_eq!(
        wallets::create(&store, &Context::system(), &sc, WalletKind::User, Some(&u))
            .await
            .unwrap()
            .id,
        w.id
    );
    // The secret is sealed: the stored value is not the seed and opens only for this wallet.
    let kp = wallets::keypair(&sc, &w).unwrap();
    assert_eq!(kp.public_key(), w.public_key);
    let sealed: String = sqlx::query_scalar("SELECT sealed_secret FROM wallets WHERE id = $1")
        .bind(&w.id)
        .fetch_one(store.reader())
        .await
        .unwrap();
    assert!(sealed.starts_with("v1."));
    assert!(!sealed.contains(kp.secret().as_str()));

    // A transient 503 from Horizon is retried.
    reqwest::Client::new()
        .post(format!("{base}/_sandbox/faults"))
        .json(&serde_json::json!({ "fail5xx": 1 }))
        .send()
        .await
        .unwrap();
    let w = wallets::activate(&store, &sc, &w.id).await.unwrap();
    assert_eq!(w.status.as_str(), "ACTIVE", "{:?}", w.failure_reason);
    let a = sc.horizon.account(&w.public_key).await.unwrap().unwrap();
    assert_eq!(a.credit("USDC", &sc.usdc_issuer), Some(Amount::ZERO));
    assert_eq!(
        a.native(),
        Amount::from_base_units(10_000_000),
        "the XLM float arrived"
    );
    assert_eq!(a.num_sponsored, 3);

    // A "restart" with the envelope stored: it is resubmitted, never signed anew.
    let platform_seq = sc
        .horizon
        .account(&platform.public_key)
        .await
        .unwrap()
        .unwrap()
        .sequence;
    sqlx::query("UPDATE wallets SET status = 'PENDING_ACTIVATION' WHERE id = $1")
        .bind(&w.id)
        .execute(store.reader())
        .await
        .unwrap();
    let again = wallets::activate(&store, &sc, &w.id).await.unwrap();
    assert_eq!(again.status.as_str(), "ACTIVE");
    assert_eq!(again.activation_hash, w.activation_hash);
    assert_eq!(
        sc.horizon
            .account(&platform.public_key)
            .await
            .unwrap()
            .unwrap()
            .sequence,
        platform_seq,
        "no new transaction"
    );
    let attempts: i64 = sqlx::query_scalar("SELECT activation_attempts FROM wallets WHERE id = $1")
        .bind(&w.id)
        .fetch_one(store.reader())
        .await
        .unwrap();
    assert_eq!(attempts, 1);

    // A 504 after applying is settled through the hash.
    let u2 = user(&store, "w2").await;
    let w2 = wallets::create(&store, &Context::system(), &sc, WalletKind::User, Some(&u2))
        .await
        .unwrap();
    reqwest::Client::new()
        .post(format!("{base}/_sandbox/faults"))
        .json(&serde_json::json!({ "timeoutAfterApply": 3 }))
        .send()
        .await
        .unwrap();
    assert_eq!(wallets::activate_pending(&store, &sc, 10).await.unwrap(), 1);
    assert_eq!(
        wallets::for_user(&store, &u2)
            .await
            .unwrap()
            .status
            .as_str(),
        "ACTIVE"
    );
    let _ = w2;
    assert!(matches!(
        offerhub::audit::verify(&store).await.unwrap(),
        offerhub::audit::Verification::Intact { .. }
    ));
}
both_backends!(wallet_lifecycle, lifecycle);

async fn deposits_are_credited_exactly_once(url: String) {
    use offerhub::services::deposits::{self, ManagedWallets};
    let (store, sc, base) = setup(&url).await;
    wallets::ensure_platform(&store, &sc, None).await.unwrap();
    let u = user(&store, "d1").await;
    let w = wallets::create(&store, &Context::system(), &sc, WalletKind::User, Some(&u))
        .await
        .unwrap();
    assert_eq!(
        wallets::activate(&store, &sc, &w.id)
            .await
            .unwrap()
            .status
            .as_str(),
        "ACTIVE"
    );
    let fund = |amount: &'static str| {
        let (base, addr) = (base.clone(), w.public_key.clone());
        async move {
            let r = reqwest::Client::new()
                .post(format!("{base}/_sandbox/fund"))
                .json(&serde_json::json!({ "address": addr, "amount": amount, "asset": "USDC" }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    fund("25").await;
    let mut managed = ManagedWallets::default();
    assert_eq!(
        deposits::catch_up(&store, &sc, &mut managed).await.unwrap(),
        1
    );
    let b = offerhub::ledger::balance(store.reader(), &u).await.unwrap();
    assert_eq!(b.available, Amount::parse("25").unwrap());
    // Replaying everything from the beginning credits nothing twice.
    sqlx::query("UPDATE monitor_state SET cursor = NULL WHERE id = 1")
        .execute(store.reader())
        .await
        .unwrap();
    assert_eq!(
        deposits::catch_up(&store, &sc, &mut ManagedWallets::default())
            .await
            .unwrap(),
        0
    );
    // A deposit made while the monitor was stopped is caught up from the saved cursor.
    fund("5").await;
    assert_eq!(
        deposits::catch_up(&store, &sc, &mut managed).await.unwrap(),
        1
    );
    let b = offerhub::ledger::balance(store.reader(), &u).await.unwrap();
    assert_eq!(b.available, Amount::parse("30").unwrap());
    offerhub::sequencer::catch_up(&store, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let credited: Vec<_> = offerhub::events::after(&store, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "balance.credited")
        .collect();
    assert_eq!(credited.len(), 2);
    assert_eq!(credited[1].data["amount"], "5.00");
    assert_eq!(credited[1].data["newAvailableBalance"], "30.00");
    assert_eq!(credited[1].data["source"], "stellar_deposit");
    assert!(offerhub::ledger::verify(&store).await.unwrap().is_clean());
}
both_backends!(deposits_once, deposits_are_credited_exactly_once);

async fn reconcile_finds_and_fixes_missed_deposits(url: String) {
    use offerhub::services::reconcile;
    let (store, sc, base) = setup(&url).await;
    wallets::ensure_platform(&store, &sc, None).await.unwrap();
    let u = user(&store, "r1").await;
    let w = wallets::create(&store, &Context::system(), &sc, WalletKind::User, Some(&u))
        .await
        .unwrap();
    let u2 = user(&store, "r2").await;
    wallets::create(&store, &Context::system(), &sc, WalletKind::User, Some(&u2))
        .await
        .unwrap();
    wallets::activate(&store, &sc, &w.id).await.unwrap();
    let clean = reconcile::wallets(&store, &sc, 4, &|_, _| {})
        .await
        .unwrap();
    assert!(clean.is_clean(), "{clean:?}");
    assert_eq!(clean.wallets.len(), 2);
    assert!(
        clean
            .wallets
            .iter()
            .any(|c| c.status.as_str() == "not_activated")
    );
    // A deposit while no monitor runs: on chain 12, ledger 0.
    reqwest::Client::new()
        .post(format!("{base}/_sandbox/fund"))
        .json(&serde_json::json!({ "address": w.public_key, "amount": "12", "asset": "USDC" }))
        .send()
        .await
        .unwrap();
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let dirty = reconcile::wallets(&store, &sc, 4, &|done, _| {
        seen.store(done, std::sync::atomic::Ordering::SeqCst)
    })
    .await
    .unwrap();
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "progress reported"
    );
    assert_eq!(dirty.discrepancies, 1);
    let c = dirty.wallets.iter().find(|c| c.user_id == u).unwrap();
    assert_eq!(
        (c.status.as_str(), c.difference),
        ("mismatch", Amount::parse("12").unwrap())
    );
    assert_eq!(reconcile::fix(&store, &sc).await.unwrap(), 1);
    assert_eq!(
        reconcile::fix(&store, &sc).await.unwrap(),
        0,
        "fixing twice credits nothing more"
    );
    assert!(
        reconcile::wallets(&store, &sc, 4, &|_, _| {})
            .await
            .unwrap()
            .is_clean()
    );
    assert_eq!(
        reconcile::user(&store, &sc, &u)
            .await
            .unwrap()
            .status
            .as_str(),
        "ok"
    );
    // Per-account backfill: another missed deposit, found through the account's history
    // without touching the global cursor.
    let cursor_before = offerhub::services::deposits::cursor(&store).await.unwrap();
    reqwest::Client::new()
        .post(format!("{base}/_sandbox/fund"))
        .json(&serde_json::json!({ "address": w.public_key, "amount": "3", "asset": "USDC" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        offerhub::services::deposits::backfill_account(&store, &sc, &w.public_key)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        offerhub::services::deposits::backfill_account(&store, &sc, &w.public_key)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        offerhub::services::deposits::cursor(&store).await.unwrap(),
        cursor_before
    );
    assert_eq!(
        reconcile::user(&store, &sc, &u)
            .await
            .unwrap()
            .status
            .as_str(),
        "ok"
    );
}
both_backends!(reconcile_on, reconcile_finds_and_fixes_missed_deposits);

async fn concurrent_executors_pay_a_withdrawal_once(url: String) {
    use offerhub::services::{deposits, withdrawals};
    let (store, sc, base) = setup(&url).await;
    wallets::ensure_platform(&store, &sc, None).await.unwrap();
    let u = user(&store, "c1").await;
    let w = wallets::create(&store, &Context::system(), &sc, WalletKind::User, Some(&u))
        .await
        .unwrap();
    wallets::activate(&store, &sc, &w.id).await.unwrap();
    // The destination is outside OfferHub (a managed wallet is refused as one).
    let outside: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/_sandbox/accounts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let outside = outside["address"].as_str().unwrap().to_string();
    reqwest::Client::new()
        .post(format!("{base}/_sandbox/fund"))
        .json(&serde_json::json!({ "address": w.public_key, "amount": "20", "asset": "USDC" }))
        .send()
        .await
        .unwrap();
    deposits::catch_up(&store, &sc, &mut deposits::ManagedWallets::default())
        .await
        .unwrap();
    let wd = withdrawals::record_crypto(
        &store,
        &Context::system(),
        &sc,
        &u,
        Amount::parse("6").unwrap(),
        &outside,
    )
    .await
    .unwrap();
    assert_eq!(wd.status.as_str(), "WITHDRAWAL_CREATED");
    // Five executors and the resume worker at once, as a request and workers of several
    // daemons could.
    let sc = std::sync::Arc::new(sc);
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (store, sc, id) = (store.clone(), sc.clone(), wd.id.clone());
        tasks.push(tokio::spawn(async move {
            withdrawals::execute(&store, &sc, &id)
                .await
                .unwrap()
                .status
                .to_string()
        }));
    }
    let (s2, sc2) = (store.clone(), sc.clone());
    tasks.push(tokio::spawn(async move {
        withdrawals::resume_pending(&s2, &sc2).await.unwrap();
        String::new()
    }));
    for t in tasks {
        t.await.unwrap();
    }
    let done = withdrawals::get(&store, &wd.id).await.unwrap();
    assert_eq!(done.status.as_str(), "WITHDRAWAL_COMPLETED");
    let dest = sc.horizon.account(&outside).await.unwrap().unwrap();
    assert_eq!(
        dest.credit("USDC", &sc.usdc_issuer),
        Some(Amount::parse("6").unwrap()),
        "paid exactly once"
    );
    let src = sc.horizon.account(&w.public_key).await.unwrap().unwrap();
    assert_eq!(
        src.credit("USDC", &sc.usdc_issuer),
        Some(Amount::parse("14").unwrap())
    );
    offerhub::sequencer::catch_up(&store, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let types: Vec<String> = offerhub::events::after(&store, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .filter(|t| t.starts_with("withdrawal.") || t == "user.stellar_linked")
        .collect();
    assert_eq!(
        types,
        [
            "user.stellar_linked",
            "withdrawal.created",
            "withdrawal.pending",
            "withdrawal.completed"
        ]
    );
    assert!(offerhub::ledger::verify(&store).await.unwrap().is_clean());
}
both_backends!(
    concurrent_withdrawal_on,
    concurrent_executors_pay_a_withdrawal_once
);

/// Two daemons (two stores, two Horizon clients with their own in-process locks) on one
/// PostgreSQL pay withdrawals from the shared platform account at the same time: the
/// database-wide submission lock gives each transaction its own sequence number, so
/// every withdrawal completes, once. (SQLite has one daemon per file.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_daemons_share_the_platform_account_on_postgres() {
    use offerhub::services::{deposits, withdrawals};
    let url = offerhub_testkit::fresh_database_url(offerhub_testkit::Backend::Postgres).await;
    let (store_a, sc_a, base) = setup(&url).await;
    wallets::ensure_platform(&store_a, &sc_a, None)
        .await
        .unwrap();
    let store_b = Store::connect(&DatabaseUrl::new(&url)).await.unwrap();
    let sc_b = StellarContext {
        horizon: Horizon::new(base.parse().unwrap()).unwrap(),
        network: sc_a.network.clone(),
        usdc: sc_a.usdc.clone(),
        usdc_issuer: sc_a.usdc_issuer.clone(),
        vault: sc_a.vault.clone(),
        float_stroops: sc_a.float_stroops,
        friendbot: sc_a.friendbot.clone(),
    };
    let http = reqwest::Client::new();
    let outside: serde_json::Value = http
        .post(format!("{base}/_sandbox/accounts"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let outside = outside["address"].as_str().unwrap().to_string();
    let mut ids = Vec::new();
    for i in 0..6 {
        let u = user(&store_a, &format!("two-{i}")).await;
        let w = wallets::create(
            &store_a,
            &Context::system(),
            &sc_a,
            WalletKind::User,
            Some(&u),
        )
        .await
        .unwrap();
        let w = wallets::activate(&store_a, &sc_a, &w.id).await.unwrap();
        http.post(format!("{base}/_sandbox/fund"))
            .json(&serde_json::json!({ "address": w.public_key, "amount": "5", "asset": "USDC" }))
            .send()
            .await
            .unwrap();
        deposits::catch_up(&store_a, &sc_a, &mut deposits::ManagedWallets::default())
            .await
            .unwrap();
        let wd = withdrawals::record_crypto(
            &store_a,
            &Context::system(),
            &sc_a,
            &u,
            Amount::parse("2").unwrap(),
            &outside,
        )
        .await
        .unwrap();
        ids.push(wd.id);
    }
    let sc_a = Arc::new(sc_a);
    let sc_b = Arc::new(sc_b);
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let (store, sc) = if i % 2 == 0 {
            (store_a.clone(), sc_a.clone())
        } else {
            (store_b.clone(), sc_b.clone())
        };
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            withdrawals::execute(&store, &sc, &id)
                .await
                .map(|w| w.status.to_string())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "WITHDRAWAL_COMPLETED");
    }
    let dest = sc_a.horizon.account(&outside).await.unwrap().unwrap();
    assert_eq!(
        dest.credit("USDC", &sc_a.usdc_issuer),
        Some(Amount::parse("12").unwrap()),
        "each withdrawal paid exactly once"
    );
    assert!(offerhub::ledger::verify(&store_a).await.unwrap().is_clean());
}

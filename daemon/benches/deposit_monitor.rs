//! Benchmark: deposit detection with 10,000 managed wallets on the sandbox network.
//!
//! Run: `cargo bench -p offerhub-daemon --bench deposit_monitor` (env `BENCH_WALLETS`,
//! default 10000; `BENCH_DEPOSITS`, default 1000). SQLite; the sandbox in-process.
//! Reports (1) throughput: a burst of deposits paid while the monitor runs, and the
//! time until all are credited; (2) latency: single deposits, from the faucet payment
//! returning to the credit being committed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use offerhub::config::{DatabaseUrl, Secret};
use offerhub::context::Context;
use offerhub::services::users::{self, NewUser, NoHooks, UserType};
use offerhub::services::wallets::{self, StellarContext, WalletKind};
use offerhub::stellar::horizon::Horizon;
use offerhub::stellar::network::StellarNetwork;
use offerhub::stellar::tx::CreditAsset;
use offerhub::store::Store;
use offerhub::vault::Vault;
use offerhub_sandbox::{Sandbox, SandboxOptions, start};
use offerhub_testkit::{Backend, fresh_database_url};

async fn credited(store: &Store) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM journal_transactions WHERE kind = 'deposit'")
        .fetch_one(store.reader())
        .await
        .unwrap()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n_wallets: usize = std::env::var("BENCH_WALLETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let n_deposits: usize = std::env::var("BENCH_DEPOSITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let url = fresh_database_url(Backend::Sqlite).await;
    let store = Store::connect(&DatabaseUrl::new(&url)).await.unwrap();
    store.migrate().await.unwrap();
    let sb = Sandbox::new(SandboxOptions::default()).unwrap();
    let addr = start(sb.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{addr}");
    let horizon = Horizon::new(base.parse().unwrap()).unwrap();
    let issuer = sb.usdc().issuer;
    let sc = Arc::new(StellarContext {
        network: StellarNetwork::from_passphrase(&horizon.network_passphrase().await.unwrap()),
        horizon,
        usdc: CreditAsset {
            code: "USDC".into(),
            issuer: offerhub::stellar::keys::parse_account(&issuer, "issuer").unwrap(),
        },
        usdc_issuer: issuer,
        vault: Arc::new(Vault::new(&Secret::new(hex::encode([3u8; 32])), &[]).unwrap()),
        float_stroops: 0,
        friendbot: Some(format!("{base}/friendbot").parse().unwrap()),
    });
    let platform = wallets::ensure_platform(&store, &sc, None).await.unwrap();
    // Sponsored reserves: 1.5 XLM per wallet (Friendbot's 10,000 XLM carry ~6,600).
    sb.fund(
        &platform.public_key,
        (n_wallets as i64 * 2 + 100) * 10_000_000,
        false,
    )
    .unwrap();
    let t0 = Instant::now();
    let mut addresses = Vec::with_capacity(n_wallets);
    for i in 0..n_wallets {
        let (u, _) = users::create(
            &store,
            &Context::system(),
            &NoHooks,
            NewUser {
                external_user_id: format!("b{i}"),
                email: None,
                user_type: UserType::Both,
            },
        )
        .await
        .unwrap();
        let w = wallets::create(
            &store,
            &Context::system(),
            &sc,
            WalletKind::User,
            Some(&u.id),
        )
        .await
        .unwrap();
        let w = wallets::activate(&store, &sc, &w.id).await.unwrap();
        assert_eq!(w.status.as_str(), "ACTIVE", "{:?}", w.failure_reason);
        addresses.push(w.public_key);
    }
    println!(
        "{n_wallets} wallets created and activated in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    tokio::spawn(offerhub_daemon::wallets::deposit_monitor(
        store.clone(),
        sc.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Throughput: a burst of deposits, then wait until every one is credited.
    let before = credited(&store).await;
    let t = Instant::now();
    for i in 0..n_deposits {
        sb.fund(&addresses[(i * 7919) % n_wallets], 10_000_000, true)
            .unwrap();
    }
    let paid = t.elapsed();
    while credited(&store).await < before + n_deposits as i64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all = t.elapsed();
    println!(
        "burst: {n_deposits} deposits paid in {:.2} s; all credited {:.3} s after the first ({:.0} ms after the last) → {:.0} deposits/s detected (bounded by the payment rate)",
        paid.as_secs_f64(),
        all.as_secs_f64(),
        (all - paid).as_secs_f64() * 1e3,
        n_deposits as f64 / all.as_secs_f64()
    );

    // Latency: one deposit at a time, from the payment being applied (the sandbox call
    // returning) to the credit being committed.
    let mut lat = Vec::new();
    let mut pay = Vec::new();
    for i in 0..200 {
        let before = credited(&store).await;
        let t = Instant::now();
        sb.fund(&addresses[(i * 104_729) % n_wallets], 10_000_000, true)
            .unwrap();
        pay.push(t.elapsed());
        let applied = Instant::now();
        while credited(&store).await <= before {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        lat.push(applied.elapsed());
    }
    pay.sort();
    println!(
        "sandbox payment time at this size: p50 {:.1} ms",
        pay[pay.len() / 2].as_secs_f64() * 1e3
    );
    lat.sort();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    println!(
        "latency over 200 single deposits: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        p(0.5),
        p(0.9),
        p(0.99),
        p(1.0)
    );
    assert!(offerhub::ledger::verify(&store).await.unwrap().is_clean());
    std::process::exit(0);
}

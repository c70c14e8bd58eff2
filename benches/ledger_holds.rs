//! Benchmark: hold + void cycles per second through the ledger (each cycle is two
//! committed database transactions with their journal entries and balance updates), on
//! one hot user and spread over 1,000 users, on SQLite and PostgreSQL.
//!
//! Run: `cargo bench -p offerhub --bench ledger_holds` (env `BENCH_CYCLES`, default
//! 4000; `BENCH_CONCURRENCY`, default 16). PostgreSQL uses `OFFERHUB_TEST_DATABASE_URL`
//! or a throwaway cluster (fsync off — compare with pgbench on the same cluster).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use offerhub::config::DatabaseUrl;
use offerhub::context::Context;
use offerhub::ledger::{self, Posting};
use offerhub::money::Amount;
use offerhub::services::users;
use offerhub::store::{Store, StoreOptions};
use offerhub_testkit::{Backend, fresh_database_url};

async fn setup(backend: Backend, n_users: usize) -> (Store, Vec<String>) {
    let url = fresh_database_url(backend).await;
    let store = Store::connect_with(
        &DatabaseUrl::new(url),
        StoreOptions {
            max_connections: 32,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let mut ids = Vec::with_capacity(n_users);
    for i in 0..n_users {
        let (u, _) = users::create(
            &store,
            &Context::system(),
            &users::NoHooks,
            users::NewUser {
                external_user_id: format!("bench-{i}"),
                email: None,
                user_type: users::UserType::Both,
            },
        )
        .await
        .unwrap();
        let mut tx = store.begin().await.unwrap();
        ledger::record(
            &mut tx,
            "deposit",
            &u.id,
            "bench funding",
            &[
                Posting::new(
                    ledger::EXTERNAL_STELLAR,
                    Amount::from_base_units(-1_000_000_000_000),
                ),
                Posting::new(
                    ledger::available_account(&u.id),
                    Amount::from_base_units(1_000_000_000_000),
                ),
            ],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        ids.push(u.id);
    }
    (store, ids)
}

async fn run(
    store: &Store,
    label: &'static str,
    users: &[String],
    cycles: usize,
    concurrency: usize,
) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let users = Arc::new(users.to_vec());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (store, next, users) = (store.clone(), next.clone(), users.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= cycles {
                    break;
                }
                let user = &users[i % users.len()];
                let mut tx = store.begin().await.unwrap();
                let h = ledger::hold(
                    &mut tx,
                    user,
                    Amount::from_base_units(10_000_000),
                    "bench",
                    &format!("{label}-{i}"),
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
                let mut tx = store.begin().await.unwrap();
                ledger::void_hold(&mut tx, &h.id).await.unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    cycles as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let cycles: usize = std::env::var("BENCH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let concurrency: usize = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    println!("hold+void cycles/s ({cycles} cycles, {concurrency} concurrent tasks)");
    println!("{:<10} {:>12} {:>16}", "backend", "hot user", "1,000 users");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (store, ids) = setup(backend, 1000).await;
        let hot = run(&store, "hot", &ids[..1], cycles, concurrency).await;
        let spread = run(&store, "spread", &ids, cycles, concurrency).await;
        assert!(ledger::verify(&store).await.unwrap().is_clean());
        println!(
            "{:<10} {:>12.0} {:>16.0}",
            format!("{backend:?}"),
            hot,
            spread
        );
        store.close().await;
    }
}

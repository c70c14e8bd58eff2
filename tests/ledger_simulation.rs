//! Seeded randomized simulation of the ledger: thousands of mixed operations (deposits,
//! transfers, holds, voids, posts, double resolutions, replayed effects, adjustments)
//! checked against an in-memory model, with every ledger invariant verified after each
//! operation — on SQLite and PostgreSQL. Set `OFFERHUB_SIM_SEED` / `OFFERHUB_SIM_STEPS`
//! to reproduce or lengthen a run.

use std::collections::BTreeMap;

use offerhub::config::DatabaseUrl;
use offerhub::context::Context;
use offerhub::ledger::{self, HoldStatus, Posting, Recorded};
use offerhub::money::Amount;
use offerhub::services::{balances, users};
use offerhub::store::Store;
use offerhub_testkit::both_backends;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
struct Bal {
    available: i64,
    reserved: i64,
}

struct ModelHold {
    id: String,
    user: String,
    amount: i64,
    status: HoldStatus,
}

fn amt(units: i64) -> Amount {
    Amount::from_base_units(units)
}

async fn simulate(url: String) {
    let seed: u64 = std::env::var("OFFERHUB_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0FFE_4B0B);
    let steps: usize = std::env::var("OFFERHUB_SIM_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let mut rng = StdRng::seed_from_u64(seed);
    let store = Store::connect(&DatabaseUrl::new(&url)).await.unwrap();
    store.migrate().await.unwrap();
    let ctx = Context::system();

    let mut model: BTreeMap<String, Bal> = BTreeMap::new();
    for i in 0..6 {
        let (u, _) = users::create(
            &store,
            &ctx,
            &users::NoHooks,
            users::NewUser {
                external_user_id: format!("sim-{i}"),
                email: None,
                user_type: users::UserType::Both,
            },
        )
        .await
        .unwrap();
        model.insert(u.id, Bal::default());
    }
    let user_ids: Vec<String> = model.keys().cloned().collect();
    let mut holds: Vec<ModelHold> = Vec::new();
    let mut deposits: Vec<(String, String, i64)> = Vec::new(); // (reference, user, amount)
    let mut escrow_total = 0_i64;
    let mut tx = store.begin().await.unwrap();
    ledger::open_account(&mut tx, "escrow:ord_sim", "escrow", None, true)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    for step in 0..steps {
        let user = user_ids[rng.random_range(0..user_ids.len())].clone();
        let units = rng.random_range(1..50_000_000_i64);
        let op = rng.random_range(0..9);
        let what = match op {
            0 | 1 => {
                let reference = format!("dep-{step}");
                let mut tx = store.begin().await.unwrap();
                let r = ledger::record(
                    &mut tx,
                    "deposit",
                    &reference,
                    "sim deposit",
                    &[
                        Posting::new(ledger::EXTERNAL_STELLAR, amt(-units)),
                        Posting::new(ledger::available_account(&user), amt(units)),
                    ],
                )
                .await
                .unwrap();
                assert!(matches!(r, Recorded::Applied(_)));
                tx.commit().await.unwrap();
                model.get_mut(&user).unwrap().available += units;
                deposits.push((reference, user.clone(), units));
                "deposit"
            }
            2 => {
                // Replay an old deposit: must change nothing.
                if let Some((reference, u, units)) = deposits
                    .get(rng.random_range(0..deposits.len().max(1)))
                    .cloned()
                {
                    let mut tx = store.begin().await.unwrap();
                    let r = ledger::record(
                        &mut tx,
                        "deposit",
                        &reference,
                        "replayed",
                        &[
                            Posting::new(ledger::EXTERNAL_STELLAR, amt(-units)),
                            Posting::new(ledger::available_account(&u), amt(units)),
                        ],
                    )
                    .await
                    .unwrap();
                    assert!(
                        matches!(r, Recorded::AlreadyApplied(_)),
                        "replay applied twice"
                    );
                    tx.commit().await.unwrap();
                }
                "replay"
            }
            3 => {
                let to = user_ids[rng.random_range(0..user_ids.len())].clone();
                if to == user {
                    continue;
                }
                let mut tx = store.begin().await.unwrap();
                let r = ledger::record(
                    &mut tx,
                    "transfer",
                    &format!("tr-{step}"),
                    "sim transfer",
                    &[
                        Posting::new(ledger::available_account(&user), amt(-units)),
                        Posting::new(ledger::available_account(&to), amt(units)),
                    ],
                )
                .await;
                let enough = model[&user].available >= units;
                match r {
                    Ok(_) => {
                        assert!(enough, "transfer overdrew at step {step}");
                        tx.commit().await.unwrap();
                        model.get_mut(&user).unwrap().available -= units;
                        model.get_mut(&to).unwrap().available += units;
                    }
                    Err(e) => {
                        assert!(!enough, "transfer refused with funds at step {step}: {e}");
                        assert_eq!(e.code.as_str(), "INSUFFICIENT_FUNDS");
                    }
                }
                "transfer"
            }
            4 | 5 => {
                let mut tx = store.begin().await.unwrap();
                let r = ledger::hold(&mut tx, &user, amt(units), "sim", &format!("h-{step}")).await;
                let enough = model[&user].available >= units;
                match r {
                    Ok(h) => {
                        assert!(enough, "hold overdrew at step {step}");
                        tx.commit().await.unwrap();
                        let b = model.get_mut(&user).unwrap();
                        b.available -= units;
                        b.reserved += units;
                        holds.push(ModelHold {
                            id: h.id,
                            user: user.clone(),
                            amount: units,
                            status: HoldStatus::Pending,
                        });
                    }
                    Err(e) => {
                        assert!(!enough, "hold refused with funds at step {step}: {e}");
                        assert_eq!(e.code.as_str(), "INSUFFICIENT_FUNDS");
                    }
                }
                "hold"
            }
            6 | 7 => {
                if holds.is_empty() {
                    continue;
                }
                let i = rng.random_range(0..holds.len());
                let post = rng.random_bool(0.5);
                let mut tx = store.begin().await.unwrap();
                let r = if post {
                    let dest = if rng.random_bool(0.5) {
                        "escrow:ord_sim"
                    } else {
                        ledger::EXTERNAL_STELLAR
                    };
                    ledger::post_hold(
                        &mut tx,
                        &holds[i].id,
                        &[Posting::new(dest, amt(holds[i].amount))],
                    )
                    .await
                    .map(|h| (h, dest == "escrow:ord_sim"))
                } else {
                    ledger::void_hold(&mut tx, &holds[i].id)
                        .await
                        .map(|h| (h, false))
                };
                let h = &mut holds[i];
                match (h.status, r) {
                    (HoldStatus::Pending, Ok((_, to_escrow))) => {
                        tx.commit().await.unwrap();
                        let b = model.get_mut(&h.user).unwrap();
                        b.reserved -= h.amount;
                        if post {
                            h.status = HoldStatus::Posted;
                            if to_escrow {
                                escrow_total += h.amount;
                            }
                        } else {
                            h.status = HoldStatus::Voided;
                            b.available += h.amount;
                        }
                    }
                    (HoldStatus::Pending, Err(e)) => {
                        panic!("resolving a pending hold failed at step {step}: {e}")
                    }
                    (_, Ok(_)) => panic!("a hold was resolved twice at step {step}"),
                    (_, Err(e)) => assert_eq!(e.code.as_str(), "INVALID_STATE_TRANSITION"),
                }
                if post { "post" } else { "void" }
            }
            _ => {
                let delta = if rng.random_bool(0.5) { units } else { -units };
                let r = balances::adjust(&store, &ctx, &user, amt(delta), "sim").await;
                let ok = model[&user].available + delta >= 0;
                match r {
                    Ok(_) => {
                        assert!(ok, "adjustment overdrew at step {step}");
                        model.get_mut(&user).unwrap().available += delta;
                    }
                    Err(e) => {
                        assert!(!ok, "adjustment refused at step {step}: {e}");
                        assert_eq!(e.code.as_str(), "INSUFFICIENT_FUNDS");
                    }
                }
                "adjust"
            }
        };
        // Invariants after every operation.
        for (u, expected) in &model {
            let b = ledger::balance(store.reader(), u).await.unwrap();
            assert_eq!(
                (b.available.base_units(), b.reserved.base_units()),
                (expected.available, expected.reserved),
                "balance of {u} diverged from the model after step {step} ({what})"
            );
            assert!(!b.available.is_negative());
        }
        let report = ledger::verify(&store).await.unwrap();
        assert!(
            report.is_clean(),
            "step {step} ({what}): {:?}",
            report.violations
        );
    }
    let escrow: i64 =
        sqlx::query_scalar("SELECT balance FROM ledger_accounts WHERE id = 'escrow:ord_sim'")
            .fetch_one(store.reader())
            .await
            .unwrap();
    assert_eq!(escrow, escrow_total);
    assert!(matches!(
        offerhub::audit::verify(&store).await.unwrap(),
        offerhub::audit::Verification::Intact { .. }
    ));
}

both_backends!(ledger_simulation, simulate);

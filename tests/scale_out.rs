//! Scale-out (issue #15): the post-commit sequencer and the sharded system accounts,
//! on SQLite and on PostgreSQL.

use std::time::Duration;

use offerhub::audit::{self, Verification};
use offerhub::config::DatabaseUrl;
use offerhub::context::Context;
use offerhub::events::{self, NewEvent};
use offerhub::ledger::{self, Posting};
use offerhub::money::Amount;
use offerhub::sequencer;
use offerhub::store::{Backend, Store};
use offerhub_testkit::both_backends;

async fn open(url: &str) -> Store {
    let store = Store::connect(&DatabaseUrl::new(url)).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// One transaction writing an audit row and an event about `id`.
async fn write(store: &Store, id: &str) {
    let mut tx = store.begin().await.unwrap();
    tx.audit(Context::system().audit("test.written", "test", id));
    tx.emit(NewEvent::new(
        "user.updated",
        "user",
        id,
        serde_json::json!({ "id": id }),
    ));
    tx.commit().await.unwrap();
}

/// 300 concurrent writers while two sequencers (two daemons) run passes: every event
/// gets exactly one number, 1..=300 with no gap, the audit chain holds 300 rows, and
/// the numbers readers saw never changed.
async fn concurrent_writers_and_two_sequencers(url: String) {
    let store = open(&url).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut sequencers = Vec::new();
    for _ in 0..2 {
        let (s, stop) = (store.clone(), stop.clone());
        sequencers.push(tokio::spawn(async move {
            let mut seen: Vec<(i64, String)> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sequencer::run_pass(&s).await.unwrap();
                let last = seen.last().map(|(seq, _)| *seq).unwrap_or(0);
                for e in events::after(&s, last, 1000).await.unwrap() {
                    seen.push((e.seq, e.id));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            seen
        }));
    }
    let mut writers = Vec::new();
    for i in 0..300 {
        let s = store.clone();
        writers.push(tokio::spawn(
            async move { write(&s, &format!("w{i}")).await },
        ));
    }
    for w in writers {
        w.await.unwrap();
    }
    sequencer::catch_up(&store, Duration::from_secs(10))
        .await
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let all = events::after(&store, 0, 10_000).await.unwrap();
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
    assert_eq!(events::last_seq(&store).await.unwrap(), 300);
    for s in sequencers {
        // What a reader saw while writes were going on is a prefix of the final order.
        let seen = s.await.unwrap();
        for (seq, id) in &seen {
            assert_eq!(
                &all[(*seq - 1) as usize].id,
                id,
                "event {seq} was renumbered"
            );
        }
        for (expected, (seq, _)) in (1..).zip(seen.iter()) {
            assert_eq!(*seq, expected, "a reader skipped a number");
        }
    }
    assert_eq!(
        audit::verify(&store).await.unwrap(),
        Verification::Intact {
            rows: 300,
            unsequenced: 0
        }
    );
    assert_eq!(sequencer::unsequenced(&store).await.unwrap(), (0, 0));
}
both_backends!(concurrent_writers_on, concurrent_writers_and_two_sequencers);

/// PostgreSQL: a committed event is not numbered while an older transaction is still
/// open, so the older one's events, committed later, still come first; nothing is ever
/// numbered out of order.
async fn older_open_transaction_holds_numbering_back(url: String) {
    let store = open(&url).await;
    if store.backend() != Backend::Postgres {
        return;
    }
    let mut older = store.begin().await.unwrap();
    // Gives the open transaction its transaction id now.
    sqlx::query("SELECT CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT) AS x")
        .fetch_one(older.conn())
        .await
        .unwrap();
    write(&store, "younger").await;
    let pass = sequencer::run_pass(&store).await.unwrap();
    assert_eq!(pass.events, 0, "numbered past an open older transaction");
    assert!(pass.waiting);
    assert!(events::after(&store, 0, 10).await.unwrap().is_empty());
    // audit verify reports the young unnumbered tail without failing.
    match audit::verify(&store).await.unwrap() {
        Verification::Intact { rows, unsequenced } => {
            assert_eq!((rows, unsequenced), (0, 1))
        }
        other => panic!("{other:?}"),
    }

    older.emit(NewEvent::new(
        "user.updated",
        "user",
        "older",
        serde_json::json!({}),
    ));
    older.commit().await.unwrap();
    sequencer::catch_up(&store, Duration::from_secs(5))
        .await
        .unwrap();
    let ids: Vec<String> = events::after(&store, 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.resource_id)
        .collect();
    assert_eq!(ids, ["older", "younger"]);
    // An unnumbered row older than the bound (held back by a transaction open that
    // long) fails verification.
    let mut blocker = store.begin().await.unwrap();
    sqlx::query("SELECT CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT) AS x")
        .fetch_one(blocker.conn())
        .await
        .unwrap();
    write(&store, "held").await;
    sqlx::query(
        "UPDATE audit_logs SET occurred_at = '2020-01-01T00:00:00.000Z' \
         WHERE resource_id = 'held'",
    )
    .execute(store.reader())
    .await
    .unwrap();
    match audit::verify(&store).await.unwrap() {
        Verification::Broken { reason, .. } => {
            assert!(reason.contains("not numbered"), "{reason}")
        }
        other => panic!("a stale unnumbered tail passed: {other:?}"),
    }
    blocker.rollback().await.unwrap();

    // A row restored from another cluster (pg_dump) carries a transaction id beyond
    // this cluster's next one: numbered, not held back forever.
    sqlx::query(
        "INSERT INTO events (id, event_type, resource_type, resource_id, data, occurred_at, txid) \
         VALUES ('evt_restored', 'user.updated', 'user', 'restored', '{}', \
                 '2026-01-01T00:00:00.000Z', CAST('900000000000' AS xid8))",
    )
    .execute(store.reader())
    .await
    .unwrap();
    // Numbered, and everything verifies once the "held" row is numbered too. Not
    // necessarily last: on a cluster shared with other tests, their open transactions
    // may still hold the "held" row back for a moment (the xmin is cluster-wide), while a
    // txid beyond xmax is ready at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        sequencer::catch_up(&store, Duration::from_secs(5))
            .await
            .unwrap();
        let numbered = events::after(&store, 0, 100).await.unwrap();
        let restored = numbered.iter().any(|e| e.id == "evt_restored");
        let verified = audit::verify(&store).await.unwrap();
        if restored && matches!(verified, Verification::Intact { .. }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "restored numbered: {restored}; audit: {verified:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
both_backends!(older_open_on, older_open_transaction_holds_numbering_back);

/// Sharded system accounts: 200 concurrent adjustments against `external:adjustments`
/// (on PostgreSQL spread over its shards) keep the ledger provable, and the account's
/// balance is the sum of its postings; a non-negative sharded account (`fees:*`) is
/// never overdrawn, even by a debit larger than any one shard.
async fn sharded_system_accounts(url: String) {
    let store = open(&url).await;
    let mut tx = store.begin().await.unwrap();
    for u in ["a", "b"] {
        ledger::open_user_accounts(&mut tx, u).await.unwrap();
    }
    tx.commit().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let user = if i % 2 == 0 { "a" } else { "b" };
            let mut tx = s.begin().await.unwrap();
            ledger::record(
                &mut tx,
                "adjustment",
                &format!("adj{i}"),
                "test",
                &[
                    Posting::new(ledger::available_account(user), Amount::from_base_units(10)),
                    Posting::new(ledger::ADJUSTMENTS_ACCOUNT, Amount::from_base_units(-10)),
                ],
            )
            .await
            .unwrap();
            // Fees: credited from the user, concurrently.
            ledger::record(
                &mut tx,
                "fee",
                &format!("fee{i}"),
                "test",
                &[
                    Posting::new(ledger::available_account(user), Amount::from_base_units(-3)),
                    Posting::new(ledger::FEES_PLATFORM, Amount::from_base_units(3)),
                ],
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = ledger::verify(&store).await.unwrap();
    assert!(r.is_clean(), "{:?}", r.violations);
    assert_eq!(
        ledger::account_balance(store.reader(), ledger::ADJUSTMENTS_ACCOUNT)
            .await
            .unwrap(),
        Amount::from_base_units(-2000)
    );
    assert_eq!(
        ledger::account_balance(store.reader(), ledger::FEES_PLATFORM)
            .await
            .unwrap(),
        Amount::from_base_units(600)
    );
    if store.backend() == Backend::Postgres {
        let used: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM ledger_account_shards \
             WHERE account_id = 'external:adjustments' AND balance <> 0",
        )
        .fetch_one(store.reader())
        .await
        .unwrap();
        assert!(used > 1, "postings were not spread over the shards");
        // Each posting is checked against the row it was booked on: a shard row for
        // the sharded account (no lock on the account row every writer shares), the
        // account row for the user.
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT account_id, CAST(COUNT(shard) AS BIGINT), \
                    CAST(COUNT(ordinary_account_id) AS BIGINT) \
             FROM postings GROUP BY account_id ORDER BY account_id",
        )
        .fetch_all(store.reader())
        .await
        .unwrap();
        // (Every leg here takes the one-statement path; the general path is below.)
        for (account, with_shard, with_account) in rows {
            if account.starts_with("external:") || account.starts_with("fees:") {
                assert!(with_shard == 200 && with_account == 0, "{account}");
            } else {
                assert!(with_shard == 0 && with_account == 200, "{account}");
            }
        }
        // …and both checks still refuse a posting to a row that does not exist.
        for (account, shard) in [
            ("available:nobody", None),
            ("external:adjustments", Some(64)),
        ] {
            let mut tx = store.begin().await.unwrap();
            let err = sqlx::query(
                "INSERT INTO postings (transaction_id, account_id, amount, balance_after, \
                 created_at, shard) SELECT id, $1, 1, 1, created_at, $2 \
                 FROM journal_transactions LIMIT 1",
            )
            .bind(account)
            .bind(shard)
            .execute(tx.conn())
            .await
            .unwrap_err();
            assert!(err.to_string().contains("foreign key"), "{account}: {err}");
        }
    }
    // The general path (here: two legs on one account) books a sharded leg on its
    // shard row too, and the posting references that row, not the account row.
    let mut tx = store.begin().await.unwrap();
    ledger::record(
        &mut tx,
        "adjustment",
        "general",
        "test",
        &[
            Posting::new(ledger::available_account("a"), Amount::from_base_units(5)),
            Posting::new(ledger::available_account("a"), Amount::from_base_units(5)),
            Posting::new(ledger::ADJUSTMENTS_ACCOUNT, Amount::from_base_units(-10)),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    if store.backend() == Backend::Postgres {
        let (with_shard, with_account): (i64, i64) = sqlx::query_as(
            "SELECT CAST(COUNT(p.shard) AS BIGINT), CAST(COUNT(p.ordinary_account_id) AS BIGINT)              FROM postings p JOIN journal_transactions j ON j.id = p.transaction_id              WHERE j.reference = 'general' AND p.account_id = 'external:adjustments'",
        )
        .fetch_one(store.reader())
        .await
        .unwrap();
        assert_eq!((with_shard, with_account), (1, 0));
    }
    assert_eq!(
        ledger::account_balance(store.reader(), ledger::ADJUSTMENTS_ACCOUNT)
            .await
            .unwrap(),
        Amount::from_base_units(-2010)
    );
    // A debit of fees larger than the balance: refused, nothing changes.
    let mut tx = store.begin().await.unwrap();
    let err = ledger::record(
        &mut tx,
        "fee.refund",
        "too-much",
        "test",
        &[
            Posting::new(ledger::FEES_PLATFORM, Amount::from_base_units(-601)),
            Posting::new(ledger::available_account("a"), Amount::from_base_units(601)),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code.as_str(), "INSUFFICIENT_FUNDS");
    drop(tx);
    // A debit spanning several shards: allowed, and the ledger still proves.
    let mut tx = store.begin().await.unwrap();
    ledger::record(
        &mut tx,
        "fee.refund",
        "some",
        "test",
        &[
            Posting::new(ledger::FEES_PLATFORM, Amount::from_base_units(-500)),
            Posting::new(ledger::available_account("a"), Amount::from_base_units(500)),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        ledger::account_balance(store.reader(), ledger::FEES_PLATFORM)
            .await
            .unwrap(),
        Amount::from_base_units(100)
    );
    let r = ledger::verify(&store).await.unwrap();
    assert!(r.is_clean(), "{:?}", r.violations);
}
both_backends!(sharded_accounts_on, sharded_system_accounts);

/// Users `a` and `b` with 60 and 40 (from `external:stellar`, journal `deposit/dep-a`)
/// and an empty `escrow:ord_t`; returns the deposit's journal id.
async fn seed_two_users(store: &Store) -> String {
    let mut tx = store.begin().await.unwrap();
    for u in ["a", "b"] {
        ledger::open_user_accounts(&mut tx, u).await.unwrap();
    }
    ledger::open_account(&mut tx, "escrow:ord_t", "escrow", None, true)
        .await
        .unwrap();
    let first = ledger::record(&mut tx, "deposit", "dep-a", "test", &seed_postings())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    first.journal_id().to_string()
}

fn seed_postings() -> Vec<Posting> {
    vec![
        Posting::new(ledger::EXTERNAL_STELLAR, Amount::from_base_units(-100)),
        Posting::new(ledger::available_account("a"), Amount::from_base_units(60)),
        Posting::new(ledger::available_account("b"), Amount::from_base_units(40)),
    ]
}

/// The balances of a, b, the escrow and `external:stellar`, in that order.
async fn seeded_balances(store: &Store) -> Vec<Amount> {
    let mut out = Vec::new();
    for a in [
        ledger::available_account("a"),
        ledger::available_account("b"),
        "escrow:ord_t".to_string(),
        ledger::EXTERNAL_STELLAR.to_string(),
    ] {
        out.push(ledger::account_balance(store.reader(), &a).await.unwrap());
    }
    out
}

/// A journal transaction that cannot apply reports the first failing leg in account
/// order and, once the caller drops its transaction, changes nothing (the
/// one-round-trip path of `ledger/statement.rs`, on both backends).
async fn record_errors_change_nothing(url: String) {
    let store = open(&url).await;
    let units = Amount::from_base_units;
    seed_two_users(&store).await;
    let before = seeded_balances(&store).await;
    assert_eq!(before, [units(60), units(40), units(0), units(-100)]);
    let a = ledger::available_account("a");
    let b = ledger::available_account("b");
    // (reference, postings, expected code, account named in the details).
    let cases = [
        // Both users short: the first in account order (a) is named.
        (
            "short",
            vec![
                Posting::new(&b, units(-41)),
                Posting::new(&a, units(-61)),
                Posting::new("escrow:ord_t", units(102)),
            ],
            "INSUFFICIENT_FUNDS",
            Some(a.as_str()),
        ),
        // Beyond the largest amount.
        (
            "huge",
            vec![
                Posting::new(&a, Amount::MAX),
                Posting::new(
                    ledger::ADJUSTMENTS_ACCOUNT,
                    Amount::MAX.checked_neg().unwrap(),
                ),
            ],
            "AMOUNT_OUT_OF_RANGE",
            Some(a.as_str()),
        ),
        // An account that does not exist: a programming error, 500.
        (
            "missing",
            vec![
                Posting::new("escrow:ord_missing", units(1)),
                Posting::new(&a, units(-1)),
            ],
            "INTERNAL_ERROR",
            None,
        ),
        // A short leg before an unknown account (in account order): the short leg's 422.
        (
            "short-then-missing",
            vec![
                Posting::new(&a, units(-61)),
                Posting::new("zz:missing", units(61)),
            ],
            "INSUFFICIENT_FUNDS",
            Some(a.as_str()),
        ),
    ];
    for (reference, postings, code, account) in &cases {
        let mut tx = store.begin().await.unwrap();
        let err = ledger::record(&mut tx, "fund", reference, "test", postings)
            .await
            .unwrap_err();
        drop(tx);
        assert_eq!(err.code.as_str(), *code, "{reference}");
        if let Some(account) = account {
            let details = err.details.unwrap();
            assert_eq!(details["account"], *account, "{reference}");
            if *reference == "short" {
                assert_eq!(details["requested"], "0.0000061");
            }
        }
    }
    // Dropping the transactions left every balance and the journal as they were.
    assert_eq!(seeded_balances(&store).await, before);
    let journal: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM journal_transactions WHERE kind = 'fund'",
    )
    .fetch_one(store.reader())
    .await
    .unwrap();
    assert_eq!(journal, 0);
    let r = ledger::verify(&store).await.unwrap();
    assert!(r.is_clean(), "{:?}", r.violations);
}
both_backends!(record_errors_on, record_errors_change_nothing);

/// A replay returns the first journal id and changes nothing; two postings to one
/// account add up (the general path of `ledger::record`).
async fn record_replays_and_repeated_accounts(url: String) {
    let store = open(&url).await;
    let units = Amount::from_base_units;
    let first = seed_two_users(&store).await;
    let before = seeded_balances(&store).await;
    let mut tx = store.begin().await.unwrap();
    let again = ledger::record(&mut tx, "deposit", "dep-a", "replayed", &seed_postings())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(again, ledger::Recorded::AlreadyApplied(first));
    assert_eq!(seeded_balances(&store).await, before);
    let mut tx = store.begin().await.unwrap();
    ledger::record(
        &mut tx,
        "fund",
        "twice",
        "test",
        &[
            Posting::new(ledger::available_account("a"), units(-10)),
            Posting::new(ledger::available_account("a"), units(-5)),
            Posting::new("escrow:ord_t", units(15)),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        seeded_balances(&store).await,
        [units(45), units(40), units(15), units(-100)]
    );
    let r = ledger::verify(&store).await.unwrap();
    assert!(r.is_clean(), "{:?}", r.violations);
}
both_backends!(record_replays_on, record_replays_and_repeated_accounts);

/// The request budget is one for every daemon on a database: two daemons (two budget
/// instances on one PostgreSQL) spending one key's 600-token bucket concurrently get
/// 600 between them (plus what refills meanwhile), never 1,200. On SQLite (one daemon)
/// the in-memory bucket gives the same 600.
async fn budget_shared_by_daemons(url: String) {
    let store = open(&url).await;
    let daemons = if store.backend() == Backend::Postgres {
        2
    } else {
        1
    };
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..daemons {
        let budget = offerhub::budget::SharedBudget::new(&store, "api:", 600, 600, 30);
        for _ in 0..4 {
            let budget = budget.clone();
            tasks.push(tokio::spawn(async move {
                let mut granted = 0_u32;
                // Until refused twice in a row (the other daemon may still hold a lease).
                let mut refused = 0;
                while refused < 2 {
                    match budget.try_acquire("key").await.unwrap() {
                        Ok(()) => {
                            granted += 1;
                            refused = 0;
                        }
                        Err(wait) => {
                            assert!(wait <= Duration::from_millis(200), "{wait:?}");
                            refused += 1;
                        }
                    }
                }
                granted
            }));
        }
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    // 600 a minute = one token per 100 ms refills while the test runs.
    let refilled = (started.elapsed().as_millis() / 100) as u32 + 1;
    assert!(
        (600..=600 + refilled).contains(&total),
        "granted {total} (refilled at most {refilled})"
    );
    // Another key has its own bucket.
    let budget = offerhub::budget::SharedBudget::new(&store, "api:", 600, 600, 30);
    assert_eq!(budget.try_acquire("other").await.unwrap(), Ok(()));
}
both_backends!(budget_shared_on, budget_shared_by_daemons);

/// Rows of `rate_budgets` whose id starts with `prefix`, seen by `store`.
async fn budget_rows(store: &Store, prefix: &str) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM rate_budgets WHERE id LIKE $1")
        .bind(format!("{prefix}%"))
        .fetch_one(store.reader())
        .await
        .unwrap()
        .get("n")
}

/// Transactions abandoned at any point (a client hanging up mid-request) leave no
/// connection inside a transaction: a write made next on the same connection is
/// committed at once (seen from another pool), every transaction either committed
/// whole or left nothing, and the next `begin` works.
async fn cancelled_transactions_leave_nothing_open(url: String) {
    let store = Store::connect_with(
        &DatabaseUrl::new(&url),
        offerhub::store::StoreOptions {
            max_connections: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let other = open(&url).await;
    for i in 0..600_u64 {
        let attempt = async {
            let mut tx = store.begin().await.unwrap();
            sqlx::query("INSERT INTO rate_budgets (id, tat) VALUES ($1, 0), ($2, 0)")
                .bind(format!("c{i}-1"))
                .bind(format!("c{i}-2"))
                .execute(tx.conn())
                .await
                .unwrap();
            tx.commit().await.unwrap();
        };
        let _ = tokio::time::timeout(Duration::from_micros((i % 150) * 4), attempt).await;
        // The next write: on PostgreSQL in autocommit on the one pooled connection, on
        // SQLite through the one writer.
        let id = format!("n{i}");
        if store.backend() == Backend::Postgres {
            sqlx::query("INSERT INTO rate_budgets (id, tat) VALUES ($1, 0)")
                .bind(&id)
                .execute(store.reader())
                .await
                .unwrap();
        } else {
            let mut tx = store.begin().await.unwrap();
            sqlx::query("INSERT INTO rate_budgets (id, tat) VALUES ($1, 0)")
                .bind(&id)
                .execute(tx.conn())
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        assert_eq!(budget_rows(&other, "n").await, i as i64 + 1, "attempt {i}");
    }
    // Let abandoned commits finish, then: all or nothing per transaction.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (one, two) = (
        budget_rows(&other, "c").await,
        budget_rows(&other, "c%-2").await,
    );
    assert_eq!(one, two * 2, "{one} rows from {two} transactions");
}
both_backends!(cancelled_on, cancelled_transactions_leave_nothing_open);

/// `webhook_cursor.last_seq` and the number of webhook deliveries.
async fn cursor_and_deliveries(store: &Store) -> (i64, i64) {
    use sqlx::Row;
    let r = sqlx::query(
        "SELECT (SELECT last_seq FROM webhook_cursor WHERE id = 1) AS cursor, \
         (SELECT CAST(COUNT(*) AS BIGINT) FROM webhook_deliveries) AS deliveries",
    )
    .fetch_one(store.reader())
    .await
    .unwrap();
    (r.get("cursor"), r.get("deliveries"))
}

/// Writes `n` events (100 per transaction) and waits until they are numbered.
async fn write_events(store: &Store, n: usize) {
    for chunk in 0..n.div_ceil(100) {
        let mut tx = store.begin().await.unwrap();
        for i in 0..100.min(n - chunk * 100) {
            let id = format!("e{chunk}-{i}");
            tx.emit(NewEvent::new(
                "user.updated",
                "user",
                &id,
                serde_json::json!({ "id": id }),
            ));
        }
        tx.commit().await.unwrap();
    }
    // Waits out other tests' open transactions on the cluster, which hold numbering back.
    sequencer::catch_up(store, Duration::from_secs(30))
        .await
        .unwrap();
}

/// The webhook dispatcher: without an endpoint it moves its cursor to the head and
/// queues nothing; with one, a backlog larger than a batch is queued whole by one
/// call, one delivery per event, in one statement per few hundred rows.
async fn dispatcher_backlog_and_no_endpoint(url: String) {
    use offerhub::services::webhooks::{self, EndpointStatus};
    let store = open(&url).await;
    write_events(&store, 3).await;
    let head = events::last_seq(&store).await.unwrap();
    assert_eq!(webhooks::dispatch(&store).await.unwrap(), 0);
    assert_eq!(cursor_and_deliveries(&store).await, (head, 0));
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, url, event_filter, secret, status, created_at) \
         VALUES ('whe_test', 'https://example.com/hook', '*', 'sealed', $1, '2000-01-01T00:00:00Z')",
    )
    .bind(EndpointStatus::Active)
    .execute(store.reader())
    .await
    .unwrap();
    write_events(&store, 1_234).await;
    assert_eq!(webhooks::dispatch(&store).await.unwrap(), 1_234);
    let head = events::last_seq(&store).await.unwrap();
    assert_eq!(cursor_and_deliveries(&store).await, (head, 1_234));
    assert_eq!(webhooks::dispatch(&store).await.unwrap(), 0);
}
both_backends!(dispatcher_on, dispatcher_backlog_and_no_endpoint);

/// Two processes appending to one audit chain (a daemon and the CLI on one database):
/// a process that chains from the head it last committed notices the other's rows
/// (on SQLite they collide on `seq`) and chains again from the stored head. The chain
/// holds, every row once, and a transaction dropped with audit rows queued leaves the
/// next one right.
async fn two_writers_on_one_audit_chain(url: String) {
    let (daemon, cli) = (open(&url).await, open(&url).await);
    write(&daemon, "d1").await;
    write(&daemon, "d2").await;
    write(&cli, "c1").await;
    write(&daemon, "d3").await;
    write(&cli, "c2").await;
    write(&cli, "c3").await;
    write(&daemon, "d4").await;
    // A transaction that fails with audit rows queued changes nothing.
    let mut tx = daemon.begin().await.unwrap();
    tx.audit(Context::system().audit("test.written", "test", "dup"));
    sqlx::query("INSERT INTO rate_budgets (id, tat) VALUES ('dup', 0), ('dup', 0)")
        .execute(tx.conn())
        .await
        .unwrap_err();
    drop(tx);
    write(&daemon, "d5").await;
    let mut rows = 8;
    if daemon.backend() == Backend::Sqlite {
        // A COMMIT that fails after the audit rows were chained (a deferred foreign
        // key): the next transaction must not chain from the head it would have made.
        let mut tx = daemon.begin().await.unwrap();
        tx.audit(Context::system().audit("test.written", "test", "fk"));
        for sql in [
            "PRAGMA defer_foreign_keys = ON",
            "INSERT INTO ledger_account_shards (account_id, shard, balance) VALUES ('nope', 0, 0)",
        ] {
            sqlx::query(sql).execute(tx.conn()).await.unwrap();
        }
        tx.commit().await.unwrap_err();
        write(&daemon, "d6").await;
        // The file rolled back under the daemon (its last row and head undone by
        // another process): no collision, but the guarded head refuses, the
        // transaction fails whole, and the next one chains from the stored head.
        sqlx::query(
            "UPDATE audit_head SET last_seq = last_seq - 1, \
             last_hash = (SELECT prev_hash FROM audit_logs WHERE seq = audit_head.last_seq) \
             WHERE id = 1",
        )
        .execute(cli.reader())
        .await
        .unwrap();
        sqlx::query("DELETE FROM audit_logs WHERE seq = (SELECT MAX(seq) FROM audit_logs)")
            .execute(cli.reader())
            .await
            .unwrap();
        let mut tx = daemon.begin().await.unwrap();
        tx.audit(Context::system().audit("test.written", "test", "moved"));
        tx.commit().await.unwrap_err();
        write(&daemon, "d7").await;
        rows = 9; // d6 was undone, d7 took its place
    }
    sequencer::catch_up(&daemon, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        audit::verify(&daemon).await.unwrap(),
        Verification::Intact {
            rows,
            unsequenced: 0
        }
    );
}
both_backends!(two_writers_on, two_writers_on_one_audit_chain);

/// PostgreSQL: every connection of a store's pool claims a shard slot no other
/// session holds (two stores = two daemons: 2 × 8 connections, 16 distinct slots), and
/// once all 64 are taken a new connection falls back to its pid's shard — where
/// postings still apply and the ledger still proves.
async fn shard_slots_per_connection(url: String) {
    use sqlx::Connection;
    let store = open(&url).await;
    if store.backend() != Backend::Postgres {
        return;
    }
    let opts = || offerhub::store::StoreOptions {
        max_connections: 8,
        ..Default::default()
    };
    let a = Store::connect_with(&DatabaseUrl::new(&url), opts())
        .await
        .unwrap();
    let b = Store::connect_with(&DatabaseUrl::new(&url), opts())
        .await
        .unwrap();
    let mut held = Vec::new();
    let mut slots = Vec::new();
    // The sessions of `a` and `b` (their pools' only slot holders: 8 connections each).
    let mut pids: Vec<i64> = Vec::new();
    for s in [&a, &b] {
        for _ in 0..8 {
            let mut conn = s.reader().acquire().await.unwrap();
            let (slot, pid): (String, i64) = sqlx::query_as(
                "SELECT current_setting('offerhub.shard', true), \
                        CAST(pg_backend_pid() AS BIGINT)",
            )
            .fetch_one(&mut *conn)
            .await
            .unwrap();
            slots.push(slot.parse::<i64>().unwrap());
            pids.push(pid);
            held.push(conn);
        }
    }
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), 16, "{slots:?}");
    assert!(slots.iter().all(|s| (0..ledger::SHARDS).contains(s)));
    drop(held);
    a.close().await;
    b.close().await;
    // Every slot taken (this blocker takes the ones `store`'s connections do not
    // hold): a new connection has none, and posts to its pid's shard.
    let mut blocker = sqlx::AnyConnection::connect(&url).await.unwrap();
    // (The sessions of `a` and `b` end a moment after `close`: until then they hold
    // their slots, which must not be counted as taken.)
    let pid_list = pids
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut taken: i64 = 0;
    for _ in 0..100 {
        sqlx::query("SELECT pg_try_advisory_lock(1330139976, s) FROM generate_series(0, 63) AS s")
            .execute(&mut blocker)
            .await
            .unwrap();
        taken = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM pg_locks \
             WHERE locktype = 'advisory' AND classid = 1330139976 AND objsubid = 2 AND granted \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND pid NOT IN ({pid_list})"
        )))
        .fetch_one(&mut blocker)
        .await
        .unwrap();
        if taken == 64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(taken, 64, "the slots of `a` and `b` were never released");
    let c = Store::connect_with(&DatabaseUrl::new(&url), opts())
        .await
        .unwrap();
    let mut tx = c.begin().await.unwrap();
    let slot: String = sqlx::query_scalar("SELECT current_setting('offerhub.shard', true)")
        .fetch_one(tx.conn())
        .await
        .unwrap();
    assert_eq!(slot, "");
    ledger::open_user_accounts(&mut tx, "u").await.unwrap();
    ledger::record(
        &mut tx,
        "adjustment",
        "fallback",
        "test",
        &[
            Posting::new(ledger::available_account("u"), Amount::from_base_units(5)),
            Posting::new(ledger::ADJUSTMENTS_ACCOUNT, Amount::from_base_units(-5)),
        ],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let r = ledger::verify(&c).await.unwrap();
    assert!(r.is_clean(), "{:?}", r.violations);
    assert_eq!(
        ledger::account_balance(c.reader(), ledger::ADJUSTMENTS_ACCOUNT)
            .await
            .unwrap(),
        Amount::from_base_units(-5)
    );
}
both_backends!(shard_slots_on, shard_slots_per_connection);

//! Store contract tests: the same assertions on SQLite and on PostgreSQL.

use offerhub::audit::{self, AuditFilter, Verification};
use offerhub::config::{DatabaseUrl, Secret};
use offerhub::context::Context;
use offerhub::pagination::PageRequest;
use offerhub::services::keys::{self, Principal, Scope};
use offerhub::store::Store;
use offerhub_testkit::both_backends;

async fn open(url: &str) -> Store {
    let store = Store::connect(&DatabaseUrl::new(url)).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// A user (and its two ledger accounts) with external id `external_user_id`.
async fn new_user(store: &Store, external_user_id: &str) -> offerhub::services::users::User {
    use offerhub::services::users::{self, NewUser, NoHooks, UserType};
    let new = NewUser {
        external_user_id: external_user_id.into(),
        email: None,
        user_type: UserType::Both,
    };
    users::create(store, &Context::operator(), &NoHooks, new)
        .await
        .unwrap()
        .0
}

async fn migrations_are_idempotent(url: String) {
    let store = open(&url).await;
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    store.close().await;
    // Reopening an existing database works and keeps its data.
    let store = open(&url).await;
    keys::create(&store, &Context::operator(), "k", &[Scope::Read])
        .await
        .unwrap();
    store.close().await;
    let store = open(&url).await;
    assert_eq!(
        keys::list(&store, &PageRequest::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}
both_backends!(migrations_idempotent, migrations_are_idempotent);

async fn keys_lifecycle(url: String) {
    let store = open(&url).await;
    let ctx = Context::operator();
    let created = keys::create(&store, &ctx, "backend", &[Scope::Read, Scope::Write])
        .await
        .unwrap();
    let token = created.token.expose_secret().to_string();
    assert!(token.starts_with("ohk_live_"));
    match keys::authenticate(&store, None, &token).await.unwrap() {
        Principal::Key(k) => {
            assert_eq!(k.id, created.key.id);
            assert_eq!(k.scopes, vec![Scope::Read, Scope::Write]);
        }
        Principal::Master => panic!("not the master"),
    }
    let master = Secret::new("m".repeat(40));
    assert!(matches!(
        keys::authenticate(&store, Some(&master), &"m".repeat(40))
            .await
            .unwrap(),
        Principal::Master
    ));
    // Hash only: the token itself is nowhere in the database.
    let row: (String,) = sqlx::query_as("SELECT key_hash FROM api_keys WHERE id = $1")
        .bind(&created.key.id)
        .fetch_one(store.reader())
        .await
        .unwrap();
    assert_ne!(row.0, token);
    assert_eq!(row.0.len(), 64);

    keys::revoke(&store, &ctx, &created.key.id).await.unwrap();
    let err = keys::authenticate(&store, Some(&master), &token)
        .await
        .unwrap_err();
    assert_eq!(err.code.as_str(), "UNAUTHORIZED");
    // Revoking again is a no-op (no second audit row).
    keys::revoke(&store, &ctx, &created.key.id).await.unwrap();
    let rows = audit::list(&store, &AuditFilter::default(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(rows.items.len(), 2);
    assert_eq!(rows.items[0].actor_type, "operator");
}
both_backends!(keys_lifecycle_on, keys_lifecycle);

async fn audit_chain_detects_tampering(url: String) {
    let store = open(&url).await;
    let ctx = Context::operator();
    let mut ids = Vec::new();
    for i in 0..5 {
        let k = keys::create(&store, &ctx, &format!("k{i}"), &[Scope::Read])
            .await
            .unwrap();
        ids.push(k.key.id);
    }
    assert_eq!(
        audit::verify(&store).await.unwrap(),
        Verification::Intact {
            rows: 5,
            unsequenced: 0
        }
    );

    // Filters and pagination.
    let page = PageRequest::new(Some(2), None).unwrap();
    let first = audit::list(&store, &AuditFilter::default(), &page)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    assert!(first.has_more);
    let f = AuditFilter {
        resource_id: Some(ids[2].clone()),
        action: Some("api_key.created".into()),
        ..Default::default()
    };
    let one = audit::list(&store, &f, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    assert_eq!(one.items[0].after.as_ref().unwrap()["name"], "k2");

    // Edit row 3 behind the application's back.
    sqlx::query("UPDATE audit_logs SET after_state = $1 WHERE seq = 3")
        .bind(r#"{"name":"forged"}"#)
        .execute(store.reader())
        .await
        .unwrap();
    match audit::verify(&store).await.unwrap() {
        Verification::Broken { seq, reason, .. } => {
            assert_eq!(seq, 3);
            assert!(reason.contains("modified"), "{reason}");
        }
        other => panic!("tampering not detected: {other:?}"),
    }
}
both_backends!(audit_tamper_on, audit_chain_detects_tampering);

async fn audit_chain_detects_deletion(url: String) {
    let store = open(&url).await;
    for i in 0..3 {
        keys::create(
            &store,
            &Context::operator(),
            &format!("k{i}"),
            &[Scope::Read],
        )
        .await
        .unwrap();
    }
    // Numbered first (PostgreSQL numbers after commit).
    offerhub::sequencer::catch_up(&store, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_logs WHERE seq = 2")
        .execute(store.reader())
        .await
        .unwrap();
    match audit::verify(&store).await.unwrap() {
        Verification::Broken { seq, .. } => assert_eq!(seq, 3),
        other => panic!("deletion not detected: {other:?}"),
    }
}
both_backends!(audit_delete_on, audit_chain_detects_deletion);

async fn concurrent_audited_writes_keep_one_chain(url: String) {
    let store = open(&url).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            keys::create(&s, &Context::system(), &format!("k{i}"), &[Scope::Read])
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        audit::verify(&store).await.unwrap(),
        Verification::Intact {
            rows: 40,
            unsequenced: 0
        }
    );
}
both_backends!(
    audit_concurrent_on,
    concurrent_audited_writes_keep_one_chain
);

async fn ledger_verify_detects_tampering(url: String) {
    use offerhub::ledger::{self, Posting};
    use offerhub::money::Amount;
    let store = open(&url).await;
    let u = new_user(&store, "t").await;
    let mut tx = store.begin().await.unwrap();
    ledger::record(
        &mut tx,
        "deposit",
        "d1",
        "d",
        &[
            Posting::new(ledger::EXTERNAL_STELLAR, Amount::from_base_units(-100)),
            Posting::new(
                ledger::available_account(&u.id),
                Amount::from_base_units(100),
            ),
        ],
    )
    .await
    .unwrap();
    let h = ledger::hold(&mut tx, &u.id, Amount::from_base_units(40), "order", "o1")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(ledger::verify(&store).await.unwrap().is_clean());

    // An unbalanced posting list is refused before anything is written.
    let mut tx = store.begin().await.unwrap();
    let err = ledger::record(
        &mut tx,
        "bad",
        "b1",
        "b",
        &[
            Posting::new(ledger::EXTERNAL_STELLAR, Amount::from_base_units(-1)),
            Posting::new(ledger::available_account(&u.id), Amount::from_base_units(2)),
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(err.code.as_str(), "INTERNAL_ERROR");
    drop(tx);

    // Projection edited behind the ledger's back.
    sqlx::query("UPDATE ledger_accounts SET balance = balance + 1 WHERE id = $1")
        .bind(ledger::available_account(&u.id))
        .execute(store.reader())
        .await
        .unwrap();
    let report = ledger::verify(&store).await.unwrap();
    let checks: Vec<_> = report.violations.iter().map(|v| v.check).collect();
    assert!(checks.contains(&"projection_matches_journal"), "{checks:?}");
    assert!(checks.contains(&"balances_sum_to_zero"), "{checks:?}");
    sqlx::query("UPDATE ledger_accounts SET balance = balance - 1 WHERE id = $1")
        .bind(ledger::available_account(&u.id))
        .execute(store.reader())
        .await
        .unwrap();
    // A hold marked voided without its journal entry.
    sqlx::query("UPDATE holds SET status = 'VOIDED' WHERE id = $1")
        .bind(&h.id)
        .execute(store.reader())
        .await
        .unwrap();
    let report = ledger::verify(&store).await.unwrap();
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.violations[0].check, "reserved_equals_pending_holds");
}
both_backends!(ledger_tamper_on, ledger_verify_detects_tampering);

/// `record_with_balance` answers what `balance` reads next in the same transaction: on
/// the one-statement path (the updated account from the update, the reserved one from
/// the table), when the journal entry was already applied, and on the general path.
async fn record_with_balance_reads_the_balance_after(url: String) {
    use offerhub::ledger::{self, Posting, Recorded};
    use offerhub::money::Amount;
    let store = open(&url).await;
    let u = new_user(&store, "rwb").await;
    let units = Amount::from_base_units;
    let deposit = |n: i64| {
        [
            Posting::new(ledger::EXTERNAL_STELLAR, units(-n)),
            Posting::new(ledger::available_account(&u.id), units(n)),
        ]
    };
    let mut tx = store.begin().await.unwrap();
    let (r, b) = ledger::record_with_balance(&mut tx, "deposit", "d1", "d", &deposit(100), &u.id)
        .await
        .unwrap();
    assert!(matches!(r, Recorded::Applied(_)));
    assert_eq!(
        (b.available, b.reserved, b.total),
        (units(100), units(0), units(100))
    );
    ledger::hold(&mut tx, &u.id, units(40), "order", "o1")
        .await
        .unwrap();
    let (_, b) = ledger::record_with_balance(&mut tx, "deposit", "d2", "d", &deposit(5), &u.id)
        .await
        .unwrap();
    assert_eq!(b, ledger::balance(tx.conn(), &u.id).await.unwrap());
    assert_eq!(
        (b.available, b.reserved, b.total),
        (units(65), units(40), units(105))
    );
    tx.commit().await.unwrap();

    // Already applied: nothing moves, the balance is as it stands.
    let mut tx = store.begin().await.unwrap();
    let (r, b) = ledger::record_with_balance(&mut tx, "deposit", "d2", "d", &deposit(5), &u.id)
        .await
        .unwrap();
    assert!(matches!(r, Recorded::AlreadyApplied(_)));
    assert_eq!(
        (b.available, b.reserved, b.total),
        (units(65), units(40), units(105))
    );
    // The general path (two legs on one account) reads it with a second statement.
    let legs = [
        Posting::new(ledger::EXTERNAL_STELLAR, units(-3)),
        Posting::new(ledger::available_account(&u.id), units(1)),
        Posting::new(ledger::available_account(&u.id), units(2)),
    ];
    let (r, b) = ledger::record_with_balance(&mut tx, "deposit", "d3", "d", &legs, &u.id)
        .await
        .unwrap();
    assert!(matches!(r, Recorded::Applied(_)));
    assert_eq!((b.available, b.total), (units(68), units(108)));
    tx.commit().await.unwrap();
    assert!(ledger::verify(&store).await.unwrap().is_clean());
}
both_backends!(
    record_with_balance_on,
    record_with_balance_reads_the_balance_after
);

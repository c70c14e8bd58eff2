//! SQLite group commit and background WAL checkpoints (`store::group_commit`,
//! `store::checkpoint`), on SQLite and on PostgreSQL (where every transaction is its
//! own and the same outcomes must hold).

use std::time::Duration;

use offerhub::audit::{self, Verification};
use offerhub::config::DatabaseUrl;
use offerhub::context::Context;
use offerhub::events::NewEvent;
use offerhub::sequencer;
use offerhub::store::{Backend, Store, StoreOptions};
use offerhub_testkit::both_backends;
use sqlx::Row;

async fn open_with(url: &str, opts: StoreOptions) -> Store {
    let store = Store::connect_with(&DatabaseUrl::new(url), opts)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

async fn open(url: &str) -> Store {
    open_with(url, StoreOptions::default()).await
}

/// Ids of the `rate_budgets` rows whose id starts with `prefix`, sorted.
async fn rows(store: &Store, prefix: &str) -> Vec<String> {
    let mut ids: Vec<String> = sqlx::query("SELECT id FROM rate_budgets WHERE id LIKE $1")
        .bind(format!("{prefix}%"))
        .fetch_all(store.reader())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("id"))
        .collect();
    ids.sort();
    ids
}

/// How one concurrent transaction ends.
#[derive(Clone, Copy, Debug)]
enum End {
    Commit,
    Drop,
    Rollback,
    /// A statement fails (duplicate key), then the transaction is dropped.
    FailThenDrop,
    /// The task holding it is aborted (a client hanging up).
    Abort,
}

/// One transaction: a row `id`, an audit row and an event, held ~1 ms so that others
/// queue behind it (and join its group on SQLite), then ended as `end` says.
async fn one(store: Store, id: String, end: End) -> bool {
    let mut tx = store.begin().await.unwrap();
    sqlx::query("INSERT INTO rate_budgets (id, tat) VALUES ($1, 0)")
        .bind(&id)
        .execute(tx.conn())
        .await
        .unwrap();
    tx.audit(Context::system().audit("test.written", "test", &id));
    tx.emit(NewEvent::new(
        "user.updated",
        "user",
        &id,
        serde_json::json!({ "id": id }),
    ));
    tokio::time::sleep(Duration::from_millis(1)).await;
    match end {
        End::Commit => {
            tx.commit().await.unwrap();
            true
        }
        End::Drop => false,
        End::Rollback => {
            tx.rollback().await.unwrap();
            false
        }
        End::FailThenDrop => {
            sqlx::query("INSERT INTO rate_budgets (id, tat) VALUES ($1, 0)")
                .bind(&id)
                .execute(tx.conn())
                .await
                .unwrap_err();
            false
        }
        End::Abort => std::future::pending().await,
    }
}

/// 120 concurrent transactions, a fifth each committed, dropped, rolled back, failed
/// then dropped, or abandoned by an aborted task: exactly the committed ones are in
/// the database with their events and audit rows; the audit chain is whole; the writer
/// serves the next transaction.
async fn members_commit_and_roll_back_alone(url: String) {
    let store = open(&url).await;
    let ends = [
        End::Commit,
        End::Drop,
        End::Rollback,
        End::FailThenDrop,
        End::Abort,
    ];
    let mut tasks = Vec::new();
    let mut expected = Vec::new();
    for i in 0..120 {
        let end = ends[i % ends.len()];
        let id = format!("gc-{i:03}");
        if matches!(end, End::Commit) {
            expected.push(id.clone());
        }
        tasks.push((end, tokio::spawn(one(store.clone(), id, end))));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    // First the aborts: a member holding the writer keeps the members of its group
    // before it waiting for their commit.
    for (end, task) in &tasks {
        if matches!(end, End::Abort) {
            task.abort();
        }
    }
    for (end, task) in tasks {
        if !matches!(end, End::Abort) {
            task.await.unwrap();
        }
    }
    // Aborted members roll back in the background; the writer is free after them.
    let mut tx = tokio::time::timeout(Duration::from_secs(10), store.begin())
        .await
        .expect("the writer is free again")
        .unwrap();
    sqlx::query("INSERT INTO rate_budgets (id, tat) VALUES ('gc-last', 0)")
        .execute(tx.conn())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    expected.push("gc-last".into());
    assert_eq!(rows(&store, "gc-").await, expected);
    sequencer::catch_up(&store, Duration::from_secs(30))
        .await
        .unwrap();
    let events: i64 = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM events \
         WHERE resource_id LIKE 'gc-%' AND seq IS NOT NULL",
    )
    .fetch_one(store.reader())
    .await
    .unwrap()
    .get("n");
    assert_eq!(events, 24);
    assert_eq!(
        audit::verify(&store).await.unwrap(),
        Verification::Intact {
            rows: 24,
            unsequenced: 0
        }
    );
}
both_backends!(members_on, members_commit_and_roll_back_alone);

/// A group whose `COMMIT` fails (SQLite: a deferred foreign key broken by its first
/// member) fails every member: none reports success, no row exists, and a member that
/// rolled back hears of it. On PostgreSQL each transaction is its own.
async fn a_failed_group_commit_fails_every_member(url: String) {
    let store = open(&url).await;
    let sqlite = store.backend() == Backend::Sqlite;
    let mut first = store.begin().await.unwrap();
    sqlx::query("INSERT INTO rate_budgets (id, tat) VALUES ('fg-a', 0)")
        .execute(first.conn())
        .await
        .unwrap();
    if sqlite {
        for sql in [
            "PRAGMA defer_foreign_keys = ON",
            "INSERT INTO ledger_account_shards (account_id, shard, balance) VALUES ('nope', 0, 0)",
        ] {
            sqlx::query(sql).execute(first.conn()).await.unwrap();
        }
    }
    // The second queues for the writer behind the first, then joins its group.
    let s = store.clone();
    let second = tokio::spawn(async move {
        let mut tx = s.begin().await.unwrap();
        sqlx::query("INSERT INTO rate_budgets (id, tat) VALUES ('fg-b', 0)")
            .execute(tx.conn())
            .await
            .unwrap();
        tx.commit().await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third queues behind the second and rolls back: on SQLite it must learn that
    // what it saw of the first two never was.
    let s = store.clone();
    let third = tokio::spawn(async move {
        let tx = s.begin().await.unwrap();
        tx.rollback().await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let first = first.commit().await;
    let second = second.await.unwrap();
    let third = third.await.unwrap();
    if sqlite {
        assert!(first.is_err(), "{first:?}");
        assert!(second.is_err(), "{second:?}");
        assert!(third.is_err(), "{third:?}");
        assert_eq!(rows(&store, "fg-").await, Vec::<String>::new());
    } else {
        first.unwrap();
        second.unwrap();
        third.unwrap();
        assert_eq!(rows(&store, "fg-").await, ["fg-a", "fg-b"]);
    }
    // The writer serves the next transaction.
    let mut tx = store.begin().await.unwrap();
    sqlx::query("INSERT INTO rate_budgets (id, tat) VALUES ('fg-c', 0)")
        .execute(tx.conn())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(rows(&store, "fg-").await.contains(&"fg-c".to_string()));
}
both_backends!(failed_group_on, a_failed_group_commit_fails_every_member);

/// With background checkpoints (the daemon's setting) the SQLite write-ahead log
/// starts over instead of growing with every write: 64 MB written in 40 transactions
/// leave a log file far smaller. `Store::checkpoint` is `None` on PostgreSQL.
async fn background_checkpoints_bound_the_log(url: String) {
    let opts = StoreOptions {
        background_checkpoints: true,
        ..StoreOptions::default()
    };
    let store = open_with(&url, opts).await;
    if store.backend() == Backend::Postgres {
        assert_eq!(store.checkpoint().await.unwrap(), None);
        return;
    }
    let blob = "x".repeat(16 * 1024);
    for t in 0..40 {
        let mut tx = store.begin().await.unwrap();
        for i in 0..100 {
            let id = format!("ck-{t}-{i}");
            tx.emit(NewEvent::new(
                "user.updated",
                "user",
                &id,
                serde_json::json!({ "blob": blob }),
            ));
        }
        tx.commit().await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let file: String = sqlx::query("SELECT file FROM pragma_database_list WHERE name = 'main'")
        .fetch_one(store.reader())
        .await
        .unwrap()
        .get("file");
    let wal = std::fs::metadata(format!("{file}-wal")).unwrap().len();
    assert!(wal < 40 * 1024 * 1024, "write-ahead log of {wal} bytes");
    let c = store.checkpoint().await.unwrap().unwrap();
    assert!(!c.busy);
    store.close().await;
}
both_backends!(checkpoints_on, background_checkpoints_bound_the_log);

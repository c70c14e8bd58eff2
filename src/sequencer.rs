//! The sequencer: numbers events and chains audit rows after commit (PostgreSQL).
//!
//! Writers insert events and audit rows without a number, tagged with their
//! transaction id (`txid` = `pg_current_xact_id()`), and lock nothing shared. A pass
//! numbers, in one transaction, the rows whose transaction is older than every
//! transaction still running (`txid < pg_snapshot_xmin(pg_current_snapshot())`): such a
//! transaction has ended, so no row can ever appear with a smaller `txid`, and numbers
//! given in `(txid, insertion)` order never need to change. Events get the next sequence
//! numbers (`event_head`); audit rows get theirs and their hash chain (`audit_head`,
//! [`crate::audit`]). An events pass that numbered any event sends
//! `NOTIFY offerhub_events`, which wakes every daemon's broadcaster.
//!
//! Events and audit rows are numbered by passes of their own (each one transaction):
//! an event is visible on SSE as soon as its pass commits, without waiting for the
//! audit chain's hashing and its two extra round trips, and the audit chain is extended
//! in bigger, fewer batches. Passes of a kind are serialised by a transaction-scoped
//! advisory lock ([`LOCK_KEY`], [`AUDIT_LOCK_KEY`]), so any daemon (or the CLI) may run
//! one and at most one of a kind runs at a time: every daemon's event pump runs an
//! events pass when woken, and its audit task an audit pass, which makes the sequencer
//! survive any daemon's death with no election delay. On SQLite there is nothing to
//! do: rows are numbered at commit under the one writer connection, and every function
//! here returns at once.
//!
//! Readers (SSE, `/events/history`, webhooks, `GET /audit/logs`) see numbered rows only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::Row;

use crate::audit::RawRow;
use crate::error::Result;
use crate::store::{Backend, Store};

/// Key of the transaction-scoped advisory lock that serialises events passes.
pub const LOCK_KEY: i64 = 0x6f68_5f73_6571; // "oh_seq"

/// Key of the transaction-scoped advisory lock that serialises audit passes.
pub const AUDIT_LOCK_KEY: i64 = 0x6f68_5f61_7564; // "oh_aud"

/// Rows numbered per statement.
const EVENT_BATCH: i64 = 2000;
const AUDIT_BATCH: i64 = 500;

/// What one [`run_pass`] did.
#[derive(Clone, Debug, Default)]
pub struct Pass {
    /// Events numbered.
    pub events: u64,
    /// Audit rows numbered and chained.
    pub audit: u64,
    /// Committed rows (of the kinds this pass numbered) are left unnumbered (their
    /// transaction is younger than one still running): run another pass soon.
    pub waiting: bool,
    /// Seconds from each numbered event's `occurredAt` (written at insert, just before
    /// its commit) to its numbering: the sequencer's share of event latency.
    pub lag_seconds: Vec<f64>,
    /// The events this pass numbered, in sequence order (visible once it returns): the
    /// daemon's broadcaster sends them without reading them back.
    pub numbered: Vec<crate::events::Event>,
}

/// Numbers up to `$1` ready events and moves `event_head` on, in one statement (its
/// data-modifying parts see one snapshot, so `h.last_seq` is the head before it).
/// `$2`: the events floor ([`Floors`]), as text. `$3`: the channel the statement
/// notifies (`pg_notify`, delivered at commit) when it numbered any event — one round
/// trip fewer than a `NOTIFY` of its own. The first column, `waiting`, says whether
/// committed events are left unnumbered (behind an older transaction); with nothing
/// numbered, the one row has NULL in every other column.
///
/// Ready rows are read by two ordered range scans of the `*_unsequenced` index, not one
/// scan with `OR`: PostgreSQL runs an `OR` as a bitmap scan, which visits the heap for
/// every index entry left by an already numbered row (its old version) until VACUUM,
/// while a plain index scan marks those entries dead as it passes them (measured: a
/// pass read ~600 heap pages for 26 ready rows after a minute of load). The first scan
/// starts at the floor: the entries below it are all dead, and a scan from the start
/// of the index still read their pages until VACUUM removed them (measured: 6.3 ms and
/// 11,000 buffers per pass after ~200,000 events, against 0.6 ms once vacuumed).
/// `settled_txid`: the row's transaction id when it is below the snapshot's xmin (the
/// floor may move up to it), NULL for a row restored from another cluster. The update
/// finds the rows from the floor too (every ready row is at or above it), and
/// `numbered` is materialized: with the generic plan of a prepared statement
/// PostgreSQL otherwise scanned every unnumbered row and ran `numbered` again for each.
const NUMBER_EVENTS: &str = "\
WITH ready AS (
    (SELECT ins, txid FROM events
     WHERE seq IS NULL AND txid >= CAST(CAST($2 AS TEXT) AS xid8)
       AND txid < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY txid, ins LIMIT $1)
    UNION ALL
    (SELECT ins, txid FROM events
     WHERE seq IS NULL AND txid >= pg_snapshot_xmax(pg_current_snapshot())
     ORDER BY txid, ins LIMIT $1)
    ORDER BY txid, ins LIMIT $1
), numbered AS MATERIALIZED (
    SELECT ins, txid, row_number() OVER (ORDER BY txid, ins) AS n FROM ready
), upd AS (
    UPDATE events SET seq = h.last_seq + numbered.n
    FROM numbered, event_head h
    WHERE h.id = 1 AND events.txid = numbered.txid AND events.ins = numbered.ins
      AND events.seq IS NULL
      AND events.txid >= CAST(CAST($2 AS TEXT) AS xid8)
    RETURNING events.seq, events.id, events.event_type, events.resource_type,
              events.resource_id, events.data, events.occurred_at,
              CASE WHEN events.txid < pg_snapshot_xmin(pg_current_snapshot())
                   THEN CAST(events.txid AS TEXT) END AS settled_txid
), head AS (
    UPDATE event_head SET last_seq = last_seq + (SELECT COUNT(*) FROM upd)
    WHERE id = 1 AND EXISTS (SELECT 1 FROM upd)
)
, notified AS (
    SELECT COUNT(pg_notify($3, 'sequenced')) AS n FROM (SELECT 1 FROM upd LIMIT 1) AS any_row
), left_over AS (
    SELECT EXISTS (SELECT 1 FROM events
                   WHERE seq IS NULL AND txid >= pg_snapshot_xmin(pg_current_snapshot())
                     AND txid < pg_snapshot_xmax(pg_current_snapshot())) AS waiting
)
SELECT left_over.waiting, x.* FROM left_over
LEFT JOIN (SELECT upd.* FROM upd, notified) AS x ON true
ORDER BY x.seq";

/// The audit chain's head with up to 500 ready rows (one row of NULLs when none is
/// ready), and whether committed audit rows wait on an older transaction. `$1`: the
/// audit floor ([`Floors`]), as text; `settled`: as `settled_txid` of
/// [`NUMBER_EVENTS`].
const READY_AUDIT: &str = "\
SELECT h.last_seq AS head_seq, h.last_hash AS head_hash,
       EXISTS (SELECT 1 FROM audit_logs
               WHERE seq IS NULL AND txid >= pg_snapshot_xmin(pg_current_snapshot())
                 AND txid < pg_snapshot_xmax(pg_current_snapshot()))
         AS waiting,
       a.*
FROM audit_head h LEFT JOIN LATERAL (
    SELECT ins, CAST(txid AS TEXT) AS txid,
           (txid < pg_snapshot_xmin(pg_current_snapshot())) AS settled,
           id, occurred_at, actor_type, actor_id, action,
           resource_type, resource_id, before_state, after_state, request_id, idempotency_key
    FROM (
        (SELECT * FROM audit_logs
         WHERE seq IS NULL AND txid >= CAST(CAST($1 AS TEXT) AS xid8)
           AND txid < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY txid, ins LIMIT 500)
        UNION ALL
        (SELECT * FROM audit_logs
         WHERE seq IS NULL AND txid >= pg_snapshot_xmax(pg_current_snapshot())
         ORDER BY txid, ins LIMIT 500)
    ) r
    ORDER BY r.txid, r.ins LIMIT 500
) a ON true
WHERE h.id = 1";

/// Numbers and chains a batch of audit rows, found by `(txid, ins)` among the
/// unnumbered ones (the partial index `audit_logs_unsequenced`, migration 0012), and
/// moves `audit_head` on — only if every row of the batch was still unnumbered.
/// `$1`: the rows as a JSON array of `{ins, txid, seq, prev_hash, hash}` (one statement
/// text for every batch size: a `VALUES` list per size was a prepared statement per
/// size, planned again whenever the connection's statement cache evicted it);
/// `$2`/`$3`: the new head; `$4`: the batch's size; `$5`: the audit floor the rows were
/// read from ([`Floors`]; the lookup scans no entry below it).
const CHAIN_AUDIT: &str = "\
WITH v AS (
    SELECT * FROM json_to_recordset(CAST($1 AS json))
        AS v(ins BIGINT, txid TEXT, seq BIGINT, prev_hash TEXT, hash TEXT)
), upd AS (
    UPDATE audit_logs SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash
    FROM v WHERE audit_logs.txid = CAST(v.txid AS xid8) AND audit_logs.ins = v.ins
      AND audit_logs.seq IS NULL AND audit_logs.txid >= CAST(CAST($5 AS TEXT) AS xid8)
    RETURNING 1
)
UPDATE audit_head SET last_seq = $2, last_hash = $3
WHERE id = 1 AND (SELECT COUNT(*) FROM upd) = $4";

/// Where the sequencer's scans for unnumbered rows start, per store: transaction ids
/// (`xid8`) below which every event (audit row) is numbered.
///
/// A pass numbers ready rows in `(txid, insertion)` order, and only rows whose
/// transaction is below the snapshot's xmin — ended, so all its rows are visible. Once
/// a row of transaction `t` is numbered, every row of every transaction below `t` is,
/// and none can appear later: `t` is a valid floor, for every process on the database.
/// A floor moves only after the pass that found it commits. Rows copied in with an
/// old `txid` (a restore into a database in use) would sit below it: once a minute a
/// pass of each kind scans from zero.
#[derive(Debug)]
pub(crate) struct Floors {
    events: Floor,
    audit: Floor,
}

/// The floor of one kind of row ([`Floors`]).
#[derive(Debug)]
struct Floor {
    txid: AtomicU64,
    /// When a pass last scanned from zero.
    rescanned: std::sync::Mutex<Instant>,
}

impl Default for Floors {
    fn default() -> Self {
        let floor = || Floor {
            txid: AtomicU64::new(0),
            rescanned: std::sync::Mutex::new(Instant::now()),
        };
        Floors {
            events: floor(),
            audit: floor(),
        }
    }
}

/// How often a pass scans from zero ([`Floors`]).
const RESCAN_EVERY: Duration = Duration::from_secs(60);

impl Floor {
    /// The floor for a pass starting now: 0 when a scan from zero is due.
    fn for_pass(&self) -> u64 {
        let mut rescanned = self.rescanned.lock().unwrap_or_else(|p| p.into_inner());
        if rescanned.elapsed() >= RESCAN_EVERY {
            *rescanned = Instant::now();
            return 0;
        }
        self.current()
    }

    fn current(&self) -> u64 {
        self.txid.load(Ordering::Relaxed)
    }

    /// Raises the floor to what a committed pass found (never lowers it).
    fn raise(&self, txid: u64) {
        self.txid.fetch_max(txid, Ordering::Relaxed);
    }
}

impl Floors {
    /// The floors as they are: `(events, audit)`.
    fn current(&self) -> (u64, u64) {
        (self.events.current(), self.audit.current())
    }
}

/// `settled_txid` / `txid` of a numbered row as a floor candidate (0 when NULL).
fn settled(txid: Option<String>) -> u64 {
    txid.and_then(|t| t.parse().ok()).unwrap_or(0)
}

/// How a pass takes its kind's lock.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lock {
    /// Waits for a pass of the same kind to end.
    Wait,
    /// Gives up at once (`Ok(None)`) when one is running.
    Try,
}

/// Numbers what is ready, events then audit rows (PostgreSQL; nothing on SQLite).
/// Loops while batches come back full. Errors are database errors; a failed pass
/// changes nothing.
pub async fn run_pass(store: &Store) -> Result<Pass> {
    let mut pass = events_pass(store, Lock::Wait, true)
        .await?
        .unwrap_or_default();
    let audit = audit_pass(store, Lock::Wait, true)
        .await?
        .unwrap_or_default();
    pass.audit = audit.audit;
    pass.waiting |= audit.waiting;
    Ok(pass)
}

/// Numbers the ready events unless another events pass is running (then `Ok(None)` at
/// once: that pass numbers what is ready and wakes every daemon's broadcaster when it is
/// done). The event pumps use this, so daemons do not queue behind each other's passes.
/// Audit rows are [`try_audit_pass`]'s.
pub async fn try_pass(store: &Store) -> Result<Option<Pass>> {
    events_pass(store, Lock::Try, true).await
}

/// Numbers and chains the ready audit rows unless another audit pass is running (then
/// `Ok(None)` at once). The daemon's audit task uses this.
pub async fn try_audit_pass(store: &Store) -> Result<Option<Pass>> {
    audit_pass(store, Lock::Try, true).await
}

/// A transaction holding `key`'s pass lock, `None` when `lock` is [`Lock::Try`] and
/// another pass holds it; on the sequencer's own pool (`background`, the event pumps)
/// or the query pool (requests' read-your-writes).
async fn locked(
    store: &Store,
    key: i64,
    lock: Lock,
    background: bool,
) -> Result<Option<crate::store::Tx>> {
    let mut tx = if background {
        store.begin_background().await?
    } else {
        store.begin().await?
    };
    if lock == Lock::Wait {
        sqlx::query("SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock($1)) AS l")
            .bind(key)
            .fetch_one(tx.conn())
            .await?;
        return Ok(Some(tx));
    }
    let got: bool = sqlx::query("SELECT pg_try_advisory_xact_lock($1) AS locked")
        .bind(key)
        .fetch_one(tx.conn())
        .await?
        .try_get("locked")?;
    if !got {
        tx.rollback().await?;
        return Ok(None);
    }
    Ok(Some(tx))
}

/// An events pass: numbers every ready event (batches of [`EVENT_BATCH`]) in one
/// transaction. `pass.waiting`: committed events are left behind an older transaction.
async fn events_pass(store: &Store, lock: Lock, background: bool) -> Result<Option<Pass>> {
    let mut pass = Pass::default();
    if store.backend() == Backend::Sqlite {
        return Ok(Some(pass));
    }
    let Some(mut tx) = locked(store, LOCK_KEY, lock, background).await? else {
        return Ok(None);
    };
    let now = chrono::Utc::now();
    let mut floor = store.sequencer_floors().events.for_pass();
    loop {
        let rows = sqlx::query(NUMBER_EVENTS)
            .bind(EVENT_BATCH)
            .bind(floor.to_string())
            .bind(crate::events::NOTIFY_CHANNEL)
            .fetch_all(tx.conn())
            .await?;
        let mut numbered = 0;
        for r in &rows {
            pass.waiting = r.try_get("waiting")?;
            if r.try_get::<Option<i64>, _>("seq")?.is_none() {
                continue; // nothing numbered: the one row of NULLs
            }
            numbered += 1;
            pass.numbered.push(crate::events::from_row(r)?);
            floor = floor.max(settled(r.try_get("settled_txid")?));
            let at: String = r.try_get("occurred_at")?;
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&at) {
                let lag = (now - t.with_timezone(&chrono::Utc)).num_microseconds();
                let seconds = lag.unwrap_or(0).max(0) as f64 / 1_000_000.0;
                crate::metrics::event_sequencer_lag(seconds);
                pass.lag_seconds.push(seconds);
            }
        }
        pass.events += numbered;
        if (numbered as i64) < EVENT_BATCH {
            break;
        }
    }
    tx.commit().await?;
    store.sequencer_floors().events.raise(floor);
    // The gauge: 0 when nothing waits, else counted at most once a second.
    static COUNTED: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    if !pass.waiting {
        crate::metrics::events_unsequenced(0);
    } else {
        let due = {
            let mut last = COUNTED.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        let pool = if background {
            store.background_reader()
        } else {
            store.reader()
        };
        if due && let Ok((events, _)) = unsequenced_on(store, pool).await {
            crate::metrics::events_unsequenced(events);
        }
    }
    Ok(Some(pass))
}

/// An audit pass: numbers and chains every ready audit row (batches of
/// [`AUDIT_BATCH`]) in one transaction. `pass.waiting`: committed audit rows are left
/// behind an older transaction.
async fn audit_pass(store: &Store, lock: Lock, background: bool) -> Result<Option<Pass>> {
    let mut pass = Pass::default();
    if store.backend() == Backend::Sqlite {
        return Ok(Some(pass));
    }
    let Some(mut tx) = locked(store, AUDIT_LOCK_KEY, lock, background).await? else {
        return Ok(None);
    };
    let mut floor = store.sequencer_floors().audit.for_pass();
    loop {
        let (n, waiting) = chain_audit(&mut tx, &mut floor).await?;
        pass.audit += n;
        pass.waiting = waiting;
        if n < AUDIT_BATCH as u64 {
            break;
        }
    }
    tx.commit().await?;
    store.sequencer_floors().audit.raise(floor);
    Ok(Some(pass))
}

/// Numbers and chains one batch of ready audit rows inside `tx`; returns how many, and
/// whether committed audit rows wait on an older transaction. Scans from the audit
/// floor ([`Floors`]); raises `audit_floor` to what it numbered.
async fn chain_audit(tx: &mut crate::store::Tx, audit_floor: &mut u64) -> Result<(u64, bool)> {
    let rows = sqlx::query(READY_AUDIT)
        .bind(audit_floor.to_string())
        .fetch_all(tx.conn())
        .await?;
    let Some(first) = rows.first() else {
        return Err(crate::error::Error::internal("audit_head is missing"));
    };
    let waiting: bool = first.try_get("waiting")?;
    let mut seq: i64 = first.try_get("head_seq")?;
    let mut prev: String = first.try_get("head_hash")?;
    let mut chained: Vec<serde_json::Value> = Vec::with_capacity(rows.len());
    let mut floor = *audit_floor;
    for r in &rows {
        let Some(ins) = r.try_get::<Option<i64>, _>("ins")? else {
            break; // none ready: the one row of NULLs
        };
        let txid: String = r.try_get("txid")?;
        if r.try_get::<bool, _>("settled")? {
            floor = floor.max(settled(Some(txid.clone())));
        }
        let mut row = RawRow::from_unsequenced_row(r)?;
        seq += 1;
        row.seq = seq;
        row.prev_hash = std::mem::take(&mut prev);
        let hash = row.compute_hash();
        prev = hash.clone();
        chained.push(serde_json::json!({
            "ins": ins, "txid": txid, "seq": seq, "prev_hash": row.prev_hash, "hash": hash,
        }));
    }
    if chained.is_empty() {
        return Ok((0, waiting));
    }
    let n = chained.len();
    let moved = sqlx::query(CHAIN_AUDIT)
        .bind(serde_json::Value::Array(chained).to_string())
        .bind(seq)
        .bind(&prev)
        .bind(n as i64)
        .bind(audit_floor.to_string())
        .execute(tx.conn())
        .await?;
    if moved.rows_affected() != 1 {
        return Err(crate::error::Error::internal(
            "audit rows changed while being numbered",
        ));
    }
    *audit_floor = floor;
    Ok((n as u64, waiting))
}

/// Runs passes until every event and audit row committed before this call is
/// numbered, or `wait` has passed (then returns `Ok` anyway: a transaction older than
/// those rows is still open). Read-your-writes for `/events/history` and
/// `GET /audit/logs`, and the first step of `offerhub audit verify`. No-op on SQLite.
pub async fn catch_up(store: &Store, wait: Duration) -> Result<()> {
    if store.backend() == Backend::Sqlite {
        return Ok(());
    }
    match tokio::time::timeout(wait, catch_up_loop(store)).await {
        Ok(done) => done,
        // Held back by a transaction still open (or a busy database): the caller reads
        // what is numbered so far.
        Err(_) => Ok(()),
    }
}

async fn catch_up_loop(store: &Store) -> Result<()> {
    let target: i64 = sqlx::query(
        "SELECT CAST(CAST(pg_snapshot_xmax(pg_current_snapshot()) AS TEXT) AS BIGINT) AS x",
    )
    .fetch_one(store.reader())
    .await?
    .try_get("x")?;
    loop {
        // On the query pool, trying the lock: a request never queues behind the pumps'
        // passes nor takes their connections; a pass already running numbers for it.
        let events = events_pass(store, Lock::Try, false).await?;
        let audit = audit_pass(store, Lock::Try, false).await?;
        let done = |p: &Option<Pass>| matches!(p, Some(p) if !p.waiting);
        if done(&events) && done(&audit) {
            return Ok(());
        }
        let (events_floor, audit_floor) = store.sequencer_floors().current();
        let behind: bool = sqlx::query(
            "SELECT (EXISTS (SELECT 1 FROM events WHERE seq IS NULL \
                       AND txid >= CAST(CAST($2 AS TEXT) AS xid8) \
                       AND txid < CAST(CAST($1 AS TEXT) AS xid8)) \
                  OR EXISTS (SELECT 1 FROM audit_logs WHERE seq IS NULL \
                       AND txid >= CAST(CAST($3 AS TEXT) AS xid8) \
                       AND txid < CAST(CAST($1 AS TEXT) AS xid8))) AS behind",
        )
        .bind(target)
        .bind(events_floor.to_string())
        .bind(audit_floor.to_string())
        .fetch_one(store.reader())
        .await?
        .try_get("behind")?;
        if !behind {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Rows committed but not numbered yet: `(events, audit rows)`. Always `(0, 0)` on
/// SQLite.
pub async fn unsequenced(store: &Store) -> Result<(i64, i64)> {
    if store.backend() == Backend::Sqlite {
        return Ok((0, 0));
    }
    unsequenced_on(store, store.reader()).await
}

/// [`unsequenced`] on `pool` (the background pool when the sequencer's tasks ask).
async fn unsequenced_on(store: &Store, pool: &sqlx::AnyPool) -> Result<(i64, i64)> {
    // From the floors: the index entries below them are dead rows' (a count from zero
    // took 7 ms under load until VACUUM).
    let (events_floor, audit_floor) = store.sequencer_floors().current();
    let r = sqlx::query(
        "SELECT (SELECT CAST(COUNT(*) AS BIGINT) FROM events WHERE seq IS NULL \
                   AND txid >= CAST(CAST($1 AS TEXT) AS xid8)) AS e, \
                (SELECT CAST(COUNT(*) AS BIGINT) FROM audit_logs WHERE seq IS NULL \
                   AND txid >= CAST(CAST($2 AS TEXT) AS xid8)) AS a",
    )
    .bind(events_floor.to_string())
    .bind(audit_floor.to_string())
    .fetch_one(pool)
    .await?;
    Ok((r.try_get("e")?, r.try_get("a")?))
}

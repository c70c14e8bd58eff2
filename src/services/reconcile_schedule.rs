//! Reconciliation inside the daemon (`OFFERHUB_RECONCILE_EVERY`): the checks of
//! `offerhub reconcile` ([`crate::services::reconcile`]) on a schedule, within the
//! public Horizon rate budget.
//!
//! - **Activity-driven.** A run checks only the wallets and escrows with movement since
//!   the previous run: accounts named by the network's payments after the stored Horizon
//!   paging token (one request per 200 payments), users with ledger postings since the
//!   previous run, and orders changed since then (their escrow contracts). The platform
//!   wallet is checked every run (one request).
//! - **A slow full sweep**: every wallet and escrow, when the last full run is older than
//!   `OFFERHUB_RECONCILE_FULL_EVERY` (default one day), on the first run, and when the
//!   activity since the last run is too much to page through (more than 2000 payments).
//! - Every run is stored in `reconciliation_runs` (`offerhub reconcile --last` prints
//!   the newest). Open discrepancies are kept in `reconciliation_discrepancies` (one row
//!   per wallet, escrow or platform wallet): a new one, or one whose difference changed,
//!   emits `reconciliation.discrepancy` (audited); a standing mismatch is announced once,
//!   even across runs that do not check it, and is forgotten when a run finds it in
//!   order.
//! - One daemon runs it: the worker holds a PostgreSQL advisory lock
//!   (`daemon/src/workers.rs`), like the deposit monitor.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::Row;

use crate::context::Context;
use crate::domain::reconcile::CheckStatus;
use crate::error::Result;
use crate::events::NewEvent;
use crate::ids::{IdKind, new_id};
use crate::services::escrow::EscrowContext;
use crate::services::reconcile::{self, Report};
use crate::services::wallets::StellarContext;
use crate::store::{Store, Tx};

/// Payment pages (200 each) one activity run reads before it sweeps everything instead.
const MAX_PAGES: usize = 10;

/// One stored run.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub id: String,
    /// `FULL` or `ACTIVITY`.
    pub scope: String,
    pub started_at: String,
    pub finished_at: String,
    pub wallets_checked: i64,
    pub escrows_checked: i64,
    pub discrepancies: i64,
    /// Horizon paging token of the newest payment seen.
    pub payments_cursor: Option<String>,
    /// The report (`offerhub reconcile --output json` shape).
    pub report: Value,
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Run> {
    let report: String = r.try_get("report")?;
    Ok(Run {
        id: r.try_get("id")?,
        scope: r.try_get("scope")?,
        started_at: r.try_get("started_at")?,
        finished_at: r.try_get("finished_at")?,
        wallets_checked: r.try_get("wallets_checked")?,
        escrows_checked: r.try_get("escrows_checked")?,
        discrepancies: r.try_get("discrepancies")?,
        payments_cursor: r.try_get("payments_cursor")?,
        report: serde_json::from_str(&report).unwrap_or(Value::Null),
    })
}

const COLUMNS: &str = "id, scope, started_at, finished_at, wallets_checked, escrows_checked, \
     discrepancies, payments_cursor, report";

/// The newest stored run (of `scope` when given).
pub async fn last(store: &Store, scope: Option<&str>) -> Result<Option<Run>> {
    let row = match scope {
        Some(s) => sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM reconciliation_runs WHERE scope = $1 ORDER BY seq DESC LIMIT 1"
        )))
        .bind(s)
        .fetch_optional(store.reader())
        .await?,
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM reconciliation_runs ORDER BY seq DESC LIMIT 1"
            )))
            .fetch_optional(store.reader())
            .await?
        }
    };
    row.as_ref().map(from_row).transpose()
}

/// Every account id a Horizon payment record names (payer, payee, creator, contract
/// transfers' `asset_balance_changes`).
fn accounts_of(record: &Value, out: &mut BTreeSet<String>) {
    for k in ["from", "to", "account", "funder", "source_account", "into"] {
        if let Some(a) = record[k].as_str() {
            out.insert(a.to_string());
        }
    }
    if let Some(changes) = record["asset_balance_changes"].as_array() {
        for c in changes {
            for k in ["from", "to"] {
                if let Some(a) = c[k].as_str() {
                    out.insert(a.to_string());
                }
            }
        }
    }
}

/// A discrepancy's identity and difference, to announce each one once.
fn discrepancies_of(report: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (kind, list, key) in [
        ("wallet", "wallets", "walletId"),
        ("escrow", "escrows", "escrowId"),
    ] {
        if let Some(items) = report[list].as_array() {
            for i in items
                .iter()
                .filter(|i| i["status"] == CheckStatus::Mismatch.as_str())
            {
                out.push((
                    format!("{kind}:{}", i[key].as_str().unwrap_or_default()),
                    i["difference"].to_string(),
                    i.clone(),
                ));
            }
        }
    }
    if report["platform"]["status"] == CheckStatus::Mismatch.as_str() {
        out.push((
            format!(
                "platform:{}",
                report["platform"]["walletId"].as_str().unwrap_or_default()
            ),
            report["platform"]["difference"].to_string(),
            report["platform"].clone(),
        ));
    }
    out
}

/// The subjects a report checked and found `ok` (or in flight): keys as in
/// [`discrepancies_of`].
fn checked_ok(report: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (kind, list, key) in [
        ("wallet", "wallets", "walletId"),
        ("escrow", "escrows", "escrowId"),
    ] {
        if let Some(items) = report[list].as_array() {
            for i in items
                .iter()
                .filter(|i| i["status"] != CheckStatus::Mismatch.as_str())
            {
                out.push(format!("{kind}:{}", i[key].as_str().unwrap_or_default()));
            }
        }
    }
    let p = &report["platform"];
    if p.is_object() && p["status"] != CheckStatus::Mismatch.as_str() {
        out.push(format!(
            "platform:{}",
            p["walletId"].as_str().unwrap_or_default()
        ));
    }
    out
}

/// Checks the escrows of `order_ids` (all when `None`) like [`reconcile::escrows`].
async fn escrows(
    store: &Store,
    ec: &EscrowContext,
    order_ids: Option<&BTreeSet<String>>,
    report: &mut Report,
) -> Result<()> {
    match order_ids {
        None => reconcile::escrows(store, ec, report).await,
        Some(ids) if ids.is_empty() => Ok(()),
        Some(ids) => reconcile::escrows_matching(store, ec, Some(ids), report).await,
    }
}

/// One scheduled run: activity since the previous run, or a full sweep when due (see
/// the module documentation). Stores the run and emits `reconciliation.discrepancy`
/// for each new discrepancy. `treasury`: Airtm mode (the platform wallet holds a float).
pub async fn run(
    store: &Store,
    sc: &StellarContext,
    ec: Option<&EscrowContext>,
    treasury: bool,
    full_every_secs: u64,
) -> Result<Run> {
    let started_at = crate::clock::now();
    let previous = last(store, None).await?;
    let last_full = last(store, Some("FULL")).await?;
    let full_due = last_full
        .as_ref()
        .is_none_or(|r| r.started_at < crate::services::lifecycle::before_now(full_every_secs));
    let since = previous
        .as_ref()
        .map(|r| r.started_at.clone())
        .unwrap_or_default();
    // Chain-side activity: the payments after the stored paging token.
    let mut touched = BTreeSet::new();
    let stored_cursor = previous.as_ref().and_then(|r| r.payments_cursor.clone());
    let (cursor, full) = scan_payments(sc, stored_cursor, full_due, &mut touched).await?;
    let mut report = if full {
        reconcile::wallets(store, sc, 4, &|_, _| {}).await?
    } else {
        active_wallets(store, sc, &since, &touched).await?
    };
    if let Some(ec) = ec {
        if full {
            escrows(store, ec, None, &mut report).await?;
        } else {
            let ids = active_orders(store, &since, &touched).await?;
            escrows(store, ec, Some(&ids), &mut report).await?;
        }
    }
    reconcile::platform(store, sc, treasury, &mut report).await?;
    let run = new_run(&report, full, started_at, cursor)?;
    store_run(store, &run).await?;
    Ok(run)
}

/// Pages through the network's payments after the stored paging token `cursor` (unless
/// `full` already), adding every account they name to `touched`. Returns the cursor to
/// store and whether the run is a full sweep: it is when due, when there is no cursor
/// yet, or when the activity is more than [`MAX_PAGES`] pages — and then it starts from
/// the network's newest payment.
async fn scan_payments(
    sc: &StellarContext,
    mut cursor: Option<String>,
    mut full: bool,
    touched: &mut BTreeSet<String>,
) -> Result<(Option<String>, bool)> {
    match &cursor {
        Some(c) if !full => {
            let mut c = c.clone();
            let mut pages = 0;
            loop {
                let records = sc.horizon.payments_page(&c, 200).await?;
                for r in &records {
                    accounts_of(r, touched);
                }
                if let Some(t) = records.last().and_then(|r| r["paging_token"].as_str()) {
                    c = t.to_string();
                }
                pages += 1;
                if records.len() < 200 {
                    break;
                }
                if pages >= MAX_PAGES {
                    // Too much to page through: check everything, start from the tip.
                    full = true;
                    break;
                }
            }
            cursor = Some(c);
        }
        _ => {}
    }
    if full || cursor.is_none() {
        full = true;
        cursor = sc.horizon.latest_payment_token().await?.or(cursor);
    }
    Ok((cursor, full))
}

/// The wallet checks of an activity run: users with ledger postings since `since` or
/// whose wallet the chain-side activity `touched`, among those with a wallet.
async fn active_wallets(
    store: &Store,
    sc: &StellarContext,
    since: &str,
    touched: &BTreeSet<String>,
) -> Result<Report> {
    // Ledger-side activity: users with postings since the previous run.
    let mut users: BTreeSet<String> = sqlx::query_scalar::<_, String>(
        "SELECT DISTINCT a.owner_id FROM postings p JOIN ledger_accounts a ON a.id = p.account_id \
         WHERE p.created_at >= $1 AND a.owner_id IS NOT NULL AND a.id LIKE 'user:%'",
    )
    .bind(since)
    .fetch_all(store.reader())
    .await?
    .into_iter()
    .collect();
    let wallet_rows = sqlx::query(
        "SELECT user_id, public_key FROM wallets WHERE kind = $1 AND user_id IS NOT NULL",
    )
    .bind(crate::domain::wallet::WalletKind::User)
    .fetch_all(store.reader())
    .await?;
    let mut with_wallet = BTreeSet::new();
    for r in &wallet_rows {
        let pk: String = r.try_get("public_key")?;
        let user: String = r.try_get("user_id")?;
        if touched.contains(&pk) {
            users.insert(user.clone());
        }
        with_wallet.insert(user);
    }
    // Only users with a wallet can differ from the chain.
    users.retain(|u| with_wallet.contains(u));
    let mut report = Report {
        wallets: Vec::new(),
        escrows: Vec::new(),
        platform: None,
        discrepancies: 0,
    };
    for u in users {
        let check = reconcile::user(store, sc, &u).await?;
        if check.status.is_discrepancy() {
            report.discrepancies += 1;
        }
        report.wallets.push(check);
    }
    Ok(report)
}

/// The escrows an activity run checks: orders changed since `since` or with a saga in
/// flight, and the contracts (`C…`) the chain-side activity `touched`.
async fn active_orders(
    store: &Store,
    since: &str,
    touched: &BTreeSet<String>,
) -> Result<BTreeSet<String>> {
    let mut ids: BTreeSet<String> = sqlx::query_scalar::<_, String>(
        "SELECT id FROM orders WHERE updated_at >= $1 OR active_saga IS NOT NULL",
    )
    .bind(since)
    .fetch_all(store.reader())
    .await?
    .into_iter()
    .collect();
    ids.extend(touched.iter().filter(|a| a.starts_with('C')).cloned());
    Ok(ids)
}

/// The run record of `report` (finished now).
fn new_run(
    report: &Report,
    full: bool,
    started_at: String,
    payments_cursor: Option<String>,
) -> Result<Run> {
    let report_json = serde_json::to_value(report)
        .map_err(|e| crate::error::Error::internal(format!("report JSON: {e}")))?;
    Ok(Run {
        id: new_id(IdKind::Reconciliation),
        scope: if full { "FULL" } else { "ACTIVITY" }.to_string(),
        started_at,
        finished_at: crate::clock::now(),
        wallets_checked: i64::try_from(report.wallets.len()).unwrap_or(i64::MAX),
        escrows_checked: i64::try_from(report.escrows.len()).unwrap_or(i64::MAX),
        discrepancies: i64::try_from(report.discrepancies).unwrap_or(i64::MAX),
        payments_cursor,
        report: report_json,
    })
}

/// Stores `run` and brings the open discrepancies up to date, in one transaction:
/// subjects it found in order are forgotten; each new or changed discrepancy is
/// recorded, audited and emitted as `reconciliation.discrepancy`; a standing one only
/// gets its `last_seen`.
async fn store_run(store: &Store, run: &Run) -> Result<()> {
    let mut db = store.begin().await?;
    sqlx::query(
        "INSERT INTO reconciliation_runs (id, scope, started_at, finished_at, wallets_checked, \
         escrows_checked, discrepancies, payments_cursor, report) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&run.id)
    .bind(&run.scope)
    .bind(&run.started_at)
    .bind(&run.finished_at)
    .bind(run.wallets_checked)
    .bind(run.escrows_checked)
    .bind(run.discrepancies)
    .bind(&run.payments_cursor)
    .bind(run.report.to_string())
    .execute(db.conn())
    .await?;
    // Subjects this run checked and found in order: their discrepancy is resolved.
    for subject in checked_ok(&run.report) {
        sqlx::query("DELETE FROM reconciliation_discrepancies WHERE subject = $1")
            .bind(&subject)
            .execute(db.conn())
            .await?;
    }
    let sys = Context::system();
    for (key, difference, item) in discrepancies_of(&run.report) {
        record_discrepancy(&mut db, &sys, run, &key, &difference, &item).await?;
    }
    db.commit().await?;
    Ok(())
}

/// One discrepancy of `run` (subject `key`), in the run's transaction: a standing one
/// (same difference as stored) gets its `last_seen` and run; a new or changed one is
/// stored, audited and emitted.
async fn record_discrepancy(
    db: &mut Tx,
    sys: &Context,
    run: &Run,
    key: &str,
    difference: &str,
    item: &Value,
) -> Result<()> {
    let known: Option<String> = sqlx::query_scalar(
        "SELECT difference FROM reconciliation_discrepancies WHERE subject = $1",
    )
    .bind(key)
    .fetch_optional(db.conn())
    .await?;
    if known.as_deref() == Some(difference) {
        sqlx::query("UPDATE reconciliation_discrepancies SET last_seen = $1, run_id = $2 WHERE subject = $3")
            .bind(&run.finished_at)
            .bind(&run.id)
            .bind(key)
            .execute(db.conn())
            .await?;
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO reconciliation_discrepancies (subject, difference, run_id, first_seen, last_seen) \
         VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (subject) DO UPDATE SET difference = $2, run_id = $3, last_seen = $4",
    )
    .bind(key)
    .bind(difference)
    .bind(&run.id)
    .bind(&run.finished_at)
    .execute(db.conn())
    .await?;
    let (kind, subject) = key.split_once(':').unwrap_or(("wallet", ""));
    let data = json!({
        "runId": run.id,
        "scope": run.scope,
        "kind": kind,
        "subjectId": subject,
        "userId": item.get("userId"),
        "orderId": item.get("orderId"),
        "publicKey": item.get("publicKey"),
        "contractId": item.get("contractId"),
        "onChain": item.get("onChain"),
        "ledger": item.get("ledger").or(item.get("feesPlatform")),
        "difference": item.get("difference"),
        "checkedAt": run.finished_at,
    });
    db.audit(
        sys.audit("reconciliation.discrepancy", "reconciliation", &run.id)
            .after(&data),
    );
    db.emit(NewEvent::new(
        "reconciliation.discrepancy",
        "reconciliation",
        &run.id,
        data,
    ));
    Ok(())
}

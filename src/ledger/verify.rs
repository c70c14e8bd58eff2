//! Proof of the ledger ([`verify`]): set-based queries over the journal, the balance
//! projection (shards included) and the holds — one pass per invariant, streaming the
//! violations into a [`LedgerReport`].

use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::{AnyPool, Row};

use super::HoldStatus;
use crate::error::Result;
use crate::money::Amount;
use crate::store::Store;

/// A violated ledger invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    pub check: &'static str,
    pub subject: String,
    pub detail: String,
}

/// Result of [`verify`]: counts checked and every violation found.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerReport {
    pub accounts: i64,
    pub transactions: i64,
    pub postings: i64,
    pub violations: Vec<Violation>,
}

impl LedgerReport {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Each account's projected balance: sharded system accounts are the account row plus
/// their shards.
const PROJECTED: &str = "(SELECT a.id, a.kind, a.owner_id, a.non_negative, \
       CAST(a.balance + COALESCE(s.total, 0) AS BIGINT) AS balance \
     FROM ledger_accounts a LEFT JOIN \
       (SELECT account_id, SUM(balance) AS total FROM ledger_account_shards \
        GROUP BY account_id) s ON s.account_id = a.id)";

/// Proves the ledger: every journal transaction balances; every account's projected
/// balance equals the sum of its postings; no non-negative account is negative; every
/// user's reserved balance equals the sum of their pending holds; all balances sum to
/// zero. Set-based queries (one pass per check), streaming the violations.
pub async fn verify(store: &Store) -> Result<LedgerReport> {
    let db = store.reader();
    let mut report = LedgerReport::default();
    count(db, &mut report).await?;
    unbalanced_transactions(db, &mut report.violations).await?;
    projection_mismatches(db, &mut report.violations).await?;
    negative_balances(db, &mut report.violations).await?;
    reserved_mismatches(db, &mut report.violations).await?;
    nonzero_total(db, &mut report.violations).await?;
    Ok(report)
}

/// The numbers of accounts, journal transactions and postings checked.
async fn count(db: &AnyPool, report: &mut LedgerReport) -> Result<()> {
    let counts = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM ledger_accounts) AS a, \
                (SELECT COUNT(*) FROM journal_transactions) AS t, \
                (SELECT COUNT(*) FROM postings) AS p",
    )
    .fetch_one(db)
    .await?;
    report.accounts = counts.try_get("a")?;
    report.transactions = counts.try_get("t")?;
    report.postings = counts.try_get("p")?;
    Ok(())
}

/// `balanced_transaction`: every journal transaction's postings sum to zero, with at
/// least two legs.
async fn unbalanced_transactions(db: &AnyPool, violations: &mut Vec<Violation>) -> Result<()> {
    let mut rows = sqlx::query(
        "SELECT transaction_id, CAST(SUM(amount) AS BIGINT) AS total, CAST(COUNT(*) AS BIGINT) AS legs \
         FROM postings GROUP BY transaction_id HAVING SUM(amount) <> 0 OR COUNT(*) < 2",
    )
    .fetch(db);
    while let Some(r) = rows.try_next().await? {
        let total: i64 = r.try_get("total")?;
        let legs: i64 = r.try_get("legs")?;
        violations.push(Violation {
            check: "balanced_transaction",
            subject: r.try_get("transaction_id")?,
            detail: format!(
                "{legs} postings summing to {}",
                Amount::from_base_units(total)
            ),
        });
    }
    Ok(())
}

/// `projection_matches_journal`: every account's projected balance equals the sum of
/// its postings.
async fn projection_mismatches(db: &AnyPool, violations: &mut Vec<Violation>) -> Result<()> {
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT a.id, a.balance, CAST(COALESCE(j.total, 0) AS BIGINT) AS journal \
         FROM {PROJECTED} a LEFT JOIN \
           (SELECT account_id, SUM(amount) AS total FROM postings GROUP BY account_id) j \
           ON j.account_id = a.id \
         WHERE a.balance <> COALESCE(j.total, 0)"
    )))
    .fetch(db);
    while let Some(r) = rows.try_next().await? {
        let b: i64 = r.try_get("balance")?;
        let j: i64 = r.try_get("journal")?;
        violations.push(Violation {
            check: "projection_matches_journal",
            subject: r.try_get("id")?,
            detail: format!(
                "balance {} but postings sum to {}",
                Amount::from_base_units(b),
                Amount::from_base_units(j)
            ),
        });
    }
    Ok(())
}

/// `non_negative`: no non-negative account's projected balance is below zero.
async fn negative_balances(db: &AnyPool, violations: &mut Vec<Violation>) -> Result<()> {
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, balance FROM {PROJECTED} a WHERE non_negative = 1 AND balance < 0"
    )))
    .fetch(db);
    while let Some(r) = rows.try_next().await? {
        let b: i64 = r.try_get("balance")?;
        violations.push(Violation {
            check: "non_negative",
            subject: r.try_get("id")?,
            detail: format!("balance {}", Amount::from_base_units(b)),
        });
    }
    Ok(())
}

/// `reserved_equals_pending_holds`: every user's reserved balance equals the sum of
/// their pending holds.
async fn reserved_mismatches(db: &AnyPool, violations: &mut Vec<Violation>) -> Result<()> {
    let mut rows = sqlx::query(
        "SELECT a.id, a.balance, CAST(COALESCE(h.total, 0) AS BIGINT) AS held \
         FROM ledger_accounts a LEFT JOIN \
           (SELECT user_id, SUM(amount) AS total FROM holds WHERE status = $1 GROUP BY user_id) h \
           ON h.user_id = a.owner_id \
         WHERE a.kind = 'user_reserved' AND a.balance <> COALESCE(h.total, 0)",
    )
    .bind(HoldStatus::Pending)
    .fetch(db);
    while let Some(r) = rows.try_next().await? {
        let b: i64 = r.try_get("balance")?;
        let h: i64 = r.try_get("held")?;
        violations.push(Violation {
            check: "reserved_equals_pending_holds",
            subject: r.try_get("id")?,
            detail: format!(
                "reserved {} but pending holds total {}",
                Amount::from_base_units(b),
                Amount::from_base_units(h)
            ),
        });
    }
    Ok(())
}

/// `balances_sum_to_zero`: all balances, shards included, sum to zero.
async fn nonzero_total(db: &AnyPool, violations: &mut Vec<Violation>) -> Result<()> {
    let total: i64 = sqlx::query(
        "SELECT CAST(COALESCE((SELECT SUM(balance) FROM ledger_accounts), 0) \
                   + COALESCE((SELECT SUM(balance) FROM ledger_account_shards), 0) AS BIGINT) AS total",
    )
    .fetch_one(db)
    .await?
    .try_get("total")?;
    if total != 0 {
        violations.push(Violation {
            check: "balances_sum_to_zero",
            subject: "ledger".into(),
            detail: format!("all balances sum to {}", Amount::from_base_units(total)),
        });
    }
    Ok(())
}

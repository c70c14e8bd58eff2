//! [`record`](super::record) on PostgreSQL in one statement: the journal row, every
//! balance update and every posting travel in one round trip (a data-modifying `WITH`),
//! where the general path takes one per leg plus two. An adjustment is then five round
//! trips (BEGIN, this, the balance read, audit and events, COMMIT).
//!
//! The statement keeps the general path's rules:
//! - nothing is applied when `(kind, reference)` is already in the journal (every
//!   update joins the inserted journal row);
//! - ordinary accounts are locked in byte order of their ids (`ORDER BY id COLLATE "C"
//!   FOR UPDATE`) before any is updated, and shard rows after them, so concurrent
//!   statements take their locks in one order;
//! - a leg is applied only by a conditional update (never below zero when
//!   non-negative, never beyond ±[`Amount::MAX`]); when one is not, no posting is
//!   written and [`record`] returns the same error the general path gives for the first
//!   such leg in account order. The legs that were applied stay applied: as for every
//!   ledger error, the caller drops its transaction.

use std::collections::HashSet;

use sqlx::Row;

use super::{Recorded, SHARDS, diagnose, out_of_range};
use crate::error::{Error, Result};
use crate::money::Amount;
use crate::store::Tx;

/// One leg as the statement takes it: `(account, delta in base units, sharded)`.
pub(super) type Leg<'a> = (&'a str, i64, bool);

/// Applies `legs` (sorted by account, distinct accounts, every delta within
/// ±[`Amount::MAX`], no debit of a non-negative sharded account) as journal
/// transaction `id`. Errors as [`super::record`].
pub(super) async fn record(
    tx: &mut Tx,
    id: &str,
    (kind, reference, description): (&str, &str, &str),
    now: &str,
    legs: &[Leg<'_>],
) -> Result<Recorded> {
    let sql = statement(legs.len());
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(kind.to_string())
        .bind(reference.to_string())
        .bind(description.to_string())
        .bind(now.to_string())
        .bind(Amount::MAX.base_units())
        .bind(i64::try_from(legs.len()).unwrap_or(i64::MAX));
    for (account, delta, sharded) in legs {
        q = q
            .bind(account.to_string())
            .bind(*delta)
            .bind(i64::from(*sharded));
    }
    let row = q.fetch_one(tx.conn()).await?;
    let inserted: i64 = row.try_get("inserted")?;
    if inserted == 0 {
        let existing: String =
            sqlx::query("SELECT id FROM journal_transactions WHERE kind = $1 AND reference = $2")
                .bind(kind)
                .bind(reference)
                .fetch_one(tx.conn())
                .await?
                .try_get("id")?;
        return Ok(Recorded::AlreadyApplied(existing));
    }
    let posted: i64 = row.try_get("posted")?;
    if usize::try_from(posted).ok() == Some(legs.len()) {
        return Ok(Recorded::Applied(id.to_string()));
    }
    let applied_list: Option<String> = row.try_get("applied")?;
    let applied: HashSet<&str> = applied_list.as_deref().unwrap_or("").split('\n').collect();
    for (account, delta, sharded) in legs {
        if applied.contains(account) {
            continue;
        }
        return Err(if *sharded {
            unapplied_shard(tx, account).await?
        } else {
            diagnose(tx, account, *delta).await?
        });
    }
    Err(Error::internal(format!(
        "journal transaction {kind}/{reference}: {posted} of {} legs posted",
        legs.len()
    )))
}

/// Why a shard update did not apply: out of range, or the account has no shard rows.
async fn unapplied_shard(tx: &mut Tx, account: &str) -> Result<Error> {
    let rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM ledger_account_shards WHERE account_id = $1")
            .bind(account)
            .fetch_one(tx.conn())
            .await?;
    Ok(if rows == 0 {
        Error::internal(format!("ledger account {account} has no shard rows"))
    } else {
        out_of_range(account)
    })
}

/// The statement for `n` legs. Parameters: `$1` id, `$2` kind, `$3` reference, `$4`
/// description, `$5` created_at, `$6` [`Amount::MAX`], `$7` the number of legs, then
/// `(account, delta, sharded 0/1)` per leg from `$8`.
fn statement(n: usize) -> String {
    let mut legs = String::new();
    for i in 0..n {
        let p = 8 + 3 * i;
        if i > 0 {
            legs.push_str(", ");
        }
        legs.push_str(&format!(
            "(CAST(${p} AS TEXT), CAST(${} AS BIGINT), CAST(${} AS BIGINT) = 1)",
            p + 1,
            p + 2
        ));
    }
    format!(
        "WITH legs (account, delta, sharded) AS (VALUES {legs}), \
         j AS (INSERT INTO journal_transactions (id, kind, reference, description, created_at) \
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, reference) DO NOTHING \
               RETURNING id), \
         locked AS (SELECT a.id FROM ledger_accounts a \
                    WHERE a.id IN (SELECT account FROM legs WHERE NOT sharded) \
                      AND EXISTS (SELECT 1 FROM j) \
                    ORDER BY a.id COLLATE \"C\" FOR UPDATE OF a), \
         u AS (UPDATE ledger_accounts a SET balance = a.balance + l.delta \
               FROM legs l, j, (SELECT COUNT(*) AS n FROM locked) k \
               WHERE a.id = l.account AND NOT l.sharded \
                 AND (a.non_negative = 0 OR a.balance + l.delta >= 0) \
                 AND a.balance + l.delta <= $6 AND a.balance + l.delta >= -$6 \
               RETURNING a.id, a.balance), \
         s AS (UPDATE ledger_account_shards sh SET balance = sh.balance + l.delta \
               FROM legs l, j, (SELECT COUNT(*) AS n FROM u) k \
               WHERE sh.account_id = l.account AND l.sharded \
                 AND sh.shard = pg_backend_pid() % {SHARDS} \
                 AND sh.balance + l.delta <= $6 AND sh.balance + l.delta >= -$6 \
               RETURNING sh.account_id), \
         p AS (INSERT INTO postings (transaction_id, account_id, amount, balance_after, created_at) \
               SELECT j.id, l.account, l.delta, u.balance, $5 \
               FROM j CROSS JOIN legs l LEFT JOIN u ON u.id = l.account \
               WHERE (SELECT COUNT(*) FROM u) + (SELECT COUNT(*) FROM s) = $7 \
               ORDER BY l.account COLLATE \"C\" \
               RETURNING 1) \
         SELECT (SELECT COUNT(*) FROM j) AS inserted, (SELECT COUNT(*) FROM p) AS posted, \
                (SELECT string_agg(x.id, chr(10)) FROM \
                   (SELECT id FROM u UNION ALL SELECT account_id FROM s) x) AS applied"
    )
}

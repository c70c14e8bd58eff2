//! [`record`](super::record) in one round trip: the journal row, every balance update
//! and every posting are sent together, where the general path sends one statement per
//! leg plus two. On PostgreSQL this is one statement (a data-modifying `WITH`); on
//! SQLite, which has none, a batch of statements executed by the one writer in one
//! call (sqlx numbers `$N` across the batch). The balances a caller asks for
//! (`reads`) come back in the same round trip, so an adjustment on PostgreSQL is four
//! round trips: BEGIN, this, audit and events, COMMIT.
//!
//! The rules of the general path hold:
//! - nothing is applied when `(kind, reference)` is already in the journal (the first
//!   update runs only on the journal row this call inserted, each later one only on
//!   the update before it);
//! - PostgreSQL: each leg is an `UPDATE` of its own, run only once the one before it
//!   applied: ordinary accounts first, then the session's shard rows, each kind in
//!   byte order of the account ids. So concurrent statements (and the general path,
//!   which posts ordinary accounts first too) take their row locks in one order
//!   (SQLite has one writer);
//! - PostgreSQL: a posting to a sharded account names the shard row it was booked on
//!   (`postings.shard`), which its foreign key references (migration 0013; the
//!   general path too, except a fold of a `fees:*` debit, which references the
//!   account row it locked);
//! - a leg is applied only by a conditional update (never below zero when
//!   non-negative, never beyond ±[`Amount::MAX`]); when one is not, [`record`] returns
//!   the same error the general path gives for the first such leg (ordinary accounts
//!   in account order, then sharded ones).
//!   Whatever was applied stays applied: as for every ledger error, the caller drops
//!   its transaction.

use std::collections::HashSet;

use sqlx::Row;

use super::{Recorded, SESSION_SHARD, already_applied, diagnose, diagnose_shard};
use crate::error::Result;
use crate::money::Amount;
use crate::store::{Backend, Tx};

/// One leg as [`record`] takes it: `(account, delta in base units, sharded)`.
pub(super) type Leg<'a> = (&'a str, i64, bool);

/// Applies `legs` (sorted by account, distinct accounts, every delta within
/// ±[`Amount::MAX`], no debit of a non-negative sharded account) as journal
/// transaction `id`, and reads the balances of the ordinary accounts `reads` (base
/// units) once applied, in the same round trip: `(account, balance)` per existing
/// account. Errors as [`super::record`].
pub(super) async fn record(
    tx: &mut Tx,
    id: &str,
    (kind, reference, description): (&str, &str, &str),
    now: &str,
    legs: &[Leg<'_>],
    reads: &[String],
) -> Result<(Recorded, Vec<(String, i64)>)> {
    let sql = match tx.backend() {
        Backend::Postgres => postgres_statement(legs, reads),
        Backend::Sqlite => sqlite_batch(legs.len(), reads.len()),
    };
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(kind.to_string())
        .bind(reference.to_string())
        .bind(description.to_string())
        .bind(now.to_string())
        .bind(Amount::MAX.base_units());
    for (account, delta, _) in legs {
        q = q.bind(account.to_string()).bind(*delta);
    }
    for account in reads {
        q = q.bind(account.clone());
    }
    // Rows `(what, account)`: `journal` when the journal row was inserted, `leg` per
    // applied leg, `read` (with `balance`) per account read.
    let rows = q.fetch_all(tx.conn()).await?;
    let mut inserted = false;
    let mut applied: HashSet<String> = HashSet::with_capacity(legs.len());
    let mut read = Vec::with_capacity(reads.len());
    for row in &rows {
        let what: String = row.try_get("what")?;
        match what.as_str() {
            "journal" => inserted = true,
            "read" => read.push((row.try_get("account")?, row.try_get("balance")?)),
            _ => {
                applied.insert(row.try_get("account")?);
            }
        }
    }
    if !inserted {
        return Ok((already_applied(tx, kind, reference).await?, read));
    }
    // The general path's order: ordinary accounts, then sharded ones.
    let ordinary_first = legs
        .iter()
        .filter(|l| !l.2)
        .chain(legs.iter().filter(|l| l.2));
    for (account, delta, sharded) in ordinary_first {
        if applied.contains(*account) {
            continue;
        }
        return Err(if *sharded {
            diagnose_shard(tx, account).await?
        } else {
            diagnose(tx, account, *delta, reads.iter().any(|r| r == account)).await?
        });
    }
    Ok((Recorded::Applied(id.to_string()), read))
}

/// Parameters of both forms: `$1` id, `$2` kind, `$3` reference, `$4` description,
/// `$5` created_at, `$6` [`Amount::MAX`], then `(account, delta)` per leg from `$7`
/// (whether a leg is sharded shapes the PostgreSQL statement; it is not a parameter),
/// then one account per read. The first parameter of leg `i`:
fn leg_param(i: usize) -> usize {
    7 + 2 * i
}

/// `$a, $b, …`: the parameters of `reads` accounts after `legs` legs.
fn read_params(legs: usize, reads: usize) -> Vec<String> {
    (0..reads)
        .map(|i| format!("${}", leg_param(legs) + i))
        .collect()
}

/// The PostgreSQL statement for `legs` (their order and `sharded` flags; accounts and
/// deltas are bound) and the `reads` accounts read. One `UPDATE` per leg, each a CTE of its
/// own with its account and delta as parameters (no join against a list of legs: the
/// plan is a chain of one-row updates, which PostgreSQL sets up and runs in about
/// three quarters of the time of the joined form, docs/PERFORMANCE.md): ordinary
/// accounts first, then shard rows, each kind in account order, each update running
/// only once the one before it applied (`EXISTS` on the previous CTE). So the row
/// locks are taken in that order (no deadlock between concurrent statements, nor with
/// the general path, which posts ordinary accounts first too), and the first leg that
/// does not apply stops the chain: the caller reports it. Postings are written, in account order,
/// only when the last update applied. A read account updated by the statement is
/// read from its update (the statement's snapshot predates it), any other (or one
/// whose update did not apply) from the table.
fn postgres_statement(legs: &[Leg<'_>], reads: &[String]) -> String {
    // The chain: ordinary legs, then sharded ones (each already in account order).
    let chain: Vec<usize> = (0..legs.len())
        .filter(|&i| !legs[i].2)
        .chain((0..legs.len()).filter(|&i| legs[i].2))
        .collect();
    let cte = |i: usize| format!("u{i}");
    let mut sql = String::from(
        "WITH j AS (INSERT INTO journal_transactions (id, kind, reference, description, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, reference) DO NOTHING \
         RETURNING id)",
    );
    let mut previous = String::from("j");
    for &i in &chain {
        let (a, d) = (leg_param(i), leg_param(i) + 1);
        let delta = format!("CAST(${d} AS BIGINT)");
        if legs[i].2 {
            sql.push_str(&format!(
                ", {name} AS (UPDATE ledger_account_shards sh SET balance = sh.balance + {delta} \
                 WHERE sh.account_id = CAST(${a} AS TEXT) AND sh.shard = {SESSION_SHARD} \
                   AND EXISTS (SELECT 1 FROM {previous}) \
                   AND sh.balance + {delta} <= $6 AND sh.balance + {delta} >= -$6 \
                 RETURNING sh.account_id AS id, CAST(NULL AS BIGINT) AS balance, sh.shard)",
                name = cte(i)
            ));
        } else {
            sql.push_str(&format!(
                ", {name} AS (UPDATE ledger_accounts a SET balance = a.balance + {delta} \
                 WHERE a.id = CAST(${a} AS TEXT) AND EXISTS (SELECT 1 FROM {previous}) \
                   AND (a.non_negative = 0 OR a.balance + {delta} >= 0) \
                   AND a.balance + {delta} <= $6 AND a.balance + {delta} >= -$6 \
                 RETURNING a.id, a.balance, CAST(NULL AS INTEGER) AS shard)",
                name = cte(i)
            ));
        }
        previous = cte(i);
    }
    // Postings in account order (the legs' order), only once the last update applied.
    let postings = (0..legs.len())
        .map(|i| {
            let from = if cte(i) == previous {
                format!("j, {previous}")
            } else {
                format!("j, {previous}, {}", cte(i))
            };
            format!(
                "SELECT j.id, {u}.id, CAST(${d} AS BIGINT), {u}.balance, $5, {u}.shard FROM {from}",
                u = cte(i),
                d = leg_param(i) + 1
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    sql.push_str(&format!(
        ", p AS (INSERT INTO postings (transaction_id, account_id, amount, balance_after, created_at, shard) \
         {postings}) \
         SELECT 'journal' AS what, id AS account, CAST(NULL AS BIGINT) AS balance FROM j"
    ));
    for i in 0..legs.len() {
        sql.push_str(&format!(
            " UNION ALL SELECT 'leg', id, NULL FROM {}",
            cte(i)
        ));
    }
    let params = read_params(legs.len(), reads.len());
    for (account, param) in reads.iter().zip(&params) {
        match legs.iter().position(|l| !l.2 && l.0 == account) {
            // From the update when it applied, else (the journal row was there
            // already, or a leg did not apply) from the table.
            Some(i) => sql.push_str(&format!(
                " UNION ALL SELECT 'read', id, balance FROM {u} \
                 UNION ALL SELECT 'read', a.id, a.balance FROM ledger_accounts a \
                 WHERE a.id = CAST({param} AS TEXT) AND NOT EXISTS (SELECT 1 FROM {u})",
                u = cte(i)
            )),
            None => sql.push_str(&format!(
                " UNION ALL SELECT 'read', a.id, a.balance FROM ledger_accounts a \
                 WHERE a.id = CAST({param} AS TEXT)"
            )),
        }
    }
    sql
}

/// The SQLite batch for `n` legs: the journal row, one conditional update per leg (each
/// only when the journal row is this call's), the postings with the balances after,
/// then the `reads` accounts. Postings of existing accounts are written even when a leg
/// did not apply: the caller drops the transaction on the error.
fn sqlite_batch(n: usize, reads: usize) -> String {
    let ours = "EXISTS (SELECT 1 FROM journal_transactions WHERE id = $1)";
    let mut sql = String::from(
        "INSERT INTO journal_transactions (id, kind, reference, description, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, reference) DO NOTHING \
         RETURNING 'journal' AS what, id AS account;",
    );
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let (a, d) = (leg_param(i), leg_param(i) + 1);
        sql.push_str(&format!(
            " UPDATE ledger_accounts SET balance = balance + ${d} \
              WHERE id = ${a} AND (non_negative = 0 OR balance + ${d} >= 0) \
                AND balance + ${d} <= $6 AND balance + ${d} >= -$6 AND {ours} \
              RETURNING 'leg' AS what, id AS account;"
        ));
        values.push(format!("(${a}, ${d})"));
    }
    sql.push_str(&format!(
        " INSERT INTO postings (transaction_id, account_id, amount, balance_after, created_at) \
          SELECT $1, v.column1, v.column2, a.balance, $5 \
          FROM (VALUES {}) AS v JOIN ledger_accounts a ON a.id = v.column1 \
          WHERE {ours} ORDER BY v.column1",
        values.join(", ")
    ));
    if reads > 0 {
        sql.push_str(&format!(
            "; SELECT 'read' AS what, id AS account, balance FROM ledger_accounts \
             WHERE id IN ({})",
            read_params(n, reads).join(", ")
        ));
    }
    sql
}

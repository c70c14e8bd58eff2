//! [`record`](super::record) in one round trip: the journal row, every balance update
//! and every posting are sent together, where the general path sends one statement per
//! leg plus two. On PostgreSQL this is one statement (a data-modifying `WITH`); on
//! SQLite, which has none, a batch of statements executed by the one writer in one
//! call (sqlx numbers `$N` across the batch). An adjustment on PostgreSQL is then five
//! round trips: BEGIN, this, the balance read, audit and events, COMMIT (SQLite adds
//! the audit head read).
//!
//! The rules of the general path hold:
//! - nothing is applied when `(kind, reference)` is already in the journal (every
//!   update is conditioned on the journal row this call inserted);
//! - PostgreSQL: ordinary accounts are locked in byte order of their ids (`ORDER BY id
//!   COLLATE "C" FOR UPDATE`) before any is updated, then the session's shard rows the
//!   same way, so concurrent statements (and the general path, which posts ordinary
//!   accounts first too) take their locks in one order (SQLite has one writer). Where
//!   there is one row of a kind (an adjustment: one user account, one shard row), its
//!   `UPDATE` is the lock; ordinary rows are still updated before shard rows;
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
        Backend::Postgres => {
            let sharded = legs.iter().filter(|l| l.2).count();
            postgres_statement(legs.len() - sharded, sharded, reads.len())
        }
        Backend::Sqlite => sqlite_batch(legs.len(), reads.len()),
    };
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(kind.to_string())
        .bind(reference.to_string())
        .bind(description.to_string())
        .bind(now.to_string())
        .bind(Amount::MAX.base_units());
    for (account, delta, sharded) in legs {
        q = q
            .bind(account.to_string())
            .bind(*delta)
            .bind(i64::from(*sharded));
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
/// `$5` created_at, `$6` [`Amount::MAX`], then `(account, delta, sharded 0/1)` per leg
/// from `$7`, then one account per read. The first parameter of leg `i`:
fn leg_param(i: usize) -> usize {
    7 + 3 * i
}

/// `$a, $b, …`: the parameters of `reads` accounts after `legs` legs.
fn read_params(legs: usize, reads: usize) -> Vec<String> {
    (0..reads)
        .map(|i| format!("${}", leg_param(legs) + i))
        .collect()
}

/// The PostgreSQL statement for `ordinary` + `sharded` legs (the `sharded` flags
/// bound with the legs must count as many) and `reads` accounts read. Postings are
/// written only when every leg applied. A read account updated by the statement is
/// read from the update (the statement's snapshot predates it), any other from the
/// table.
///
/// The explicit locks in account order are taken only where they order something:
/// with one ordinary leg its `UPDATE` locks the one row, and with one sharded leg the
/// same (each lock taken explicitly costs a row-lock WAL record and plan nodes that
/// PostgreSQL sets up on every execution). Ordinary accounts are still updated before
/// any shard row.
fn postgres_statement(ordinary: usize, sharded: usize, reads: usize) -> String {
    let n = ordinary + sharded;
    let legs = (0..n)
        .map(|i| {
            let p = leg_param(i);
            format!(
                "(CAST(${p} AS TEXT), CAST(${} AS BIGINT), CAST(${} AS BIGINT) = 1)",
                p + 1,
                p + 2
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let (read_cte, read_rows) = if reads == 0 {
        (String::new(), "")
    } else {
        let values = read_params(n, reads)
            .iter()
            .map(|p| format!("(CAST({p} AS TEXT))"))
            .collect::<Vec<_>>()
            .join(", ");
        (
            format!("reads (account) AS (VALUES {values}), "),
            " UNION ALL SELECT 'read', u.id, u.balance FROM u \
               WHERE u.id IN (SELECT account FROM reads) \
             UNION ALL SELECT 'read', a.id, a.balance FROM ledger_accounts a \
               WHERE a.id IN (SELECT account FROM reads) AND a.id NOT IN (SELECT id FROM u)",
        )
    };
    // `locked` / `locked_shards`: the rows locked in byte order of their ids before
    // any is updated (only with two or more); `after_locks` / `after_u`: the joins
    // that make the updates wait for them (and the shard updates for `u`).
    let (locked, after_locks) = if ordinary > 1 {
        (
            "locked AS (SELECT a.id FROM ledger_accounts a \
                        WHERE a.id IN (SELECT account FROM legs WHERE NOT sharded) \
                          AND EXISTS (SELECT 1 FROM j) \
                        ORDER BY a.id COLLATE \"C\" FOR UPDATE OF a), ",
            ", (SELECT COUNT(*) AS n FROM locked) k",
        )
    } else {
        ("", "")
    };
    let (locked_shards, after_u) = if sharded > 1 {
        (
            format!(
                "locked_shards AS (SELECT sh.account_id FROM ledger_account_shards sh \
                    WHERE sh.account_id IN (SELECT account FROM legs WHERE sharded) \
                      AND sh.shard = {SESSION_SHARD} \
                      AND EXISTS (SELECT 1 FROM j) AND (SELECT COUNT(*) FROM u) >= 0 \
                    ORDER BY sh.account_id COLLATE \"C\" FOR UPDATE OF sh), "
            ),
            "(SELECT COUNT(*) AS n FROM locked_shards) k",
        )
    } else {
        (String::new(), "(SELECT COUNT(*) AS n FROM u) k")
    };
    format!(
        "WITH legs (account, delta, sharded) AS (VALUES {legs}), {read_cte}\
         j AS (INSERT INTO journal_transactions (id, kind, reference, description, created_at) \
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, reference) DO NOTHING \
               RETURNING id), \
         {locked}\
         u AS (UPDATE ledger_accounts a SET balance = a.balance + l.delta \
               FROM legs l, j{after_locks} \
               WHERE a.id = l.account AND NOT l.sharded \
                 AND (a.non_negative = 0 OR a.balance + l.delta >= 0) \
                 AND a.balance + l.delta <= $6 AND a.balance + l.delta >= -$6 \
               RETURNING a.id, a.balance), \
         {locked_shards}\
         s AS (UPDATE ledger_account_shards sh SET balance = sh.balance + l.delta \
               FROM legs l, j, {after_u} \
               WHERE sh.account_id = l.account AND l.sharded \
                 AND sh.shard = {SESSION_SHARD} \
                 AND sh.balance + l.delta <= $6 AND sh.balance + l.delta >= -$6 \
               RETURNING sh.account_id), \
         p AS (INSERT INTO postings (transaction_id, account_id, amount, balance_after, created_at, shard) \
               SELECT j.id, l.account, l.delta, u.balance, $5, \
                      CASE WHEN l.sharded THEN {SESSION_SHARD} END \
               FROM j CROSS JOIN legs l LEFT JOIN u ON u.id = l.account \
               WHERE (SELECT COUNT(*) FROM u) + (SELECT COUNT(*) FROM s) = {n} \
               ORDER BY l.account COLLATE \"C\") \
         SELECT 'journal' AS what, id AS account, CAST(NULL AS BIGINT) AS balance FROM j \
         UNION ALL SELECT 'leg', id, NULL FROM u \
         UNION ALL SELECT 'leg', account_id, NULL FROM s{read_rows}"
    )
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

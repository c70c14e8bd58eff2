//! The double-entry ledger: the only way OfferHub moves money (docs/ARCHITECTURE.md,
//! Money: the double-entry ledger).
//!
//! - **Accounts** (`ledger_accounts`) hold a balance in USDC base units. User accounts
//!   (`user:{id}:available`, `user:{id}:reserved`), escrow (`escrow:{order}`) and fee
//!   accounts (`fees:platform`, `fees:trustless`) may never go negative; the `external:*`
//!   accounts (money entering or leaving the system) may.
//! - **Journal transactions** are immutable; their postings sum to zero. Each is unique
//!   on `(kind, reference)`, so an effect retried after a crash or a duplicate webhook
//!   applies once: [`record`] returns [`Recorded::AlreadyApplied`] the second time.
//! - The **balance projection** (`ledger_accounts.balance`) is updated in the same
//!   database transaction by a conditional `UPDATE … WHERE balance + delta >= 0`, so two
//!   concurrent debits can never overdraw.
//! - **Holds** move `available → reserved` and are resolved exactly once: posted
//!   (reserved → destination) or voided (reserved → available), by compare-and-set on
//!   their status.
//!
//! All functions that write take a [`Tx`]; callers add their state change, audit row and
//! event in the same transaction. [`verify`] (in `ledger/verify.rs`) proves these
//! invariants from the stored rows.

use serde::Serialize;
use sqlx::Row;

use crate::error::{Error, ErrorCode, Result};
use crate::ids::{IdKind, new_id};
use crate::money::Amount;
use crate::pagination::{Page, PageRequest};
use crate::store::{Store, Tx};

mod statement;
mod verify;
pub use verify::{LedgerReport, Violation, verify};

/// Where unexplained money enters or leaves: operator adjustments.
pub const ADJUSTMENTS_ACCOUNT: &str = "external:adjustments";
pub const EXTERNAL_STELLAR: &str = "external:stellar";
pub const EXTERNAL_AIRTM: &str = "external:airtm";
pub const FEES_PLATFORM: &str = "fees:platform";
pub const FEES_TRUSTLESS: &str = "fees:trustless";

/// System accounts posted to by many concurrent transactions. On PostgreSQL their
/// balance is `ledger_accounts.balance` plus [`SHARDS`] rows of
/// `ledger_account_shards`; a posting updates the shard of its database session
/// ([`SESSION_SHARD`]), so concurrent releases, deposits and adjustments on
/// different connections do not queue behind one row. Read them
/// with [`account_balance`]. On SQLite (one writer) they are ordinary accounts.
pub const SHARDED_ACCOUNTS: &[&str] = &[
    ADJUSTMENTS_ACCOUNT,
    EXTERNAL_STELLAR,
    EXTERNAL_AIRTM,
    FEES_PLATFORM,
    FEES_TRUSTLESS,
];

/// Shard rows per sharded account (created by migrations 0009 and 0011).
pub const SHARDS: i64 = 64;

/// SQL: the shard row of this database session, `0..SHARDS`. Each connection of a
/// store's main PostgreSQL pool (the one transactions run on) claims a shard no other
/// session holds when it connects ([`crate::store`]: a session advisory lock per
/// shard), so up to [`SHARDS`] such connections over every daemon and CLI never meet
/// on a shard row; a connection that found none free (or any other session) uses
/// `pg_backend_pid() % SHARDS`, which several sessions may share (they then take
/// turns on the row, as before).
pub(crate) const SESSION_SHARD: &str = "COALESCE(CAST(NULLIF(current_setting('offerhub.shard', true), '') AS INTEGER), pg_backend_pid() % 64)";

fn is_sharded(tx: &Tx, account: &str) -> bool {
    tx.backend() == crate::store::Backend::Postgres && SHARDED_ACCOUNTS.contains(&account)
}

/// `user:{id}:available`.
pub fn available_account(user_id: &str) -> String {
    format!("user:{user_id}:available")
}

/// `user:{id}:reserved`.
pub fn reserved_account(user_id: &str) -> String {
    format!("user:{user_id}:reserved")
}

/// `escrow:{order_id}`.
pub fn escrow_account(order_id: &str) -> String {
    format!("escrow:{order_id}")
}

/// One leg of a journal transaction: `amount` base units added to `account` (negative
/// to take away).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posting {
    pub account: String,
    pub amount: Amount,
}

impl Posting {
    pub fn new(account: impl Into<String>, amount: Amount) -> Self {
        Posting {
            account: account.into(),
            amount,
        }
    }
}

/// Outcome of [`record`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Newly applied, with its journal transaction id.
    Applied(String),
    /// `(kind, reference)` was already in the journal: nothing changed.
    AlreadyApplied(String),
}

impl Recorded {
    pub fn journal_id(&self) -> &str {
        match self {
            Recorded::Applied(id) | Recorded::AlreadyApplied(id) => id,
        }
    }
}

/// 422 `AMOUNT_OUT_OF_RANGE`: the posting would take `account` beyond ±[`Amount::MAX`].
fn out_of_range(account: &str) -> Error {
    Error::out_of_range(
        "amount",
        "would take a balance beyond the largest amount OfferHub holds (100000000000 USDC)",
    )
    .with_details(serde_json::json!({ "field": "amount", "account": account }))
}

/// 422 `INSUFFICIENT_FUNDS` naming the account and the amount asked for.
fn insufficient(account: &str, requested: Amount) -> Error {
    Error::new(
        ErrorCode::InsufficientFunds,
        "Available balance is less than the requested amount",
    )
    .with_details(serde_json::json!({
        "account": account,
        "requested": Amount::from_base_units(requested.base_units().saturating_abs()),
    }))
}

/// Opens an account when missing. `non_negative` accounts reject any posting that
/// would take them below zero.
pub async fn open_account(
    tx: &mut Tx,
    id: &str,
    kind: &str,
    owner_id: Option<&str>,
    non_negative: bool,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO ledger_accounts (id, kind, owner_id, non_negative, balance, created_at) \
         VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(kind)
    .bind(owner_id)
    .bind(i64::from(non_negative))
    .bind(crate::clock::now())
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Opens the two accounts of a user (available, reserved).
pub async fn open_user_accounts(tx: &mut Tx, user_id: &str) -> Result<()> {
    open_account(
        tx,
        &available_account(user_id),
        "user_available",
        Some(user_id),
        true,
    )
    .await?;
    open_account(
        tx,
        &reserved_account(user_id),
        "user_reserved",
        Some(user_id),
        true,
    )
    .await
}

/// Records a journal transaction of `kind` for `reference` and applies its postings to
/// the balances. The postings must sum to zero and hold at least two legs; amounts of
/// zero are dropped. Errors: 422 `INSUFFICIENT_FUNDS` when a non-negative account would
/// go below zero (nothing is applied — the caller's transaction must be dropped);
/// 500 for an unknown account or unbalanced postings (programming errors).
pub async fn record(
    tx: &mut Tx,
    kind: &str,
    reference: &str,
    description: &str,
    postings: &[Posting],
) -> Result<Recorded> {
    record_reading(tx, kind, reference, description, postings, None)
        .await
        .map(|(r, _)| r)
}

/// [`record`], and `user_id`'s [`Balance`] once it is recorded (as [`balance`] would
/// read it next in `tx`), in the same round trip when the postings take the
/// one-statement path. Errors as [`record`], except that on that path a missing account
/// of `user_id` — a user the request named that does not exist — is 404
/// `USER_NOT_FOUND`, not logged.
pub async fn record_with_balance(
    tx: &mut Tx,
    kind: &str,
    reference: &str,
    description: &str,
    postings: &[Posting],
    user_id: &str,
) -> Result<(Recorded, Balance)> {
    let (recorded, read) =
        record_reading(tx, kind, reference, description, postings, Some(user_id)).await?;
    let balance = match read {
        Some(rows) => balance_of(user_id, rows)?,
        None => balance(tx.conn(), user_id).await?,
    };
    Ok((recorded, balance))
}

/// [`record`]; with `read`, also the `(account, balance)` rows of that user's two
/// accounts after it (`None`: not read, the general path).
async fn record_reading(
    tx: &mut Tx,
    kind: &str,
    reference: &str,
    description: &str,
    postings: &[Posting],
    read: Option<&str>,
) -> Result<(Recorded, Option<Vec<(String, i64)>>)> {
    let mut legs: Vec<&Posting> = postings
        .iter()
        .filter(|p| p.amount != Amount::ZERO)
        .collect();
    let mut sum: i128 = 0;
    for p in &legs {
        sum += i128::from(p.amount.base_units());
    }
    if sum != 0 || legs.len() < 2 {
        return Err(Error::internal(format!(
            "unbalanced journal transaction {kind}/{reference}: {postings:?}"
        )));
    }
    // A fixed order of row locks across transactions: no deadlocks on PostgreSQL.
    legs.sort_by(|a, b| a.account.cmp(&b.account));
    let id = new_id(IdKind::Journal);
    let now = crate::clock::now();
    if let Some(one) = one_statement_legs(tx, &legs) {
        let reads = read.map(|u| [available_account(u), reserved_account(u)]);
        let (recorded, balances) = statement::record(
            tx,
            &id,
            (kind, reference, description),
            &now,
            &one,
            reads.as_ref().map(|r| r.as_slice()).unwrap_or(&[]),
        )
        .await?;
        if matches!(recorded, Recorded::Applied(_)) {
            crate::metrics::ledger_transaction(kind);
        }
        return Ok((recorded, read.map(|_| balances)));
    }
    let inserted = sqlx::query(
        "INSERT INTO journal_transactions (id, kind, reference, description, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, reference) DO NOTHING",
    )
    .bind(&id)
    .bind(kind)
    .bind(reference)
    .bind(description)
    .bind(&now)
    .execute(tx.conn())
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok((already_applied(tx, kind, reference).await?, None));
    }
    // Every leg within ±Amount::MAX and every balance kept there: `balance + $1` stays
    // far from the i64 edge on both backends (no overflow error, no SQLite REAL).
    if let Some(p) = legs.iter().find(|p| !p.amount.in_range()) {
        return Err(out_of_range(&p.account));
    }
    // Ordinary accounts first, then shard rows, each in account order: the lock order
    // of `statement::record` too.
    let (sharded, ordinary): (Vec<&Posting>, Vec<&Posting>) =
        legs.iter().partition(|p| is_sharded(tx, &p.account));
    // `(account, delta, balance after, shard)`.
    let mut applied: Vec<(&str, i64, Option<i64>, Option<i64>)> = Vec::with_capacity(legs.len());
    for p in ordinary {
        let delta = p.amount.base_units();
        let after = post_to_account(tx, &p.account, delta).await?;
        applied.push((&p.account, delta, Some(after), None));
    }
    for p in sharded {
        let delta = p.amount.base_units();
        let shard = post_to_shard(tx, &p.account, delta).await?;
        applied.push((&p.account, delta, None, shard));
    }
    applied.sort_by(|a, b| a.0.cmp(b.0));
    // Every posting in one statement. PostgreSQL: a posting booked on a shard row
    // names it, and its foreign key references that row, not the account row every
    // writer shares (migration 0013); SQLite has no shard rows.
    let postgres = tx.backend() == crate::store::Backend::Postgres;
    let (columns, per_row) = if postgres {
        (
            "transaction_id, account_id, amount, balance_after, created_at, shard",
            6,
        )
    } else {
        (
            "transaction_id, account_id, amount, balance_after, created_at",
            5,
        )
    };
    let mut sql = format!("INSERT INTO postings ({columns}) VALUES ");
    crate::store::push_placeholders(&mut sql, applied.len(), per_row, "");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (account, delta, balance_after, shard) in applied {
        q = q
            .bind(id.clone())
            .bind(account.to_string())
            .bind(delta)
            .bind(balance_after)
            .bind(now.clone());
        if postgres {
            q = q.bind(shard);
        }
    }
    q.execute(tx.conn()).await?;
    crate::metrics::ledger_transaction(kind);
    Ok((Recorded::Applied(id), None))
}

/// [`Recorded::AlreadyApplied`] with the id of the journal transaction already
/// recorded for `(kind, reference)`.
async fn already_applied(tx: &mut Tx, kind: &str, reference: &str) -> Result<Recorded> {
    let existing: String =
        sqlx::query("SELECT id FROM journal_transactions WHERE kind = $1 AND reference = $2")
            .bind(kind)
            .bind(reference)
            .fetch_one(tx.conn())
            .await?
            .try_get("id")?;
    Ok(Recorded::AlreadyApplied(existing))
}

/// The legs as [`statement::record`] takes them, when it can record them: distinct
/// accounts (`legs` sorted), every amount within ±[`Amount::MAX`] and no debit of a
/// non-negative sharded account (those lock all shards: [`post_to_shard`]). `None`:
/// the general path.
fn one_statement_legs<'a>(tx: &Tx, legs: &[&'a Posting]) -> Option<Vec<statement::Leg<'a>>> {
    if legs.windows(2).any(|w| w[0].account == w[1].account) {
        return None;
    }
    legs.iter()
        .map(|p| {
            let delta = p.amount.base_units();
            let sharded = is_sharded(tx, &p.account);
            let shard_debit = sharded && delta < 0 && sharded_non_negative(&p.account);
            (p.amount.in_range() && !shard_debit).then_some((p.account.as_str(), delta, sharded))
        })
        .collect()
}

/// Sharded accounts that may not go negative (`fees:*`).
fn sharded_non_negative(account: &str) -> bool {
    account.starts_with("fees:")
}

/// Applies `delta` to an ordinary account's balance (conditional update: never below
/// zero when non-negative, never beyond ±[`Amount::MAX`]); returns the balance after.
async fn post_to_account(tx: &mut Tx, account: &str, delta: i64) -> Result<i64> {
    let max = Amount::MAX.base_units();
    let row = sqlx::query(
        "UPDATE ledger_accounts SET balance = balance + $1 \
         WHERE id = $2 AND (non_negative = 0 OR balance + $1 >= 0) \
           AND balance + $1 <= $3 AND balance + $1 >= -$3 RETURNING balance",
    )
    .bind(delta)
    .bind(account)
    .bind(max)
    .fetch_optional(tx.conn())
    .await?;
    if let Some(row) = row {
        return Ok(row.try_get("balance")?);
    }
    Err(diagnose(tx, account, delta, false).await?)
}

/// Why a conditional update of `account` by `delta` did not apply: unknown account
/// (500, logged: a programming error or corrupt data — a saga step parks on it; with
/// `caller_named_user`, the account of the user a request named
/// ([`record_with_balance`]): [`unknown_account`]), out of range (422
/// `AMOUNT_OUT_OF_RANGE`) or insufficient funds (422).
async fn diagnose(
    tx: &mut Tx,
    account: &str,
    delta: i64,
    caller_named_user: bool,
) -> Result<Error> {
    let max = Amount::MAX.base_units();
    let balance: Option<i64> =
        sqlx::query_scalar("SELECT balance FROM ledger_accounts WHERE id = $1")
            .bind(account)
            .fetch_optional(tx.conn())
            .await?;
    Ok(match balance {
        None if caller_named_user => unknown_account(account),
        None => Error::internal(format!("posting to unknown ledger account {account}")),
        Some(b)
            if i128::from(b) + i128::from(delta) > i128::from(max)
                || i128::from(b) + i128::from(delta) < -i128::from(max) =>
        {
            out_of_range(account)
        }
        Some(_) => insufficient(account, Amount::from_base_units(delta)),
    })
}

/// A posting to `account`, which does not exist, of the user a request named: 404
/// `USER_NOT_FOUND` when it is a user's account (the user does not exist: a caller's
/// mistake, not logged), else 500 (logged).
fn unknown_account(account: &str) -> Error {
    let user = account.strip_prefix("user:").and_then(|a| {
        a.strip_suffix(":available")
            .or_else(|| a.strip_suffix(":reserved"))
    });
    match user {
        Some(user_id) => crate::services::users::not_found(user_id),
        None => Error::internal(format!("posting to unknown ledger account {account}")),
    }
}

/// Applies `delta` to one shard of a [`SHARDED_ACCOUNTS`] account (PostgreSQL). A
/// credit, or any posting to an account that may go negative, updates the shard of
/// this database session ([`SESSION_SHARD`], each shard within
/// ±[`Amount::MAX`]; [`record`] posts shards after ordinary accounts, in account
/// order, so their locks add no deadlock). A debit of a
/// non-negative one (`fees:*`; none happens today) locks the account row and all its
/// shards, checks the total, and folds the shards into the account row. Returns the
/// shard row the posting was booked on (`None` for a fold: the account row).
async fn post_to_shard(tx: &mut Tx, account: &str, delta: i64) -> Result<Option<i64>> {
    let max = Amount::MAX.base_units();
    let non_negative = sharded_non_negative(account);
    if delta < 0 && non_negative {
        let base: i64 =
            sqlx::query_scalar("SELECT balance FROM ledger_accounts WHERE id = $1 FOR UPDATE")
                .bind(account)
                .fetch_optional(tx.conn())
                .await?
                .ok_or_else(|| {
                    Error::internal(format!("posting to unknown ledger account {account}"))
                })?;
        let shards: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM \
             (SELECT balance FROM ledger_account_shards WHERE account_id = $1 \
              ORDER BY shard FOR UPDATE) AS s",
        )
        .bind(account)
        .fetch_one(tx.conn())
        .await?;
        let after = i128::from(base) + i128::from(shards) + i128::from(delta);
        if after < 0 {
            return Err(insufficient(account, Amount::from_base_units(delta)));
        }
        let after = i64::try_from(after)
            .ok()
            .filter(|a| *a <= max)
            .ok_or_else(|| out_of_range(account))?;
        sqlx::query("UPDATE ledger_account_shards SET balance = 0 WHERE account_id = $1")
            .bind(account)
            .execute(tx.conn())
            .await?;
        sqlx::query("UPDATE ledger_accounts SET balance = $1 WHERE id = $2")
            .bind(after)
            .bind(account)
            .execute(tx.conn())
            .await?;
        return Ok(None);
    }
    let shard: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "UPDATE ledger_account_shards SET balance = balance + $1 \
         WHERE account_id = $2 AND shard = {SESSION_SHARD} \
           AND balance + $1 <= $3 AND balance + $1 >= -$3 \
         RETURNING CAST(shard AS BIGINT)"
    )))
    .bind(delta)
    .bind(account)
    .bind(max)
    .fetch_optional(tx.conn())
    .await?;
    if shard.is_some() {
        return Ok(shard);
    }
    Err(diagnose_shard(tx, account).await?)
}

/// Why a shard update of `account` did not apply: out of range (422
/// `AMOUNT_OUT_OF_RANGE`), or no shard row for this database session (500).
async fn diagnose_shard(tx: &mut Tx, account: &str) -> Result<Error> {
    let exists: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT balance FROM ledger_account_shards \
         WHERE account_id = $1 AND shard = {SESSION_SHARD}"
    )))
    .bind(account)
    .fetch_optional(tx.conn())
    .await?;
    Ok(match exists {
        Some(_) => out_of_range(account),
        None => Error::internal(format!("ledger account {account} has no shard rows")),
    })
}

/// The balance of any account, shards included (0 when it does not exist).
pub async fn account_balance<'c, E>(executor: E, account: &str) -> Result<Amount>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let b: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(a.balance + COALESCE((SELECT SUM(s.balance) FROM ledger_account_shards s \
                                            WHERE s.account_id = a.id), 0) AS BIGINT) \
         FROM ledger_accounts a WHERE a.id = $1",
    )
    .bind(account)
    .fetch_optional(executor)
    .await?;
    Ok(Amount::from_base_units(b.unwrap_or(0)))
}

pub use crate::domain::account::HoldStatus;

/// Funds of a user set aside (available → reserved) for one purpose, identified by
/// `(kind, reference)`, e.g. `("order", "ord_…")`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    pub id: String,
    pub user_id: String,
    pub amount: Amount,
    pub status: HoldStatus,
    pub kind: String,
    pub reference: String,
    pub created_at: String,
    pub resolved_at: Option<String>,
}

fn hold_from_row(r: &sqlx::any::AnyRow) -> Result<Hold> {
    Ok(Hold {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        amount: Amount::from_base_units(r.try_get("amount")?),
        status: r.try_get("status")?,
        kind: r.try_get("kind")?,
        reference: r.try_get("reference")?,
        created_at: r.try_get("created_at")?,
        resolved_at: r.try_get("resolved_at")?,
    })
}

const HOLD_COLUMNS: &str = "id, user_id, amount, status, kind, reference, created_at, resolved_at";

/// The hold for `(kind, reference)`, if any.
pub async fn find_hold(tx: &mut Tx, kind: &str, reference: &str) -> Result<Option<Hold>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {HOLD_COLUMNS} FROM holds WHERE kind = $1 AND reference = $2"
    )))
    .bind(kind)
    .bind(reference)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref().map(hold_from_row).transpose()
}

/// Places a hold of `amount` (> 0) on the user's available balance. Idempotent on
/// `(kind, reference)`: a second call returns the existing hold unchanged, whatever its
/// status (callers check [`Hold::status`]).
/// Errors: 422 `INSUFFICIENT_FUNDS`; 400 for a non-positive amount.
pub async fn hold(
    tx: &mut Tx,
    user_id: &str,
    amount: Amount,
    kind: &str,
    reference: &str,
) -> Result<Hold> {
    if !amount.is_positive() {
        return Err(Error::amount("amount", "must be greater than zero"));
    }
    if let Some(existing) = find_hold(tx, kind, reference).await? {
        return Ok(existing);
    }
    let h = Hold {
        id: new_id(IdKind::Hold),
        user_id: user_id.to_string(),
        amount,
        status: HoldStatus::Pending,
        kind: kind.to_string(),
        reference: reference.to_string(),
        created_at: crate::clock::now(),
        resolved_at: None,
    };
    let inserted = sqlx::query(
        "INSERT INTO holds (id, user_id, amount, status, kind, reference, created_at) \
         VALUES ($1, $2, $3, $7, $4, $5, $6) ON CONFLICT (kind, reference) DO NOTHING",
    )
    .bind(&h.id)
    .bind(&h.user_id)
    .bind(amount.base_units())
    .bind(&h.kind)
    .bind(&h.reference)
    .bind(&h.created_at)
    .bind(HoldStatus::Pending)
    .execute(tx.conn())
    .await?;
    if inserted.rows_affected() == 0 {
        // A concurrent transaction placed it first (PostgreSQL waits for it to commit).
        return find_hold(tx, kind, reference)
            .await?
            .ok_or_else(|| Error::internal("hold vanished after a conflict"));
    }
    record(
        tx,
        "hold",
        &h.id,
        &format!("hold for {kind} {reference}"),
        &[
            Posting::new(available_account(user_id), neg(amount)?),
            Posting::new(reserved_account(user_id), amount),
        ],
    )
    .await?;
    Ok(h)
}

fn neg(a: Amount) -> Result<Amount> {
    a.checked_neg()
        .filter(|n| n.in_range())
        .ok_or_else(|| Error::out_of_range("amount", crate::money::AmountError::Overflow))
}

/// Compare-and-set of a pending hold to `to`; 409 `INVALID_STATE_TRANSITION` when it
/// was already resolved.
async fn resolve(tx: &mut Tx, hold_id: &str, to: HoldStatus) -> Result<Hold> {
    let now = crate::clock::now();
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE holds SET status = $1, resolved_at = $2 WHERE id = $3 AND status = $4 \
         RETURNING {HOLD_COLUMNS}"
    )))
    .bind(to)
    .bind(&now)
    .bind(hold_id)
    .bind(HoldStatus::Pending)
    .fetch_optional(tx.conn())
    .await?;
    match row {
        Some(r) => hold_from_row(&r),
        None => {
            let current = sqlx::query("SELECT status FROM holds WHERE id = $1")
                .bind(hold_id)
                .fetch_optional(tx.conn())
                .await?;
            Err(match current {
                Some(r) => Error::new(
                    ErrorCode::InvalidStateTransition,
                    format!("hold {hold_id} is already resolved"),
                )
                .with_details(serde_json::json!({
                    "currentState": r.try_get::<HoldStatus, _>("status")?,
                    "allowedStates": [HoldStatus::Pending],
                })),
                None => Error::internal(format!("unknown hold {hold_id}")),
            })
        }
    }
}

/// Voids a pending hold: reserved → available. Exactly once.
pub async fn void_hold(tx: &mut Tx, hold_id: &str) -> Result<Hold> {
    let h = resolve(tx, hold_id, HoldStatus::Voided).await?;
    record(
        tx,
        "hold.void",
        &h.id,
        &format!("void of hold for {} {}", h.kind, h.reference),
        &[
            Posting::new(reserved_account(&h.user_id), neg(h.amount)?),
            Posting::new(available_account(&h.user_id), h.amount),
        ],
    )
    .await?;
    Ok(h)
}

/// Posts a pending hold: its amount leaves `reserved` for `destinations`, whose amounts
/// must sum to the hold's amount (e.g. `escrow:{order}`, or `external:stellar` for a
/// withdrawal). Exactly once.
pub async fn post_hold(tx: &mut Tx, hold_id: &str, destinations: &[Posting]) -> Result<Hold> {
    let h = resolve(tx, hold_id, HoldStatus::Posted).await?;
    let mut postings = vec![Posting::new(reserved_account(&h.user_id), neg(h.amount)?)];
    postings.extend_from_slice(destinations);
    record(
        tx,
        "hold.post",
        &h.id,
        &format!("post of hold for {} {}", h.kind, h.reference),
        &postings,
    )
    .await?;
    Ok(h)
}

/// A user's balance: `total = available + reserved`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Balance {
    pub user_id: String,
    pub available: Amount,
    pub reserved: Amount,
    pub total: Amount,
    pub currency: &'static str,
}

/// Reads the projection of a user's two accounts (zero when they do not exist).
pub async fn balance<'c, E>(executor: E, user_id: &str) -> Result<Balance>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let rows = sqlx::query("SELECT id, balance FROM ledger_accounts WHERE id IN ($1, $2)")
        .bind(available_account(user_id))
        .bind(reserved_account(user_id))
        .fetch_all(executor)
        .await?;
    let mut read = Vec::with_capacity(rows.len());
    for r in rows {
        read.push((r.try_get("id")?, r.try_get("balance")?));
    }
    balance_of(user_id, read)
}

/// The [`Balance`] of `user_id` from the `(account id, balance)` rows of its accounts
/// (an account without a row counts as zero).
fn balance_of(user_id: &str, rows: Vec<(String, i64)>) -> Result<Balance> {
    let (mut available, mut reserved) = (0_i64, 0_i64);
    for (id, b) in rows {
        if id.ends_with(":available") {
            available = b;
        } else {
            reserved = b;
        }
    }
    let total = available
        .checked_add(reserved)
        .ok_or_else(|| Error::internal("balance overflow"))?;
    Ok(Balance {
        user_id: user_id.to_string(),
        available: Amount::from_base_units(available),
        reserved: Amount::from_base_units(reserved),
        total: Amount::from_base_units(total),
        currency: "USD",
    })
}

/// One posting on a user's account, as the balance history shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// The journal transaction id (`jtx_…`).
    pub transaction_id: String,
    pub kind: String,
    pub reference: String,
    pub description: String,
    /// `available` or `reserved`.
    pub account: String,
    /// Signed change.
    pub amount: Amount,
    pub balance_after: Amount,
    pub created_at: String,
    #[serde(skip)]
    seq: i64,
}

/// Postings on the user's accounts, newest first.
pub async fn history(
    store: &Store,
    user_id: &str,
    page: &PageRequest,
) -> Result<Page<HistoryEntry>> {
    let cursor = page.cursor_seq()?.unwrap_or(i64::MAX);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT p.seq, p.transaction_id, p.account_id, p.amount, p.balance_after, p.created_at, \
                j.kind, j.reference, j.description \
         FROM postings p JOIN journal_transactions j ON j.id = p.transaction_id \
         WHERE p.account_id IN ($1, $2) AND p.seq < $3 ORDER BY p.seq DESC LIMIT {}",
        page.limit + 1
    )))
    .bind(available_account(user_id))
    .bind(reserved_account(user_id))
    .bind(cursor)
    .fetch_all(store.reader())
    .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for r in &rows {
        let account: String = r.try_get("account_id")?;
        entries.push(HistoryEntry {
            seq: r.try_get("seq")?,
            transaction_id: r.try_get("transaction_id")?,
            kind: r.try_get("kind")?,
            reference: r.try_get("reference")?,
            description: r.try_get("description")?,
            account: account.rsplit(':').next().unwrap_or_default().to_string(),
            amount: Amount::from_base_units(r.try_get("amount")?),
            balance_after: Amount::from_base_units(r.try_get("balance_after")?),
            created_at: r.try_get("created_at")?,
        });
    }
    Ok(Page::from_rows(entries, page.limit, |e| e.seq))
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_shard_falls_back_within_the_shards() {
        assert!(
            super::SESSION_SHARD.ends_with(&format!("pg_backend_pid() % {})", super::SHARDS)),
            "{}",
            super::SESSION_SHARD
        );
    }
}

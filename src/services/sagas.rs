//! Durable sagas (docs/ARCHITECTURE.md, Sagas and the engine): the on-chain steps of one
//! escrow operation, persisted step by step.
//!
//! A saga row holds its plan (`steps`, JSON), the index of the next step, and — once
//! built, verified and signed — that step's envelope and hash, stored **before** the
//! envelope is submitted. A resume (a retry, a restart, another daemon) settles the
//! stored envelope by resubmitting exactly it (Horizon answers a known transaction with
//! its result) instead of signing anew, so each step's transaction is submitted at most
//! once. Applying a step's effect (ledger, states, events) and advancing the step
//! happen in one database transaction.
//!
//! Status: `RUNNING` → `COMPLETED`; or `COMPENSATED` (a definitive failure before
//! anything reached the chain: the state was restored); or `NEEDS_ATTENTION` (a
//! definitive failure after a step landed, or retries exhausted): the order stays
//! locked to the saga until an operator runs `offerhub sagas retry` (or
//! `POST /sagas/{id}/retry`). Executors take a lease (`locked_until`) so one runs a
//! saga at a time across daemons.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::Row;

use crate::context::Context;
pub use crate::domain::saga::{SagaKind, SagaStatus};
use crate::error::{Error, ErrorCode, Result};
use crate::events::NewEvent;
use crate::pagination::{Page, PageRequest};
use crate::store::{Select, Store, Tx};

/// Who signs a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Party {
    Platform,
    Buyer,
    Seller,
}

/// One on-chain call of a saga.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Deploy,
    Fund,
    ChangeMilestoneStatus,
    ApproveMilestone,
    ReleaseFunds,
    DisputeEscrow,
    ResolveDispute,
    ReleaseMilestoneFunds,
    DisputeMilestone,
    ResolveMilestoneDispute,
}

/// A share of a resolution: `amount` in base units (gross), `None` = the whole
/// on-chain balance of the escrow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub party: Party,
    pub amount: Option<i64>,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub action: Action,
    pub signer: Party,
    /// The on-chain milestone index (milestone calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub milestone: Option<u32>,
    /// Resolutions: the gross shares.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<Share>,
}

impl Step {
    pub fn new(action: Action, signer: Party) -> Step {
        Step {
            action,
            signer,
            milestone: None,
            shares: Vec::new(),
        }
    }
    pub fn at(mut self, milestone: u32) -> Step {
        self.milestone = Some(milestone);
        self
    }
    pub fn shares(mut self, shares: Vec<Share>) -> Step {
        self.shares = shares;
        self
    }
}

/// The plan of a saga: its steps and the parameters its completion needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    #[serde(default)]
    pub params: Value,
}

/// A step already applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DoneStep {
    pub action: Action,
    pub transaction_hash: String,
    pub at: String,
}

/// A saga as the API and the CLI show it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Saga {
    pub id: String,
    pub kind: SagaKind,
    pub order_id: String,
    pub dispute_id: Option<String>,
    pub status: SagaStatus,
    pub steps: Vec<Step>,
    /// Index of the next step.
    pub step: i64,
    pub done: Vec<DoneStep>,
    /// Hash of the stored, not yet settled envelope of the current step.
    pub pending_transaction_hash: Option<String>,
    /// `{code, message, details?}` of the last failure.
    pub last_error: Option<Value>,
    pub attempts: i64,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    #[serde(skip)]
    pub params: Value,
    #[serde(skip)]
    pub envelope: Option<String>,
    #[serde(skip)]
    seq: i64,
}

const COLUMNS: &str = "seq, id, kind, order_id, dispute_id, status, steps, step, envelope, tx_hash, done, \
     last_error, attempts, created_at, updated_at, finished_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Saga> {
    let plan: Plan = serde_json::from_str(&r.try_get::<String, _>("steps")?)
        .map_err(|e| Error::internal(format!("saga plan: {e}")))?;
    let done: Vec<DoneStep> = serde_json::from_str(&r.try_get::<String, _>("done")?)
        .map_err(|e| Error::internal(format!("saga done steps: {e}")))?;
    let last_error: Option<String> = r.try_get("last_error")?;
    Ok(Saga {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        order_id: r.try_get("order_id")?,
        dispute_id: r.try_get("dispute_id")?,
        status: r.try_get("status")?,
        steps: plan.steps,
        params: plan.params,
        step: r.try_get("step")?,
        envelope: r.try_get("envelope")?,
        pending_transaction_hash: r.try_get("tx_hash")?,
        done,
        last_error: last_error.and_then(|e| serde_json::from_str(&e).ok()),
        attempts: r.try_get("attempts")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

fn not_found(id: &str) -> Error {
    Error::new(ErrorCode::SagaNotFound, format!("Saga {id} does not exist"))
}

/// The error a saga recorded, as an [`Error`] again.
pub fn error_of(v: &Value) -> Error {
    let code = v["code"].as_str().unwrap_or("PROVIDER_ERROR");
    let message = v["message"].as_str().unwrap_or("the operation failed");
    let known = [
        ErrorCode::EscrowContractError,
        ErrorCode::XdrVerificationFailed,
        ErrorCode::ProviderError,
        ErrorCode::ProviderUnavailable,
        ErrorCode::ProviderTimeout,
        ErrorCode::WalletNotReady,
        ErrorCode::InsufficientFunds,
        ErrorCode::InvalidStateTransition,
    ];
    let c = known
        .into_iter()
        .find(|c| c.as_str() == code)
        .unwrap_or(ErrorCode::ProviderError);
    let mut e = Error::new(c, message);
    if let Some(d) = v.get("details").filter(|d| !d.is_null()) {
        e = e.with_details(d.clone());
    }
    e
}

/// `{code, message, details}` of an error, for `last_error`.
pub fn error_json(e: &Error) -> Value {
    json!({ "code": e.code.as_str(), "message": e.message, "details": e.details })
}

/// Inserts a new `RUNNING` saga (in the caller's transaction, with the order's CAS).
pub async fn insert(
    tx: &mut Tx,
    id: &str,
    kind: SagaKind,
    order_id: &str,
    dispute_id: Option<&str>,
    plan: &Plan,
) -> Result<()> {
    let now = crate::clock::now();
    sqlx::query(
        "INSERT INTO sagas (id, kind, order_id, dispute_id, status, steps, step, done, attempts, next_run_at, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 0, '[]', 0, $7, $7, $7)",
    )
    .bind(id)
    .bind(kind)
    .bind(order_id)
    .bind(dispute_id)
    .bind(SagaStatus::Running)
    .bind(serde_json::to_string(plan).map_err(|e| Error::internal(e.to_string()))?)
    .bind(&now)
    .execute(tx.conn())
    .await?;
    crate::metrics::saga(kind.as_str(), SagaStatus::Running.as_str());
    Ok(())
}

/// One saga; 404 `SAGA_NOT_FOUND`.
pub async fn get(store: &Store, id: &str) -> Result<Saga> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sagas WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(store.reader())
    .await?;
    row.as_ref()
        .map(from_row)
        .transpose()?
        .ok_or_else(|| not_found(id))
}

/// Reads a saga inside a transaction.
pub async fn get_in(tx: &mut Tx, id: &str) -> Result<Saga> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM sagas WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    row.as_ref()
        .map(from_row)
        .transpose()?
        .ok_or_else(|| not_found(id))
}

/// Sagas newest first, optionally of one status and/or order.
pub async fn list(
    store: &Store,
    status: Option<SagaStatus>,
    order_id: Option<&str>,
    page: &PageRequest,
) -> Result<Page<Saga>> {
    let mut q = Select::new(format!("SELECT {COLUMNS} FROM sagas WHERE seq < "));
    q.push_bind(page.cursor_seq()?.unwrap_or(i64::MAX))
        .and_eq("status", status)
        .and_eq("order_id", order_id)
        .push(format_args!(" ORDER BY seq DESC LIMIT {}", page.limit + 1));
    let rows = q.build()?.fetch_all(store.reader()).await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, page.limit, |s| s.seq))
}

/// Ids of `RUNNING` sagas that are due and not leased, oldest first.
pub async fn due(store: &Store, limit: u32) -> Result<Vec<String>> {
    let now = crate::clock::now();
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM sagas WHERE status = $1 AND next_run_at <= $2 \
         AND (locked_until IS NULL OR locked_until < $2) ORDER BY seq LIMIT {limit}"
    )))
    .bind(SagaStatus::Running)
    .bind(&now)
    .fetch_all(store.reader())
    .await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("id").map_err(Into::into))
        .collect()
}

fn in_secs(secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Takes (or renews, with `renew`) the lease of a running saga for `secs` seconds;
/// `false` when another executor holds it or the saga is not running. The lease only
/// avoids duplicate work: safety comes from the compare-and-set on the stored envelope
/// and on the step, so an executor that outlives its lease cannot double-submit.
pub async fn lease(store: &Store, id: &str, renew: bool, secs: i64) -> Result<bool> {
    let now = crate::clock::now();
    let mut tx = store.begin().await?;
    let sql = if renew {
        "UPDATE sagas SET locked_until = $1 WHERE id = $2 AND status = $3"
    } else {
        "UPDATE sagas SET locked_until = $1 WHERE id = $2 AND status = $3 \
         AND (locked_until IS NULL OR locked_until < $4)"
    };
    let mut q = sqlx::query(sql)
        .bind(in_secs(secs))
        .bind(id)
        .bind(SagaStatus::Running);
    if !renew {
        q = q.bind(&now);
    }
    let done = q.execute(tx.conn()).await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Gives the lease back.
pub async fn unlease(store: &Store, id: &str) -> Result<()> {
    let mut tx = store.begin().await?;
    sqlx::query("UPDATE sagas SET locked_until = NULL WHERE id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    tx.commit().await
}

/// Stores the signed envelope of step `step`, compare-and-set on there being none:
/// `false` when another executor stored one first.
pub async fn store_envelope(
    store: &Store,
    id: &str,
    step: i64,
    xdr: &str,
    hash: &str,
) -> Result<bool> {
    let mut tx = store.begin().await?;
    let done = sqlx::query(
        "UPDATE sagas SET envelope = $1, tx_hash = $2, updated_at = $3 \
         WHERE id = $4 AND step = $5 AND envelope IS NULL AND status = $6",
    )
    .bind(xdr)
    .bind(hash)
    .bind(crate::clock::now())
    .bind(id)
    .bind(step)
    .bind(SagaStatus::Running)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}

/// Forgets the stored envelope of the current step once it can never land
/// (expired, its sequence number consumed, or refused before submission).
pub async fn clear_envelope(store: &Store, id: &str, xdr: &str) -> Result<()> {
    let mut tx = store.begin().await?;
    sqlx::query("UPDATE sagas SET envelope = NULL, tx_hash = NULL, updated_at = $1 WHERE id = $2 AND envelope = $3")
        .bind(crate::clock::now())
        .bind(id)
        .bind(xdr)
        .execute(tx.conn())
        .await?;
    tx.commit().await
}

/// Marks step `step` applied with `hash` (in the caller's transaction, together with
/// the step's effects): the next step becomes current. `false` when it was already.
pub async fn advance(tx: &mut Tx, saga: &Saga, hash: &str) -> Result<bool> {
    let mut done = saga.done.clone();
    let step = usize::try_from(saga.step).unwrap_or(usize::MAX);
    let action = saga
        .steps
        .get(step)
        .map(|s| s.action)
        .ok_or_else(|| Error::internal("saga step out of range"))?;
    done.push(DoneStep {
        action,
        transaction_hash: hash.to_string(),
        at: crate::clock::now(),
    });
    let r = sqlx::query(
        "UPDATE sagas SET step = step + 1, envelope = NULL, tx_hash = NULL, done = $1, attempts = 0, \
         last_error = NULL, updated_at = $2 WHERE id = $3 AND step = $4 AND status = $5",
    )
    .bind(serde_json::to_string(&done).map_err(|e| Error::internal(e.to_string()))?)
    .bind(crate::clock::now())
    .bind(&saga.id)
    .bind(saga.step)
    .bind(SagaStatus::Running)
    .execute(tx.conn())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Ends a saga (`COMPLETED` or `COMPENSATED`) and frees its order, in the caller's
/// transaction.
pub async fn finish(
    tx: &mut Tx,
    saga: &Saga,
    status: SagaStatus,
    error: Option<&Error>,
) -> Result<()> {
    debug_assert!(SagaStatus::Running.next().contains(&status) && status.is_final());
    let now = crate::clock::now();
    sqlx::query(
        "UPDATE sagas SET status = $1, finished_at = $2, updated_at = $2, locked_until = NULL, \
         last_error = COALESCE($3, last_error) WHERE id = $4",
    )
    .bind(status)
    .bind(&now)
    .bind(error.map(|e| error_json(e).to_string()))
    .bind(&saga.id)
    .execute(tx.conn())
    .await?;
    sqlx::query(
        "UPDATE orders SET active_saga = NULL, updated_at = $1 WHERE id = $2 AND active_saga = $3",
    )
    .bind(&now)
    .bind(&saga.order_id)
    .bind(&saga.id)
    .execute(tx.conn())
    .await?;
    crate::metrics::saga(saga.kind.as_str(), status.as_str());
    Ok(())
}

/// A transient failure: counted, retried after a backoff (2^attempts s, at most 60 s);
/// after `max_attempts` the saga parks as `NEEDS_ATTENTION`.
pub async fn retry_later(store: &Store, saga: &Saga, e: &Error, max_attempts: u32) -> Result<()> {
    let attempts = saga.attempts + 1;
    if attempts >= i64::from(max_attempts) {
        return park(store, saga, e).await;
    }
    let delay = 1_i64 << attempts.clamp(0, 6);
    let mut tx = store.begin().await?;
    sqlx::query(
        "UPDATE sagas SET attempts = $1, last_error = $2, next_run_at = $3, locked_until = NULL, updated_at = $4 \
         WHERE id = $5 AND status = $6",
    )
    .bind(attempts)
    .bind(error_json(e).to_string())
    .bind(in_secs(delay.min(60)))
    .bind(crate::clock::now())
    .bind(&saga.id)
    .bind(SagaStatus::Running)
    .execute(tx.conn())
    .await?;
    tx.commit().await
}

/// Parks a saga as `NEEDS_ATTENTION` with the reason (audited, `saga.needs_attention`).
pub async fn park(store: &Store, saga: &Saga, e: &Error) -> Result<()> {
    let mut tx = store.begin().await?;
    let r = sqlx::query(
        "UPDATE sagas SET status = $1, last_error = $2, locked_until = NULL, updated_at = $3 \
         WHERE id = $4 AND status = $5",
    )
    .bind(SagaStatus::NeedsAttention)
    .bind(error_json(e).to_string())
    .bind(crate::clock::now())
    .bind(&saga.id)
    .bind(SagaStatus::Running)
    .execute(tx.conn())
    .await?;
    if r.rows_affected() == 1 {
        crate::metrics::saga(saga.kind.as_str(), SagaStatus::NeedsAttention.as_str());
        let data = json!({ "sagaId": saga.id, "kind": saga.kind, "orderId": saga.order_id, "step": saga.step, "reason": error_json(e) });
        tx.audit(
            Context::system()
                .audit("saga.needs_attention", "saga", &saga.id)
                .after(&data),
        );
        tx.emit(NewEvent::new(
            "saga.needs_attention",
            "saga",
            &saga.id,
            data,
        ));
    }
    tx.commit().await
}

/// Puts a `NEEDS_ATTENTION` (or stalled `RUNNING`) saga back to work from its current
/// step; errors 404, 409 `INVALID_STATE_TRANSITION` when it has ended.
pub async fn retry(store: &Store, ctx: &Context, id: &str) -> Result<Saga> {
    let saga = get(store, id).await?;
    if !saga.status.retryable() {
        return Err(Error::new(
            ErrorCode::InvalidStateTransition,
            format!("Saga {id} is {} and cannot be retried", saga.status),
        )
        .with_details(json!({
            "currentState": saga.status,
            "allowedStates": [SagaStatus::NeedsAttention, SagaStatus::Running],
        })));
    }
    let mut tx = store.begin_for(ctx).await?;
    sqlx::query(
        "UPDATE sagas SET status = $1, attempts = 0, next_run_at = $2, locked_until = NULL, updated_at = $2 \
         WHERE id = $3 AND status IN ($4, $5)",
    )
    .bind(SagaStatus::Running)
    .bind(crate::clock::now())
    .bind(id)
    .bind(SagaStatus::NeedsAttention)
    .bind(SagaStatus::Running)
    .execute(tx.conn())
    .await?;
    tx.audit(
        ctx.audit("saga.retried", "saga", id)
            .before(json!({ "status": saga.status }))
            .after(json!({ "status": SagaStatus::Running })),
    );
    tx.commit().await?;
    get(store, id).await
}

/// Waits until the saga is no longer `RUNNING` or `timeout` passes; returns its state.
pub async fn wait(store: &Store, id: &str, timeout: std::time::Duration) -> Result<Saga> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let s = get(store, id).await?;
        if s.status != SagaStatus::Running || tokio::time::Instant::now() >= deadline {
            return Ok(s);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

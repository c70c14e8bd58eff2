//! Escrow orchestration with Trustless Work (DESIGN §3–§4, seed 004 flows 1–6,
//! research/trustless-stellar.md §A–§B, §F).
//!
//! Every operation is a saga ([`crate::services::sagas`]) whose steps are contract calls:
//!
//! | operation | order | steps (signer) |
//! |---|---|---|
//! | create escrow | `FUNDS_RESERVED → ESCROW_CREATING → ESCROW_FUNDING` | deploy (platform) |
//! | fund | `ESCROW_FUNDING → IN_PROGRESS` | fund_escrow (buyer), exactly the order amount |
//! | release | `IN_PROGRESS → RELEASE_REQUESTED → RELEASED → CLOSED` | change_milestone_status (seller), approve_milestone (buyer), release_funds (buyer); multi-release: per unreleased milestone |
//! | refund | `IN_PROGRESS → REFUND_REQUESTED → REFUNDED → CLOSED` | dispute_escrow (buyer), resolve_dispute 100 % to the buyer (platform) |
//! | dispute | `IN_PROGRESS → DISPUTED` | dispute_escrow (buyer or seller) |
//! | resolution | `DISPUTED → CLOSED` | resolve_dispute (platform) with the decision's shares |
//! | milestones (multi-release) | `IN_PROGRESS` | change status / approve / release_milestone_funds |
//!
//! Roles: approver and releaseSigner = buyer, serviceProvider and receiver = seller,
//! platformAddress and disputeResolver = platform; the platform deploys (and pays that
//! fee). Orders with milestones get a multi-release escrow (one contract milestone per
//! order milestone, receiver = seller), others a single-release escrow with one
//! milestone.
//!
//! Each step: build with TW → **verify** the envelope ([`crate::trustless::verify`]) →
//! sign with the role's wallet → store envelope + hash → submit via
//! `/helper/send-transaction` → settle by the hash on Horizon. Money: funding posts
//! the buyer's hold into `escrow:{order}`; a release or resolution credits what
//! **actually arrived** — read from the transaction's `asset_balance_changes` on
//! Horizon — to the seller/buyer, the platform fee to `fees:platform` and Trustless
//! Work's fee to `fees:trustless`, so balances equal the chain (§B.4–§B.5).
//!
//! A definitive failure of a saga's first step (nothing reached the chain) compensates:
//! the order returns to its state before the call (the hold stays until the order is
//! canceled). A failure after a step landed parks the saga `NEEDS_ATTENTION`.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::Row;
use tracing::Instrument;

use crate::context::Context;
use crate::domain::order::{OrderStatus, transition};
use crate::error::{Error, ErrorCode, Result};
use crate::events::NewEvent;
use crate::ids::{IdKind, new_id};
use crate::ledger::{self, Posting};
use crate::money::Amount;
use crate::services::orders::{self, Order};
use crate::services::sagas::{self, Action, Party, Plan, Saga, Share, Step};
use crate::services::wallets::{self, StellarContext, Wallet};
use crate::stellar::horizon::SubmitOutcome;
use crate::stellar::tx;
use crate::store::{Store, Tx};
use crate::trustless::verify::{self, Arg, Expected};
use crate::trustless::{self as tw, SendOutcome, TrustlessWork};

/// Factory functions accepted for deploys.
const DEPLOY_SINGLE: &[&str] = &["tw_new_single_release_escrow"];
const DEPLOY_MULTI: &[&str] = &["tw_new_multi_release_escrow"];
/// The status a seller's "complete" writes on a contract milestone.
const COMPLETED_STATUS: &str = "completed";

/// Tunables of escrow orchestration.
#[derive(Clone, Debug)]
pub struct EscrowSettings {
    /// Default platform fee in basis points (`TRUSTLESS_PLATFORM_FEE` percent × 100).
    pub platform_fee_bps: u32,
    /// Largest transaction fee OfferHub signs (stroops, resource fee included).
    pub max_fee_stroops: u32,
    /// The TW factory contract (`C…`) deploys must call; `None` = not pinned.
    pub factory_contract: Option<String>,
    /// How long an API call waits for its saga before answering 202.
    pub wait: Duration,
    /// Transient failures of one step before the saga parks `NEEDS_ATTENTION`.
    pub max_attempts: u32,
    /// An executor's lease on a saga (renewed at every step); after a crash another
    /// executor resumes the saga once it expires.
    pub lease_secs: i64,
}

/// What escrow code needs: the Stellar context, the TW client, the settings.
pub struct EscrowContext {
    pub sc: Arc<StellarContext>,
    pub tw: TrustlessWork,
    pub settings: EscrowSettings,
}

/// The escrow of an order as the API shows it (inside the order).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Escrow {
    pub id: String,
    pub order_id: String,
    /// `single-release` or `multi-release`.
    pub kind: String,
    /// The contract (`C…`) once deployed.
    pub contract_id: Option<String>,
    /// `CREATING`, `CREATED`, `FUNDING`, `FUNDED`, `DISPUTED`, `RELEASED`, `REFUNDED`,
    /// `RESOLVED`.
    pub status: String,
    pub amount: Amount,
    /// Percent, e.g. `2.5`.
    pub platform_fee: f64,
    /// What the ledger holds in `escrow:{order}` (equals the contract's balance).
    pub balance: Amount,
    pub deploy_transaction_hash: Option<String>,
    pub funded_at: Option<String>,
    pub closed_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    pub platform_fee_bps: u32,
}

const COLUMNS: &str = "e.id, e.order_id, e.kind, e.contract_id, e.status, e.amount, e.platform_fee_bps, \
     e.deploy_hash, e.funded_at, e.closed_at, e.created_at, e.updated_at, COALESCE(a.balance, 0) AS balance";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Escrow> {
    let bps: i64 = r.try_get("platform_fee_bps")?;
    Ok(Escrow {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        kind: r.try_get("kind")?,
        contract_id: r.try_get("contract_id")?,
        status: r.try_get("status")?,
        amount: Amount::from_base_units(r.try_get("amount")?),
        platform_fee: bps as f64 / 100.0,
        platform_fee_bps: u32::try_from(bps).unwrap_or(0),
        balance: Amount::from_base_units(r.try_get("balance")?),
        deploy_transaction_hash: r.try_get("deploy_hash")?,
        funded_at: r.try_get("funded_at")?,
        closed_at: r.try_get("closed_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// The escrows of several orders in one query: `(order id, escrow)`.
pub async fn escrows_of<'c, E>(executor: E, order_ids: &[&str]) -> Result<Vec<Escrow>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    if order_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = (1..=order_ids.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM escrows e LEFT JOIN ledger_accounts a ON a.id = 'escrow:' || e.order_id \
         WHERE e.order_id IN ({placeholders})"
    )));
    for id in order_ids {
        q = q.bind(id.to_string());
    }
    q.fetch_all(executor).await?.iter().map(from_row).collect()
}

/// The escrow of one order, if any.
pub async fn for_order<'c, E>(executor: E, order_id: &str) -> Result<Option<Escrow>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    Ok(escrows_of(executor, &[order_id]).await?.into_iter().next())
}

/// Whether `address` is the contract of one of OfferHub's escrows (the deposit
/// monitor does not credit transfers out of them: the sagas do).
pub async fn is_own_contract(store: &Store, address: &str) -> Result<bool> {
    if !address.starts_with('C') {
        return Ok(false);
    }
    Ok(
        sqlx::query("SELECT 1 AS one FROM escrows WHERE contract_id = $1")
            .bind(address)
            .fetch_optional(store.reader())
            .await?
            .is_some(),
    )
}

// ---------- parties ----------

/// The three wallets an escrow involves.
pub struct Parties {
    pub buyer: Wallet,
    pub seller: Wallet,
    pub platform: Wallet,
}

impl Parties {
    /// Loads the wallets; 422 `WALLET_NOT_READY` unless all three are `ACTIVE`.
    pub async fn load(store: &Store, order: &Order) -> Result<Parties> {
        let platform = wallets::platform(store).await?.ok_or_else(|| {
            Error::new(
                ErrorCode::WalletNotReady,
                "The platform wallet does not exist yet",
            )
        })?;
        let buyer = wallets::for_user(store, &order.buyer_id).await?;
        let seller = wallets::for_user(store, &order.seller_id).await?;
        for (who, w) in [
            ("buyer", &buyer),
            ("seller", &seller),
            ("platform", &platform),
        ] {
            if w.status != "ACTIVE" {
                return Err(Error::new(
                    ErrorCode::WalletNotReady,
                    format!("The {who}'s wallet is {} (it must be ACTIVE)", w.status),
                )
                .with_details(json!({ "party": who, "walletId": w.id, "status": w.status })));
            }
        }
        Ok(Parties {
            buyer,
            seller,
            platform,
        })
    }

    pub fn wallet(&self, p: Party) -> &Wallet {
        match p {
            Party::Buyer => &self.buyer,
            Party::Seller => &self.seller,
            Party::Platform => &self.platform,
        }
    }

    pub fn address(&self, p: Party) -> &str {
        &self.wallet(p).public_key
    }
}

// ---------- starting operations ----------

fn busy(saga: &str) -> Error {
    Error::new(
        ErrorCode::OperationInProgress,
        "Another operation on this order is running; wait for it or see its saga",
    )
    .with_details(json!({ "sagaId": saga }))
}

/// Claims the order for a new saga: compare-and-set on `active_saga IS NULL` and, when
/// `to` is given, on the status (`from` → `to`, checked against `sources`).
async fn claim(
    tx: &mut Tx,
    order: &Order,
    saga_id: &str,
    to: Option<OrderStatus>,
    sources: &[OrderStatus],
) -> Result<()> {
    let target = to.unwrap_or(order.status);
    if to.is_some() {
        transition(order.status, target, sources)?;
    } else if !sources.contains(&order.status) {
        return Err(Error::new(
            ErrorCode::InvalidStateTransition,
            format!(
                "Order is {} and this operation needs {}",
                order.status.as_str(),
                sources
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        )
        .with_details(json!({
            "currentState": order.status.as_str(),
            "allowedStates": sources.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        })));
    }
    let done = sqlx::query(
        "UPDATE orders SET status = $1, active_saga = $2, updated_at = $3 \
         WHERE id = $4 AND status = $5 AND active_saga IS NULL",
    )
    .bind(target.as_str())
    .bind(saga_id)
    .bind(crate::clock::now())
    .bind(&order.id)
    .bind(order.status.as_str())
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 1 {
        return Ok(());
    }
    let row = sqlx::query("SELECT status, active_saga FROM orders WHERE id = $1")
        .bind(&order.id)
        .fetch_one(tx.conn())
        .await?;
    if let Some(active) = row.try_get::<Option<String>, _>("active_saga")? {
        return Err(busy(&active));
    }
    let status: String = row.try_get("status")?;
    let current = OrderStatus::parse(&status).unwrap_or(order.status);
    match to {
        Some(t) => transition(current, t, sources)?,
        None if !sources.contains(&current) => {
            return Err(Error::new(
                ErrorCode::InvalidStateTransition,
                format!("Order is {status}"),
            ));
        }
        None => {}
    }
    Err(Error::new(
        ErrorCode::InvalidStateTransition,
        "The order changed concurrently; retry",
    ))
}

async fn active_saga_of(store: &Store, order_id: &str) -> Result<Option<String>> {
    Ok(sqlx::query("SELECT active_saga FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_optional(store.reader())
        .await?
        .map(|r| r.try_get::<Option<String>, _>("active_saga"))
        .transpose()?
        .flatten())
}

async fn ensure_idle(store: &Store, order: &Order) -> Result<()> {
    match active_saga_of(store, &order.id).await? {
        Some(s) => Err(busy(&s)),
        None => Ok(()),
    }
}

fn order_event(kind: &str, order_id: &str, data: Value) -> NewEvent {
    NewEvent::new(kind, "order", order_id, data)
}

/// Parses a per-order platform fee override (percent, 0–99, at most two decimals) into
/// basis points.
pub fn fee_bps(field: &str, v: &Value) -> Result<u32> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Err(Error::validation(field, "must be a percentage such as 2.5")),
    };
    let parsed = Amount::parse(&text)
        .map_err(|_| Error::validation(field, "must be a percentage such as 2.5"))?;
    let units = parsed.base_units();
    if !(0..=99 * 10_000_000).contains(&units) || units % 100_000 != 0 {
        return Err(Error::validation(
            field,
            "must be between 0 and 99 with at most two decimals",
        ));
    }
    u32::try_from(units / 100_000).map_err(|_| Error::validation(field, "out of range"))
}

/// `POST /orders/{id}/escrow`: deploys the order's escrow (`FUNDS_RESERVED →
/// ESCROW_CREATING`; `ESCROW_FUNDING` once deployed). `platform_fee_bps` overrides the
/// configured fee for this order. Returns the saga to drive. Errors: 404, 409
/// `ESCROW_ALREADY_EXISTS` / `INVALID_STATE_TRANSITION` / `OPERATION_IN_PROGRESS`, 422
/// `WALLET_NOT_READY`. Emits `order.escrow_creating`.
pub async fn create(
    store: &Store,
    ec: &EscrowContext,
    ctx: &Context,
    order_id: &str,
    platform_fee_bps: Option<u32>,
) -> Result<Saga> {
    let order = orders::get(store, order_id).await?;
    if let Some(e) = for_order(store.reader(), order_id).await? {
        return Err(Error::new(
            ErrorCode::EscrowAlreadyExists,
            format!("Order {order_id} already has escrow {}", e.id),
        )
        .with_details(json!({ "escrowId": e.id, "status": e.status })));
    }
    transition(
        order.status,
        OrderStatus::EscrowCreating,
        &[OrderStatus::FundsReserved],
    )?;
    ensure_idle(store, &order).await?;
    Parties::load(store, &order).await?;
    let bps = platform_fee_bps.unwrap_or(ec.settings.platform_fee_bps);
    let kind = if order.milestones.is_empty() {
        "single-release"
    } else {
        "multi-release"
    };
    let saga_id = new_id(IdKind::Saga);
    let escrow_id = new_id(IdKind::Escrow);
    let now = crate::clock::now();
    let mut db = store.begin_for(ctx).await?;
    claim(
        &mut db,
        &order,
        &saga_id,
        Some(OrderStatus::EscrowCreating),
        &[OrderStatus::FundsReserved],
    )
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO escrows (id, order_id, kind, status, amount, platform_fee_bps, created_at, updated_at) \
         VALUES ($1, $2, $3, 'CREATING', $4, $5, $6, $6) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(&escrow_id)
    .bind(order_id)
    .bind(kind)
    .bind(order.amount.base_units())
    .bind(i64::from(bps))
    .bind(&now)
    .execute(db.conn())
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(Error::new(
            ErrorCode::EscrowAlreadyExists,
            "The order already has an escrow",
        ));
    }
    ledger::open_account(
        &mut db,
        &ledger::escrow_account(order_id),
        "escrow",
        Some(order_id),
        true,
    )
    .await?;
    let plan = Plan {
        steps: vec![Step::new(Action::Deploy, Party::Platform)],
        params: json!({}),
    };
    sagas::insert(&mut db, &saga_id, "ESCROW_DEPLOY", order_id, None, &plan).await?;
    let data = json!({ "orderId": order_id, "escrowId": escrow_id, "sagaId": saga_id, "kind": kind, "amount": order.amount, "platformFee": bps as f64 / 100.0 });
    db.audit(
        ctx.audit("order.escrow_creating", "order", order_id)
            .before(json!({ "status": order.status }))
            .after(&data),
    );
    db.emit(order_event("order.escrow_creating", order_id, data));
    db.commit().await?;
    sagas::get(store, &saga_id).await
}

async fn funded_escrow(store: &Store, order: &Order) -> Result<Escrow> {
    let e = for_order(store.reader(), &order.id).await?.ok_or_else(|| {
        Error::new(
            ErrorCode::EscrowNotFound,
            format!("Order {} has no escrow", order.id),
        )
    })?;
    Ok(e)
}

/// `POST /orders/{id}/escrow/fund`: funds the contract with exactly the order amount
/// from the buyer's wallet (`ESCROW_FUNDING → IN_PROGRESS` once applied). Emits
/// `order.escrow_funding`; audited as `order.fund_requested` (the transitions themselves
/// are audited as `order.<status>` when they happen).
pub async fn fund(store: &Store, ctx: &Context, order_id: &str) -> Result<Saga> {
    let order = orders::get(store, order_id).await?;
    let escrow = funded_escrow(store, &order).await?;
    if escrow.status != "CREATED" && order.status == OrderStatus::EscrowFunding {
        return Err(Error::new(
            ErrorCode::InvalidStateTransition,
            format!("The escrow is {}", escrow.status),
        ));
    }
    ensure_idle(store, &order).await?;
    Parties::load(store, &order).await?;
    let saga_id = new_id(IdKind::Saga);
    let mut db = store.begin_for(ctx).await?;
    claim(
        &mut db,
        &order,
        &saga_id,
        None,
        &[OrderStatus::EscrowFunding],
    )
    .await?;
    set_escrow_status(&mut db, &order.id, "FUNDING", None).await?;
    let plan = Plan {
        steps: vec![Step::new(Action::Fund, Party::Buyer)],
        params: json!({}),
    };
    sagas::insert(&mut db, &saga_id, "ESCROW_FUND", order_id, None, &plan).await?;
    let data = json!({ "orderId": order_id, "escrowId": escrow.id, "contractId": escrow.contract_id, "amount": order.amount, "sagaId": saga_id });
    db.audit(
        ctx.audit("order.fund_requested", "order", order_id)
            .after(&data),
    );
    db.emit(order_event("order.escrow_funding", order_id, data));
    db.commit().await?;
    sagas::get(store, &saga_id).await
}

/// Order milestones that are not released or resolved, with their on-chain index.
fn open_milestones(order: &Order) -> Vec<(u32, &orders::Milestone)> {
    order
        .milestones
        .iter()
        .enumerate()
        .filter(|(_, m)| !matches!(m.status.as_str(), "RELEASED" | "RESOLVED"))
        .map(|(i, m)| (u32::try_from(i).unwrap_or(u32::MAX), m))
        .collect()
}

/// `POST /orders/{id}/resolution/release`: marks the work done (seller), approves
/// (buyer) and releases (buyer); the seller is credited the net amount that arrived.
/// `IN_PROGRESS → RELEASE_REQUESTED → … → CLOSED`. Emits `order.release_requested`.
pub async fn release(store: &Store, ctx: &Context, order_id: &str) -> Result<Saga> {
    release_with(store, ctx, order_id, false).await
}

/// The inspection window of `order_id` expired ([`crate::services::lifecycle`]):
/// releases through the saga of [`release`], actor `system`, claiming the schedule
/// (`SCHEDULED → RELEASING`) in the transaction that claims the order for the saga, so
/// that of several daemons exactly one releases (the others get 409
/// `OPERATION_IN_PROGRESS` / `INVALID_STATE_TRANSITION`). `Ok(None)` when nothing is to
/// be done now: a disputed order's clock stops, an ended order's is canceled, a busy
/// order is looked at again later. The saga's end emits `order.auto_released`.
pub async fn auto_release(store: &Store, order_id: &str) -> Result<Option<Saga>> {
    let order = orders::get(store, order_id).await?;
    match order.status {
        OrderStatus::InProgress => {}
        OrderStatus::Disputed => {
            crate::services::lifecycle::settle_clock(store, order_id, "SCHEDULED", "STOPPED")
                .await?;
            return Ok(None);
        }
        OrderStatus::Released | OrderStatus::Refunded | OrderStatus::Closed => {
            crate::services::lifecycle::settle_clock(store, order_id, "SCHEDULED", "CANCELED")
                .await?;
            return Ok(None);
        }
        _ => return Ok(None),
    }
    if active_saga_of(store, order_id).await?.is_some() {
        return Ok(None);
    }
    release_with(store, &Context::system(), order_id, true)
        .await
        .map(Some)
}

async fn release_with(store: &Store, ctx: &Context, order_id: &str, auto: bool) -> Result<Saga> {
    let order = orders::get(store, order_id).await?;
    let escrow = funded_escrow(store, &order).await?;
    transition(
        order.status,
        OrderStatus::ReleaseRequested,
        &[OrderStatus::InProgress],
    )?;
    ensure_idle(store, &order).await?;
    let steps = if escrow.kind == "multi-release" {
        let mut s = Vec::new();
        for (i, m) in open_milestones(&order) {
            if m.status == "PENDING" {
                s.push(Step::new(Action::ChangeMilestoneStatus, Party::Seller).at(i));
            }
            if matches!(m.status.as_str(), "PENDING" | "COMPLETED") {
                s.push(Step::new(Action::ApproveMilestone, Party::Buyer).at(i));
            }
            s.push(Step::new(Action::ReleaseMilestoneFunds, Party::Buyer).at(i));
        }
        s
    } else {
        vec![
            Step::new(Action::ChangeMilestoneStatus, Party::Seller).at(0),
            Step::new(Action::ApproveMilestone, Party::Buyer).at(0),
            Step::new(Action::ReleaseFunds, Party::Buyer),
        ]
    };
    start_resolution(
        store,
        ctx,
        &order,
        "RELEASE",
        OrderStatus::ReleaseRequested,
        steps,
        if auto {
            json!({ "autoRelease": true })
        } else {
            json!({})
        },
        "order.release_requested",
    )
    .await
}

/// `POST /orders/{id}/resolution/refund {reason}`: disputes the escrow (buyer) and
/// resolves 100 % to the buyer (platform); the buyer is credited what arrived.
/// `IN_PROGRESS → REFUND_REQUESTED → … → CLOSED`. Emits `order.refund_requested`.
pub async fn refund(store: &Store, ctx: &Context, order_id: &str, reason: &str) -> Result<Saga> {
    if reason.trim().is_empty() || reason.chars().count() > 500 {
        return Err(Error::validation("reason", "must be 1 to 500 characters"));
    }
    let order = orders::get(store, order_id).await?;
    let escrow = funded_escrow(store, &order).await?;
    transition(
        order.status,
        OrderStatus::RefundRequested,
        &[OrderStatus::InProgress],
    )?;
    ensure_idle(store, &order).await?;
    let all_buyer = vec![Share {
        party: Party::Buyer,
        amount: None,
    }];
    let steps = if escrow.kind == "multi-release" {
        let mut s = Vec::new();
        for (i, m) in open_milestones(&order) {
            if m.status != "DISPUTED" {
                s.push(Step::new(Action::DisputeMilestone, Party::Buyer).at(i));
            }
            s.push(
                Step::new(Action::ResolveMilestoneDispute, Party::Platform)
                    .at(i)
                    .shares(all_buyer.clone()),
            );
        }
        s
    } else {
        vec![
            Step::new(Action::DisputeEscrow, Party::Buyer),
            Step::new(Action::ResolveDispute, Party::Platform).shares(all_buyer),
        ]
    };
    start_resolution(
        store,
        ctx,
        &order,
        "REFUND",
        OrderStatus::RefundRequested,
        steps,
        json!({ "reason": reason }),
        "order.refund_requested",
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn start_resolution(
    store: &Store,
    ctx: &Context,
    order: &Order,
    kind: &str,
    to: OrderStatus,
    steps: Vec<Step>,
    params: Value,
    event: &str,
) -> Result<Saga> {
    Parties::load(store, order).await?;
    let saga_id = new_id(IdKind::Saga);
    let mut db = store.begin_for(ctx).await?;
    claim(
        &mut db,
        order,
        &saga_id,
        Some(to),
        &[OrderStatus::InProgress],
    )
    .await?;
    if params["autoRelease"] == json!(true) {
        // Exactly once: the schedule is claimed with the order, or nothing happens.
        let claimed = sqlx::query(
            "UPDATE orders SET auto_release_status = 'RELEASING' \
             WHERE id = $1 AND auto_release_status = 'SCHEDULED' AND auto_release_at <= $2",
        )
        .bind(&order.id)
        .bind(crate::clock::now())
        .execute(db.conn())
        .await?;
        if claimed.rows_affected() == 0 {
            return Err(Error::new(
                ErrorCode::InvalidStateTransition,
                "The automatic release of this order is not due (claimed, stopped or ended)",
            ));
        }
    }
    sagas::insert(
        &mut db,
        &saga_id,
        kind,
        &order.id,
        None,
        &Plan {
            steps,
            params: params.clone(),
        },
    )
    .await?;
    let data = json!({ "orderId": order.id, "requestedBy": ctx.actor.id, "requestedAt": crate::clock::now(), "sagaId": saga_id, "reason": params.get("reason") });
    db.audit(
        ctx.audit(event, "order", &order.id)
            .before(json!({ "status": order.status }))
            .after(&data),
    );
    db.emit(order_event(event, &order.id, data));
    db.commit().await?;
    sagas::get(store, &saga_id).await
}

/// Plans the on-chain dispute of an order (`openedBy` BUYER or SELLER signs).
pub fn dispute_steps(order: &Order, escrow: &Escrow, opened_by: Party) -> Vec<Step> {
    if escrow.kind == "multi-release" {
        open_milestones(order)
            .into_iter()
            .filter(|(_, m)| m.status != "DISPUTED")
            .map(|(i, _)| Step::new(Action::DisputeMilestone, opened_by).at(i))
            .collect()
    } else {
        vec![Step::new(Action::DisputeEscrow, opened_by)]
    }
}

/// Plans a dispute resolution: `release` to the seller and the rest to the buyer
/// (gross, base units). Single-release: one `resolve_dispute` over the balance;
/// multi-release: per disputed milestone, the seller's share allocated to milestones
/// in order.
pub fn resolution_steps(order: &Order, escrow: &Escrow, release: i64, refund: i64) -> Vec<Step> {
    let share = |party, amount: i64| Share {
        party,
        amount: Some(amount),
    };
    if escrow.kind != "multi-release" {
        let shares = match (release, refund) {
            (0, _) => vec![Share {
                party: Party::Buyer,
                amount: None,
            }],
            (_, 0) => vec![Share {
                party: Party::Seller,
                amount: None,
            }],
            (r, f) => vec![share(Party::Seller, r), share(Party::Buyer, f)],
        };
        return vec![Step::new(Action::ResolveDispute, Party::Platform).shares(shares)];
    }
    let mut left = release;
    let mut steps = Vec::new();
    for (i, m) in open_milestones(order) {
        let amount = m.amount.base_units();
        let to_seller = left.min(amount).max(0);
        left -= to_seller;
        let mut shares = Vec::new();
        if to_seller > 0 {
            shares.push(share(Party::Seller, to_seller));
        }
        if amount - to_seller > 0 {
            shares.push(share(Party::Buyer, amount - to_seller));
        }
        steps.push(
            Step::new(Action::ResolveMilestoneDispute, Party::Platform)
                .at(i)
                .shares(shares),
        );
    }
    steps
}

/// Starts a dispute saga (from [`crate::services::disputes::open`]): the order stays
/// `IN_PROGRESS` until the escrow is disputed on chain, then becomes `DISPUTED`.
pub async fn start_dispute(
    db: &mut Tx,
    order: &Order,
    saga_id: &str,
    dispute_id: &str,
    steps: Vec<Step>,
) -> Result<()> {
    claim(db, order, saga_id, None, &[OrderStatus::InProgress]).await?;
    sagas::insert(
        db,
        saga_id,
        "DISPUTE",
        &order.id,
        Some(dispute_id),
        &Plan {
            steps,
            params: json!({}),
        },
    )
    .await
}

/// Starts a resolution saga (from [`crate::services::disputes::resolve`]).
pub async fn start_resolve(
    db: &mut Tx,
    order: &Order,
    saga_id: &str,
    dispute_id: &str,
    steps: Vec<Step>,
    params: Value,
) -> Result<()> {
    claim(db, order, saga_id, None, &[OrderStatus::Disputed]).await?;
    sagas::insert(
        db,
        saga_id,
        "RESOLVE",
        &order.id,
        Some(dispute_id),
        &Plan { steps, params },
    )
    .await
}

/// Milestone operations of multi-release orders: `complete` (seller marks it done),
/// `approve` (buyer), `release` (buyer; pays that milestone). Errors: 404
/// `MILESTONE_NOT_FOUND`, 409 when the milestone or order is in the wrong state.
pub async fn milestone(
    store: &Store,
    ctx: &Context,
    order_id: &str,
    milestone_ref: &str,
    op: &str,
) -> Result<Saga> {
    let order = orders::get(store, order_id).await?;
    let Some((index, m)) = order
        .milestones
        .iter()
        .enumerate()
        .find(|(_, m)| m.milestone_ref == milestone_ref)
    else {
        return Err(Error::new(
            ErrorCode::MilestoneNotFound,
            format!("Order {order_id} has no milestone {milestone_ref}"),
        ));
    };
    let index = u32::try_from(index).unwrap_or(u32::MAX);
    let escrow = funded_escrow(store, &order).await?;
    let (kind, step, needs) = match op {
        "complete" => (
            "MILESTONE_COMPLETE",
            Step::new(Action::ChangeMilestoneStatus, Party::Seller),
            "PENDING",
        ),
        "approve" => (
            "MILESTONE_APPROVE",
            Step::new(Action::ApproveMilestone, Party::Buyer),
            "COMPLETED",
        ),
        _ => (
            "MILESTONE_RELEASE",
            Step::new(Action::ReleaseMilestoneFunds, Party::Buyer),
            "APPROVED",
        ),
    };
    if escrow.kind != "multi-release" && op == "release" {
        return Err(Error::new(
            ErrorCode::InvalidRequest,
            "Single-release escrows release as a whole: use /resolution/release",
        ));
    }
    if m.status != needs {
        return Err(Error::new(
            ErrorCode::InvalidStateTransition,
            format!(
                "Milestone {milestone_ref} is {} and must be {needs}",
                m.status
            ),
        )
        .with_details(json!({ "currentState": m.status, "allowedStates": [needs] })));
    }
    ensure_idle(store, &order).await?;
    Parties::load(store, &order).await?;
    let saga_id = new_id(IdKind::Saga);
    let mut db = store.begin_for(ctx).await?;
    claim(&mut db, &order, &saga_id, None, &[OrderStatus::InProgress]).await?;
    sagas::insert(
        &mut db,
        &saga_id,
        kind,
        order_id,
        None,
        &Plan {
            steps: vec![step.at(index)],
            params: json!({ "milestoneRef": milestone_ref }),
        },
    )
    .await?;
    db.audit(
        ctx.audit(&format!("milestone.{op}_requested"), "order", order_id)
            .after(json!({ "milestoneRef": milestone_ref, "sagaId": saga_id })),
    );
    db.commit().await?;
    sagas::get(store, &saga_id).await
}

// ---------- the engine ----------

enum StepError {
    /// Try again later (provider down, rate limit, expired envelope).
    Transient(Error),
    /// Needs a change: compensate (first step) or park.
    Definitive(Error),
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        if tw::is_transient(&e) || e.code == ErrorCode::Internal {
            StepError::Transient(e)
        } else {
            StepError::Definitive(e)
        }
    }
}

impl From<sqlx::Error> for StepError {
    fn from(e: sqlx::Error) -> Self {
        StepError::Transient(e.into())
    }
}

/// Runs a saga until it ends or must wait (transient failure), holding its lease.
pub async fn run(ec: &EscrowContext, store: &Store, saga_id: &str) -> Result<()> {
    if !sagas::lease(store, saga_id, false, ec.settings.lease_secs).await? {
        return Ok(());
    }
    let result = run_leased(ec, store, saga_id).await;
    sagas::unlease(store, saga_id).await?;
    result
}

async fn run_leased(ec: &EscrowContext, store: &Store, saga_id: &str) -> Result<()> {
    loop {
        let saga = sagas::get(store, saga_id).await?;
        if saga.status != "RUNNING" {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "saga.step",
            saga_id = %saga.id,
            operation = %saga.kind,
            step = saga.step
        );
        let outcome = execute_step(ec, store, &saga).instrument(span).await;
        crate::metrics::saga_step(
            &saga.kind,
            match &outcome {
                Ok(()) => "ok",
                Err(StepError::Transient(_)) => "transient",
                Err(StepError::Definitive(_)) => "definitive",
            },
            started.elapsed(),
        );
        match outcome {
            Ok(()) => {
                sagas::lease(store, saga_id, true, ec.settings.lease_secs).await?;
            }
            Err(StepError::Transient(e)) => {
                tracing::warn!(saga_id, step = saga.step, error = %e, "saga step will be retried");
                sagas::retry_later(store, &saga, &e, ec.settings.max_attempts).await?;
                return Ok(());
            }
            Err(StepError::Definitive(e)) => {
                tracing::warn!(saga_id, step = saga.step, error = %e, "saga step failed");
                if saga.step == 0 {
                    compensate(store, &saga, &e).await?;
                } else {
                    sagas::park(store, &saga, &e).await?;
                }
                return Ok(());
            }
        }
    }
}

/// Spawns the saga's execution and waits for it up to the configured time.
pub async fn drive(ec: Arc<EscrowContext>, store: Store, saga_id: String) -> Result<Saga> {
    let (e2, s2, id2) = (ec.clone(), store.clone(), saga_id.clone());
    // The run belongs to the request that started it: its spans (steps, provider
    // calls) are children of the request's span, so one trace shows the whole saga.
    tokio::spawn(
        async move {
            if let Err(e) = run(&e2, &s2, &id2).await {
                tracing::warn!(saga_id = %id2, error = %e, "saga run failed");
            }
        }
        .in_current_span(),
    );
    sagas::wait(&store, &saga_id, ec.settings.wait).await
}

/// Runs every due saga (the resume worker); returns how many it looked at.
pub async fn resume_due(ec: &Arc<EscrowContext>, store: &Store) -> Result<usize> {
    use futures_util::StreamExt;
    let ids = sagas::due(store, 20).await?;
    let n = ids.len();
    futures_util::stream::iter(ids)
        .for_each_concurrent(4, |id| async move {
            if let Err(e) = run(ec, store, &id).await {
                tracing::warn!(saga_id = %id, error = %e, "saga resume failed");
            }
        })
        .await;
    Ok(n)
}

/// The one milestone of a single-release escrow (its description).
const SINGLE_MILESTONE: &str = "Delivery of the order";

/// A built request: TW path and body, and what its transaction must be.
struct Call {
    path: String,
    body: Value,
    expected: Expected,
}

fn percent(bps: u32) -> Value {
    serde_json::from_str(&format!("{}", f64::from(bps) / 100.0)).unwrap_or(json!(0))
}

async fn escrow_balance(ec: &EscrowContext, contract: &str) -> Result<i64> {
    let b = ec.tw.balances(&[contract.to_string()]).await?;
    b.into_iter()
        .find(|(c, _)| c == contract)
        .map(|(_, a)| a.base_units())
        .ok_or_else(|| {
            Error::new(
                ErrorCode::ProviderError,
                "Trustless Work returned no balance for the escrow",
            )
        })
}

async fn call_for(
    ec: &EscrowContext,
    order: &Order,
    escrow: &Escrow,
    parties: &Parties,
    step: &Step,
) -> Result<Call> {
    let buyer = parties.address(Party::Buyer).to_string();
    let seller = parties.address(Party::Seller).to_string();
    let platform = parties.address(Party::Platform).to_string();
    let signer = parties.address(step.signer).to_string();
    let multi = escrow.kind == "multi-release";
    let kind = escrow.kind.as_str();
    let contract = escrow.contract_id.clone();
    let need_contract = || {
        contract
            .clone()
            .ok_or_else(|| Error::internal("escrow has no contract id yet"))
    };
    let idx = step.milestone.unwrap_or(0);
    let mut expected = Expected {
        source: signer.clone(),
        contract: contract.clone(),
        functions: Vec::new(),
        args: Vec::new(),
        max_fee: ec.settings.max_fee_stroops,
        max_validity_secs: 900,
    };
    let mut role_fields = vec![
        ("approver", Arg::Address(buyer.clone())),
        ("service_provider", Arg::Address(seller.clone())),
        ("platform_address", Arg::Address(platform.clone())),
        ("release_signer", Arg::Address(buyer.clone())),
        ("dispute_resolver", Arg::Address(platform.clone())),
    ];
    if !multi {
        role_fields.push(("receiver", Arg::Address(seller.clone())));
    }
    let mut escrow_fields = vec![
        ("engagement_id", Arg::Str(order.id.clone())),
        (
            "platform_fee",
            Arg::Int(i128::from(escrow.platform_fee_bps)),
        ),
        ("roles", Arg::Fields(role_fields.clone())),
        (
            "trustline",
            Arg::Fields(vec![(
                "address",
                Arg::Address(ec.sc.usdc.contract_id(&ec.sc.network)),
            )]),
        ),
    ];
    // Every field of the escrow OfferHub deploys is checked, not only the money ones:
    // text as sent, flags false and milestones not approved (the contract refuses
    // other flags at deploy — §B.2 — but a transaction is never signed on trust), and
    // a milestone status/evidence the deployer left unset.
    let title = order.title.clone();
    let description = order
        .description
        .clone()
        .unwrap_or_else(|| order.title.clone());
    escrow_fields.push(("title", Arg::Str(title)));
    escrow_fields.push(("description", Arg::Str(description)));
    let unset_status = || Arg::StrIn(vec!["", "pending", "Pending", "PENDING"]);
    let flags_false = |approved: bool| {
        let mut f = vec![
            ("disputed", Arg::Bool(false)),
            ("released", Arg::Bool(false)),
            ("resolved", Arg::Bool(false)),
        ];
        if approved {
            f.push(("approved", Arg::Bool(false)));
        }
        Arg::Fields(f)
    };
    if multi {
        escrow_fields.push((
            "milestones",
            Arg::Items(
                order
                    .milestones
                    .iter()
                    .map(|m| {
                        Arg::Fields(vec![
                            ("amount", Arg::Int(i128::from(m.amount.base_units()))),
                            ("receiver", Arg::Address(seller.clone())),
                            ("description", Arg::Str(m.title.clone())),
                            ("status", unset_status()),
                            ("evidence", Arg::Str(String::new())),
                            ("flags", flags_false(true)),
                        ])
                    })
                    .collect(),
            ),
        ));
    } else {
        escrow_fields.push(("amount", Arg::Int(i128::from(order.amount.base_units()))));
        escrow_fields.push(("flags", flags_false(false)));
        escrow_fields.push((
            "milestones",
            Arg::Items(vec![Arg::Fields(vec![
                ("description", Arg::Str(SINGLE_MILESTONE.into())),
                ("status", unset_status()),
                ("evidence", Arg::Str(String::new())),
                ("approved", Arg::Bool(false)),
            ])]),
        ));
    }
    let distributions = |shares: &[Share], total: i64| -> Vec<(String, i64)> {
        shares
            .iter()
            .map(|s| {
                (
                    parties.address(s.party).to_string(),
                    s.amount.unwrap_or(total),
                )
            })
            .collect()
    };
    let (path, body) = match step.action {
        Action::Deploy => {
            expected.contract = ec.settings.factory_contract.clone();
            expected.functions = if multi {
                DEPLOY_MULTI.to_vec()
            } else {
                DEPLOY_SINGLE.to_vec()
            };
            expected.args = vec![
                Arg::Address(platform.clone()),
                Arg::Fields(escrow_fields),
                Arg::Any,
            ];
            let mut roles = json!({
                "approver": buyer, "serviceProvider": seller, "platformAddress": platform,
                "releaseSigner": buyer, "disputeResolver": platform,
            });
            let mut body = json!({
                "signer": platform,
                "engagementId": order.id,
                "title": order.title,
                "description": order.description.clone().unwrap_or_else(|| order.title.clone()),
                "platformFee": percent(escrow.platform_fee_bps),
                "trustline": { "address": ec.sc.usdc_issuer, "symbol": ec.sc.usdc.code },
            });
            if multi {
                body["milestones"] = Value::Array(
                    order
                        .milestones
                        .iter()
                        .map(|m| json!({ "description": m.title, "amount": tw::human(m.amount), "receiver": seller }))
                        .collect(),
                );
            } else {
                roles["receiver"] = json!(seller);
                body["amount"] = tw::human(order.amount);
                body["milestones"] = json!([{ "description": SINGLE_MILESTONE }]);
            }
            body["roles"] = roles;
            (format!("/deployer/{kind}"), body)
        }
        Action::Fund => {
            let c = need_contract()?;
            expected.functions = vec!["fund_escrow"];
            expected.args = vec![
                Arg::Address(buyer.clone()),
                Arg::Fields(escrow_fields),
                Arg::Int(i128::from(escrow.amount.base_units())),
            ];
            (
                format!("/escrow/{kind}/fund-escrow"),
                json!({ "contractId": c, "signer": buyer, "amount": tw::human(escrow.amount) }),
            )
        }
        Action::ChangeMilestoneStatus => {
            let c = need_contract()?;
            expected.functions = vec!["change_milestone_status"];
            expected.args = vec![
                Arg::Int(i128::from(idx)),
                Arg::Str(COMPLETED_STATUS.into()),
                // No evidence is sent: `None` (or an empty string).
                Arg::StrIn(vec![""]),
                Arg::Address(seller.clone()),
            ];
            (
                format!("/escrow/{kind}/change-milestone-status"),
                json!({ "contractId": c, "milestoneIndex": idx.to_string(), "newStatus": COMPLETED_STATUS, "serviceProvider": seller }),
            )
        }
        Action::ApproveMilestone => {
            let c = need_contract()?;
            expected.functions = vec!["approve_milestone"];
            expected.args = vec![Arg::Int(i128::from(idx)), Arg::Address(buyer.clone())];
            (
                format!("/escrow/{kind}/approve-milestone"),
                json!({ "contractId": c, "milestoneIndex": idx.to_string(), "approver": buyer }),
            )
        }
        Action::ReleaseFunds => {
            let c = need_contract()?;
            expected.functions = vec!["release_funds"];
            expected.args = vec![Arg::Address(buyer.clone())];
            (
                "/escrow/single-release/release-funds".into(),
                json!({ "contractId": c, "releaseSigner": buyer }),
            )
        }
        Action::DisputeEscrow => {
            let c = need_contract()?;
            expected.functions = vec!["dispute_escrow"];
            expected.args = vec![Arg::Address(signer.clone())];
            (
                "/escrow/single-release/dispute-escrow".into(),
                json!({ "contractId": c, "signer": signer }),
            )
        }
        Action::ResolveDispute => {
            let c = need_contract()?;
            let balance = escrow_balance(ec, &c).await?;
            let d = distributions(&step.shares, balance);
            let sum: i64 = d.iter().map(|(_, a)| a).sum();
            if sum != balance {
                return Err(Error::new(
                    ErrorCode::EscrowContractError,
                    format!(
                        "The shares ({}) do not equal the escrow's on-chain balance ({})",
                        Amount::from_base_units(sum),
                        Amount::from_base_units(balance)
                    ),
                )
                .with_details(json!({ "contractError": "DistributionsMustEqualEscrowBalance" })));
            }
            expected.functions = vec!["resolve_dispute"];
            expected.args = vec![
                Arg::Address(platform.clone()),
                Arg::Distribution(d.iter().map(|(a, n)| (a.clone(), i128::from(*n))).collect()),
            ];
            (
                "/escrow/single-release/resolve-dispute".into(),
                json!({ "contractId": c, "disputeResolver": platform, "distributions": d.iter().map(|(a, n)| json!({ "address": a, "amount": tw::human(Amount::from_base_units(*n)) })).collect::<Vec<_>>() }),
            )
        }
        Action::ReleaseMilestoneFunds => {
            let c = need_contract()?;
            expected.functions = vec!["release_milestone_funds"];
            expected.args = vec![Arg::Address(buyer.clone()), Arg::Int(i128::from(idx))];
            (
                "/escrow/multi-release/release-milestone-funds".into(),
                json!({ "contractId": c, "releaseSigner": buyer, "milestoneIndex": idx.to_string() }),
            )
        }
        Action::DisputeMilestone => {
            let c = need_contract()?;
            expected.functions = vec!["dispute_milestone"];
            expected.args = vec![Arg::Address(signer.clone()), Arg::Int(i128::from(idx))];
            (
                "/escrow/multi-release/dispute-milestone".into(),
                json!({ "contractId": c, "signer": signer, "milestoneIndex": idx.to_string() }),
            )
        }
        Action::ResolveMilestoneDispute => {
            let c = need_contract()?;
            let amount = order
                .milestones
                .get(usize::try_from(idx).unwrap_or(usize::MAX))
                .map(|m| m.amount.base_units())
                .ok_or_else(|| Error::internal("milestone index out of range"))?;
            let d = distributions(&step.shares, amount);
            expected.functions = vec!["resolve_milestone_dispute"];
            expected.args = vec![
                Arg::Address(platform.clone()),
                Arg::Int(i128::from(idx)),
                Arg::Distribution(d.iter().map(|(a, n)| (a.clone(), i128::from(*n))).collect()),
            ];
            (
                "/escrow/multi-release/resolve-milestone-dispute".into(),
                json!({ "contractId": c, "disputeResolver": platform, "milestoneIndex": idx.to_string(), "distributions": d.iter().map(|(a, n)| json!({ "address": a, "amount": tw::human(Amount::from_base_units(*n)) })).collect::<Vec<_>>() }),
            )
        }
    };
    Ok(Call {
        path,
        body,
        expected,
    })
}

/// Audits a refused envelope (its own transaction: the refusal must be on record even
/// though nothing else changes).
async fn audit_refusal(store: &Store, saga: &Saga, step: &Step, e: &Error) -> Result<()> {
    let mut db = store.begin().await?;
    db.audit(
        Context::system()
            .audit("escrow.xdr_refused", "saga", &saga.id)
            .after(json!({ "orderId": saga.order_id, "action": step.action, "step": saga.step, "error": sagas::error_json(e) })),
    );
    db.commit().await
}

fn unix_now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}

async fn execute_step(
    ec: &EscrowContext,
    store: &Store,
    saga: &Saga,
) -> std::result::Result<(), StepError> {
    let idx = usize::try_from(saga.step).map_err(|_| Error::internal("negative step"))?;
    let Some(step) = saga.steps.get(idx).cloned() else {
        return Err(StepError::Definitive(Error::internal(
            "saga has no such step",
        )));
    };
    let order = orders::get(store, &saga.order_id).await?;
    let escrow = for_order(store.reader(), &order.id)
        .await?
        .ok_or_else(|| Error::internal("saga without escrow"))?;
    let parties = Parties::load(store, &order).await?;
    let signer = parties.wallet(step.signer).clone();
    let _guard =
        crate::services::wallets::submission_lock(store, &ec.sc.horizon, &signer.public_key)
            .await?;
    // Re-read under the signer's lock: another executor may have moved on.
    let saga = sagas::get(store, &saga.id).await?;
    if saga.status != "RUNNING" || saga.step != i64::try_from(idx).unwrap_or(-1) {
        return Ok(());
    }
    let mut contract_id: Option<String> = None;
    let (envelope, outcome) = match &saga.envelope {
        Some(xdr) => {
            let env = tx::signed_from_xdr(xdr, &ec.sc.network)?;
            let outcome = ec.sc.horizon.submit_settled(&env).await?;
            if let SubmitOutcome::Applied { hash, .. } = &outcome
                && let Err(e) = ec.tw.update_from_tx_hash(hash).await
            {
                tracing::info!(error = %e, "TW indexer update failed (reads may lag)");
            }
            (env, outcome)
        }
        None => {
            let call = call_for(ec, &order, &escrow, &parties, &step).await?;
            let unsigned = ec.tw.build(&call.path, &call.body).await?;
            if let Err(e) = verify::verify(&unsigned, &call.expected, unix_now()) {
                audit_refusal(store, &saga, &step, &e).await?;
                return Err(StepError::Definitive(e));
            }
            let kp = wallets::keypair(&ec.sc, &signer)?;
            let signed = tx::add_signature(&unsigned, &ec.sc.network, &kp)?;
            if !sagas::store_envelope(store, &saga.id, saga.step, &signed.xdr, &signed.hash).await?
            {
                return Ok(());
            }
            // Test hook: the crash tests stop here (feature `failpoints`).
            #[cfg(feature = "failpoints")]
            crate::failpoints::stop_here("after_store").await;
            let outcome = match ec.tw.send_transaction(&signed.xdr).await? {
                SendOutcome::Submitted { contract_id: c } => {
                    contract_id = c;
                    ec.sc.horizon.submit_settled(&signed).await?
                }
                SendOutcome::Unknown { reason } => {
                    tracing::warn!(hash = %signed.hash, %reason, "send-transaction outcome unknown; settling by hash");
                    ec.sc.horizon.submit_settled(&signed).await?
                }
                SendOutcome::Failed { message } => {
                    match ec.sc.horizon.transaction(&signed.hash).await? {
                        Some((true, ledger)) => SubmitOutcome::Applied {
                            hash: signed.hash.clone(),
                            ledger,
                        },
                        Some((false, _)) => SubmitOutcome::Failed {
                            hash: signed.hash.clone(),
                            tx_code: "tx_failed".into(),
                            op_codes: vec![message],
                        },
                        // Not on the network: Trustless Work's message carries Horizon's
                        // result code. A sequence race (another transaction of the
                        // account landed first) or an expired envelope is rebuilt,
                        // never surfaced; anything else was refused.
                        None => SubmitOutcome::Failed {
                            hash: signed.hash.clone(),
                            tx_code: ["tx_bad_seq", "tx_too_late"]
                                .into_iter()
                                .find(|c| message.contains(c))
                                .unwrap_or("tx_refused")
                                .into(),
                            op_codes: vec![message],
                        },
                    }
                }
            };
            (signed, outcome)
        }
    };
    // Test hook: the crash tests stop here (feature `failpoints`).
    #[cfg(feature = "failpoints")]
    crate::failpoints::stop_here("after_submit").await;
    match outcome {
        SubmitOutcome::Applied { hash, .. } => {
            apply(
                ec,
                store,
                &saga,
                &step,
                &order,
                &escrow,
                &parties,
                &hash,
                contract_id,
            )
            .await
        }
        SubmitOutcome::Failed { tx_code, .. }
            if tx_code == "tx_too_late" || tx_code == "tx_bad_seq" =>
        {
            sagas::clear_envelope(store, &saga.id, &envelope.xdr).await?;
            Err(StepError::Transient(Error::new(
                ErrorCode::ProviderUnavailable,
                format!(
                    "the step's transaction can no longer land ({tx_code}); it will be rebuilt"
                ),
            )))
        }
        SubmitOutcome::Failed {
            tx_code, op_codes, ..
        } => {
            sagas::clear_envelope(store, &saga.id, &envelope.xdr).await?;
            let text = op_codes.join("; ");
            let e = match tw::contract_error(&text) {
                Some(variant) => Error::new(
                    ErrorCode::EscrowContractError,
                    format!("The escrow contract refused: {text}"),
                )
                .with_details(json!({ "contractError": variant, "transactionCode": tx_code })),
                None => Error::new(
                    ErrorCode::ProviderError,
                    format!("The transaction failed: {tx_code} {text}")
                        .trim()
                        .to_string(),
                )
                .with_details(json!({ "transactionCode": tx_code, "providerStatus": 400 })),
            };
            Err(StepError::Definitive(e))
        }
        SubmitOutcome::Unknown { reason, .. } => Err(StepError::Transient(Error::new(
            ErrorCode::ProviderTimeout,
            reason,
        ))),
    }
}

/// USDC that left `contract` in transaction `hash`: `(to, amount)` per transfer,
/// from Horizon's `asset_balance_changes`.
async fn payouts(ec: &EscrowContext, hash: &str, contract: &str) -> Result<Vec<(String, Amount)>> {
    let records = ec.sc.horizon.transaction_payments(hash).await?;
    if records.is_empty() {
        return Err(Error::new(
            ErrorCode::ProviderUnavailable,
            "Horizon does not list the transaction's payments yet",
        ));
    }
    let mut out = Vec::new();
    for r in &records {
        for c in r["asset_balance_changes"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let usdc = c["asset_code"].as_str() == Some(ec.sc.usdc.code.as_str())
                && c["asset_issuer"].as_str() == Some(ec.sc.usdc_issuer.as_str());
            if usdc
                && c["type"].as_str() == Some("transfer")
                && c["from"].as_str() == Some(contract)
                && let (Some(to), Some(a)) = (
                    c["to"].as_str(),
                    c["amount"]
                        .as_str()
                        .and_then(|a| Amount::parse_positive(a).ok()),
                )
            {
                out.push((to.to_string(), a));
            }
        }
    }
    Ok(out)
}

async fn set_escrow_status(
    db: &mut Tx,
    order_id: &str,
    status: &str,
    stamp: Option<&str>,
) -> Result<()> {
    let now = crate::clock::now();
    let sql = match stamp {
        Some("funded_at") => {
            "UPDATE escrows SET status = $1, updated_at = $2, funded_at = $2 WHERE order_id = $3"
        }
        Some(_) => {
            "UPDATE escrows SET status = $1, updated_at = $2, closed_at = $2 WHERE order_id = $3"
        }
        None => "UPDATE escrows SET status = $1, updated_at = $2 WHERE order_id = $3",
    };
    sqlx::query(sql)
        .bind(status)
        .bind(&now)
        .bind(order_id)
        .execute(db.conn())
        .await?;
    Ok(())
}

async fn set_milestone(
    db: &mut Tx,
    order: &Order,
    index: Option<u32>,
    status: &str,
) -> Result<Option<String>> {
    let Some(m) = index.and_then(|i| order.milestones.get(usize::try_from(i).ok()?)) else {
        return Ok(None);
    };
    sqlx::query("UPDATE milestones SET status = $1, updated_at = $2 WHERE order_id = $3 AND milestone_ref = $4")
        .bind(status)
        .bind(crate::clock::now())
        .bind(&order.id)
        .bind(&m.milestone_ref)
        .execute(db.conn())
        .await?;
    Ok(Some(m.milestone_ref.clone()))
}

/// Moves the order along `path` (each a compare-and-set on the previous state).
async fn walk(
    db: &mut Tx,
    saga_id: &str,
    order_id: &str,
    from: OrderStatus,
    path: &[OrderStatus],
) -> Result<()> {
    let mut current = from;
    for next in path {
        transition(current, *next, &[current])?;
        let r = sqlx::query(
            "UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
        )
        .bind(next.as_str())
        .bind(crate::clock::now())
        .bind(order_id)
        .bind(current.as_str())
        .execute(db.conn())
        .await?;
        if r.rows_affected() != 1 {
            return Err(Error::internal(format!(
                "order {order_id} left {} unexpectedly",
                current.as_str()
            )));
        }
        // Every state the order passes through is on record, e.g. `order.in_progress`.
        db.audit(
            Context::system()
                .audit(
                    &format!("order.{}", next.as_str().to_ascii_lowercase()),
                    "order",
                    order_id,
                )
                .before(json!({ "status": current.as_str() }))
                .after(json!({ "status": next.as_str(), "sagaId": saga_id })),
        );
        current = *next;
    }
    Ok(())
}

/// Applies a landed step: its effects, the step's advance and — after the last step —
/// the saga's completion, in one database transaction.
#[allow(clippy::too_many_arguments)]
async fn apply(
    ec: &EscrowContext,
    store: &Store,
    saga: &Saga,
    step: &Step,
    order: &Order,
    escrow: &Escrow,
    parties: &Parties,
    hash: &str,
    contract_id: Option<String>,
) -> std::result::Result<(), StepError> {
    let sys = Context::system();
    // Reads that need the network happen before the database transaction.
    let mut contract = escrow.contract_id.clone();
    if step.action == Action::Deploy && contract.is_none() {
        contract = match contract_id {
            Some(c) => Some(c),
            None => ec
                .tw
                .escrows_by_signer(parties.address(Party::Platform), &order.id)
                .await?
                .iter()
                .find(|e| e["engagementId"].as_str() == Some(order.id.as_str()))
                .and_then(|e| e["contractId"].as_str().map(str::to_string)),
        };
        if contract.is_none() {
            return Err(StepError::Transient(Error::new(
                ErrorCode::ProviderUnavailable,
                "the deployed contract id is not known yet",
            )));
        }
    }
    let pays = matches!(
        step.action,
        Action::ReleaseFunds
            | Action::ResolveDispute
            | Action::ReleaseMilestoneFunds
            | Action::ResolveMilestoneDispute
    );
    let transfers = if pays {
        payouts(ec, hash, contract.as_deref().unwrap_or_default()).await?
    } else {
        Vec::new()
    };
    let mut db = store.begin().await?;
    if !sagas::advance(&mut db, saga, hash).await? {
        return Ok(());
    }
    let oid = order.id.as_str();
    // Every landed step is on record, whatever its effects.
    db.audit(sys.audit("saga.step_applied", "saga", &saga.id).after(json!({
        "orderId": oid, "step": saga.step, "action": step.action, "milestone": step.milestone, "transactionHash": hash,
    })));
    match step.action {
        Action::Deploy => {
            sqlx::query("UPDATE escrows SET contract_id = $1, deploy_hash = $2, status = 'CREATED', updated_at = $3 WHERE order_id = $4")
                .bind(&contract)
                .bind(hash)
                .bind(crate::clock::now())
                .bind(oid)
                .execute(db.conn())
                .await?;
            let data = json!({ "orderId": oid, "escrowId": escrow.id, "contractId": contract, "transactionHash": hash, "kind": escrow.kind });
            db.audit(
                sys.audit("escrow.created", "escrow", &escrow.id)
                    .after(&data),
            );
            db.emit(NewEvent::new("escrow.created", "escrow", &escrow.id, data));
        }
        Action::Fund => {
            let hold = order
                .hold_id
                .clone()
                .ok_or_else(|| Error::internal("funded order without hold"))?;
            ledger::post_hold(
                &mut db,
                &hold,
                &[Posting::new(ledger::escrow_account(oid), escrow.amount)],
            )
            .await?;
            set_escrow_status(&mut db, oid, "FUNDED", Some("funded_at")).await?;
            let data = json!({ "orderId": oid, "escrowId": escrow.id, "contractId": contract, "amount": escrow.amount, "transactionHash": hash, "fundedAt": crate::clock::now() });
            db.audit(
                sys.audit("escrow.funded", "escrow", &escrow.id)
                    .after(&data),
            );
            db.emit(NewEvent::new("escrow.funded", "escrow", &escrow.id, data));
        }
        Action::ChangeMilestoneStatus => {
            let r = set_milestone(&mut db, order, step.milestone, "COMPLETED").await?;
            let data = json!({ "orderId": oid, "escrowId": escrow.id, "milestoneRef": r, "milestoneIndex": step.milestone, "transactionHash": hash, "completedAt": crate::clock::now() });
            db.emit(NewEvent::new(
                "escrow.milestone_completed",
                "order",
                oid,
                data,
            ));
        }
        Action::ApproveMilestone => {
            let r = set_milestone(&mut db, order, step.milestone, "APPROVED").await?;
            let data = json!({ "orderId": oid, "escrowId": escrow.id, "milestoneRef": r, "milestoneIndex": step.milestone, "transactionHash": hash });
            db.emit(NewEvent::new(
                "escrow.milestone_approved",
                "order",
                oid,
                data,
            ));
        }
        Action::DisputeEscrow | Action::DisputeMilestone => {
            set_milestone(&mut db, order, step.milestone, "DISPUTED").await?;
            set_escrow_status(&mut db, oid, "DISPUTED", None).await?;
        }
        Action::ReleaseFunds
        | Action::ResolveDispute
        | Action::ReleaseMilestoneFunds
        | Action::ResolveMilestoneDispute => {
            let status = if matches!(
                step.action,
                Action::ReleaseMilestoneFunds | Action::ReleaseFunds
            ) {
                "RELEASED"
            } else {
                "RESOLVED"
            };
            set_milestone(&mut db, order, step.milestone, status).await?;
            book_payouts(&mut db, order, escrow, parties, hash, &transfers).await?;
        }
    }
    let last = usize::try_from(saga.step + 1).unwrap_or(0) >= saga.steps.len();
    if last {
        complete(&mut db, saga, order, escrow).await?;
    }
    db.commit().await?;
    Ok(())
}

/// Credits what left the contract: seller/buyer wallets → their available balance,
/// the platform wallet → `fees:platform`, anyone else (Trustless Work's fee address) →
/// `fees:trustless`; the escrow account gives the total. Emits `balance.credited`.
async fn book_payouts(
    db: &mut Tx,
    order: &Order,
    escrow: &Escrow,
    parties: &Parties,
    hash: &str,
    transfers: &[(String, Amount)],
) -> Result<()> {
    let mut postings: Vec<Posting> = Vec::new();
    let mut total: i64 = 0;
    let mut credits: Vec<(String, Amount)> = Vec::new();
    for (to, amount) in transfers {
        total += amount.base_units();
        let account = if to == parties.address(Party::Seller) {
            credits.push((order.seller_id.clone(), *amount));
            ledger::available_account(&order.seller_id)
        } else if to == parties.address(Party::Buyer) {
            credits.push((order.buyer_id.clone(), *amount));
            ledger::available_account(&order.buyer_id)
        } else if to == parties.address(Party::Platform) {
            ledger::FEES_PLATFORM.to_string()
        } else {
            ledger::FEES_TRUSTLESS.to_string()
        };
        postings.push(Posting::new(account, *amount));
    }
    if total == 0 {
        return Ok(());
    }
    postings.push(Posting::new(
        ledger::escrow_account(&order.id),
        Amount::from_base_units(-total),
    ));
    let mut before = Vec::new();
    for (user, _) in &credits {
        before.push(ledger::balance(db.conn(), user).await?);
    }
    ledger::record(
        db,
        "escrow.payout",
        hash,
        &format!("payout of escrow {} (tx {hash})", escrow.id),
        &postings,
    )
    .await?;
    for ((user, amount), b) in credits.iter().zip(before) {
        let after = ledger::balance(db.conn(), user).await?;
        let source = if *user == order.seller_id {
            "escrow_release"
        } else {
            "escrow_refund"
        };
        let data = json!({
            "userId": user, "amount": amount, "currency": "USD", "source": source, "sourceId": order.id,
            "orderId": order.id, "transactionHash": hash,
            "previousAvailableBalance": b.available, "newAvailableBalance": after.available,
        });
        db.audit(
            Context::system()
                .audit("balance.credited", "user", user)
                .after(&data),
        );
        db.emit(NewEvent::new("balance.credited", "user", user, data));
    }
    Ok(())
}

/// The saga's last step landed: final states and events (same transaction).
async fn complete(db: &mut Tx, saga: &Saga, order: &Order, escrow: &Escrow) -> Result<()> {
    let sys = Context::system();
    let oid = order.id.as_str();
    let now = crate::clock::now();
    let closed = |outcome: &str| {
        order_event(
            "order.closed",
            oid,
            json!({ "orderId": oid, "finalStatus": "CLOSED", "outcome": outcome, "closedAt": now }),
        )
    };
    match saga.kind.as_str() {
        "ESCROW_DEPLOY" => {
            walk(
                db,
                &saga.id,
                oid,
                OrderStatus::EscrowCreating,
                &[OrderStatus::EscrowFunding],
            )
            .await?;
        }
        "ESCROW_FUND" => {
            walk(
                db,
                &saga.id,
                oid,
                OrderStatus::EscrowFunding,
                &[OrderStatus::InProgress],
            )
            .await?;
            let data = json!({ "orderId": oid, "escrowId": escrow.id, "trustlessContractId": escrow.contract_id, "amount": escrow.amount, "fundedAt": now });
            db.emit(order_event("order.escrow_funded", oid, data.clone()));
            db.emit(order_event(
                "order.in_progress",
                oid,
                json!({ "orderId": oid }),
            ));
            // A single-release order has no completion step of its own: its inspection
            // window runs from funding (see `services::lifecycle`).
            if escrow.kind != "multi-release" {
                crate::services::lifecycle::start_clock(db, oid).await?;
            }
        }
        "MILESTONE_COMPLETE" => {
            // The seller completed the last open milestone: the inspection window starts.
            let pending: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM milestones WHERE order_id = $1 AND status = 'PENDING'",
            )
            .bind(oid)
            .fetch_one(db.conn())
            .await?;
            if pending == 0 {
                crate::services::lifecycle::start_clock(db, oid).await?;
            }
        }
        "RELEASE" => {
            walk(
                db,
                &saga.id,
                oid,
                OrderStatus::ReleaseRequested,
                &[OrderStatus::Released, OrderStatus::Closed],
            )
            .await?;
            set_escrow_status(db, oid, "RELEASED", Some("closed_at")).await?;
            db.emit(order_event("order.released", oid, json!({ "orderId": oid, "sellerId": order.seller_id, "amount": order.amount, "currency": order.currency, "releasedAt": now })));
            db.emit(NewEvent::new(
                "escrow.released",
                "escrow",
                &escrow.id,
                json!({ "orderId": oid, "escrowId": escrow.id, "contractId": escrow.contract_id }),
            ));
            db.emit(closed("RELEASED"));
            if saga.params["autoRelease"] == json!(true) {
                let at: Option<String> =
                    sqlx::query_scalar("SELECT auto_release_at FROM orders WHERE id = $1")
                        .bind(oid)
                        .fetch_one(db.conn())
                        .await?;
                sqlx::query("UPDATE orders SET auto_release_status = 'RELEASED' WHERE id = $1 AND auto_release_status = 'RELEASING'")
                    .bind(oid)
                    .execute(db.conn())
                    .await?;
                let data = json!({ "orderId": oid, "sellerId": order.seller_id, "amount": order.amount, "currency": order.currency, "sagaId": saga.id, "autoReleaseAt": at, "releasedAt": now });
                db.audit(sys.audit("order.auto_released", "order", oid).after(&data));
                db.emit(order_event("order.auto_released", oid, data));
            }
        }
        "REFUND" => {
            walk(
                db,
                &saga.id,
                oid,
                OrderStatus::RefundRequested,
                &[OrderStatus::Refunded, OrderStatus::Closed],
            )
            .await?;
            set_escrow_status(db, oid, "REFUNDED", Some("closed_at")).await?;
            db.emit(order_event("order.refunded", oid, json!({ "orderId": oid, "buyerId": order.buyer_id, "amount": order.amount, "currency": order.currency, "reason": saga.params.get("reason"), "refundedAt": now })));
            db.emit(NewEvent::new(
                "escrow.refunded",
                "escrow",
                &escrow.id,
                json!({ "orderId": oid, "escrowId": escrow.id, "contractId": escrow.contract_id }),
            ));
            db.emit(closed("REFUNDED"));
        }
        "DISPUTE" => {
            walk(
                db,
                &saga.id,
                oid,
                OrderStatus::InProgress,
                &[OrderStatus::Disputed],
            )
            .await?;
            if let Some(d) = &saga.dispute_id {
                crate::services::disputes::opened(db, d, oid).await?;
            }
        }
        "RESOLVE" => {
            walk(
                db,
                &saga.id,
                oid,
                OrderStatus::Disputed,
                &[OrderStatus::Closed],
            )
            .await?;
            let decision = saga.params["decision"]
                .as_str()
                .unwrap_or("SPLIT")
                .to_string();
            let (escrow_status, outcome) = match decision.as_str() {
                "FULL_RELEASE" => ("RELEASED", "RELEASED"),
                "FULL_REFUND" => ("REFUNDED", "REFUNDED"),
                _ => ("RESOLVED", "SPLIT"),
            };
            set_escrow_status(db, oid, escrow_status, Some("closed_at")).await?;
            if let Some(d) = &saga.dispute_id {
                crate::services::disputes::resolved(db, d, oid, &saga.params).await?;
            }
            db.emit(closed(outcome));
        }
        "MILESTONE_RELEASE" => {
            let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM milestones WHERE order_id = $1 AND status NOT IN ('RELEASED', 'RESOLVED')")
                .bind(oid)
                .fetch_one(db.conn())
                .await?;
            if left == 0 {
                walk(
                    db,
                    &saga.id,
                    oid,
                    OrderStatus::InProgress,
                    &[
                        OrderStatus::ReleaseRequested,
                        OrderStatus::Released,
                        OrderStatus::Closed,
                    ],
                )
                .await?;
                set_escrow_status(db, oid, "RELEASED", Some("closed_at")).await?;
                db.emit(order_event("order.released", oid, json!({ "orderId": oid, "sellerId": order.seller_id, "amount": order.amount, "currency": order.currency, "releasedAt": now })));
                db.emit(closed("RELEASED"));
            }
        }
        _ => {}
    }
    if matches!(
        saga.kind.as_str(),
        "RELEASE" | "REFUND" | "RESOLVE" | "MILESTONE_RELEASE"
    ) {
        let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
            .bind(oid)
            .fetch_one(db.conn())
            .await?;
        if status == OrderStatus::Closed.as_str() {
            // A clock that can no longer fire (released by hand, refunded, resolved).
            crate::services::lifecycle::cancel_clock(db, oid).await?;
        }
    }
    db.audit(
        sys.audit("saga.completed", "saga", &saga.id)
            .after(json!({ "kind": saga.kind, "orderId": oid, "steps": saga.steps.len() })),
    );
    sagas::finish(db, saga, "COMPLETED", None).await
}

/// A definitive failure before anything reached the chain: restore the order and end
/// the saga `COMPENSATED`. Emits `saga.compensated`.
async fn compensate(store: &Store, saga: &Saga, e: &Error) -> Result<()> {
    let mut db = store.begin().await?;
    let current = sagas::get_in(&mut db, &saga.id).await?;
    if current.status != "RUNNING" {
        return Ok(());
    }
    let oid = saga.order_id.as_str();
    let restore = |from: OrderStatus, to: OrderStatus| (from, to);
    let back = match saga.kind.as_str() {
        "ESCROW_DEPLOY" => {
            sqlx::query("DELETE FROM escrows WHERE order_id = $1 AND contract_id IS NULL")
                .bind(oid)
                .execute(db.conn())
                .await?;
            Some(restore(
                OrderStatus::EscrowCreating,
                OrderStatus::FundsReserved,
            ))
        }
        "ESCROW_FUND" => {
            set_escrow_status(&mut db, oid, "CREATED", None).await?;
            None
        }
        "RELEASE" => {
            if saga.params["autoRelease"] == json!(true) {
                // Not retried: the marketplace or an operator releases by hand.
                sqlx::query("UPDATE orders SET auto_release_status = 'FAILED' WHERE id = $1 AND auto_release_status = 'RELEASING'")
                    .bind(oid)
                    .execute(db.conn())
                    .await?;
            }
            Some(restore(
                OrderStatus::ReleaseRequested,
                OrderStatus::InProgress,
            ))
        }
        "REFUND" => Some(restore(
            OrderStatus::RefundRequested,
            OrderStatus::InProgress,
        )),
        "DISPUTE" | "RESOLVE" => {
            if let Some(d) = &saga.dispute_id {
                crate::services::disputes::revert(&mut db, d, &saga.kind, &saga.params).await?;
            }
            None
        }
        _ => None,
    };
    if let Some((from, to)) = back {
        walk(&mut db, &saga.id, oid, from, &[to]).await?;
    }
    let data = json!({ "sagaId": saga.id, "kind": saga.kind, "orderId": oid, "reason": sagas::error_json(e) });
    db.audit(
        Context::system()
            .audit("saga.compensated", "saga", &saga.id)
            .after(&data),
    );
    db.emit(NewEvent::new("saga.compensated", "saga", &saga.id, data));
    sagas::finish(&mut db, saga, "COMPENSATED", Some(e)).await?;
    db.commit().await
}

//! Orders: creation (optionally with milestones), reads, funds reservation and
//! cancellation. State changes are compare-and-set on `status` (see
//! [`crate::domain::order`]), in one transaction with their ledger entries, audit rows
//! and events, so two concurrent requests can never both advance an order.

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::Row;

use crate::context::Context;
use crate::domain::escrow::{EscrowStatus, MilestoneStatus};
use crate::domain::order::{AutoReleaseStatus, CloseOutcome, OrderStatus, transition};
use crate::error::{Error, ErrorCode, Result};
use crate::events::NewEvent;
use crate::ids::{self, IdKind, new_id};
use crate::ledger;
use crate::money::Amount;
use crate::pagination::{Page, PageRequest};
use crate::services::disputes::Dispute;
use crate::services::escrow::Escrow;
use crate::services::users::{self, User};
use crate::store::{Select, Store, Tx};

/// A milestone of an order (multi-release escrow).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Milestone {
    pub milestone_ref: String,
    pub title: String,
    pub amount: Amount,
    pub status: MilestoneStatus,
    pub created_at: String,
    pub updated_at: String,
}

/// An order with its milestones and typed escrow/dispute views (the API serialises it as `daemon::dto::orders::Order`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Order {
    pub id: String,
    pub client_order_ref: Option<String>,
    pub buyer_id: String,
    pub seller_id: String,
    pub amount: Amount,
    pub currency: String,
    pub title: String,
    pub description: Option<String>,
    pub metadata: Option<Value>,
    pub status: OrderStatus,
    pub hold_id: Option<String>,
    pub cancel_reason: Option<String>,
    pub milestones: Vec<Milestone>,
    /// The order's escrow once created (an `Escrow`); `null` before.
    pub escrow: Option<Escrow>,
    /// The latest dispute (a `Dispute`); `null` when none.
    pub dispute: Option<Dispute>,
    /// The inspection window counted from the seller's completion, as an ISO-8601
    /// duration (`P7D`); `null` when the order releases only on request.
    pub auto_release_after: Option<String>,
    /// When the order is released automatically: the absolute time given at creation, or
    /// once the clock started, its start + `autoReleaseAfter`; `null` before.
    pub auto_release_at: Option<String>,
    /// `PENDING` (clock not started), `SCHEDULED`, `STOPPED` (a dispute was opened),
    /// `RELEASING`, `RELEASED`, `FAILED` (the automatic release compensated), `CANCELED`
    /// (the order ended another way); `null` without automatic release.
    pub auto_release_status: Option<AutoReleaseStatus>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    seq: i64,
}

/// One milestone of [`NewOrder`].
#[derive(Clone, Debug)]
pub struct NewMilestone {
    pub milestone_ref: String,
    pub title: String,
    pub amount: Amount,
}

/// Input of [`create`]. `amount` in base units; `currency` `USD` or `USDC`.
#[derive(Clone, Debug)]
pub struct NewOrder {
    pub buyer_id: String,
    pub seller_id: String,
    pub amount: Amount,
    pub currency: String,
    pub title: String,
    pub description: Option<String>,
    pub client_order_ref: Option<String>,
    pub milestones: Vec<NewMilestone>,
    pub metadata: Option<Value>,
    /// Inspection window in seconds, counted from the seller's completion (see
    /// [`crate::services::lifecycle`]).
    pub auto_release_after_secs: Option<u64>,
    /// Absolute release time (RFC 3339, in the future); exclusive with
    /// `auto_release_after_secs`.
    pub auto_release_at: Option<String>,
}

/// Allowed range of order amounts (inclusive).
#[derive(Clone, Copy, Debug)]
pub struct OrderLimits {
    pub min: Amount,
    pub max: Amount,
}

const COLUMNS: &str = "seq, id, client_order_ref, buyer_id, seller_id, amount, currency, title, \
     description, metadata, status, hold_id, cancel_reason, auto_release_after_secs, \
     auto_release_at, auto_release_status, created_at, updated_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Order> {
    let metadata: Option<String> = r.try_get("metadata")?;
    Ok(Order {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        client_order_ref: r.try_get("client_order_ref")?,
        buyer_id: r.try_get("buyer_id")?,
        seller_id: r.try_get("seller_id")?,
        amount: Amount::from_base_units(r.try_get("amount")?),
        currency: r.try_get("currency")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
        status: r.try_get("status")?,
        hold_id: r.try_get("hold_id")?,
        cancel_reason: r.try_get("cancel_reason")?,
        milestones: Vec::new(),
        escrow: None,
        dispute: None,
        auto_release_after: r
            .try_get::<Option<i64>, _>("auto_release_after_secs")?
            .map(|s| crate::services::lifecycle::format_duration(u64::try_from(s).unwrap_or(0))),
        auto_release_at: r.try_get("auto_release_at")?,
        auto_release_status: r.try_get("auto_release_status")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn text(field: &str, v: &str, max: usize) -> Result<()> {
    if v.trim().is_empty() || v.chars().count() > max {
        return Err(Error::validation(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    Ok(())
}

fn validate(new: &NewOrder, limits: OrderLimits) -> Result<()> {
    if new.buyer_id == new.seller_id {
        return Err(Error::new(
            ErrorCode::InvalidRequest,
            "buyerId and sellerId must differ",
        )
        .with_details(json!({ "field": "sellerId" })));
    }
    if !matches!(new.currency.as_str(), "USD" | "USDC") {
        return Err(Error::validation("currency", "must be USD or USDC"));
    }
    if new.amount < limits.min || new.amount > limits.max {
        return Err(Error::amount(
            "amount",
            format!("must be between {} and {}", limits.min, limits.max),
        ));
    }
    text("title", &new.title, 200)?;
    if let Some(d) = &new.description
        && d.chars().count() > 5000
    {
        return Err(Error::validation(
            "description",
            "must be at most 5000 characters",
        ));
    }
    if let Some(r) = &new.client_order_ref {
        text("clientOrderRef", r, 255)?;
    }
    if let Some(m) = &new.metadata {
        if !m.is_object() {
            return Err(Error::validation("metadata", "must be a JSON object"));
        }
        if m.to_string().len() > 16 * 1024 {
            return Err(Error::validation("metadata", "must be at most 16 KiB"));
        }
    }
    if new.auto_release_after_secs.is_some() && new.auto_release_at.is_some() {
        return Err(Error::validation(
            "autoReleaseAt",
            "give autoReleaseAfter or autoReleaseAt, not both",
        ));
    }
    if let Some(at) = &new.auto_release_at
        && at.as_str() <= crate::clock::now().as_str()
    {
        return Err(Error::validation("autoReleaseAt", "must be in the future"));
    }
    if !new.milestones.is_empty() {
        if new.milestones.len() > 50 {
            return Err(Error::validation(
                "milestones",
                "must hold at most 50 milestones",
            ));
        }
        let mut sum: i128 = 0;
        for (i, m) in new.milestones.iter().enumerate() {
            text(
                &format!("milestones[{i}].milestoneRef"),
                &m.milestone_ref,
                100,
            )?;
            text(&format!("milestones[{i}].title"), &m.title, 200)?;
            if !m.amount.is_positive() {
                return Err(Error::amount(
                    &format!("milestones[{i}].amount"),
                    "must be greater than zero",
                ));
            }
            if new.milestones[..i]
                .iter()
                .any(|o| o.milestone_ref == m.milestone_ref)
            {
                return Err(Error::validation(
                    &format!("milestones[{i}].milestoneRef"),
                    "must be unique within the order",
                ));
            }
            sum += i128::from(m.amount.base_units());
        }
        if sum != i128::from(new.amount.base_units()) {
            return Err(Error::amount(
                "milestones",
                format!("amounts must sum to the order amount {}", new.amount),
            ));
        }
    }
    Ok(())
}

async fn party(store: &Store, id: &str, field: &str) -> Result<User> {
    users::get(store, id).await.map_err(|e| {
        if e.code == ErrorCode::UserNotFound {
            e.with_details(json!({ "field": field, "userId": id }))
        } else {
            e
        }
    })
}

/// Creates an order in `ORDER_CREATED`. Errors: 400 `VALIDATION_ERROR` /
/// `INVALID_AMOUNT_FORMAT` naming the field, 400 `INVALID_REQUEST` (buyer = seller),
/// 404 `USER_NOT_FOUND`, 422 `USER_SUSPENDED`, 409 `CLIENT_ORDER_REF_CONFLICT`.
/// Emits `order.created`.
pub async fn create(
    store: &Store,
    ctx: &Context,
    limits: OrderLimits,
    new: NewOrder,
) -> Result<Order> {
    validate(&new, limits)?;
    let buyer = party(store, &new.buyer_id, "buyerId").await?;
    let seller = party(store, &new.seller_id, "sellerId").await?;
    buyer.ensure_active()?;
    seller.ensure_active()?;
    let now = crate::clock::now();
    let id = new_id(IdKind::Order);
    let mut tx = store.begin_for(ctx).await?;
    let inserted = sqlx::query(
        "INSERT INTO orders (id, client_order_ref, buyer_id, seller_id, amount, currency, title, \
         description, metadata, status, auto_release_after_secs, auto_release_at, \
         auto_release_status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $14, $11, $12, $13, $10, $10) \
         ON CONFLICT (client_order_ref) DO NOTHING",
    )
    .bind(&id)
    .bind(&new.client_order_ref)
    .bind(&new.buyer_id)
    .bind(&new.seller_id)
    .bind(new.amount.base_units())
    .bind(&new.currency)
    .bind(&new.title)
    .bind(&new.description)
    .bind(new.metadata.as_ref().map(Value::to_string))
    .bind(&now)
    .bind(
        new.auto_release_after_secs
            .map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
    )
    .bind(&new.auto_release_at)
    .bind(
        (new.auto_release_after_secs.is_some() || new.auto_release_at.is_some())
            .then_some(AutoReleaseStatus::Pending),
    )
    .bind(OrderStatus::OrderCreated)
    .execute(tx.conn())
    .await?;
    if inserted.rows_affected() == 0 {
        tx.rollback().await?;
        let existing = sqlx::query("SELECT id FROM orders WHERE client_order_ref = $1")
            .bind(&new.client_order_ref)
            .fetch_optional(store.reader())
            .await?
            .map(|r| r.try_get::<String, _>("id"))
            .transpose()?;
        return Err(Error::new(
            ErrorCode::ClientOrderRefConflict,
            "An order with this clientOrderRef already exists",
        )
        .with_details(json!({ "field": "clientOrderRef", "orderId": existing })));
    }
    for m in &new.milestones {
        sqlx::query(
            "INSERT INTO milestones (order_id, milestone_ref, title, amount, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&id)
        .bind(&m.milestone_ref)
        .bind(&m.title)
        .bind(m.amount.base_units())
        .bind(MilestoneStatus::Pending)
        .bind(&now)
        .execute(tx.conn())
        .await?;
    }
    let order = load_in(&mut tx, &id).await?;
    tx.audit(ctx.audit("order.created", "order", &id).after(&order));
    tx.emit(NewEvent::new(
        "order.created",
        "order",
        &id,
        json!({
            "orderId": id,
            "buyerId": order.buyer_id,
            "sellerId": order.seller_id,
            "amount": order.amount,
            "currency": order.currency,
            "title": order.title,
            "clientOrderRef": order.client_order_ref,
            "milestones": order.milestones.len(),
            "autoReleaseAfter": order.auto_release_after,
            "autoReleaseAt": order.auto_release_at,
        }),
    ));
    tx.commit().await?;
    Ok(order)
}

fn not_found(id: &str) -> Error {
    Error::new(
        ErrorCode::OrderNotFound,
        format!("Order {id} does not exist"),
    )
    .with_details(json!({ "orderId": id }))
}

async fn milestones_of<'c, E>(executor: E, order_ids: &[&str]) -> Result<Vec<(String, Milestone)>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    if order_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = crate::store::placeholders(order_ids.len());
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT order_id, milestone_ref, title, amount, status, created_at, updated_at \
         FROM milestones WHERE order_id IN ({placeholders}) ORDER BY seq"
    )));
    for id in order_ids {
        q = q.bind(id.to_string());
    }
    let rows = q.fetch_all(executor).await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("order_id")?,
                Milestone {
                    milestone_ref: r.try_get("milestone_ref")?,
                    title: r.try_get("title")?,
                    amount: Amount::from_base_units(r.try_get("amount")?),
                    status: r.try_get("status")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                },
            ))
        })
        .collect()
}

async fn load_in(tx: &mut Tx, id: &str) -> Result<Order> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM orders WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(tx.conn())
    .await?;
    let mut order = row
        .as_ref()
        .map(from_row)
        .transpose()?
        .ok_or_else(|| not_found(id))?;
    order.milestones = milestones_of(tx.conn(), &[id])
        .await?
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    order.escrow = crate::services::escrow::for_order(tx.conn(), id).await?;
    order.dispute = crate::services::disputes::latest_of(tx.conn(), &[id])
        .await?
        .into_iter()
        .next();
    Ok(order)
}

/// One order with its milestones; 404 `ORDER_NOT_FOUND`.
pub async fn get(store: &Store, id: &str) -> Result<Order> {
    if !ids::is_valid(IdKind::Order, id) {
        return Err(not_found(id));
    }
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM orders WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(store.reader())
    .await?;
    let mut order = row
        .as_ref()
        .map(from_row)
        .transpose()?
        .ok_or_else(|| not_found(id))?;
    order.milestones = milestones_of(store.reader(), &[id])
        .await?
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    order.escrow = crate::services::escrow::for_order(store.reader(), id).await?;
    order.dispute = crate::services::disputes::latest_of(store.reader(), &[id])
        .await?
        .into_iter()
        .next();
    Ok(order)
}

/// Filters of [`list`], combined with AND.
#[derive(Clone, Debug, Default)]
pub struct OrderFilter {
    pub buyer_id: Option<String>,
    pub seller_id: Option<String>,
    pub status: Option<OrderStatus>,
}

/// Orders newest first; milestones of the whole page loaded in one query.
pub async fn list(store: &Store, filter: &OrderFilter, page: &PageRequest) -> Result<Page<Order>> {
    let mut q = Select::new(format!("SELECT {COLUMNS} FROM orders WHERE seq < "));
    q.push_bind(page.cursor_seq()?.unwrap_or(i64::MAX))
        .and_eq("buyer_id", filter.buyer_id.as_deref())
        .and_eq("seller_id", filter.seller_id.as_deref())
        .and_eq("status", filter.status)
        .push(format_args!(" ORDER BY seq DESC LIMIT {}", page.limit + 1));
    let rows = q.build()?.fetch_all(store.reader()).await?;
    let mut orders = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    let ids: Vec<&str> = orders.iter().map(|o| o.id.as_str()).collect();
    let ms = milestones_of(store.reader(), &ids).await?;
    let escrows = crate::services::escrow::escrows_of(store.reader(), &ids).await?;
    let disputes = crate::services::disputes::latest_of(store.reader(), &ids).await?;
    for o in &mut orders {
        o.escrow = escrows.iter().find(|e| e.order_id == o.id).cloned();
        o.dispute = disputes.iter().find(|d| d.order_id == o.id).cloned();
        o.milestones = ms
            .iter()
            .filter(|(oid, _)| *oid == o.id)
            .map(|(_, m)| m.clone())
            .collect();
    }
    Ok(Page::from_rows(orders, page.limit, |o| o.seq))
}

/// Compare-and-set of the order's status; on a lost race, 409 with the current state.
async fn cas_status(
    tx: &mut Tx,
    order: &Order,
    to: OrderStatus,
    sources: &[OrderStatus],
) -> Result<String> {
    transition(order.status, to, sources)?;
    let now = crate::clock::now();
    let done =
        sqlx::query("UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4 AND active_saga IS NULL")
            .bind(to.as_str())
            .bind(&now)
            .bind(&order.id)
            .bind(order.status.as_str())
            .execute(tx.conn())
            .await?;
    if done.rows_affected() == 0 {
        let current = load_in(tx, &order.id).await?;
        transition(current.status, to, sources)?;
        let active: Option<String> =
            sqlx::query_scalar("SELECT active_saga FROM orders WHERE id = $1")
                .bind(&order.id)
                .fetch_one(tx.conn())
                .await?;
        if let Some(saga) = active {
            return Err(Error::new(
                ErrorCode::OperationInProgress,
                "Another operation on this order is running; wait for it or see its saga",
            )
            .with_details(json!({ "sagaId": saga })));
        }
        return Err(Error::new(
            ErrorCode::InvalidStateTransition,
            "The order changed concurrently; retry",
        ));
    }
    Ok(now)
}

fn balance_event(
    kind: &str,
    user_id: &str,
    amount: Amount,
    order_id: &str,
    before: &ledger::Balance,
    after: &ledger::Balance,
    extra: Value,
) -> NewEvent {
    let mut data = json!({
        "userId": user_id,
        "amount": amount,
        "currency": "USD",
        "orderId": order_id,
        "previousAvailableBalance": before.available,
        "newAvailableBalance": after.available,
        "previousReservedBalance": before.reserved,
        "newReservedBalance": after.reserved,
    });
    if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    NewEvent::new(kind, "user", user_id, data)
}

/// Places a hold of the order amount on the buyer's available balance:
/// `ORDER_CREATED → FUNDS_RESERVED`. Errors: 404, 409 `INVALID_STATE_TRANSITION`,
/// 422 `INSUFFICIENT_FUNDS` / `USER_SUSPENDED` (nothing changes). Emits
/// `balance.reserved`, `order.funds_reserved`.
pub async fn reserve(store: &Store, ctx: &Context, id: &str) -> Result<Order> {
    let order = get(store, id).await?;
    transition(
        order.status,
        OrderStatus::FundsReserved,
        &[OrderStatus::OrderCreated],
    )?;
    party(store, &order.buyer_id, "buyerId")
        .await?
        .ensure_active()?;
    let mut tx = store.begin_for(ctx).await?;
    cas_status(
        &mut tx,
        &order,
        OrderStatus::FundsReserved,
        &[OrderStatus::OrderCreated],
    )
    .await?;
    let before = ledger::balance(tx.conn(), &order.buyer_id).await?;
    let hold = ledger::hold(&mut tx, &order.buyer_id, order.amount, "order", &order.id).await?;
    sqlx::query("UPDATE orders SET hold_id = $1 WHERE id = $2")
        .bind(&hold.id)
        .bind(&order.id)
        .execute(tx.conn())
        .await?;
    let after_balance = ledger::balance(tx.conn(), &order.buyer_id).await?;
    let after = load_in(&mut tx, id).await?;
    tx.audit(
        ctx.audit("order.funds_reserved", "order", id)
            .before(json!({ "status": order.status }))
            .after(json!({ "status": after.status, "holdId": hold.id })),
    );
    tx.emit(balance_event(
        "balance.reserved",
        &order.buyer_id,
        order.amount,
        id,
        &before,
        &after_balance,
        json!({ "holdId": hold.id }),
    ));
    tx.emit(NewEvent::new(
        "order.funds_reserved",
        "order",
        id,
        json!({
            "orderId": id,
            "buyerId": order.buyer_id,
            "amount": order.amount,
            "currency": order.currency,
            "holdId": hold.id,
            "availableBalance": after_balance.available,
            "reservedBalance": after_balance.reserved,
        }),
    ));
    tx.commit().await?;
    Ok(after)
}

/// Cancels an order before its escrow is funded: `ORDER_CREATED | FUNDS_RESERVED |
/// ESCROW_FUNDING → CLOSED` (not while an operation runs), voiding the hold; a
/// deployed, unfunded escrow becomes `CANCELED`. `reason` at most 500 characters. Emits `balance.released` (when funds were
/// reserved), `order.canceled`, `order.closed`.
pub async fn cancel(
    store: &Store,
    ctx: &Context,
    id: &str,
    reason: Option<String>,
) -> Result<Order> {
    if let Some(r) = &reason
        && r.chars().count() > 500
    {
        return Err(Error::validation(
            "reason",
            "must be at most 500 characters",
        ));
    }
    let sources = [
        OrderStatus::OrderCreated,
        OrderStatus::FundsReserved,
        OrderStatus::EscrowFunding,
    ];
    close_unfunded(store, ctx, id, reason, &sources, None)
        .await
        .and_then(|o| o.ok_or_else(|| Error::internal("cancellation did not close the order")))
}

/// The reservation of order `id` expired (the expiry worker,
/// [`crate::services::lifecycle::expire_reservations`]): when it is still
/// `FUNDS_RESERVED`, idle and untouched since `cutoff`, it is canceled through the cancel
/// path (actor `system`, reason `reservation_expired`, hold voided, `balance.released`,
/// `order.canceled`, `order.closed`) and `order.expired` is emitted. `false` when
/// another writer got there first or the order moved.
pub async fn expire(store: &Store, id: &str, cutoff: &str, ttl_secs: u64) -> Result<bool> {
    let order = close_unfunded(
        store,
        &Context::system(),
        id,
        Some("reservation_expired".to_string()),
        &[OrderStatus::FundsReserved],
        Some((cutoff, ttl_secs)),
    )
    .await?;
    Ok(order.is_some())
}

/// The cancel path: `sources → CLOSED`, voiding the hold. With `expiry` (`cutoff`,
/// TTL), only an order untouched since `cutoff` closes (`Ok(None)` otherwise) and
/// `order.expired` is emitted too.
async fn close_unfunded(
    store: &Store,
    ctx: &Context,
    id: &str,
    reason: Option<String>,
    sources: &[OrderStatus],
    expiry: Option<(&str, u64)>,
) -> Result<Option<Order>> {
    let order = get(store, id).await?;
    transition(order.status, OrderStatus::Closed, sources)?;
    let mut tx = store.begin_for(ctx).await?;
    if let Some((cutoff, _)) = expiry {
        // Row-locking re-check (PostgreSQL): still reserved, idle and stale.
        let stale = sqlx::query(
            "UPDATE orders SET updated_at = updated_at WHERE id = $1 AND status = $2 \
             AND active_saga IS NULL AND updated_at < $3",
        )
        .bind(id)
        .bind(order.status)
        .bind(cutoff)
        .execute(tx.conn())
        .await?;
        if stale.rows_affected() == 0 {
            return Ok(None);
        }
    }
    let closed_at = cas_status(&mut tx, &order, OrderStatus::Closed, sources).await?;
    crate::services::lifecycle::cancel_clock(&mut tx, id).await?;
    sqlx::query("UPDATE orders SET cancel_reason = $1 WHERE id = $2")
        .bind(&reason)
        .bind(id)
        .execute(tx.conn())
        .await?;
    // A deployed but unfunded contract stays empty on chain; the escrow ends here.
    sqlx::query("UPDATE escrows SET status = $1, closed_at = $2, updated_at = $2 WHERE order_id = $3 AND status = $4")
        .bind(EscrowStatus::Canceled)
        .bind(&closed_at)
        .bind(id)
        .bind(EscrowStatus::Created)
        .execute(tx.conn())
        .await?;
    let mut released = Amount::ZERO;
    if let Some(hold_id) = &order.hold_id {
        let before = ledger::balance(tx.conn(), &order.buyer_id).await?;
        let hold = ledger::void_hold(&mut tx, hold_id).await?;
        released = hold.amount;
        let after = ledger::balance(tx.conn(), &order.buyer_id).await?;
        tx.emit(balance_event(
            "balance.released",
            &order.buyer_id,
            hold.amount,
            id,
            &before,
            &after,
            json!({ "reason": "order_canceled", "holdId": hold.id }),
        ));
    }
    let after = load_in(&mut tx, id).await?;
    tx.audit(
        ctx.audit("order.canceled", "order", id)
            .before(json!({ "status": order.status }))
            .after(json!({ "status": after.status, "reason": reason, "fundsReleased": released })),
    );
    tx.emit(NewEvent::new(
        "order.canceled",
        "order",
        id,
        json!({
            "orderId": id,
            "buyerId": order.buyer_id,
            "canceledBy": ctx.actor.id,
            "reason": reason,
            "fundsReleased": released.is_positive(),
            "amountReleased": released,
            "canceledAt": closed_at,
        }),
    ));
    if let Some((_, ttl)) = expiry {
        let data = json!({
            "orderId": id,
            "buyerId": order.buyer_id,
            "previousStatus": order.status,
            "reservedSince": order.updated_at,
            "reservationTtl": crate::services::lifecycle::format_duration(ttl),
            "amountReleased": released,
            "expiredAt": closed_at,
        });
        tx.audit(ctx.audit("order.expired", "order", id).after(&data));
        tx.emit(NewEvent::new("order.expired", "order", id, data));
    }
    tx.emit(NewEvent::new(
        "order.closed",
        "order",
        id,
        json!({ "orderId": id, "finalStatus": OrderStatus::Closed, "outcome": CloseOutcome::Canceled, "closedAt": closed_at }),
    ));
    tx.commit().await?;
    Ok(Some(after))
}

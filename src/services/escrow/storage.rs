//! Storage of escrows and the order compare-and-sets the operations rely on: the
//! `escrows` and `milestones` rows, claiming an order for a saga, walking its states.

use super::*;

/// The escrow of an order (the API shows it inside the order, `daemon::dto::escrow::Escrow`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Escrow {
    pub id: String,
    pub order_id: String,
    pub kind: EscrowKind,
    /// The contract (`C…`) once deployed.
    pub contract_id: Option<String>,
    pub status: EscrowStatus,
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

pub(super) const COLUMNS: &str = "e.id, e.order_id, e.kind, e.contract_id, e.status, e.amount, e.platform_fee_bps, \
     e.deploy_hash, e.funded_at, e.closed_at, e.created_at, e.updated_at, COALESCE(a.balance, 0) AS balance";

pub(super) fn from_row(r: &sqlx::any::AnyRow) -> Result<Escrow> {
    let bps: i64 = r.try_get("platform_fee_bps")?;
    let bps = u32::try_from(bps)
        .ok()
        .filter(|b| *b <= 10_000)
        .ok_or_else(|| Error::internal(format!("escrow platform_fee_bps {bps} out of range")))?;
    Ok(Escrow {
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        kind: r.try_get("kind")?,
        contract_id: r.try_get("contract_id")?,
        status: r.try_get("status")?,
        amount: Amount::from_base_units(r.try_get("amount")?),
        platform_fee: f64::from(bps) / 100.0,
        platform_fee_bps: bps,
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
    let placeholders = crate::store::placeholders(order_ids.len());
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

pub(super) fn busy(saga: &str) -> Error {
    Error::new(
        ErrorCode::OperationInProgress,
        "Another operation on this order is running; wait for it or see its saga",
    )
    .with_details(json!({ "sagaId": saga }))
}

/// Claims the order for a new saga: compare-and-set on `active_saga IS NULL` and, when
/// `to` is given, on the status (`from` → `to`, checked against `sources`).
pub(super) async fn claim(
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
    let current = OrderStatus::parse(&status).ok_or_else(|| {
        Error::internal(format!("order {} has unknown status {status:?}", order.id))
    })?;
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

pub(super) async fn active_saga_of(store: &Store, order_id: &str) -> Result<Option<String>> {
    Ok(sqlx::query("SELECT active_saga FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_optional(store.reader())
        .await?
        .map(|r| r.try_get::<Option<String>, _>("active_saga"))
        .transpose()?
        .flatten())
}

pub(super) async fn ensure_idle(store: &Store, order: &Order) -> Result<()> {
    match active_saga_of(store, &order.id).await? {
        Some(s) => Err(busy(&s)),
        None => Ok(()),
    }
}

pub(super) fn order_event(kind: &str, order_id: &str, data: Value) -> NewEvent {
    NewEvent::new(kind, "order", order_id, data)
}

/// Sets the escrow's status; `FUNDED` stamps `funded_at`, a closing status `closed_at`.
pub(super) async fn set_escrow_status(
    db: &mut Tx,
    order_id: &str,
    status: EscrowStatus,
) -> Result<()> {
    let now = crate::clock::now();
    let sql = if status == EscrowStatus::Funded {
        "UPDATE escrows SET status = $1, updated_at = $2, funded_at = $2 WHERE order_id = $3"
    } else if status.is_closed() {
        "UPDATE escrows SET status = $1, updated_at = $2, closed_at = $2 WHERE order_id = $3"
    } else {
        "UPDATE escrows SET status = $1, updated_at = $2 WHERE order_id = $3"
    };
    sqlx::query(sql)
        .bind(status)
        .bind(&now)
        .bind(order_id)
        .execute(db.conn())
        .await?;
    Ok(())
}

pub(super) async fn set_milestone(
    db: &mut Tx,
    order: &Order,
    index: Option<u32>,
    status: MilestoneStatus,
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
pub(super) async fn walk(
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

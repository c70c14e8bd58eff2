//! Starting escrow operations: validate, claim the order, record the saga (one database
//! transaction each). The engine ([`super::engine`]) runs the steps.

use super::*;

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
        EscrowKind::SingleRelease
    } else {
        EscrowKind::MultiRelease
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
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (order_id) DO NOTHING",
    )
    .bind(&escrow_id)
    .bind(order_id)
    .bind(kind)
    .bind(EscrowStatus::Creating)
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
    sagas::insert(
        &mut db,
        &saga_id,
        SagaKind::EscrowDeploy,
        order_id,
        None,
        &plan,
    )
    .await?;
    let data = json!({ "orderId": order_id, "escrowId": escrow_id, "sagaId": saga_id, "kind": kind, "amount": order.amount, "platformFee": tw::wire::Percent::from_bps(bps)? });
    db.audit(
        ctx.audit("order.escrow_creating", "order", order_id)
            .before(json!({ "status": order.status }))
            .after(&data),
    );
    db.emit(order_event("order.escrow_creating", order_id, data));
    db.commit().await?;
    sagas::get(store, &saga_id).await
}

pub(super) async fn funded_escrow(store: &Store, order: &Order) -> Result<Escrow> {
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
    if escrow.status != EscrowStatus::Created && order.status == OrderStatus::EscrowFunding {
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
    set_escrow_status(&mut db, &order.id, EscrowStatus::Funding).await?;
    let plan = Plan {
        steps: vec![Step::new(Action::Fund, Party::Buyer)],
        params: json!({}),
    };
    sagas::insert(
        &mut db,
        &saga_id,
        SagaKind::EscrowFund,
        order_id,
        None,
        &plan,
    )
    .await?;
    let data = json!({ "orderId": order_id, "escrowId": escrow.id, "contractId": escrow.contract_id, "amount": order.amount, "sagaId": saga_id });
    db.audit(
        ctx.audit("order.fund_requested", "order", order_id)
            .after(&data),
    );
    db.emit(order_event("order.escrow_funding", order_id, data));
    db.commit().await?;
    sagas::get(store, &saga_id).await
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
            crate::services::lifecycle::settle_clock(
                store,
                order_id,
                AutoReleaseStatus::Scheduled,
                AutoReleaseStatus::Stopped,
            )
            .await?;
            return Ok(None);
        }
        OrderStatus::Released | OrderStatus::Refunded | OrderStatus::Closed => {
            crate::services::lifecycle::settle_clock(
                store,
                order_id,
                AutoReleaseStatus::Scheduled,
                AutoReleaseStatus::Canceled,
            )
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

pub(super) async fn release_with(
    store: &Store,
    ctx: &Context,
    order_id: &str,
    auto: bool,
) -> Result<Saga> {
    let order = orders::get(store, order_id).await?;
    let escrow = funded_escrow(store, &order).await?;
    transition(
        order.status,
        OrderStatus::ReleaseRequested,
        &[OrderStatus::InProgress],
    )?;
    ensure_idle(store, &order).await?;
    let steps = release_steps(&order, &escrow);
    start_resolution(
        store,
        ctx,
        &order,
        SagaKind::Release,
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
    let steps = refund_steps(&order, &escrow);
    start_resolution(
        store,
        ctx,
        &order,
        SagaKind::Refund,
        OrderStatus::RefundRequested,
        steps,
        json!({ "reason": reason }),
        "order.refund_requested",
    )
    .await
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn start_resolution(
    store: &Store,
    ctx: &Context,
    order: &Order,
    kind: SagaKind,
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
            "UPDATE orders SET auto_release_status = $1 \
             WHERE id = $2 AND auto_release_status = $3 AND auto_release_at <= $4",
        )
        .bind(AutoReleaseStatus::Releasing)
        .bind(&order.id)
        .bind(AutoReleaseStatus::Scheduled)
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
        SagaKind::Dispute,
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
        SagaKind::Resolve,
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
            SagaKind::MilestoneComplete,
            Step::new(Action::ChangeMilestoneStatus, Party::Seller),
            MilestoneStatus::Pending,
        ),
        "approve" => (
            SagaKind::MilestoneApprove,
            Step::new(Action::ApproveMilestone, Party::Buyer),
            MilestoneStatus::Completed,
        ),
        _ => (
            SagaKind::MilestoneRelease,
            Step::new(Action::ReleaseMilestoneFunds, Party::Buyer),
            MilestoneStatus::Approved,
        ),
    };
    if escrow.kind != EscrowKind::MultiRelease && op == "release" {
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

//! Ledger effects of landed steps: funding, payouts read from the chain, the saga's
//! completion (final states and events), all in the step's database transaction.

use super::*;

/// Applies a landed step: its effects, the step's advance and — after the last step —
/// the saga's completion, in one database transaction.
#[allow(clippy::too_many_arguments)]
pub(super) async fn apply(
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
    let contract = contract_of(ec, step, order, escrow, parties, contract_id).await?;
    let pays = matches!(
        step.action,
        Action::ReleaseFunds
            | Action::ResolveDispute
            | Action::ReleaseMilestoneFunds
            | Action::ResolveMilestoneDispute
    );
    let transfers = if pays {
        ec.provider
            .payouts(hash, contract.as_deref().unwrap_or_default())
            .await?
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
    let effects = Effects {
        step,
        order,
        escrow,
        parties,
        hash,
        contract: &contract,
        transfers: &transfers,
    };
    step_effects(&mut db, &effects).await?;
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
pub(super) async fn book_payouts(
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
pub(super) async fn complete(
    db: &mut Tx,
    saga: &Saga,
    order: &Order,
    escrow: &Escrow,
) -> Result<()> {
    let oid = order.id.as_str();
    let now = crate::clock::now();
    match saga.kind {
        SagaKind::EscrowDeploy => {
            walk(
                db,
                &saga.id,
                oid,
                OrderStatus::EscrowCreating,
                &[OrderStatus::EscrowFunding],
            )
            .await?;
        }
        SagaKind::EscrowFund => funded(db, saga, escrow, oid, &now).await?,
        SagaKind::MilestoneComplete => milestone_completed(db, oid).await?,
        SagaKind::Release => paid_out(db, saga, order, escrow, &now, Payout::Release).await?,
        SagaKind::Refund => paid_out(db, saga, order, escrow, &now, Payout::Refund).await?,
        SagaKind::Dispute => {
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
        SagaKind::Resolve => resolved(db, saga, oid, &now).await?,
        SagaKind::MilestoneRelease => milestone_released(db, saga, order, &now).await?,
        SagaKind::MilestoneApprove => {}
    }
    if saga.kind.pays_out() {
        let status: OrderStatus = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
            .bind(oid)
            .fetch_one(db.conn())
            .await?;
        if status == OrderStatus::Closed {
            // A clock that can no longer fire (released by hand, refunded, resolved).
            crate::services::lifecycle::cancel_clock(db, oid).await?;
        }
    }
    db.audit(
        Context::system()
            .audit("saga.completed", "saga", &saga.id)
            .after(json!({ "kind": saga.kind, "orderId": oid, "steps": saga.steps.len() })),
    );
    sagas::finish(db, saga, SagaStatus::Completed, None).await
}

/// `order.closed` with how it ended.
fn closed_event(oid: &str, outcome: CloseOutcome, now: &str) -> NewEvent {
    order_event(
        "order.closed",
        oid,
        json!({ "orderId": oid, "finalStatus": OrderStatus::Closed, "outcome": outcome, "closedAt": now }),
    )
}

/// Funding landed: `ESCROW_FUNDING → IN_PROGRESS`; a single-release order's
/// inspection window starts now (it has no completion step of its own).
async fn funded(db: &mut Tx, saga: &Saga, escrow: &Escrow, oid: &str, now: &str) -> Result<()> {
    walk(
        db,
        &saga.id,
        oid,
        OrderStatus::EscrowFunding,
        &[OrderStatus::InProgress],
    )
    .await?;
    let data = json!({ "orderId": oid, "escrowId": escrow.id, "trustlessContractId": escrow.contract_id, "amount": escrow.amount, "fundedAt": now });
    db.emit(order_event("order.escrow_funded", oid, data));
    db.emit(order_event(
        "order.in_progress",
        oid,
        json!({ "orderId": oid }),
    ));
    // See `services::lifecycle`.
    if escrow.kind != EscrowKind::MultiRelease {
        crate::services::lifecycle::start_clock(db, oid).await?;
    }
    Ok(())
}

/// The seller completed a milestone: when it was the last open one, the inspection
/// window starts.
async fn milestone_completed(db: &mut Tx, oid: &str) -> Result<()> {
    let pending: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM milestones WHERE order_id = $1 AND status = $2")
            .bind(oid)
            .bind(MilestoneStatus::Pending)
            .fetch_one(db.conn())
            .await?;
    if pending == 0 {
        crate::services::lifecycle::start_clock(db, oid).await?;
    }
    Ok(())
}

/// How an order whose escrow paid out ends: released to the seller or refunded to the
/// buyer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Payout {
    Release,
    Refund,
}

/// A release or refund landed: `{RELEASE,REFUND}_REQUESTED → RELEASED | REFUNDED →
/// CLOSED`, the escrow released or refunded, `order.released`/`order.refunded`,
/// `escrow.*` and `order.closed`.
async fn paid_out(
    db: &mut Tx,
    saga: &Saga,
    order: &Order,
    escrow: &Escrow,
    now: &str,
    how: Payout,
) -> Result<()> {
    let oid = order.id.as_str();
    let (from, to, escrow_status, outcome) = match how {
        Payout::Release => (
            OrderStatus::ReleaseRequested,
            OrderStatus::Released,
            EscrowStatus::Released,
            CloseOutcome::Released,
        ),
        Payout::Refund => (
            OrderStatus::RefundRequested,
            OrderStatus::Refunded,
            EscrowStatus::Refunded,
            CloseOutcome::Refunded,
        ),
    };
    walk(db, &saga.id, oid, from, &[to, OrderStatus::Closed]).await?;
    set_escrow_status(db, oid, escrow_status).await?;
    let (order_event_type, escrow_event_type, data) = match how {
        Payout::Release => (
            "order.released",
            "escrow.released",
            json!({ "orderId": oid, "sellerId": order.seller_id, "amount": order.amount, "currency": order.currency, "releasedAt": now }),
        ),
        Payout::Refund => (
            "order.refunded",
            "escrow.refunded",
            json!({ "orderId": oid, "buyerId": order.buyer_id, "amount": order.amount, "currency": order.currency, "reason": saga.params.get("reason"), "refundedAt": now }),
        ),
    };
    db.emit(order_event(order_event_type, oid, data));
    db.emit(NewEvent::new(
        escrow_event_type,
        "escrow",
        &escrow.id,
        json!({ "orderId": oid, "escrowId": escrow.id, "contractId": escrow.contract_id }),
    ));
    db.emit(closed_event(oid, outcome, now));
    if how == Payout::Release && saga.params["autoRelease"] == json!(true) {
        auto_released(db, saga, order, now).await?;
    }
    Ok(())
}

/// An automatic release landed: the schedule `RELEASING → RELEASED`, audited and
/// announced (`order.auto_released`).
async fn auto_released(db: &mut Tx, saga: &Saga, order: &Order, now: &str) -> Result<()> {
    let oid = order.id.as_str();
    let at: Option<String> = sqlx::query_scalar("SELECT auto_release_at FROM orders WHERE id = $1")
        .bind(oid)
        .fetch_one(db.conn())
        .await?;
    sqlx::query(
        "UPDATE orders SET auto_release_status = $1 WHERE id = $2 AND auto_release_status = $3",
    )
    .bind(AutoReleaseStatus::Released)
    .bind(oid)
    .bind(AutoReleaseStatus::Releasing)
    .execute(db.conn())
    .await?;
    let data = json!({ "orderId": oid, "sellerId": order.seller_id, "amount": order.amount, "currency": order.currency, "sagaId": saga.id, "autoReleaseAt": at, "releasedAt": now });
    db.audit(
        Context::system()
            .audit("order.auto_released", "order", oid)
            .after(&data),
    );
    db.emit(order_event("order.auto_released", oid, data));
    Ok(())
}

/// A resolution landed: `DISPUTED → CLOSED`, the escrow released, refunded or resolved
/// per the decision, the dispute `RESOLVED`.
async fn resolved(db: &mut Tx, saga: &Saga, oid: &str, now: &str) -> Result<()> {
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
        .and_then(Decision::parse)
        .ok_or_else(|| {
            Error::internal(format!("resolve saga {} has no valid decision", saga.id))
        })?;
    let (escrow_status, outcome) = match decision {
        Decision::FullRelease => (EscrowStatus::Released, CloseOutcome::Released),
        Decision::FullRefund => (EscrowStatus::Refunded, CloseOutcome::Refunded),
        Decision::Split => (EscrowStatus::Resolved, CloseOutcome::Split),
    };
    set_escrow_status(db, oid, escrow_status).await?;
    if let Some(d) = &saga.dispute_id {
        crate::services::disputes::resolved(db, d, oid, &saga.params).await?;
    }
    db.emit(closed_event(oid, outcome, now));
    Ok(())
}

/// A milestone was released: when none is left open, the order is released and closed.
async fn milestone_released(db: &mut Tx, saga: &Saga, order: &Order, now: &str) -> Result<()> {
    let oid = order.id.as_str();
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM milestones WHERE order_id = $1 AND status NOT IN ($2, $3)",
    )
    .bind(oid)
    .bind(MilestoneStatus::Released)
    .bind(MilestoneStatus::Resolved)
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
        set_escrow_status(db, oid, EscrowStatus::Released).await?;
        db.emit(order_event("order.released", oid, json!({ "orderId": oid, "sellerId": order.seller_id, "amount": order.amount, "currency": order.currency, "releasedAt": now })));
        db.emit(closed_event(oid, CloseOutcome::Released, now));
    }
    Ok(())
}

/// The contract a step acts on: the escrow's, or for a deploy the new contract's id
/// (from the provider's submission answer, else looked up by the order's engagement id
/// with [`EscrowProvider::find_contract`]). Transient while the provider does not know
/// it yet.
async fn contract_of(
    ec: &EscrowContext,
    step: &Step,
    order: &Order,
    escrow: &Escrow,
    parties: &Parties,
    contract_id: Option<String>,
) -> std::result::Result<Option<String>, StepError> {
    let contract = escrow.contract_id.clone();
    if step.action != Action::Deploy || contract.is_some() {
        return Ok(contract);
    }
    let contract = match contract_id {
        Some(c) => Some(c),
        None => {
            ec.provider
                .find_contract(parties.address(Party::Platform), &order.id)
                .await?
        }
    };
    if contract.is_none() {
        return Err(StepError::Transient(Error::new(
            ErrorCode::ProviderUnavailable,
            "the deployed contract id is not known yet",
        )));
    }
    Ok(contract)
}

/// What a landed step's effects are computed from.
struct Effects<'a> {
    step: &'a Step,
    order: &'a Order,
    escrow: &'a Escrow,
    parties: &'a Parties,
    hash: &'a str,
    contract: &'a Option<String>,
    /// USDC that left the contract in this transaction (paying steps only).
    transfers: &'a [(String, Amount)],
}

/// The effects of one landed step on escrow and milestone states, the ledger, audit
/// and events, in the step's database transaction.
async fn step_effects(db: &mut Tx, e: &Effects<'_>) -> Result<()> {
    let Effects {
        step,
        order,
        escrow,
        parties,
        hash,
        contract,
        transfers,
    } = *e;
    let sys = Context::system();
    let oid = order.id.as_str();
    match step.action {
        Action::Deploy => {
            sqlx::query("UPDATE escrows SET contract_id = $1, deploy_hash = $2, status = $3, updated_at = $4 WHERE order_id = $5")
                .bind(contract)
                .bind(hash)
                .bind(EscrowStatus::Created)
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
                db,
                &hold,
                &[Posting::new(ledger::escrow_account(oid), escrow.amount)],
            )
            .await?;
            set_escrow_status(db, oid, EscrowStatus::Funded).await?;
            let data = json!({ "orderId": oid, "escrowId": escrow.id, "contractId": contract, "amount": escrow.amount, "transactionHash": hash, "fundedAt": crate::clock::now() });
            db.audit(
                sys.audit("escrow.funded", "escrow", &escrow.id)
                    .after(&data),
            );
            db.emit(NewEvent::new("escrow.funded", "escrow", &escrow.id, data));
        }
        Action::ChangeMilestoneStatus => {
            let r = set_milestone(db, order, step.milestone, MilestoneStatus::Completed).await?;
            let data = json!({ "orderId": oid, "escrowId": escrow.id, "milestoneRef": r, "milestoneIndex": step.milestone, "transactionHash": hash, "completedAt": crate::clock::now() });
            db.emit(NewEvent::new(
                "escrow.milestone_completed",
                "order",
                oid,
                data,
            ));
        }
        Action::ApproveMilestone => {
            let r = set_milestone(db, order, step.milestone, MilestoneStatus::Approved).await?;
            let data = json!({ "orderId": oid, "escrowId": escrow.id, "milestoneRef": r, "milestoneIndex": step.milestone, "transactionHash": hash });
            db.emit(NewEvent::new(
                "escrow.milestone_approved",
                "order",
                oid,
                data,
            ));
        }
        Action::DisputeEscrow | Action::DisputeMilestone => {
            set_milestone(db, order, step.milestone, MilestoneStatus::Disputed).await?;
            set_escrow_status(db, oid, EscrowStatus::Disputed).await?;
        }
        Action::ReleaseFunds
        | Action::ResolveDispute
        | Action::ReleaseMilestoneFunds
        | Action::ResolveMilestoneDispute => {
            let status = if matches!(
                step.action,
                Action::ReleaseMilestoneFunds | Action::ReleaseFunds
            ) {
                MilestoneStatus::Released
            } else {
                MilestoneStatus::Resolved
            };
            set_milestone(db, order, step.milestone, status).await?;
            book_payouts(db, order, escrow, parties, hash, transfers).await?;
        }
    }
    Ok(())
}

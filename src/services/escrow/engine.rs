//! The saga engine: lease, run each step through the escrow provider port (expected
//! transaction → build → verify → sign → store → submit → settle), retry what is
//! transient, compensate or park what is not.

use super::*;
use crate::domain::transaction::TxResultCode;

/// How a step failed, which decides what the engine does next.
#[derive(Debug)]
pub(super) enum StepError {
    /// Try again later (provider down, rate limit, expired envelope, database
    /// unavailable): counted, retried with backoff, parked after `saga_max_attempts`.
    Transient(Error),
    /// The provider or the chain refused for good: compensate (first step) or park.
    Definitive(Error),
    /// An internal error that is not the environment's fault (a bug, corrupt data):
    /// retrying cannot help, so the saga parks at once for an operator.
    Bug(Error),
}

impl StepError {
    /// The metric label of the outcome.
    fn label(&self) -> &'static str {
        match self {
            StepError::Transient(_) => "transient",
            StepError::Definitive(_) => "definitive",
            StepError::Bug(_) => "bug",
        }
    }

    /// The error of a step whose transaction has landed on chain: compensating
    /// (which assumes nothing reached the chain) would undo on our books what the
    /// chain did, so a definitive error there (e.g. the ledger refusing a posting of
    /// corrupt data) parks the saga as a bug for an operator instead.
    fn after_landing(self) -> Self {
        match self {
            StepError::Definitive(e) => StepError::Bug(e),
            other => other,
        }
    }
}

impl From<Error> for StepError {
    fn from(e: Error) -> Self {
        if tw::is_transient(&e) || e.is_unavailable() {
            StepError::Transient(e)
        } else if e.code == ErrorCode::Internal {
            StepError::Bug(e)
        } else {
            StepError::Definitive(e)
        }
    }
}

impl From<sqlx::Error> for StepError {
    fn from(e: sqlx::Error) -> Self {
        Error::from(e).into()
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

pub(super) async fn run_leased(ec: &EscrowContext, store: &Store, saga_id: &str) -> Result<()> {
    loop {
        let saga = sagas::get(store, saga_id).await?;
        if saga.status != SagaStatus::Running {
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
            saga.kind.as_str(),
            match &outcome {
                Ok(()) => "ok",
                Err(e) => e.label(),
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
            Err(StepError::Bug(e)) => {
                tracing::error!(saga_id, step = saga.step, error = %e, "saga step hit an internal error; parked");
                sagas::park(store, &saga, &e).await?;
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

/// Audits a refused envelope (its own transaction: the refusal must be on record even
/// though nothing else changes).
pub(super) async fn audit_refusal(
    store: &Store,
    saga: &Saga,
    step: &Step,
    e: &Error,
) -> Result<()> {
    let mut db = store.begin().await?;
    db.audit(
        Context::system()
            .audit("escrow.xdr_refused", "saga", &saga.id)
            .after(json!({ "orderId": saga.order_id, "action": step.action, "step": saga.step, "error": sagas::error_json(e) })),
    );
    db.commit().await
}

pub(super) fn unix_now() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}

pub(super) async fn execute_step(
    ec: &EscrowContext,
    store: &Store,
    saga: &Saga,
) -> std::result::Result<(), StepError> {
    let idx = usize::try_from(saga.step).map_err(|_| Error::internal("negative step"))?;
    let Some(step) = saga.steps.get(idx).cloned() else {
        return Err(StepError::Bug(Error::internal("saga has no such step")));
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
    if saga.status != SagaStatus::Running || saga.step != i64::try_from(idx).unwrap_or(-1) {
        return Ok(());
    }
    let (envelope, outcome, contract_id) = match &saga.envelope {
        Some(xdr) => {
            let (env, outcome) = resubmit_stored(ec, xdr).await?;
            (env, outcome, None)
        }
        None => {
            let input = StepContext {
                saga: &saga,
                step: &step,
                order: &order,
                escrow: &escrow,
                parties: &parties,
                signer: &signer,
            };
            match build_sign_submit(ec, store, &input).await? {
                Some(submitted) => submitted,
                // Another executor stored this step's envelope first.
                None => return Ok(()),
            }
        }
    };
    // Test hook: the crash tests stop here (feature `failpoints`).
    #[cfg(feature = "failpoints")]
    crate::failpoints::stop_here("after_submit").await;
    match outcome {
        SubmitOutcome::Applied { hash, .. } => apply(
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
        .map_err(StepError::after_landing),
        SubmitOutcome::Failed {
            tx_code, op_codes, ..
        } => {
            sagas::clear_envelope(store, &saga.id, &envelope.xdr).await?;
            Err(failed_step(&tx_code, &op_codes))
        }
        SubmitOutcome::Unknown { reason, .. } => Err(StepError::Transient(Error::new(
            ErrorCode::ProviderTimeout,
            reason,
        ))),
    }
}

/// A definitive failure before anything reached the chain: restore the order and end
/// the saga `COMPENSATED`. Emits `saga.compensated`.
pub(super) async fn compensate(store: &Store, saga: &Saga, e: &Error) -> Result<()> {
    let mut db = store.begin().await?;
    let current = sagas::get_in(&mut db, &saga.id).await?;
    if current.status != SagaStatus::Running {
        return Ok(());
    }
    let oid = saga.order_id.as_str();
    let restore = |from: OrderStatus, to: OrderStatus| (from, to);
    let back = match saga.kind {
        SagaKind::EscrowDeploy => {
            sqlx::query("DELETE FROM escrows WHERE order_id = $1 AND contract_id IS NULL")
                .bind(oid)
                .execute(db.conn())
                .await?;
            Some(restore(
                OrderStatus::EscrowCreating,
                OrderStatus::FundsReserved,
            ))
        }
        SagaKind::EscrowFund => {
            set_escrow_status(&mut db, oid, EscrowStatus::Created).await?;
            None
        }
        SagaKind::Release => {
            if saga.params["autoRelease"] == json!(true) {
                // Not retried: the marketplace or an operator releases by hand.
                sqlx::query("UPDATE orders SET auto_release_status = $1 WHERE id = $2 AND auto_release_status = $3")
                    .bind(AutoReleaseStatus::Failed)
                    .bind(oid)
                    .bind(AutoReleaseStatus::Releasing)
                    .execute(db.conn())
                    .await?;
            }
            Some(restore(
                OrderStatus::ReleaseRequested,
                OrderStatus::InProgress,
            ))
        }
        SagaKind::Refund => Some(restore(
            OrderStatus::RefundRequested,
            OrderStatus::InProgress,
        )),
        SagaKind::Dispute | SagaKind::Resolve => {
            if let Some(d) = &saga.dispute_id {
                crate::services::disputes::revert(&mut db, d, saga.kind, &saga.params).await?;
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
    sagas::finish(&mut db, saga, SagaStatus::Compensated, Some(e)).await?;
    db.commit().await
}

/// Settles a stored envelope by resubmitting exactly it (the provider answers a known
/// transaction with its result), never signing anew.
async fn resubmit_stored(
    ec: &EscrowContext,
    xdr: &str,
) -> Result<(tx::SignedEnvelope, SubmitOutcome)> {
    let env = tx::signed_from_xdr(xdr, &ec.sc.network)?;
    let outcome = ec.provider.settle(&env).await?;
    Ok((env, outcome))
}

/// The on-chain balance of one escrow contract, from the provider.
async fn escrow_balance(ec: &EscrowContext, contract: &str) -> Result<Amount> {
    ec.provider
        .balances(&[contract.to_string()])
        .await?
        .into_iter()
        .find(|(c, _)| c == contract)
        .map(|(_, a)| a)
        .ok_or_else(|| {
            Error::new(
                ErrorCode::ProviderError,
                "The escrow provider returned no balance for the escrow",
            )
        })
}

/// What one step is run for.
struct StepContext<'a> {
    saga: &'a Saga,
    step: &'a Step,
    order: &'a Order,
    escrow: &'a Escrow,
    parties: &'a Parties,
    signer: &'a Wallet,
}

/// Computes what the step's transaction must be, has the provider build it, verifies
/// the one against the other, signs, stores the envelope (compare-and-set: `None` when
/// another executor stored one first) and submits it, settling by the hash. Returns the
/// envelope, its outcome and, for a deploy, the contract id the provider reported.
async fn build_sign_submit(
    ec: &EscrowContext,
    store: &Store,
    c: &StepContext<'_>,
) -> std::result::Result<Option<(tx::SignedEnvelope, SubmitOutcome, Option<String>)>, StepError> {
    let escrow_balance = match (c.step.action, &c.escrow.contract_id) {
        (Action::ResolveDispute, Some(contract)) => Some(escrow_balance(ec, contract).await?),
        _ => None,
    };
    let call = StepCall {
        order: c.order,
        escrow: c.escrow,
        parties: c.parties,
        step: c.step,
        escrow_balance,
    };
    let expected = ec.provider.expected(call)?;
    let unsigned = ec.provider.build(call).await?;
    if let Err(e) = verify::verify(&unsigned, &expected, unix_now()) {
        audit_refusal(store, c.saga, c.step, &e).await?;
        return Err(StepError::Definitive(e));
    }
    let kp = wallets::keypair(&ec.sc, c.signer)?;
    let signed = tx::add_signature(&unsigned, &ec.sc.network, &kp)?;
    if !sagas::store_envelope(store, &c.saga.id, c.saga.step, &signed.xdr, &signed.hash).await? {
        return Ok(None);
    }
    // Test hook: the crash tests stop here (feature `failpoints`).
    #[cfg(feature = "failpoints")]
    crate::failpoints::stop_here("after_store").await;
    let submitted = ec.provider.submit(&signed).await?;
    Ok(Some((signed, submitted.outcome, submitted.contract_id)))
}

/// The step's transaction failed: a sequence race or an expired envelope is rebuilt on
/// the next attempt (transient); anything else is a definitive refusal, named after the
/// contract's error when it is one.
fn failed_step(tx_code: &TxResultCode, op_codes: &[String]) -> StepError {
    if tx_code.can_no_longer_land() {
        return StepError::Transient(Error::new(
            ErrorCode::ProviderUnavailable,
            format!("the step's transaction can no longer land ({tx_code}); it will be rebuilt"),
        ));
    }
    let text = op_codes.join("; ");
    let e = match tw::contract_error(&text) {
        Some(variant) => Error::new(
            ErrorCode::EscrowContractError,
            format!("The escrow contract refused: {text}"),
        )
        .with_details(json!({ "contractError": variant, "transactionCode": tx_code.as_str() })),
        None => Error::new(
            ErrorCode::ProviderError,
            format!("The transaction failed: {tx_code} {text}")
                .trim()
                .to_string(),
        )
        .with_details(json!({ "transactionCode": tx_code.as_str(), "providerStatus": 400 })),
    };
    StepError::Definitive(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_errors_are_classified_transient_definitive_or_bug() {
        let class = |e: Error| StepError::from(e).label();
        // The environment: retry.
        assert_eq!(
            class(Error::unavailable("database: pool timed out")),
            "transient"
        );
        assert_eq!(class(Error::from(sqlx::Error::PoolTimedOut)), "transient");
        assert_eq!(
            class(Error::new(ErrorCode::ProviderUnavailable, "TW down")),
            "transient"
        );
        assert_eq!(
            class(Error::new(ErrorCode::ProviderTimeout, "504")),
            "transient"
        );
        // The provider or the contract said no: compensate or park.
        assert_eq!(
            class(Error::new(ErrorCode::EscrowContractError, "refused")),
            "definitive"
        );
        assert_eq!(
            class(Error::new(ErrorCode::XdrVerificationFailed, "wrong amount")),
            "definitive"
        );
        // A bug or corrupt data: park at once, retrying cannot help.
        assert_eq!(
            class(Error::internal("escrow has no contract id yet")),
            "bug"
        );
        assert_eq!(class(Error::from(sqlx::Error::RowNotFound)), "bug");
    }

    #[test]
    fn after_a_landed_step_nothing_is_compensated() {
        let landed = |e: Error| StepError::from(e).after_landing().label();
        // The books could not follow the chain: park (never compensate).
        assert_eq!(
            landed(Error::new(ErrorCode::InsufficientFunds, "hold")),
            "bug"
        );
        assert_eq!(
            landed(Error::new(ErrorCode::UserNotFound, "no account")),
            "bug"
        );
        assert_eq!(landed(Error::internal("unknown account")), "bug");
        // Reading the landed transaction back can still be retried.
        assert_eq!(
            landed(Error::new(ErrorCode::ProviderTimeout, "504")),
            "transient"
        );
    }
}

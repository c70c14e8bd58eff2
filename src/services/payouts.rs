//! Airtm payout withdrawals (`destinationType` `airtm_balance` or `bank`;
//! docs/PROVIDERS.md, Airtm: payouts). Airtm pays the user's **linked Airtm account**
//! (payouts are addressed by email); for `bank`, the user moves the money to their bank
//! inside Airtm and `destinationRef` is carried in the payout notes.
//!
//! 1. [`create`]: hold the amount (available → reserved) and record the withdrawal
//!    (`WITHDRAWAL_CREATED`) in one transaction, then `POST /payouts` with **our
//!    withdrawal id as `code`** and `commit` as asked. A refusal voids the hold
//!    (`WITHDRAWAL_FAILED`); Airtm unreachable leaves it created for the reconciler (the
//!    code makes a second create impossible).
//! 2. [`commit`] (`POST /payouts/{id}/commit`, empty 2xx, then re-read; never retried
//!    blindly), [`cancel`] (`DELETE /payouts/{id}`, allowed while `CREATED` or `PENDING`),
//!    [`refresh`] (re-read and apply).
//! 3. Airtm's status drives ours: `COMMITTED`/processing → `WITHDRAWAL_COMMITTED`;
//!    `PENDING` → `WITHDRAWAL_PENDING_USER_ACTION`; `CANCELED` → `WITHDRAWAL_CANCELED`
//!    and `FAILED` → `WITHDRAWAL_FAILED`, both voiding the hold (money back to available);
//!    `ERROR` → `WITHDRAWAL_NEEDS_ATTENTION` (hold kept for an operator); `COMPLETED` →
//!    `WITHDRAWAL_SETTLING`: the held USDC is swept from the user's wallet to the treasury
//!    ([`crate::services::treasury`]) and, once that lands, the hold is posted to
//!    `external:airtm` (`WITHDRAWAL_COMPLETED`). The user's wallet keeps the USDC until
//!    Airtm has paid, so a failed payout needs no transfer back.
//!
//! Events: `withdrawal.created`, `withdrawal.committed`,
//! `withdrawal.pending_user_action`, `withdrawal.completed`, `withdrawal.failed`,
//! `withdrawal.canceled`, `withdrawal.needs_attention`.

use serde_json::json;
use sqlx::Row;

use crate::airtm::{self, NewPayout, Payout, PayoutStatus};
use crate::context::Context;
use crate::domain::wallet::WalletStatus;
use crate::domain::withdrawal::WithdrawalStatus;
use crate::error::{Error, ErrorCode, Result};
use crate::events::NewEvent;
use crate::ids::{IdKind, new_id};
use crate::ledger::{self, Posting};
use crate::money::Amount;
use crate::services::airtm::AirtmContext;
use crate::services::treasury::{self, Direction, Owner, Settled, Transfer};
use crate::services::withdrawals::{self, Withdrawal};
use crate::services::{users, wallets};
use crate::store::Store;

/// Statuses of a payout withdrawal that may still change.
const OPEN: [WithdrawalStatus; 4] = WithdrawalStatus::PAYOUT_OPEN;

/// What `POST /withdrawals` takes for an Airtm payout.
#[derive(Clone, Debug)]
pub struct NewPayoutWithdrawal<'a> {
    pub user_id: &'a str,
    pub amount: Amount,
    /// `airtm_balance` or `bank`.
    pub destination_type: &'a str,
    /// Free reference (e.g. the bank account label); defaults to the linked email.
    pub destination_ref: Option<&'a str>,
    pub commit: bool,
}

/// Creates a payout withdrawal (module documentation, step 1). Errors: `amount`
/// (positive, at most 2 decimals), `USER_NOT_FOUND`, `USER_SUSPENDED`,
/// `AIRTM_USER_NOT_LINKED`, `WALLET_NOT_READY`, `INSUFFICIENT_FUNDS`, Airtm's refusal
/// (`PROVIDER_ERROR`/`AIRTM_USER_*` with `details.withdrawalId`; the hold is voided).
pub async fn create(
    store: &Store,
    ctx: &Context,
    ac: &AirtmContext,
    w: &NewPayoutWithdrawal<'_>,
) -> Result<Withdrawal> {
    if !w.amount.is_positive() {
        return Err(Error::amount("amount", "must be greater than zero"));
    }
    airtm::usd(w.amount, "amount")?;
    if let Some(r) = w.destination_ref
        && (r.chars().count() > 200 || r.chars().any(char::is_control))
    {
        return Err(Error::validation(
            "destinationRef",
            "must be at most 200 printable characters",
        ));
    }
    let user = users::get(store, w.user_id).await?;
    user.ensure_active()?;
    let link = user.airtm.clone().ok_or_else(|| {
        Error::new(
            ErrorCode::AirtmUserNotLinked,
            format!(
                "User {} has no linked Airtm account: POST /users/{}/airtm/link first",
                w.user_id, w.user_id
            ),
        )
    })?;
    let wallet = wallets::for_user(store, w.user_id).await?;
    if wallet.status != WalletStatus::Active {
        return Err(Error::new(
            ErrorCode::WalletNotReady,
            format!("The user's wallet is {}", wallet.status),
        ));
    }
    let id = new_id(IdKind::Withdrawal);
    let now = crate::clock::now();
    let reference = w.destination_ref.unwrap_or(&link.email).to_string();
    let mut db = store.begin_for(ctx).await?;
    let hold = ledger::hold(&mut db, w.user_id, w.amount, "withdrawal", &id).await?;
    sqlx::query(
        "INSERT INTO withdrawals (id, user_id, amount, currency, destination_type, destination_ref, status, hold_id, \
         airtm_email, created_at, updated_at) VALUES ($1, $2, $3, 'USD', $4, $5, $9, $6, $7, $8, $8)",
    )
    .bind(&id)
    .bind(w.user_id)
    .bind(w.amount.base_units())
    .bind(w.destination_type)
    .bind(&reference)
    .bind(&hold.id)
    .bind(&link.email)
    .bind(&now)
    .bind(WithdrawalStatus::Created)
    .execute(db.conn())
    .await?;
    let data = json!({ "withdrawalId": id, "userId": w.user_id, "amount": w.amount, "currency": "USD",
                       "destinationType": w.destination_type, "destinationRef": reference });
    db.audit(
        ctx.audit("withdrawal.created", "withdrawal", &id)
            .after(&data),
    );
    db.emit(NewEvent::new("withdrawal.created", "withdrawal", &id, data));
    db.commit().await?;
    let wd = withdrawals::get(store, &id).await?;
    match create_payout(ac, &wd, w.commit).await {
        Ok(p) => apply(store, ac, &id, &p).await,
        Err(e) if airtm::is_transient(&e) => {
            tracing::warn!(withdrawal_id = %id, error = %e, "Airtm unreachable creating the payout; the reconciler will retry");
            match ac.client.payout_by_code(&id).await {
                Ok(Some(p)) => apply(store, ac, &id, &p).await,
                _ => withdrawals::get(store, &id).await,
            }
        }
        Err(e) => {
            end(
                store,
                &wd,
                WithdrawalStatus::Failed,
                "withdrawal.failed",
                &e.message,
            )
            .await?;
            let mut details = e.details.clone().unwrap_or_else(|| json!({}));
            details["withdrawalId"] = json!(id);
            Err(e.with_details(details))
        }
    }
}

async fn create_payout(ac: &AirtmContext, w: &Withdrawal, commit: bool) -> Result<Payout> {
    let notes = if w.destination_type == "bank" {
        format!("Withdrawal {} to bank {}", w.id, w.destination_ref)
    } else {
        format!("Withdrawal {}", w.id)
    };
    let email = w.airtm_email.clone().unwrap_or_default();
    ac.client
        .create_payout(&NewPayout {
            code: &w.id,
            email: &email,
            amount: w.amount,
            notes: &notes,
            commit,
        })
        .await
}

/// Moves an open withdrawal to `to` (compare-and-set) with event and audit row.
async fn transition(
    store: &Store,
    w: &Withdrawal,
    to: WithdrawalStatus,
    event: &str,
) -> Result<bool> {
    debug_assert!(w.status.next().contains(&to), "{} → {to}", w.status);
    let mut db = store.begin().await?;
    let done = sqlx::query(
        "UPDATE withdrawals SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4",
    )
    .bind(to)
    .bind(crate::clock::now())
    .bind(&w.id)
    .bind(w.status)
    .execute(db.conn())
    .await?
    .rows_affected();
    if done == 0 {
        return Ok(false);
    }
    let data = json!({ "withdrawalId": w.id, "userId": w.user_id, "amount": w.amount, "status": to,
                       "airtmPayoutId": w.airtm_payout_id });
    db.audit(
        Context::system()
            .audit(event, "withdrawal", &w.id)
            .before(json!({ "status": w.status }))
            .after(&data),
    );
    db.emit(NewEvent::new(event, "withdrawal", &w.id, data));
    db.commit().await?;
    Ok(true)
}

/// Ends an open withdrawal as failed or canceled: voids the hold (money back to
/// available) in the same transaction.
async fn end(
    store: &Store,
    w: &Withdrawal,
    to: WithdrawalStatus,
    event: &str,
    reason: &str,
) -> Result<()> {
    let mut db = store.begin().await?;
    let done = sqlx::query(
        "UPDATE withdrawals SET status = $1, failure_reason = $2, updated_at = $3 WHERE id = $4 AND status = $5",
    )
    .bind(to)
    .bind(reason)
    .bind(crate::clock::now())
    .bind(&w.id)
    .bind(w.status)
    .execute(db.conn())
    .await?
    .rows_affected();
    if done == 0 {
        return Ok(());
    }
    if let Some(h) = &w.hold_id {
        ledger::void_hold(&mut db, h).await?;
    }
    let after = ledger::balance(db.conn(), &w.user_id).await?;
    let data = json!({ "withdrawalId": w.id, "userId": w.user_id, "amount": w.amount, "status": to,
                       "reason": reason, "airtmPayoutId": w.airtm_payout_id, "newAvailableBalance": after.available });
    db.audit(
        Context::system()
            .audit(event, "withdrawal", &w.id)
            .before(json!({ "status": w.status }))
            .after(&data),
    );
    db.emit(NewEvent::new(event, "withdrawal", &w.id, data));
    db.commit().await
}

/// Applies what Airtm reports about the payout of withdrawal `id`, then settles a
/// completed one. A payout whose `code` is not `id` is refused.
pub async fn apply(store: &Store, ac: &AirtmContext, id: &str, p: &Payout) -> Result<Withdrawal> {
    if p.code != id {
        return Err(Error::new(
            ErrorCode::ProviderError,
            format!(
                "Airtm payout {} belongs to code {:?}, not {id}",
                p.id, p.code
            ),
        ));
    }
    record_provider_status(store, id, p).await?;
    let w = withdrawals::get(store, id).await?;
    follow_payout(store, &w, p).await?;
    settle(store, ac, id).await
}

/// Records Airtm's view of the payout (payout id, status text) on withdrawal `id` when
/// it changed, audited as `withdrawal.provider_status`.
async fn record_provider_status(store: &Store, id: &str, p: &Payout) -> Result<()> {
    let before = withdrawals::get(store, id).await?;
    if before.airtm_payout_id.as_deref() == Some(p.id.as_str())
        && before.airtm_status.as_deref() == Some(p.status_text.as_str())
    {
        return Ok(());
    }
    let mut db = store.begin().await?;
    sqlx::query(
        "UPDATE withdrawals SET payout_id = $1, airtm_status = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(&p.id)
    .bind(&p.status_text)
    .bind(crate::clock::now())
    .bind(id)
    .execute(db.conn())
    .await?;
    db.audit(
        Context::system()
            .audit("withdrawal.provider_status", "withdrawal", id)
            .before(json!({ "airtmPayoutId": before.airtm_payout_id, "airtmStatus": before.airtm_status }))
            .after(json!({ "airtmPayoutId": p.id, "airtmStatus": p.status_text })),
    );
    db.commit().await
}

/// Moves withdrawal `w` (as read after recording Airtm's view) to the state the payout's
/// status calls for, each by compare-and-set: a completed payout makes an open one
/// `WITHDRAWAL_SETTLING` ([`mark_paid`]); a canceled or failed one ends it and voids
/// its hold ([`end`]). A status that does not apply to `w`'s state changes nothing.
async fn follow_payout(store: &Store, w: &Withdrawal, p: &Payout) -> Result<()> {
    let open = OPEN.contains(&w.status);
    match &p.status {
        PayoutStatus::Processing(_)
            if matches!(
                w.status,
                WithdrawalStatus::Created | WithdrawalStatus::PendingUserAction
            ) =>
        {
            transition(
                store,
                w,
                WithdrawalStatus::Committed,
                "withdrawal.committed",
            )
            .await?;
        }
        PayoutStatus::PendingUserAction
            if matches!(
                w.status,
                WithdrawalStatus::Created | WithdrawalStatus::Committed
            ) =>
        {
            transition(
                store,
                w,
                WithdrawalStatus::PendingUserAction,
                "withdrawal.pending_user_action",
            )
            .await?;
        }
        PayoutStatus::Completed if open => {
            mark_paid(store, w, p).await?;
        }
        PayoutStatus::Canceled if open => {
            end(
                store,
                w,
                WithdrawalStatus::Canceled,
                "withdrawal.canceled",
                "canceled at Airtm",
            )
            .await?;
        }
        PayoutStatus::Failed if open => {
            let reason = match (&p.reason_code, &p.reason_description) {
                (Some(c), Some(d)) => format!("Airtm {c}: {d}"),
                (Some(c), None) => format!("Airtm reason {c}"),
                _ => "the payout failed at Airtm".to_string(),
            };
            end(
                store,
                w,
                WithdrawalStatus::Failed,
                "withdrawal.failed",
                &reason,
            )
            .await?;
        }
        PayoutStatus::Error if w.status != WithdrawalStatus::NeedsAttention && open => {
            transition(
                store,
                w,
                WithdrawalStatus::NeedsAttention,
                "withdrawal.needs_attention",
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// Airtm paid the payout: open withdrawal `w` becomes `WITHDRAWAL_SETTLING`
/// (compare-and-set on its status; audited as `withdrawal.paid_by_airtm`). The hold
/// stays until [`settle`] has swept the USDC.
async fn mark_paid(store: &Store, w: &Withdrawal, p: &Payout) -> Result<()> {
    let mut db = store.begin().await?;
    let done = sqlx::query(
        "UPDATE withdrawals SET status = $4, updated_at = $1 WHERE id = $2 AND status = $3",
    )
    .bind(crate::clock::now())
    .bind(&w.id)
    .bind(w.status)
    .bind(WithdrawalStatus::Settling)
    .execute(db.conn())
    .await?
    .rows_affected();
    if done == 1 {
        db.audit(
            Context::system()
                .audit("withdrawal.paid_by_airtm", "withdrawal", &w.id)
                .before(json!({ "status": w.status }))
                .after(json!({ "status": WithdrawalStatus::Settling, "airtmPayoutId": p.id, "netAmount": p.net_amount })),
        );
    }
    db.commit().await
}

/// Sweeps a `WITHDRAWAL_SETTLING` withdrawal's USDC to the treasury and posts its hold
/// to `external:airtm` once that landed (exactly once). Others are returned unchanged.
pub async fn settle(store: &Store, ac: &AirtmContext, id: &str) -> Result<Withdrawal> {
    let w = withdrawals::get(store, id).await?;
    if w.status != WithdrawalStatus::Settling {
        return Ok(w);
    }
    let outcome = treasury::settle(
        store,
        &ac.sc,
        &Transfer {
            owner: Owner::Withdrawal,
            id,
            user_id: &w.user_id,
            amount: w.amount,
            direction: Direction::FromUser,
        },
    )
    .await?;
    let hash = match outcome {
        Settled::Landed { hash } => hash,
        Settled::Waiting { reason } => {
            if let Some(r) = reason {
                tracing::warn!(withdrawal_id = %id, reason = %r, "payout sweep to the treasury not landed yet");
            }
            return withdrawals::get(store, id).await;
        }
    };
    let now = crate::clock::now();
    let mut db = store.begin().await?;
    let done = sqlx::query(
        "UPDATE withdrawals SET status = $4, settlement_tx_hash = $1, completed_at = $2, \
         updated_at = $2 WHERE id = $3 AND status = $5",
    )
    .bind(&hash)
    .bind(&now)
    .bind(id)
    .bind(WithdrawalStatus::Completed)
    .bind(WithdrawalStatus::Settling)
    .execute(db.conn())
    .await?
    .rows_affected();
    if done == 1 {
        if let Some(h) = &w.hold_id {
            ledger::post_hold(
                &mut db,
                h,
                &[Posting::new(ledger::EXTERNAL_AIRTM, w.amount)],
            )
            .await?;
        }
        let data = json!({ "withdrawalId": id, "userId": w.user_id, "amount": w.amount, "currency": "USD",
                           "airtmPayoutId": w.airtm_payout_id, "transactionHash": hash, "completedAt": now });
        db.audit(
            Context::system()
                .audit("withdrawal.completed", "withdrawal", id)
                .after(&data),
        );
        db.emit(NewEvent::new(
            "withdrawal.completed",
            "withdrawal",
            id,
            data,
        ));
    }
    db.commit().await?;
    withdrawals::get(store, id).await
}

fn ensure_airtm(w: &Withdrawal) -> Result<()> {
    if matches!(w.destination_type.as_str(), "bank" | "airtm_balance") {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::InvalidStateTransition,
            format!(
                "Withdrawal {} is a {} withdrawal, not an Airtm payout",
                w.id, w.destination_type
            ),
        ))
    }
}

/// Re-reads the payout (by id, or by our code when the id is unknown) and applies it.
/// A payout never created (Airtm unreachable at creation) is created now, uncommitted.
pub async fn refresh(store: &Store, ac: &AirtmContext, id: &str) -> Result<Withdrawal> {
    let w = withdrawals::get(store, id).await?;
    ensure_airtm(&w)?;
    let p = match &w.airtm_payout_id {
        Some(pid) => ac.client.payout(pid).await?,
        None => ac.client.payout_by_code(id).await?,
    };
    match p {
        Some(p) => apply(store, ac, id, &p).await,
        None if w.status == WithdrawalStatus::Created && w.airtm_payout_id.is_none() => {
            let p = create_payout(ac, &w, false).await?;
            apply(store, ac, id, &p).await
        }
        None => settle(store, ac, id).await,
    }
}

/// Commits a created payout. 409 `WITHDRAWAL_NOT_COMMITTABLE` unless the withdrawal is
/// `WITHDRAWAL_CREATED` with an Airtm payout. Airtm's refusal (e.g. 415016, the
/// enterprise balance is short) is returned and nothing changes; "already processed"
/// (415027) and unknown outcomes are settled by re-reading the payout.
pub async fn commit(
    store: &Store,
    ctx: &Context,
    ac: &AirtmContext,
    id: &str,
) -> Result<Withdrawal> {
    let w = withdrawals::get(store, id).await?;
    ensure_airtm(&w)?;
    let not_committable = |w: &Withdrawal| {
        Error::new(
            ErrorCode::WithdrawalNotCommittable,
            format!(
                "Withdrawal {} is {} and cannot be committed",
                w.id, w.status
            ),
        )
        .with_details(
            json!({ "currentStatus": w.status, "allowedStatuses": [WithdrawalStatus::Created] }),
        )
    };
    let Some(pid) = w
        .airtm_payout_id
        .clone()
        .filter(|_| w.status == WithdrawalStatus::Created)
    else {
        return Err(not_committable(&w));
    };
    {
        let mut db = store.begin_for(ctx).await?;
        db.audit(
            ctx.audit("withdrawal.commit_requested", "withdrawal", id)
                .after(json!({ "airtmPayoutId": pid })),
        );
        db.commit().await?;
    }
    match ac.client.commit_payout(&pid).await {
        Ok(()) => refresh(store, ac, id).await,
        Err(e) if airtm::provider_code(&e) == Some("415027") || airtm::is_transient(&e) => {
            let after = refresh(store, ac, id).await?;
            if after.status == WithdrawalStatus::Created && !airtm::is_transient(&e) {
                return Err(not_committable(&after));
            }
            Ok(after)
        }
        Err(e) => Err(e),
    }
}

/// Cancels a payout Airtm still allows to cancel (`CREATED`, or `PENDING` on the
/// recipient); the hold returns to available. 409 `INVALID_STATE_TRANSITION` otherwise.
pub async fn cancel(
    store: &Store,
    ctx: &Context,
    ac: &AirtmContext,
    id: &str,
) -> Result<Withdrawal> {
    let w = withdrawals::get(store, id).await?;
    ensure_airtm(&w)?;
    let allowed = [
        WithdrawalStatus::Created,
        WithdrawalStatus::PendingUserAction,
    ];
    let refuse = |w: &Withdrawal| {
        Error::new(
            ErrorCode::InvalidStateTransition,
            format!(
                "Withdrawal {} is {} and can no longer be canceled",
                w.id, w.status
            ),
        )
        .with_details(json!({ "currentStatus": w.status, "allowedStatuses": allowed }))
    };
    if !allowed.contains(&w.status) {
        return Err(refuse(&w));
    }
    {
        let mut db = store.begin_for(ctx).await?;
        db.audit(
            ctx.audit("withdrawal.cancel_requested", "withdrawal", id)
                .before(json!({ "status": w.status })),
        );
        db.commit().await?;
    }
    let pid = match &w.airtm_payout_id {
        Some(p) => Some(p.clone()),
        None => ac.client.payout_by_code(id).await?.map(|p| p.id),
    };
    let Some(pid) = pid else {
        // Not found at Airtm. A create that timed out may still land for a short while:
        // refuse until that window has passed rather than void a hold Airtm may pay.
        let recent = chrono::DateTime::parse_from_rfc3339(&w.created_at)
            .map(|t| chrono::Utc::now().signed_duration_since(t) < chrono::Duration::minutes(5))
            .unwrap_or(true);
        if recent {
            return Err(Error::new(
                ErrorCode::OperationInProgress,
                "Airtm has not confirmed whether this payout was created; try again in a few minutes",
            ));
        }
        // Airtm never created it: nothing can be paid.
        end(
            store,
            &w,
            WithdrawalStatus::Canceled,
            "withdrawal.canceled",
            "canceled before Airtm created the payout",
        )
        .await?;
        return withdrawals::get(store, id).await;
    };
    let outcome = ac.client.cancel_payout(&pid).await;
    let after = refresh(store, ac, id).await?;
    match outcome {
        Ok(()) => Ok(after),
        Err(_) if after.status == WithdrawalStatus::Canceled => Ok(after),
        Err(e) if airtm::provider_code(&e).is_some_and(|c| !c.is_empty()) => Err(refuse(&after)),
        Err(e) => Err(e),
    }
}

/// Refreshes open payout withdrawals untouched for `stale_secs` (and all settling
/// ones), oldest first, at most `limit`. Returns how many were looked at.
pub async fn reconcile_open(
    store: &Store,
    ac: &AirtmContext,
    stale_secs: i64,
    limit: u32,
) -> Result<usize> {
    let cutoff = (chrono::Utc::now() - chrono::Duration::seconds(stale_secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM withdrawals WHERE destination_type IN ('bank', 'airtm_balance') \
         AND ((status IN ($2, $3, $4, $5) AND updated_at < $1) OR status = $6) ORDER BY updated_at LIMIT {limit}"
    )))
    .bind(&cutoff)
    .bind(OPEN[0])
    .bind(OPEN[1])
    .bind(OPEN[2])
    .bind(OPEN[3])
    .bind(WithdrawalStatus::Settling)
    .fetch_all(store.reader())
    .await?;
    let mut n = 0;
    for r in rows {
        let id: String = r.try_get("id")?;
        if let Err(e) = refresh(store, ac, &id).await {
            tracing::warn!(withdrawal_id = %id, error = %e, "payout reconciliation failed");
        }
        n += 1;
    }
    Ok(n)
}

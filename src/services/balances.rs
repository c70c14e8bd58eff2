//! Balances: reads of the ledger projection and support adjustments.

use serde::Serialize;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::events::NewEvent;
use crate::ids::{IdKind, new_id};
use crate::ledger::{self, Balance, Posting};
use crate::money::Amount;
use crate::services::users;
use crate::store::Store;

/// A user's balance; 404 `USER_NOT_FOUND` for an unknown user.
pub async fn get(store: &Store, user_id: &str) -> Result<Balance> {
    users::get(store, user_id).await?;
    ledger::balance(store.reader(), user_id).await
}

/// Outcome of [`adjust`].
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Adjustment {
    /// Journal transaction id (`jtx_…`).
    pub transaction_id: String,
    pub user_id: String,
    /// Signed change applied to `available`.
    pub amount: Amount,
    pub reason: String,
    pub balance: Balance,
}

/// Credits (positive `amount`) or debits (negative) the user's available balance against
/// `external:adjustments`. Never makes available negative: 422 `INSUFFICIENT_FUNDS` and
/// nothing changes. `reason`: 1–500 characters. Audited as `balance.adjusted`.
pub async fn adjust(
    store: &Store,
    ctx: &Context,
    user_id: &str,
    amount: Amount,
    reason: &str,
) -> Result<Adjustment> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(Error::validation("reason", "must be 1 to 500 characters"));
    }
    if amount == Amount::ZERO {
        return Err(Error::amount("amount", "must not be zero"));
    }
    let negated = amount
        .checked_neg()
        .ok_or_else(|| crate::money::AmountError::Overflow.at("amount"))?;
    if !crate::ids::is_valid(IdKind::User, user_id) {
        // The same 404 as for an unknown user.
        users::get(store, user_id).await?;
    }
    let mut tx = store.begin_for(ctx).await?;
    let reference = new_id(IdKind::Journal);
    let (recorded, after) = match ledger::record_with_balance(
        &mut tx,
        "adjustment",
        &reference,
        reason,
        &[
            Posting::new(ledger::available_account(user_id), amount),
            Posting::new(ledger::ADJUSTMENTS_ACCOUNT, negated),
        ],
        user_id,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            // An unknown user has no ledger account: 404 (the ledger answers it on the
            // one-statement path; checked here for any other). Checked only on failure:
            // one round trip fewer on success.
            tx.rollback().await?;
            users::get(store, user_id).await?;
            return Err(e);
        }
    };
    // The posting moved `available` by `amount` and nothing else (one statement fewer
    // than reading the balance before).
    let undo = |b: Amount| {
        b.checked_sub(amount)
            .ok_or_else(|| Error::internal("balance before the adjustment out of range"))
    };
    let before = ledger::Balance {
        available: undo(after.available)?,
        total: undo(after.total)?,
        ..after.clone()
    };
    tx.audit(
        ctx.audit("balance.adjusted", "user", user_id)
            .before(serde_json::json!({ "balance": before }))
            .after(serde_json::json!({ "balance": after, "amount": amount, "reason": reason })),
    );
    let (event_type, key) = if amount.is_positive() {
        ("balance.credited", "source")
    } else {
        ("balance.debited", "destination")
    };
    tx.emit(NewEvent::new(
        event_type,
        "user",
        user_id,
        serde_json::json!({
            "userId": user_id,
            "amount": if amount.is_positive() { amount } else { negated },
            "currency": "USD",
            key: "adjustment",
            "sourceId": recorded.journal_id(),
            "reason": reason,
            "previousAvailableBalance": before.available,
            "newAvailableBalance": after.available,
        }),
    ));
    tx.commit().await?;
    Ok(Adjustment {
        transaction_id: recorded.journal_id().to_string(),
        user_id: user_id.to_string(),
        amount,
        reason: reason.to_string(),
        balance: after,
    })
}

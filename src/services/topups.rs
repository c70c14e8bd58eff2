//! Top-ups: fiat in through an Airtm payin (docs/PROVIDERS.md, Airtm: payins).
//!
//! 1. [`create`] validates, records the top-up (`TOPUP_CREATED`) and creates the payin with
//!    **our top-up id as its `code`** (docs/PROVIDERS.md, Airtm: idempotency), one item,
//!    our callback as `confirmationUri`/`cancelUri`. The answer carries `confirmationUri`:
//!    Airtm's hosted checkout for the payin (`AIRTM_CHECKOUT_URL`), where the marketplace
//!    sends the buyer (`TOPUP_AWAITING_USER_CONFIRMATION`).
//! 2. The browser comes back through `GET /topups/{id}/callback`, which only redirects
//!    to the marketplace's `returnUrl`/`cancelUrl`: reaching it proves nothing
//!    (docs/PROVIDERS.md, Airtm: payins).
//! 3. Money moves only when Airtm itself says `CONFIRMED` — a `payin.confirmed`
//!    webhook makes OfferHub re-fetch the payin, as do [`refresh`] and the reconciler.
//!    The top-up becomes `TOPUP_SETTLING`; the treasury pays the payin's `netAmount`
//!    (what the enterprise received) in USDC to the user's wallet
//!    ([`crate::services::treasury`]); when that lands, one journal transaction
//!    `topup`/{id} credits `user:{id}:available` from `external:airtm` and the top-up is
//!    `TOPUP_SUCCEEDED`. Every step is compare-and-set and the journal is unique on
//!    (kind, reference): webhooks arriving three times, a racing refresh and the
//!    reconciler credit once.
//!
//! Other states: `TOPUP_PROCESSING` (Airtm `PROCESSING`), `TOPUP_CANCELED`,
//! `TOPUP_FAILED`. A payin Airtm confirms after we saw it fail or cancel is still
//! credited: the money arrived. Events: `topup.created`, `topup.confirmation_required`,
//! `topup.processing`, `topup.succeeded` (+ `balance.credited`), `topup.failed`,
//! `topup.canceled`.

use serde::Serialize;
use serde_json::json;
use sqlx::Row;

use crate::airtm::{self, NewPayin, Payin, PayinStatus};
use crate::context::Context;
use crate::error::{Error, ErrorCode, Result};
use crate::events::NewEvent;
use crate::ids::{IdKind, new_id};
use crate::ledger::{self, Posting, Recorded};
use crate::money::Amount;
use crate::pagination::{Page, PageRequest};
use crate::services::airtm::AirtmContext;
use crate::services::treasury::{self, Direction, Owner, Settled, Transfer};
use crate::services::{users, wallets};
use crate::store::{Select, Store};

pub use crate::domain::topup::TopUpStatus;
use crate::domain::wallet::WalletStatus;

/// A top-up (the API serialises it as `daemon::dto::topups::TopUp`).
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct TopUp {
    pub id: String,
    pub user_id: String,
    /// What the user pays (decimal string, USD).
    pub amount: Amount,
    pub currency: String,
    /// `TOPUP_CREATED`, `TOPUP_AWAITING_USER_CONFIRMATION`, `TOPUP_PROCESSING`,
    /// `TOPUP_SETTLING`, `TOPUP_SUCCEEDED`, `TOPUP_FAILED`, `TOPUP_CANCELED`.
    pub status: TopUpStatus,
    /// Airtm's hosted checkout: send the buyer's browser here.
    pub confirmation_uri: Option<String>,
    #[sqlx(rename = "payin_id")]
    pub airtm_payin_id: Option<String>,
    /// Airtm's own status text of the payin.
    pub airtm_status: Option<String>,
    pub return_url: String,
    pub cancel_url: String,
    /// USDC credited (the payin's `netAmount`), once confirmed.
    #[sqlx(rename = "net_amount")]
    pub credited_amount: Option<Amount>,
    pub airtm_fee: Option<Amount>,
    pub failure_reason: Option<String>,
    /// The treasury's USDC transfer to the user's wallet.
    pub settlement_tx_hash: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
    #[serde(skip)]
    seq: i64,
}

const COLUMNS: &str = "seq, id, user_id, amount, currency, status, payin_id, airtm_status, confirmation_uri, \
     return_url, cancel_url, net_amount, airtm_fee, failure_reason, settlement_tx_hash, created_at, updated_at, \
     completed_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<TopUp> {
    Ok(<TopUp as sqlx::FromRow<_>>::from_row(r)?)
}

/// One top-up; 404 `TOPUP_NOT_FOUND`.
pub async fn get(store: &Store, id: &str) -> Result<TopUp> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM topups WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(store.reader())
    .await?;
    row.as_ref().map(from_row).transpose()?.ok_or_else(|| {
        Error::new(
            ErrorCode::TopupNotFound,
            format!("Top-up {id} does not exist"),
        )
    })
}

/// Top-ups newest first, optionally of one user and/or in one status.
pub async fn list(
    store: &Store,
    user_id: Option<&str>,
    status: Option<&str>,
    page: &PageRequest,
) -> Result<Page<TopUp>> {
    let mut q = Select::new(format!("SELECT {COLUMNS} FROM topups WHERE seq < "));
    q.push_bind(page.cursor_seq()?.unwrap_or(i64::MAX))
        .and_eq("user_id", user_id)
        .and_eq("status", status)
        .push(format_args!(" ORDER BY seq DESC LIMIT {}", page.limit + 1));
    let rows = q.build()?.fetch_all(store.reader()).await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, page.limit, |t| t.seq))
}

/// What `POST /topups` takes.
#[derive(Clone, Debug)]
pub struct NewTopUp<'a> {
    pub user_id: &'a str,
    pub amount: Amount,
    pub currency: &'a str,
    pub return_url: &'a str,
    pub cancel_url: &'a str,
}

/// Creates a top-up and its payin (module documentation, step 1). Errors: validation
/// (`amount` positive with at most 2 decimals, `currency` USD, URLs), `USER_NOT_FOUND`,
/// `USER_SUSPENDED`, `WALLET_NOT_READY` (the credit goes to the user's wallet), Airtm's
/// refusal (`PROVIDER_ERROR` with `details.providerCode` and `details.topupId`; the
/// top-up is then `TOPUP_FAILED`). When Airtm cannot be reached the top-up is returned
/// as `TOPUP_CREATED` and the reconciler creates the payin later (same code, so never
/// twice).
pub async fn create(
    store: &Store,
    ctx: &Context,
    ac: &AirtmContext,
    t: &NewTopUp<'_>,
) -> Result<TopUp> {
    if !t.amount.is_positive() {
        return Err(Error::amount("amount", "must be greater than zero"));
    }
    airtm::usd(t.amount, "amount")?;
    if !t.currency.eq_ignore_ascii_case("USD") {
        return Err(Error::validation(
            "currency",
            "must be USD (Airtm settles in US dollars)",
        ));
    }
    let return_url = crate::services::http_url("returnUrl", t.return_url)?.to_string();
    let cancel_url = crate::services::http_url("cancelUrl", t.cancel_url)?.to_string();
    let user = users::get(store, t.user_id).await?;
    user.ensure_active()?;
    let wallet = wallets::for_user(store, t.user_id).await?;
    if wallet.status != WalletStatus::Active {
        return Err(Error::new(
            ErrorCode::WalletNotReady,
            format!(
                "The user's wallet is {}; top-ups are credited to it once it is active",
                wallet.status
            ),
        ));
    }
    let id = new_id(IdKind::TopUp);
    let now = crate::clock::now();
    let mut db = store.begin_for(ctx).await?;
    sqlx::query(
        "INSERT INTO topups (id, user_id, amount, currency, status, return_url, cancel_url, created_at, updated_at) \
         VALUES ($1, $2, $3, 'USD', $7, $4, $5, $6, $6)",
    )
    .bind(&id)
    .bind(t.user_id)
    .bind(t.amount.base_units())
    .bind(&return_url)
    .bind(&cancel_url)
    .bind(&now)
    .bind(TopUpStatus::Created)
    .execute(db.conn())
    .await?;
    let data = json!({ "topupId": id, "userId": t.user_id, "amount": t.amount, "currency": "USD" });
    db.audit(ctx.audit("topup.created", "topup", &id).after(&data));
    db.emit(NewEvent::new("topup.created", "topup", &id, data));
    db.commit().await?;
    let top = get(store, &id).await?;
    match create_payin(ac, &top).await {
        Ok(payin) => apply(store, ac, &id, &payin).await,
        Err(e) if airtm::is_transient(&e) => {
            tracing::warn!(topup_id = %id, error = %e, "Airtm unreachable creating the payin; the reconciler will retry");
            match ac.client.payin_by_code(&id).await {
                Ok(Some(payin)) => apply(store, ac, &id, &payin).await,
                _ => get(store, &id).await,
            }
        }
        Err(e) => {
            fail_local(store, &top, &e.message).await?;
            let mut details = e.details.clone().unwrap_or_else(|| json!({}));
            details["topupId"] = json!(id);
            Err(e.with_details(details))
        }
    }
}

async fn create_payin(ac: &AirtmContext, t: &TopUp) -> Result<Payin> {
    let callback = |result: &str| {
        format!(
            "{}/api/v1/topups/{}/callback?result={result}",
            ac.public_base_url.as_str().trim_end_matches('/'),
            t.id
        )
    };
    ac.client
        .create_payin(&NewPayin {
            code: &t.id,
            amount: t.amount,
            description: &format!("Balance top-up {}", t.id),
            confirmation_uri: &callback("confirmed"),
            cancel_uri: &callback("canceled"),
        })
        .await
}

async fn fail_local(store: &Store, t: &TopUp, reason: &str) -> Result<()> {
    transition(
        store,
        t,
        TopUpStatus::Failed,
        "topup.failed",
        json!({ "reason": reason }),
        Some(reason),
    )
    .await?;
    Ok(())
}

/// Moves an open top-up to `to` (compare-and-set on its current status) with its event
/// and audit row. `false` when another writer changed it first.
async fn transition(
    store: &Store,
    t: &TopUp,
    to: TopUpStatus,
    event: &str,
    extra: serde_json::Value,
    reason: Option<&str>,
) -> Result<bool> {
    let mut db = store.begin().await?;
    let done = sqlx::query(
        "UPDATE topups SET status = $1, failure_reason = COALESCE($2, failure_reason), updated_at = $3 \
         WHERE id = $4 AND status = $5",
    )
    .bind(to)
    .bind(reason)
    .bind(crate::clock::now())
    .bind(&t.id)
    .bind(t.status)
    .execute(db.conn())
    .await?
    .rows_affected();
    if done == 0 {
        return Ok(false);
    }
    let mut data = json!({ "topupId": t.id, "userId": t.user_id, "amount": t.amount, "currency": t.currency, "status": to });
    if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    db.audit(
        Context::system()
            .audit(event, "topup", &t.id)
            .before(json!({ "status": t.status }))
            .after(&data),
    );
    db.emit(NewEvent::new(event, "topup", &t.id, data));
    db.commit().await?;
    Ok(true)
}

/// Applies what Airtm reports about the payin of top-up `id`, then settles a confirmed
/// one. Returns the top-up in its resulting state. A payin whose `code` is not `id` is
/// refused (`PROVIDER_ERROR`).
pub async fn apply(store: &Store, ac: &AirtmContext, id: &str, payin: &Payin) -> Result<TopUp> {
    if payin.code != id {
        return Err(Error::new(
            ErrorCode::ProviderError,
            format!(
                "Airtm payin {} belongs to code {:?}, not {id}",
                payin.id, payin.code
            ),
        ));
    }
    let checkout = ac.checkout_url(&payin.id);
    record_provider_status(store, id, payin, &checkout).await?;
    let t = get(store, id).await?;
    follow_payin(store, &t, payin, &checkout).await?;
    settle(store, ac, id).await
}

/// Records Airtm's view of the payin (id, status text, checkout URL) on top-up `id` when
/// it changed, audited as `topup.provider_status`.
async fn record_provider_status(
    store: &Store,
    id: &str,
    payin: &Payin,
    checkout: &str,
) -> Result<()> {
    let before = get(store, id).await?;
    if before.airtm_payin_id.as_deref() == Some(payin.id.as_str())
        && before.airtm_status.as_deref() == Some(payin.status_text.as_str())
    {
        return Ok(());
    }
    let mut db = store.begin().await?;
    sqlx::query(
        "UPDATE topups SET payin_id = $1, airtm_status = $2, confirmation_uri = COALESCE(confirmation_uri, $3), \
         updated_at = $4 WHERE id = $5",
    )
    .bind(&payin.id)
    .bind(&payin.status_text)
    .bind(checkout)
    .bind(crate::clock::now())
    .bind(id)
    .execute(db.conn())
    .await?;
    db.audit(
        Context::system()
            .audit("topup.provider_status", "topup", id)
            .before(json!({ "airtmPayinId": before.airtm_payin_id, "airtmStatus": before.airtm_status }))
            .after(json!({ "airtmPayinId": payin.id, "airtmStatus": payin.status_text })),
    );
    db.commit().await
}

/// Moves top-up `t` (as read after recording Airtm's view) to the state the payin's
/// status calls for, each by compare-and-set; a confirmed payin makes it
/// `TOPUP_SETTLING` ([`confirm`]). A status that does not apply to `t`'s state changes
/// nothing.
async fn follow_payin(store: &Store, t: &TopUp, payin: &Payin, checkout: &str) -> Result<()> {
    match &payin.status {
        PayinStatus::Created if t.status == TopUpStatus::Created => {
            transition(
                store,
                t,
                TopUpStatus::AwaitingUserConfirmation,
                "topup.confirmation_required",
                json!({ "confirmationUri": checkout, "airtmPayinId": payin.id }),
                None,
            )
            .await?;
        }
        PayinStatus::Processing
            if matches!(
                t.status,
                TopUpStatus::Created | TopUpStatus::AwaitingUserConfirmation
            ) =>
        {
            transition(
                store,
                t,
                TopUpStatus::Processing,
                "topup.processing",
                json!({ "airtmPayinId": payin.id }),
                None,
            )
            .await?;
        }
        PayinStatus::Confirmed
            if !matches!(t.status, TopUpStatus::Settling | TopUpStatus::Succeeded) =>
        {
            confirm(store, t, payin).await?;
        }
        PayinStatus::Canceled if t.status.is_open() && t.status != TopUpStatus::Settling => {
            transition(
                store,
                t,
                TopUpStatus::Canceled,
                "topup.canceled",
                json!({ "airtmPayinId": payin.id }),
                None,
            )
            .await?;
        }
        PayinStatus::Failed if t.status.is_open() && t.status != TopUpStatus::Settling => {
            let reason = payin
                .failure_reason
                .clone()
                .unwrap_or_else(|| format!("Airtm reports the payin {}", payin.status_text));
            transition(
                store,
                t,
                TopUpStatus::Failed,
                "topup.failed",
                json!({ "airtmPayinId": payin.id, "reason": reason }),
                Some(&reason),
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// A confirmed payin: top-up `t` becomes `TOPUP_SETTLING` with the payin's `netAmount`
/// (what will be credited) and Airtm's fee (compare-and-set on its status; audited as
/// `topup.confirmed`). A payin with nothing to credit is refused (`PROVIDER_ERROR`).
async fn confirm(store: &Store, t: &TopUp, payin: &Payin) -> Result<()> {
    let net = payin.net_amount.or(payin.amount).unwrap_or(t.amount);
    let fee = payin.airtm_fee.unwrap_or(Amount::ZERO);
    if !net.is_positive() {
        return Err(Error::new(
            ErrorCode::ProviderError,
            format!(
                "Airtm confirmed payin {} with no amount to credit",
                payin.id
            ),
        ));
    }
    let mut db = store.begin().await?;
    let done = sqlx::query(
        "UPDATE topups SET status = $7, net_amount = $1, airtm_fee = $2, \
         airtm_user_email = $3, updated_at = $4 WHERE id = $5 AND status = $6",
    )
    .bind(net.base_units())
    .bind(fee.base_units())
    .bind(&payin.airtm_user_email)
    .bind(crate::clock::now())
    .bind(&t.id)
    .bind(t.status)
    .bind(TopUpStatus::Settling)
    .execute(db.conn())
    .await?
    .rows_affected();
    if done == 1 {
        db.audit(
            Context::system()
                .audit("topup.confirmed", "topup", &t.id)
                .before(json!({ "status": t.status }))
                .after(json!({ "status": TopUpStatus::Settling, "airtmPayinId": payin.id, "netAmount": net, "airtmFee": fee })),
        );
    }
    db.commit().await
}

/// Settles a `TOPUP_SETTLING` top-up: the treasury transfer, then the credit (exactly
/// once). Other top-ups are returned unchanged. A transfer that cannot land yet (the
/// treasury lacks USDC, Horizon unreachable) leaves the top-up settling with the reason
/// in `failureReason`; the reconciler tries again.
pub async fn settle(store: &Store, ac: &AirtmContext, id: &str) -> Result<TopUp> {
    let t = get(store, id).await?;
    if t.status != TopUpStatus::Settling {
        return Ok(t);
    }
    let net = t.credited_amount.unwrap_or(t.amount);
    let outcome = treasury::settle(
        store,
        &ac.sc,
        &Transfer {
            owner: Owner::TopUp,
            id,
            user_id: &t.user_id,
            amount: net,
            direction: Direction::ToUser,
        },
    )
    .await?;
    let hash = match outcome {
        Settled::Landed { hash } => hash,
        Settled::Waiting { reason } => {
            if let Some(r) = reason {
                let mut db = store.begin().await?;
                sqlx::query("UPDATE topups SET failure_reason = $1 WHERE id = $2 AND status = $3")
                    .bind(format!("treasury transfer pending: {r}"))
                    .bind(id)
                    .bind(TopUpStatus::Settling)
                    .execute(db.conn())
                    .await?;
                db.commit().await?;
            }
            return get(store, id).await;
        }
    };
    let now = crate::clock::now();
    let mut db = store.begin().await?;
    let done = sqlx::query(
        "UPDATE topups SET status = $4, settlement_tx_hash = $1, failure_reason = NULL, \
         completed_at = $2, updated_at = $2 WHERE id = $3 AND status = $5",
    )
    .bind(&hash)
    .bind(&now)
    .bind(id)
    .bind(TopUpStatus::Succeeded)
    .bind(TopUpStatus::Settling)
    .execute(db.conn())
    .await?
    .rows_affected();
    if done == 1 {
        let before = ledger::balance(db.conn(), &t.user_id).await?;
        let recorded = ledger::record(
            &mut db,
            "topup",
            id,
            &format!("Airtm top-up {id} (treasury transfer {hash})"),
            &[
                Posting::new(
                    ledger::EXTERNAL_AIRTM,
                    net.checked_neg().unwrap_or(Amount::ZERO),
                ),
                Posting::new(ledger::available_account(&t.user_id), net),
            ],
        )
        .await?;
        if let Recorded::Applied(journal_id) = recorded {
            let after = ledger::balance(db.conn(), &t.user_id).await?;
            let data = json!({
                "topupId": id, "userId": t.user_id, "amount": t.amount, "creditedAmount": net,
                "airtmFee": t.airtm_fee, "currency": "USD", "airtmPayinId": t.airtm_payin_id,
                "transactionHash": hash, "newAvailableBalance": after.available,
            });
            db.audit(
                Context::system()
                    .audit("topup.succeeded", "topup", id)
                    .after(&data),
            );
            db.emit(NewEvent::new("topup.succeeded", "topup", id, data));
            let credit = json!({
                "userId": t.user_id, "amount": net, "currency": "USD", "source": "airtm_topup",
                "sourceId": id, "journalId": journal_id, "transactionHash": hash,
                "previousAvailableBalance": before.available, "newAvailableBalance": after.available,
            });
            db.audit(
                Context::system()
                    .audit("balance.credited", "user", &t.user_id)
                    .after(&credit),
            );
            db.emit(NewEvent::new(
                "balance.credited",
                "user",
                &t.user_id,
                credit,
            ));
        }
    }
    db.commit().await?;
    get(store, id).await
}

/// Re-reads the payin from Airtm (by id, or by our code when the id is not known yet)
/// and applies it. A top-up whose payin was never created (Airtm unreachable at
/// creation) gets it created now — the code makes that idempotent.
pub async fn refresh(store: &Store, ac: &AirtmContext, id: &str) -> Result<TopUp> {
    let t = get(store, id).await?;
    let payin = match &t.airtm_payin_id {
        Some(pid) => ac.client.payin(pid).await?,
        None => ac.client.payin_by_code(id).await?,
    };
    match payin {
        Some(p) => apply(store, ac, id, &p).await,
        None if t.status == TopUpStatus::Created => {
            let p = create_payin(ac, &t).await?;
            apply(store, ac, id, &p).await
        }
        None => settle(store, ac, id).await,
    }
}

/// Cancels a top-up the buyer has not paid: `DELETE /payins/{id}` at Airtm, then the
/// re-read state is applied. 409 `INVALID_STATE_TRANSITION` when Airtm no longer allows
/// it (the payer confirmed meanwhile — the top-up then proceeds to its credit) or the
/// top-up is past waiting.
pub async fn cancel(store: &Store, ctx: &Context, ac: &AirtmContext, id: &str) -> Result<TopUp> {
    let t = get(store, id).await?;
    let cancelable = TopUpStatus::UNCONFIRMED;
    let refuse = |t: &TopUp| {
        Error::new(
            ErrorCode::InvalidStateTransition,
            format!(
                "Top-up {} is {} and can no longer be canceled",
                t.id, t.status
            ),
        )
        .with_details(json!({ "currentStatus": t.status, "allowedStatuses": cancelable }))
    };
    if !cancelable.contains(&t.status) {
        return Err(refuse(&t));
    }
    {
        let mut db = store.begin_for(ctx).await?;
        db.audit(
            ctx.audit("topup.cancel_requested", "topup", id)
                .before(json!({ "status": t.status })),
        );
        db.commit().await?;
    }
    let payin = match &t.airtm_payin_id {
        Some(pid) => Some(pid.clone()),
        None => ac.client.payin_by_code(id).await?.map(|p| p.id),
    };
    match payin {
        None => {
            // Airtm never created it: nothing can be paid; cancel locally.
            transition(
                store,
                &t,
                TopUpStatus::Canceled,
                "topup.canceled",
                json!({ "canceledBy": ctx.actor.id }),
                None,
            )
            .await?;
            get(store, id).await
        }
        Some(pid) => {
            let outcome = ac.client.cancel_payin(&pid).await;
            let after = refresh(store, ac, id).await?;
            match outcome {
                Ok(()) => Ok(after),
                Err(e)
                    if airtm::provider_code(&e).is_some()
                        && after.status != TopUpStatus::Canceled =>
                {
                    Err(refuse(&after))
                }
                Err(e) if after.status != TopUpStatus::Canceled => Err(e),
                Err(_) => Ok(after),
            }
        }
    }
}

/// Refreshes open top-ups last touched more than `stale_secs` ago (all settling ones),
/// oldest first, at most `limit` — the reconciler's pass: a missed webhook never leaves
/// money stuck. Returns how many were looked at.
pub async fn reconcile_open(
    store: &Store,
    ac: &AirtmContext,
    stale_secs: i64,
    limit: u32,
) -> Result<usize> {
    let cutoff = (chrono::Utc::now() - chrono::Duration::seconds(stale_secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM topups WHERE (status IN ($2, $3, $4, $5) AND updated_at < $1) OR status = $6 \
         ORDER BY updated_at LIMIT {limit}"
    )))
    .bind(&cutoff)
    .bind(TopUpStatus::OPEN[0])
    .bind(TopUpStatus::OPEN[1])
    .bind(TopUpStatus::OPEN[2])
    .bind(TopUpStatus::OPEN[3])
    .bind(TopUpStatus::Settling)
    .fetch_all(store.reader())
    .await?;
    let mut n = 0;
    for r in rows {
        let id: String = r.try_get("id")?;
        if let Err(e) = refresh(store, ac, &id).await {
            tracing::warn!(topup_id = %id, error = %e, "top-up reconciliation failed");
        }
        n += 1;
    }
    Ok(n)
}

/// Airtm's payin expiry: a payin not paid within 15 days expires at Airtm
/// (docs/PROVIDERS.md, Airtm: payins).
pub const PAYIN_EXPIRY_SECS: u64 = 15 * 86_400;

/// Closes top-ups still awaiting the buyer (`TOPUP_CREATED`,
/// `TOPUP_AWAITING_USER_CONFIRMATION`) created more than `expiry_secs` ago (Airtm's
/// [`PAYIN_EXPIRY_SECS`] in the daemon): each is re-read from Airtm first (a payin paid
/// meanwhile is credited as usual); one still unpaid becomes `TOPUP_CANCELED` with
/// `topup.expired` (actor `system`, audited) and its payin is canceled at Airtm, best
/// effort. Should Airtm confirm it later anyway, the reconciler still credits it (the
/// money arrived). Returns how many expired.
pub async fn expire_stale(
    store: &Store,
    ac: &AirtmContext,
    expiry_secs: u64,
    limit: u32,
) -> Result<usize> {
    let cutoff = crate::services::lifecycle::before_now(expiry_secs);
    let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM topups WHERE status IN ($2, $3) \
         AND created_at < $1 ORDER BY created_at LIMIT {limit}"
    )))
    .bind(&cutoff)
    .bind(TopUpStatus::UNCONFIRMED[0])
    .bind(TopUpStatus::UNCONFIRMED[1])
    .fetch_all(store.reader())
    .await?;
    let mut n = 0;
    for id in ids {
        let t = match refresh(store, ac, &id).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(topup_id = %id, error = %e, "expired top-up not re-read; kept");
                continue;
            }
        };
        if !matches!(
            t.status,
            TopUpStatus::Created | TopUpStatus::AwaitingUserConfirmation
        ) {
            continue;
        }
        let expired = transition(
            store,
            &t,
            TopUpStatus::Canceled,
            "topup.expired",
            json!({ "airtmPayinId": t.airtm_payin_id, "createdAt": t.created_at, "expiredAt": crate::clock::now() }),
            Some("expired"),
        )
        .await?;
        if expired {
            n += 1;
            if let Some(pid) = &t.airtm_payin_id
                && let Err(e) = ac.client.cancel_payin(pid).await
            {
                tracing::debug!(topup_id = %id, error = %e, "canceling the expired payin at Airtm failed");
            }
        }
    }
    Ok(n)
}

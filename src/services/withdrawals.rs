//! Crypto withdrawals: USDC from a user's wallet to an external Stellar address.
//!
//! 1. Validate: active user, positive amount, `destinationRef` a valid `G…` (checksum)
//!    that exists on the network and trusts USDC — else 422
//!    `WITHDRAWAL_DESTINATION_INVALID` and nothing changes.
//! 2. Hold the amount (available → reserved) and record the withdrawal
//!    (`WITHDRAWAL_CREATED`) in one transaction.
//! 3. Build the payment — the platform is the transaction source (it pays the fee), the
//!    user's wallet is the operation source — sign it, and store the envelope and hash
//!    (`WITHDRAWAL_PENDING`) **before** submitting.
//! 4. Submit and settle: applied → post the hold to `external:stellar`
//!    (`WITHDRAWAL_COMPLETED`); definitive failure → void the hold (`WITHDRAWAL_FAILED`);
//!    unknown → stays pending and [`resume_pending`] resubmits the identical envelope
//!    until it is known. A withdrawal is never paid twice: one envelope at most is
//!    stored (compare-and-set) and submitted, and a new one is built only once the
//!    stored one has expired unapplied (`tx_too_late`). Emits `withdrawal.created`,
//!    `withdrawal.pending`, `withdrawal.completed` / `withdrawal.failed`.

use serde::Serialize;
use serde_json::json;
use sqlx::Row;

use crate::context::Context;
use crate::domain::transaction::TxResultCode;
use crate::domain::wallet::{WalletKind, WalletStatus};
pub use crate::domain::withdrawal::WithdrawalStatus;
use crate::error::{Error, ErrorCode, Result};
use crate::events::NewEvent;
use crate::ids::{IdKind, new_id};
use crate::ledger::{self, Posting};
use crate::money::Amount;
use crate::pagination::{Page, PageRequest};
use crate::services::users;
use crate::services::wallets::{self, StellarContext};
use crate::stellar::horizon::SubmitOutcome;
use crate::stellar::tx;
use crate::store::Store;

const VALIDITY_SECS: i64 = 120;

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Withdrawal {
    pub id: String,
    pub user_id: String,
    pub amount: Amount,
    pub currency: String,
    pub destination_type: String,
    pub destination_ref: String,
    /// Crypto: `WITHDRAWAL_CREATED`, `WITHDRAWAL_PENDING`, `WITHDRAWAL_COMPLETED`,
    /// `WITHDRAWAL_FAILED`. Airtm payouts ([`crate::services::payouts`]) add
    /// `WITHDRAWAL_COMMITTED`, `WITHDRAWAL_PENDING_USER_ACTION`, `WITHDRAWAL_SETTLING`,
    /// `WITHDRAWAL_CANCELED` and `WITHDRAWAL_NEEDS_ATTENTION`.
    pub status: WithdrawalStatus,
    /// Crypto: the payment's transaction hash.
    pub tx_hash: Option<String>,
    /// Airtm payouts: Airtm's payout id, its status text and the recipient's email.
    #[sqlx(rename = "payout_id")]
    pub airtm_payout_id: Option<String>,
    pub airtm_status: Option<String>,
    pub airtm_email: Option<String>,
    /// Airtm payouts: the sweep of the USDC from the user's wallet to the treasury.
    pub settlement_tx_hash: Option<String>,
    pub failure_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
    #[serde(skip)]
    seq: i64,
    #[serde(skip)]
    pub(crate) hold_id: Option<String>,
    #[serde(skip)]
    envelope: Option<String>,
}

const COLUMNS: &str = "seq, id, user_id, amount, currency, destination_type, destination_ref, status, hold_id, \
     envelope, tx_hash, failure_reason, created_at, updated_at, completed_at, payout_id, airtm_status, airtm_email, \
     settlement_tx_hash";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Withdrawal> {
    Ok(<Withdrawal as sqlx::FromRow<_>>::from_row(r)?)
}

pub(crate) fn not_found(id: &str) -> Error {
    Error::new(
        ErrorCode::WithdrawalNotFound,
        format!("Withdrawal {id} does not exist"),
    )
}

/// One withdrawal; 404 `WITHDRAWAL_NOT_FOUND`.
pub async fn get(store: &Store, id: &str) -> Result<Withdrawal> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM withdrawals WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(store.reader())
    .await?;
    row.as_ref()
        .map(from_row)
        .transpose()?
        .ok_or_else(|| not_found(id))
}

/// Withdrawals newest first, optionally of one user.
pub async fn list(
    store: &Store,
    user_id: Option<&str>,
    page: &PageRequest,
) -> Result<Page<Withdrawal>> {
    let cursor = page.cursor_seq()?.unwrap_or(i64::MAX);
    let limit = page.limit + 1;
    let rows = match user_id {
        Some(u) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM withdrawals WHERE user_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT {limit}"
            )))
            .bind(u)
            .bind(cursor)
            .fetch_all(store.reader())
            .await?
        }
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM withdrawals WHERE seq < $1 ORDER BY seq DESC LIMIT {limit}"
            )))
            .bind(cursor)
            .fetch_all(store.reader())
            .await?
        }
    };
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, page.limit, |w| w.seq))
}

fn invalid_destination(message: &str) -> Error {
    Error::new(ErrorCode::WithdrawalDestinationInvalid, message)
        .with_details(json!({ "field": "destinationRef" }))
}

/// Creates and executes a crypto withdrawal (see the module documentation). Returns the
/// withdrawal in its resulting state.
pub async fn create_crypto(
    store: &Store,
    ctx: &Context,
    sc: &StellarContext,
    user_id: &str,
    amount: Amount,
    destination: &str,
) -> Result<Withdrawal> {
    let w = record_crypto(store, ctx, sc, user_id, amount, destination).await?;
    execute(store, sc, &w.id).await
}

/// Validates, holds the amount and records the withdrawal (`WITHDRAWAL_CREATED`)
/// without paying yet; [`execute`] pays.
pub async fn record_crypto(
    store: &Store,
    ctx: &Context,
    sc: &StellarContext,
    user_id: &str,
    amount: Amount,
    destination: &str,
) -> Result<Withdrawal> {
    if !amount.is_positive() {
        return Err(Error::amount("amount", "must be greater than zero"));
    }
    let user = users::get(store, user_id).await?;
    user.ensure_active()?;
    let wallet = wallets::for_user(store, user_id).await?;
    if wallet.status != WalletStatus::Active {
        return Err(Error::new(
            ErrorCode::WalletNotReady,
            format!("The user's wallet is {}", wallet.status),
        ));
    }
    if crate::stellar::keys::parse_account(destination, "destinationRef").is_err() {
        return Err(invalid_destination(
            "destinationRef must be a Stellar account id (G…, valid checksum)",
        ));
    }
    if destination == wallet.public_key {
        return Err(invalid_destination(
            "destinationRef is the user's own wallet",
        ));
    }
    // USDC paid to a wallet OfferHub manages would land there with no ledger account
    // behind it (the platform/treasury) or bypass the recipient's ledger (another user):
    // money between users moves through orders, never through a chain payment.
    let managed: Option<WalletKind> =
        sqlx::query_scalar("SELECT kind FROM wallets WHERE public_key = $1")
            .bind(destination)
            .fetch_optional(store.reader())
            .await?;
    if let Some(kind) = managed {
        return Err(invalid_destination(if kind == WalletKind::User {
            "destinationRef is another OfferHub user's wallet: move money between users with an order, not a withdrawal"
        } else {
            "destinationRef is OfferHub's own platform (treasury) wallet: withdrawals must leave OfferHub"
        }));
    }
    let dest = sc.horizon.account(destination).await?;
    match dest {
        None => {
            return Err(invalid_destination(
                "the destination account does not exist on the network",
            ));
        }
        Some(a) if a.credit(&sc.usdc.code, &sc.usdc_issuer).is_none() => {
            return Err(invalid_destination(
                "the destination account has no USDC trustline",
            ));
        }
        Some(_) => {}
    }
    let id = new_id(IdKind::Withdrawal);
    let now = crate::clock::now();
    let mut db = store.begin_for(ctx).await?;
    let hold = ledger::hold(&mut db, user_id, amount, "withdrawal", &id).await?;
    sqlx::query(
        "INSERT INTO withdrawals (id, user_id, amount, currency, destination_type, destination_ref, status, hold_id, \
         created_at, updated_at) VALUES ($1, $2, $3, 'USDC', 'crypto', $4, $7, $5, $6, $6)",
    )
    .bind(&id)
    .bind(user_id)
    .bind(amount.base_units())
    .bind(destination)
    .bind(&hold.id)
    .bind(&now)
    .bind(WithdrawalStatus::Created)
    .execute(db.conn())
    .await?;
    let data = json!({ "withdrawalId": id, "userId": user_id, "amount": amount, "currency": "USDC", "destinationType": "crypto", "destinationRef": destination });
    db.audit(
        ctx.audit("withdrawal.created", "withdrawal", &id)
            .after(&data),
    );
    db.emit(NewEvent::new("withdrawal.created", "withdrawal", &id, data));
    db.commit().await?;
    get(store, &id).await
}

/// Stores the envelope, compare-and-set on there being none: at most one envelope
/// per withdrawal can ever exist, so two executors (a request and the resume worker,
/// or two daemons) can never both pay. `false` when another executor stored one first.
/// Emits `withdrawal.pending`.
async fn store_envelope(store: &Store, w: &Withdrawal, env: &tx::SignedEnvelope) -> Result<bool> {
    let mut db = store.begin().await?;
    let done = sqlx::query(
        "UPDATE withdrawals SET status = $5, envelope = $1, tx_hash = $2, updated_at = $3 \
         WHERE id = $4 AND envelope IS NULL AND status IN ($6, $7)",
    )
    .bind(&env.xdr)
    .bind(&env.hash)
    .bind(crate::clock::now())
    .bind(&w.id)
    .bind(WithdrawalStatus::Pending)
    .bind(WithdrawalStatus::CRYPTO_OPEN[0])
    .bind(WithdrawalStatus::CRYPTO_OPEN[1])
    .execute(db.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    let data = json!({ "withdrawalId": w.id, "userId": w.user_id, "amount": w.amount, "transactionHash": env.hash });
    db.audit(
        Context::system()
            .audit("withdrawal.pending", "withdrawal", &w.id)
            .after(&data),
    );
    db.emit(NewEvent::new(
        "withdrawal.pending",
        "withdrawal",
        &w.id,
        data,
    ));
    db.commit().await?;
    Ok(true)
}

/// Runs (or resumes) the payment of a created or pending withdrawal.
///
/// Safety: the withdrawal is re-read under the platform account's lock; only the one
/// stored envelope is ever submitted; a new envelope is built only after the stored one
/// can no longer land (`tx_too_late`). A `tx_bad_seq` leaves the envelope in place to be
/// retried until it lands or expires.
pub async fn execute(store: &Store, sc: &StellarContext, id: &str) -> Result<Withdrawal> {
    let platform = wallets::platform(store)
        .await?
        .filter(|p| p.status == WalletStatus::Active)
        .ok_or_else(|| {
            Error::new(
                ErrorCode::ProviderUnavailable,
                "the platform wallet is not active",
            )
        })?;
    let _guard = wallets::submission_lock(store, &sc.horizon, &platform.public_key).await?;
    let w = get(store, id).await?;
    if !matches!(
        w.status,
        WithdrawalStatus::Created | WithdrawalStatus::Pending
    ) {
        return Ok(w);
    }
    let envelope = match &w.envelope {
        Some(xdr) => tx::signed_from_xdr(xdr, &sc.network)?,
        None => {
            let wallet = wallets::for_user(store, &w.user_id).await?;
            let pkp = wallets::keypair(sc, &platform)?;
            let wkp = wallets::keypair(sc, &wallet)?;
            let seq = wallets::platform_sequence(sc, &platform).await?;
            let dest = crate::stellar::keys::parse_account(&w.destination_ref, "destinationRef")?;
            let mut pay = tx::payment(&dest, Some(&sc.usdc), w.amount);
            pay.source_account = Some(stellar_xdr::MuxedAccount::Ed25519(stellar_xdr::Uint256(
                wkp.public_bytes(),
            )));
            let max_time = tx::expiry(VALIDITY_SECS);
            let t = tx::transaction(&pkp.public_bytes(), seq + 1, max_time, vec![pay])?;
            let signed = tx::sign(t, &sc.network, &[&pkp, &wkp])?;
            if !store_envelope(store, &w, &signed).await? {
                // Another executor stored its envelope first: settle that one instead.
                let current = get(store, id).await?;
                match &current.envelope {
                    Some(xdr)
                        if matches!(
                            current.status,
                            WithdrawalStatus::Created | WithdrawalStatus::Pending
                        ) =>
                    {
                        tx::signed_from_xdr(xdr, &sc.network)?
                    }
                    _ => return Ok(current),
                }
            } else {
                signed
            }
        }
    };
    match sc.horizon.submit_settled(&envelope).await? {
        SubmitOutcome::Applied { hash, .. } => complete(store, &w, &hash).await?,
        SubmitOutcome::Failed {
            tx_code: TxResultCode::TooLate,
            ..
        } => {
            // It can never land now: allow a new envelope, unless another was stored.
            let mut db = store.begin().await?;
            sqlx::query("UPDATE withdrawals SET envelope = NULL, updated_at = $1 WHERE id = $2 AND envelope = $3")
                .bind(crate::clock::now())
                .bind(id)
                .bind(&envelope.xdr)
                .execute(db.conn())
                .await?;
            db.commit().await?;
            tracing::info!(withdrawal_id = %id, "withdrawal envelope expired unapplied; a new one will be built");
        }
        SubmitOutcome::Failed {
            tx_code: TxResultCode::BadSeq,
            ..
        } => {
            tracing::warn!(withdrawal_id = %id, "withdrawal envelope has a stale sequence; retrying until it lands or expires");
        }
        SubmitOutcome::Failed {
            tx_code, op_codes, ..
        } => {
            fail(
                store,
                &w,
                format!("{tx_code} {}", op_codes.join(",")).trim(),
            )
            .await?
        }
        SubmitOutcome::Unknown { .. } => {}
    }
    get(store, id).await
}

async fn complete(store: &Store, w: &Withdrawal, hash: &str) -> Result<()> {
    let now = crate::clock::now();
    let mut db = store.begin().await?;
    let done = sqlx::query(
        "UPDATE withdrawals SET status = $4, tx_hash = $1, completed_at = $2, updated_at = $2 \
         WHERE id = $3 AND status IN ($5, $6)",
    )
    .bind(hash)
    .bind(&now)
    .bind(&w.id)
    .bind(WithdrawalStatus::Completed)
    .bind(WithdrawalStatus::CRYPTO_OPEN[0])
    .bind(WithdrawalStatus::CRYPTO_OPEN[1])
    .execute(db.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Ok(());
    }
    if let Some(h) = &w.hold_id {
        ledger::post_hold(
            &mut db,
            h,
            &[Posting::new(ledger::EXTERNAL_STELLAR, w.amount)],
        )
        .await?;
    }
    let data = json!({ "withdrawalId": w.id, "userId": w.user_id, "amount": w.amount, "currency": "USDC", "transactionHash": hash, "completedAt": now });
    db.audit(
        Context::system()
            .audit("withdrawal.completed", "withdrawal", &w.id)
            .after(&data),
    );
    db.emit(NewEvent::new(
        "withdrawal.completed",
        "withdrawal",
        &w.id,
        data,
    ));
    db.commit().await
}

async fn fail(store: &Store, w: &Withdrawal, reason: &str) -> Result<()> {
    let mut db = store.begin().await?;
    let done = sqlx::query(
        "UPDATE withdrawals SET status = $4, failure_reason = $1, updated_at = $2 \
         WHERE id = $3 AND status IN ($5, $6)",
    )
    .bind(reason)
    .bind(crate::clock::now())
    .bind(&w.id)
    .bind(WithdrawalStatus::Failed)
    .bind(WithdrawalStatus::CRYPTO_OPEN[0])
    .bind(WithdrawalStatus::CRYPTO_OPEN[1])
    .execute(db.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Ok(());
    }
    if let Some(h) = &w.hold_id {
        ledger::void_hold(&mut db, h).await?;
    }
    let data =
        json!({ "withdrawalId": w.id, "userId": w.user_id, "amount": w.amount, "reason": reason });
    db.audit(
        Context::system()
            .audit("withdrawal.failed", "withdrawal", &w.id)
            .after(&data),
    );
    db.emit(NewEvent::new(
        "withdrawal.failed",
        "withdrawal",
        &w.id,
        data,
    ));
    db.commit().await
}

/// Resumes withdrawals left created or pending (a restart, an unknown outcome).
pub async fn resume_pending(store: &Store, sc: &StellarContext) -> Result<usize> {
    let rows = sqlx::query(
        "SELECT id FROM withdrawals WHERE status IN ($1, $2) \
         AND destination_type = 'crypto' ORDER BY seq LIMIT 50",
    )
    .bind(WithdrawalStatus::CRYPTO_OPEN[0])
    .bind(WithdrawalStatus::CRYPTO_OPEN[1])
    .fetch_all(store.reader())
    .await?;
    let mut n = 0;
    for r in rows {
        let id: String = r.try_get("id")?;
        if let Err(e) = execute(store, sc, &id).await {
            tracing::warn!(withdrawal_id = %id, error = %e, "withdrawal attempt failed");
        }
        n += 1;
    }
    Ok(n)
}

//! Treasury settlement of Airtm money on Stellar (the chain stays the truth:
//! docs/ARCHITECTURE.md, Providers).
//!
//! Airtm moves fiat between the payer/recipient and the **enterprise's Airtm balance**;
//! OfferHub's balances are USDC in the users' wallets. The platform wallet is the
//! treasury that bridges the two:
//! - a confirmed top-up (payin) makes the treasury pay the credited USDC to the user's
//!   wallet ([`Direction::ToUser`]);
//! - a completed payout sweeps the withdrawn USDC from the user's wallet to the treasury
//!   ([`Direction::FromUser`]; the platform is the transaction source and pays the fee).
//!
//! Like crypto withdrawals, the signed envelope and its hash are stored on the row
//! (`settlement_envelope`, `settlement_tx_hash`, compare-and-set on there being none)
//! **before** submission, so at most one transfer per top-up or payout can exist; after a
//! crash the stored envelope is looked up by hash and resubmitted as is. A new envelope
//! is built only once the stored one failed on chain or expired unapplied.

use sqlx::Row;

use crate::domain::transaction::TxResultCode;
use crate::error::{Error, ErrorCode, Result};
use crate::money::Amount;
use crate::services::wallets::{self, StellarContext};
use crate::stellar::horizon::SubmitOutcome;
use crate::stellar::tx;
use crate::store::Store;

/// How long a settlement envelope may take to land (seconds).
const VALIDITY_SECS: i64 = 120;

/// Which way the USDC goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Treasury → user wallet (top-ups).
    ToUser,
    /// User wallet → treasury (payouts).
    FromUser,
}

/// The row a settlement belongs to: `topups` or `withdrawals`.
#[derive(Clone, Copy, Debug)]
pub enum Owner {
    TopUp,
    Withdrawal,
}

impl Owner {
    fn resource_type(self) -> &'static str {
        match self {
            Owner::TopUp => "topup",
            Owner::Withdrawal => "withdrawal",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Owner::TopUp => "topups",
            Owner::Withdrawal => "withdrawals",
        }
    }
}

/// One transfer to settle.
#[derive(Clone, Debug)]
pub struct Transfer<'a> {
    pub owner: Owner,
    pub id: &'a str,
    pub user_id: &'a str,
    /// USDC, base units.
    pub amount: Amount,
    pub direction: Direction,
}

/// Outcome of one settlement attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The transfer is in a ledger (this attempt or an earlier one).
    Landed { hash: String },
    /// Not yet: submitted with an unknown outcome, or failed (reason kept) and to be
    /// rebuilt on the next attempt.
    Waiting { reason: Option<String> },
}

async fn stored_envelope(store: &Store, t: &Transfer<'_>) -> Result<Option<String>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT settlement_envelope FROM {} WHERE id = $1",
        t.owner.table()
    )))
    .bind(t.id)
    .fetch_one(store.reader())
    .await?;
    Ok(row.try_get("settlement_envelope")?)
}

async fn clear_envelope(store: &Store, t: &Transfer<'_>, xdr: &str) -> Result<()> {
    let mut db = store.begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {} SET settlement_envelope = NULL, updated_at = $1 WHERE id = $2 AND settlement_envelope = $3",
        t.owner.table()
    )))
    .bind(crate::clock::now())
    .bind(t.id)
    .bind(xdr)
    .execute(db.conn())
    .await?;
    db.commit().await
}

/// Settles `t` on chain (see the module documentation). Errors: the platform wallet is
/// not active (`PROVIDER_UNAVAILABLE`), Horizon unreachable, the user has no wallet.
pub async fn settle(store: &Store, sc: &StellarContext, t: &Transfer<'_>) -> Result<Settled> {
    let platform = wallets::platform(store)
        .await?
        .filter(|p| p.status == crate::domain::wallet::WalletStatus::Active)
        .ok_or_else(|| {
            Error::new(
                ErrorCode::ProviderUnavailable,
                "the platform (treasury) wallet is not active",
            )
        })?;
    let _guard = wallets::submission_lock(store, &sc.horizon, &platform.public_key).await?;
    let envelope = match stored_envelope(store, t).await? {
        Some(xdr) => match resume(store, sc, t, &xdr).await? {
            Next::Submit(env) => env,
            Next::Done(settled) => return Ok(settled),
        },
        None => {
            let signed = sign_transfer(store, sc, t, &platform).await?;
            if !store_signed(store, t, &signed).await? {
                // Another executor stored its envelope first; the next attempt settles it.
                return Ok(Settled::Waiting { reason: None });
            }
            signed
        }
    };
    submit(store, sc, t, &envelope).await
}

/// What to do with a stored envelope.
enum Next {
    /// Submit it (again).
    Submit(tx::SignedEnvelope),
    /// This attempt's outcome, without submitting.
    Done(Settled),
}

/// Looks the stored envelope `xdr` up by its hash: landed → done; failed on chain →
/// cleared (rebuilt on the next attempt); not found → resubmit it as is.
async fn resume(store: &Store, sc: &StellarContext, t: &Transfer<'_>, xdr: &str) -> Result<Next> {
    let env = tx::signed_from_xdr(xdr, &sc.network)?;
    match sc.horizon.transaction(&env.hash).await? {
        Some((true, _)) => Ok(Next::Done(Settled::Landed { hash: env.hash })),
        Some((false, _)) => {
            clear_envelope(store, t, xdr).await?;
            Ok(Next::Done(Settled::Waiting {
                reason: Some("the settlement transaction failed on chain".into()),
            }))
        }
        None => Ok(Next::Submit(env)),
    }
}

/// A new transfer envelope, sourced by the platform at its next sequence: the treasury
/// pays the user ([`Direction::ToUser`], signed by the platform), or the user's wallet
/// pays the treasury ([`Direction::FromUser`], the payment sourced by the wallet, signed
/// by both).
async fn sign_transfer(
    store: &Store,
    sc: &StellarContext,
    t: &Transfer<'_>,
    platform: &wallets::Wallet,
) -> Result<tx::SignedEnvelope> {
    let wallet = wallets::for_user(store, t.user_id).await?;
    let pkp = wallets::keypair(sc, platform)?;
    let seq = wallets::platform_sequence(sc, platform).await?;
    let max_time = tx::expiry(VALIDITY_SECS);
    let signed = match t.direction {
        Direction::ToUser => {
            let dest = crate::stellar::keys::parse_account(&wallet.public_key, "wallet")?;
            let pay = tx::payment(&dest, Some(&sc.usdc), t.amount);
            let txn = tx::transaction(&pkp.public_bytes(), seq + 1, max_time, vec![pay])?;
            tx::sign(txn, &sc.network, &[&pkp])?
        }
        Direction::FromUser => {
            let wkp = wallets::keypair(sc, &wallet)?;
            let mut pay = tx::payment(&pkp.public_bytes(), Some(&sc.usdc), t.amount);
            pay.source_account = Some(stellar_xdr::MuxedAccount::Ed25519(stellar_xdr::Uint256(
                wkp.public_bytes(),
            )));
            let txn = tx::transaction(&pkp.public_bytes(), seq + 1, max_time, vec![pay])?;
            tx::sign(txn, &sc.network, &[&pkp, &wkp])?
        }
    };
    Ok(signed)
}

/// Stores `signed` on the owner row **before** it is submitted: compare-and-set on there
/// being no envelope, audited as `treasury.transfer_signed`. `false` when another
/// executor stored its envelope first.
async fn store_signed(
    store: &Store,
    t: &Transfer<'_>,
    signed: &tx::SignedEnvelope,
) -> Result<bool> {
    let mut db = store.begin().await?;
    let stored = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {} SET settlement_envelope = $1, settlement_tx_hash = $2, updated_at = $3 \
         WHERE id = $4 AND settlement_envelope IS NULL",
        t.owner.table()
    )))
    .bind(&signed.xdr)
    .bind(&signed.hash)
    .bind(crate::clock::now())
    .bind(t.id)
    .execute(db.conn())
    .await?
    .rows_affected();
    if stored == 1 {
        db.audit(
            crate::context::Context::system()
                .audit("treasury.transfer_signed", t.owner.resource_type(), t.id)
                .after(serde_json::json!({
                    "transactionHash": signed.hash,
                    "direction": match t.direction { Direction::ToUser => "treasury_to_user", Direction::FromUser => "user_to_treasury" },
                    "userId": t.user_id,
                    "amount": t.amount,
                })),
        );
    }
    db.commit().await?;
    Ok(stored != 0)
}

/// Submits `envelope` and reads the outcome: applied → landed; `tx_bad_seq` → waiting,
/// the same envelope resubmitted next time; another failure → the envelope cleared
/// (rebuilt next time) with the reason; unknown → waiting.
async fn submit(
    store: &Store,
    sc: &StellarContext,
    t: &Transfer<'_>,
    envelope: &tx::SignedEnvelope,
) -> Result<Settled> {
    match sc.horizon.submit_settled(envelope).await? {
        SubmitOutcome::Applied { hash, .. } => Ok(Settled::Landed { hash }),
        SubmitOutcome::Failed {
            tx_code: TxResultCode::BadSeq,
            ..
        } => Ok(Settled::Waiting {
            reason: Some("tx_bad_seq; resubmitting until it lands or expires".into()),
        }),
        SubmitOutcome::Failed {
            tx_code, op_codes, ..
        } => {
            clear_envelope(store, t, &envelope.xdr).await?;
            let reason = format!("{tx_code} {}", op_codes.join(","));
            tracing::warn!(id = %t.id, reason = %reason.trim(), "treasury settlement failed; it will be rebuilt");
            Ok(Settled::Waiting {
                reason: Some(reason.trim().to_string()),
            })
        }
        SubmitOutcome::Unknown { reason, .. } => Ok(Settled::Waiting {
            reason: Some(reason),
        }),
    }
}

/// The treasury's USDC balance (for health and operator checks); `None` when the
/// platform wallet is not on the network.
pub async fn balance(store: &Store, sc: &StellarContext) -> Result<Option<Amount>> {
    let Some(p) = wallets::platform(store).await? else {
        return Ok(None);
    };
    Ok(sc
        .horizon
        .account(&p.public_key)
        .await?
        .and_then(|a| a.credit(&sc.usdc.code, &sc.usdc_issuer)))
}

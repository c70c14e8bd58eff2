//! Invisible Stellar wallets (docs/ARCHITECTURE.md, Wallets and keys; docs/PROVIDERS.md,
//! Stellar and Horizon: reserves and sponsorship).
//!
//! Every user gets a wallet at creation (crypto mode): an ed25519 keypair whose seed is
//! sealed by the [`Vault`] with the wallet id as associated data. A platform wallet is
//! created at first start; on the sandbox and testnet it is funded by Friendbot, on
//! mainnet the operator funds it.
//!
//! **Activation** is one transaction sourced and paid by the platform: begin
//! sponsoring → create the account with 0 XLM → USDC trustline (signed by the wallet) →
//! end sponsoring → a small XLM float to the wallet. The platform carries the reserves
//! (1.5 XLM locked per wallet) and sends the float (default 1 XLM) so the wallet can pay
//! the fees of the Soroban transactions Trustless Work sources from it (≈0.005 XLM
//! each). Payments that OfferHub builds itself use the platform as transaction source,
//! so they cost the wallet nothing.
//!
//! Activation is a saga: the signed envelope and its hash are stored **before**
//! submission. A retry or a restart resubmits that identical envelope and settles an
//! unknown outcome by its hash; only a definitive failure (e.g. `tx_too_late`,
//! `tx_bad_seq`) lets a new envelope be built. Status: `PENDING_ACTIVATION`, `ACTIVE`,
//! `FAILED` (+ reason).

use std::sync::Arc;

use serde::Serialize;
use sqlx::Row;

use crate::context::Context;
use crate::error::{Error, ErrorCode, Result};
use crate::ids::{IdKind, new_id};
use crate::money::Amount;
use crate::stellar::horizon::{Horizon, SubmitOutcome};
use crate::stellar::keys::Keypair;
use crate::stellar::network::StellarNetwork;
use crate::stellar::tx::{self, CreditAsset};
use crate::store::Store;
use crate::vault::Vault;

/// How long an activation envelope stays valid.
const ACTIVATION_VALIDITY_SECS: i64 = 120;

/// What wallet code needs to reach the network.
pub struct StellarContext {
    pub horizon: Horizon,
    pub network: StellarNetwork,
    /// USDC: code and issuer.
    pub usdc: CreditAsset,
    pub usdc_issuer: String,
    pub vault: Arc<Vault>,
    /// XLM (stroops) sent to each wallet at activation.
    pub float_stroops: i64,
    /// Friendbot base URL (`…/friendbot` on the sandbox, friendbot.stellar.org on
    /// testnet); `None` on mainnet.
    pub friendbot: Option<url::Url>,
}

pub use crate::domain::wallet::{WalletKind, WalletStatus};

/// A wallet; never serialises its secret (the API shows `daemon::dto::wallets::WalletView`).
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Wallet {
    pub id: String,
    pub user_id: Option<String>,
    pub kind: WalletKind,
    pub public_key: String,
    pub status: WalletStatus,
    pub failure_reason: Option<String>,
    pub activation_hash: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    pub key_id: String,
    #[serde(skip)]
    sealed_secret: String,
    #[serde(skip)]
    activation_envelope: Option<String>,
}

const COLUMNS: &str = "id, user_id, kind, public_key, sealed_secret, key_id, status, failure_reason, \
     activation_envelope, activation_hash, created_at, updated_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Wallet> {
    Ok(<Wallet as sqlx::FromRow<_>>::from_row(r)?)
}

async fn by(store: &Store, column: &'static str, value: &str) -> Result<Option<Wallet>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM wallets WHERE {column} = $1"
    )))
    .bind(value)
    .fetch_optional(store.reader())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The wallet of a user; 404 `NOT_FOUND` when it has none.
pub async fn for_user(store: &Store, user_id: &str) -> Result<Wallet> {
    by(store, "user_id", user_id)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::NotFound, format!("User {user_id} has no wallet")))
}

/// Exclusive use of a Stellar source account while a transaction of it is built, signed
/// and submitted: sequence numbers are used one at a time by every executor of every
/// daemon sharing the database ([`submission_lock`]).
pub struct SubmissionGuard {
    _local: tokio::sync::OwnedMutexGuard<()>,
    _database: Option<crate::store::AdvisoryLock>,
}

/// Takes the submission lock of `account`: first this process's
/// ([`crate::stellar::horizon::Horizon::account_lock`], so one task per process waits
/// on the database), then the database's (PostgreSQL advisory lock keyed by the
/// account), so two daemons never build transactions with the same sequence number.
pub async fn submission_lock(
    store: &Store,
    horizon: &crate::stellar::horizon::Horizon,
    account: &str,
) -> Result<SubmissionGuard> {
    use sha2::{Digest, Sha256};
    let local = horizon.account_lock(account).lock_owned().await;
    let digest = Sha256::digest(format!("offerhub:stellar-source:{account}").as_bytes());
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    let database = store.advisory_lock(i64::from_be_bytes(key)).await?;
    Ok(SubmissionGuard {
        _local: local,
        _database: database,
    })
}

/// The platform account's current sequence number on the network (the next
/// transaction it sources takes this + 1). Errors: `PROVIDER_ERROR` when the account is
/// missing on the network, Horizon's errors otherwise.
pub async fn platform_sequence(sc: &StellarContext, platform: &Wallet) -> Result<i64> {
    Ok(sc
        .horizon
        .account(&platform.public_key)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::ProviderError,
                "the platform account is missing on the network",
            )
        })?
        .sequence)
}

/// The platform wallet, when created.
pub async fn platform(store: &Store) -> Result<Option<Wallet>> {
    by(store, "kind", WalletKind::Platform.as_str()).await
}

/// Creates a wallet (idempotent per user). Audited as `wallet.created`.
pub async fn create(
    store: &Store,
    ctx: &Context,
    sc: &StellarContext,
    kind: WalletKind,
    user_id: Option<&str>,
) -> Result<Wallet> {
    if let Some(u) = user_id
        && let Some(w) = by(store, "user_id", u).await?
    {
        return Ok(w);
    }
    if kind == WalletKind::Platform
        && let Some(w) = platform(store).await?
    {
        return Ok(w);
    }
    let kp = Keypair::random();
    let id = new_id(IdKind::Wallet);
    let sealed = sc.vault.seal(&id, kp.seed().as_slice())?;
    let now = crate::clock::now();
    let mut tx = store.begin_for(ctx).await?;
    let inserted = sqlx::query(
        "INSERT INTO wallets (id, user_id, kind, public_key, sealed_secret, key_id, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (user_id) DO NOTHING",
    )
    .bind(&id)
    .bind(user_id)
    .bind(kind)
    .bind(kp.public_key())
    .bind(&sealed)
    .bind(sc.vault.current_key_id())
    .bind(WalletStatus::PendingActivation)
    .bind(&now)
    .execute(tx.conn())
    .await?;
    if inserted.rows_affected() == 0 {
        tx.rollback().await?;
        return for_user(store, user_id.unwrap_or_default()).await;
    }
    tx.audit(ctx.audit("wallet.created", "wallet", &id).after(
        serde_json::json!({ "userId": user_id, "kind": kind, "publicKey": kp.public_key() }),
    ));
    tx.commit().await?;
    reload(store, &id).await
}

/// The wallet's keypair (opened from the vault).
pub fn keypair(sc: &StellarContext, w: &Wallet) -> Result<Keypair> {
    let seed = sc.vault.open(&w.id, &w.sealed_secret)?;
    let arr: [u8; 32] = seed
        .as_slice()
        .try_into()
        .map_err(|_| Error::internal("wallet seed has a wrong length"))?;
    Ok(Keypair::from_seed(&arr))
}

/// Moves a wallet to `status` (compare-and-set: only an actual change writes, audits and,
/// for a user wallet becoming `ACTIVE`, emits `user.stellar_linked`).
async fn set_status(
    store: &Store,
    w: &Wallet,
    status: WalletStatus,
    reason: Option<&str>,
) -> Result<()> {
    let now = crate::clock::now();
    let mut tx = store.begin().await?;
    let done = sqlx::query(
        "UPDATE wallets SET status = $1, failure_reason = $2, updated_at = $3 \
         WHERE id = $4 AND (status <> $1 OR COALESCE(failure_reason, '') <> COALESCE($2, ''))",
    )
    .bind(status)
    .bind(reason)
    .bind(&now)
    .bind(&w.id)
    .execute(tx.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Ok(());
    }
    tx.audit(
        Context::system()
            .audit(
                &format!("wallet.{}", status.as_str().to_ascii_lowercase()),
                "wallet",
                &w.id,
            )
            .after(serde_json::json!({ "status": status, "reason": reason })),
    );
    if status == WalletStatus::Active
        && let Some(user) = &w.user_id
        && w.kind == WalletKind::User
    {
        tx.emit(crate::events::NewEvent::new(
            "user.stellar_linked",
            "user",
            user,
            serde_json::json!({ "userId": user, "walletId": w.id, "stellarAddress": w.public_key, "linkedAt": now }),
        ));
    }
    tx.commit().await
}

/// Creates (once) and prepares the platform wallet: funded by Friendbot where there is
/// one, with a USDC trustline (it receives platform fees). On mainnet an unfunded
/// platform account leaves it `PENDING_ACTIVATION` with the reason saying what to do.
pub async fn ensure_platform(
    store: &Store,
    sc: &StellarContext,
    user_id: Option<&str>,
) -> Result<Wallet> {
    let w = create(store, &Context::system(), sc, WalletKind::Platform, user_id).await?;
    if w.status == WalletStatus::Active {
        return Ok(w);
    }
    let kp = keypair(sc, &w)?;
    let mut account = sc.horizon.account(&w.public_key).await?;
    if account.is_none() {
        let Some(fb) = &sc.friendbot else {
            let reason = format!(
                "fund the platform account {} with XLM (at least 5 XLM plus 1.5 XLM per wallet)",
                w.public_key
            );
            set_status(store, &w, WalletStatus::PendingActivation, Some(&reason)).await?;
            return reload(store, &w.id).await;
        };
        let mut url = fb.clone();
        url.query_pairs_mut().append_pair("addr", &w.public_key);
        let r = reqwest::get(url)
            .await
            .map_err(|e| Error::new(ErrorCode::ProviderError, format!("friendbot: {e}")))?;
        if !r.status().is_success() {
            return Err(Error::new(
                ErrorCode::ProviderError,
                format!("friendbot answered {}", r.status()),
            ));
        }
        account = sc.horizon.account(&w.public_key).await?;
    }
    let account = account.ok_or_else(|| {
        Error::new(
            ErrorCode::ProviderError,
            "platform account still missing after funding",
        )
    })?;
    if account.credit(&sc.usdc.code, &sc.usdc_issuer).is_none() {
        let _guard = submission_lock(store, &sc.horizon, &w.public_key).await?;
        let max_time = tx::expiry(ACTIVATION_VALIDITY_SECS);
        let t = tx::transaction(
            &kp.public_bytes(),
            account.sequence + 1,
            max_time,
            vec![tx::change_trust(&kp.public_bytes(), &sc.usdc)],
        )?;
        match sc
            .horizon
            .submit_settled(&tx::sign(t, &sc.network, &[&kp])?)
            .await?
        {
            SubmitOutcome::Applied { .. } => {}
            other => {
                return Err(Error::new(
                    ErrorCode::ProviderError,
                    format!("platform trustline failed: {other:?}"),
                ));
            }
        }
    }
    set_status(store, &w, WalletStatus::Active, None).await?;
    reload(store, &w.id).await
}

/// Runs the activation saga of one wallet to a definitive state (or leaves it pending
/// when the network's answer stays unknown). Returns the wallet as it then is.
pub async fn activate(store: &Store, sc: &StellarContext, wallet_id: &str) -> Result<Wallet> {
    let platform = platform(store)
        .await?
        .filter(|p| p.status == WalletStatus::Active)
        .ok_or_else(|| {
            Error::new(
                ErrorCode::ProviderUnavailable,
                "the platform wallet is not active yet",
            )
        })?;
    let _guard = submission_lock(store, &sc.horizon, &platform.public_key).await?;
    // Read under the lock: a concurrent activation of this wallet has finished by now.
    let w = by(store, "id", wallet_id)
        .await?
        .ok_or_else(|| Error::internal("no such wallet"))?;
    if w.status != WalletStatus::PendingActivation || w.kind != WalletKind::User {
        return Ok(w);
    }
    // Resume: the identical envelope, never a new one, while it may still land.
    let envelope = match &w.activation_envelope {
        Some(xdr) => tx::signed_from_xdr(xdr, &sc.network)?,
        None => {
            let signed = sign_activation(sc, &platform, &w).await?;
            if !store_activation(store, &w, &signed).await? {
                return reload(store, &w.id).await;
            }
            signed
        }
    };
    submit_activation(store, sc, &w, &envelope).await?;
    reload(store, &w.id).await
}

/// The wallet as stored now.
async fn reload(store: &Store, wallet_id: &str) -> Result<Wallet> {
    by(store, "id", wallet_id)
        .await?
        .ok_or_else(|| Error::internal("wallet vanished"))
}

/// A new activation envelope for `w`, sourced by the platform at its next sequence and
/// signed by both: begin sponsoring, create the account with 0 XLM, USDC trustline,
/// end sponsoring, and the XLM float when one is configured.
async fn sign_activation(
    sc: &StellarContext,
    platform: &Wallet,
    w: &Wallet,
) -> Result<tx::SignedEnvelope> {
    let pkp = keypair(sc, platform)?;
    let wkp = keypair(sc, w)?;
    let seq = platform_sequence(sc, platform).await?;
    let wpk = wkp.public_bytes();
    let max_time = tx::expiry(ACTIVATION_VALIDITY_SECS);
    let mut ops = vec![
        tx::begin_sponsoring(&wpk),
        tx::create_account(&wpk, 0),
        tx::change_trust(&wpk, &sc.usdc),
        tx::end_sponsoring(&wpk),
    ];
    if sc.float_stroops > 0 {
        ops.push(tx::payment(
            &wpk,
            None,
            Amount::from_base_units(sc.float_stroops),
        ));
    }
    let t = tx::transaction(&pkp.public_bytes(), seq + 1, max_time, ops)?;
    tx::sign(t, &sc.network, &[&pkp, &wkp])
}

/// Stores `signed` as `w`'s activation envelope **before** it is submitted.
/// Compare-and-set: at most one stored envelope (another daemon may race); `false`
/// when one was already stored or the wallet is no longer pending.
async fn store_activation(store: &Store, w: &Wallet, signed: &tx::SignedEnvelope) -> Result<bool> {
    let mut db = store.begin().await?;
    let stored = sqlx::query(
        "UPDATE wallets SET activation_envelope = $1, activation_hash = $2, \
         activation_attempts = activation_attempts + 1, updated_at = $3 \
         WHERE id = $4 AND activation_envelope IS NULL AND status = $5",
    )
    .bind(&signed.xdr)
    .bind(&signed.hash)
    .bind(crate::clock::now())
    .bind(&w.id)
    .bind(WalletStatus::PendingActivation)
    .execute(db.conn())
    .await?;
    db.commit().await?;
    Ok(stored.rows_affected() != 0)
}

/// Submits the stored activation `envelope` and settles `w` by the outcome: applied →
/// `ACTIVE`; failed → `ACTIVE` when an earlier envelope already activated it, the
/// envelope cleared when it can never land (`tx_too_late`, `tx_bad_seq`) so the next
/// attempt builds a new one, else `FAILED` with the codes; unknown → still pending.
async fn submit_activation(
    store: &Store,
    sc: &StellarContext,
    w: &Wallet,
    envelope: &tx::SignedEnvelope,
) -> Result<()> {
    match sc.horizon.submit_settled(envelope).await? {
        SubmitOutcome::Applied { .. } => set_status(store, w, WalletStatus::Active, None).await?,
        SubmitOutcome::Failed {
            tx_code, op_codes, ..
        } => {
            // Did an earlier envelope already activate it?
            let on_chain = sc.horizon.account(&w.public_key).await?;
            if on_chain
                .as_ref()
                .is_some_and(|a| a.credit(&sc.usdc.code, &sc.usdc_issuer).is_some())
            {
                set_status(store, w, WalletStatus::Active, None).await?;
            } else if tx_code.can_no_longer_land() {
                // It can never land: a new envelope may be built on the next attempt.
                let mut db = store.begin().await?;
                sqlx::query(
                    "UPDATE wallets SET activation_envelope = NULL, updated_at = $1 \
                     WHERE id = $2 AND activation_envelope = $3",
                )
                .bind(crate::clock::now())
                .bind(&w.id)
                .bind(&envelope.xdr)
                .execute(db.conn())
                .await?;
                db.commit().await?;
            } else {
                let reason = format!("{tx_code} {}", op_codes.join(","))
                    .trim()
                    .to_string();
                set_status(store, w, WalletStatus::Failed, Some(&reason)).await?;
            }
        }
        SubmitOutcome::Unknown { .. } => {}
    }
    Ok(())
}

/// Activates up to `limit` pending wallets, oldest first. Returns how many became active.
pub async fn activate_pending(store: &Store, sc: &StellarContext, limit: u32) -> Result<usize> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM wallets WHERE status = $1 AND kind = $2 ORDER BY seq LIMIT {limit}"
    )))
    .bind(WalletStatus::PendingActivation)
    .bind(WalletKind::User)
    .fetch_all(store.reader())
    .await?;
    let mut done = 0;
    for r in rows {
        let id: String = r.try_get("id")?;
        match activate(store, sc, &id).await {
            Ok(w) if w.status == WalletStatus::Active => done += 1,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(wallet_id = %id, error = %e, "wallet activation attempt failed")
            }
        }
    }
    Ok(done)
}

/// Creates wallets for users that have none (a crash between creating a user and its
/// wallet, or users created before crypto mode). Returns how many were created.
pub async fn backfill(store: &Store, sc: &StellarContext, limit: u32) -> Result<usize> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT u.id FROM users u LEFT JOIN wallets w ON w.user_id = u.id \
         WHERE w.id IS NULL ORDER BY u.seq LIMIT {limit}"
    )))
    .fetch_all(store.reader())
    .await?;
    let mut n = 0;
    for r in rows {
        let user_id: String = r.try_get("id")?;
        create(
            store,
            &Context::system(),
            sc,
            WalletKind::User,
            Some(&user_id),
        )
        .await?;
        n += 1;
    }
    Ok(n)
}

/// Progress of a key rotation (see [`crate::services::rotation`]).
pub use crate::services::rotation::Rotation;

/// Re-seals every wallet not yet under `vault`'s current key, in batches of `batch`,
/// stopping after `max_batches` when given (an interruption is harmless: the next run
/// continues with what is left). A thin wrapper of [`crate::services::rotation::rotate`].
pub async fn rotate_key(
    store: &Store,
    vault: &Vault,
    batch: u32,
    max_batches: Option<u32>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Rotation> {
    let batches = std::sync::atomic::AtomicU32::new(0);
    let stop = || {
        let n = batches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        max_batches.is_some_and(|m| n >= m)
    };
    crate::services::rotation::rotate(store, vault, batch, &stop, progress).await
}

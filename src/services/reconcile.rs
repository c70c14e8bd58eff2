//! Reconciliation against the network (docs/ARCHITECTURE.md, Money: the double-entry
//! ledger — in crypto mode the chain is the truth). For every user wallet: on-chain USDC
//! must equal `available + reserved`; a pending withdrawal makes a difference "in flight"
//! rather than a discrepancy. Reads run with bounded concurrency. [`fix`] credits deposits
//! the monitor missed through the same exactly-once path
//! ([`crate::services::deposits::catch_up`]).
//! For every escrow with a contract: its on-chain balance (Trustless Work
//! `get-multiple-escrow-balance`, 20 per request) must equal `escrow:{order}`; a
//! running saga makes a difference "in flight".

pub use crate::domain::reconcile::CheckStatus;
use crate::domain::topup::TopUpStatus;
use crate::domain::wallet::{WalletKind, WalletStatus};
use crate::domain::withdrawal::WithdrawalStatus;
use futures_util::StreamExt;
use serde::Serialize;
use sqlx::Row;

use crate::error::{Error, Result};
use crate::ledger;
use crate::money::Amount;
use crate::services::deposits::{self, ManagedWallets};
use crate::services::wallets::StellarContext;
use crate::store::Store;

/// Result for one wallet.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WalletCheck {
    pub user_id: String,
    pub wallet_id: String,
    pub public_key: String,
    /// USDC on the network; `None` when the account or trustline does not exist.
    pub on_chain: Option<Amount>,
    /// `available + reserved` in the ledger.
    pub ledger: Amount,
    /// Amount of withdrawals (and Airtm payout sweeps) whose payment may be landing
    /// right now.
    pub in_flight: Amount,
    /// `on_chain − ledger`.
    pub difference: Amount,
    /// `ok`, `mismatch`, `in_flight` or `not_activated`.
    pub status: CheckStatus,
}

/// Result for one escrow contract.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EscrowCheck {
    pub order_id: String,
    pub escrow_id: String,
    pub contract_id: String,
    /// The contract's USDC balance; `None` when Trustless Work does not report it.
    pub on_chain: Option<Amount>,
    /// `escrow:{order}` in the ledger.
    pub ledger: Amount,
    pub difference: Amount,
    /// `ok`, `mismatch` or `in_flight` (a saga of the order is running).
    pub status: CheckStatus,
}

/// Result for the platform wallet (in Airtm mode also the treasury).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformCheck {
    pub wallet_id: String,
    pub public_key: String,
    /// USDC on the network; `None` when the account or trustline does not exist.
    pub on_chain: Option<Amount>,
    /// `fees:platform`: the platform fees the ledger says this wallet received.
    pub fees_platform: Amount,
    /// Airtm mode: `external:airtm` (top-ups paid out by the treasury count negative,
    /// payouts swept into it positive); `None` in crypto mode.
    pub external_airtm: Option<Amount>,
    /// `on_chain − fees_platform (− external_airtm in Airtm mode)`: in crypto mode USDC
    /// that no ledger account backs (must be zero); in Airtm mode the treasury's float,
    /// funded by the operator outside the ledger (must not be negative).
    pub difference: Amount,
    /// `ok`, `float` (Airtm: a non-negative float), `in_flight` (a saga that can pay a
    /// platform fee is running) or `mismatch`.
    pub status: CheckStatus,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub wallets: Vec<WalletCheck>,
    pub escrows: Vec<EscrowCheck>,
    /// The platform wallet, when [`platform`] ran and the wallet exists.
    pub platform: Option<PlatformCheck>,
    pub discrepancies: usize,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.discrepancies == 0
    }
}

async fn check_one(
    store: &Store,
    sc: &StellarContext,
    user_id: String,
    wallet_id: String,
    public_key: String,
    wallet_status: WalletStatus,
) -> Result<WalletCheck> {
    let bal = ledger::balance(store.reader(), &user_id).await?;
    let ledger_total = bal.total;
    // Outgoing: crypto withdrawals being paid, Airtm payouts being swept to the treasury.
    let in_flight: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM withdrawals WHERE user_id = $1 \
         AND ((destination_type = 'crypto' AND status IN ($2, $3)) OR status = $4)",
    )
    .bind(&user_id)
    .bind(WithdrawalStatus::CRYPTO_OPEN[0])
    .bind(WithdrawalStatus::CRYPTO_OPEN[1])
    .bind(WithdrawalStatus::Settling)
    .fetch_one(store.reader())
    .await?;
    // Incoming: Airtm top-ups whose treasury transfer may have landed before the credit.
    let incoming: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(net_amount), 0) AS BIGINT) FROM topups \
         WHERE user_id = $1 AND status = $2",
    )
    .bind(&user_id)
    .bind(TopUpStatus::Settling)
    .fetch_one(store.reader())
    .await?;
    let on_chain = sc
        .horizon
        .account(&public_key)
        .await?
        .and_then(|a| a.credit(&sc.usdc.code, &sc.usdc_issuer));
    let chain = on_chain.unwrap_or(Amount::ZERO);
    let difference = difference(chain, ledger_total, &public_key)?;
    let status = if on_chain.is_none() && wallet_status != WalletStatus::Active {
        if ledger_total == Amount::ZERO {
            CheckStatus::NotActivated
        } else {
            CheckStatus::Mismatch
        }
    } else if difference == Amount::ZERO {
        CheckStatus::Ok
    } else if (in_flight > 0 && difference.base_units() >= -in_flight && difference.is_negative())
        || (incoming > 0 && difference.base_units() <= incoming && difference.is_positive())
    {
        CheckStatus::InFlight
    } else {
        CheckStatus::Mismatch
    };
    Ok(WalletCheck {
        user_id,
        wallet_id,
        public_key,
        on_chain,
        ledger: ledger_total,
        in_flight: Amount::from_base_units(in_flight),
        difference,
        status,
    })
}

/// Checks every user wallet, at most `concurrency` at a time; `progress` is called
/// with the number of wallets done so far.
pub async fn wallets(
    store: &Store,
    sc: &StellarContext,
    concurrency: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Report> {
    let rows = sqlx::query(
        "SELECT id, user_id, public_key, status FROM wallets WHERE kind = $1 ORDER BY seq",
    )
    .bind(WalletKind::User)
    .fetch_all(store.reader())
    .await?;
    let total = rows.len();
    let mut items = Vec::with_capacity(total);
    for r in &rows {
        let user: Option<String> = r.try_get("user_id")?;
        if let Some(u) = user {
            items.push((
                u,
                r.try_get::<String, _>("id")?,
                r.try_get::<String, _>("public_key")?,
                r.try_get::<WalletStatus, _>("status")?,
            ));
        }
    }
    let mut done = 0;
    let mut checks = Vec::with_capacity(items.len());
    let mut stream = futures_util::stream::iter(items)
        .map(|(u, w, pk, st)| check_one(store, sc, u, w, pk, st))
        .buffer_unordered(concurrency.max(1));
    while let Some(c) = stream.next().await {
        checks.push(c?);
        done += 1;
        progress(done, total);
    }
    checks.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    let discrepancies = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Mismatch)
        .count();
    crate::metrics::reconciled("wallets", discrepancies);
    Ok(Report {
        wallets: checks,
        escrows: Vec::new(),
        platform: None,
        discrepancies,
    })
}

/// Checks every escrow contract against its ledger account and adds the result to
/// `report`.
pub async fn escrows(
    store: &Store,
    ec: &crate::services::escrow::EscrowContext,
    report: &mut Report,
) -> Result<()> {
    escrows_matching(store, ec, None, report).await?;
    crate::metrics::reconciled(
        "escrows",
        report
            .escrows
            .iter()
            .filter(|c| c.status == CheckStatus::Mismatch)
            .count(),
    );
    Ok(())
}

/// `chain − ledger` of `what`; an overflow is an error, never a difference of zero
/// (which would hide a discrepancy).
fn difference(chain: Amount, ledger: Amount, what: &str) -> Result<Amount> {
    chain
        .checked_sub(ledger)
        .ok_or_else(|| Error::internal(format!("{what}: chain − ledger overflows")))
}

/// One escrow to check: `(escrow id, order id, contract id, ledger balance, a saga is
/// running on the order)`.
type EscrowItem = (String, String, String, Amount, bool);

/// Checks the escrows whose order id or contract id is in `only` (every escrow when
/// `None`) against their ledger accounts, reading the chain in batches of the provider,
/// and adds the results to `report`. A contract the provider does not report, or a
/// difference, is a mismatch unless a saga is running on the order (`in_flight`).
pub async fn escrows_matching(
    store: &Store,
    ec: &crate::services::escrow::EscrowContext,
    only: Option<&std::collections::BTreeSet<String>>,
    report: &mut Report,
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT e.id, e.order_id, e.contract_id, COALESCE(a.balance, 0) AS balance, o.active_saga \
         FROM escrows e JOIN orders o ON o.id = e.order_id \
         LEFT JOIN ledger_accounts a ON a.id = 'escrow:' || e.order_id \
         WHERE e.contract_id IS NOT NULL ORDER BY e.seq",
    )
    .fetch_all(store.reader())
    .await?;
    let mut items: Vec<EscrowItem> = Vec::with_capacity(rows.len());
    for r in &rows {
        let order_id: String = r.try_get("order_id")?;
        let contract_id: String = r.try_get("contract_id")?;
        if only.is_some_and(|ids| !ids.contains(&order_id) && !ids.contains(&contract_id)) {
            continue;
        }
        items.push((
            r.try_get("id")?,
            order_id,
            contract_id,
            Amount::from_base_units(r.try_get("balance")?),
            r.try_get::<Option<String>, _>("active_saga")?.is_some(),
        ));
    }
    if items.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = items.iter().map(|i| i.2.clone()).collect();
    let chain = ec.provider.balances(&ids).await?;
    for (escrow_id, order_id, contract_id, ledger_balance, busy) in items {
        let on_chain = chain
            .iter()
            .find(|(c, _)| *c == contract_id)
            .map(|(_, a)| *a);
        let difference = difference(on_chain.unwrap_or(Amount::ZERO), ledger_balance, &escrow_id)?;
        let status = if difference == Amount::ZERO && on_chain.is_some() {
            CheckStatus::Ok
        } else if busy {
            CheckStatus::InFlight
        } else {
            CheckStatus::Mismatch
        };
        if status == CheckStatus::Mismatch {
            report.discrepancies += 1;
        }
        report.escrows.push(EscrowCheck {
            order_id,
            escrow_id,
            contract_id,
            on_chain,
            ledger: ledger_balance,
            difference,
            status,
        });
    }
    Ok(())
}

/// Checks the platform wallet against the accounts that back it and adds the result to
/// `report`. Crypto mode: its USDC must equal `fees:platform` (USDC paid to it from
/// outside — e.g. a withdrawal to its address — is a discrepancy). Airtm mode
/// (`treasury`): it also holds the treasury float, which the ledger does not book, so
/// `on_chain − fees:platform − external:airtm` is the float and only a negative one is
/// a discrepancy. A running escrow saga may land a fee before the ledger books it:
/// `in_flight`.
pub async fn platform(
    store: &Store,
    sc: &StellarContext,
    treasury: bool,
    report: &mut Report,
) -> Result<()> {
    let Some(w) = crate::services::wallets::platform(store).await? else {
        return Ok(());
    };
    let fees = ledger::account_balance(store.reader(), ledger::FEES_PLATFORM).await?;
    let external_airtm = if treasury {
        Some(ledger::account_balance(store.reader(), ledger::EXTERNAL_AIRTM).await?)
    } else {
        None
    };
    let on_chain = sc
        .horizon
        .account(&w.public_key)
        .await?
        .and_then(|a| a.credit(&sc.usdc.code, &sc.usdc_issuer));
    let backing = fees
        .checked_add(external_airtm.unwrap_or(Amount::ZERO))
        .ok_or_else(|| Error::internal("the platform's backing accounts overflow"))?;
    let difference = difference(
        on_chain.unwrap_or(Amount::ZERO),
        backing,
        "the platform wallet",
    )?;
    let busy: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE active_saga IS NOT NULL")
        .fetch_one(store.reader())
        .await?;
    let status = if treasury && !difference.is_negative() {
        CheckStatus::Float
    } else if difference == Amount::ZERO {
        CheckStatus::Ok
    } else if busy > 0 && difference.is_positive() {
        CheckStatus::InFlight
    } else {
        CheckStatus::Mismatch
    };
    if status == CheckStatus::Mismatch {
        report.discrepancies += 1;
    }
    crate::metrics::reconciled("platform", usize::from(status.is_discrepancy()));
    report.platform = Some(PlatformCheck {
        wallet_id: w.id.clone(),
        public_key: w.public_key.clone(),
        on_chain,
        fees_platform: fees,
        external_airtm,
        difference,
        status,
    });
    Ok(())
}

/// One user's wallet (for `POST /users/{id}/balance/sync`).
pub async fn user(store: &Store, sc: &StellarContext, user_id: &str) -> Result<WalletCheck> {
    let w = crate::services::wallets::for_user(store, user_id).await?;
    check_one(
        store,
        sc,
        user_id.to_string(),
        w.id.clone(),
        w.public_key.clone(),
        w.status,
    )
    .await
}

/// Credits deposits the monitor has not processed yet (exactly once).
pub async fn fix(store: &Store, sc: &StellarContext) -> Result<usize> {
    let mut managed = ManagedWallets::default();
    deposits::catch_up(store, sc, &mut managed).await
}

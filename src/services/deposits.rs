//! The deposit monitor's core: turning Horizon payment records into ledger credits,
//! exactly once.
//!
//! One stream of **all** payments (`GET /payments`) serves any number of wallets; each
//! record is matched against the managed wallets ([`ManagedWallets`], refreshed
//! incrementally when a record could concern a wallet created since the last refresh).
//! A USDC movement to a managed wallet — a `payment`, a path payment, or a contract
//! transfer shown as `invoke_host_function` with `asset_balance_changes` — becomes a
//! journal transaction of kind `deposit` referenced by the operation id (plus the change
//! index for contract transfers): the ledger's uniqueness on (kind, reference) makes a
//! replayed record a no-op. The cursor (paging token) is saved in the same database
//! transaction as the credit, so a restart resumes exactly after the last processed
//! record. Emits `balance.credited` with `source: "stellar_deposit"`.
//!
//! Transfers out of OfferHub's own escrow contracts (releases, refunds, resolutions)
//! are not deposits: the escrow saga credits them from the same transaction
//! ([`crate::services::escrow`]), so they are skipped here. So are the treasury's
//! transfers that settle Airtm top-ups: their hash is stored on the top-up before
//! submission and [`crate::services::topups`] credits them.

use std::collections::HashMap;

use serde_json::{Value, json};
use sqlx::Row;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::events::NewEvent;
use crate::ledger::{self, Posting, Recorded};
use crate::money::Amount;
use crate::services::wallets::StellarContext;
use crate::store::Store;

/// Public key → user id of managed user wallets, refreshed incrementally by wallet
/// sequence number.
#[derive(Default)]
pub struct ManagedWallets {
    by_key: HashMap<String, String>,
    last_seq: i64,
    refreshed_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl ManagedWallets {
    /// Loads wallets created since the last refresh.
    pub async fn refresh(&mut self, store: &Store) -> Result<()> {
        let now = chrono::Utc::now();
        let rows = sqlx::query(
            "SELECT seq, public_key, user_id FROM wallets WHERE seq > $1 AND kind = $2 ORDER BY seq",
        )
        .bind(self.last_seq)
        .bind(crate::domain::wallet::WalletKind::User)
        .fetch_all(store.reader())
        .await?;
        for r in rows {
            self.last_seq = r.try_get("seq")?;
            let user: Option<String> = r.try_get("user_id")?;
            if let Some(u) = user {
                self.by_key.insert(r.try_get("public_key")?, u);
            }
        }
        self.refreshed_at = Some(now);
        Ok(())
    }

    /// The user owning `account`, refreshing first when the record (created at
    /// `created_at`) may be newer than the last refresh.
    async fn owner(
        &mut self,
        store: &Store,
        account: &str,
        created_at: &str,
    ) -> Result<Option<String>> {
        if let Some(u) = self.by_key.get(account) {
            return Ok(Some(u.clone()));
        }
        let record_time = chrono::DateTime::parse_from_rfc3339(created_at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or_else(|_| chrono::Utc::now());
        let stale = self
            .refreshed_at
            .is_none_or(|r| r < record_time + chrono::Duration::seconds(10));
        if stale {
            self.refresh(store).await?;
        }
        Ok(self.by_key.get(account).cloned())
    }
}

/// One incoming USDC movement found in a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// Unique reference: the operation id, `#n` appended for the n-th contract transfer.
    pub reference: String,
    pub to: String,
    pub from: String,
    pub amount: Amount,
    pub tx_hash: String,
}

/// The USDC movements of a Horizon payments record (any of its three shapes).
pub fn incoming(record: &Value, usdc_code: &str, usdc_issuer: &str) -> Vec<Incoming> {
    if record["transaction_successful"].as_bool() == Some(false) {
        return Vec::new();
    }
    // The record's id is the deposit's exactly-once key: without it (or its
    // transaction) nothing can be credited safely; said, never defaulted.
    let (Some(id), Some(hash)) = (
        record["id"].as_str().map(str::to_string),
        record["transaction_hash"].as_str().map(str::to_string),
    ) else {
        tracing::warn!(record = %record, "Horizon payment record without id or transaction hash; not credited (reconciliation reports it)");
        return Vec::new();
    };
    let is_usdc = |v: &Value| {
        v["asset_code"].as_str() == Some(usdc_code)
            && v["asset_issuer"].as_str() == Some(usdc_issuer)
    };
    // A movement of zero credits nothing; one whose amount cannot be read is said.
    let amount = |v: &Value| match v["amount"].as_str().map(Amount::parse_non_negative) {
        Some(Ok(a)) if a.is_positive() => Some(a),
        Some(Ok(_)) => None,
        _ => {
            tracing::warn!(record = %id, amount = %v["amount"], "USDC movement with an unreadable amount; not credited (reconciliation reports it)");
            None
        }
    };
    match record["type"].as_str().unwrap_or_default() {
        "payment" | "path_payment_strict_receive" | "path_payment_strict_send"
            if is_usdc(record) =>
        {
            amount(record)
                .map(|a| Incoming {
                    reference: id.clone(),
                    to: record["to"].as_str().unwrap_or_default().to_string(),
                    from: record["from"].as_str().unwrap_or_default().to_string(),
                    amount: a,
                    tx_hash: hash.clone(),
                })
                .into_iter()
                .collect()
        }
        "invoke_host_function" => record["asset_balance_changes"]
            .as_array()
            .map(|changes| {
                changes
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| {
                        is_usdc(c) && matches!(c["type"].as_str(), Some("transfer") | Some("mint"))
                    })
                    .filter_map(|(i, c)| {
                        Some(Incoming {
                            reference: format!("{id}#{i}"),
                            to: c["to"].as_str()?.to_string(),
                            from: c["from"].as_str().unwrap_or_default().to_string(),
                            amount: amount(c)?,
                            tx_hash: hash.clone(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Credits the managed-wallet movements of one record (exactly once) and moves the
/// cursor to its paging token, in one transaction. Returns the number of new credits.
pub async fn process_record(
    store: &Store,
    sc: &StellarContext,
    wallets: &mut ManagedWallets,
    record: &Value,
) -> Result<usize> {
    let token = record["paging_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let created_at = record["created_at"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut mine = Vec::new();
    for inc in incoming(record, &sc.usdc.code, &sc.usdc_issuer) {
        if let Some(user) = wallets.owner(store, &inc.to, &created_at).await?
            && !crate::services::escrow::is_own_contract(store, &inc.from).await?
            && !is_topup_settlement(store, &inc.tx_hash).await?
        {
            mine.push((user, inc));
        }
    }
    let mut tx = store.begin().await?;
    let mut credited = 0;
    for (user, inc) in mine {
        let before = ledger::balance(tx.conn(), &user).await?;
        let recorded = ledger::record(
            &mut tx,
            "deposit",
            &inc.reference,
            &format!("USDC deposit from {} (tx {})", inc.from, inc.tx_hash),
            &[
                Posting::new(
                    ledger::EXTERNAL_STELLAR,
                    inc.amount
                        .checked_neg()
                        .ok_or_else(|| Error::internal("deposit amount overflows"))?,
                ),
                Posting::new(ledger::available_account(&user), inc.amount),
            ],
        )
        .await?;
        if let Recorded::Applied(journal_id) = recorded {
            let after = ledger::balance(tx.conn(), &user).await?;
            let data = json!({
                "userId": user,
                "amount": inc.amount,
                "currency": "USD",
                "source": "stellar_deposit",
                "sourceId": journal_id,
                "transactionHash": inc.tx_hash,
                "operationId": inc.reference,
                "from": inc.from,
                "previousAvailableBalance": before.available,
                "newAvailableBalance": after.available,
            });
            tx.audit(
                Context::system()
                    .audit("balance.credited", "user", &user)
                    .after(&data),
            );
            tx.emit(NewEvent::new("balance.credited", "user", &user, data));
            credited += 1;
        }
    }
    if !token.is_empty() {
        sqlx::query("UPDATE monitor_state SET cursor = $1 WHERE id = 1")
            .bind(&token)
            .execute(tx.conn())
            .await?;
    }
    tx.commit().await?;
    Ok(credited)
}

/// Whether `tx_hash` is the treasury transfer of an Airtm top-up.
async fn is_topup_settlement(store: &Store, tx_hash: &str) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM topups WHERE settlement_tx_hash = $1",
    )
    .bind(tx_hash)
    .fetch_one(store.reader())
    .await?;
    Ok(n > 0)
}

/// The saved cursor; `None` before the first record ("start at the tip").
pub async fn cursor(store: &Store) -> Result<Option<String>> {
    Ok(sqlx::query("SELECT cursor FROM monitor_state WHERE id = 1")
        .fetch_one(store.reader())
        .await?
        .try_get("cursor")?)
}

/// Pages through `GET /payments` from the saved cursor to the end, processing every
/// record. Returns the number of new credits. (The daemon streams instead; this is the
/// same processing for catch-up, tests and reconciliation.)
pub async fn catch_up(
    store: &Store,
    sc: &StellarContext,
    wallets: &mut ManagedWallets,
) -> Result<usize> {
    let mut credited = 0;
    loop {
        let cursor = cursor(store).await?.unwrap_or_default();
        let page = sc.horizon.payments_page(&cursor, 200).await?;
        if page.is_empty() {
            return Ok(credited);
        }
        for record in &page {
            credited += process_record(store, sc, wallets, record).await?;
        }
    }
}

/// Per-account backfill: replays one wallet's whole payment history
/// (`GET /accounts/{id}/payments`, newest first, paged) through the same exactly-once
/// crediting, without moving the global cursor. Returns the number of new credits.
pub async fn backfill_account(store: &Store, sc: &StellarContext, account: &str) -> Result<usize> {
    let mut wallets = ManagedWallets::default();
    wallets.refresh(store).await?;
    let mut credited = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = sc
            .horizon
            .account_payments(account, cursor.as_deref(), 200)
            .await?;
        let Some(last) = page.last() else { break };
        cursor = last["paging_token"].as_str().map(str::to_string);
        for record in &page {
            let mut r = record.clone();
            // Keep the global cursor where it is.
            r["paging_token"] = Value::Null;
            credited += process_record(store, sc, &mut wallets, &r).await?;
        }
        if page.len() < 200 {
            break;
        }
    }
    Ok(credited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_record_shapes() {
        let usdc = ("USDC", "GISSUER");
        let pay = json!({"id": "1", "paging_token": "1", "type": "payment", "transaction_successful": true,
            "asset_type": "credit_alphanum4", "asset_code": "USDC", "asset_issuer": "GISSUER",
            "from": "GA", "to": "GB", "amount": "2.5000000", "transaction_hash": "h"});
        let got = incoming(&pay, usdc.0, usdc.1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].amount, Amount::parse("2.5").unwrap());
        let mut other = pay.clone();
        other["asset_issuer"] = json!("GFAKE");
        assert!(
            incoming(&other, usdc.0, usdc.1).is_empty(),
            "another issuer's USDC is not USDC"
        );
        let mut failed = pay.clone();
        failed["transaction_successful"] = json!(false);
        assert!(incoming(&failed, usdc.0, usdc.1).is_empty());
        let xlm = json!({"id": "2", "type": "payment", "asset_type": "native", "to": "GB", "amount": "1.0000000"});
        assert!(incoming(&xlm, usdc.0, usdc.1).is_empty());
        let invoke = json!({"id": "3", "type": "invoke_host_function", "transaction_successful": true, "transaction_hash": "h3",
        "asset_balance_changes": [
            {"type": "transfer", "asset_code": "USDC", "asset_issuer": "GISSUER", "from": "CESCROW", "to": "GB", "amount": "94.7000000"},
            {"type": "transfer", "asset_code": "USDC", "asset_issuer": "GISSUER", "from": "CESCROW", "to": "GP", "amount": "5.0000000"}
        ]});
        let got = incoming(&invoke, usdc.0, usdc.1);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].reference, "3#1");
        assert_eq!(got[0].from, "CESCROW");
    }
}

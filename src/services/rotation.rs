//! Key rotation over every table holding values sealed by the [`Vault`].
//!
//! Each sealed table is one [`SealedTable`] entry in [`SEALED_TABLES`]: its name, id
//! column (the associated data of the sealed value), sealed column and, when it has one,
//! a key-id column. [`rotate`] re-seals, batch by batch, every value not yet under the
//! vault's current key; [`count_under`] and [`verify`] prove whether a key can be
//! retired. Adding a table that the vault seals is one more entry.

use futures_util::TryStreamExt;
use serde::Serialize;
use sqlx::Row;

use crate::context::Context;
use crate::error::Result;
use crate::store::Store;
use crate::vault::Vault;

/// A table whose rows hold a value sealed by the vault.
#[derive(Clone, Copy, Debug)]
pub struct SealedTable {
    /// Table name.
    pub table: &'static str,
    /// Column whose value is the associated data of the sealed value.
    pub id_column: &'static str,
    /// Column holding `v1.<key id>.<…>`.
    pub sealed_column: &'static str,
    /// Column repeating the key id, kept in step, when the table has one.
    pub key_id_column: Option<&'static str>,
    /// Order in which rows are re-sealed (oldest first: the platform wallet leads).
    pub order_column: &'static str,
    /// Audit resource type of a re-sealed batch.
    pub resource: &'static str,
}

/// Every table whose values the wallet encryption key seals.
pub const SEALED_TABLES: &[SealedTable] = &[
    SealedTable {
        table: "wallets",
        id_column: "id",
        sealed_column: "sealed_secret",
        key_id_column: Some("key_id"),
        order_column: "seq",
        resource: "wallet",
    },
    // Outbound webhook signing secrets (plain-text ones from before sealing are sealed
    // first by `webhooks::seal_plaintext_secrets`).
    SealedTable {
        table: "webhook_endpoints",
        id_column: "id",
        sealed_column: "secret",
        key_id_column: None,
        order_column: "seq",
        resource: "webhook_endpoint",
    },
];

/// Outcome of a rotation run (all tables together).
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Values re-sealed by this run.
    pub resealed: usize,
    /// Values still sealed under another key (0 when complete).
    pub remaining: i64,
    /// Values proven to open with the new key alone (after completion).
    pub verified: usize,
    /// Whether the run stopped early (asked to stop, or its batch limit).
    pub interrupted: bool,
}

/// Sealed values not under `key_id` (`under: false`) or under it (`under: true`).
async fn count(store: &Store, t: &SealedTable, key_id: &str, under: bool) -> Result<i64> {
    let op = if under { "LIKE" } else { "NOT LIKE" };
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE {} {op} $1",
        t.table, t.sealed_column
    );
    Ok(sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
        .bind(format!("v1.{key_id}.%"))
        .fetch_one(store.reader())
        .await?)
}

/// Values, in every sealed table, not yet sealed under `key_id`.
pub async fn count_not_under(store: &Store, key_id: &str) -> Result<i64> {
    let mut n = 0;
    for t in SEALED_TABLES {
        n += count(store, t, key_id, false).await?;
    }
    Ok(n)
}

/// Values, in every sealed table, sealed under `key_id` (what retiring it would lose).
pub async fn count_under(store: &Store, key_id: &str) -> Result<i64> {
    let mut n = 0;
    for t in SEALED_TABLES {
        n += count(store, t, key_id, true).await?;
    }
    Ok(n)
}

/// Opens every sealed value with `vault` and returns how many opened; the first value
/// that does not open is the error (naming its row and key id, never key material).
pub async fn verify(store: &Store, vault: &Vault) -> Result<usize> {
    let mut n = 0;
    for t in SEALED_TABLES {
        let sql = format!(
            "SELECT {id}, {sealed} FROM {table} ORDER BY {id}",
            id = t.id_column,
            sealed = t.sealed_column,
            table = t.table
        );
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(store.reader());
        while let Some(r) = rows.try_next().await? {
            let id: String = r.try_get(0)?;
            let sealed: String = r.try_get(1)?;
            vault.open(&id, &sealed)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Re-seals every value not yet under `vault`'s current key, `batch` rows per database
/// transaction. `stop()` is asked before every batch: when it says so the run ends
/// cleanly (`interrupted`), and the next run continues with what is left. Each row is
/// updated by compare-and-set on its old sealed value, so a concurrent write is never
/// overwritten. When nothing remains, proves every value opens with the current key
/// alone. `progress(done, total)` reports after each batch.
pub async fn rotate(
    store: &Store,
    vault: &Vault,
    batch: u32,
    stop: &(dyn Fn() -> bool + Sync),
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Rotation> {
    let current = vault.current_key_id().to_string();
    // Webhook secrets stored before sealing existed: seal them (under the new key) first.
    crate::services::webhooks::seal_plaintext_secrets(store, vault).await?;
    let total = usize::try_from(count_not_under(store, &current).await?).unwrap_or(0);
    let mut out = Rotation::default();
    'tables: for t in SEALED_TABLES {
        loop {
            if stop() {
                out.interrupted = true;
                break 'tables;
            }
            let sql = format!(
                "SELECT {id}, {sealed} FROM {table} WHERE {sealed} NOT LIKE $1 ORDER BY {order} LIMIT {n}",
                id = t.id_column,
                order = t.order_column,
                sealed = t.sealed_column,
                table = t.table,
                n = batch.max(1)
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(format!("v1.{current}.%"))
                .fetch_all(store.reader())
                .await?;
            if rows.is_empty() {
                break;
            }
            let mut tx = store.begin().await?;
            let mut resealed = 0;
            for r in &rows {
                let id: String = r.try_get(0)?;
                let sealed: String = r.try_get(1)?;
                let seed = vault.open(&id, &sealed)?;
                let new = vault.seal(&id, seed.as_slice())?;
                let key_set = t
                    .key_id_column
                    .map(|c| format!(", {c} = $4"))
                    .unwrap_or_default();
                let sql = format!(
                    "UPDATE {table} SET {sealed} = $1{key_set} WHERE {id} = $2 AND {sealed} = $3",
                    table = t.table,
                    sealed = t.sealed_column,
                    id = t.id_column
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&new)
                    .bind(&id)
                    .bind(&sealed);
                if t.key_id_column.is_some() {
                    q = q.bind(&current);
                }
                let done = q.execute(tx.conn()).await?;
                resealed += usize::try_from(done.rows_affected()).unwrap_or(0);
            }
            tx.audit(
                Context::operator()
                    .audit(&format!("{}.key_rotated", t.resource), t.resource, "batch")
                    .after(serde_json::json!({ "rows": resealed, "keyId": current })),
            );
            tx.commit().await?;
            out.resealed += resealed;
            progress(out.resealed.min(total), total);
        }
    }
    out.remaining = count_not_under(store, &current).await?;
    if out.remaining == 0 && !out.interrupted {
        out.verified = verify(store, &vault.only_current()).await?;
    }
    Ok(out)
}

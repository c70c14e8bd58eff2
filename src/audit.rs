//! The audit log: one row per mutation, written in the same database transaction as the
//! mutation (see [`crate::store::Tx::audit`]), hash-chained so that editing, deleting or
//! reordering any row is detected by [`verify`] (`offerhub audit verify`).
//!
//! Row `n` stores `prev_hash` = hash of row `n-1` (64 zeros for the first) and
//! `hash = SHA-256(JSON array [seq, id, occurredAt, actorType, actorId, action,
//! resourceType, resourceId, before, after, requestId, idempotencyKey, prevHash])` in
//! lowercase hex, where `before`/`after` are the stored JSON texts. The chain head
//! (`audit_head`) is locked only at commit time, so the critical section is short.

use futures_util::TryStreamExt;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::context::Actor;
use crate::error::Result;
use crate::ids::{IdKind, new_id};
use crate::pagination::{Page, PageRequest};
use crate::store::{Backend, Store, Tx};

/// The `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Field names whose values are replaced by `"[REDACTED]"` in before/after states.
const SECRET_FIELDS: &[&str] = &[
    "secret",
    "key",
    "apiKey",
    "keyHash",
    "password",
    "seed",
    "secretKey",
    "encryptedSecret",
    "token",
    "privateKey",
];

/// A pending audit row. Build it with [`crate::context::Context::audit`].
#[derive(Clone, Debug)]
pub struct AuditEntry {
    pub actor: Actor,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
}

impl AuditEntry {
    /// The state before the change (secrets are redacted when written).
    pub fn before(mut self, v: impl Serialize) -> Self {
        self.before = serde_json::to_value(v).ok();
        self
    }
    /// The state after the change (secrets are redacted when written).
    pub fn after(mut self, v: impl Serialize) -> Self {
        self.after = serde_json::to_value(v).ok();
        self
    }
}

/// Replaces the value of every secret-named field, at any depth, by `"[REDACTED]"`.
pub fn redact(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    if SECRET_FIELDS.iter().any(|s| s.eq_ignore_ascii_case(&k)) {
                        (k, Value::String("[REDACTED]".into()))
                    } else {
                        (k, redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        other => other,
    }
}

/// One stored audit row, as the API returns it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditLog {
    pub id: String,
    pub seq: i64,
    pub occurred_at: String,
    pub actor_type: String,
    pub actor_id: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

struct RawRow {
    seq: i64,
    id: String,
    occurred_at: String,
    actor_type: String,
    actor_id: String,
    action: String,
    resource_type: String,
    resource_id: String,
    before: Option<String>,
    after: Option<String>,
    request_id: Option<String>,
    idempotency_key: Option<String>,
    prev_hash: String,
    hash: String,
}

impl RawRow {
    fn from_row(r: &sqlx::any::AnyRow) -> std::result::Result<RawRow, sqlx::Error> {
        Ok(RawRow {
            seq: r.try_get("seq")?,
            id: r.try_get("id")?,
            occurred_at: r.try_get("occurred_at")?,
            actor_type: r.try_get("actor_type")?,
            actor_id: r.try_get("actor_id")?,
            action: r.try_get("action")?,
            resource_type: r.try_get("resource_type")?,
            resource_id: r.try_get("resource_id")?,
            before: r.try_get("before_state")?,
            after: r.try_get("after_state")?,
            request_id: r.try_get("request_id")?,
            idempotency_key: r.try_get("idempotency_key")?,
            prev_hash: r.try_get("prev_hash")?,
            hash: r.try_get("hash")?,
        })
    }

    fn compute_hash(&self) -> String {
        let canonical = serde_json::json!([
            self.seq,
            self.id,
            self.occurred_at,
            self.actor_type,
            self.actor_id,
            self.action,
            self.resource_type,
            self.resource_id,
            self.before,
            self.after,
            self.request_id,
            self.idempotency_key,
            self.prev_hash,
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }

    fn into_log(self) -> AuditLog {
        let parse = |s: Option<String>| s.and_then(|t| serde_json::from_str(&t).ok());
        AuditLog {
            id: self.id,
            seq: self.seq,
            occurred_at: self.occurred_at,
            actor_type: self.actor_type,
            actor_id: self.actor_id,
            action: self.action,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            before: parse(self.before),
            after: parse(self.after),
            request_id: self.request_id,
            idempotency_key: self.idempotency_key,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

const COLUMNS: &str = "seq, id, occurred_at, actor_type, actor_id, action, resource_type, \
     resource_id, before_state, after_state, request_id, idempotency_key, prev_hash, hash";

/// Chains and inserts `entries` inside `tx` (called by [`Tx::commit`]).
pub(crate) async fn append(tx: &mut Tx, entries: Vec<AuditEntry>) -> Result<()> {
    let head_sql = match tx.backend() {
        Backend::Sqlite => "SELECT last_seq, last_hash FROM audit_head WHERE id = 1",
        Backend::Postgres => "SELECT last_seq, last_hash FROM audit_head WHERE id = 1 FOR UPDATE",
    };
    let head = sqlx::query(head_sql).fetch_one(tx.conn()).await?;
    let mut seq: i64 = head.try_get("last_seq")?;
    let mut prev: String = head.try_get("last_hash")?;
    let now = crate::clock::now();
    for e in entries {
        seq += 1;
        let row = RawRow {
            seq,
            id: new_id(IdKind::Audit),
            occurred_at: now.clone(),
            actor_type: e.actor.kind.as_str().to_string(),
            actor_id: e.actor.id,
            action: e.action,
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            before: e.before.map(|v| redact(v).to_string()),
            after: e.after.map(|v| redact(v).to_string()),
            request_id: e.request_id,
            idempotency_key: e.idempotency_key,
            prev_hash: prev,
            hash: String::new(),
        };
        let hash = row.compute_hash();
        sqlx::query(
            "INSERT INTO audit_logs (seq, id, occurred_at, actor_type, actor_id, action, \
             resource_type, resource_id, before_state, after_state, request_id, \
             idempotency_key, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(row.seq)
        .bind(&row.id)
        .bind(&row.occurred_at)
        .bind(&row.actor_type)
        .bind(&row.actor_id)
        .bind(&row.action)
        .bind(&row.resource_type)
        .bind(&row.resource_id)
        .bind(&row.before)
        .bind(&row.after)
        .bind(&row.request_id)
        .bind(&row.idempotency_key)
        .bind(&row.prev_hash)
        .bind(&hash)
        .execute(tx.conn())
        .await?;
        prev = hash;
    }
    sqlx::query("UPDATE audit_head SET last_seq = $1, last_hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&prev)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Filters of `GET /audit/logs`; all optional, combined with AND. `from`/`to` are
/// RFC 3339 times (inclusive).
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Newest first, `page.limit` rows after `page.cursor`.
pub async fn list(
    store: &Store,
    filter: &AuditFilter,
    page: &PageRequest,
) -> Result<Page<AuditLog>> {
    let mut sql = format!("SELECT {COLUMNS} FROM audit_logs WHERE 1 = 1");
    let mut binds: Vec<String> = Vec::new();
    let mut cond = |column: &str, op: &str, v: &Option<String>, binds: &mut Vec<String>| {
        if let Some(v) = v {
            binds.push(v.clone());
            sql.push_str(&format!(" AND {column} {op} ${}", binds.len()));
        }
    };
    cond("resource_type", "=", &filter.resource_type, &mut binds);
    cond("resource_id", "=", &filter.resource_id, &mut binds);
    cond("action", "=", &filter.action, &mut binds);
    cond("actor_id", "=", &filter.actor_id, &mut binds);
    cond("occurred_at", ">=", &filter.from, &mut binds);
    cond("occurred_at", "<=", &filter.to, &mut binds);
    let cursor = page.cursor_seq()?;
    if cursor.is_some() {
        sql.push_str(&format!(" AND seq < ${}", binds.len() + 1));
    }
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT {}", page.limit + 1));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in &binds {
        q = q.bind(b.clone());
    }
    if let Some(c) = cursor {
        q = q.bind(c);
    }
    let rows = q.fetch_all(store.reader()).await?;
    let items = rows
        .iter()
        .map(RawRow::from_row)
        .collect::<std::result::Result<Vec<_>, _>>()?
        .into_iter()
        .map(RawRow::into_log)
        .collect();
    Ok(Page::from_rows(items, page.limit, |l: &AuditLog| l.seq))
}

/// Result of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Every link holds; `rows` were checked.
    Intact { rows: u64 },
    /// The first broken link: the row (sequence and id) and what is wrong with it.
    Broken {
        seq: i64,
        id: String,
        reason: String,
    },
}

/// Re-computes the whole chain, streaming rows in order (constant memory).
pub async fn verify(store: &Store) -> Result<Verification> {
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_logs ORDER BY seq"
    )))
    .fetch(store.reader());
    let mut expected_seq = 1_i64;
    let mut prev = GENESIS_HASH.to_string();
    let mut count = 0_u64;
    while let Some(r) = rows.try_next().await? {
        let row = RawRow::from_row(&r)?;
        let broken = |reason: String| Verification::Broken {
            seq: row.seq,
            id: row.id.clone(),
            reason,
        };
        if row.seq != expected_seq {
            return Ok(broken(format!(
                "sequence {} follows {} (a row was deleted or inserted)",
                row.seq,
                expected_seq - 1
            )));
        }
        if row.prev_hash != prev {
            return Ok(broken(
                "prev_hash does not match the previous row's hash".into(),
            ));
        }
        if row.compute_hash() != row.hash {
            return Ok(broken(
                "content does not match its hash (the row was modified)".into(),
            ));
        }
        prev = row.hash.clone();
        expected_seq += 1;
        count += 1;
    }
    drop(rows);
    let head = sqlx::query("SELECT last_seq, last_hash FROM audit_head WHERE id = 1")
        .fetch_one(store.reader())
        .await?;
    let last_seq: i64 = head.try_get("last_seq")?;
    let last_hash: String = head.try_get("last_hash")?;
    if last_seq != expected_seq - 1 || last_hash != prev {
        return Ok(Verification::Broken {
            seq: last_seq,
            id: "audit_head".into(),
            reason: format!(
                "chain head says {last_seq} rows but {} are present (rows were deleted at the end)",
                expected_seq - 1
            ),
        });
    }
    Ok(Verification::Intact { rows: count })
}

//! The audit log: one row per mutation, written in the same database transaction as the
//! mutation (see [`crate::store::Tx::audit`]), hash-chained so that editing, deleting or
//! reordering any row is detected by [`verify`] (`offerhub audit verify`).
//!
//! Row `n` stores `prev_hash` = hash of row `n-1` (64 zeros for the first) and
//! `hash = SHA-256(JSON array [seq, id, occurredAt, actorType, actorId, action,
//! resourceType, resourceId, before, after, requestId, idempotencyKey, prevHash])` in
//! lowercase hex, where `before`/`after` are the stored JSON texts.
//!
//! On PostgreSQL rows are written unnumbered and the [`crate::sequencer`] numbers and
//! chains them after commit (no row shared by every writer); on SQLite they are chained
//! at commit under the one writer connection. Only numbered rows are listed and
//! verified; [`verify`] reports the unnumbered tail.

use futures_util::TryStreamExt;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::context::Actor;
use crate::error::Result;
use crate::ids::{IdKind, new_id};
use crate::pagination::{Page, PageRequest};
use crate::store::{Backend, Select, Store, Tx};

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

/// One stored audit row (the API serialises it as `daemon::dto::audit::AuditLog`).
#[derive(Clone, Debug, Serialize)]
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

#[derive(Clone)]
pub(crate) struct RawRow {
    pub(crate) seq: i64,
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
    pub(crate) prev_hash: String,
    hash: String,
}

impl RawRow {
    fn from_row(r: &sqlx::any::AnyRow) -> std::result::Result<RawRow, sqlx::Error> {
        Ok(RawRow {
            seq: r.try_get("seq")?,
            prev_hash: r.try_get("prev_hash")?,
            hash: r.try_get("hash")?,
            ..RawRow::from_unsequenced_row(r)?
        })
    }

    /// The content columns of a row the sequencer has not numbered yet (`seq`,
    /// `prev_hash` and `hash` are NULL there; left zero and empty here).
    pub(crate) fn from_unsequenced_row(
        r: &sqlx::any::AnyRow,
    ) -> std::result::Result<RawRow, sqlx::Error> {
        Ok(RawRow {
            seq: 0,
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
            prev_hash: String::new(),
            hash: String::new(),
        })
    }

    /// Binds the eleven content columns, in the order of `append`'s `CONTENT`.
    pub(crate) fn bind_content<'q>(
        self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
        q.bind(self.id)
            .bind(self.occurred_at)
            .bind(self.actor_type)
            .bind(self.actor_id)
            .bind(self.action)
            .bind(self.resource_type)
            .bind(self.resource_id)
            .bind(self.before)
            .bind(self.after)
            .bind(self.request_id)
            .bind(self.idempotency_key)
    }

    pub(crate) fn compute_hash(&self) -> String {
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

pub(crate) const COLUMNS: &str = "seq, id, occurred_at, actor_type, actor_id, action, resource_type, \
     resource_id, before_state, after_state, request_id, idempotency_key, prev_hash, hash";

/// The content columns of an audit row, in the order [`RawRow::bind_content`] binds them.
const AUDIT_CONTENT: &str = "id, occurred_at, actor_type, actor_id, action, resource_type, \
     resource_id, before_state, after_state, request_id, idempotency_key";

/// Rows for `entries`, stamped now, secrets redacted, not numbered.
pub(crate) fn prepare(entries: Vec<AuditEntry>) -> Vec<RawRow> {
    let now = crate::clock::now();
    entries
        .into_iter()
        .map(|e| RawRow {
            seq: 0,
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
            prev_hash: String::new(),
            hash: String::new(),
        })
        .collect()
}

/// `INSERT INTO audit_logs … VALUES …` for `n` unnumbered PostgreSQL rows, placeholders
/// from `$1` (11 per row, [`RawRow::bind_content`]).
pub(crate) fn push_insert_pg(sql: &mut String, n: usize) {
    sql.push_str(&format!(
        "INSERT INTO audit_logs ({AUDIT_CONTENT}, txid) VALUES "
    ));
    crate::store::push_placeholders(sql, n, 11, ", pg_current_xact_id()");
}

/// Inserts `entries` and then `events` ([`crate::events::push_insert`]) inside `tx`
/// (called by [`Tx::commit`] when it cannot write both in one statement).
///
/// - PostgreSQL: without sequence number or hashes, with the writer's transaction id;
///   the [`crate::sequencer`] numbers and chains them after commit, so writers share no
///   row.
/// - SQLite: chained here, under the one writer connection (which already serialises
///   every transaction), after the head read; the rows, the new head and the events go
///   in one batch (one call on the writer instead of three).
pub(crate) async fn append_with_events(
    tx: &mut Tx,
    entries: Vec<AuditEntry>,
    events: Vec<crate::events::NewEvent>,
) -> Result<()> {
    if entries.is_empty() {
        return crate::events::append(tx, events).await;
    }
    let mut rows = prepare(entries);
    if tx.backend() == Backend::Postgres {
        let mut sql = String::new();
        push_insert_pg(&mut sql, rows.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in rows {
            q = r.bind_content(q);
        }
        q.execute(tx.conn()).await?;
        return crate::events::append(tx, events).await;
    }
    // The head this process last committed, else the stored one; rows chained from a
    // stale head (another process appended meanwhile) collide on `seq`: chain again
    // from the stored head.
    let cached = tx.audit_head_hint();
    let from_cache = cached.is_some();
    let head = match cached {
        Some(h) => h,
        None => read_head(tx).await?,
    };
    let result = match append_chained(tx, &mut rows, head, &events).await {
        Err(e) if from_cache && collides_on_seq(&e) => {
            tx.audit_head_cache().set(None);
            let head = read_head(tx).await?;
            append_chained(tx, &mut rows, head, &events).await
        }
        other => other,
    };
    match result {
        Ok(Some(next)) => {
            tx.next_audit_head = Some(next);
            Ok(())
        }
        Ok(None) => {
            // Nothing collided, yet the stored head was not the one chained from (the
            // file was rolled back under this process): fail loudly, this
            // transaction's rows are dropped with it, the next one reads the head.
            tx.audit_head_cache().set(None);
            Err(crate::error::Error::unavailable(
                "the audit chain's head moved under this process; transaction rolled back",
            ))
        }
        Err(e) => {
            tx.audit_head_cache().set(None);
            Err(e.into())
        }
    }
}

/// Whether `e` is the collision of audit rows numbered from a stale head with rows
/// another process appended (`UNIQUE constraint failed: audit_logs.seq`).
fn collides_on_seq(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation() && d.message().contains("audit_logs.seq"))
}

/// The stored head of the audit chain (`last_seq`, `last_hash`).
async fn read_head(tx: &mut Tx) -> Result<(i64, String)> {
    let head = sqlx::query("SELECT last_seq, last_hash FROM audit_head WHERE id = 1")
        .fetch_one(tx.conn())
        .await?;
    Ok((head.try_get("last_seq")?, head.try_get("last_hash")?))
}

/// SQLite: numbers and chains `rows` after `head`, then writes them, the new head
/// (only if the stored head is `head`) and `events` in one batch (one call on the
/// writer). Returns the new head, or `None` when the stored head was another (the
/// batch then wrote the rows and events but not the head: the caller must roll back).
/// A failed batch stops at its first failing statement: the audit rows' insert comes
/// first, so a collision on `seq` leaves nothing written.
async fn append_chained(
    tx: &mut Tx,
    rows: &mut [RawRow],
    (mut seq, mut prev): (i64, String),
    events: &[crate::events::NewEvent],
) -> std::result::Result<Option<(i64, String)>, sqlx::Error> {
    let (from_seq, from_hash) = (seq, prev.clone());
    for r in rows.iter_mut() {
        seq += 1;
        r.seq = seq;
        r.prev_hash = std::mem::take(&mut prev);
        r.hash = r.compute_hash();
        prev = r.hash.clone();
    }
    let mut sql = format!("INSERT INTO audit_logs ({AUDIT_CONTENT}, seq, prev_hash, hash) VALUES ");
    crate::store::push_placeholders(&mut sql, rows.len(), 14, "");
    let head_param = rows.len() * 14 + 1;
    sql.push_str(&format!(
        "; UPDATE audit_head SET last_seq = ${head_param}, last_hash = ${} \
         WHERE id = 1 AND last_seq = ${} AND last_hash = ${}",
        head_param + 1,
        head_param + 2,
        head_param + 3
    ));
    if !events.is_empty() {
        sql.push_str("; ");
        crate::events::push_insert(&mut sql, Backend::Sqlite, head_param + 4, events.len());
    }
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for r in rows.iter() {
        q = r
            .clone()
            .bind_content(q)
            .bind(r.seq)
            .bind(r.prev_hash.clone())
            .bind(r.hash.clone());
    }
    q = q
        .bind(seq)
        .bind(prev.clone())
        .bind(from_seq)
        .bind(from_hash);
    q = crate::events::bind_all(q, events.to_vec());
    let done = q.execute(tx.conn()).await?;
    // Every audit row, the head and every event: the head was the one chained from.
    let expected = (rows.len() + 1 + events.len()) as u64;
    Ok((done.rows_affected() == expected).then_some((seq, prev)))
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

/// How long [`list`] and [`crate::events::history`] wait for the sequencer to number
/// what was committed before them (held back only by a transaction still open).
pub const READ_YOUR_WRITES_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Newest first, `page.limit` rows after `page.cursor`. Numbers what was committed
/// before the call first ([`crate::sequencer::catch_up`], up to
/// [`READ_YOUR_WRITES_WAIT`]), so a caller sees its own writes.
pub async fn list(
    store: &Store,
    filter: &AuditFilter,
    page: &PageRequest,
) -> Result<Page<AuditLog>> {
    crate::sequencer::catch_up(store, READ_YOUR_WRITES_WAIT).await?;
    let mut q = Select::new(format!(
        "SELECT {COLUMNS} FROM audit_logs WHERE seq IS NOT NULL"
    ));
    q.and_eq("resource_type", filter.resource_type.as_deref())
        .and_eq("resource_id", filter.resource_id.as_deref())
        .and_eq("action", filter.action.as_deref())
        .and_eq("actor_id", filter.actor_id.as_deref());
    if let Some(from) = &filter.from {
        q.push(" AND occurred_at >= ").push_bind(from.as_str());
    }
    if let Some(to) = &filter.to {
        q.push(" AND occurred_at <= ").push_bind(to.as_str());
    }
    if let Some(c) = page.cursor_seq()? {
        q.push(" AND seq < ").push_bind(c);
    }
    q.push(format_args!(" ORDER BY seq DESC LIMIT {}", page.limit + 1));
    let rows = q.build()?.fetch_all(store.reader()).await?;
    let items = rows
        .iter()
        .map(RawRow::from_row)
        .collect::<std::result::Result<Vec<_>, _>>()?
        .into_iter()
        .map(RawRow::into_log)
        .collect();
    Ok(Page::from_rows(items, page.limit, |l: &AuditLog| l.seq))
}

/// Rows not numbered yet older than this make [`verify`] fail: the sequencer is not
/// running, or a transaction has been open that long and holds it back.
pub const UNSEQUENCED_BOUND: std::time::Duration = std::time::Duration::from_secs(60);

/// Result of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verification {
    /// Every link holds; `rows` were checked. `unsequenced` rows (PostgreSQL) were
    /// committed but not numbered yet, all younger than [`UNSEQUENCED_BOUND`].
    Intact { rows: u64, unsequenced: u64 },
    /// The first broken link: the row (sequence and id) and what is wrong with it.
    Broken {
        seq: i64,
        id: String,
        reason: String,
    },
}

/// Numbers what is ready ([`crate::sequencer::catch_up`], up to 5 s), re-computes the
/// whole chain of numbered rows, streaming them in order (constant memory), then checks
/// the unnumbered tail: any row in it older than [`UNSEQUENCED_BOUND`] is reported as
/// broken.
pub async fn verify(store: &Store) -> Result<Verification> {
    crate::sequencer::catch_up(store, std::time::Duration::from_secs(5)).await?;
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_logs WHERE seq IS NOT NULL ORDER BY seq"
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
    let tail = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n, MIN(occurred_at) AS oldest, MIN(id) AS some_id \
         FROM audit_logs WHERE seq IS NULL",
    )
    .fetch_one(store.reader())
    .await?;
    let unsequenced: i64 = tail.try_get("n")?;
    let oldest: Option<String> = tail.try_get("oldest")?;
    if let Some(age) = oldest
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        && age.to_std().unwrap_or_default() > UNSEQUENCED_BOUND
    {
        return Ok(Verification::Broken {
            seq: last_seq + 1,
            id: tail
                .try_get::<Option<String>, _>("some_id")?
                .unwrap_or_default(),
            reason: format!(
                "{unsequenced} rows are not numbered, the oldest for {} s (is a daemon \
                 running? a transaction open that long holds the sequencer back)",
                age.num_seconds()
            ),
        });
    }
    Ok(Verification::Intact {
        rows: count,
        unsequenced: u64::try_from(unsequenced).unwrap_or(0),
    })
}

//! Domain events: a transactional outbox (docs/ARCHITECTURE.md, Events, SSE and webhooks).
//!
//! Services queue events on their [`Tx`] with [`Tx::emit`]; they are written at commit,
//! in the same database transaction as the state change. Each event has an id
//! (`evt_…`) and a sequence number that never changes once given and is never given
//! out of order: a reader that has seen `seq = N` has seen every event below `N`. That
//! is what lets SSE replay-then-live and the webhook dispatcher work from a cursor with
//! nothing lost or duplicated. On PostgreSQL the number is given after commit by the
//! [`crate::sequencer`] (no row shared by writers); on SQLite it is the rowid. Readers
//! only ever see numbered events (`seq > cursor`).
//!
//! Wire shape: `{id, type, occurredAt, resourceType, resourceId, data}`. Amounts in
//! `data` are decimal strings; resource types are lowercase (`order`, `user`, …).

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use crate::error::{Error, Result};
use crate::ids::{IdKind, new_id};
use crate::store::{Backend, Store, Tx};

/// The PostgreSQL channel that wakes every daemon's event pump after a commit.
pub const NOTIFY_CHANNEL: &str = "offerhub_events";

/// An event waiting for its transaction to commit.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event_type: String,
    pub resource_type: String,
    pub resource_id: String,
    pub data: Value,
}

impl NewEvent {
    pub fn new(event_type: &str, resource_type: &str, resource_id: &str, data: Value) -> Self {
        NewEvent {
            event_type: event_type.to_string(),
            resource_type: resource_type.to_string(),
            resource_id: resource_id.to_string(),
            data,
        }
    }
}

/// A committed event.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(skip)]
    pub seq: i64,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub occurred_at: String,
    pub resource_type: String,
    pub resource_id: String,
    pub data: Value,
}

const COLUMNS: &str = "seq, id, event_type, resource_type, resource_id, data, occurred_at";

pub(crate) fn from_row(r: &sqlx::any::AnyRow) -> Result<Event> {
    let data: String = r.try_get("data")?;
    Ok(Event {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        event_type: r.try_get("event_type")?,
        resource_type: r.try_get("resource_type")?,
        resource_id: r.try_get("resource_id")?,
        data: serde_json::from_str(&data).unwrap_or(Value::Null),
        occurred_at: r.try_get("occurred_at")?,
    })
}

/// Writes queued events inside `tx` (called by [`Tx::commit`]), in one statement.
///
/// - PostgreSQL: without a sequence number, with the writer's transaction id; the
///   [`crate::sequencer`] numbers them after commit, so writers share no row.
/// - SQLite: the sequence number is the rowid, given at insert. The one writer
///   connection serialises transactions, so rowid order is commit order.
pub(crate) async fn append(tx: &mut Tx, events: Vec<NewEvent>) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut sql = String::new();
    push_insert(&mut sql, tx.backend(), 1, events.len());
    let q = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), events);
    q.execute(tx.conn()).await?;
    Ok(())
}

/// `INSERT INTO events … VALUES …` for `n` events, placeholders from `$first` (6 per
/// event, [`bind_all`]); on PostgreSQL unnumbered with the writer's transaction id.
pub(crate) fn push_insert(sql: &mut String, backend: Backend, first: usize, n: usize) {
    let (columns, extra) = match backend {
        Backend::Sqlite => (
            "id, event_type, resource_type, resource_id, data, occurred_at",
            "",
        ),
        Backend::Postgres => (
            "id, event_type, resource_type, resource_id, data, occurred_at, txid",
            ", pg_current_xact_id()",
        ),
    };
    sql.push_str(&format!("INSERT INTO events ({columns}) VALUES "));
    crate::store::push_placeholders_from(sql, first, n, 6, extra);
}

/// Binds `events` (new ids, stamped now) in [`push_insert`]'s order.
pub(crate) fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    events: Vec<NewEvent>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let now = crate::clock::now();
    for e in events {
        q = q
            .bind(new_id(IdKind::Event))
            .bind(e.event_type)
            .bind(e.resource_type)
            .bind(e.resource_id)
            .bind(e.data.to_string())
            .bind(now.clone());
    }
    q
}

/// Every event type OfferHub emits (docs/EVENTS.md describes each; `tests/docs.rs`
/// checks that the code emits nothing else). Webhook endpoint patterns are validated
/// against it ([`EventFilter::parse_catalogued`]).
pub const EVENT_TYPES: &[&str] = &[
    "balance.credited",
    "balance.debited",
    "balance.released",
    "balance.reserved",
    "dispute.comment_added",
    "dispute.opened",
    "dispute.resolved",
    "dispute.under_review",
    "escrow.created",
    "escrow.funded",
    "escrow.milestone_approved",
    "escrow.milestone_completed",
    "escrow.refunded",
    "escrow.released",
    "order.auto_release_scheduled",
    "order.auto_released",
    "order.canceled",
    "order.closed",
    "order.created",
    "order.disputed",
    "order.escrow_creating",
    "order.escrow_funded",
    "order.escrow_funding",
    "order.expired",
    "order.funds_reserved",
    "order.in_progress",
    "order.refund_requested",
    "order.refunded",
    "order.release_requested",
    "order.released",
    "reconciliation.discrepancy",
    "saga.compensated",
    "saga.needs_attention",
    "topup.canceled",
    "topup.confirmation_required",
    "topup.created",
    "topup.expired",
    "topup.failed",
    "topup.processing",
    "topup.succeeded",
    "user.airtm_linked",
    "user.created",
    "user.reactivated",
    "user.stellar_linked",
    "user.suspended",
    "user.updated",
    "withdrawal.canceled",
    "withdrawal.committed",
    "withdrawal.completed",
    "withdrawal.created",
    "withdrawal.failed",
    "withdrawal.needs_attention",
    "withdrawal.pending",
    "withdrawal.pending_user_action",
];

/// Which events a subscriber wants. Empty lists mean "all".
///
/// `types`: exact names (`order.created`) or prefix wildcards (`order.*`, `*`).
/// `resources`: resource types (`order`, `user`, …), case-insensitive.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub types: Vec<String>,
    pub resources: Vec<String>,
}

impl EventFilter {
    /// Builds a filter from raw parameter values, each possibly a comma list.
    /// 400 `VALIDATION_ERROR` naming `types` for a malformed pattern.
    pub fn parse(types: &[String], resources: &[String]) -> Result<EventFilter> {
        let split = |v: &[String]| -> Vec<String> {
            v.iter()
                .flat_map(|s| s.split(','))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let types = split(types);
        for t in &types {
            let body = t.strip_suffix(".*").unwrap_or(t);
            let ok = t == "*"
                || (!body.is_empty()
                    && body.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_'
                    }));
            if !ok {
                return Err(Error::validation(
                    "types",
                    format!("{t:?} is not an event type or a wildcard such as order.*"),
                ));
            }
        }
        let resources = split(resources)
            .into_iter()
            .map(|r| r.to_ascii_lowercase())
            .collect();
        Ok(EventFilter { types, resources })
    }

    /// [`EventFilter::parse`], and every type pattern must name something OfferHub
    /// emits: `*`, a type of [`EVENT_TYPES`], or `prefix.*` where some type starts with
    /// `prefix.`. Errors name `field`.
    pub fn parse_catalogued(types: &[String], field: &str) -> Result<EventFilter> {
        let filter =
            EventFilter::parse(types, &[]).map_err(|e| Error::validation(field, e.message))?;
        for t in &filter.types {
            let known = t == "*"
                || EVENT_TYPES.contains(&t.as_str())
                || t.strip_suffix(".*").is_some_and(|prefix| {
                    EVENT_TYPES.iter().any(|e| {
                        e.strip_prefix(prefix)
                            .is_some_and(|rest| rest.starts_with('.'))
                    })
                });
            if !known {
                return Err(Error::validation(
                    field,
                    format!(
                        "{t:?} matches no event type OfferHub emits (see docs/EVENTS.md; \
                         wildcards such as order.* or * are accepted)"
                    ),
                ));
            }
        }
        Ok(filter)
    }

    pub fn matches(&self, e: &Event) -> bool {
        self.matches_parts(&e.event_type, &e.resource_type)
    }

    /// Whether an event of `event_type` on `resource_type` passes.
    pub fn matches_parts(&self, event_type: &str, resource_type: &str) -> bool {
        let type_ok = self.types.is_empty()
            || self.types.iter().any(|p| {
                p == "*"
                    || p == event_type
                    || p.strip_suffix(".*").is_some_and(|prefix| {
                        event_type
                            .strip_prefix(prefix)
                            .is_some_and(|rest| rest.starts_with('.'))
                    })
            });
        let resource_ok = self.resources.is_empty()
            || self
                .resources
                .iter()
                .any(|r| r.eq_ignore_ascii_case(resource_type));
        type_ok && resource_ok
    }
}

/// Events with `seq > after`, oldest first, at most `limit`.
pub async fn after(store: &Store, after: i64, limit: u32) -> Result<Vec<Event>> {
    after_on(store.reader(), after, limit).await
}

/// [`after`] on a given pool (the daemon's event broadcaster reads on
/// [`Store::background_reader`], so it never waits behind requests).
///
/// Planned on every call (not a cached prepared statement): a plan cached while
/// `events` was small (a fresh database) is a sequential scan and a sort, kept by the
/// connection until PostgreSQL's statistics change — on a busy new database that read
/// scanned the whole table on every pump pass, 10 ms and more.
pub async fn after_on(pool: &sqlx::AnyPool, after: i64, limit: u32) -> Result<Vec<Event>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT {limit}"
    )))
    .persistent(false)
    .bind(after)
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}

/// The sequence number of an event id; 400 `VALIDATION_ERROR` naming `field` when unknown.
pub async fn seq_of(store: &Store, event_id: &str, field: &str) -> Result<i64> {
    let row = sqlx::query("SELECT seq FROM events WHERE id = $1 AND seq IS NOT NULL")
        .bind(event_id)
        .fetch_optional(store.reader())
        .await?;
    match row {
        Some(r) => Ok(r.try_get("seq")?),
        None => Err(Error::validation(
            field,
            format!("{event_id:?} is not the id of a stored event"),
        )),
    }
}

/// The latest sequence number given (every event up to it is visible).
pub async fn last_seq(store: &Store) -> Result<i64> {
    last_seq_on(store.reader(), store.backend()).await
}

/// [`last_seq`] on a given pool.
pub async fn last_seq_on(pool: &sqlx::AnyPool, backend: Backend) -> Result<i64> {
    let sql = match backend {
        Backend::Sqlite => "SELECT COALESCE(MAX(seq), 0) AS last_seq FROM events",
        Backend::Postgres => "SELECT last_seq FROM event_head WHERE id = 1",
    };
    Ok(sqlx::query(sql)
        .fetch_one(pool)
        .await?
        .try_get("last_seq")?)
}

/// One event by id (once it has its sequence number).
pub async fn get(store: &Store, id: &str) -> Result<Option<Event>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM events WHERE id = $1 AND seq IS NOT NULL"
    )))
    .bind(id)
    .fetch_optional(store.reader())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// A page of matching events after `after_seq`, oldest first: scans forward in batches
/// until `limit` matches or the end. Returns the events and the last scanned sequence
/// (the cursor to continue from, so sparse filters still make progress). Numbers what
/// was committed before the call first ([`crate::sequencer::catch_up`]), so a caller
/// sees its own writes.
pub async fn history(
    store: &Store,
    filter: &EventFilter,
    after_seq: i64,
    limit: u32,
) -> Result<(Vec<Event>, i64, bool)> {
    crate::sequencer::catch_up(store, crate::audit::READ_YOUR_WRITES_WAIT).await?;
    let mut out = Vec::new();
    let mut cursor = after_seq;
    let mut scanned_batches = 0;
    loop {
        let batch = after(store, cursor, 500).await?;
        let exhausted = batch.len() < 500;
        for e in batch {
            cursor = e.seq;
            if filter.matches(&e) {
                out.push(e);
                if out.len() == limit as usize {
                    let more = !after(store, cursor, 1).await?.is_empty();
                    return Ok((out, cursor, more));
                }
            }
        }
        scanned_batches += 1;
        if exhausted || scanned_batches >= 20 {
            let more = !exhausted;
            return Ok((out, cursor, more));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_resources() {
        let f = EventFilter::parse(&["order.*,balance.credited".into()], &[]).unwrap();
        assert!(f.matches_parts("order.created", "order"));
        assert!(f.matches_parts("order.escrow_funded", "order"));
        assert!(!f.matches_parts("orders.created", "order"));
        assert!(f.matches_parts("balance.credited", "user"));
        assert!(!f.matches_parts("balance.debited", "user"));
        let f = EventFilter::parse(&[], &["Order".into()]).unwrap();
        assert!(f.matches_parts("order.created", "order"));
        assert!(!f.matches_parts("user.created", "user"));
        assert!(EventFilter::parse(&["order.*.x;".into()], &[]).is_err());
        assert!(
            EventFilter::parse(&["*".into()], &[])
                .unwrap()
                .matches_parts("x.y", "z")
        );
    }
}

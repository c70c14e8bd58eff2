//! The inbox of inbound provider webhooks (docs/ARCHITECTURE.md, Events, SSE and webhooks):
//! a verified delivery is stored raw, unique on `(provider, event_id)` — for Airtm the
//! `svix-id`, identical on every retry — and processed asynchronously by a worker.
//! Processing never trusts the body for money: it only says which resource to re-fetch from
//! the provider.
//!
//! Statuses: `RECEIVED` (to process), `PROCESSED`, `IGNORED` (not ours, or an event type
//! we do not act on), `FAILED` (gave up after [`MAX_ATTEMPTS`]; the reconciler still
//! covers the resource). `offerhub webhooks replay iwh_…` puts one back to `RECEIVED`.

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;

use crate::context::Context;
pub use crate::domain::webhook::InboundStatus;
use crate::error::{Error, ErrorCode, Result};
use crate::ids::{IdKind, new_id};
use crate::pagination::{Page, PageRequest};
use crate::store::Store;

/// Attempts before a message is parked as `FAILED`.
pub const MAX_ATTEMPTS: i64 = 10;

/// One stored inbound webhook.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundWebhook {
    pub id: String,
    pub provider: String,
    /// The provider's message id (Airtm: `svix-id`).
    pub event_id: String,
    pub event_type: String,
    pub payload: Value,
    pub status: InboundStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub received_at: String,
    pub processed_at: Option<String>,
    #[serde(skip)]
    seq: i64,
}

const COLUMNS: &str = "seq, id, provider, event_id, event_type, payload, status, attempts, last_error, \
     received_at, processed_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<InboundWebhook> {
    let payload: String = r.try_get("payload")?;
    Ok(InboundWebhook {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        provider: r.try_get("provider")?,
        event_id: r.try_get("event_id")?,
        event_type: r.try_get("event_type")?,
        payload: serde_json::from_str(&payload).unwrap_or(Value::String(payload)),
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        last_error: r.try_get("last_error")?,
        received_at: r.try_get("received_at")?,
        processed_at: r.try_get("processed_at")?,
    })
}

/// Stores a verified delivery. `Ok(true)` when new, `Ok(false)` when this event id was
/// already received (a retry or a replay by the provider): nothing changes.
pub async fn receive(
    store: &Store,
    provider: &str,
    event_id: &str,
    event_type: &str,
    payload: &str,
) -> Result<bool> {
    let mut db = store.begin().await?;
    let id = new_id(IdKind::InboundWebhook);
    let inserted = sqlx::query(
        "INSERT INTO inbound_webhooks (id, provider, event_id, event_type, payload, status, received_at) \
         VALUES ($1, $2, $3, $4, $5, $7, $6) ON CONFLICT (provider, event_id) DO NOTHING",
    )
    .bind(&id)
    .bind(provider)
    .bind(event_id)
    .bind(event_type)
    .bind(payload)
    .bind(crate::clock::now())
    .bind(InboundStatus::Received)
    .execute(db.conn())
    .await?
    .rows_affected();
    if inserted == 1 {
        db.audit(
            Context::system()
                .audit("webhook.received", "inbound_webhook", &id)
                .after(serde_json::json!({ "provider": provider, "eventId": event_id, "eventType": event_type })),
        );
    }
    db.commit().await?;
    Ok(inserted == 1)
}

/// Messages waiting to be processed, oldest first.
pub async fn due(store: &Store, limit: u32) -> Result<Vec<InboundWebhook>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM inbound_webhooks WHERE status = $1 ORDER BY seq LIMIT {limit}"
    )))
    .bind(InboundStatus::Received)
    .fetch_all(store.reader())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Marks a message `PROCESSED` or `IGNORED` (with a note).
pub async fn finish(
    store: &Store,
    id: &str,
    status: InboundStatus,
    note: Option<&str>,
) -> Result<()> {
    let mut db = store.begin().await?;
    sqlx::query(
        "UPDATE inbound_webhooks SET status = $1, last_error = $2, processed_at = $3, attempts = attempts + 1 \
         WHERE id = $4",
    )
    .bind(status)
    .bind(note)
    .bind(crate::clock::now())
    .bind(id)
    .execute(db.conn())
    .await?;
    db.commit().await
}

/// Records a failed attempt; after [`MAX_ATTEMPTS`] the message is `FAILED`.
pub async fn attempt_failed(store: &Store, id: &str, error: &str) -> Result<()> {
    let mut db = store.begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE inbound_webhooks SET attempts = attempts + 1, last_error = $1, \
         status = CASE WHEN attempts + 1 >= {MAX_ATTEMPTS} THEN $3 ELSE status END WHERE id = $2"
    )))
    .bind(error)
    .bind(id)
    .bind(InboundStatus::Failed)
    .execute(db.conn())
    .await?;
    db.commit().await
}

/// One message; 404 `NOT_FOUND`.
pub async fn get(store: &Store, id: &str) -> Result<InboundWebhook> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM inbound_webhooks WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(store.reader())
    .await?;
    row.as_ref().map(from_row).transpose()?.ok_or_else(|| {
        Error::new(
            ErrorCode::NotFound,
            format!("Inbound webhook {id} does not exist"),
        )
    })
}

/// Messages newest first.
pub async fn list(store: &Store, page: &PageRequest) -> Result<Page<InboundWebhook>> {
    let cursor = page.cursor_seq()?.unwrap_or(i64::MAX);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM inbound_webhooks WHERE seq < $1 ORDER BY seq DESC LIMIT {}",
        page.limit + 1
    )))
    .bind(cursor)
    .fetch_all(store.reader())
    .await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, page.limit, |w| w.seq))
}

/// Queues a stored message for processing again (operator replay). Safe: processing
/// re-fetches the resource and every money movement is exactly-once.
pub async fn replay(store: &Store, ctx: &Context, id: &str) -> Result<InboundWebhook> {
    let before = get(store, id).await?;
    let mut db = store.begin_for(ctx).await?;
    sqlx::query(
        "UPDATE inbound_webhooks SET status = $2, attempts = 0, last_error = NULL, processed_at = NULL \
         WHERE id = $1",
    )
    .bind(id)
    .bind(InboundStatus::Received)
    .execute(db.conn())
    .await?;
    db.audit(
        ctx.audit("webhook.replayed", "inbound_webhook", id)
            .before(serde_json::json!({ "status": before.status })),
    );
    db.commit().await?;
    get(store, id).await
}

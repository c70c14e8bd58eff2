//! Deliveries: the dispatcher that turns committed events into one delivery per matching
//! endpoint, reading and listing deliveries, and replays (new deliveries, due at once).

use serde_json::json;
use sqlx::Row;

use super::endpoints::{endpoint_not_found, get_endpoint};
use super::{DELIVERY_COLUMNS, Delivery, DeliveryStatus, EndpointStatus, delivery_from_row};
use crate::context::Context;
use crate::error::{Error, ErrorCode, Result};
use crate::events::EventFilter;
use crate::ids::{IdKind, new_id};
use crate::pagination::{Page, PageRequest};
use crate::store::{Backend, Select, Store};

/// Events read per dispatcher batch (one transaction each).
const DISPATCH_BATCH: usize = 500;
/// Batches per [`dispatch`] call at most (a backlog beyond waits for the next call).
const DISPATCH_BATCHES: usize = 20;

/// Turns newly committed events into deliveries for matching active endpoints (created
/// no later than the event), up to [`DISPATCH_BATCHES`] batches of [`DISPATCH_BATCH`]
/// events, so a backlog drains in one call. Returns the number of deliveries created.
pub async fn dispatch(store: &Store) -> Result<usize> {
    let mut created = 0;
    for _ in 0..DISPATCH_BATCHES {
        let (n, full) = dispatch_batch(store).await?;
        created += n;
        if !full {
            break;
        }
    }
    Ok(created)
}

/// One batch; returns the deliveries created and whether the batch was full.
async fn dispatch_batch(store: &Store) -> Result<(usize, bool)> {
    // The head before the endpoints (as the events before the endpoints below): an
    // endpoint committed before the endpoints are read is seen.
    let head = crate::events::last_seq(store).await?;
    let active = sqlx::query("SELECT 1 AS one FROM webhook_endpoints WHERE status = $1 LIMIT 1")
        .bind(EndpointStatus::Active)
        .fetch_optional(store.reader())
        .await?;
    if active.is_none() {
        skip_to(store, head).await?;
        return Ok((0, false));
    }
    let mut tx = store.begin().await?;
    let cursor_sql = match store.backend() {
        Backend::Sqlite => "SELECT last_seq FROM webhook_cursor WHERE id = 1",
        Backend::Postgres => "SELECT last_seq FROM webhook_cursor WHERE id = 1 FOR UPDATE",
    };
    let cursor: i64 = sqlx::query(cursor_sql)
        .fetch_one(tx.conn())
        .await?
        .try_get("last_seq")?;
    let batch = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT seq, id, event_type, resource_type, occurred_at FROM events \
         WHERE seq > $1 ORDER BY seq LIMIT {DISPATCH_BATCH}"
    )))
    .bind(cursor)
    .fetch_all(tx.conn())
    .await?;
    let Some(last) = batch.last() else {
        return Ok((0, false));
    };
    let last_seq: i64 = last.try_get("seq")?;
    let full = batch.len() == DISPATCH_BATCH;
    let endpoints =
        sqlx::query("SELECT id, event_filter, created_at FROM webhook_endpoints WHERE status = $1")
            .bind(EndpointStatus::Active)
            .fetch_all(tx.conn())
            .await?;
    let mut targets = Vec::new();
    for e in &endpoints {
        let patterns: String = e.try_get("event_filter")?;
        let patterns: Vec<String> = patterns.split(',').map(str::to_string).collect();
        let filter = EventFilter::parse(&patterns, &[])?;
        targets.push((
            e.try_get::<String, _>("id")?,
            filter,
            e.try_get::<String, _>("created_at")?,
        ));
    }
    let mut pairs = Vec::new();
    for ev in &batch {
        let event_type: String = ev.try_get("event_type")?;
        let resource_type: String = ev.try_get("resource_type")?;
        let occurred_at: String = ev.try_get("occurred_at")?;
        let event_id: String = ev.try_get("id")?;
        for (endpoint_id, filter, created_at) in &targets {
            if *created_at <= occurred_at && filter.matches_parts(&event_type, &resource_type) {
                pairs.push((endpoint_id.clone(), event_id.clone()));
            }
        }
    }
    insert_deliveries(&mut tx, &pairs, &crate::clock::now()).await?;
    let created = pairs.len();
    sqlx::query("UPDATE webhook_cursor SET last_seq = $1 WHERE id = 1")
        .bind(last_seq)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok((created, full))
}

/// No active endpoint: moves the cursor to `head` (the last numbered event) without
/// reading events, taking the writer only when it moves (an endpoint created later
/// only gets events that occur after it).
async fn skip_to(store: &Store, head: i64) -> Result<()> {
    let cursor: i64 = sqlx::query("SELECT last_seq FROM webhook_cursor WHERE id = 1")
        .fetch_one(store.reader())
        .await?
        .try_get("last_seq")?;
    if head > cursor {
        let mut tx = store.begin().await?;
        sqlx::query("UPDATE webhook_cursor SET last_seq = $1 WHERE id = 1 AND last_seq < $1")
            .bind(head)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Rows per statement of [`insert_deliveries`] (3 parameters each).
const DELIVERY_ROWS_PER_STATEMENT: usize = 300;

/// Queues one `PENDING` delivery per `(endpoint id, event id)` pair, due `now`: one
/// multi-row statement per [`DELIVERY_ROWS_PER_STATEMENT`] pairs.
async fn insert_deliveries(
    tx: &mut crate::store::Tx,
    pairs: &[(String, String)],
    now: &str,
) -> Result<()> {
    for chunk in pairs.chunks(DELIVERY_ROWS_PER_STATEMENT) {
        let n = chunk.len();
        let mut sql = String::from(
            "INSERT INTO webhook_deliveries \
             (id, endpoint_id, event_id, status, attempts, next_attempt_at, created_at) VALUES ",
        );
        let (status, due) = (n * 3 + 1, n * 3 + 2);
        crate::store::push_placeholders(&mut sql, n, 3, &format!(", ${status}, 0, ${due}, ${due}"));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (endpoint_id, event_id) in chunk {
            q = q
                .bind(new_id(IdKind::WebhookDelivery))
                .bind(endpoint_id.as_str())
                .bind(event_id.as_str());
        }
        q.bind(DeliveryStatus::Pending)
            .bind(now)
            .execute(tx.conn())
            .await?;
    }
    Ok(())
}

async fn insert_delivery(
    tx: &mut crate::store::Tx,
    endpoint_id: &str,
    event_id: &str,
    now: &str,
) -> Result<String> {
    let id = new_id(IdKind::WebhookDelivery);
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, status, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $5, 0, $4, $4)",
    )
    .bind(&id)
    .bind(endpoint_id)
    .bind(event_id)
    .bind(now)
    .bind(DeliveryStatus::Pending)
    .execute(tx.conn())
    .await?;
    Ok(id)
}

fn delivery_not_found(id: &str) -> Error {
    Error::new(
        ErrorCode::NotFound,
        format!("Webhook delivery {id} does not exist"),
    )
}

/// One delivery; 404.
pub async fn get_delivery(store: &Store, id: &str) -> Result<Delivery> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(store.reader())
    .await?;
    row.as_ref()
        .map(delivery_from_row)
        .transpose()?
        .ok_or_else(|| delivery_not_found(id))
}

/// Filters of [`list_deliveries`].
#[derive(Clone, Debug, Default)]
pub struct DeliveryFilter {
    pub endpoint_id: Option<String>,
    pub event_id: Option<String>,
    pub status: Option<String>,
}

/// Deliveries newest first.
pub async fn list_deliveries(
    store: &Store,
    filter: &DeliveryFilter,
    page: &PageRequest,
) -> Result<Page<Delivery>> {
    let mut q = Select::new(format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE seq < "
    ));
    q.push_bind(page.cursor_seq()?.unwrap_or(i64::MAX))
        .and_eq("endpoint_id", filter.endpoint_id.as_deref())
        .and_eq("event_id", filter.event_id.as_deref())
        .and_eq("status", filter.status.as_deref())
        .push(format_args!(" ORDER BY seq DESC LIMIT {}", page.limit + 1));
    let rows = q.build()?.fetch_all(store.reader()).await?;
    let items = rows
        .iter()
        .map(delivery_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, page.limit, |d| d.seq))
}

/// Sends one delivery's event again (a new delivery, due now). Audited.
pub async fn replay_delivery(store: &Store, ctx: &Context, delivery_id: &str) -> Result<Delivery> {
    let original = get_delivery(store, delivery_id).await?;
    let endpoint = get_endpoint(store, &original.endpoint_id).await?;
    if endpoint.status == EndpointStatus::Deleted {
        return Err(endpoint_not_found(&endpoint.id));
    }
    let mut tx = store.begin_for(ctx).await?;
    let id = insert_delivery(
        &mut tx,
        &original.endpoint_id,
        &original.event_id,
        &crate::clock::now(),
    )
    .await?;
    tx.audit(
        ctx.audit("webhook_delivery.replayed", "webhook_delivery", &id)
            .after(json!({ "replayOf": delivery_id, "eventId": original.event_id })),
    );
    tx.commit().await?;
    get_delivery(store, &id).await
}

/// Sends every matching event that occurred at or after `since` (RFC 3339) to one
/// endpoint again. Returns the number of deliveries queued. Audited.
pub async fn replay_since(
    store: &Store,
    ctx: &Context,
    endpoint_id: &str,
    since: &str,
) -> Result<usize> {
    let since = crate::clock::parse_ts(since)
        .ok_or_else(|| Error::validation("since", "must be an RFC 3339 time"))?;
    let endpoint = get_endpoint(store, endpoint_id).await?;
    if endpoint.status == EndpointStatus::Deleted {
        return Err(endpoint_not_found(endpoint_id));
    }
    let filter = EventFilter::parse(&endpoint.events, &[])?;
    let rows = sqlx::query(
        "SELECT id, event_type, resource_type FROM events \
         WHERE occurred_at >= $1 AND seq IS NOT NULL ORDER BY seq",
    )
    .bind(&since)
    .fetch_all(store.reader())
    .await?;
    let mut pairs = Vec::new();
    for r in &rows {
        let t: String = r.try_get("event_type")?;
        let rt: String = r.try_get("resource_type")?;
        if filter.matches_parts(&t, &rt) {
            pairs.push((endpoint_id.to_string(), r.try_get::<String, _>("id")?));
        }
    }
    let mut tx = store.begin_for(ctx).await?;
    insert_deliveries(&mut tx, &pairs, &crate::clock::now()).await?;
    let n = pairs.len();
    tx.audit(
        ctx.audit("webhook_endpoint.replayed", "webhook_endpoint", endpoint_id)
            .after(json!({ "since": since, "deliveries": n })),
    );
    tx.commit().await?;
    Ok(n)
}

//! Outbound webhooks to the marketplace (DESIGN §5).
//!
//! - **Endpoints** `{url, events}`: `url` must pass the SSRF policy of
//!   [`crate::outbound`]; `events` are type patterns as in SSE (`order.*`, `*`) that must
//!   match the catalog ([`crate::events::EVENT_TYPES`]). Each has a Standard Webhooks
//!   secret `whsec_<base64 of 32 random bytes>`, returned once at creation and stored
//!   sealed by the vault (the endpoint id is the associated data; `offerhub wallet
//!   rotate-key` re-seals it with the wallets). Secrets issued before Standard Webhooks
//!   (`whsec_` + 40 alphanumerics) are themselves valid base64 (30 key bytes), so the
//!   same string keeps working with Standard Webhooks verifiers; nothing is re-issued.
//! - **Dispatcher** ([`dispatch`]): reads the event outbox after a persisted cursor and
//!   creates one delivery per (matching active endpoint, event), advancing the cursor in
//!   the same transaction — a durable queue, exactly one delivery row per pair even
//!   with several daemons (the cursor row is locked).
//! - **Sender** ([`deliver_due`]): claims due deliveries with a lease, POSTs the event
//!   JSON `{id, type, occurredAt, resourceType, resourceId, data}` with the
//!   [Standard Webhooks](https://www.standardwebhooks.com/) headers ([`standard_headers`]):
//!   `webhook-id` (the event id, the same on every retry and replay, so a receiver
//!   deduplicates on it), `webhook-timestamp` (unix seconds) and
//!   `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>` where
//!   `key` is the base64-decoded part of the secret after `whsec_`; plus
//!   `OfferHub-Event-Id`, `OfferHub-Event-Type`, `OfferHub-Delivery-Id` and, deprecated and
//!   kept for the 0.x line only, the former
//!   `OfferHub-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
//!   ([`legacy_signature`], keyed with the whole secret string). A 2xx succeeds;
//!   anything else is retried on [`RETRY_SCHEDULE`] × the configured unit (5 s by
//!   default: 5 s, 1 min, 5 min, 30 min, 2 h, 5 h, 10 h × 5, 14 h — about 3 days), then
//!   `FAILED`. An endpoint failing continuously for the configured time (72 h) is
//!   `DISABLED`.
//! - **Replay** ([`replay_delivery`], [`replay_since`]): new deliveries, sent at once.

use std::time::Duration;

use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::json;
use sha2::Sha256;
use sqlx::Row;

use crate::context::Context;
pub use crate::domain::webhook::{DeliveryStatus, EndpointStatus};
use crate::error::{Error, ErrorCode, Result};
use crate::events::{self, EventFilter};
use crate::ids::{IdKind, new_id};
use crate::pagination::{Page, PageRequest};
use crate::store::{Backend, Select, Store};
use crate::vault::Vault;
use zeroize::Zeroizing;

/// Retry delays in units of the configured base (5 s by default).
pub const RETRY_SCHEDULE: [u64; 12] = [
    1, 12, 60, 360, 1440, 3600, 7200, 7200, 7200, 7200, 7200, 10080,
];
/// Concurrent HTTP deliveries per sender pass.
const SEND_CONCURRENCY: usize = 16;
/// Per-delivery HTTP timeout.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A webhook endpoint (never its secret).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub status: EndpointStatus,
    pub failing_since: Option<String>,
    pub disabled_at: Option<String>,
    pub created_at: String,
    #[serde(skip)]
    seq: i64,
}

/// A delivery of one event to one endpoint.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    #[serde(skip)]
    seq: i64,
}

const ENDPOINT_COLUMNS: &str =
    "seq, id, url, event_filter, status, failing_since, disabled_at, created_at";
const DELIVERY_COLUMNS: &str = "seq, id, endpoint_id, event_id, status, attempts, next_attempt_at, \
     last_status, last_error, created_at, delivered_at";

fn endpoint_from_row(r: &sqlx::any::AnyRow) -> Result<Endpoint> {
    let filter: String = r.try_get("event_filter")?;
    Ok(Endpoint {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        url: r.try_get("url")?,
        events: filter
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        status: r.try_get("status")?,
        failing_since: r.try_get("failing_since")?,
        disabled_at: r.try_get("disabled_at")?,
        created_at: r.try_get("created_at")?,
    })
}

fn delivery_from_row(r: &sqlx::any::AnyRow) -> Result<Delivery> {
    Ok(Delivery {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        endpoint_id: r.try_get("endpoint_id")?,
        event_id: r.try_get("event_id")?,
        status: r.try_get("status")?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        delivered_at: r.try_get("delivered_at")?,
    })
}

/// The HMAC key of a `whsec_…` secret: the base64-decoded part after `whsec_` (Standard
/// Webhooks). A secret that does not decode (none is issued that way) is keyed with its
/// whole string, so a delivery is still signed rather than dropped.
pub fn secret_key(secret: &str) -> Vec<u8> {
    crate::airtm::svix::decode_secret(secret).unwrap_or_else(|| secret.as_bytes().to_vec())
}

/// The Standard Webhooks headers of one message: `[("webhook-id", id),
/// ("webhook-timestamp", t), ("webhook-signature", "v1,<base64 HMAC-SHA256(key,
/// "<id>.<t>.<body>")>")]` with `key` = [`secret_key`]`(secret)`.
pub fn standard_headers(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &str,
) -> [(&'static str, String); 3] {
    [
        ("webhook-id", id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        (
            "webhook-signature",
            crate::airtm::svix::sign(&secret_key(secret), id, timestamp, body.as_bytes()),
        ),
    ]
}

/// A new endpoint secret: `whsec_` + base64 of 32 random bytes (Standard Webhooks).
fn new_secret() -> Zeroizing<String> {
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(key.as_mut());
    Zeroizing::new(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key.as_ref())
    ))
}

/// Deprecated `OfferHub-Signature` value, sent alongside the Standard Webhooks headers
/// during the 0.x line: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, keyed with
/// the whole secret string.
pub fn legacy_signature(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// A newly created endpoint with its secret (shown once).
#[derive(Clone, Debug)]
pub struct CreatedEndpoint {
    pub endpoint: Endpoint,
    pub secret: crate::config::Secret,
}

/// The associated data an endpoint's secret is sealed with: its id (`whe_…`, never a
/// wallet's id), as [`crate::services::rotation::SEALED_TABLES`] re-seals it.
fn secret_aad(endpoint_id: &str) -> String {
    endpoint_id.to_string()
}

/// Opens an endpoint's stored secret. Rows written before secrets were sealed hold the
/// plain `whsec_…` value until [`seal_plaintext_secrets`] runs (at `serve` start).
fn open_secret(vault: &Vault, endpoint_id: &str, stored: &str) -> Result<Zeroizing<String>> {
    if stored.starts_with("whsec_") {
        return Ok(Zeroizing::new(stored.to_string()));
    }
    let bytes = vault.open(&secret_aad(endpoint_id), stored)?;
    String::from_utf8(bytes.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| {
            Error::internal(format!(
                "webhook endpoint {endpoint_id}: secret is not UTF-8"
            ))
        })
}

/// Registration settings of [`create_endpoint`].
#[derive(Clone, Copy, Debug)]
pub struct EndpointPolicy<'a> {
    /// Seals the endpoint's signing secret at rest.
    pub vault: &'a Vault,
    /// `OFFERHUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS`: accept non-public targets.
    pub allow_private_networks: bool,
}

/// Creates an endpoint. `url`: a public http(s) URL of at most 2048 characters
/// ([`crate::outbound::check_url`]: loopback, private, link-local and metadata addresses
/// are refused unless `policy.allow_private_networks`); `events`: type patterns that
/// match something in [`crate::events::EVENT_TYPES`] (default all). The secret is stored
/// sealed by `policy.vault`. Errors: 400 `VALIDATION_ERROR` naming `url` or `events`.
/// Audited as `webhook_endpoint.created`.
pub async fn create_endpoint(
    store: &Store,
    ctx: &Context,
    policy: EndpointPolicy<'_>,
    url: &str,
    events: &[String],
) -> Result<CreatedEndpoint> {
    crate::outbound::check_url("url", url, policy.allow_private_networks).await?;
    let filter = EventFilter::parse_catalogued(events, "events")?;
    let patterns = if filter.types.is_empty() {
        vec!["*".to_string()]
    } else {
        filter.types
    };
    let secret = new_secret();
    let endpoint = Endpoint {
        seq: 0,
        id: new_id(IdKind::WebhookEndpoint),
        url: url.to_string(),
        events: patterns,
        status: EndpointStatus::Active,
        failing_since: None,
        disabled_at: None,
        created_at: crate::clock::now(),
    };
    let mut tx = store.begin_for(ctx).await?;
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, url, event_filter, secret, status, created_at) \
         VALUES ($1, $2, $3, $4, $6, $5)",
    )
    .bind(&endpoint.id)
    .bind(&endpoint.url)
    .bind(endpoint.events.join(","))
    .bind(
        policy
            .vault
            .seal(&secret_aad(&endpoint.id), secret.as_bytes())?,
    )
    .bind(&endpoint.created_at)
    .bind(EndpointStatus::Active)
    .execute(tx.conn())
    .await?;
    tx.audit(
        ctx.audit("webhook_endpoint.created", "webhook_endpoint", &endpoint.id)
            .after(&endpoint),
    );
    tx.commit().await?;
    Ok(CreatedEndpoint {
        endpoint,
        secret: crate::config::Secret::new(secret.to_string()),
    })
}

fn endpoint_not_found(id: &str) -> Error {
    Error::new(
        ErrorCode::NotFound,
        format!("Webhook endpoint {id} does not exist"),
    )
    .with_details(json!({ "endpointId": id }))
}

/// One endpoint (deleted ones too); 404 `NOT_FOUND`.
pub async fn get_endpoint(store: &Store, id: &str) -> Result<Endpoint> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(store.reader())
    .await?;
    row.as_ref()
        .map(endpoint_from_row)
        .transpose()?
        .ok_or_else(|| endpoint_not_found(id))
}

/// Endpoints that are not deleted, newest first.
pub async fn list_endpoints(store: &Store, page: &PageRequest) -> Result<Page<Endpoint>> {
    let cursor = page.cursor_seq()?.unwrap_or(i64::MAX);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE status <> $2 AND seq < $1 \
         ORDER BY seq DESC LIMIT {}",
        page.limit + 1
    )))
    .bind(cursor)
    .bind(EndpointStatus::Deleted)
    .fetch_all(store.reader())
    .await?;
    let items = rows
        .iter()
        .map(endpoint_from_row)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, page.limit, |e| e.seq))
}

/// Deletes an endpoint: no new deliveries; pending ones are abandoned.
pub async fn delete_endpoint(store: &Store, ctx: &Context, id: &str) -> Result<Endpoint> {
    let before = get_endpoint(store, id).await?;
    if before.status == EndpointStatus::Deleted {
        return Err(endpoint_not_found(id));
    }
    let now = crate::clock::now();
    let mut tx = store.begin_for(ctx).await?;
    sqlx::query("UPDATE webhook_endpoints SET status = $3, deleted_at = $1 WHERE id = $2")
        .bind(&now)
        .bind(id)
        .bind(EndpointStatus::Deleted)
        .execute(tx.conn())
        .await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $2, last_error = 'endpoint deleted' \
         WHERE endpoint_id = $1 AND status = $3",
    )
    .bind(id)
    .bind(DeliveryStatus::Failed)
    .bind(DeliveryStatus::Pending)
    .execute(tx.conn())
    .await?;
    let mut after = before.clone();
    after.status = EndpointStatus::Deleted;
    tx.audit(
        ctx.audit("webhook_endpoint.deleted", "webhook_endpoint", id)
            .before(&before)
            .after(&after),
    );
    tx.commit().await?;
    Ok(after)
}

/// Turns newly committed events into deliveries for matching active endpoints (created
/// no later than the event). Returns the number of deliveries created.
pub async fn dispatch(store: &Store) -> Result<usize> {
    let mut tx = store.begin().await?;
    let cursor_sql = match store.backend() {
        Backend::Sqlite => "SELECT last_seq FROM webhook_cursor WHERE id = 1",
        Backend::Postgres => "SELECT last_seq FROM webhook_cursor WHERE id = 1 FOR UPDATE",
    };
    let cursor: i64 = sqlx::query(cursor_sql)
        .fetch_one(tx.conn())
        .await?
        .try_get("last_seq")?;
    let batch = sqlx::query(
        "SELECT seq, id, event_type, resource_type, occurred_at FROM events WHERE seq > $1 ORDER BY seq LIMIT 500",
    )
    .bind(cursor)
    .fetch_all(tx.conn())
    .await?;
    let Some(last) = batch.last() else {
        return Ok(0);
    };
    let last_seq: i64 = last.try_get("seq")?;
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
    let now = crate::clock::now();
    let mut created = 0;
    for ev in &batch {
        let event_type: String = ev.try_get("event_type")?;
        let resource_type: String = ev.try_get("resource_type")?;
        let occurred_at: String = ev.try_get("occurred_at")?;
        let event_id: String = ev.try_get("id")?;
        for (endpoint_id, filter, created_at) in &targets {
            if *created_at <= occurred_at && filter.matches_parts(&event_type, &resource_type) {
                insert_delivery(&mut tx, endpoint_id, &event_id, &now).await?;
                created += 1;
            }
        }
    }
    sqlx::query("UPDATE webhook_cursor SET last_seq = $1 WHERE id = 1")
        .bind(last_seq)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(created)
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

/// Sender settings.
#[derive(Clone, Copy, Debug)]
pub struct SendPolicy<'a> {
    /// Unit of [`RETRY_SCHEDULE`].
    pub backoff_base: Duration,
    /// An endpoint failing continuously this long is disabled.
    pub disable_after: Duration,
    /// Opens the endpoints' sealed secrets.
    pub vault: &'a Vault,
    /// `OFFERHUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS`: deliver to non-public targets. The
    /// `client` given to [`deliver_due`] must resolve names with
    /// [`crate::outbound::PublicOnlyResolver`] when this is false
    /// ([`crate::outbound::client`]).
    pub allow_private_networks: bool,
}

struct Due {
    delivery_id: String,
    endpoint_id: String,
    url: String,
    secret: String,
    attempts: i64,
    event_id: String,
}

/// Claims up to `limit` due deliveries (a 60 s lease) and sends them, at most
/// [`SEND_CONCURRENCY`] at a time. Returns how many were attempted. A target that is
/// not a public address (when `policy` does not allow private networks) is recorded
/// as a failed attempt with [`crate::outbound::REFUSED`], never dialled.
pub async fn deliver_due(
    store: &Store,
    client: &reqwest::Client,
    policy: SendPolicy<'_>,
    limit: u32,
) -> Result<usize> {
    let now = chrono::Utc::now();
    let now_s = crate::clock::format_ts(now);
    let lease = crate::clock::format_ts(now + chrono::Duration::seconds(60));
    let mut tx = store.begin().await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE webhook_deliveries SET locked_until = $1 \
         WHERE status = $3 AND next_attempt_at <= $2 AND (locked_until IS NULL OR locked_until < $2) \
           AND id IN (SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id \
                      WHERE d.status = $3 AND d.next_attempt_at <= $2 \
                        AND (d.locked_until IS NULL OR d.locked_until < $2) AND w.status = $4 \
                      ORDER BY d.next_attempt_at LIMIT {limit}) \
         RETURNING id"
    )))
    .bind(&lease)
    .bind(&now_s)
    .bind(DeliveryStatus::Pending)
    .bind(EndpointStatus::Active)
    .fetch_all(tx.conn())
    .await?;
    tx.commit().await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<std::result::Result<_, _>>()?;
    let placeholders = (1..=ids.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT d.id, d.endpoint_id, d.attempts, d.event_id, w.url, w.secret \
         FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id WHERE d.id IN ({placeholders})"
    )));
    for id in &ids {
        q = q.bind(id.clone());
    }
    let due: Vec<Due> = q
        .fetch_all(store.reader())
        .await?
        .iter()
        .map(|r| {
            Ok(Due {
                delivery_id: r.try_get("id")?,
                endpoint_id: r.try_get("endpoint_id")?,
                url: r.try_get("url")?,
                secret: r.try_get("secret")?,
                attempts: r.try_get("attempts")?,
                event_id: r.try_get("event_id")?,
            })
        })
        .collect::<Result<_>>()?;
    let count = due.len();
    futures_util::stream::iter(due)
        .map(|d| async move {
            if let Err(e) = send_one(store, client, policy, d).await {
                tracing::warn!(error = %e, "webhook delivery bookkeeping failed");
            }
        })
        .buffer_unordered(SEND_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
    Ok(count)
}

async fn send_one(
    store: &Store,
    client: &reqwest::Client,
    policy: SendPolicy<'_>,
    d: Due,
) -> Result<()> {
    let Some(event) = events::get(store, &d.event_id).await? else {
        return Err(Error::internal(format!(
            "delivery {} names a missing event",
            d.delivery_id
        )));
    };
    let body = serde_json::to_string(&event).map_err(Error::internal)?;
    let t = chrono::Utc::now().timestamp();
    let secret = open_secret(policy.vault, &d.endpoint_id, &d.secret)?;
    let target = url::Url::parse(&d.url)
        .map_err(|_| crate::outbound::REFUSED)
        .and_then(|u| crate::outbound::check_target(&u, policy.allow_private_networks).map(|()| u));
    let started = std::time::Instant::now();
    let result = match target {
        Err(refused) => Err(refused),
        Ok(target) => client
            .post(target)
            .timeout(SEND_TIMEOUT)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("OfferHub-Webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .headers(
                standard_headers(&secret, &event.id, t, &body)
                    .into_iter()
                    .filter_map(|(name, value)| {
                        Some((
                            reqwest::header::HeaderName::from_static(name),
                            reqwest::header::HeaderValue::from_str(&value).ok()?,
                        ))
                    })
                    .collect(),
            )
            .header("offerhub-signature", legacy_signature(&secret, t, &body))
            .header("offerhub-event-id", &event.id)
            .header("offerhub-event-type", &event.event_type)
            .header("offerhub-delivery-id", &d.delivery_id)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                // Never how the connection failed (refused, reset, no route): that
                // would tell a caller what listens where.
                if crate::outbound::is_refusal(&e) {
                    crate::outbound::REFUSED
                } else if e.is_timeout() {
                    "failed: timed out"
                } else {
                    "failed: could not connect"
                }
            }),
    };
    let (ok, status, error) = match result {
        Ok(resp) if resp.status().is_success() => {
            (true, Some(i64::from(resp.status().as_u16())), None)
        }
        Ok(resp) => (
            false,
            Some(i64::from(resp.status().as_u16())),
            Some(format!("failed: HTTP {}", resp.status().as_u16())),
        ),
        Err(reason) => (false, None, Some(reason.to_string())),
    };
    let now = chrono::Utc::now();
    let now_s = crate::clock::format_ts(now);
    let attempts = d.attempts + 1;
    let mut tx = store.begin().await?;
    let mut outcome = "succeeded";
    let mut disabled_now = false;
    if ok {
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $5, attempts = $1, last_status = $2, \
             last_error = NULL, delivered_at = $3, locked_until = NULL WHERE id = $4",
        )
        .bind(attempts)
        .bind(status)
        .bind(&now_s)
        .bind(&d.delivery_id)
        .bind(DeliveryStatus::Succeeded)
        .execute(tx.conn())
        .await?;
        sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
            .bind(&d.endpoint_id)
            .execute(tx.conn())
            .await?;
    } else {
        let (state, next) = match RETRY_SCHEDULE
            .get(usize::try_from(attempts - 1).unwrap_or(usize::MAX))
        {
            Some(units) => {
                let delay = policy
                    .backoff_base
                    .saturating_mul(u32::try_from(*units).unwrap_or(u32::MAX));
                let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::days(1));
                (
                    DeliveryStatus::Pending,
                    crate::clock::format_ts(now + delay),
                )
            }
            None => (DeliveryStatus::Failed, now_s.clone()),
        };
        outcome = if state == DeliveryStatus::Failed {
            "failed"
        } else {
            "retrying"
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = $2, last_status = $3, last_error = $4, \
             next_attempt_at = $5, locked_until = NULL WHERE id = $6",
        )
        .bind(state)
        .bind(attempts)
        .bind(status)
        .bind(&error)
        .bind(&next)
        .bind(&d.delivery_id)
        .execute(tx.conn())
        .await?;
        sqlx::query("UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2 AND failing_since IS NULL")
            .bind(&now_s)
            .bind(&d.endpoint_id)
            .execute(tx.conn())
            .await?;
        let cutoff = crate::clock::format_ts(
            now - chrono::Duration::from_std(policy.disable_after)
                .unwrap_or(chrono::Duration::days(3)),
        );
        let disabled = sqlx::query(
            "UPDATE webhook_endpoints SET status = $4, disabled_at = $1 \
             WHERE id = $2 AND status = $5 AND failing_since IS NOT NULL AND failing_since <= $3",
        )
        .bind(&now_s)
        .bind(&d.endpoint_id)
        .bind(&cutoff)
        .bind(EndpointStatus::Disabled)
        .bind(EndpointStatus::Active)
        .execute(tx.conn())
        .await?;
        if disabled.rows_affected() == 1 {
            disabled_now = true;
            tracing::warn!(endpoint_id = %d.endpoint_id, "webhook endpoint disabled after failing continuously");
            tx.audit(
                Context::system()
                    .audit(
                        "webhook_endpoint.disabled",
                        "webhook_endpoint",
                        &d.endpoint_id,
                    )
                    .after(json!({ "status": EndpointStatus::Disabled, "reason": "failing continuously" })),
            );
        }
    }
    tx.commit().await?;
    crate::metrics::webhook_delivery(outcome, started.elapsed());
    if disabled_now {
        crate::metrics::webhook_endpoint_disabled();
    }
    Ok(())
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
    let now = crate::clock::now();
    let mut tx = store.begin_for(ctx).await?;
    let mut n = 0;
    for r in &rows {
        let t: String = r.try_get("event_type")?;
        let rt: String = r.try_get("resource_type")?;
        if filter.matches_parts(&t, &rt) {
            insert_delivery(&mut tx, endpoint_id, &r.try_get::<String, _>("id")?, &now).await?;
            n += 1;
        }
    }
    tx.audit(
        ctx.audit("webhook_endpoint.replayed", "webhook_endpoint", endpoint_id)
            .after(json!({ "since": since, "deliveries": n })),
    );
    tx.commit().await?;
    Ok(n)
}

/// Seals every endpoint secret still stored in plain text (rows written before
/// secrets were sealed). Idempotent; run by `serve` at start. Returns how many.
pub async fn seal_plaintext_secrets(store: &Store, vault: &Vault) -> Result<usize> {
    let rows = sqlx::query("SELECT id, secret FROM webhook_endpoints WHERE secret LIKE 'whsec_%'")
        .fetch_all(store.reader())
        .await?;
    let mut n = 0;
    for r in &rows {
        let id: String = r.try_get("id")?;
        let plain: String = r.try_get("secret")?;
        let sealed = vault.seal(&secret_aad(&id), plain.as_bytes())?;
        let mut tx = store.begin().await?;
        let done =
            sqlx::query("UPDATE webhook_endpoints SET secret = $1 WHERE id = $2 AND secret = $3")
                .bind(&sealed)
                .bind(&id)
                .bind(&plain)
                .execute(tx.conn())
                .await?;
        if done.rows_affected() == 1 {
            tx.audit(
                Context::system()
                    .audit("webhook_endpoint.secret_sealed", "webhook_endpoint", &id)
                    .after(json!({ "keyId": vault.current_key_id() })),
            );
        }
        tx.commit().await?;
        n += usize::try_from(done.rows_affected()).unwrap_or(0);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's own test vector
    /// (github.com/standard-webhooks/standard-webhooks, libraries' test suites).
    #[test]
    fn standard_signature_matches_the_specification_vector() {
        let h = standard_headers(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(h[0], ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".into()));
        assert_eq!(h[1], ("webhook-timestamp", "1614265330".into()));
        assert_eq!(h[2].1, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn new_secrets_are_32_base64_bytes_and_legacy_ones_still_decode() {
        let s = new_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(crate::airtm::svix::decode_secret(&s).unwrap().len(), 32);
        assert_ne!(*s, *new_secret());
        // A secret issued before Standard Webhooks: whsec_ + 40 alphanumerics.
        let legacy = format!("whsec_{}", crate::ids::random_alphanumeric(40));
        assert_eq!(secret_key(&legacy).len(), 30);
    }

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // Independent check with the hmac crate's verify.
        let sig = legacy_signature("whsec_test", 1700000000, "{\"a\":1}");
        let v1 = sig.strip_prefix("t=1700000000,v1=").unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_test").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        mac.verify_slice(&hex::decode(v1).unwrap()).unwrap();
    }

    #[test]
    fn schedule_spans_about_three_days() {
        let total: u64 = RETRY_SCHEDULE.iter().sum::<u64>() * 5;
        assert!((60 * 60 * 66..=60 * 60 * 78).contains(&total), "{total} s");
    }
}

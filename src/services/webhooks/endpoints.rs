//! Webhook endpoints: registration (with a new signing secret, sealed at rest), reading,
//! listing, deletion, and sealing the secrets of rows written before secrets were sealed.

use serde_json::json;
use sqlx::Row;

use super::signing::{new_secret, secret_aad};
use super::{DeliveryStatus, ENDPOINT_COLUMNS, Endpoint, EndpointStatus, endpoint_from_row};
use crate::context::Context;
use crate::error::{Error, ErrorCode, Result};
use crate::events::EventFilter;
use crate::ids::{IdKind, new_id};
use crate::pagination::{Page, PageRequest};
use crate::store::Store;
use crate::vault::Vault;

/// A newly created endpoint with its secret (shown once).
#[derive(Clone, Debug)]
pub struct CreatedEndpoint {
    pub endpoint: Endpoint,
    pub secret: crate::config::Secret,
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

pub(super) fn endpoint_not_found(id: &str) -> Error {
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

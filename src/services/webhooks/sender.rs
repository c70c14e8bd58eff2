//! The sender: claims due deliveries with a lease, POSTs each event with its signature
//! headers, and records the attempt — success, a retry on [`RETRY_SCHEDULE`], failure
//! after the last one, and disabling an endpoint that has failed continuously.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use sqlx::Row;

use super::signing::{legacy_signature, open_secret, standard_headers};
use super::{DeliveryStatus, EndpointStatus};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::events;
use crate::store::{Store, Tx};
use crate::vault::Vault;

/// Retry delays in units of the configured base (5 s by default).
pub const RETRY_SCHEDULE: [u64; 12] = [
    1, 12, 60, 360, 1440, 3600, 7200, 7200, 7200, 7200, 7200, 10080,
];
/// Concurrent HTTP deliveries per sender pass.
const SEND_CONCURRENCY: usize = 16;
/// Per-delivery HTTP timeout.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

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

/// A leased delivery with what sending it needs.
struct Due {
    delivery_id: String,
    endpoint_id: String,
    url: String,
    secret: String,
    attempts: i64,
    event_id: String,
}

/// Claims up to `limit` due deliveries (a 60 s lease) and sends them, at most
/// `SEND_CONCURRENCY` at a time. Returns how many were attempted. A target that is
/// not a public address (when `policy` does not allow private networks) is recorded
/// as a failed attempt with [`crate::outbound::REFUSED`], never dialled.
pub async fn deliver_due(
    store: &Store,
    client: &reqwest::Client,
    policy: SendPolicy<'_>,
    limit: u32,
) -> Result<usize> {
    let ids = lease_due(store, limit).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let due = load_due(store, &ids).await?;
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

/// Leases up to `limit` due pending deliveries of active endpoints for 60 s, oldest due
/// first, in one transaction (a delivery leased by another sender is skipped). Returns
/// their ids.
async fn lease_due(store: &Store, limit: u32) -> Result<Vec<String>> {
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
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<std::result::Result<_, _>>()?;
    Ok(ids)
}

/// Reads the leased deliveries `ids` (not empty) with their endpoint's URL and stored
/// secret.
async fn load_due(store: &Store, ids: &[String]) -> Result<Vec<Due>> {
    let placeholders = crate::store::placeholders(ids.len());
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT d.id, d.endpoint_id, d.attempts, d.event_id, w.url, w.secret \
         FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id WHERE d.id IN ({placeholders})"
    )));
    for id in ids {
        q = q.bind(id.clone());
    }
    q.fetch_all(store.reader())
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
        .collect()
}

/// Sends one leased delivery (no database transaction is open during the HTTP call),
/// then records the attempt and its metrics.
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
        Ok(target) => post(client, target, &secret, &event, &d.delivery_id, t, body).await,
    };
    let attempt = Attempt::of(result);
    let (outcome, disabled_now) = record_attempt(store, policy, &d, &attempt).await?;
    crate::metrics::webhook_delivery(outcome, started.elapsed());
    if disabled_now {
        crate::metrics::webhook_endpoint_disabled();
    }
    Ok(())
}

/// POSTs the event JSON `body` to `target` with the Standard Webhooks headers (signed
/// at unix time `t`), the deprecated `OfferHub-Signature` and the `OfferHub-*` ids.
/// `Err` is the reason to record when no HTTP answer came back.
async fn post(
    client: &reqwest::Client,
    target: url::Url,
    secret: &str,
    event: &events::Event,
    delivery_id: &str,
    t: i64,
    body: String,
) -> std::result::Result<reqwest::Response, &'static str> {
    client
        .post(target)
        .timeout(SEND_TIMEOUT)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("OfferHub-Webhooks/", env!("CARGO_PKG_VERSION")),
        )
        .headers(
            standard_headers(secret, &event.id, t, &body)
                .into_iter()
                .filter_map(|(name, value)| {
                    Some((
                        reqwest::header::HeaderName::from_static(name),
                        reqwest::header::HeaderValue::from_str(&value).ok()?,
                    ))
                })
                .collect(),
        )
        .header("offerhub-signature", legacy_signature(secret, t, &body))
        .header("offerhub-event-id", &event.id)
        .header("offerhub-event-type", &event.event_type)
        .header("offerhub-delivery-id", delivery_id)
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
        })
}

/// What one attempt came to.
struct Attempt {
    /// A 2xx answer.
    ok: bool,
    /// The HTTP status, when an answer came back.
    status: Option<i64>,
    /// Why it failed (`None` on success).
    error: Option<String>,
}

impl Attempt {
    fn of(result: std::result::Result<reqwest::Response, &'static str>) -> Attempt {
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
        Attempt { ok, status, error }
    }
}

/// Records attempt number `d.attempts + 1` in one transaction: a success (the endpoint
/// no longer failing), or a failure — retried on [`RETRY_SCHEDULE`] or final, the
/// endpoint failing since now if it was not, and disabled when it has been failing for
/// `policy.disable_after`. Returns the metrics outcome (`succeeded`, `retrying`,
/// `failed`) and whether the endpoint was disabled by this attempt.
async fn record_attempt(
    store: &Store,
    policy: SendPolicy<'_>,
    d: &Due,
    attempt: &Attempt,
) -> Result<(&'static str, bool)> {
    let now = chrono::Utc::now();
    let now_s = crate::clock::format_ts(now);
    let attempts = d.attempts + 1;
    let mut tx = store.begin().await?;
    let mut outcome = "succeeded";
    let mut disabled_now = false;
    if attempt.ok {
        record_success(&mut tx, d, attempts, attempt.status, &now_s).await?;
    } else {
        let (state, next) = next_attempt(policy.backoff_base, attempts, now, &now_s);
        outcome = if state == DeliveryStatus::Failed {
            "failed"
        } else {
            "retrying"
        };
        record_failure(&mut tx, d, attempts, attempt, state, &next, &now_s).await?;
        disabled_now =
            disable_if_failing_too_long(&mut tx, policy.disable_after, &d.endpoint_id, now, &now_s)
                .await?;
    }
    tx.commit().await?;
    Ok((outcome, disabled_now))
}

/// A delivered attempt: the delivery `SUCCEEDED`, its endpoint no longer failing.
async fn record_success(
    tx: &mut Tx,
    d: &Due,
    attempts: i64,
    status: Option<i64>,
    now_s: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $5, attempts = $1, last_status = $2, \
         last_error = NULL, delivered_at = $3, locked_until = NULL WHERE id = $4",
    )
    .bind(attempts)
    .bind(status)
    .bind(now_s)
    .bind(&d.delivery_id)
    .bind(DeliveryStatus::Succeeded)
    .execute(tx.conn())
    .await?;
    sqlx::query("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
        .bind(&d.endpoint_id)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// The state after failed attempt number `attempts` and when it is next due: `PENDING`
/// after the matching [`RETRY_SCHEDULE`] delay × `backoff_base`, or `FAILED` (at
/// `now_s`) once the schedule is exhausted.
fn next_attempt(
    backoff_base: Duration,
    attempts: i64,
    now: chrono::DateTime<chrono::Utc>,
    now_s: &str,
) -> (DeliveryStatus, String) {
    match RETRY_SCHEDULE.get(usize::try_from(attempts - 1).unwrap_or(usize::MAX)) {
        Some(units) => {
            let delay = backoff_base.saturating_mul(u32::try_from(*units).unwrap_or(u32::MAX));
            let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::days(1));
            (
                DeliveryStatus::Pending,
                crate::clock::format_ts(now + delay),
            )
        }
        None => (DeliveryStatus::Failed, now_s.to_string()),
    }
}

/// A failed attempt: the delivery in `state` (due again at `next`) with the answer's
/// status and the reason, its endpoint failing since `now_s` unless it already was.
async fn record_failure(
    tx: &mut Tx,
    d: &Due,
    attempts: i64,
    attempt: &Attempt,
    state: DeliveryStatus,
    next: &str,
    now_s: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, attempts = $2, last_status = $3, last_error = $4, \
         next_attempt_at = $5, locked_until = NULL WHERE id = $6",
    )
    .bind(state)
    .bind(attempts)
    .bind(attempt.status)
    .bind(&attempt.error)
    .bind(next)
    .bind(&d.delivery_id)
    .execute(tx.conn())
    .await?;
    sqlx::query(
        "UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2 AND failing_since IS NULL",
    )
    .bind(now_s)
    .bind(&d.endpoint_id)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Disables an active endpoint failing continuously for `disable_after` (compare-and-set
/// on its status), audited as `webhook_endpoint.disabled`. Returns whether it did.
async fn disable_if_failing_too_long(
    tx: &mut Tx,
    disable_after: Duration,
    endpoint_id: &str,
    now: chrono::DateTime<chrono::Utc>,
    now_s: &str,
) -> Result<bool> {
    let cutoff = crate::clock::format_ts(
        now - chrono::Duration::from_std(disable_after).unwrap_or(chrono::Duration::days(3)),
    );
    let disabled = sqlx::query(
        "UPDATE webhook_endpoints SET status = $4, disabled_at = $1 \
         WHERE id = $2 AND status = $5 AND failing_since IS NOT NULL AND failing_since <= $3",
    )
    .bind(now_s)
    .bind(endpoint_id)
    .bind(&cutoff)
    .bind(EndpointStatus::Disabled)
    .bind(EndpointStatus::Active)
    .execute(tx.conn())
    .await?;
    if disabled.rows_affected() != 1 {
        return Ok(false);
    }
    tracing::warn!(endpoint_id = %endpoint_id, "webhook endpoint disabled after failing continuously");
    tx.audit(
        Context::system()
            .audit("webhook_endpoint.disabled", "webhook_endpoint", endpoint_id)
            .after(json!({ "status": EndpointStatus::Disabled, "reason": "failing continuously" })),
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_spans_about_three_days() {
        let total: u64 = RETRY_SCHEDULE.iter().sum::<u64>() * 5;
        assert!((60 * 60 * 66..=60 * 60 * 78).contains(&total), "{total} s");
    }
}

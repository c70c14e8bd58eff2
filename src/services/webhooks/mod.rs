//! Outbound webhooks to the marketplace (docs/ARCHITECTURE.md, Events, SSE and webhooks).
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
//!
//! Layout: `endpoints` (registration, listing, deletion, sealing of plain-text secrets),
//! `deliveries` (the dispatcher, listing, replay), `sender` (claiming due deliveries,
//! the HTTP POST, recording each attempt) and `signing` (endpoint secrets and the
//! signature headers). Everything public is re-exported here; this file holds the two
//! row types.

use serde::Serialize;
use sqlx::Row;

pub use crate::domain::webhook::{DeliveryStatus, EndpointStatus};
use crate::error::Result;

mod deliveries;
mod endpoints;
mod sender;
mod signing;

pub use deliveries::{
    DeliveryFilter, dispatch, get_delivery, list_deliveries, replay_delivery, replay_since,
};
pub use endpoints::{
    CreatedEndpoint, EndpointPolicy, create_endpoint, delete_endpoint, get_endpoint,
    list_endpoints, seal_plaintext_secrets,
};
pub use sender::{RETRY_SCHEDULE, SendPolicy, deliver_due};
pub use signing::{legacy_signature, secret_key, standard_headers};

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

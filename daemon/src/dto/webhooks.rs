//! Webhooks: outbound [`Endpoint`], [`CreatedEndpoint`], [`Delivery`]; and
//! [`WebhookReceipt`], what the inbound (provider) webhook intake answers.

use offerhub::domain::webhook::{DeliveryStatus, EndpointStatus};
use offerhub::services::webhooks;
use serde::Serialize;
use utoipa::ToSchema;

use super::enums;

/// A webhook endpoint (never its secret).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    #[schema(value_type = enums::EndpointStatus)]
    pub status: EndpointStatus,
    pub failing_since: Option<String>,
    pub disabled_at: Option<String>,
    pub created_at: String,
}

impl From<webhooks::Endpoint> for Endpoint {
    fn from(e: webhooks::Endpoint) -> Self {
        Endpoint {
            id: e.id,
            url: e.url,
            events: e.events,
            status: e.status,
            failing_since: e.failing_since,
            disabled_at: e.disabled_at,
            created_at: e.created_at,
        }
    }
}

/// A newly created webhook endpoint plus its signing secret, shown only here.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `whsec_<base64 key>`: verifies the Standard Webhooks headers of each delivery
    /// (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    pub secret: String,
}

impl From<webhooks::CreatedEndpoint> for CreatedEndpoint {
    fn from(c: webhooks::CreatedEndpoint) -> Self {
        CreatedEndpoint {
            secret: c.secret.expose_secret().to_string(),
            endpoint: c.endpoint.into(),
        }
    }
}

/// A delivery of one event to one endpoint.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    #[schema(value_type = enums::DeliveryStatus)]
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

impl From<webhooks::Delivery> for Delivery {
    fn from(d: webhooks::Delivery) -> Self {
        Delivery {
            id: d.id,
            endpoint_id: d.endpoint_id,
            event_id: d.event_id,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
        }
    }
}

/// Answer of `POST /webhooks/airtm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct WebhookReceipt {
    pub received: bool,
    /// `true` when this `svix-id` was already stored.
    pub duplicate: bool,
}

impl WebhookReceipt {
    /// A verified message stored in the inbox: `newly_stored` is what
    /// `offerhub::services::inbox::receive` answered (`false`: this message id was
    /// already there, nothing new was stored).
    pub fn stored(newly_stored: bool) -> Self {
        WebhookReceipt {
            received: true,
            duplicate: !newly_stored,
        }
    }
}

super::bodies!(Endpoint, CreatedEndpoint, Delivery, WebhookReceipt);

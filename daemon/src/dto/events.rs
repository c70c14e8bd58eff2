//! Events: [`Event`], each item of `/events/history` and each Server-Sent Event's
//! `data:`. Its schema also describes the payload of webhook deliveries (the document's
//! `webhooks` section), which the core's delivery worker sends as the same JSON.

use offerhub::events;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A committed event.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub event_type: &'a str,
    pub occurred_at: &'a str,
    pub resource_type: &'a str,
    pub resource_id: &'a str,
    pub data: &'a Value,
}

impl<'a> From<&'a events::Event> for Event<'a> {
    fn from(e: &'a events::Event) -> Self {
        Event {
            id: &e.id,
            event_type: &e.event_type,
            occurred_at: &e.occurred_at,
            resource_type: &e.resource_type,
            resource_id: &e.resource_id,
            data: &e.data,
        }
    }
}

impl super::Body for Event<'_> {}

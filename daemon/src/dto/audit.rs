//! The audit log: [`AuditLog`].

use offerhub::audit;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// One stored audit row, as the API returns it.
#[derive(Clone, Debug, Serialize, ToSchema)]
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

impl From<audit::AuditLog> for AuditLog {
    fn from(a: audit::AuditLog) -> Self {
        AuditLog {
            id: a.id,
            seq: a.seq,
            occurred_at: a.occurred_at,
            actor_type: a.actor_type,
            actor_id: a.actor_id,
            action: a.action,
            resource_type: a.resource_type,
            resource_id: a.resource_id,
            before: a.before,
            after: a.after,
            request_id: a.request_id,
            idempotency_key: a.idempotency_key,
            prev_hash: a.prev_hash,
            hash: a.hash,
        }
    }
}

super::bodies!(AuditLog);

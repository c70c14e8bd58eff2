//! `GET /audit/logs` (scope `support`): filters `resourceType`, `resourceId`, `action`,
//! `actorId`, `from`, `to` (RFC 3339, inclusive); newest first; paginated.

use axum::extract::State;
use offerhub::audit::{self, AuditFilter};
use offerhub::error::Error;
use offerhub::pagination::PageRequest;
use serde::Deserialize;

use crate::api::{ApiQuery, ApiResult, Auth, Support, respond_page};
use crate::dto::audit::AuditLog;
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    resource_type: Option<String>,
    resource_id: Option<String>,
    action: Option<String>,
    actor_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// Page size, 1–100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    operation_id = "listAuditLogs",
    path = "/audit/logs",
    tag = "Audit",
    params(AuditQuery),
    security(("bearer" = ["support"])),
    responses((status = 200, description = "Audit rows, newest first", body = crate::openapi::Page<crate::dto::audit::AuditLog>))
)]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth<Support>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult {
    let page = PageRequest::new(q.limit, q.cursor)?;
    let time = |field: &str, v: Option<String>| -> Result<Option<String>, Error> {
        v.map(|t| {
            offerhub::clock::parse_ts(&t).ok_or_else(|| {
                Error::validation(
                    field,
                    "must be an RFC 3339 time such as 2026-11-22T10:00:00Z",
                )
            })
        })
        .transpose()
    };
    let filter = AuditFilter {
        resource_type: q.resource_type,
        resource_id: q.resource_id,
        action: q.action,
        actor_id: q.actor_id,
        from: time("from", q.from)?,
        to: time("to", q.to)?,
    };
    let logs = audit::list(&state.store, &filter, &page).await?;
    Ok(respond_page(&auth.request_id, logs, AuditLog::from))
}

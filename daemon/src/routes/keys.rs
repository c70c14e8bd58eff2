//! API keys: `POST/GET /auth/api-keys`, `DELETE /auth/api-keys/{id}` (scope `support`,
//! or the master key) and `GET /auth/me` (any key).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use offerhub::error::{Error, ErrorCode};
use offerhub::pagination::PageRequest;
use offerhub::services::keys;
use serde::Deserialize;
use serde_json::json;

use crate::api::{AnyScope, ApiJson, ApiQuery, ApiResult, Auth, Support, respond, respond_page};
use crate::dto::keys::{ApiKey, CreatedApiKey, Me};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"\S",
        example = "marketplace-backend"
    )]
    name: String,
    /// A key can grant only scopes it holds itself (403 `INSUFFICIENT_SCOPE`).
    #[schema(schema_with = crate::openapi::fields::scopes)]
    scopes: Vec<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1–100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `201 {"data": {id, key, name, scopes, keyHint, createdAt}}`; `key` is shown only here.
#[utoipa::path(
    post,
    operation_id = "createApiKey",
    path = "/auth/api-keys",
    tag = "API keys",
    request_body = CreateKey,
    security(("bearer" = ["support"])),
    responses((status = 201, description = "Created; `key` is shown only here", body = crate::openapi::Data<crate::dto::keys::CreatedApiKey>))
)]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Support>,
    ApiJson(body): ApiJson<CreateKey>,
) -> ApiResult {
    let scopes = keys::parse_scopes(&body.scopes)?;
    // A key can mint only what it holds itself (the master key holds every scope).
    let beyond: Vec<&str> = scopes
        .iter()
        .filter(|s| !auth.principal.has(**s))
        .map(|s| s.as_str())
        .collect();
    if !beyond.is_empty() {
        return Err(Error::new(
            ErrorCode::InsufficientScope,
            format!(
                "scopes: this API key cannot grant scopes it does not hold ({})",
                beyond.join(", ")
            ),
        )
        .with_details(json!({
            "field": "scopes",
            "required": beyond,
            "granted": auth.principal.scopes(),
        }))
        .into());
    }
    let created = keys::create(&state.store, &auth.context(), &body.name, &scopes).await?;
    Ok(respond(
        StatusCode::CREATED,
        &auth.request_id,
        CreatedApiKey::from(created),
    ))
}

/// Paginated, newest first; never the secret.
#[utoipa::path(
    get,
    operation_id = "listApiKeys",
    path = "/auth/api-keys",
    tag = "API keys",
    params(ListQuery),
    security(("bearer" = ["support"])),
    responses((status = 200, description = "Keys, newest first", body = crate::openapi::Page<crate::dto::keys::ApiKey>))
)]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth<Support>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult {
    let page = PageRequest::new(q.limit, q.cursor)?;
    let keys = keys::list(&state.store, &page).await?;
    Ok(respond_page(&auth.request_id, keys, ApiKey::from))
}

/// Revokes; the key gets 401 from its next request on.
#[utoipa::path(
    delete,
    operation_id = "revokeApiKey",
    path = "/auth/api-keys/{id}",
    tag = "API keys",
    params(("id" = String, Path, description = "API key id (key_…)")),
    security(("bearer" = ["support"])),
    responses((status = 200, description = "Revoked", body = crate::openapi::Data<crate::dto::keys::ApiKey>))
)]
pub async fn revoke(
    State(state): State<AppState>,
    auth: Auth<Support>,
    Path(id): Path<String>,
) -> ApiResult {
    let key = keys::revoke(&state.store, &auth.context(), &id).await?;
    Ok(respond(StatusCode::OK, &auth.request_id, ApiKey::from(key)))
}

/// `{"data": {apiKeyId, apiKeyName, scopes}}`.
#[utoipa::path(
    get,
    operation_id = "getCurrentApiKey",
    path = "/auth/me",
    tag = "API keys",
    security(("bearer" = ["any"])),
    responses((status = 200, description = "The calling key", body = crate::openapi::Data<crate::dto::keys::Me>))
)]
pub async fn me(auth: Auth<AnyScope>) -> Response {
    respond(StatusCode::OK, &auth.request_id, Me::from(&auth.principal))
}

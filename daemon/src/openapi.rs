//! The OpenAPI 3.1 document of the API, generated from the code with utoipa: every
//! handler carries a `#[utoipa::path]` next to its code, request bodies and resources
//! derive `ToSchema`. Served (public) at `GET /api/v1/openapi.json`; a test fails when a
//! route of [`crate::ROUTES`] is missing from it.
//!
//! Conventions the document states once rather than per operation: the bearer scheme
//! (`Authorization: Bearer ohk_live_…`, public operations say `security: []`), the
//! `{data, meta}` envelope ([`Data`], [`Page`]), and the error envelope as every
//! operation's `default` response ([`ErrorResponse`]).

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use offerhub::error::ErrorCode;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::{events, routes, wallets};

/// `meta` of every success.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Meta {
    /// The request's `X-Request-ID` (accepted or generated).
    pub request_id: String,
    /// RFC 3339, milliseconds, UTC.
    pub timestamp: String,
}

/// `meta.pagination` of a list page.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Pagination {
    pub has_more: bool,
    /// Pass as `?cursor=` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// `meta` of a list page.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct PageMeta {
    pub request_id: String,
    pub timestamp: String,
    pub pagination: Pagination,
}

/// A single resource: `{"data": …, "meta": {requestId, timestamp}}`.
#[derive(ToSchema)]
pub struct Data<T> {
    pub data: T,
    pub meta: Meta,
}

/// A list page: `{"data": [...], "meta": {requestId, timestamp, pagination}}`
/// (`?limit=` 1–100, default 20; `?cursor=`).
#[derive(ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub meta: PageMeta,
}

/// The error object.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ErrorObject {
    /// Stable machine code (docs/ERRORS.md explains each).
    #[schema(schema_with = error_codes)]
    pub code: String,
    /// Human-readable; names the field for bad input.
    pub message: String,
    /// The HTTP status, repeated.
    pub status_code: u16,
    /// E.g. `{"field": "amount"}` for a validation error.
    pub details: Option<Value>,
}

/// The `code` schema: a string, one of [`ErrorCode::ALL`].
fn error_codes() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
        .examples(["VALIDATION_ERROR"])
        .build()
}

/// `{"error": {code, message, statusCode, details?}}` — every non-2xx answer.
#[derive(ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorObject,
}

/// `GET /health`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Health {
    #[schema(example = "healthy")]
    pub status: String,
    pub version: String,
    pub uptime_seconds: u64,
}

/// `GET /auth/me`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct Me {
    pub api_key_id: String,
    pub api_key_name: String,
    #[schema(value_type = Vec<String>, example = json!(["read", "write"]))]
    pub scopes: Vec<String>,
}

/// A newly created API key: the stored key plus `key`, the secret, shown only here.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub stored: offerhub::services::keys::ApiKey,
    /// `ohk_live_…` — store it now; it is never shown again.
    pub key: String,
}

/// A newly created webhook endpoint plus its signing secret, shown only here.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    pub endpoint: offerhub::services::webhooks::Endpoint,
    /// `whsec_<base64 key>`: verifies the Standard Webhooks headers of each delivery
    /// (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    pub secret: String,
}

/// A dispute with its order (dispute reads and outcomes).
#[derive(ToSchema)]
pub struct DisputeWithOrder {
    #[serde(flatten)]
    pub dispute: offerhub::services::disputes::Dispute,
    pub order: offerhub::services::orders::Order,
}

/// `GET /users/{id}/wallet`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct WalletView {
    pub id: String,
    /// `G…`.
    pub public_key: String,
    /// `PENDING_ACTIVATION`, `ACTIVE` or `FAILED`.
    pub status: String,
    pub failure_reason: Option<String>,
    pub activation_hash: Option<String>,
    /// Read from the network; `null` until the account exists.
    #[schema(value_type = Object, example = json!({"usdc": "150.0000000", "xlm": "1.0000000"}))]
    pub balances: Option<Value>,
}

/// `GET /users/{id}/wallet/deposit`: how a user funds their balance.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct DepositInstructions {
    #[schema(example = "crypto")]
    pub provider: String,
    #[schema(example = "stellar_address")]
    pub method: String,
    pub address: String,
    #[schema(value_type = Object, example = json!({"code": "USDC", "issuer": "GBBD47…"}))]
    pub asset: Value,
    pub network: String,
    pub instructions: String,
}

/// `POST /users/{id}/balance/sync`.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct SyncOutcome {
    pub deposits_credited: u64,
    /// The wallet-vs-ledger check of `offerhub reconcile` for this user.
    pub reconciliation: Value,
    pub balance: offerhub::ledger::Balance,
}

/// One on-chain movement of a wallet.
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct WalletTransaction {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `in` or `out`.
    pub direction: String,
    pub asset: String,
    /// Horizon's 7-decimal string.
    pub amount: String,
    pub from: String,
    pub to: String,
    pub transaction_hash: String,
    pub created_at: String,
}

/// An escrow action still settling on chain: `202` with the order and its saga.
#[derive(ToSchema)]
pub struct SagaAccepted {
    #[serde(flatten)]
    pub order: offerhub::services::orders::Order,
    pub saga: offerhub::services::sagas::Saga,
}

/// Answer of `POST /webhooks/airtm`.
#[derive(ToSchema)]
pub struct WebhookReceipt {
    pub received: bool,
    /// `true` when this `svix-id` was already stored.
    pub duplicate: bool,
}

/// `GET /health/detailed`.
#[derive(ToSchema)]
pub struct HealthDetailed {
    /// `healthy`, `degraded` (a provider is unavailable) or `unhealthy` (503: the
    /// database is down).
    pub status: String,
    pub version: String,
    /// `database`, `stellarHorizon`, `trustlessWork`, `airtm`: each `{status, …}`.
    pub dependencies: Value,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "OfferHub API",
        description = "Payments orchestration for marketplaces: balances, Stellar wallets, \
                       USDC escrow (Trustless Work), disputes, Airtm top-ups and payouts, \
                       events. Amounts are decimal strings of USDC with up to 7 decimals. \
                       Mutations accept an `Idempotency-Key` header.",
        license(name = "Apache-2.0"),
    ),
    servers((url = "/api/v1")),
    modifiers(&Conventions),
    security(("bearer" = [])),
    paths(
        serve,
        routes::health::health, routes::health::detailed,
        routes::keys::create, routes::keys::list, routes::keys::revoke, routes::keys::me,
        routes::users::create, routes::users::list, routes::users::get, routes::users::update,
        routes::users::balance, routes::users::balance_alias, routes::users::history,
        routes::users::adjust,
        wallets::get_wallet, wallets::deposit, wallets::sync, wallets::transactions,
        routes::withdrawals::create, routes::withdrawals::list, routes::withdrawals::get,
        routes::airtm::commit_withdrawal, routes::airtm::refresh_withdrawal,
        routes::airtm::cancel_withdrawal, routes::airtm::link,
        routes::airtm::create_topup, routes::airtm::list_topups, routes::airtm::get_topup,
        routes::airtm::refresh_topup, routes::airtm::cancel_topup,
        routes::airtm::topup_callback, routes::airtm::webhook,
        routes::audit::list,
        routes::orders::create, routes::orders::list, routes::orders::get,
        routes::orders::reserve, routes::orders::cancel,
        routes::escrow::create, routes::escrow::fund, routes::escrow::release,
        routes::escrow::refund, routes::escrow::dispute, routes::escrow::milestones,
        routes::escrow::milestone,
        routes::escrow::list_disputes, routes::escrow::get_dispute, routes::escrow::assign,
        routes::escrow::comment, routes::escrow::resolve,
        routes::escrow::list_sagas, routes::escrow::get_saga, routes::escrow::retry_saga,
        events::stream, events::history,
        routes::webhooks::create, routes::webhooks::list, routes::webhooks::delete,
        routes::webhooks::deliveries, routes::webhooks::replay,
    ),
    tags(
        (name = "System", description = "Health and this document"),
        (name = "API keys", description = "Keys and scopes (read, write, support)"),
        (name = "Users", description = "Users and their ledger balances"),
        (name = "Wallets", description = "Invisible Stellar wallets (crypto mode)"),
        (name = "Withdrawals", description = "Crypto withdrawals and Airtm payouts"),
        (name = "Top-ups", description = "Airtm payins"),
        (name = "Orders", description = "Orders and the hold on the buyer's balance"),
        (name = "Escrow", description = "Trustless Work escrow: deploy, fund, release, refund, dispute, milestones"),
        (name = "Disputes", description = "Review and resolution"),
        (name = "Sagas", description = "Multi-step chain operations and their recovery"),
        (name = "Events", description = "Server-Sent Events and history"),
        (name = "Webhooks", description = "Outbound endpoints and deliveries; Airtm's inbound webhooks"),
        (name = "Audit", description = "The hash-chained audit log"),
    )
)]
struct ApiDoc;

/// Adds the bearer scheme and the error envelope as every operation's `default`
/// response.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ohk_live_…")
                    .description(Some(
                        "An API key from `offerhub keys create` or `POST /auth/api-keys`. \
                         401 UNAUTHORIZED when missing, unknown or revoked; 403 \
                         INSUFFICIENT_SCOPE without the operation's scope.",
                    ))
                    .build(),
            ),
        );
        let error = ResponseBuilder::new()
            .description(
                "The error envelope; `code` is one of docs/ERRORS.md (e.g. 400 \
                 VALIDATION_ERROR naming `details.field`, 401, 403, 404, 409, 422, 429 with \
                 Retry-After, 503 PROVIDER_UNAVAILABLE)",
            )
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorResponse",
                    ))))
                    .build(),
            )
            .build();
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                op.responses
                    .responses
                    .entry("default".into())
                    .or_insert_with(|| RefOr::T(error.clone()));
            }
        }
        let schemas = &mut components.schemas;
        for (name, schema) in [
            (
                "ErrorResponse",
                <ErrorResponse as utoipa::PartialSchema>::schema(),
            ),
            (
                "ErrorObject",
                <ErrorObject as utoipa::PartialSchema>::schema(),
            ),
        ] {
            schemas.entry(name.to_string()).or_insert(schema);
        }
    }
}

/// The document (built once).
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// `GET /openapi.json` (public): the OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    operation_id = "getOpenApiDocument",
    path = "/openapi.json",
    tag = "System",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn serve() -> Response {
    static JSON: OnceLock<String> = OnceLock::new();
    let body =
        JSON.get_or_init(|| serde_json::to_string(document()).unwrap_or_else(|_| "{}".to_string()));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.as_str(),
    )
        .into_response()
}

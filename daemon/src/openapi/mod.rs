//! The OpenAPI 3.1 document of the API, generated from the code with utoipa: every
//! handler carries a `#[utoipa::path]` next to its code, request bodies derive
//! `ToSchema` beside their handler, the resources answered are [`crate::dto`]. Served (public) at `GET /api/v1/openapi.json`; a test fails when a
//! route of [`crate::ROUTES`] is missing from it.
//!
//! Conventions the document states once rather than per operation: the bearer scheme
//! (`Authorization: Bearer ohk_live_…`, public operations say `security: []`), the
//! `{data, meta}` envelope ([`Data`], [`Page`]), and the error envelope as every
//! operation's `default` response ([`ErrorResponse`]).
//!
//! Here: the envelopes and the annotated document ([`document`]); [`fields`]: field
//! schemas of request bodies; `contract`: what is added per operation to the served
//! document ([`document_json`]), with `error_codes`, the codes of each operation;
//! `webhooks`: the `webhooks` section (one entry per event type).

use std::sync::OnceLock;

use offerhub::error::ErrorCode;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::routes;

mod contract;
mod error_codes;
pub mod fields;
mod webhooks;

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
        routes::system::openapi,
        routes::system::health, routes::system::detailed, routes::system::metrics,
        routes::keys::create, routes::keys::list, routes::keys::revoke, routes::keys::me,
        routes::users::create, routes::users::list, routes::users::get, routes::users::update,
        routes::users::balance, routes::users::balance_alias, routes::users::history,
        routes::users::adjust,
        routes::wallets::get, routes::wallets::deposit, routes::wallets::sync,
        routes::wallets::transactions,
        routes::withdrawals::create, routes::withdrawals::list, routes::withdrawals::get,
        routes::withdrawals::commit, routes::withdrawals::refresh,
        routes::withdrawals::cancel, routes::topups::link,
        routes::topups::create, routes::topups::list, routes::topups::get,
        routes::topups::refresh, routes::topups::cancel,
        routes::topups::callback, routes::webhooks::receive_airtm,
        routes::audit::list,
        routes::orders::create, routes::orders::list, routes::orders::get,
        routes::orders::reserve, routes::orders::cancel,
        routes::escrow::create, routes::escrow::fund, routes::escrow::release,
        routes::escrow::refund, routes::escrow::dispute, routes::escrow::milestones,
        routes::escrow::milestone,
        routes::disputes::list, routes::disputes::get, routes::disputes::assign,
        routes::disputes::comment, routes::disputes::resolve,
        routes::sagas::list, routes::sagas::get, routes::sagas::retry,
        routes::events::stream, routes::events::history,
        routes::webhooks::create, routes::webhooks::list, routes::webhooks::delete,
        routes::webhooks::deliveries, routes::webhooks::replay,
    ),
    tags(
        (name = "System", description = "Health, metrics and this document"),
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

/// The document as utoipa builds it from the annotations (before [`contract`]).
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// The served document: [`document`] completed by [`contract`] with what the
/// annotations cannot say once per operation — `servers` from `PUBLIC_BASE_URL`, the
/// `limit` rule, the `Idempotency-Key` header, every error status an operation can
/// answer (with its `ErrorCode`s) and the `webhooks` section.
pub fn document_json(public_base_url: &str) -> Value {
    static COMPLETED: OnceLock<Value> = OnceLock::new();
    let mut doc = COMPLETED
        .get_or_init(|| {
            let mut doc = serde_json::to_value(document())
                .unwrap_or_else(|_| Value::Object(Default::default()));
            contract::complete(&mut doc);
            doc
        })
        .clone();
    let base = public_base_url.trim_end_matches('/');
    doc["servers"] = serde_json::json!([
        {"url": format!("{base}/api/v1"), "description": "This deployment (PUBLIC_BASE_URL)"},
        {"url": "/api/v1", "description": "Relative to where this document was fetched"},
    ]);
    doc
}

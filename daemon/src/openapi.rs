//! The OpenAPI 3.1 document of the API, generated from the code with utoipa: every
//! handler carries a `#[utoipa::path]` next to its code, request bodies derive
//! `ToSchema` beside their handler, the resources answered are [`crate::dto`]. Served (public) at `GET /api/v1/openapi.json`; a test fails when a
//! route of [`crate::ROUTES`] is missing from it.
//!
//! Conventions the document states once rather than per operation: the bearer scheme
//! (`Authorization: Bearer ohk_live_…`, public operations say `security: []`), the
//! `{data, meta}` envelope ([`Data`], [`Page`]), and the error envelope as every
//! operation's `default` response ([`ErrorResponse`]).

use std::sync::OnceLock;

use offerhub::error::ErrorCode;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::routes;

/// Field schemas the derive cannot state, used with `#[schema(schema_with = …)]` on
/// request bodies. Each states exactly what the handler accepts.
pub mod fields {
    use serde_json::{Value, json};
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;

    /// An amount `> 0` (`Amount::parse_positive`): the decimal pattern of `Amount` with
    /// at least one non-zero digit.
    pub const POSITIVE_AMOUNT: &str = r"^([0-9]*[1-9][0-9]*(\.[0-9]{1,7})?|[0-9]+\.([1-9][0-9]{0,6}|0[1-9][0-9]{0,5}|00[1-9][0-9]{0,4}|000[1-9][0-9]{0,3}|0000[1-9][0-9]{0,2}|00000[1-9][0-9]?|000000[1-9]))$";
    /// An amount `>= 0` (`Amount::parse_non_negative`).
    pub const NON_NEGATIVE_AMOUNT: &str = r"^[0-9]+(\.[0-9]{1,7})?$";
    /// USD for Airtm: `> 0`, at most two decimals.
    pub const USD_AMOUNT: &str =
        r"^([0-9]*[1-9][0-9]*(\.[0-9]{1,2})?|[0-9]+\.([1-9][0-9]?|0[1-9]))$";
    /// Not blank: at least one non-whitespace character (servers trim before checking).
    pub const NOT_BLANK: &str = r"\S";
    /// `local@domain.tld` without whitespace; the domain neither starts nor ends with a dot.
    pub const EMAIL: &str = r"^[^@\s]+@[^@\s.][^@\s]*\.[^@\s]*[^@\s.]$";

    fn schema(v: Value) -> RefOr<Schema> {
        serde_json::from_value(v).unwrap_or_else(|_| RefOr::T(Schema::default()))
    }

    /// A duration: ISO-8601 (`P7D`, `PT2S`) or a whole number of seconds.
    pub fn duration() -> RefOr<Schema> {
        schema(json!({
            "oneOf": [
                {"type": "string", "pattern": r"^(P[0-9]+W|P([0-9]+D)?(T([0-9]+H)?([0-9]+M)?([0-9]+S)?)?|[0-9]+)$", "examples": ["P7D", "PT2S"]},
                {"type": "integer", "minimum": 1, "maximum": 315_360_000u64}
            ],
            "description": "ISO-8601 duration (weeks, days, hours, minutes, seconds; no years or months) or a whole number of seconds, 1 s to 3650 days"
        }))
    }

    pub fn positive_amount() -> RefOr<Schema> {
        schema(
            json!({"type": "string", "pattern": POSITIVE_AMOUNT, "examples": ["100.00"],
            "description": "Decimal string of USDC greater than zero, up to 7 decimals"}),
        )
    }

    pub fn non_negative_amount() -> RefOr<Schema> {
        schema(
            json!({"type": "string", "pattern": NON_NEGATIVE_AMOUNT, "examples": ["60.00"],
            "description": "Decimal string of USDC, zero or more, up to 7 decimals"}),
        )
    }

    pub fn usd_amount() -> RefOr<Schema> {
        schema(
            json!({"type": "string", "pattern": USD_AMOUNT, "examples": ["50.00"],
            "description": "Decimal string of US dollars greater than zero, at most 2 decimals"}),
        )
    }

    /// `platformFee`: a percentage 0–99 with at most two decimals, as a number or a
    /// decimal string; `null` is the same as absent.
    pub fn platform_fee() -> RefOr<Schema> {
        schema(json!({
            "description": "Percent (0–99, at most two decimals) overriding TRUSTLESS_PLATFORM_FEE for this order",
            "oneOf": [
                {"type": "number", "minimum": 0, "maximum": 99, "multipleOf": 0.01},
                {"type": "string", "pattern": r"^(0|[1-9][0-9]?)(\.[0-9]{1,2})?$"},
                {"type": "null"}
            ],
            "examples": [2.5]
        }))
    }

    /// `PATCH /users/{id}` `email`: a string sets, `null` clears, absent leaves as is.
    pub fn nullable_email() -> RefOr<Schema> {
        schema(
            json!({"type": ["string", "null"], "format": "email", "maxLength": 254,
            "pattern": EMAIL, "examples": ["buyer@example.com"],
            "description": "A string sets, `null` clears, absent leaves as is"}),
        )
    }

    /// An email address (`local@domain.tld`, at most 254 characters).
    pub fn email() -> RefOr<Schema> {
        schema(
            json!({"type": "string", "format": "email", "maxLength": 254,
            "pattern": EMAIL, "examples": ["buyer@example.com"]}),
        )
    }

    /// Same as [`email`], `null` accepted as absent.
    pub fn optional_email() -> RefOr<Schema> {
        schema(
            json!({"type": ["string", "null"], "format": "email", "maxLength": 254,
            "pattern": EMAIL, "examples": ["buyer@example.com"]}),
        )
    }

    /// An absolute http(s) URL of at most 2048 characters.
    pub fn http_url() -> RefOr<Schema> {
        schema(json!({"type": "string", "format": "uri", "maxLength": 2048,
            "pattern": "^[hH][tT][tT][pP][sS]?://[^\\s/?#]+", "examples": ["https://marketplace.example/return"]}))
    }

    /// Helper: a string enum.
    fn one_of(values: &[&str], nullable: bool) -> RefOr<Schema> {
        if nullable {
            schema(
                json!({"type": ["string", "null"], "enum": values.iter().map(|v| json!(v)).chain([Value::Null]).collect::<Vec<_>>()}),
            )
        } else {
            schema(json!({"type": "string", "enum": values}))
        }
    }

    /// A string enum of a domain enum's texts.
    fn texts(values: impl Iterator<Item = &'static str>) -> RefOr<Schema> {
        one_of(&values.collect::<Vec<_>>(), false)
    }

    pub fn order_currency() -> RefOr<Schema> {
        one_of(&["USD", "USDC"], true)
    }
    pub fn topup_currency() -> RefOr<Schema> {
        one_of(&["USD"], true)
    }
    pub fn opened_by() -> RefOr<Schema> {
        one_of(&["BUYER", "SELLER"], false)
    }
    pub fn dispute_reason() -> RefOr<Schema> {
        one_of(&["NOT_DELIVERED", "QUALITY_ISSUE", "OTHER"], false)
    }
    pub fn decision() -> RefOr<Schema> {
        texts(
            offerhub::domain::dispute::Decision::ALL
                .iter()
                .map(|d| d.as_str()),
        )
    }
    pub fn destination_type() -> RefOr<Schema> {
        one_of(&["crypto", "bank", "airtm_balance"], false)
    }
    pub fn dispute_status() -> RefOr<Schema> {
        texts(
            offerhub::domain::dispute::DisputeStatus::ALL
                .iter()
                .map(|s| s.as_str()),
        )
    }
    pub fn saga_status() -> RefOr<Schema> {
        texts(
            offerhub::domain::saga::SagaStatus::ALL
                .iter()
                .map(|s| s.as_str()),
        )
    }
    pub fn scopes() -> RefOr<Schema> {
        schema(json!({"type": "array", "minItems": 1,
            "items": {"type": "string", "enum": ["read", "write", "support"]},
            "examples": [["read", "write"]]}))
    }
}

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

mod contract {
    use std::collections::BTreeMap;

    use offerhub::error::ErrorCode::{self, *};
    use serde_json::{Map, Value, json};

    /// The codes an operation answers besides those every operation of its kind
    /// answers (see [`complete`]): lookups, state rules, money and providers.
    fn codes(operation_id: &str) -> &'static [ErrorCode] {
        const CHAIN: &[ErrorCode] = &[
            OrderNotFound,
            EscrowNotFound,
            InvalidStateTransition,
            EscrowAlreadyExists,
            DisputeAlreadyOpen,
            OperationInProgress,
            FeatureNotEnabled,
            WalletNotReady,
            EscrowContractError,
            InsufficientFunds,
            UserSuspended,
            ProviderError,
            ProviderTimeout,
            ProviderUnavailable,
            XdrVerificationFailed,
        ];
        match operation_id {
            "revokeApiKey" => &[ApiKeyNotFound],
            "createApiKey" => &[InsufficientScope],
            "getUser" | "getUserBalance" | "getBalance" | "listBalanceHistory" => &[UserNotFound],
            "updateUser" => &[UserNotFound, InvalidStateTransition],
            "adjustBalance" => &[
                UserNotFound,
                InvalidAmountFormat,
                AmountOutOfRange,
                InsufficientFunds,
            ],
            "getWallet" | "getDepositInstructions" | "listWalletTransactions" | "syncBalance" => &[
                UserNotFound,
                FeatureNotEnabled,
                WalletNotReady,
                ProviderError,
                ProviderTimeout,
                ProviderUnavailable,
            ],
            "createWithdrawal" => &[
                UserNotFound,
                InvalidAmountFormat,
                AmountOutOfRange,
                InsufficientFunds,
                UserSuspended,
                WithdrawalDestinationInvalid,
                WalletNotReady,
                FeatureNotEnabled,
                AirtmUserNotFound,
                AirtmUserNotLinked,
                AirtmUserInvalid,
                OperationInProgress,
                ProviderError,
                ProviderTimeout,
                ProviderUnavailable,
                XdrVerificationFailed,
            ],
            "getWithdrawal" => &[WithdrawalNotFound],
            "commitWithdrawal" | "refreshWithdrawal" | "cancelWithdrawal" => &[
                WithdrawalNotFound,
                WithdrawalNotCommittable,
                FeatureNotEnabled,
                InvalidStateTransition,
                ProviderError,
                ProviderTimeout,
                ProviderUnavailable,
            ],
            "linkAirtmAccount" => &[
                UserNotFound,
                FeatureNotEnabled,
                AirtmUserNotFound,
                AirtmUserInvalid,
                ProviderError,
                ProviderTimeout,
                ProviderUnavailable,
            ],
            "createTopUp" => &[
                UserNotFound,
                InvalidAmountFormat,
                AmountOutOfRange,
                UserSuspended,
                WalletNotReady,
                FeatureNotEnabled,
                AirtmUserNotLinked,
                AirtmUserInvalid,
                ProviderError,
                ProviderTimeout,
                ProviderUnavailable,
            ],
            "listTopUps" => &[FeatureNotEnabled],
            "getTopUp" => &[TopupNotFound],
            "refreshTopUp" | "cancelTopUp" => &[
                TopupNotFound,
                FeatureNotEnabled,
                InvalidStateTransition,
                ProviderError,
                ProviderTimeout,
                ProviderUnavailable,
            ],
            "topUpCallback" => &[TopupNotFound, FeatureNotEnabled],
            "receiveAirtmWebhook" => &[Unauthorized, FeatureNotEnabled],
            "createOrder" => &[
                UserNotFound,
                InvalidRequest,
                InvalidAmountFormat,
                AmountOutOfRange,
                ClientOrderRefConflict,
                UserSuspended,
            ],
            "getOrder" | "listMilestones" => &[OrderNotFound],
            "reserveOrderFunds" => &[
                OrderNotFound,
                InvalidStateTransition,
                InsufficientFunds,
                AmountOutOfRange,
                UserSuspended,
                OperationInProgress,
            ],
            "cancelOrder" => &[OrderNotFound, InvalidStateTransition, OperationInProgress],
            "createEscrow" | "fundEscrow" | "releaseEscrow" | "refundEscrow" | "openDispute" => {
                CHAIN
            }
            "advanceMilestone" => &[
                NotFound,
                MilestoneNotFound,
                OrderNotFound,
                EscrowNotFound,
                InvalidStateTransition,
                OperationInProgress,
                FeatureNotEnabled,
                WalletNotReady,
                EscrowContractError,
                ProviderError,
                ProviderTimeout,
                ProviderUnavailable,
                XdrVerificationFailed,
            ],
            "getDispute" => &[DisputeNotFound],
            "assignDispute" | "commentOnDispute" => &[DisputeNotFound, InvalidStateTransition],
            "resolveDispute" => &[
                DisputeNotFound,
                InvalidAmountFormat,
                InvalidStateTransition,
                OperationInProgress,
                FeatureNotEnabled,
                WalletNotReady,
                EscrowContractError,
                ProviderError,
                ProviderTimeout,
                ProviderUnavailable,
                XdrVerificationFailed,
            ],
            "getSaga" => &[SagaNotFound],
            "retrySaga" => &[
                SagaNotFound,
                InvalidStateTransition,
                OperationInProgress,
                FeatureNotEnabled,
                EscrowContractError,
                ProviderError,
                ProviderTimeout,
                ProviderUnavailable,
                XdrVerificationFailed,
            ],
            "createWebhookEndpoint" => &[FeatureNotEnabled],
            "deleteWebhookEndpoint" | "replayWebhookDelivery" => &[NotFound],
            _ => &[],
        }
    }

    /// Operations whose handler reads a JSON body (`ApiJson`): 400 for a malformed or
    /// invalid one, 413 above the limit, 415 for another `Content-Type`.
    const JSON_BODY_WITHOUT_SCHEMA: &[&str] = &["fundEscrow", "advanceMilestone", "retrySaga"];

    /// One error response per status, listing its codes.
    fn error_response(status: u16, codes: &[ErrorCode]) -> Value {
        let list: Vec<String> = codes.iter().map(|c| format!("`{}`", c.as_str())).collect();
        let what = match status {
            400 => "Bad input; `details.field` names the field",
            401 => "Missing, malformed, unknown or revoked API key",
            403 => "The API key lacks the operation's scope",
            404 => "No such resource",
            409 => "Conflicts with the resource's state or an idempotency key",
            413 => "Body larger than the configured limit",
            415 => "Body without `Content-Type: application/json`",
            422 => "Well-formed but refused by a business rule or configuration",
            429 => "Rate limit of the API key; retry after `Retry-After` seconds",
            502 => "A provider answered with an error",
            503 => "A provider is unavailable",
            504 => "A provider timed out",
            _ => "Error",
        };
        let mut r = json!({
            "description": format!("{what}: {} (docs/ERRORS.md)", list.join(", ")),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
        });
        if status == 429 {
            r["headers"] = json!({"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 1}}});
        }
        r
    }

    /// Completes the document (see [`super::document_json`]).
    pub fn complete(doc: &mut Value) {
        if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
            for item in paths.values_mut() {
                let Some(item) = item.as_object_mut() else {
                    continue;
                };
                for (method, op) in item.iter_mut() {
                    operation(method, op);
                }
            }
        }
        // Crypto withdrawals name the Stellar account they pay.
        if let Some(w) = doc.pointer_mut("/components/schemas/CreateWithdrawal") {
            w["if"] = json!({"properties": {"destinationType": {"const": "crypto"}}, "required": ["destinationType"]});
            w["then"] = json!({"required": ["destinationRef"]});
        }
        doc["webhooks"] = super::webhooks::section();
    }

    fn operation(method: &str, op: &mut Value) {
        let id = op["operationId"].as_str().unwrap_or_default().to_string();
        let protected = op["security"]
            .as_array()
            .and_then(|s| s.first())
            .is_some_and(|s| s.get("bearer").is_some());
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        let has_path = params.iter().any(|p| p["in"] == "path");
        let has_query = params.iter().any(|p| p["in"] == "query");
        let json_body = op
            .get("requestBody")
            .is_some_and(|b| b["content"].get("application/json").is_some())
            || JSON_BODY_WITHOUT_SCHEMA.contains(&id.as_str());

        // The pagination rule of every list (`PageRequest`).
        if let Some(ps) = op.get_mut("parameters").and_then(Value::as_array_mut) {
            for p in ps.iter_mut() {
                if p["in"] == "query" && p["name"] == "limit" {
                    p["schema"] =
                        json!({"type": "integer", "minimum": 1, "maximum": 100, "default": 20});
                    p["description"] = json!("Page size, 1–100 (default 20)");
                }
                if p["in"] == "path" && p["name"] == "op" {
                    p["schema"] =
                        json!({"type": "string", "enum": ["complete", "approve", "release"]});
                }
                if p["in"] == "query" && p["name"] == "cursor" {
                    p["description"] = json!(
                        "`meta.pagination.nextCursor` of the previous page; empty is the first page"
                    );
                }
            }
        }
        let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
        let mut add = |c: ErrorCode| {
            let v = by_status.entry(c.http_status()).or_default();
            if !v.contains(&c) {
                v.push(c);
            }
        };
        if protected {
            add(Unauthorized);
            add(InsufficientScope);
            add(RateLimited);
        }
        if has_path || has_query || json_body {
            add(ValidationError);
        }
        if json_body {
            add(PayloadTooLarge);
            add(UnsupportedMediaType);
        }
        if has_path {
            add(NotFound);
        }
        if method == "post" && protected {
            // The idempotency layer: a bad key, the key reused for another request or
            // still running, and the body it hashes.
            add(ValidationError);
            add(IdempotencyConflict);
            add(IdempotencyKeyInProgress);
            add(PayloadTooLarge);
            let header = json!({
                "name": "Idempotency-Key",
                "in": "header",
                "required": false,
                "description": "Replays the stored response of the first request with this key (header `Idempotent-Replayed: true`); 409 IDEMPOTENCY_CONFLICT when reused for another request",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
            });
            match op.get_mut("parameters").and_then(Value::as_array_mut) {
                Some(ps) => ps.push(header),
                None => op["parameters"] = json!([header]),
            }
        }
        for c in codes(&id) {
            add(*c);
        }
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
            return;
        };
        for (status, codes) in by_status {
            responses
                .entry(status.to_string())
                .or_insert_with(|| error_response(status, &codes));
        }
        responses.insert(
            "default".into(),
            json!({
                "description": "`INTERNAL_ERROR` (500): an unexpected failure, logged with the request id",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
            }),
        );
        sort(responses);
    }

    fn sort(m: &mut Map<String, Value>) {
        let mut entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        m.extend(entries);
    }
}

/// The `webhooks` section: one entry per event type of
/// [`offerhub::events::EVENT_TYPES`], its payload the event envelope with `type` and
/// `resourceType` fixed and `data` described from the example payload in
/// docs/EVENTS.md (which `tests/docs.rs` keeps complete).
mod webhooks {
    use serde_json::{Map, Value, json};

    const CATALOG: &str = include_str!("../../docs/EVENTS.md");

    /// The example payload of `event_type` in docs/EVENTS.md.
    fn example(event_type: &str) -> Option<Value> {
        let examples = CATALOG.split_once("## Example payloads")?.1;
        let heading = format!("#### `{event_type}`");
        let at = examples.find(&heading)?;
        let rest = &examples[at..];
        let start = rest.find("```json")? + "```json".len();
        let end = rest[start..].find("```")?;
        serde_json::from_str(&rest[start..start + end]).ok()
    }

    /// A schema describing `v`'s shape (types of each property, recursively).
    fn shape(v: &Value) -> Value {
        match v {
            Value::Null => json!({}),
            Value::Bool(_) => json!({"type": "boolean"}),
            Value::Number(n) if n.is_i64() || n.is_u64() => json!({"type": "integer"}),
            Value::Number(_) => json!({"type": "number"}),
            Value::String(_) => json!({"type": "string"}),
            Value::Array(a) => {
                json!({"type": "array", "items": a.first().map(shape).unwrap_or(json!({}))})
            }
            Value::Object(m) => {
                let props: Map<String, Value> =
                    m.iter().map(|(k, v)| (k.clone(), shape(v))).collect();
                json!({"type": "object", "properties": props})
            }
        }
    }

    pub fn section() -> Value {
        let mut out = Map::new();
        for t in offerhub::events::EVENT_TYPES {
            let ex = example(t).unwrap_or(Value::Null);
            let resource = ex["resourceType"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| t.split('.').next().unwrap_or_default().to_string());
            let schema = json!({
                "allOf": [
                    {"$ref": "#/components/schemas/Event"},
                    {
                        "type": "object",
                        "required": ["id", "type", "occurredAt", "resourceType", "resourceId", "data"],
                        "properties": {
                            "type": {"const": t},
                            "resourceType": {"const": resource},
                            "data": shape(&ex["data"]),
                        },
                    },
                ],
            });
            let header = |name: &str, description: &str| json!({"name": name, "in": "header", "required": true, "description": description, "schema": {"type": "string"}});
            out.insert(
                t.to_string(),
                json!({"post": {
                    "operationId": format!("webhook_{}", t.replace('.', "_")),
                    "summary": format!("`{t}` delivered to your endpoint"),
                    "description": "A POST to each webhook endpoint whose patterns match, signed per Standard Webhooks with the endpoint's `whsec_` secret (docs/EVENTS.md shows how to verify). Deliveries are retried with backoff until a 2xx; deduplicate on `webhook-id` (the event id).",
                    "tags": ["Webhooks"],
                    "security": [],
                    "parameters": [
                        header("webhook-id", "The event id (`evt_…`): the same on every retry"),
                        header("webhook-timestamp", "Unix seconds of this attempt"),
                        header("webhook-signature", "`v1,<base64 HMAC-SHA256(key, id.timestamp.body)>`, space-separated when several"),
                        {"name": "OfferHub-Signature", "in": "header", "required": false, "deprecated": true,
                         "description": "Legacy `t=<unix>,v1=<hex HMAC-SHA256(secret, t.body)>`; prefer webhook-signature",
                         "schema": {"type": "string"}},
                    ],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": schema, "example": ex}}},
                    "responses": {"2XX": {"description": "Received; any other answer, or none in time, is retried"}},
                }}),
            );
        }
        Value::Object(out)
    }
}

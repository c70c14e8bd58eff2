//! Field schemas the derive cannot state, used with `#[schema(schema_with = …)]` on
//! request bodies. Each states exactly what the handler accepts.

use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

/// An amount `> 0` (`Amount::parse_positive`): the decimal pattern of `Amount` with
/// at least one non-zero digit.
pub const POSITIVE_AMOUNT: &str = r"^([0-9]*[1-9][0-9]*(\.[0-9]{1,7})?|[0-9]+\.([1-9][0-9]{0,6}|0[1-9][0-9]{0,5}|00[1-9][0-9]{0,4}|000[1-9][0-9]{0,3}|0000[1-9][0-9]{0,2}|00000[1-9][0-9]?|000000[1-9]))$";
/// An amount `>= 0` (`Amount::parse_non_negative`).
pub const NON_NEGATIVE_AMOUNT: &str = r"^[0-9]+(\.[0-9]{1,7})?$";
/// USD for Airtm: `> 0`, at most two decimals.
pub const USD_AMOUNT: &str = r"^([0-9]*[1-9][0-9]*(\.[0-9]{1,2})?|[0-9]+\.([1-9][0-9]?|0[1-9]))$";
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

//! What the annotations cannot say once per operation, added to the document as JSON
//! ([`complete`]): the `limit`, `cursor` and `op` parameters, the `Idempotency-Key`
//! header of protected POSTs, every error status an operation can answer with its
//! codes (those of its kind here, its own in [`super::error_codes`]), the `default`
//! response, a rule of `CreateWithdrawal`, and the `webhooks` section.

use std::collections::BTreeMap;

use offerhub::error::ErrorCode::{self, *};
use serde_json::{Map, Value, json};

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

/// Completes one operation (`method` in lower case): its parameters, and a response
/// for every error status it can answer, listing the codes.
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

    describe_parameters(op);
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
        add_idempotency_header(op);
    }
    for c in super::error_codes::codes(&id) {
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

/// The pagination rule of every list (`PageRequest`: `limit` 1–100, default 20; what
/// `cursor` takes) and the milestone operations of `{op}`.
fn describe_parameters(op: &mut Value) {
    if let Some(ps) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        for p in ps.iter_mut() {
            if p["in"] == "query" && p["name"] == "limit" {
                p["schema"] =
                    json!({"type": "integer", "minimum": 1, "maximum": 100, "default": 20});
                p["description"] = json!("Page size, 1–100 (default 20)");
            }
            if p["in"] == "path" && p["name"] == "op" {
                p["schema"] = json!({"type": "string", "enum": ["complete", "approve", "release"]});
            }
            if p["in"] == "query" && p["name"] == "cursor" {
                p["description"] = json!(
                    "`meta.pagination.nextCursor` of the previous page; empty is the first page"
                );
            }
        }
    }
}

/// The `Idempotency-Key` header every protected POST accepts.
fn add_idempotency_header(op: &mut Value) {
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

/// Orders `m`'s entries by key.
fn sort(m: &mut Map<String, Value>) {
    let mut entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    m.extend(entries);
}

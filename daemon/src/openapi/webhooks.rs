//! The `webhooks` section: one entry per event type of
//! [`offerhub::events::EVENT_TYPES`], its payload the event envelope with `type` and
//! `resourceType` fixed and `data` described from the example payload in
//! docs/EVENTS.md (which `tests/docs.rs` keeps complete).

use serde_json::{Map, Value, json};

const CATALOG: &str = include_str!("../../../docs/EVENTS.md");

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
            let props: Map<String, Value> = m.iter().map(|(k, v)| (k.clone(), shape(v))).collect();
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

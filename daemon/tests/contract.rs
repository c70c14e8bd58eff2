//! Document versus server: requests generated from the served OpenAPI document, valid
//! ones (built from each schema: required fields, enum values, patterns, lengths) and
//! invalid ones (each constraint violated in turn), sent in process. Fails when
//!
//! - a documented-valid request is refused as bad input (400 `VALIDATION_ERROR` or
//!   `INVALID_AMOUNT_FORMAT`),
//! - a documented-invalid request is accepted (2xx/3xx),
//! - any answer carries a status the operation does not declare, or is a 500.
//!
//! Referential values the document cannot express (a buyer id that exists) come from
//! [`Fixture`]; everything else comes from the document. Deterministic: paths, methods
//! and properties are visited in document order and no value is random.

mod common;

use std::time::Duration;

use serde_json::{Map, Value, json};

/// Valid and invalid values for each `pattern` of the document. A pattern without an
/// entry fails the test: add it here with a value of each kind.
fn pattern_values(pattern: &str) -> Option<(Value, Value)> {
    let v = |a: &str, b: &str| Some((json!(a), json!(b)));
    match pattern {
        r"\S" => v("x", "   "),
        r"^-?[0-9]+(\.[0-9]{1,7})?$" => v("25.00", "1.23456789"),
        r"^[0-9]+(\.[0-9]{1,7})?$" => v("60.00", "-1"),
        p if p == offerhub_daemon::openapi::fields::POSITIVE_AMOUNT => v("100.00", "0.0000000"),
        p if p == offerhub_daemon::openapi::fields::USD_AMOUNT => v("50.00", "50.001"),
        p if p == offerhub_daemon::openapi::fields::EMAIL => v("buyer@example.com", "not-an-email"),
        "^[hH][tT][tT][pP][sS]?://[^\\s/?#]+" => v("https://marketplace.example/return", "ftp://x"),
        "^(0|[1-9][0-9]?)(\\.[0-9]{1,2})?$" => v("2.5", "100"),
        "^[!-~]+$" => v("contract-key", "has space"),
        _ => None,
    }
}

/// Ids of resources the test created, for fields and path parameters that must name
/// an existing resource.
struct Fixture {
    buyer: String,
    seller: String,
    order: String,
}

impl Fixture {
    fn field(&self, name: &str) -> Option<Value> {
        match name {
            "buyerId" | "userId" => Some(json!(self.buyer)),
            "sellerId" => Some(json!(self.seller)),
            _ => None,
        }
    }

    fn path(&self, path: &str) -> String {
        let mut out = String::new();
        let mut prev = "";
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            out.push('/');
            match seg {
                "{id}" if prev == "users" || prev == "balances" => out.push_str(&self.buyer),
                "{id}" if prev == "orders" => out.push_str(&self.order),
                "{milestone_ref}" => out.push_str("m1"),
                "{op}" => out.push_str("complete"),
                s if s.starts_with('{') => out.push_str("zz_missing"),
                s => out.push_str(s),
            }
            prev = seg;
        }
        out
    }
}

struct Doc<'a>(&'a Value);

impl Doc<'_> {
    /// Follows `$ref`s.
    fn resolve<'b>(&'b self, s: &'b Value) -> &'b Value {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.trim_start_matches("#/components/schemas/");
                self.resolve(&self.0["components"]["schemas"][name])
            }
            None => s,
        }
    }

    fn types(&self, s: &Value) -> Vec<String> {
        let s = self.resolve(s);
        match &s["type"] {
            Value::String(t) => vec![t.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
            _ => vec![],
        }
    }

    /// A value the schema accepts.
    fn valid(&self, s: &Value) -> Value {
        let s = self.resolve(s);
        if let Some(e) = s["examples"].as_array().and_then(|e| e.first()) {
            return e.clone();
        }
        if let Some(e) = s.get("example") {
            return e.clone();
        }
        if let Some(e) = s["enum"]
            .as_array()
            .and_then(|e| e.iter().find(|v| !v.is_null()))
        {
            return e.clone();
        }
        if let Some(d) = s.get("default") {
            return d.clone();
        }
        if let Some(one) = s["oneOf"].as_array().or(s["anyOf"].as_array()) {
            return one.first().map(|o| self.valid(o)).unwrap_or(Value::Null);
        }
        let types = self.types(s);
        let t = types.iter().find(|t| *t != "null").map(String::as_str);
        match t {
            Some("string") => {
                if let Some(p) = s["pattern"].as_str() {
                    let (ok, _) = pattern_values(p)
                        .unwrap_or_else(|| panic!("pattern {p:?} has no test values"));
                    return ok;
                }
                match s["format"].as_str() {
                    Some("email") => return json!("buyer@example.com"),
                    Some("uri") => return json!("https://marketplace.example/x"),
                    Some("date-time") => return json!("2026-01-01T00:00:00Z"),
                    _ => {}
                }
                let n = s["minLength"].as_u64().unwrap_or(1).max(1) as usize;
                json!("a".repeat(n))
            }
            Some("integer") | Some("number") => json!(s["minimum"].as_i64().unwrap_or(1)),
            Some("boolean") => json!(false),
            Some("array") => {
                let n = s["minItems"].as_u64().unwrap_or(0) as usize;
                Value::Array((0..n).map(|_| self.valid(&s["items"])).collect())
            }
            Some("object") | None if s.get("properties").is_some() => {
                let mut m = Map::new();
                for r in s["required"].as_array().into_iter().flatten() {
                    let k = r.as_str().unwrap_or_default();
                    m.insert(k.into(), self.valid(&s["properties"][k]));
                }
                // `if: {properties: {k: {const: v}}}, then: {required: […]}`.
                if let Some(cond) = s["if"]["properties"].as_object() {
                    let holds = cond.iter().all(|(k, c)| m.get(k) == c.get("const"));
                    if holds {
                        for r in s["then"]["required"].as_array().into_iter().flatten() {
                            let k = r.as_str().unwrap_or_default();
                            m.insert(k.into(), self.valid(&s["properties"][k]));
                        }
                    }
                }
                Value::Object(m)
            }
            Some("object") => json!({}),
            _ => Value::Null,
        }
    }

    /// Values the schema refuses, each with what it violates.
    fn invalid(&self, s: &Value) -> Vec<(String, Value)> {
        let s = self.resolve(s);
        let mut out = Vec::new();
        let types = self.types(s);
        if let Some(e) = s["enum"].as_array()
            && !e.contains(&json!("NOT_A_DOCUMENTED_VALUE"))
        {
            out.push(("enum".into(), json!("NOT_A_DOCUMENTED_VALUE")));
        }
        if types.iter().any(|t| t == "string") {
            if let Some(p) = s["pattern"].as_str() {
                let (_, bad) =
                    pattern_values(p).unwrap_or_else(|| panic!("pattern {p:?} has no test values"));
                out.push((format!("pattern {p}"), bad));
            }
            if let Some(n) = s["minLength"].as_u64().filter(|n| *n > 0) {
                out.push(("minLength".into(), json!("a".repeat(n as usize - 1))));
            }
            if let Some(n) = s["maxLength"].as_u64() {
                out.push(("maxLength".into(), json!("a".repeat(n as usize + 1))));
            }
            out.push(("type".into(), json!(12345)));
        }
        if types.iter().any(|t| t == "integer") {
            if let Some(n) = s["minimum"].as_i64() {
                out.push(("minimum".into(), json!(n - 1)));
            }
            if let Some(n) = s["maximum"].as_i64() {
                out.push(("maximum".into(), json!(n + 1)));
            }
        }
        if types.iter().any(|t| t == "array") {
            if let Some(n) = s["minItems"].as_u64().filter(|n| *n > 0) {
                let item = self.valid(&s["items"]);
                out.push(("minItems".into(), Value::Array(vec![item; n as usize - 1])));
            }
            if let Some(n) = s["maxItems"].as_u64() {
                let item = self.valid(&s["items"]);
                out.push(("maxItems".into(), Value::Array(vec![item; n as usize + 1])));
            }
            for (why, bad) in self.invalid(&s["items"]) {
                if why.starts_with("enum") || why.starts_with("pattern") {
                    out.push((format!("items {why}"), json!([bad])));
                }
            }
        }
        if s.get("oneOf").is_some() {
            out.push(("oneOf".into(), json!({})));
            out.push(("oneOf".into(), json!([1])));
        }
        out
    }
}

struct Outcome {
    status: u16,
    code: String,
    field: String,
}

async fn send(
    t: &common::TestApp,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<&Value>,
) -> Outcome {
    let body = body.map(Value::to_string);
    let m = method.to_uppercase();
    let call = t.call(&m, uri, Some(token), body.as_deref());
    let r = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .unwrap_or_else(|_| panic!("{method} {uri}: no answer in 20 s"));
    Outcome {
        status: r.status.as_u16(),
        code: r.body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        field: r.body["error"]["details"]["field"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

async fn contract(url: String) {
    let (t, _sandbox) = common::app_with_sandbox(
        &url,
        &[
            ("OFFERHUB_RATE_LIMIT_PER_MINUTE", "100000"),
            ("PUBLIC_BASE_URL", "https://payments.example.com/"),
        ],
    )
    .await;
    let (_, token) = t.key(&["read", "write", "support"]).await;
    let r = t.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(r.status, 200);
    let doc_value = r.body;
    assert_eq!(
        doc_value["servers"][0]["url"],
        "https://payments.example.com/api/v1"
    );
    let doc = Doc(&doc_value);

    // The resources referential fields name.
    let mut ids = Vec::new();
    for ext in ["contract-buyer", "contract-seller"] {
        let b = json!({"externalUserId": ext}).to_string();
        let r = t
            .call("POST", "/api/v1/users", Some(&token), Some(&b))
            .await;
        assert!(r.status.is_success(), "{}", r.body);
        ids.push(r.body["data"]["id"].as_str().unwrap().to_string());
    }
    let b = json!({"buyerId": ids[0], "sellerId": ids[1], "amount": "100.00", "title": "t",
        "milestones": [{"milestoneRef": "m1", "title": "m", "amount": "100.00"}]})
    .to_string();
    let r = t
        .call("POST", "/api/v1/orders", Some(&token), Some(&b))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let fx = Fixture {
        buyer: ids[0].clone(),
        seller: ids[1].clone(),
        order: r.body["data"]["id"].as_str().unwrap().to_string(),
    };

    let mut failures = Vec::new();
    let mut sent = 0usize;
    for (path, item) in doc_value["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_default();
            let declared: Vec<String> = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            let base = format!("/api/v1{}", fx.path(path));
            let params: Vec<&Value> = op["parameters"]
                .as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            let query: Vec<&Value> = params
                .iter()
                .copied()
                .filter(|p| p["in"] == "query")
                .collect();
            // Valid query: every parameter the document constrains, at a valid value.
            let mut valid_query: Vec<(String, String)> = Vec::new();
            for p in &query {
                let s = doc.resolve(&p["schema"]);
                let constrained = ["enum", "minimum", "maximum", "pattern", "format", "default"]
                    .iter()
                    .any(|k| s.get(*k).is_some());
                if constrained {
                    let v = doc.valid(s);
                    let v = v
                        .as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string());
                    valid_query.push((p["name"].as_str().unwrap().to_string(), v));
                }
            }
            let qs = |q: &[(String, String)]| {
                if q.is_empty() {
                    String::new()
                } else {
                    let mut s = form_urlencoded::Serializer::new(String::new());
                    for (k, v) in q {
                        s.append_pair(k, v);
                    }
                    format!("?{}", s.finish())
                }
            };
            let body_schema = op["requestBody"]["content"]["application/json"]["schema"].clone();
            let body_schema = (!body_schema.is_null()).then(|| doc.resolve(&body_schema).clone());
            let valid_body = body_schema.as_ref().map(|s| {
                let mut v = doc.valid(s);
                if let Some(m) = v.as_object_mut() {
                    for (k, x) in m.iter_mut() {
                        if let Some(f) = fx.field(k) {
                            *x = f;
                        }
                    }
                }
                v
            });
            let check = |o: &Outcome, valid: bool, what: &str, failures: &mut Vec<String>| {
                let at = format!("{} {path} ({id}) {what}", method.to_uppercase());
                if !declared.contains(&o.status.to_string()) {
                    failures.push(format!("{at}: status {} {} not declared", o.status, o.code));
                }
                if o.status >= 500 && o.code == "INTERNAL_ERROR" {
                    failures.push(format!("{at}: 500"));
                }
                if valid
                    && o.status == 400
                    && ["VALIDATION_ERROR", "INVALID_AMOUNT_FORMAT"].contains(&o.code.as_str())
                {
                    failures.push(format!(
                        "{at}: documented-valid request refused: {} naming {:?}",
                        o.code, o.field
                    ));
                }
                if !valid && o.status < 400 {
                    failures.push(format!(
                        "{at}: documented-invalid request accepted ({})",
                        o.status
                    ));
                }
            };

            // The SSE stream never ends: only requests it must refuse are sent.
            let streams = id == "streamEvents";
            if !streams {
                let uri = format!("{base}{}", qs(&valid_query));
                let o = send(&t, method, &uri, &token, valid_body.as_ref()).await;
                sent += 1;
                check(&o, true, "valid", &mut failures);
                // Every optional property too, each at a valid value.
                if let (Some(s), Some(Value::Object(v))) = (&body_schema, &valid_body) {
                    for (k, ps) in s["properties"].as_object().into_iter().flatten() {
                        if v.contains_key(k) {
                            continue;
                        }
                        let mut b = v.clone();
                        b.insert(k.clone(), fx.field(k).unwrap_or_else(|| doc.valid(ps)));
                        let o = send(&t, method, &uri, &token, Some(&Value::Object(b))).await;
                        sent += 1;
                        check(&o, true, &format!("with {k}"), &mut failures);
                    }
                }
            }
            // Each query constraint violated.
            for p in &query {
                let name = p["name"].as_str().unwrap();
                for (why, bad) in doc.invalid(&p["schema"]) {
                    if why == "type" && !doc.types(&p["schema"]).contains(&"integer".to_string()) {
                        continue; // a query string is text: 12345 is a string too
                    }
                    let mut q: Vec<(String, String)> = valid_query
                        .iter()
                        .filter(|(k, _)| k != name)
                        .cloned()
                        .collect();
                    q.push((
                        name.to_string(),
                        bad.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| bad.to_string()),
                    ));
                    let o = send(&t, method, &format!("{base}{}", qs(&q)), &token, None).await;
                    sent += 1;
                    check(&o, false, &format!("?{name} {why}"), &mut failures);
                    if o.status == 400 && o.field != name && !o.field.is_empty() {
                        failures.push(format!(
                            "{method} {path}: ?{name} {why} refused naming {:?}",
                            o.field
                        ));
                    }
                }
                let s = doc.resolve(&p["schema"]);
                if doc.types(s).contains(&"integer".to_string()) {
                    let mut q: Vec<(String, String)> = valid_query
                        .iter()
                        .filter(|(k, _)| k != name)
                        .cloned()
                        .collect();
                    q.push((name.to_string(), "abc".into()));
                    let o = send(&t, method, &format!("{base}{}", qs(&q)), &token, None).await;
                    sent += 1;
                    check(&o, false, &format!("?{name} not an integer"), &mut failures);
                }
            }
            // Each body constraint violated.
            if let (Some(s), Some(Value::Object(v))) = (&body_schema, &valid_body) {
                let uri = format!("{base}{}", qs(&valid_query));
                let required: Vec<&str> = s["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                for k in &required {
                    let mut b = v.clone();
                    b.remove(*k);
                    let o = send(&t, method, &uri, &token, Some(&Value::Object(b))).await;
                    sent += 1;
                    check(&o, false, &format!("without {k}"), &mut failures);
                }
                for (k, ps) in s["properties"].as_object().into_iter().flatten() {
                    for (why, bad) in doc.invalid(ps) {
                        let mut b = v.clone();
                        b.insert(k.clone(), bad);
                        let o = send(&t, method, &uri, &token, Some(&Value::Object(b))).await;
                        sent += 1;
                        check(&o, false, &format!("{k} {why}"), &mut failures);
                    }
                }
                if s["additionalProperties"] == json!(false) {
                    let mut b = v.clone();
                    b.insert("notDocumented".into(), json!(1));
                    let o = send(&t, method, &uri, &token, Some(&Value::Object(b))).await;
                    sent += 1;
                    check(&o, false, "with an undocumented property", &mut failures);
                }
            }
            // The declared auth errors are the real ones.
            if op["security"][0].get("bearer").is_some() && !streams {
                let o = send(&t, method, &base, "ohk_live_not_a_key", valid_body.as_ref()).await;
                sent += 1;
                check(&o, false, "with an unknown key", &mut failures);
            }
        }
    }
    assert!(sent > 300, "only {sent} requests generated");
    assert!(
        failures.is_empty(),
        "{} differences between the document and the server ({sent} requests):\n{}",
        failures.len(),
        failures.join("\n")
    );

    // The webhooks section: every event type, with the Standard Webhooks headers.
    let webhooks = doc_value["webhooks"].as_object().expect("webhooks section");
    for ty in offerhub::events::EVENT_TYPES {
        let w = &webhooks[*ty]["post"];
        let names: Vec<&str> = w["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for h in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            assert!(names.contains(&h), "{ty}: no {h} header");
        }
        let schema = &w["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(schema["allOf"][1]["properties"]["type"]["const"], *ty);
        assert_eq!(
            schema["allOf"][1]["properties"]["data"]["type"], "object",
            "{ty}"
        );
    }
}
offerhub_testkit::both_backends!(document_matches_server, contract);

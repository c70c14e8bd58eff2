//! The OpenAPI document: served publicly, OpenAPI 3.1, and describing every route of
//! the router (`offerhub_daemon::ROUTES`) — a route added without its `#[utoipa::path]`
//! fails here.

mod common;

use std::collections::BTreeSet;

use serde_json::Value;

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref"
                    && let Some(r) = x.as_str()
                {
                    out.push(r.to_string());
                }
                refs(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

fn security_is_bearer(op: &Value) -> bool {
    op["security"][0].get("bearer").is_some()
}

async fn document(url: String) {
    let t = common::app(&url, &[]).await;
    // Public: no API key.
    let r = t.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = r.body;
    assert_eq!(doc["openapi"], "3.1.0");
    // Absolute (PUBLIC_BASE_URL), then relative.
    let absolute = doc["servers"][0]["url"].as_str().unwrap();
    assert!(
        absolute.starts_with("http") && absolute.ends_with("/api/v1"),
        "{absolute}"
    );
    assert_eq!(doc["servers"][1]["url"], "/api/v1");
    assert_eq!(doc["info"]["version"], offerhub::VERSION);

    let routes: BTreeSet<(String, String)> = offerhub_daemon::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let mut documented = BTreeSet::new();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            documented.insert((method.clone(), path.clone()));
            let id = op["operationId"].as_str().unwrap_or_default().to_string();
            assert!(
                !id.is_empty() && operation_ids.insert(id.clone()),
                "{method} {path}: operationId {id:?} missing or not unique"
            );
            let responses = op["responses"].as_object().unwrap();
            // Every error status is declared with the error envelope.
            for (status, r) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        r.to_string().contains("#/components/schemas/ErrorResponse")
                            || status == "503",
                        "{method} {path}: {status} without the error envelope"
                    );
                }
            }
            if security_is_bearer(op) {
                for s in ["401", "403", "429"] {
                    assert!(responses.contains_key(s), "{method} {path}: {s} undeclared");
                }
            }
            assert!(
                responses.contains_key("default"),
                "{method} {path}: no error response"
            );
            assert!(
                responses
                    .keys()
                    .any(|k| k.starts_with('2') || k.starts_with('3')),
                "{method} {path}: no success response"
            );
            // Protected operations name their scope; public ones say so.
            let security = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path}: no security requirement"));
            assert_eq!(security.len(), 1, "{method} {path}");
            let scopes = security[0]
                .get("bearer")
                .map(|s| s.as_array().unwrap().clone());
            if let Some(scopes) = scopes {
                assert_eq!(scopes.len(), 1, "{method} {path}: {scopes:?}");
                assert!(
                    ["read", "write", "support", "any"].contains(&scopes[0].as_str().unwrap()),
                    "{method} {path}: {scopes:?}"
                );
            } else {
                assert!(
                    security[0].as_object().unwrap().is_empty(),
                    "{method} {path}"
                );
            }
            // Path parameters are declared.
            for segment in path.split('/').filter(|s| s.starts_with('{')) {
                let name = segment.trim_matches(|c| c == '{' || c == '}');
                assert!(
                    op["parameters"].as_array().is_some_and(|ps| ps
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path")),
                    "{method} {path}: path parameter {name} undeclared"
                );
            }
        }
    }
    let missing: Vec<_> = routes.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}"
    );
    let phantom: Vec<_> = documented.difference(&routes).collect();
    assert!(phantom.is_empty(), "documented but not routed: {phantom:?}");

    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling reference {r}"
        );
    }
    // Amounts are strings, never numbers.
    let order = &doc["components"]["schemas"]["Order"]["properties"];
    assert_eq!(
        order["amount"]["$ref"], "#/components/schemas/Amount",
        "{order}"
    );
    assert_eq!(doc["components"]["schemas"]["Amount"]["type"], "string");
    // A milestone step answers the milestone, not the order.
    let milestone = &doc["paths"]["/orders/{id}/milestones/{milestone_ref}/{op}"]["post"];
    let body = |status: &str| {
        milestone["responses"][status]["content"]["application/json"]["schema"]["$ref"].clone()
    };
    assert_eq!(body("200"), "#/components/schemas/Data_Milestone");
    assert_eq!(body("202"), "#/components/schemas/Data_MilestoneAccepted");
    // Status filters are the core's enums.
    for (path, schema) in [
        ("/topups", "TopUpStatus"),
        ("/webhooks/deliveries", "DeliveryStatus"),
        ("/orders", "OrderStatus"),
    ] {
        let status = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "status")
            .unwrap_or_else(|| panic!("{path}: no status parameter"));
        assert_eq!(
            status["schema"]["$ref"],
            format!("#/components/schemas/{schema}"),
            "{path}"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    // Checked by an independent validator when the CI provides one.
    if let Ok(python) = std::env::var("OFFERHUB_PY_OPENAPI_VALIDATOR") {
        // Both backends' tests run in this process at once: one file each.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file =
            std::env::temp_dir().join(format!("offerhub-openapi-{}-{n}.json", std::process::id()));
        std::fs::write(&file, doc.to_string()).unwrap();
        let out = std::process::Command::new(python)
            .args(["-m", "openapi_spec_validator"])
            .arg(&file)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&file);
        assert!(
            out.status.success(),
            "openapi-spec-validator: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("OFFERHUB_PY_OPENAPI_VALIDATOR unset: the independent validation is skipped");
    }
}
offerhub_testkit::both_backends!(openapi_document, document);

/// docs/API.md has a section, with an example, for every route.
#[test]
fn api_reference_covers_every_route() {
    let doc = include_str!("../../docs/API.md");
    for (method, path) in offerhub_daemon::ROUTES {
        let heading = format!("### `{} {path}`", method.to_uppercase());
        let at = doc
            .find(&heading)
            .unwrap_or_else(|| panic!("docs/API.md has no section {heading}"));
        let section = &doc[at + heading.len()..];
        let section = &section[..section.find("\n### ").unwrap_or(section.len())];
        assert!(
            section.contains("```sh") && section.contains("HTTP "),
            "{heading}: no request/response example"
        );
    }
}

/// The API's types are the daemon's (`offerhub_daemon::dto`): the core crate neither
/// depends on utoipa nor describes anything with it.
#[test]
fn the_core_crate_has_no_api_schemas() {
    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let deps = manifest
        .split_once("\n[dependencies]\n")
        .expect("the core's [dependencies]")
        .1;
    let deps = &deps[..deps.find("\n[").unwrap_or(deps.len())];
    assert!(
        !deps.lines().any(|l| l.trim_start().starts_with("utoipa")),
        "the core crate depends on utoipa: {deps}"
    );
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(!files.is_empty());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("utoipa"), "{} mentions utoipa", f.display());
    }
}

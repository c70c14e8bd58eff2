//! The documents in docs/ against the code: every event type the code emits by name is
//! in the events catalog.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// String literals passed as the first argument of `NewEvent::new(` / `order_event(`.
fn emitted(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for call in ["NewEvent::new(", "order_event("] {
        let mut rest = source;
        while let Some(at) = rest.find(call) {
            rest = &rest[at + call.len()..];
            let arg = rest.trim_start();
            if let Some(lit) = arg.strip_prefix('"')
                && let Some(end) = lit.find('"')
            {
                found.push(lit[..end].to_string());
            }
        }
    }
    found
}

#[test]
fn every_emitted_event_type_is_in_the_catalog() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = std::fs::read_to_string(root.join("docs/EVENTS.md")).unwrap();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("daemon/src"), &mut files);
    let mut types: Vec<String> = files
        .iter()
        .flat_map(|f| emitted(&std::fs::read_to_string(f).unwrap()))
        .collect();
    types.sort();
    types.dedup();
    assert!(types.len() > 20, "the scan found the emitters: {types:?}");
    for t in &types {
        assert!(
            catalog.contains(&format!("`{t}`")),
            "docs/EVENTS.md does not describe the event type {t}"
        );
        assert!(
            offerhub::events::EVENT_TYPES.contains(&t.as_str()),
            "events::EVENT_TYPES (what webhook patterns are checked against) lacks {t}"
        );
    }
    for t in offerhub::events::EVENT_TYPES {
        assert!(
            catalog.contains(&format!("`{t}`")),
            "docs/EVENTS.md does not describe {t} of events::EVENT_TYPES"
        );
    }
}

/// docs/EVENTS.md shows an example payload for every event type, each valid JSON of the
/// event shape with that `type`.
#[test]
fn every_event_type_has_an_example_payload() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = std::fs::read_to_string(root.join("docs/EVENTS.md")).unwrap();
    let examples = catalog
        .split_once("## Example payloads")
        .expect("docs/EVENTS.md has an Example payloads section")
        .1;
    let mut shown = Vec::new();
    for block in examples.split("```json").skip(1) {
        let json = block.split("```").next().unwrap();
        let v: serde_json::Value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("an example payload is not JSON ({e}):\n{json}"));
        for field in [
            "id",
            "type",
            "occurredAt",
            "resourceType",
            "resourceId",
            "data",
        ] {
            assert!(v.get(field).is_some(), "example lacks {field}: {v}");
        }
        shown.push(v["type"].as_str().unwrap().to_string());
    }
    for t in offerhub::events::EVENT_TYPES {
        assert!(
            shown.iter().any(|s| s == t),
            "docs/EVENTS.md has no example payload of {t}"
        );
    }
}

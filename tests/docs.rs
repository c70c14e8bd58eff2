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

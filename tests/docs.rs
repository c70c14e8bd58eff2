//! The documents in docs/ against the code: every event type the code emits by name is
//! in the events catalog, and every document a comment cites is in the repository, down to
//! the section it names.

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

/// Where the Rust sources live that may cite documents (each directory that exists).
const SOURCE_DIRS: &[&str] = &[
    "src",
    "daemon/src",
    "cli/src",
    "sandbox/src",
    "testkit/src",
    "tests",
    "daemon/tests",
    "cli/tests",
    "sandbox/tests",
    "benches",
    "daemon/benches",
    "sandbox/benches",
];

/// Every `.rs` file of [`SOURCE_DIRS`] but this one (which spells the forbidden citations
/// out), with its path relative to the repository.
fn cited_sources(root: &Path) -> Vec<(String, String)> {
    for dir in ["src", "daemon/src", "cli/src", "sandbox/src", "testkit/src"] {
        assert!(root.join(dir).is_dir(), "{dir} exists");
    }
    let mut files = Vec::new();
    for dir in SOURCE_DIRS {
        if root.join(dir).is_dir() {
            rust_files(&root.join(dir), &mut files);
        }
    }
    let mut out: Vec<(String, String)> = files
        .iter()
        .map(|f| {
            let rel = f
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(f).unwrap())
        })
        .filter(|(rel, _)| rel != "tests/docs.rs")
        .collect();
    out.sort();
    out
}

/// Each run of consecutive full-line comments (`//`, `///`, `//!`) as one line of text,
/// with the number of its first line.
fn comment_runs(source: &str) -> Vec<(usize, String)> {
    let mut runs = Vec::new();
    let mut run: Option<(usize, String)> = None;
    for (i, line) in source.lines().enumerate() {
        if let Some(rest) = line.trim_start().strip_prefix("//") {
            let text = rest.trim_start_matches(['/', '!']).trim();
            match &mut run {
                Some((_, joined)) => {
                    joined.push(' ');
                    joined.push_str(text);
                }
                None => run = Some((i + 1, text.to_string())),
            }
        } else if let Some(done) = run.take() {
            runs.push(done);
        }
    }
    runs.extend(run);
    runs
}

/// The `## ` headings of a Markdown document, each with its `### ` headings (code blocks
/// skipped).
fn headings(markdown: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if let Some(h) = line.strip_prefix("## ") {
            out.push((h.trim().to_string(), Vec::new()));
        } else if let Some(h) = line.strip_prefix("### ")
            && let Some((_, subs)) = out.last_mut()
        {
            subs.push(h.trim().to_string());
        }
    }
    out
}

/// The longest of `names` that `text` starts with, ignoring ASCII case and ending at a
/// word boundary.
fn leading<'a>(text: &str, names: impl IntoIterator<Item = &'a String>) -> Option<&'a String> {
    names
        .into_iter()
        .filter(|n| {
            text.is_char_boundary(n.len())
                && text[..n.len()].eq_ignore_ascii_case(n)
                && !text[n.len()..].starts_with(|c: char| c.is_alphanumeric())
        })
        .max_by_key(|n| n.len())
}

/// The `docs/NAME.md` paths in `text`, each with the text that follows it.
fn doc_paths(text: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("docs/") {
        if text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '/' || c == '_') {
            continue;
        }
        let rest = &text[at + "docs/".len()..];
        let name = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(rest.len());
        if name > 0 && rest[name..].starts_with(".md") {
            let end = at + "docs/".len() + name + ".md".len();
            out.push((&text[at..end], &text[end..]));
        }
    }
    out
}

/// Comments cite documents of this repository only: not the design notes, research notes
/// and seeds of the project workspace, which are not shipped (issue #18). Provider facts
/// are in docs/PROVIDERS.md, the design in docs/ARCHITECTURE.md, each cited by section
/// name; a bare `§` number says nothing once its document is gone.
#[test]
fn sources_cite_no_document_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let forbidden = [
        concat!("DESIGN ", "§"),
        concat!("DESIGN", ".md"),
        concat!("research", "/"),
        concat!("research ", "§"),
        concat!("seed ", "0"),
        concat!("seeds", "/"),
        concat!("shared/", "research"),
    ];
    let mut found = Vec::new();
    let sources = cited_sources(root);
    assert!(
        sources.len() > 50,
        "the scan found the sources: {}",
        sources.len()
    );
    for (rel, source) in &sources {
        for (n, line) in source.lines().enumerate() {
            for f in forbidden {
                if line.contains(f) {
                    found.push(format!("{rel}:{}: cites `{f}`: {}", n + 1, line.trim()));
                }
            }
            for (at, _) in line.match_indices('§') {
                let before = line[..at].trim_end();
                let after = &line[at + '§'.len_utf8()..];
                // The text before `§` must end with a document path (`docs/X.md`).
                let cites_doc = before.rsplit_once('.').is_some_and(|(_, ext)| ext == "md");
                if !cites_doc || after.starts_with(|c: char| c.is_alphabetic()) {
                    found.push(format!(
                        "{rel}:{}: `§` without an in-repo document: {}",
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "cite docs/PROVIDERS.md (provider facts) or docs/ARCHITECTURE.md (design) by section \
         name instead:\n{}",
        found.join("\n")
    );
}

/// Every `docs/….md` a source names exists, and a comment's `docs/X.md, Section` or
/// `docs/X.md, Section: subsection` names a `## ` heading of X (and a `### ` heading under
/// it) — always for PROVIDERS.md and ARCHITECTURE.md, which are cited by section, and for
/// the others when a capital follows the comma; `docs/X.md §N` names a numbered `## N.`
/// heading.
#[test]
fn cited_documents_and_sections_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    let mut sections = 0;
    for (rel, source) in cited_sources(root) {
        for (path, _) in doc_paths(&source) {
            if !root.join(path).is_file() {
                problems.push(format!("{rel}: names {path}, which does not exist"));
            }
        }
        for (line, text) in comment_runs(&source) {
            for (path, after) in doc_paths(&text) {
                let Ok(doc) = std::fs::read_to_string(root.join(path)) else {
                    continue;
                };
                let heads = headings(&doc);
                let by_section = matches!(path, "docs/PROVIDERS.md" | "docs/ARCHITECTURE.md");
                if let Some(cited) = after.strip_prefix(", ")
                    && (by_section || cited.starts_with(|c: char| c.is_uppercase()))
                {
                    sections += 1;
                    let Some(head) = leading(cited, heads.iter().map(|(h, _)| h)) else {
                        problems.push(format!(
                            "{rel}:{line}: {path} has no `## ` heading that starts \"{}\"",
                            cited.chars().take(40).collect::<String>()
                        ));
                        continue;
                    };
                    if let Some(sub) = cited[head.len()..].strip_prefix(':') {
                        let sub = sub.trim_start();
                        let subs = &heads.iter().find(|(h, _)| h == head).unwrap().1;
                        if leading(sub, subs).is_none() {
                            problems.push(format!(
                                "{rel}:{line}: {path}, {head} has no `### ` heading that \
                                 starts \"{}\"",
                                sub.chars().take(40).collect::<String>()
                            ));
                        }
                    }
                } else if let Some(number) = after.strip_prefix(" §") {
                    let n: String = number.chars().take_while(char::is_ascii_digit).collect();
                    if !heads.iter().any(|(h, _)| h.starts_with(&format!("{n}. "))) {
                        problems.push(format!("{rel}:{line}: {path} has no section {n}"));
                    }
                }
            }
        }
    }
    assert!(
        sections > 60,
        "the scan found the section citations: {sections}"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The citation checks read what they should: a wrapped citation is one run, headings
/// are matched whole and by prefix, a subsection is looked up under its section.
#[test]
fn the_citation_scanner_reads_wrapped_comments() {
    let runs = comment_runs(
        "//! Intro (docs/PROVIDERS.md, Trustless\n//! Work: rate limit).\nfn f() {}\n/// x\n",
    );
    assert_eq!(runs.len(), 2);
    assert_eq!(
        runs[0].1,
        "Intro (docs/PROVIDERS.md, Trustless Work: rate limit)."
    );
    let paths = doc_paths(&runs[0].1);
    assert_eq!(
        paths,
        vec![("docs/PROVIDERS.md", ", Trustless Work: rate limit).")]
    );
    let heads = headings("# T\n## Trustless Work\n### Rate limit\n```\n## not\n```\n## Money: x\n");
    assert_eq!(heads.len(), 2);
    let names: Vec<String> = heads.iter().map(|(h, _)| h.clone()).collect();
    assert_eq!(leading("trustless work: rate", &names), Some(&names[0]));
    assert_eq!(leading("Money: x)", &names), Some(&names[1]));
    assert_eq!(leading("Trustless Workers", &names), None);
    assert_eq!(leading("rate limit)", &heads[0].1), Some(&heads[0].1[0]));
    assert!(doc_paths("see sdocs/X.md and docs/.md").is_empty());
}

//! `deploy/` against the code (issue #21): the Prometheus alert rules and the Grafana
//! dashboard name only series the daemon exports, every alert is explained in
//! docs/OPERATIONS.md, and every exported series is documented there. `promtool check
//! rules` runs too when promtool is installed (CI also runs it from `.ci/run`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use offerhub::metrics::{CATALOG, Kind};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every `offerhub_…` identifier in `text`.
fn series(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("offerhub_") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// The catalog entry a series name belongs to (histograms: `_bucket`, `_sum`, `_count`).
fn exported(name: &str) -> bool {
    CATALOG.iter().any(|m| {
        m.name == name
            || (m.kind == Kind::Histogram
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(m.name)))
    })
}

fn alert_rules() -> Vec<serde_yaml::Value> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/prometheus/alerts.yml")).expect("alerts.yml is YAML");
    let groups = doc["groups"].as_sequence().expect("groups");
    let rules: Vec<serde_yaml::Value> = groups
        .iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .collect();
    assert!(rules.len() >= 6, "alert rules: {}", rules.len());
    rules
}

#[test]
fn alerts_name_exported_series_and_are_documented() {
    let operations = read("docs/OPERATIONS.md");
    let mut names = BTreeSet::new();
    for rule in alert_rules() {
        let alert = rule["alert"]
            .as_str()
            .expect("an alerting rule")
            .to_string();
        let expr = rule["expr"].as_str().expect("expr");
        let used = series(expr);
        assert!(!used.is_empty(), "{alert}: names no offerhub_ series");
        for s in used {
            assert!(exported(&s), "{alert}: {s} is not exported by the daemon");
        }
        assert!(
            rule["labels"]["severity"].as_str().is_some(),
            "{alert}: labels.severity"
        );
        for k in ["summary", "description"] {
            assert!(
                rule["annotations"][k].as_str().is_some(),
                "{alert}: annotations.{k}"
            );
        }
        assert!(
            operations.contains(&format!("`{alert}`")),
            "docs/OPERATIONS.md does not explain {alert}"
        );
        assert!(names.insert(alert.clone()), "duplicate alert {alert}");
    }
    for required in [
        "offerhub_sagas_needs_attention",
        "offerhub_webhook_endpoints",
        "offerhub_deposit_credit_lag_seconds",
        "offerhub_reconcile_discrepancies",
        "offerhub_provider_requests_total",
        "offerhub_event_sequencer_lag_seconds",
    ] {
        assert!(
            alert_rules()
                .iter()
                .any(|r| series(r["expr"].as_str().unwrap_or_default())
                    .iter()
                    .any(|s| s == required || s.starts_with(&format!("{required}_")))),
            "no alert on {required}"
        );
    }
}

#[test]
fn dashboard_names_exported_series() {
    let text = read("deploy/grafana/offerhub.json");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dash["uid"], "offerhub");
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().expect("a PromQL expr").to_string());
        }
    }
    assert!(exprs.len() > 20, "dashboard queries: {}", exprs.len());
    let mut used = BTreeSet::new();
    for e in &exprs {
        for s in series(e) {
            assert!(
                exported(&s),
                "the dashboard queries {s}, which is not exported"
            );
            used.insert(s);
        }
    }
    // Everything exported is on the dashboard.
    for m in CATALOG {
        assert!(
            used.iter()
                .any(|s| s == m.name || s.starts_with(&format!("{}_", m.name))),
            "the dashboard shows nothing of {}",
            m.name
        );
    }
}

#[test]
fn every_exported_series_is_documented() {
    let operations = read("docs/OPERATIONS.md");
    for m in CATALOG {
        assert!(
            operations.contains(&format!("`{}`", m.name)),
            "docs/OPERATIONS.md does not describe {}",
            m.name
        );
    }
}

/// `promtool check rules` and `promtool test rules` (the unit tests in
/// `deploy/prometheus/alerts_test.yml`), when promtool is on the PATH.
#[test]
fn promtool_accepts_the_rules() {
    for (command, file) in [
        ("check", "deploy/prometheus/alerts.yml"),
        ("test", "deploy/prometheus/alerts_test.yml"),
    ] {
        let Ok(out) = std::process::Command::new("promtool")
            .args([command, "rules"])
            .arg(root().join(file))
            .output()
        else {
            eprintln!("promtool is not installed: skipped (the other tests still check the rules)");
            return;
        };
        assert!(
            out.status.success(),
            "promtool {command} rules {file}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

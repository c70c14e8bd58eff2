//! Several daemons = one system (issue #15): PostgreSQL, one standalone sandbox (Horizon
//! and Trustless Work), two `offerhub serve` processes on the same database, and several
//! concurrent runs of the quickstart's `examples/marketplace-flow.sh all` (half against
//! each daemon: release, refund, dispute split, cancel, withdrawals; four in CI,
//! `OFFERHUB_MULTI_DAEMON_RUNS` to change — eight take about as many minutes, since
//! both daemons share Trustless Work's 50 requests a minute, which the sandbox
//! enforces per API key). Then:
//! every run exits 0; `offerhub reconcile`, `ledger verify` and `audit verify` are
//! clean; every escrow contract function was invoked once; and both daemons'
//! `/events/history` list the same event ids in the same order.
//!
//! PostgreSQL only (SQLite is for one daemon).

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const MASTER: &str = "ohk_master_multi_daemon_0123456789abcdef0123456789";
const WALLET_KEY: &str = "7d3f0a1c2b4e5f60718293a4b5c6d7e8f90112233445566778899aabbccddeef";

struct Serve {
    child: Child,
    dir: PathBuf,
    env: Vec<(&'static str, String)>,
    api: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Serve {
    async fn start(name: &str, database_url: &str, horizon: &str) -> Serve {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "offerhub-multi-{}-{name}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut env = vec![
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("HOME", dir.display().to_string()),
            ("DATABASE_URL", database_url.to_string()),
            ("PORT", port.to_string()),
            ("RUST_LOG", "warn".to_string()),
            ("STELLAR_HORIZON_URL", horizon.to_string()),
            ("OFFERHUB_MASTER_KEY", MASTER.to_string()),
            ("WALLET_ENCRYPTION_KEY", WALLET_KEY.to_string()),
        ];
        if let Ok(v) = std::env::var("TMPDIR") {
            env.push(("TMPDIR", v));
        }
        let log = std::fs::File::create(dir.join("serve.log")).unwrap();
        let child = Command::new(offerhub_testkit::offerhub_binary())
            .arg("serve")
            .current_dir(&dir)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn offerhub serve");
        let mut s = Serve {
            child,
            dir,
            env,
            api: format!("http://127.0.0.1:{port}/api/v1"),
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(format!("{}/health", s.api)).send().await
                && r.status() == 200
            {
                break;
            }
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("offerhub serve exited with {status}:\n{}", s.log());
            }
            assert!(Instant::now() < deadline, "not healthy:\n{}", s.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    fn offerhub(&self, args: &[&str]) -> Output {
        Command::new(offerhub_testkit::offerhub_binary())
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("run offerhub")
    }

    /// Every event id of `/events/history`, oldest first.
    async fn history(&self) -> Vec<String> {
        let http = reqwest::Client::new();
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/events/history?limit=100", self.api);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page: Value = http
                .get(url)
                .bearer_auth(MASTER)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for e in page["data"].as_array().expect("a page of events") {
                ids.push(e["id"].as_str().unwrap().to_string());
            }
            let pagination = &page["meta"]["pagination"];
            match pagination["nextCursor"].as_str() {
                Some(c) if pagination["hasMore"] == true => cursor = Some(c.to_string()),
                _ => return ids,
            }
        }
    }
}

fn ok(out: &Output, what: &str) -> String {
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what} exited with {}:\n{said}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    said
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_daemons_work_as_one() {
    let database_url =
        offerhub_testkit::fresh_database_url(offerhub_testkit::Backend::Postgres).await;
    let sandbox = offerhub_sandbox::Sandbox::new(offerhub_sandbox::SandboxOptions {
        passphrase: None,
        state_file: None,
    })
    .unwrap();
    let addr = offerhub_sandbox::start(sandbox, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let horizon = format!("http://{addr}");
    let a = Serve::start("a", &database_url, &horizon).await;
    let b = Serve::start("b", &database_url, &horizon).await;

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/marketplace-flow.sh");
    let count: usize = std::env::var("OFFERHUB_MULTI_DAEMON_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut runs = Vec::new();
    for i in 0..count {
        let d = if i % 2 == 0 { &a } else { &b };
        let (api, script) = (d.api.clone(), script.clone());
        runs.push(tokio::task::spawn_blocking(move || {
            let out = Command::new("bash")
                .arg(&script)
                .arg("all")
                .env("OFFERHUB_API_URL", &api)
                .env("OFFERHUB_API_KEY", MASTER)
                .output()
                .expect("run examples/marketplace-flow.sh (needs bash, curl, jq)");
            (i, out)
        }));
    }
    for r in runs {
        let (i, out) = r.await.unwrap();
        assert!(
            out.status.success(),
            "run {i} failed ({}):\n{}\n{}\n--- daemon a ---\n{}\n--- daemon b ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            a.log(),
            b.log()
        );
    }

    // Every escrow contract function was invoked once (deploys all call the factory's
    // `tw_new_*`: one per order).
    let invocations: Vec<Value> = reqwest::get(format!("{horizon}/_sandbox/invocations"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut seen = std::collections::HashMap::new();
    let mut deploys = 0;
    for inv in invocations.iter().filter(|i| i["successful"] == true) {
        let function = inv["function"].as_str().unwrap_or_default();
        if function.starts_with("tw_new_") {
            deploys += 1;
            continue;
        }
        *seen
            .entry((inv["contract"].to_string(), function.to_string()))
            .or_insert(0) += 1;
    }
    // Release, refund and split deploy a contract each; cancel does not.
    assert_eq!(deploys, count * 3, "deploys");
    assert!(seen.len() >= count * 3, "too few contract calls: {seen:?}");
    for ((contract, function), n) in &seen {
        assert_eq!(*n, 1, "{function} on {contract} invoked {n} times");
    }

    // Both daemons list the same events in the same order.
    let on_a = a.history().await;
    let on_b = b.history().await;
    assert!(on_a.len() > 100, "{} events", on_a.len());
    assert_eq!(on_a, on_b);

    // Invariants.
    let said = ok(&a.offerhub(&["reconcile"]), "offerhub reconcile");
    assert!(!said.is_empty());
    ok(&a.offerhub(&["ledger", "verify"]), "offerhub ledger verify");
    let said = ok(&b.offerhub(&["audit", "verify"]), "offerhub audit verify");
    assert!(said.contains("intact"), "{said}");
}

//! Day 2 with the real binary (docs/OPERATIONS.md §9): an automatic release scheduled
//! before a crash happens after the restart; `offerhub reconcile --last`; and the backup
//! and restore drill:
//! a daemon on the embedded sandbox does business (a deposit, an order funded in escrow),
//! its database is backed up while it runs — SQLite with `offerhub db backup`,
//! PostgreSQL with `pg_dump` — then restored into a fresh data directory / a fresh
//! database (with the separately kept `secrets.env` and the chain, i.e. the sandbox
//! state); a daemon started on the copy sees the same balances, and `offerhub ledger
//! verify`, `offerhub audit verify` and `offerhub reconcile` are clean against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_offerhub");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "offerhub-backup-{tag}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cmd(dir: &Path, args: &[&str], database_url: Option<&str>) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("PORT")
        .env_remove("OFFERHUB_CONFIG")
        .env_remove("OFFERHUB_LOG_FORMAT")
        .env_remove("WALLET_ENCRYPTION_KEY")
        .env_remove("OFFERHUB_MASTER_KEY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    if let Some(u) = database_url {
        c.env("DATABASE_URL", u);
    }
    c
}

fn run(dir: &Path, args: &[&str], database_url: Option<&str>) -> (Option<i32>, String) {
    let o = cmd(dir, args, database_url).output().unwrap();
    (
        o.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(dir: &Path, database_url: Option<&str>) -> (Daemon, String) {
    let port = free_port();
    let log = dir.join("serve.log");
    let child = cmd(dir, &["serve", "--port", &port.to_string()], database_url)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/api/v1/health")).await
            && r.status() == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "daemon did not become healthy: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (daemon, format!("http://127.0.0.1:{port}/api/v1"))
}

fn master_key(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("data/secrets.env"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("OFFERHUB_MASTER_KEY="))
        .expect("a generated master key")
        .trim()
        .trim_matches('"')
        .to_string()
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "POST" => self.http.post(&url),
            _ => self.http.get(&url),
        }
        .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v["data"].clone()
    }

    async fn wait<F: Fn(&Value) -> bool>(&self, path: &str, ok: F) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.call("GET", path, None).await;
            if ok(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{path}: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn api(dir: &Path, base: &str) -> Api {
    let http = reqwest::Client::new();
    let master = master_key(dir);
    let r: Value = http
        .post(format!("{base}/auth/api-keys"))
        .bearer_auth(&master)
        .json(&json!({ "name": "drill", "scopes": ["read", "write", "support"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Api {
        http,
        base: base.to_string(),
        token: r["data"]["key"].as_str().unwrap().to_string(),
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
}

async fn drill(postgres: bool) {
    let dir = temp_dir(if postgres { "pg" } else { "sqlite" });
    let (live, restored, backup) = (dir.join("live"), dir.join("restored"), dir.join("backup"));
    for d in [&live, &restored, &backup] {
        std::fs::create_dir_all(d).unwrap();
    }
    let live_url = if postgres {
        Some(offerhub_testkit::fresh_database_url(offerhub_testkit::Backend::Postgres).await)
    } else {
        None
    };
    let (daemon, base) = serve(&live, live_url.as_deref()).await;
    let a = api(&live, &base).await;
    // Business: a deposit, and an order reserved and funded in escrow.
    let mut users = Vec::new();
    for ext in ["buyer", "seller"] {
        let u = a
            .call("POST", "/users", Some(json!({ "externalUserId": ext })))
            .await;
        let id = u["id"].as_str().unwrap().to_string();
        let w = a
            .wait(&format!("/users/{id}/wallet"), |w| w["status"] == "ACTIVE")
            .await;
        users.push((id, w["publicKey"].as_str().unwrap().to_string()));
    }
    let sandbox = std::fs::read_to_string(live.join("data/sandbox-url")).unwrap();
    reqwest::Client::new()
        .post(format!("{}/_sandbox/fund", sandbox.trim()))
        .json(&json!({ "address": users[0].1, "amount": "250", "asset": "USDC" }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    a.wait(&format!("/users/{}/balance", users[0].0), |b| {
        b["available"] == "250.00"
    })
    .await;
    let order = a
        .call(
            "POST",
            "/orders",
            Some(json!({ "buyerId": users[0].0, "sellerId": users[1].0, "amount": "100", "title": "Drill" })),
        )
        .await;
    let oid = order["id"].as_str().unwrap().to_string();
    a.call("POST", &format!("/orders/{oid}/reserve"), None)
        .await;
    a.call("POST", &format!("/orders/{oid}/escrow"), None).await;
    let funded = a
        .call("POST", &format!("/orders/{oid}/escrow/fund"), None)
        .await;
    assert_eq!(funded["status"], "IN_PROGRESS", "{funded}");

    // The backup, taken while the daemon runs; the key file is kept separately.
    if let Some(url) = &live_url {
        let pg_dump = offerhub_testkit::pg_tool("pg_dump").expect("pg_dump next to initdb");
        let out = Command::new(pg_dump)
            .args(["--format=custom", "--file"])
            .arg(backup.join("offerhub.dump"))
            .arg(url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        let (code, out) = run(&live, &["db", "backup", "../backup/offerhub.db"], None);
        assert_eq!(code, Some(0), "{out}");
        let (code, out) = run(&live, &["db", "backup", "../backup/offerhub.db"], None);
        assert_eq!(
            code,
            Some(2),
            "an existing file is never overwritten: {out}"
        );
    }
    copy(&live.join("data/secrets.env"), &backup.join("secrets.env"));
    drop(daemon);

    // The restore: a fresh data directory (and database), the key file, and the chain
    // as it is now (the sandbox state stands in for the network, never restored).
    copy(
        &backup.join("secrets.env"),
        &restored.join("data/secrets.env"),
    );
    copy(
        &live.join("data/sandbox-state.json"),
        &restored.join("data/sandbox-state.json"),
    );
    let restored_url = if postgres {
        let url = offerhub_testkit::fresh_database_url(offerhub_testkit::Backend::Postgres).await;
        let pg_restore =
            offerhub_testkit::pg_tool("pg_restore").expect("pg_restore next to initdb");
        let out = Command::new(pg_restore)
            .args(["--no-owner", "--exit-on-error", "--dbname"])
            .arg(&url)
            .arg(backup.join("offerhub.dump"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_restore: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(url)
    } else {
        copy(
            &backup.join("offerhub.db"),
            &restored.join("data/offerhub.db"),
        );
        None
    };
    let (daemon, base) = serve(&restored, restored_url.as_deref()).await;
    let r = api(&restored, &base).await;
    let buyer = r
        .call("GET", &format!("/users/{}/balance", users[0].0), None)
        .await;
    assert_eq!(buyer["available"], "150.00", "{buyer}");
    let o = r.call("GET", &format!("/orders/{oid}"), None).await;
    assert_eq!(o["status"], "IN_PROGRESS");
    assert_eq!(o["escrow"]["status"], "FUNDED");
    for check in [
        &["ledger", "verify"][..],
        &["audit", "verify"][..],
        &["reconcile"][..],
    ] {
        let (code, out) = run(&restored, check, restored_url.as_deref());
        assert_eq!(code, Some(0), "offerhub {}: {out}", check.join(" "));
    }
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backup_restores_clean() {
    drill(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dump_restores_clean() {
    drill(true).await;
}

/// `offerhub reconcile --last` prints the daemon's last scheduled run without touching
/// the network: exit 3 before any run, then 0 with the stored run (JSON and table), and
/// 1 once a run found a discrepancy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_last_prints_the_scheduled_run() {
    let dir = temp_dir("last");
    let (code, out) = run(&dir, &["db", "migrate"], None);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(&dir, &["reconcile", "--last"], None);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("OFFERHUB_RECONCILE_EVERY"), "{out}");
    let port = free_port();
    let log = dir.join("serve.log");
    let child = cmd(&dir, &["serve", "--port", &port.to_string()], None)
        .env("OFFERHUB_RECONCILE_EVERY", "PT1S")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    // The platform wallet is set up in the background: a first run may precede it (its
    // report then has no platform check); wait for a run that checked it.
    let stored = loop {
        let (code, out) = run(&dir, &["reconcile", "--last", "--output", "json"], None);
        let checked_platform =
            serde_json::from_str::<Value>(&out).is_ok_and(|v| !v["report"]["platform"].is_null());
        if code == Some(0) && checked_platform {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled run stored: {out}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let v: Value = serde_json::from_str(&stored).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("rec_"), "{v}");
    assert_eq!(v["scope"], "FULL");
    assert_eq!(v["discrepancies"], 0);
    assert_eq!(v["report"]["platform"]["status"], "ok", "{v}");
    let (code, out) = run(&dir, &["reconcile", "--last"], None);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("0 discrepancies"), "{out}");
    // USDC reaches the platform wallet from outside: the next run reports it, exit 1.
    let sandbox = std::fs::read_to_string(dir.join("data/sandbox-url")).unwrap();
    let platform = v["report"]["platform"]["publicKey"].as_str().unwrap();
    reqwest::Client::new()
        .post(format!("{}/_sandbox/fund", sandbox.trim()))
        .json(&json!({ "address": platform, "amount": "2", "asset": "USDC" }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out) = run(&dir, &["reconcile", "--last"], None);
        if code == Some(1) {
            assert!(
                out.contains("1 discrepancies") && out.contains("mismatch"),
                "{out}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{out}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An order's inspection window survives a crash: the daemon is killed (SIGKILL) right
/// after the clock started, the window expires while it is down, and the restarted
/// daemon releases the order — once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_release_survives_a_restart() {
    let dir = temp_dir("restart");
    let (daemon, base) = serve(&dir, None).await;
    let a = api(&dir, &base).await;
    let mut users = Vec::new();
    for ext in ["buyer", "seller"] {
        let u = a
            .call("POST", "/users", Some(json!({ "externalUserId": ext })))
            .await;
        let id = u["id"].as_str().unwrap().to_string();
        let w = a
            .wait(&format!("/users/{id}/wallet"), |w| w["status"] == "ACTIVE")
            .await;
        users.push((id, w["publicKey"].as_str().unwrap().to_string()));
    }
    let sandbox = std::fs::read_to_string(dir.join("data/sandbox-url")).unwrap();
    reqwest::Client::new()
        .post(format!("{}/_sandbox/fund", sandbox.trim()))
        .json(&json!({ "address": users[0].1, "amount": "100", "asset": "USDC" }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    a.wait(&format!("/users/{}/balance", users[0].0), |b| {
        b["available"] == "100.00"
    })
    .await;
    let order = a
        .call(
            "POST",
            "/orders",
            Some(json!({ "buyerId": users[0].0, "sellerId": users[1].0, "amount": "100", "title": "Restart", "autoReleaseAfter": "PT3S" })),
        )
        .await;
    let oid = order["id"].as_str().unwrap().to_string();
    a.call("POST", &format!("/orders/{oid}/reserve"), None)
        .await;
    a.call("POST", &format!("/orders/{oid}/escrow"), None).await;
    let funded = a
        .call("POST", &format!("/orders/{oid}/escrow/fund"), None)
        .await;
    assert_eq!(funded["autoReleaseStatus"], "SCHEDULED", "{funded}");
    drop(daemon); // SIGKILL before the window expires
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (daemon, base) = serve(&dir, None).await;
    let b = Api {
        http: reqwest::Client::new(),
        base,
        token: a.token.clone(),
    };
    let done = b
        .wait(&format!("/orders/{oid}"), |o| o["status"] == "CLOSED")
        .await;
    assert_eq!(done["autoReleaseStatus"], "RELEASED", "{done}");
    let seller = b
        .call("GET", &format!("/users/{}/balance", users[1].0), None)
        .await;
    assert_eq!(
        seller["available"], "99.70",
        "100 − 0.3 % Trustless Work: {seller}"
    );
    let invocations: Value = reqwest::get(format!(
        "{}/_sandbox/invocations",
        std::fs::read_to_string(dir.join("data/sandbox-url"))
            .unwrap()
            .trim()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let releases = invocations
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["function"] == "release_funds")
        .count();
    assert_eq!(releases, 1);
    for check in [&["ledger", "verify"][..], &["reconcile"][..]] {
        let (code, out) = run(&dir, check, None);
        assert_eq!(code, Some(0), "offerhub {}: {out}", check.join(" "));
    }
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

//! The real `offerhub serve`, killed with SIGKILL between every two on-chain steps of an
//! escrow's life (deploy, fund, complete, approve, release) and restarted: each saga
//! resumes and completes, and every contract call reaches the chain exactly once —
//! SQLite and PostgreSQL. The sandbox runs as its own process so the chain survives.

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use offerhub_testkit::both_backends;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_offerhub");
const MASTER: &str = "ohk_master_test_0123456789abcdef0123456789abcdef";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill(); // SIGKILL
        let _ = self.0.wait();
    }
}

struct Setup {
    dir: std::path::PathBuf,
    port: u16,
    sandbox: String,
    db: String,
}

impl Setup {
    fn env(&self, c: &mut Command) {
        c.current_dir(&self.dir)
            .env("DATABASE_URL", &self.db)
            .env("PORT", self.port.to_string())
            .env("STELLAR_HORIZON_URL", &self.sandbox)
            .env("OFFERHUB_MASTER_KEY", MASTER)
            .env("WALLET_ENCRYPTION_KEY", "cd".repeat(32))
            .env("TRUSTLESS_PLATFORM_FEE", "5")
            .env("OFFERHUB_SAGA_LEASE_SECS", "2");
    }

    /// Starts the daemon; with fail points (`FAILPOINTS`, the `fail` crate's syntax; the
    /// binary is built with the `failpoints` feature under `cargo test`) it stops at the
    /// one that fires and reports it on the returned channel.
    async fn serve(&self, failpoint: Option<&str>) -> (Proc, mpsc::Receiver<String>) {
        let mut c = Command::new(BIN);
        c.arg("serve").stdout(Stdio::null()).stderr(Stdio::piped());
        self.env(&mut c);
        match failpoint {
            Some(f) => c.env("FAILPOINTS", f),
            None => c.env_remove("FAILPOINTS"),
        };
        let mut child = c.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("FAILPOINT") {
                    let _ = tx.send(line);
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) =
                reqwest::get(format!("http://127.0.0.1:{}/api/v1/health", self.port)).await
                && r.status() == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "daemon did not become healthy");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (Proc(child), rx)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let c = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let url = format!("http://127.0.0.1:{}/api/v1{path}", self.port);
        let mut req = c.request(method.parse().unwrap(), url).bearer_auth(MASTER);
        if let Some(b) = body {
            req = req.json(&b);
        }
        match req.send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    /// Fires a request that the daemon will not answer (it stops at a failpoint).
    fn fire(&self, path: &str) {
        let url = format!("http://127.0.0.1:{}/api/v1{path}", self.port);
        tokio::spawn(async move {
            let _ = reqwest::Client::new()
                .post(url)
                .bearer_auth(MASTER)
                .json(&json!({}))
                .send()
                .await;
        });
    }

    async fn until(&self, what: &str, f: impl AsyncFn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !f().await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn order_status(&self, id: &str) -> Value {
        self.call("GET", &format!("/orders/{id}"), None).await["data"]["status"].clone()
    }
}

fn reached(rx: &mpsc::Receiver<String>, what: &str) {
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            panic!(
                "failpoint {what} not reached (is the binary built with the `failpoints` feature?)"
            )
        });
    assert!(line.contains(what), "{line}");
}

async fn sigkill_between_steps(db: String) {
    let dir = std::env::temp_dir().join(format!(
        "offerhub-crash-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let sb_port = free_port();
    let _sandbox = Proc(
        Command::new(BIN)
            .args(["sandbox", "--port", &sb_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let s = Setup {
        dir: dir.clone(),
        port: free_port(),
        sandbox: format!("http://127.0.0.1:{sb_port}"),
        db,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(&s.sandbox).await.is_err() {
        assert!(Instant::now() < deadline, "sandbox did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Run 1: parties, deposit, order; killed right after the deploy was submitted.
    let (daemon, rx) = s.serve(Some("after_submit=1*return")).await;
    let mut ids = Vec::new();
    for ext in ["buyer", "seller"] {
        let u = s
            .call("POST", "/users", Some(json!({ "externalUserId": ext })))
            .await;
        ids.push(u["data"]["id"].as_str().unwrap().to_string());
    }
    let (buyer, seller) = (ids[0].clone(), ids[1].clone());
    let mut buyer_address = String::new();
    for u in [&buyer, &seller] {
        let path = format!("/users/{u}/wallet");
        s.until("an active wallet", async || {
            s.call("GET", &path, None).await["data"]["status"] == "ACTIVE"
        })
        .await;
        if *u == buyer {
            buyer_address = s.call("GET", &path, None).await["data"]["publicKey"]
                .as_str()
                .unwrap()
                .to_string();
        }
    }
    reqwest::Client::new()
        .post(format!("{}/_sandbox/fund", s.sandbox))
        .json(&json!({ "address": buyer_address, "amount": "100", "asset": "USDC" }))
        .send()
        .await
        .unwrap();
    let bal = format!("/users/{buyer}/balance");
    s.until("the deposit", async || {
        s.call("GET", &bal, None).await["data"]["available"] == "100.00"
    })
    .await;
    let o = s
        .call("POST", "/orders", Some(json!({ "buyerId": buyer, "sellerId": seller, "amount": "50", "title": "Crash test" })))
        .await;
    let id = o["data"]["id"].as_str().unwrap().to_string();
    s.call("POST", &format!("/orders/{id}/reserve"), Some(json!({})))
        .await;
    s.fire(&format!("/orders/{id}/escrow"));
    reached(&rx, "after_submit");
    drop(daemon);

    // Run 2: the deploy saga resumes; killed after the fund envelope is stored.
    let (daemon, rx) = s.serve(Some("after_store=1*return")).await;
    s.until("ESCROW_FUNDING", async || {
        s.order_status(&id).await == "ESCROW_FUNDING"
    })
    .await;
    s.fire(&format!("/orders/{id}/escrow/fund"));
    reached(&rx, "after_store");
    drop(daemon);

    // Run 3: the fund resumes (submit #1); the release's first step (submit #2) stops.
    let (daemon, rx) = s.serve(Some("after_submit=1*off->1*return")).await;
    s.until("IN_PROGRESS", async || {
        s.order_status(&id).await == "IN_PROGRESS"
    })
    .await;
    s.fire(&format!("/orders/{id}/resolution/release"));
    reached(&rx, "after_submit");
    drop(daemon);

    // Run 4: step 1 recorded on resume; approve stored (#1) and sent; release stored (#2).
    let (daemon, rx) = s.serve(Some("after_store=1*off->1*return")).await;
    reached(&rx, "after_store");
    drop(daemon);

    // Run 5: no failpoint: the release lands, the order closes.
    let (daemon, _rx) = s.serve(None).await;
    s.until("CLOSED", async || s.order_status(&id).await == "CLOSED")
        .await;
    let seller_balance = s
        .call("GET", &format!("/users/{seller}/balance"), None)
        .await;
    assert_eq!(
        seller_balance["data"]["available"], "47.35",
        "50 − 0.3 % − 5 %"
    );

    // Every contract call exactly once, all successful.
    let calls: Value = reqwest::get(format!("{}/_sandbox/invocations", s.sandbox))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = calls
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["function"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "tw_new_single_release_escrow",
            "fund_escrow",
            "change_milestone_status",
            "approve_milestone",
            "release_funds"
        ],
        "{calls}"
    );
    assert!(
        calls
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["successful"] == true)
    );
    drop(daemon);

    for args in [
        &["reconcile"][..],
        &["ledger", "verify"],
        &["audit", "verify"],
    ] {
        let mut c = Command::new(BIN);
        c.args(args);
        s.env(&mut c);
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
both_backends!(sigkill, sigkill_between_steps);

/// `offerhub disputes list|show|assign|resolve` and `offerhub sagas list` on a disputed
/// order (real binary; the CLI runs the resolution saga itself).
async fn operator_resolves_a_dispute(db: String) {
    let dir = std::env::temp_dir().join(format!(
        "offerhub-disputes-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let sb_port = free_port();
    let _sandbox = Proc(
        Command::new(BIN)
            .args(["sandbox", "--port", &sb_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let s = Setup {
        dir: dir.clone(),
        port: free_port(),
        sandbox: format!("http://127.0.0.1:{sb_port}"),
        db,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(&s.sandbox).await.is_err() {
        assert!(Instant::now() < deadline, "sandbox did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_daemon, _rx) = s.serve(None).await;
    let mut ids = Vec::new();
    for ext in ["buyer", "seller"] {
        let u = s
            .call("POST", "/users", Some(json!({ "externalUserId": ext })))
            .await;
        ids.push(u["data"]["id"].as_str().unwrap().to_string());
    }
    let mut buyer_address = String::new();
    for u in &ids {
        let path = format!("/users/{u}/wallet");
        s.until("an active wallet", async || {
            s.call("GET", &path, None).await["data"]["status"] == "ACTIVE"
        })
        .await;
        if *u == ids[0] {
            buyer_address = s.call("GET", &path, None).await["data"]["publicKey"]
                .as_str()
                .unwrap()
                .to_string();
        }
    }
    reqwest::Client::new()
        .post(format!("{}/_sandbox/fund", s.sandbox))
        .json(&json!({ "address": buyer_address, "amount": "50", "asset": "USDC" }))
        .send()
        .await
        .unwrap();
    let bal = format!("/users/{}/balance", ids[0]);
    s.until("the deposit", async || {
        s.call("GET", &bal, None).await["data"]["available"] == "50.00"
    })
    .await;
    let o = s
        .call("POST", "/orders", Some(json!({ "buyerId": ids[0], "sellerId": ids[1], "amount": "50", "title": "Disputed" })))
        .await;
    let id = o["data"]["id"].as_str().unwrap().to_string();
    for step in ["reserve", "escrow", "escrow/fund"] {
        s.call("POST", &format!("/orders/{id}/{step}"), Some(json!({})))
            .await;
    }
    assert_eq!(s.order_status(&id).await, "IN_PROGRESS");
    let d = s
        .call(
            "POST",
            &format!("/orders/{id}/resolution/dispute"),
            Some(json!({ "openedBy": "BUYER", "reason": "NOT_DELIVERED" })),
        )
        .await;
    let dispute = d["data"]["id"].as_str().unwrap().to_string();

    let cli = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(args);
        s.env(&mut c);
        c.output().unwrap()
    };
    let out = cli(&["disputes", "list"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&dispute));
    let out = cli(&[
        "disputes",
        "assign",
        &dispute,
        "--to",
        "agent@ops",
        "--output",
        "json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "UNDER_REVIEW");
    // Split amounts that do not add up to the escrow balance: refused before anything moves.
    let out = cli(&[
        "disputes",
        "resolve",
        &dispute,
        "--decision",
        "SPLIT",
        "--release",
        "30",
        "--refund",
        "30",
        "--yes",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("escrow balance 50.00"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["disputes", "show", &dispute, "--output", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dispute"]["status"], "UNDER_REVIEW");
    let out = cli(&[
        "disputes",
        "resolve",
        &dispute,
        "--decision",
        "SPLIT",
        "--release",
        "40",
        "--refund",
        "10",
        "--note",
        "mostly done",
        "--yes",
        "--output",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dispute"]["status"], "RESOLVED");
    assert_eq!(v["saga"]["status"], "COMPLETED");
    assert_eq!(s.order_status(&id).await, "CLOSED");
    // 40 − 40 × 5.3 % to the seller.
    let seller = s
        .call("GET", &format!("/users/{}/balance", ids[1]), None)
        .await;
    assert_eq!(seller["data"]["available"], "37.88");
    let out = cli(&["sagas", "list", "--status", "COMPLETED"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("RESOLVE"));
    let out = cli(&["sagas", "list"]);
    assert!(out.status.success());
    assert!(cli(&["reconcile"]).status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
both_backends!(operator_cli, operator_resolves_a_dispute);

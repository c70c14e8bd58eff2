//! End to end: the real `offerhub` binary, started with `offerhub serve` on a free loopback
//! port on the embedded default (sandbox network), once on SQLite and once on PostgreSQL,
//! driven over HTTP like a marketplace backend — buyer and seller, a faucet deposit,
//! orders through release, refund, a dispute split 60/40 and a cancel, the seller's
//! withdrawals to an outside wallet. Checks balances (ledger and chain), states, the SSE
//! event sequence of every order, audit rows, idempotent replays, and at the end that
//! `offerhub reconcile`, `offerhub ledger verify` and `offerhub audit verify` are clean.
//! On SQLite it also runs the quickstart's `examples/marketplace-flow.sh all`.
//!
//! The binary is the workspace's `target/<profile>/offerhub` (built by
//! `cargo test --workspace`; built here when missing), or `OFFERHUB_BIN`.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

fn binary() -> PathBuf {
    offerhub_testkit::offerhub_binary()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `offerhub serve` in its own directory, and an API key for it.
struct Daemon {
    child: Child,
    dir: PathBuf,
    env: Vec<(&'static str, String)>,
    api: String,
    sandbox: String,
    key: String,
    http: reqwest::Client,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Resp {
    status: u16,
    body: Value,
}

impl Daemon {
    async fn start(database_url: &str) -> Daemon {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("offerhub-e2e-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A clean environment: only what a fresh shell would have, plus the database and
        // the port. Everything else is the embedded default.
        let mut env = vec![
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            ("HOME", dir.display().to_string()),
            ("DATABASE_URL", database_url.to_string()),
            ("PORT", port.to_string()),
            ("RUST_LOG", "warn".to_string()),
        ];
        if let Ok(v) = std::env::var("TMPDIR") {
            env.push(("TMPDIR", v));
        }
        let log = std::fs::File::create(dir.join("serve.log")).unwrap();
        let child = Command::new(binary())
            .arg("serve")
            .current_dir(&dir)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn offerhub serve");
        let mut d = Daemon {
            child,
            dir,
            env,
            api: format!("http://127.0.0.1:{port}/api/v1"),
            sandbox: String::new(),
            key: String::new(),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = d.http.get(format!("{}/health", d.api)).send().await
                && r.status() == 200
            {
                break;
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("offerhub serve exited with {status}:\n{}", d.log());
            }
            assert!(Instant::now() < deadline, "not healthy:\n{}", d.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let out = d.offerhub(&[
            "keys",
            "create",
            "--name",
            "e2e",
            "--scopes",
            "read,write,support",
            "--output",
            "json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let created: Value = serde_json::from_slice(&out.stdout).unwrap();
        d.key = created["key"].as_str().unwrap().to_string();
        let health = d.call("GET", "/health/detailed", None).await;
        assert_eq!(health.status, 200, "{}", health.body);
        assert_eq!(health.body["data"]["status"], "healthy", "{}", health.body);
        let horizon = &health.body["data"]["dependencies"]["stellarHorizon"];
        assert_eq!(horizon["network"], "sandbox");
        d.sandbox = horizon["url"]
            .as_str()
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        d
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    /// Runs an operator command against this daemon's configuration.
    fn offerhub(&self, args: &[&str]) -> Output {
        Command::new(binary())
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("run offerhub")
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> Resp {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.api))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        Resp {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.request(method, path, body, None).await
    }

    /// `data` of a 2xx answer with the expected status.
    async fn ok(&self, method: &str, path: &str, body: Option<Value>, status: u16) -> Value {
        let r = self.call(method, path, body).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        r.body["data"].clone()
    }

    async fn until(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.ok("GET", path, None, 200).await;
            if done(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{what}: still {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `(available, reserved)` of a user, as decimal strings.
    async fn balance(&self, user: &str) -> (String, String) {
        let b = self
            .ok("GET", &format!("/users/{user}/balance"), None, 200)
            .await;
        (
            b["available"].as_str().unwrap().to_string(),
            b["reserved"].as_str().unwrap().to_string(),
        )
    }

    /// A new account outside OfferHub with a USDC trustline (`POST /_sandbox/accounts`).
    async fn outside_account(&self) -> String {
        let a: Value = self
            .http
            .post(format!("{}/_sandbox/accounts", self.sandbox))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        a["address"].as_str().unwrap().to_string()
    }

    /// USDC an account holds on the sandbox chain (Horizon's 7-decimal string).
    async fn usdc_on_chain(&self, address: &str) -> String {
        offerhub_sandbox::usdc_balance(&self.sandbox, address)
            .await
            .unwrap()
            .unwrap_or_default()
    }
}

/// Every event of `GET /events`, collected from the start of the run.
struct EventLog(Arc<Mutex<Vec<Value>>>);

impl EventLog {
    async fn open(d: &Daemon) -> EventLog {
        let resp = d
            .http
            .get(format!("{}/events", d.api))
            .bearer_auth(&d.key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            let mut stream = resp.bytes_stream();
            let mut buf = String::new();
            while let Some(Ok(chunk)) = stream.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buf.find("\n\n") {
                    let block: String = buf.drain(..end + 2).collect();
                    let (mut event, mut data) = (String::new(), String::new());
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            event = v.trim().to_string();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if let Ok(v) = serde_json::from_str::<Value>(&data) {
                        assert_eq!(v["type"], event.as_str(), "SSE event name = type");
                        sink.lock().unwrap().push(v);
                    }
                }
            }
        });
        EventLog(seen)
    }

    /// Types of the events about `resource_id`, in stream order, once `last` arrived.
    async fn of(&self, resource_id: &str, last: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let types: Vec<String> = self
                .0
                .lock()
                .unwrap()
                .iter()
                .filter(|e| e["resourceId"] == resource_id)
                .map(|e| e["type"].as_str().unwrap().to_string())
                .collect();
            if types.iter().any(|t| t == last) {
                return types;
            }
            assert!(
                Instant::now() < deadline,
                "{last} of {resource_id} never streamed; got {types:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

struct Parties {
    buyer: String,
    seller: String,
    buyer_address: String,
    seller_address: String,
}

/// A buyer and a seller with active wallets; 150 USDC deposited to the buyer through the
/// sandbox faucet and credited by the deposit monitor.
async fn parties(d: &Daemon, tag: &str) -> Parties {
    let mut ids = Vec::new();
    for (role, kind) in [("buyer", "BUYER"), ("seller", "SELLER")] {
        let ext = format!("{role}-{tag}");
        let key = format!("create-{ext}");
        let body = json!({ "externalUserId": ext, "type": kind });
        let r = d
            .request("POST", "/users", Some(body.clone()), Some(&key))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        // A retried create with the same Idempotency-Key answers the same user.
        let again = d.request("POST", "/users", Some(body), Some(&key)).await;
        assert_eq!(
            again.body["data"]["id"], r.body["data"]["id"],
            "{}",
            again.body
        );
        let id = r.body["data"]["id"].as_str().unwrap().to_string();
        let w = d
            .until(&format!("/users/{id}/wallet"), "wallet", |w| {
                w["status"] == "ACTIVE"
            })
            .await;
        ids.push((id, w["publicKey"].as_str().unwrap().to_string()));
    }
    let (seller, seller_address) = ids.pop().unwrap();
    let (buyer, buyer_address) = ids.pop().unwrap();
    let r = d
        .http
        .post(format!("{}/_sandbox/fund", d.sandbox))
        .json(&json!({ "address": buyer_address, "amount": "150", "asset": "USDC" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    d.until(&format!("/users/{buyer}/balance"), "deposit", |b| {
        b["available"] == "150.00"
    })
    .await;
    Parties {
        buyer,
        seller,
        buyer_address,
        seller_address,
    }
}

/// An order of 100.00 created (with an Idempotency-Key, replayed once) and reserved.
async fn reserved_order(d: &Daemon, p: &Parties, tag: &str) -> String {
    let body = json!({ "buyerId": p.buyer, "sellerId": p.seller, "amount": "100.00", "title": "Logo design", "clientOrderRef": format!("ref-{tag}") });
    let key = format!("order-{tag}");
    let r = d
        .request("POST", "/orders", Some(body.clone()), Some(&key))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "ORDER_CREATED");
    let again = d.request("POST", "/orders", Some(body), Some(&key)).await;
    assert_eq!(again.body["data"]["id"], r.body["data"]["id"]);
    let id = r.body["data"]["id"].as_str().unwrap().to_string();
    let o = d
        .ok("POST", &format!("/orders/{id}/reserve"), None, 200)
        .await;
    assert_eq!(o["status"], "FUNDS_RESERVED");
    assert_eq!(d.balance(&p.buyer).await, ("50.00".into(), "100.00".into()));
    id
}

/// Deploys and funds the escrow of a reserved order; the 100 USDC leave the buyer's wallet.
async fn escrow_funded(d: &Daemon, p: &Parties, order: &str) {
    let o = d
        .ok("POST", &format!("/orders/{order}/escrow"), None, 201)
        .await;
    assert_eq!(o["status"], "ESCROW_FUNDING");
    assert_eq!(o["escrow"]["status"], "CREATED");
    assert!(o["escrow"]["contractId"].as_str().unwrap().starts_with('C'));
    let o = d
        .ok("POST", &format!("/orders/{order}/escrow/fund"), None, 200)
        .await;
    assert_eq!(o["status"], "IN_PROGRESS");
    assert_eq!(o["escrow"]["status"], "FUNDED");
    assert_eq!(o["escrow"]["balance"], "100.00");
    assert_eq!(d.balance(&p.buyer).await, ("50.00".into(), "0.00".into()));
    assert_eq!(d.usdc_on_chain(&p.buyer_address).await, "50.0000000");
}

/// The seller withdraws `expected` (everything available) to a new outside wallet; it
/// arrives there on chain and leaves nothing behind.
async fn seller_withdraws(d: &Daemon, p: &Parties, expected: &str) {
    let dest = d.outside_account().await;
    let dest = dest.as_str();
    let body = json!({ "userId": p.seller, "amount": expected, "destinationType": "crypto", "destinationRef": dest });
    let w = d.ok("POST", "/withdrawals", Some(body), 201).await;
    let id = w["id"].as_str().unwrap().to_string();
    let w = d
        .until(&format!("/withdrawals/{id}"), "withdrawal", |w| {
            w["status"] == "WITHDRAWAL_COMPLETED"
        })
        .await;
    assert_eq!(w["amount"], expected);
    assert_eq!(w["txHash"].as_str().unwrap().len(), 64);
    assert_eq!(
        d.usdc_on_chain(dest).await,
        format!("{expected}00000"),
        "the seller's outside wallet received the withdrawal"
    );
    assert_eq!(d.balance(&p.seller).await, ("0.00".into(), "0.00".into()));
    assert_eq!(d.usdc_on_chain(&p.seller_address).await, "0.0000000");
}

async fn audit_actions(d: &Daemon, resource_id: &str) -> Vec<String> {
    let rows = d
        .ok(
            "GET",
            &format!("/audit/logs?resourceId={resource_id}&limit=100"),
            None,
            200,
        )
        .await;
    let mut actions: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap().to_string())
        .collect();
    actions.reverse();
    actions
}

fn assert_in_order(seen: &[String], expected: &[&str], what: &str) {
    let mut rest = seen.iter();
    for e in expected {
        assert!(
            rest.any(|s| s == e),
            "{what}: {e} missing or out of order in {seen:?}"
        );
    }
}

fn exit_ok(out: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{what} exited {:?}:\n{stdout}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn marketplace(database_url: String) {
    let d = Daemon::start(&database_url).await;
    let events = EventLog::open(&d).await;
    let run = std::process::id();

    // 1. Release, then the seller withdraws.
    let p = parties(&d, &format!("release-{run}")).await;
    let release = reserved_order(&d, &p, &format!("release-{run}")).await;
    escrow_funded(&d, &p, &release).await;
    let o = d
        .ok(
            "POST",
            &format!("/orders/{release}/resolution/release"),
            Some(json!({ "requestedBy": p.buyer })),
            200,
        )
        .await;
    assert_eq!(o["status"], "CLOSED");
    assert_eq!(o["escrow"]["status"], "RELEASED");
    assert_eq!(o["escrow"]["balance"], "0.00");
    // 100 less Trustless Work's 0.3 %; no platform fee by default.
    assert_eq!(d.balance(&p.seller).await, ("99.70".into(), "0.00".into()));
    assert_eq!(d.usdc_on_chain(&p.seller_address).await, "99.7000000");
    assert_eq!(d.balance(&p.buyer).await, ("50.00".into(), "0.00".into()));
    seller_withdraws(&d, &p, "99.70").await;

    // 2. Refund.
    let p = parties(&d, &format!("refund-{run}")).await;
    let refund = reserved_order(&d, &p, &format!("refund-{run}")).await;
    escrow_funded(&d, &p, &refund).await;
    let o = d
        .ok(
            "POST",
            &format!("/orders/{refund}/resolution/refund"),
            Some(json!({ "reason": "Seller could not deliver" })),
            200,
        )
        .await;
    assert_eq!(o["status"], "CLOSED");
    assert_eq!(o["escrow"]["status"], "REFUNDED");
    assert_eq!(d.balance(&p.buyer).await, ("149.70".into(), "0.00".into()));
    assert_eq!(d.usdc_on_chain(&p.buyer_address).await, "149.7000000");
    assert_eq!(d.balance(&p.seller).await, ("0.00".into(), "0.00".into()));

    // 3. Dispute, resolved by support 60/40; the seller withdraws their part.
    let p = parties(&d, &format!("split-{run}")).await;
    let split = reserved_order(&d, &p, &format!("split-{run}")).await;
    escrow_funded(&d, &p, &split).await;
    let dsp = d
        .ok(
            "POST",
            &format!("/orders/{split}/resolution/dispute"),
            Some(json!({ "openedBy": "BUYER", "reason": "QUALITY_ISSUE" })),
            201,
        )
        .await;
    assert_eq!(dsp["status"], "OPEN");
    assert_eq!(dsp["order"]["status"], "DISPUTED");
    let dispute = dsp["id"].as_str().unwrap().to_string();
    // Amounts that do not add up to the escrow change nothing.
    let r = d
        .call(
            "POST",
            &format!("/disputes/{dispute}/resolve"),
            Some(json!({ "decision": "SPLIT", "releaseAmount": "60.00", "refundAmount": "50.00" })),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "INVALID_AMOUNT_FORMAT");
    let dsp = d
        .ok(
            "POST",
            &format!("/disputes/{dispute}/resolve"),
            Some(json!({ "decision": "SPLIT", "releaseAmount": "60.00", "refundAmount": "40.00", "note": "Partly delivered" })),
            200,
        )
        .await;
    assert_eq!(dsp["status"], "RESOLVED");
    assert_eq!(dsp["decision"], "SPLIT");
    assert_eq!(dsp["order"]["status"], "CLOSED");
    // Fees (0.3 %) pro rata: seller 60 − 0.18, buyer 50 + 40 − 0.12.
    assert_eq!(d.balance(&p.seller).await, ("59.82".into(), "0.00".into()));
    assert_eq!(d.balance(&p.buyer).await, ("89.88".into(), "0.00".into()));
    assert_eq!(d.usdc_on_chain(&p.buyer_address).await, "89.8800000");
    seller_withdraws(&d, &p, "59.82").await;

    // 4. Cancel before any escrow.
    let p = parties(&d, &format!("cancel-{run}")).await;
    let cancel = reserved_order(&d, &p, &format!("cancel-{run}")).await;
    let o = d
        .ok(
            "POST",
            &format!("/orders/{cancel}/cancel"),
            Some(json!({ "reason": "Buyer changed their mind" })),
            200,
        )
        .await;
    assert_eq!(o["status"], "CLOSED");
    assert_eq!(d.balance(&p.buyer).await, ("150.00".into(), "0.00".into()));
    // A closed order refuses further moves, and nothing changes.
    let r = d
        .call("POST", &format!("/orders/{cancel}/escrow"), None)
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(d.balance(&p.buyer).await, ("150.00".into(), "0.00".into()));

    // The SSE stream carried each order's lifecycle in order.
    let funded = [
        "order.created",
        "order.funds_reserved",
        "order.escrow_creating",
        "order.escrow_funding",
        "order.escrow_funded",
        "order.in_progress",
    ];
    let seen = events.of(&release, "order.closed").await;
    assert_in_order(&seen, &funded, "release");
    assert_in_order(
        &seen,
        &[
            "order.in_progress",
            "order.release_requested",
            "order.released",
            "order.closed",
        ],
        "release",
    );
    let seen = events.of(&refund, "order.closed").await;
    assert_in_order(&seen, &funded, "refund");
    assert_in_order(
        &seen,
        &["order.in_progress", "order.refunded", "order.closed"],
        "refund",
    );
    let seen = events.of(&split, "order.closed").await;
    assert_in_order(&seen, &funded, "split");
    assert_in_order(
        &seen,
        &["order.in_progress", "order.disputed", "order.closed"],
        "split",
    );
    assert_eq!(
        events.of(&dispute, "dispute.resolved").await,
        ["dispute.opened", "dispute.resolved"],
    );
    let seen = events.of(&cancel, "order.closed").await;
    assert_in_order(
        &seen,
        &[
            "order.created",
            "order.funds_reserved",
            "order.canceled",
            "order.closed",
        ],
        "cancel",
    );
    assert!(
        !seen.iter().any(|t| t.starts_with("order.escrow")),
        "{seen:?}"
    );
    for t in ["order.created", "order.funds_reserved", "order.closed"] {
        assert_eq!(
            seen.iter().filter(|s| *s == t).count(),
            1,
            "{t} once (the idempotent replay emitted nothing): {seen:?}"
        );
    }

    // An audit row for every state the orders went through (the ones the workers
    // moved included), and for the dispute.
    let funded = [
        "order.created",
        "order.funds_reserved",
        "order.escrow_creating",
        "order.escrow_funding",
        "order.fund_requested",
        "order.in_progress",
    ];
    let with = |tail: &[&str]| -> Vec<String> {
        funded.iter().chain(tail).map(|s| s.to_string()).collect()
    };
    assert_eq!(
        audit_actions(&d, &release).await,
        with(&["order.release_requested", "order.released", "order.closed"])
    );
    assert_eq!(
        audit_actions(&d, &refund).await,
        with(&["order.refund_requested", "order.refunded", "order.closed"])
    );
    assert_eq!(
        audit_actions(&d, &split).await,
        with(&["order.disputed", "order.closed"])
    );
    assert_eq!(
        audit_actions(&d, &cancel).await,
        ["order.created", "order.funds_reserved", "order.canceled"]
    );
    assert_eq!(
        audit_actions(&d, &dispute).await,
        [
            "dispute.opening",
            "dispute.opened",
            "dispute.resolving",
            "dispute.resolved"
        ]
    );

    // The quickstart's own script, as a newcomer runs it (SQLite: the quickstart's default).
    if !database_url.starts_with("postgres") {
        let out = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/marketplace-flow.sh"
        ))
        .arg("all")
        .env("OFFERHUB_URL", d.api.trim_end_matches("/api/v1"))
        .env("OFFERHUB_API_KEY", &d.key)
        .output()
        .expect("run examples/marketplace-flow.sh (needs bash, curl, jq)");
        let said = exit_ok(&out, "examples/marketplace-flow.sh all");
        assert!(said.contains("holds 99.7000000 USDC"), "{said}");
        assert!(said.contains("holds 59.8200000 USDC"), "{said}");
        assert!(said.contains("== Done (all)"), "{said}");
    }

    // The operator's checks agree with everything above.
    let report = exit_ok(
        &d.offerhub(&["reconcile", "--output", "json"]),
        "offerhub reconcile",
    );
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["discrepancies"], 0, "{report}");
    exit_ok(&d.offerhub(&["ledger", "verify"]), "offerhub ledger verify");
    exit_ok(&d.offerhub(&["audit", "verify"]), "offerhub audit verify");
    // `offerhub sandbox fund` finds the running daemon's sandbox by itself.
    let outside = d.outside_account().await;
    let outside = outside.as_str();
    exit_ok(
        &d.offerhub(&["sandbox", "fund", outside, "1.5"]),
        "offerhub sandbox fund",
    );
    assert_eq!(d.usdc_on_chain(outside).await, "1.5000000");
    let _ = std::fs::remove_dir_all(&d.dir);
}
offerhub_testkit::both_backends!(marketplace_flows, marketplace);

//! The real `offerhub` binary: init, serve, keys, config errors.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_offerhub");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "offerhub-cli-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn offerhub(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("PORT")
        .output()
        .unwrap()
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/api/v1/health")).await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "daemon did not become healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn init_serve_keys_and_revocation() {
    let dir = temp_dir();
    let port = free_port();
    let cfg = dir.join("conf");
    let out = offerhub(
        &dir,
        &[
            "init",
            "--yes",
            "--dir",
            "conf",
            "--port",
            &port.to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "offerhub.toml",
        ".env",
        "docker-compose.yml",
        "offerhub.service",
    ] {
        assert!(cfg.join(f).is_file(), "{f} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(cfg.join(".env"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    // Never overwrites without --force.
    let again = offerhub(&dir, &["init", "--yes", "--dir", "conf"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert!(
        offerhub(
            &dir,
            &[
                "init",
                "--yes",
                "--dir",
                "conf",
                "--force",
                "--port",
                &port.to_string()
            ]
        )
        .status
        .success()
    );

    let config = cfg.join("offerhub.toml");
    let config = config.to_str().unwrap();
    let _daemon = Daemon(
        Command::new(BIN)
            .args(["serve", "--config", config])
            .current_dir(&dir)
            // The webhook endpoint below is on loopback.
            .env("OFFERHUB_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_healthy(port).await;
    assert!(
        cfg.join("data").join("offerhub.db").is_file(),
        "SQLite file lives beside the config"
    );

    let out = offerhub(
        &dir,
        &[
            "keys",
            "create",
            "--config",
            config,
            "--name",
            "mkt",
            "--scopes",
            "read,write",
            "--output",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();

    let client = reqwest::Client::new();
    let me = |t: String| {
        let c = client.clone();
        async move {
            c.get(format!("http://127.0.0.1:{port}/api/v1/auth/me"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
        }
    };
    let r = me(token.clone()).await;
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["data"]["apiKeyId"], id.as_str());

    // Webhooks from the operator's side.
    let hook: serde_json::Value = client
        .post(format!("http://127.0.0.1:{port}/api/v1/webhooks/endpoints"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "url": "http://127.0.0.1:9/hook", "events": ["user.created"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoint = hook["data"]["id"].as_str().unwrap().to_string();
    let r = client
        .post(format!("http://127.0.0.1:{port}/api/v1/users"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "externalUserId": "cli-user" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let out = offerhub(
        &dir,
        &["webhooks", "list", "--config", config, "--output", "json"],
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["id"], endpoint.as_str());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("whsec_"));
    let out = offerhub(
        &dir,
        &[
            "webhooks",
            "replay",
            "--config",
            config,
            "--endpoint",
            &endpoint,
            "--since",
            "2000-01-01T00:00:00Z",
            "--output",
            "json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replayed["queued"], 1);
    let out = offerhub(
        &dir,
        &[
            "webhooks", "show", "--config", config, &endpoint, "--output", "json",
        ],
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!shown["deliveries"].as_array().unwrap().is_empty());

    let list = offerhub(&dir, &["keys", "list", "--config", config]);
    assert!(String::from_utf8_lossy(&list.stdout).contains(&id));
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&token));

    assert!(
        offerhub(&dir, &["keys", "revoke", "--config", config, &id])
            .status
            .success()
    );
    let r = me(token).await;
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");

    let verify = offerhub(&dir, &["audit", "verify", "--config", config]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_configuration_stops_with_the_variable_named() {
    let dir = temp_dir();
    let out = Command::new(BIN)
        .arg("serve")
        .current_dir(&dir)
        .env("PORT", "not-a-port")
        .env("STELLAR_NETWORK", "testnet")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PORT: must be a port number"), "{err}");
    assert!(
        err.contains("TRUSTLESS_API_KEY: is required on testnet"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The observability settings are validated like the others: `--metrics-addr`
/// (`OFFERHUB_METRICS_ADDR`) and `OTEL_EXPORTER_OTLP_ENDPOINT` stop `serve` with exit 2
/// naming the variable.
#[test]
fn bad_observability_settings_stop_serve() {
    let dir = temp_dir();
    let out = Command::new(BIN)
        .args(["serve", "--metrics-addr", "localhost"])
        .current_dir(&dir)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OFFERHUB_METRICS_ADDR: must be an address and port"),
        "{err}"
    );
    let out = Command::new(BIN)
        .arg("serve")
        .current_dir(&dir)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_ENDPOINT: must be an http:// or https:// URL"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn testnet_init_writes_network_defaults_and_serve_names_the_missing_secret() {
    let dir = temp_dir();
    let out = Command::new(BIN)
        .args(["init", "--yes", "--network", "testnet", "--dir", "conf"])
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env_remove("TRUSTLESS_API_KEY")
        .env_remove("STELLAR_HORIZON_URL")
        .env_remove("STELLAR_USDC_ISSUER")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("TRUSTLESS_API_KEY is empty"), "{said}");
    let toml = std::fs::read_to_string(dir.join("conf/offerhub.toml")).unwrap();
    assert!(toml.contains("horizon-testnet.stellar.org"), "{toml}");
    assert!(
        toml.contains("GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5"),
        "the testnet USDC issuer is the default: {toml}"
    );
    // The default PostgreSQL URL points at the rendered docker-compose database; the
    // password lives only in .env (0600), which Compose reads.
    let env = std::fs::read_to_string(dir.join("conf/.env")).unwrap();
    let password = env
        .lines()
        .find_map(|l| l.strip_prefix("POSTGRES_PASSWORD="))
        .unwrap()
        .to_string();
    assert!(password.len() >= 16);
    assert!(
        env.contains(&format!(
            "DATABASE_URL=postgres://offerhub:{password}@127.0.0.1:5432/offerhub"
        )),
        "{env}"
    );
    let compose = std::fs::read_to_string(dir.join("conf/docker-compose.yml")).unwrap();
    assert!(compose.contains("${POSTGRES_PASSWORD"), "{compose}");
    for (name, text) in [("offerhub.toml", &toml), ("docker-compose.yml", &compose)] {
        assert!(
            !text.contains(&password),
            "{name} holds the password: {text}"
        );
    }
    let unit = std::fs::read_to_string(dir.join("conf/offerhub.service")).unwrap();
    assert!(unit.contains("User=offerhub"), "{unit}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("conf/.env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // serve stops at once, before touching the database, naming the secret.
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["serve", "--config", "conf/offerhub.toml"])
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env_remove("TRUSTLESS_API_KEY")
        .env_remove("STELLAR_NETWORK")
        .env_remove("PORT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TRUSTLESS_API_KEY: is required on testnet"),
        "{err}"
    );
    assert!(
        !err.contains("OFFERHUB_MASTER_KEY"),
        "init wrote that one: {err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn version_and_completions() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("offerhub "));
    let out = Command::new(BIN)
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("offerhub"));
}

#[tokio::test]
async fn sandbox_command_and_faucet() {
    let dir = temp_dir();
    let port = free_port();
    let _sb = Daemon(
        Command::new(BIN)
            .args([
                "sandbox",
                "--port",
                &port.to_string(),
                "--state",
                dir.join("sb.json").to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(&url).await.is_err() {
        assert!(Instant::now() < deadline, "sandbox did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let addr = "GDVEU3DD4KOFECV66VIHWEZOYX4ZKR3WV27L464SIIPOU2IUI3JCZA57";
    let out = offerhub(
        &dir,
        &[
            "sandbox", "fund", addr, "25", "--asset", "XLM", "--url", &url,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No USDC trustline yet: refused with the network's result code.
    let out = offerhub(&dir, &["sandbox", "fund", addr, "5", "--url", &url]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("op_no_trust"));
    let acct: serde_json::Value = reqwest::get(format!("{url}/accounts/{addr}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acct["balances"][0]["balance"], "25.0000000");
    assert!(dir.join("sb.json").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sandbox_fault_flags_are_applied() {
    let port = free_port();
    let _sb = Daemon(
        Command::new(BIN)
            .args(["sandbox", "--port", &port.to_string(), "--fail-5xx", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/fee_stats");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut statuses = Vec::new();
    while statuses.len() < 3 {
        match reqwest::get(&url).await {
            Ok(r) => statuses.push(r.status().as_u16()),
            Err(_) => {
                assert!(Instant::now() < deadline, "sandbox did not start");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(statuses, [503, 503, 200]);
}

#[tokio::test]
async fn reconcile_exit_codes_with_a_stopped_monitor() {
    let dir = temp_dir();
    let (sb_port, port) = (free_port(), free_port());
    let _sb = Daemon(
        Command::new(BIN)
            .args(["sandbox", "--port", &sb_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let sandbox = format!("http://127.0.0.1:{sb_port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(&sandbox).await.is_err() {
        assert!(Instant::now() < deadline, "sandbox did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let env = [
        ("STELLAR_HORIZON_URL", sandbox.as_str()),
        (
            "OFFERHUB_MASTER_KEY",
            "ohk_master_test_0123456789abcdef0123456789abcdef",
        ),
        (
            "WALLET_ENCRYPTION_KEY",
            "cd0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        ),
    ];
    let spawn_serve = || {
        let mut c = Command::new(BIN);
        c.arg("serve")
            .current_dir(&dir)
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        Daemon(c.spawn().unwrap())
    };
    let daemon = spawn_serve();
    wait_healthy(port).await;
    let client = reqwest::Client::new();
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let r: serde_json::Value = client
        .post(format!("{api}/users"))
        .bearer_auth(env[1].1)
        .json(&serde_json::json!({ "externalUserId": "rec-1" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user = r["data"]["id"].as_str().unwrap().to_string();
    let mut address = String::new();
    for _ in 0..200 {
        let w: serde_json::Value = client
            .get(format!("{api}/users/{user}/wallet"))
            .bearer_auth(env[1].1)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if w["data"]["status"] == "ACTIVE" {
            address = w["data"]["publicKey"].as_str().unwrap().to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!address.is_empty(), "wallet never became active");
    drop(daemon); // the monitor stops with it

    let reconcile = |extra: &[&str]| {
        let mut c = Command::new(BIN);
        c.arg("reconcile").args(extra).current_dir(&dir);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    assert_eq!(
        reconcile(&[]).status.code(),
        Some(0),
        "clean before the deposit"
    );
    let out = offerhub(&dir, &["sandbox", "fund", &address, "7", "--url", &sandbox]);
    assert!(out.status.success());
    let out = reconcile(&["--output", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a deposit the monitor missed is a discrepancy"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["discrepancies"], 1);
    assert_eq!(
        reconcile(&["--fix"]).status.code(),
        Some(0),
        "clean after --fix"
    );
    assert_eq!(reconcile(&[]).status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `PAYMENT_PROVIDER=airtm` on the embedded sandbox: `offerhub serve` registers its
/// webhook intake with the sandbox's Airtm simulator (generated Svix secret); a top-up
/// confirmed at Airtm is credited through the signed webhook; the operator lists,
/// shows and replays the received webhook without crediting twice.
#[tokio::test]
async fn airtm_mode_on_the_embedded_sandbox() {
    let dir = temp_dir();
    let port = free_port();
    let master = "ohk_master_test_0123456789abcdef0123456789abcdef";
    let env = [
        (
            "OFFERHUB_DATA_DIR",
            dir.join("data").to_str().unwrap().to_string(),
        ),
        ("OFFERHUB_MASTER_KEY", master.to_string()),
        (
            "WALLET_ENCRYPTION_KEY",
            "cd0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f".to_string(),
        ),
        ("PAYMENT_PROVIDER", "airtm".to_string()),
        ("PORT", port.to_string()),
    ];
    let mut c = Command::new(BIN);
    c.arg("serve")
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in &env {
        c.env(k, v);
    }
    let _daemon = Daemon(c.spawn().unwrap());
    wait_healthy(port).await;
    let client = reqwest::Client::new();
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let call = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let mut r = client
            .request(method, format!("{api}{path}"))
            .bearer_auth(master);
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            r.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let user = call(
        reqwest::Method::POST,
        "/users",
        Some(serde_json::json!({ "externalUserId": "fiat-buyer" })),
    )
    .await["data"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..200 {
        if call(reqwest::Method::GET, &format!("/users/{user}/wallet"), None).await["data"]["status"]
            == "ACTIVE"
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let health = call(reqwest::Method::GET, "/health/detailed", None).await;
    let airtm = &health["data"]["dependencies"]["airtm"];
    assert_eq!(airtm["webhookIntake"], "enabled", "{health}");
    let treasury = airtm["treasury"]["publicKey"].as_str().unwrap().to_string();
    let sandbox = std::fs::read_to_string(dir.join("data").join("sandbox-url")).unwrap();
    let sandbox = sandbox.trim();
    let r = client
        .post(format!("{sandbox}/_sandbox/fund"))
        .json(&serde_json::json!({ "address": treasury, "amount": "100", "asset": "USDC" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let t = call(
        reqwest::Method::POST,
        "/topups",
        Some(serde_json::json!({ "userId": user, "amount": "25", "returnUrl": "https://m.example/ok", "cancelUrl": "https://m.example/no" })),
    )
    .await;
    let id = t["data"]["id"].as_str().unwrap().to_string();
    let payin = t["data"]["airtmPayinId"].as_str().unwrap().to_string();
    let r = client
        .post(format!("{sandbox}/_sandbox/airtm/payins/{payin}/confirm"))
        .json(&serde_json::json!({ "email": "fiat@example.com" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let mut status = serde_json::Value::Null;
    for _ in 0..200 {
        status = call(reqwest::Method::GET, &format!("/topups/{id}"), None).await["data"]["status"]
            .clone();
        if status == "TOPUP_SUCCEEDED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, "TOPUP_SUCCEEDED");
    let balance = || {
        call(
            reqwest::Method::GET,
            &format!("/users/{user}/balance"),
            None,
        )
    };
    assert_eq!(balance().await["data"]["available"], "24.75");

    // The operator's view of the received webhooks, and a replay that moves nothing.
    let cli = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(args).current_dir(&dir);
        for (k, v) in &env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // `sandbox fund` without --url finds the sandbox this daemon published.
    let out = cli(&["sandbox", "fund", &treasury, "1", "--asset", "XLM"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("paid 1 XLM to {treasury}")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = cli(&["webhooks", "list", "--inbound", "--output", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let confirmed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["eventType"] == "payin.confirmed")
        .expect("payin.confirmed received");
    let wid = confirmed["id"].as_str().unwrap();
    assert!(wid.starts_with("iwh_"));
    let out = cli(&["webhooks", "show", wid]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&payin));
    let out = cli(&["webhooks", "replay", wid]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..100 {
        let out = cli(&["webhooks", "show", wid, "--output", "json"]);
        let w: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if w["status"] == "PROCESSED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(balance().await["data"]["available"], "24.75");
    let out = cli(&["ledger", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = cli(&["reconcile"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

//! The operator's side of the real binary (issue #17): wrong directory, one serve per
//! data directory, port in use, unreachable database, SQLite URL forms, logs, CLI
//! polish (enum flags, "no … match", secrets never echoed, broken pipes, exit codes).

use std::path::{Path, PathBuf};
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

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "offerhub-op-{tag}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("PORT")
        .env_remove("OFFERHUB_CONFIG")
        .env_remove("OFFERHUB_LOG_FORMAT")
        .env_remove("WALLET_ENCRYPTION_KEY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    c
}

fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let o = cmd(dir, args).output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

struct Daemon(Child, PathBuf);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
}

fn serve(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Daemon {
    let log = dir.join(format!("serve-{}.log", free_port()));
    let mut c = cmd(dir, &[&["serve"], args].concat());
    c.envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    Daemon(c.spawn().unwrap(), log)
}

async fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
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
async fn commands_find_the_daemons_data_or_refuse_and_one_serve_per_data_dir() {
    let dir = temp_dir("data");
    let port = free_port();
    let p = port.to_string();
    let daemon = serve(&dir, &["--port", &p], &[("OFFERHUB_LOG_FORMAT", "json")]);
    wait_healthy(port).await;
    let sandbox_url = std::fs::read_to_string(dir.join("data/sandbox-url")).unwrap();

    // Elsewhere: no database is created, the message says what to do.
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let (code, _, err) = run(&elsewhere, &["keys", "create", "--name", "x"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no OfferHub database at"), "{err}");
    assert!(err.contains("run in the serve directory or pass --config"));
    assert!(
        !elsewhere.join("data").exists(),
        "a data directory was created"
    );

    // --verbose says which directory and database are used.
    let (code, _, err) = run(&dir, &["keys", "list", "--verbose"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains(&format!("data directory: {}", dir.join("data").display())));

    // A second serve on the same data directory: refused, state files untouched.
    let (code, _, err) = run(&dir, &["serve", "--port", &free_port().to_string()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("already uses the data directory"), "{err}");
    assert!(!err.contains(" on http://"));
    assert_eq!(
        std::fs::read_to_string(dir.join("data/sandbox-url")).unwrap(),
        sandbox_url
    );
    // Same port, another data directory: exit 2 naming the port and the flag.
    let (code, _, err) = run(&dir, &["serve", "--port", &p, "--data-dir", "other"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains(&format!("port {port}")) && err.contains("--port"),
        "{err}"
    );
    assert!(err.contains("PORT"));
    assert!(!err.contains(" on http://"), "{err}");
    assert!(!dir.join("other/sandbox-url").exists());
    // The first daemon's sandbox is still reachable through the file.
    let (code, _, err) = run(&dir, &["sagas", "list"]);
    assert_eq!(code, Some(0), "{err}");

    // One JSON access line per request, with route template and key id.
    let master = offerhub::config::read_dotenv(&dir.join("data/secrets.env")).unwrap()
        ["OFFERHUB_MASTER_KEY"]
        .clone();
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/v1/users/usr_nope"))
        .bearer_auth(&master)
        .header("x-request-id", "req-op-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("req-op-1") && l.contains("offerhub::access"))
        .unwrap_or_else(|| panic!("no access line in {log}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["fields"]["route"], "/api/v1/users/{id}");
    assert_eq!(v["fields"]["status"], 404);
    assert_eq!(v["fields"]["method"], "GET");
    assert_eq!(v["fields"]["api_key_id"], "master");
    assert!(v["fields"]["latency_ms"].is_number());
    assert!(!log.contains(&master), "a secret reached the log");
    assert!(!log.contains('\u{1b}'), "ANSI colours in a file");
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn every_sqlite_url_form_works_and_an_unreachable_database_is_named() {
    let dir = temp_dir("sqlite");
    let abs = format!("sqlite://{}/abs.db", dir.display());
    for url in [abs.as_str(), "sqlite://rel.db", "sqlite:rel2.db"] {
        let port = free_port();
        let daemon = serve(
            &dir,
            &["--port", &port.to_string()],
            &[("DATABASE_URL", url)],
        );
        wait_healthy(port).await;
        let o = cmd(&dir, &["keys", "list"])
            .env("DATABASE_URL", url)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        drop(daemon);
    }
    assert!(dir.join("abs.db").is_file() && dir.join("rel.db").is_file());
    assert!(dir.join("rel2.db").is_file());

    // PostgreSQL that refuses connections: a quick, named failure, no "on http://".
    let dead = free_port();
    let start = Instant::now();
    let o = cmd(&dir, &["serve", "--port", &free_port().to_string()])
        .env(
            "DATABASE_URL",
            format!("postgres://u:hunter2pw@127.0.0.1:{dead}/x"),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "took {:?}",
        start.elapsed()
    );
    assert!(err.contains(&format!("127.0.0.1:{dead}")), "{err}");
    assert!(!err.contains("hunter2pw"), "password echoed: {err}");
    assert!(!err.contains(" on http://"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn cli_polish() {
    let dir = temp_dir("polish");
    let port = free_port();
    let daemon = serve(&dir, &["--port", &port.to_string()], &[]);
    wait_healthy(port).await;

    // Enum flags: case-insensitive; an invalid value exits 2 listing the valid ones.
    let (code, out, _) = run(&dir, &["sagas", "list", "--status", "needs_attention"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("no sagas match"), "{out}");
    let (code, _, err) = run(&dir, &["sagas", "list", "--status", "BOGUS"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("NEEDS_ATTENTION"), "{err}");
    let (code, out, _) = run(&dir, &["disputes", "list", "--status", "open"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("no disputes match"), "{out}");
    let (code, _, err) = run(
        &dir,
        &["disputes", "resolve", "dsp_x", "--decision", "bogus"],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("FULL_RELEASE"), "{err}");

    // A secret given to `keys revoke` is never printed back.
    let (_, out, _) = run(&dir, &["keys", "create", "--output", "json"]);
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let secret = created["key"].as_str().unwrap();
    let (code, out, err) = run(&dir, &["keys", "revoke", secret]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(created["id"].as_str().unwrap()));
    assert!(!out.contains(secret) && !err.contains(secret));
    let (code, out, err) = run(&dir, &["keys", "revoke", secret]);
    assert!(!out.contains(secret) && !err.contains(secret), "{code:?}");

    // A broken pipe is a quiet exit, not a panic.
    let mut child = cmd(&dir, &["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert_ne!(o.status.code(), Some(101));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));

    // Rotation without a terminal names the flag.
    let (code, _, err) = run(&dir, &["wallet", "rotate-key", "--generate"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("pass --yes"));

    // init: database URL scheme checked, never echoed; where a TW key comes from.
    let (code, _, err) = run(
        &dir,
        &[
            "init",
            "--yes",
            "--dir",
            "i1",
            "--database-url",
            "mysql://u:pw1234@h/x",
        ],
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("sqlite:") && !err.contains("pw1234"), "{err}");
    let (code, out, _) = run(
        &dir,
        &["init", "--yes", "--dir", "i2", "--network", "TESTNET"],
    );
    assert_eq!(code, Some(0));
    assert!(out.contains("dapp.dev.trustlesswork.com"), "{out}");

    // reconcile: 3 = could not check (no sandbox running), unlike 1 = discrepancy.
    drop(daemon);
    let (code, _, err) = run(&dir, &["reconcile"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("could not check"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits until the platform wallet recorded in the database at `url` is active (the
/// daemon activates it on its chain at start).
async fn wait_platform_active(url: &str) {
    let store = offerhub::store::Store::connect(&offerhub::config::DatabaseUrl::new(url))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(w)) = offerhub::services::wallets::platform(&store).await
            && w.status.as_str() == "ACTIVE"
        {
            store.close().await;
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the platform wallet did not become active"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A daemon with the embedded sandbox refuses (exit 2, one line) a database that
/// belongs to another chain: another data directory's sandbox on a shared PostgreSQL,
/// or its own sandbox state removed (SQLite).
#[tokio::test]
async fn a_database_of_another_chain_is_refused() {
    let pg = offerhub_testkit::fresh_database_url(offerhub_testkit::Backend::Postgres).await;
    let dir = temp_dir("chain");
    let sqlite = format!("sqlite://{}/data/offerhub.db", dir.display());
    for (url, second_dir) in [(pg.as_str(), "other"), (sqlite.as_str(), "same")] {
        let first = dir.join("first");
        std::fs::create_dir_all(&first).unwrap();
        let port = free_port();
        let daemon = serve(
            &first,
            &["--port", &port.to_string()],
            &[("DATABASE_URL", url)],
        );
        wait_healthy(port).await;
        wait_platform_active(url).await;
        drop(daemon);
        let second = if second_dir == "same" {
            // The same data directory whose sandbox state was removed.
            std::fs::remove_file(first.join("data").join("sandbox-state.json")).unwrap();
            first.clone()
        } else {
            let d = dir.join(second_dir);
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        let o = cmd(&second, &["serve", "--port", &free_port().to_string()])
            .env("DATABASE_URL", url)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{url}: {err}");
        assert!(err.contains("belongs to another chain"), "{err}");
        assert!(!err.contains(" on http://"), "{err}");
        let _ = std::fs::remove_dir_all(&first);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGTERM with an open SSE stream and busy workers: the daemon ends the stream, stops
/// its workers and exits 0 within 5 s, logging no error.
#[tokio::test]
async fn sigterm_stops_everything_within_five_seconds() {
    let dir = temp_dir("term");
    let port = free_port();
    let mut daemon = serve(&dir, &["--port", &port.to_string()], &[]);
    wait_healthy(port).await;
    let secrets = std::fs::read_to_string(dir.join("data").join("secrets.env")).unwrap();
    let master = secrets
        .lines()
        .find_map(|l| l.strip_prefix("OFFERHUB_MASTER_KEY="))
        .unwrap()
        .to_string();
    let client = reqwest::Client::new();
    // Some work for the workers (a wallet to activate), and an SSE stream left open.
    let r = client
        .post(format!("http://127.0.0.1:{port}/api/v1/users"))
        .bearer_auth(&master)
        .json(&serde_json::json!({ "externalUserId": "term-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sse = client
        .get(format!("http://127.0.0.1:{port}/api/v1/events"))
        .bearer_auth(&master)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let reader = tokio::spawn(async move { sse.bytes().await.map(|b| b.len()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = i32::try_from(daemon.0.id()).unwrap();
    let start = Instant::now();
    #[allow(unsafe_code, reason = "libc::kill: std can only SIGKILL a child")]
    // SAFETY: sending a signal to our own child process.
    let killed = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(killed, 0);
    let status = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}\n{}", daemon.log());
    let ended = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("the SSE stream ended");
    assert!(ended.is_ok());
    let log = daemon.log();
    for bad in [" ERROR ", "closed pool", "PoolClosed"] {
        assert!(!log.contains(bad), "{bad:?} in the log:\n{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

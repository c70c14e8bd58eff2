//! `offerhub wallet rotate-key --batch 1` over 1,000 real sealed wallets, interrupted
//! with SIGINT at several points while a daemon runs: after every interruption every
//! wallet still opens with the keys on disk, the daemon still activates new users
//! (opening the platform wallet re-sealed under a key it did not start with), and the
//! printed resume command continues. Then `retire-key` refuses until it is safe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use offerhub::config::{DatabaseUrl, Secret};
use offerhub::ids::{IdKind, new_id};
use offerhub::keystore;
use offerhub::services::rotation;
use offerhub::stellar::keys::Keypair;
use offerhub::store::Store;
use offerhub::vault::Vault;

const BIN: &str = env!("CARGO_BIN_EXE_offerhub");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &Path, port: u16) -> Daemon {
    Daemon(
        Command::new(BIN)
            .args(["serve", "--port", &port.to_string()])
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .env_remove("WALLET_ENCRYPTION_KEY")
            .env_remove("OFFERHUB_CONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join(format!("serve-{port}.log"))).unwrap())
            .spawn()
            .unwrap(),
    )
}

fn offerhub(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("WALLET_ENCRYPTION_KEY")
        .env_remove("OFFERHUB_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
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

fn secrets(dir: &Path) -> BTreeMap<String, String> {
    offerhub::config::read_dotenv(&dir.join("data/secrets.env")).unwrap()
}

/// Every key on disk: secrets.env (current and previous) and the key directory.
fn keys_on_disk(dir: &Path) -> (Secret, Vec<Secret>) {
    let s = secrets(dir);
    let current = Secret::new(s["WALLET_ENCRYPTION_KEY"].clone());
    let mut others: Vec<Secret> = s
        .get("WALLET_ENCRYPTION_KEYS_PREVIOUS")
        .map(|p| p.split(',').map(Secret::new).collect())
        .unwrap_or_default();
    others.extend(
        keystore::saved_keys(&keystore::key_dir(&dir.join("data")))
            .into_iter()
            .map(|(_, k)| k),
    );
    (current, others)
}

/// Creates a user over HTTP and waits until its wallet is ACTIVE on the sandbox chain.
async fn user_gets_an_active_wallet(port: u16, master: &str, external: &str) -> String {
    let c = reqwest::Client::new();
    let r: serde_json::Value = c
        .post(format!("http://127.0.0.1:{port}/api/v1/users"))
        .bearer_auth(master)
        .json(&serde_json::json!({ "externalUserId": external }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = r["data"]["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let w: serde_json::Value = c
            .get(format!("http://127.0.0.1:{port}/api/v1/users/{id}/wallet"))
            .bearer_auth(master)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if w["data"]["status"] == "ACTIVE" {
            return id;
        }
        assert!(
            Instant::now() < deadline,
            "wallet of {external} never became ACTIVE: {w}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every wallet opens with the keys on disk, and each inserted one to its own keypair.
async fn every_wallet_opens(store: &Store, dir: &Path, inserted: &[(String, String)]) {
    let (current, others) = keys_on_disk(dir);
    let vault = Vault::new(&current, &others).unwrap();
    let n = rotation::verify(store, &vault).await.unwrap();
    assert!(n >= 1001, "{n}");
    for (id, public) in inserted.iter().step_by(37) {
        let sealed: String = sqlx::query_scalar("SELECT sealed_secret FROM wallets WHERE id = $1")
            .bind(id)
            .fetch_one(store.reader())
            .await
            .unwrap();
        let seed: [u8; 32] = vault
            .open(id, &sealed)
            .unwrap()
            .as_slice()
            .try_into()
            .unwrap();
        assert_eq!(&Keypair::from_seed(&seed).public_key(), public);
    }
}

/// Runs `args`, waits until `count()` reaches `at`, sends SIGINT, returns the output.
async fn interrupt_at(
    dir: &Path,
    args: &[String],
    store: &Store,
    key_id: impl Fn() -> Option<String>,
    at: i64,
) -> (std::process::Output, i64) {
    let child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("WALLET_ENCRYPTION_KEY")
        .env_remove("OFFERHUB_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let seen = loop {
        if let Some(id) = key_id() {
            let n = rotation::count_under(store, &id).await.unwrap();
            if n >= at {
                break n;
            }
        }
        assert!(Instant::now() < deadline, "rotation did not reach {at}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    #[allow(unsafe_code, reason = "libc::kill: std can only SIGKILL a child")]
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    (child.wait_with_output().unwrap(), seen)
}

fn resume_command(stderr: &str) -> Vec<String> {
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("offerhub ") && l.contains("--resume"))
        .unwrap_or_else(|| panic!("no resume command in: {stderr}"));
    line.split_whitespace().skip(1).map(String::from).collect()
}

fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "offerhub-rotation-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interrupted_rotation_never_loses_a_key_and_the_daemon_keeps_serving() {
    let dir = temp_dir();
    let port = free_port();
    let daemon = serve(&dir, port);
    wait_healthy(port).await;
    let master = secrets(&dir)["OFFERHUB_MASTER_KEY"].clone();
    let k1 = Secret::new(secrets(&dir)["WALLET_ENCRYPTION_KEY"].clone());
    let k1_id = keystore::id_of(&k1).unwrap();
    user_gets_an_active_wallet(port, &master, "before").await;

    // 1,000 real sealed wallet rows, as the daemon seals them (key K1, wallet id as AAD).
    let db = dir.join("data/offerhub.db");
    let store = Store::connect(&DatabaseUrl::new(format!("sqlite://{}", db.display())))
        .await
        .unwrap();
    let vault = Vault::new(&k1, &[]).unwrap();
    let mut inserted = Vec::new();
    let mut tx = store.begin().await.unwrap();
    let now = offerhub::clock::now();
    for _ in 0..1000 {
        let kp = Keypair::random();
        let id = new_id(IdKind::Wallet);
        sqlx::query(
            "INSERT INTO wallets (id, user_id, kind, public_key, sealed_secret, key_id, status, created_at, updated_at) \
             VALUES ($1, NULL, 'USER', $2, $3, $4, 'ACTIVE', $5, $5)",
        )
        .bind(&id)
        .bind(kp.public_key())
        .bind(vault.seal(&id, kp.seed().as_slice()).unwrap())
        .bind(&k1_id)
        .bind(&now)
        .execute(tx.conn())
        .await
        .unwrap();
        inserted.push((id, kp.public_key()));
    }
    tx.commit().await.unwrap();

    // Without --yes and without a terminal: refused, naming the flag; nothing written.
    let out = offerhub(
        &dir,
        &["wallet", "rotate-key", "--generate", "--batch", "1"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --yes"));
    assert!(!keystore::key_dir(&dir.join("data")).exists());

    let key_dir = keystore::key_dir(&dir.join("data"));
    let new_id = || {
        keystore::saved_keys(&key_dir)
            .into_iter()
            .map(|(id, _)| id)
            .next()
    };
    let mut args: Vec<String> = [
        "wallet",
        "rotate-key",
        "--generate",
        "--batch",
        "1",
        "--yes",
    ]
    .map(String::from)
    .to_vec();
    let mut k2_id = String::new();
    for (round, at) in [150, 500, 820].into_iter().enumerate() {
        let (out, seen) = interrupt_at(&dir, &args, &store, new_id, at).await;
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(130), "round {round}: {stderr}");
        assert!(stderr.contains("Resume with:"), "{stderr}");
        assert!(seen >= at);
        k2_id = new_id().unwrap();
        // The new key was saved before any wallet moved, and secrets.env has it as the
        // current key with K1 kept as previous.
        let s = secrets(&dir);
        assert_eq!(
            keystore::id_of(&Secret::new(s["WALLET_ENCRYPTION_KEY"].clone())).unwrap(),
            k2_id
        );
        assert_eq!(s["WALLET_ENCRYPTION_KEYS_PREVIOUS"], k1.expose_secret());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let f = keystore::key_file(&key_dir, &k2_id);
            assert_eq!(
                std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let remaining = rotation::count_under(&store, &k1_id).await.unwrap();
        assert!(remaining > 0, "round {round} interrupted too late");
        every_wallet_opens(&store, &dir, &inserted).await;
        // The daemon (started with K1 only) opens the platform wallet, now sealed under
        // K2, to activate a new user.
        user_gets_an_active_wallet(port, &master, &format!("during-{round}")).await;
        if round == 0 {
            // Retiring K1 now is refused: wallets are still sealed under it.
            let out = offerhub(&dir, &["wallet", "retire-key", &k1_id, "--yes"]);
            assert_eq!(out.status.code(), Some(1));
            assert!(String::from_utf8_lossy(&out.stderr).contains("still sealed under"));
        }
        args = resume_command(&stderr);
        assert!(args.contains(&k2_id));
    }

    // Resumed to the end.
    let out = offerhub(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("verified to open with it alone"),
        "{stdout}"
    );
    every_wallet_opens(&store, &dir, &inserted).await;

    // The running daemon still seals new wallets with K1: retiring K1 is refused.
    let out = offerhub(&dir, &["wallet", "retire-key", &k1_id, "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("restart"));

    // Restart: the daemon now seals with K2 (from secrets.env). Re-seal what the old
    // daemon created meanwhile, then retire K1.
    drop(daemon);
    let port = free_port();
    let daemon = serve(&dir, port);
    wait_healthy(port).await;
    let out = offerhub(&dir, &["wallet", "rotate-key", "--resume", &k2_id, "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = offerhub(&dir, &["wallet", "retire-key", &k1_id, "--yes"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!secrets(&dir).contains_key("WALLET_ENCRYPTION_KEYS_PREVIOUS"));
    // Only K2 is left, and it opens everything.
    let only_k2 = Vault::new(
        &keystore::load_secret(&key_dir, &k2_id).unwrap().unwrap(),
        &[],
    )
    .unwrap();
    assert!(rotation::verify(&store, &only_k2).await.unwrap() >= 1004);
    user_gets_an_active_wallet(port, &master, "after").await;
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}

//! `offerhub serve` start-up, and how operator commands find the daemon's database.
//!
//! Start-up order, so that nothing misleads: load the configuration → take the data
//! directory's lock (`<data dir>/serve.lock`: one `serve` per data directory) → bind the
//! port (in use: exit 2 naming it and `--port`/`PORT`) → reach the database (within
//! 10 s, or exit naming host:port and the cause) → migrate → start the embedded sandbox
//! → only now write state files (`sandbox-url`) and print "on http://…" → serve.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use offerhub::config::{Config, DatabaseUrl, Sources};
use offerhub::store::{Store, StoreOptions};

/// How long start-up and operator commands wait for the database.
pub const DB_TIMEOUT: Duration = Duration::from_secs(10);

/// Flags of `offerhub serve` (each also an environment variable).
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Port to listen on [env: PORT; default 4000].
    #[arg(long)]
    pub port: Option<u16>,
    /// Address to listen on, e.g. 127.0.0.1 or 0.0.0.0 [env: HOST; default 127.0.0.1].
    #[arg(long)]
    pub host: Option<String>,
    /// Directory of the SQLite file, generated secrets, keys and state files
    /// [env: OFFERHUB_DATA_DIR; default ./data beside the configuration file].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also serve Prometheus metrics at plain /metrics on this address, without
    /// authentication, e.g. 127.0.0.1:9464: keep it private [env: OFFERHUB_METRICS_ADDR;
    /// default off]. Traces: set OTEL_EXPORTER_OTLP_ENDPOINT.
    #[arg(long)]
    pub metrics_addr: Option<String>,
}

impl ServeArgs {
    /// Puts the flags into `sources` as the environment variables they stand for.
    pub fn apply(&self, sources: &mut Sources) {
        if let Some(p) = self.port {
            sources.env.insert("PORT".into(), p.to_string());
        }
        if let Some(h) = &self.host {
            sources.env.insert("HOST".into(), h.clone());
        }
        if let Some(m) = &self.metrics_addr {
            sources
                .env
                .insert("OFFERHUB_METRICS_ADDR".into(), m.clone());
        }
        if let Some(d) = &self.data_dir {
            let d = std::path::absolute(d).unwrap_or_else(|_| d.clone());
            sources
                .env
                .insert("OFFERHUB_DATA_DIR".into(), d.display().to_string());
        }
    }
}

/// The lock file of a data directory.
fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join("serve.lock")
}

/// The record of the `serve` holding `data_dir`'s lock, or `None` when none runs.
pub fn running(data_dir: &Path) -> Option<serde_json::Value> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(lock_path(data_dir))
        .ok()?;
    match f.try_lock() {
        Ok(()) => {
            let _ = f.unlock();
            None
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            f.read_to_string(&mut text).ok()?;
            Some(serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({})))
        }
        Err(_) => None,
    }
}

/// Takes the data directory's lock; `Err` holds the message naming the running daemon.
fn lock(data_dir: &Path) -> Result<std::fs::File, String> {
    let path = lock_path(data_dir);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            let who = running(data_dir)
                .map(|v| format!(" (pid {}, port {})", v["pid"], v["port"]))
                .unwrap_or_default();
            Err(format!(
                "another `offerhub serve`{who} already uses the data directory {}: stop it, \
                 or give this one its own with --data-dir (or OFFERHUB_DATA_DIR)",
                data_dir.display()
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

fn record(f: &mut std::fs::File, value: &serde_json::Value) -> std::io::Result<()> {
    f.set_len(0)?;
    f.rewind()?;
    f.write_all(value.to_string().as_bytes())?;
    f.sync_all()
}

/// `host:port` of a PostgreSQL URL (never its password), or the SQLite file.
pub fn describe(url: &DatabaseUrl) -> String {
    if let Some(p) = sqlite_file(url) {
        return p.display().to_string();
    }
    match url::Url::parse(url.expose()) {
        Ok(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or("localhost"),
            u.port().unwrap_or(5432)
        ),
        Err(_) => "the configured database".into(),
    }
}

/// The SQLite file of a `sqlite:` URL (`None` for PostgreSQL and in-memory databases).
pub fn sqlite_file(url: &DatabaseUrl) -> Option<PathBuf> {
    let raw = url.expose();
    let rest = raw
        .strip_prefix("sqlite://")
        .or_else(|| raw.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(':')).then(|| PathBuf::from(path))
}

/// One connection attempt within [`DB_TIMEOUT`], so that a failure names its cause
/// (a pool would retry until its own timeout and say only "timed out").
async fn probe(url: &DatabaseUrl) -> Result<(), String> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let target = describe(url);
    match tokio::time::timeout(DB_TIMEOUT, sqlx::AnyConnection::connect(url.expose())).await {
        Ok(Ok(c)) => {
            let _ = c.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(format!("cannot reach the database at {target}: {e}")),
        Err(_) => Err(format!(
            "cannot reach the database at {target}: no answer within {} s",
            DB_TIMEOUT.as_secs()
        )),
    }
}

/// Opens the database of an operator command: never creates one. A missing SQLite file
/// or a database without OfferHub's tables is "no OfferHub database at …".
pub async fn open_existing(config: &Config) -> Result<Store, String> {
    let not_here = |what: String| {
        format!(
            "no OfferHub database at {what}: run in the serve directory or pass --config \
             (data directory: {})",
            config.data_dir.display()
        )
    };
    if let Some(file) = sqlite_file(&config.database_url)
        && !file.is_file()
    {
        return Err(not_here(file.display().to_string()));
    }
    probe(&config.database_url).await?;
    let store = Store::connect(&config.database_url)
        .await
        .map_err(|e| format!("{e}"))?;
    let migrated = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(store.reader())
        .await
        .is_ok_and(|n| n > 0);
    if !migrated {
        return Err(not_here(describe(&config.database_url)));
    }
    store.migrate().await.map_err(|e| format!("{e}"))?;
    Ok(store)
}

/// Opens (creating when needed) and migrates the database, within [`DB_TIMEOUT`] for
/// the first connection (`serve`, `db migrate`), with `opts` (the daemon's background
/// checkpoints).
pub async fn open_or_create(config: &Config, opts: StoreOptions) -> Result<Store, String> {
    if sqlite_file(&config.database_url).is_none() {
        probe(&config.database_url).await?;
    }
    let store = Store::connect_with(&config.database_url, opts)
        .await
        .map_err(|e| format!("{e}"))?;
    store.migrate().await.map_err(|e| {
        format!(
            "cannot migrate the database at {}: {e}",
            describe(&config.database_url)
        )
    })?;
    Ok(store)
}

/// On the embedded sandbox: `Some(reason)` when the database already belongs to another
/// chain — its platform wallet is active there but unknown to this daemon's sandbox
/// (another daemon's data directory with its own sandbox, or a sandbox state that was
/// deleted). Serving would show wallets "ACTIVE" that do not exist.
async fn foreign_chain(
    store: &offerhub::store::Store,
    sandbox: &std::net::SocketAddr,
) -> Option<String> {
    let platform = offerhub::services::wallets::platform(store).await.ok()??;
    if platform.status != offerhub::services::wallets::WalletStatus::Active {
        return None;
    }
    let url = format!("http://{sandbox}/accounts/{}", platform.public_key);
    let status = reqwest::get(&url).await.ok()?.status();
    (status == reqwest::StatusCode::NOT_FOUND).then(|| {
        format!(
            "this database belongs to another chain: its platform wallet {} is not on this \
             daemon's embedded sandbox (the database is shared with another daemon's data \
             directory, or this data directory's sandbox state was removed); run each \
             sandbox daemon on its own database, or point STELLAR_HORIZON_URL at the one \
             sandbox they share (`offerhub sandbox`)",
            platform.public_key
        )
    })
}

/// `offerhub serve`.
pub async fn run(mut config: Config) -> anyhow::Result<ExitCode> {
    offerhub::store::private_dir(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the data directory {}: {e}",
            config.data_dir.display()
        )
    })?;
    let mut lock_file = match lock(&config.data_dir) {
        Ok(f) => f,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Ok(ExitCode::from(2));
        }
    };
    let addr = config.bind_addr();
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            eprintln!(
                "error: port {} on {} is already in use: choose another with --port (or PORT)",
                addr.port(),
                addr.ip()
            );
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e} (set --host/--port, or HOST/PORT)");
            return Ok(ExitCode::from(2));
        }
    };
    let addr = listener.local_addr()?;
    // The daemon checkpoints SQLite's write-ahead log off the writer's path.
    let opts = StoreOptions {
        background_checkpoints: true,
        ..StoreOptions::default()
    };
    let store = match open_or_create(&config, opts).await {
        Ok(s) => s,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut state_files = Vec::new();
    if config.network == offerhub::config::Network::Sandbox && config.horizon_url.is_none() {
        let state_file = config.data_dir.join("sandbox-state.json");
        let sb = offerhub_sandbox::Sandbox::new(offerhub_sandbox::SandboxOptions {
            passphrase: None,
            state_file: Some(state_file.clone()),
        })?;
        let sandbox = offerhub_sandbox::start(sb, ([127, 0, 0, 1], 0).into()).await?;
        config.horizon_url = Some(url::Url::parse(&format!("http://{sandbox}"))?);
        // Operator commands (reconcile, disputes, sandbox fund) find the running sandbox
        // here; written only now that this daemon holds the lock and its port.
        if let Some(problem) = foreign_chain(&store, &sandbox).await {
            eprintln!("error: {problem}");
            return Ok(ExitCode::from(2));
        }
        let url_file = crate::sandbox::url_file(&config.data_dir);
        std::fs::write(&url_file, format!("http://{sandbox}\n"))?;
        state_files.push(url_file);
        eprintln!(
            "Sandbox network (Horizon) on http://{sandbox}, state in {}",
            state_file.display()
        );
    }
    let sealing = config
        .wallet_encryption_key
        .as_ref()
        .and_then(offerhub::keystore::id_of);
    record(
        &mut lock_file,
        &serde_json::json!({
            "pid": std::process::id(),
            "port": addr.port(),
            "sealingKeyId": sealing,
            "startedAt": offerhub::clock::now(),
        }),
    )?;
    eprintln!(
        "OfferHub {} on http://{addr} (database: {}, network: {}, data: {})",
        offerhub::VERSION,
        config.database_url,
        config.network.as_str(),
        config.data_dir.display()
    );
    let served = offerhub_daemon::serve_on(listener, store, config).await;
    for f in state_files {
        let _ = std::fs::remove_file(f);
    }
    let _ = record(&mut lock_file, &serde_json::json!({}));
    drop(lock_file);
    served?;
    Ok(ExitCode::SUCCESS)
}

//! `offerhub wallet rotate-key | retire-key | keys`: wallet-key rotation that cannot
//! lose a key.
//!
//! rotate-key saves the new key before it re-encrypts anything (`<data dir>/wallet-keys/
//! <id>.key`, mode 0600, fsync'd; on a sandbox instance also `data/secrets.env`, the old
//! key kept as previous), asks for confirmation (`--yes` skips it), stops cleanly
//! between batches on Ctrl-C printing the command that resumes, and proves at the end
//! that every wallet opens with the new key alone. A running daemon over the same data
//! directory loads the new key from the key directory the first time it meets a wallet
//! sealed under it. retire-key removes an old key only after proving nothing is sealed
//! under it and no local daemon still seals with it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Subcommand};
use offerhub::config::{Config, Secret};
use offerhub::keystore;
use offerhub::services::rotation;
use offerhub::store::Store;
use offerhub::vault::Vault;

use crate::context::Globals;
use crate::output::{Output, OutputArgs, print_json, table};

/// `offerhub wallet …`.
#[derive(Subcommand)]
pub enum WalletCommand {
    /// Re-encrypt every wallet secret under a new key, in batches. The new key is saved
    /// first (data/wallet-keys/<key id>.key, mode 0600; on the sandbox also
    /// data/secrets.env), so an interruption never loses it; Ctrl-C stops between
    /// batches and prints the command that resumes. A running daemon over the same data
    /// directory picks the new key up from there. Ends by proving every wallet opens
    /// with the new key alone.
    RotateKey(RotateArgs),
    /// Forget an old key (a key id from `wallet keys`) after proving that nothing is
    /// sealed under it and that the local daemon no longer seals with it.
    RetireKey {
        /// The key id (16 hex characters) to retire.
        key_id: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// The wallet keys: which one seals, which are loaded or saved, and how many wallets
    /// each one seals.
    Keys {
        #[command(flatten)]
        output: OutputArgs,
    },
}

pub async fn run(command: WalletCommand, globals: Globals) -> anyhow::Result<ExitCode> {
    let config_flag = globals.config.clone();
    let (config, store) = match globals.existing_store().await {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    match command {
        WalletCommand::RotateKey(args) => {
            rotate(&config, config_flag.as_deref(), &store, args).await
        }
        WalletCommand::RetireKey { key_id, yes } => retire(&config, &store, &key_id, yes).await,
        WalletCommand::Keys { output } => keys(&config, &store, output.output).await,
    }
}

/// Arguments of `wallet rotate-key`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("key").required(true).args(["new_key", "generate", "resume"])))]
pub struct RotateArgs {
    /// The new key (64 hex characters).
    #[arg(
        long,
        env = "OFFERHUB_NEW_WALLET_ENCRYPTION_KEY",
        hide_env_values = true
    )]
    new_key: Option<String>,
    /// Generate the new key (it is saved, and shown, before any wallet is touched).
    #[arg(long)]
    generate: bool,
    /// Continue an interrupted rotation to the saved key with this id.
    #[arg(long, value_name = "KEY_ID")]
    resume: Option<String>,
    /// Wallets per database transaction.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: u32,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// Asks `question` on a terminal. `Err(exit code)` when the answer is no (1), or when
/// there is no terminal to ask on (2, after saying that `--yes` skips the question).
pub fn confirm(question: &str, yes: bool) -> Result<(), ExitCode> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        eprintln!("{question}\nno terminal to ask for confirmation on: pass --yes to confirm");
        return Err(ExitCode::from(2));
    }
    match dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
    {
        Ok(true) => Ok(()),
        _ => {
            eprintln!("nothing changed");
            Err(ExitCode::FAILURE)
        }
    }
}

/// Where `offerhub serve` records itself while it runs (see [`crate::serve`]).
fn running_daemon(data_dir: &Path) -> Option<serde_json::Value> {
    crate::serve::running(data_dir)
}

/// The secrets.env of a sandbox instance whose current key came from it.
fn sandbox_secrets(config: &Config, current: &Secret) -> Option<PathBuf> {
    if config.network != offerhub::config::Network::Sandbox {
        return None;
    }
    let path = offerhub::config::generated_secrets_path(&config.data_dir);
    let stored = offerhub::config::read_dotenv(&path).ok()?;
    (stored.get("WALLET_ENCRYPTION_KEY").map(String::as_str) == Some(current.expose_secret()))
        .then_some(path)
}

/// Every key this instance knows: configured current and previous, saved ones.
fn known_keys(config: &Config) -> Vec<Secret> {
    let mut keys: Vec<Secret> = config.wallet_encryption_key.iter().cloned().collect();
    keys.extend(config.wallet_encryption_keys_previous.iter().cloned());
    keys.extend(
        keystore::saved_keys(&keystore::key_dir(&config.data_dir))
            .into_iter()
            .map(|(_, k)| k),
    );
    keys
}

fn find_key(config: &Config, id: &str) -> Option<Secret> {
    known_keys(config)
        .into_iter()
        .find(|k| keystore::id_of(k).as_deref() == Some(id))
}

/// `wallet rotate-key`: works out the [`Plan`] and asks, then installs the Ctrl-C
/// handler, saves the new key durably, re-encrypts batch by batch and reports (or
/// prints the command that resumes).
pub async fn rotate(
    config: &Config,
    config_flag: Option<&Path>,
    store: &Store,
    args: RotateArgs,
) -> anyhow::Result<ExitCode> {
    let Some(current) = config.wallet_encryption_key.clone() else {
        eprintln!("WALLET_ENCRYPTION_KEY is not set: there is nothing to rotate from");
        return Ok(ExitCode::from(2));
    };
    let key_dir = keystore::key_dir(&config.data_dir);
    let new_key = match choose_new_key(config, &key_dir, &args) {
        Ok(k) => k,
        Err(code) => return Ok(code),
    };
    let new_id = keystore::id_of(&new_key).unwrap_or_default();
    let current_id = keystore::id_of(&current).unwrap_or_default();
    let todo = rotation::count_not_under(store, &new_id).await?;
    let secrets_env = (new_id != current_id)
        .then(|| sandbox_secrets(config, &current))
        .flatten();
    let key_file = keystore::key_file(&key_dir, &new_id);
    let plan = Plan {
        current,
        current_id,
        new_key,
        new_id,
        key_dir,
        key_file,
        secrets_env,
        todo,
        batch: args.batch,
    };
    if let Err(code) = confirm(&plan.describe(config), args.yes) {
        return Ok(code);
    }

    // Ctrl-C from here on stops between batches (the handler is installed now, before
    // anything is written).
    let stop = stop_on_signal()?;

    // 1. Save the new key durably, before the first wallet is touched.
    let saved = plan.save_key(config, args.generate)?;

    // 2. Re-encrypt, batch by batch.
    let r = plan.reseal(config, store, &stop).await?;
    Ok(plan.report(config, config_flag, &saved, &r))
}

/// The new key of `wallet rotate-key`: `--new-key`, the saved or configured key
/// `--resume` names, or (`--generate`) a fresh one. `Err(2)` after saying what is wrong.
fn choose_new_key(config: &Config, key_dir: &Path, args: &RotateArgs) -> Result<Secret, ExitCode> {
    match (&args.new_key, &args.resume) {
        (Some(k), _) => {
            let k = Secret::new(k.trim());
            if keystore::id_of(&k).is_none() {
                eprintln!("--new-key must be 64 hexadecimal characters (32 bytes)");
                return Err(ExitCode::from(2));
            }
            Ok(k)
        }
        (None, Some(id)) => find_key(config, id).ok_or_else(|| {
            eprintln!(
                "--resume {id}: no such key in {} nor in the configuration",
                key_dir.display()
            );
            ExitCode::from(2)
        }),
        (None, None) => Ok(Secret::new(offerhub::config::generate_wallet_key())),
    }
}

/// What `wallet rotate-key` does, worked out before it asks.
struct Plan {
    /// The configured WALLET_ENCRYPTION_KEY, rotated from.
    current: Secret,
    current_id: String,
    new_key: Secret,
    new_id: String,
    key_dir: PathBuf,
    /// Where the new key is saved.
    key_file: PathBuf,
    /// The sandbox's secrets.env, when the current key came from it and changes: it is
    /// rewritten to the new key too.
    secrets_env: Option<PathBuf>,
    /// Wallet secrets not yet under the new key.
    todo: i64,
    /// Wallets per database transaction.
    batch: u32,
}

impl Plan {
    /// The question asked before anything is written.
    fn describe(&self, config: &Config) -> String {
        let Plan {
            current_id,
            new_id,
            todo,
            batch,
            ..
        } = self;
        let mut plan = format!(
            "Re-encrypt {todo} wallet secret(s) under key {new_id} (batches of {batch}).\n\
             The new key is saved first to {} (mode 0600)",
            self.key_file.display()
        );
        if let Some(p) = &self.secrets_env {
            plan.push_str(&format!(
                " and into {} as WALLET_ENCRYPTION_KEY (key {current_id} kept as \
                 WALLET_ENCRYPTION_KEYS_PREVIOUS)",
                p.display()
            ));
        }
        plan.push_str(&format!(
            ".\nA daemon using {} loads it from there when it needs it; daemons on other \
             hosts need it in WALLET_ENCRYPTION_KEYS_PREVIOUS before you continue \
             (docs/OPERATIONS.md).\nContinue?",
            config.data_dir.display()
        ));
        plan
    }

    /// Step 1: saves the new key durably (fsync'd, mode 0600) into the key directory
    /// and, on the sandbox, into secrets.env with the current key kept as previous;
    /// shows a generated key otherwise. Returns where the key file is.
    fn save_key(&self, config: &Config, generate: bool) -> anyhow::Result<PathBuf> {
        let Plan {
            new_key,
            new_id,
            current_id,
            ..
        } = self;
        let saved = keystore::save_key(&self.key_dir, new_key).map_err(|e| {
            anyhow::anyhow!(
                "cannot save the new key to {}: {e}",
                self.key_file.display()
            )
        })?;
        eprintln!("saved key {new_id} to {} (mode 0600)", saved.display());
        if let Some(p) = &self.secrets_env {
            let previous = self.previous_keys(config);
            keystore::update_env_file(
                p,
                &[
                    ("WALLET_ENCRYPTION_KEY", Some(new_key.expose_secret())),
                    ("WALLET_ENCRYPTION_KEYS_PREVIOUS", Some(&previous)),
                ],
            )
            .map_err(|e| anyhow::anyhow!("cannot update {}: {e}", p.display()))?;
            eprintln!(
                "{}: WALLET_ENCRYPTION_KEY is now key {new_id}, key {current_id} is kept as previous",
                p.display()
            );
        } else if generate {
            println!(
                "New WALLET_ENCRYPTION_KEY (key {new_id}; also in {}):\n{}",
                saved.display(),
                new_key.expose_secret()
            );
        }
        Ok(saved)
    }

    /// WALLET_ENCRYPTION_KEYS_PREVIOUS once the new key is current: the current key,
    /// then the configured previous ones (neither the new key nor duplicates).
    fn previous_keys(&self, config: &Config) -> String {
        let mut previous: Vec<String> = vec![self.current.expose_secret().to_string()];
        for k in &config.wallet_encryption_keys_previous {
            if keystore::id_of(k).as_deref() != Some(self.new_id.as_str())
                && !previous.iter().any(|x| x == k.expose_secret())
            {
                previous.push(k.expose_secret().to_string());
            }
        }
        previous.join(",")
    }

    /// Step 2: re-encrypts batch by batch under the new key (every known key opens),
    /// with a progress bar on a terminal, until done or `stop` says so.
    async fn reseal(
        &self,
        config: &Config,
        store: &Store,
        stop: &AtomicBool,
    ) -> anyhow::Result<rotation::Rotation> {
        let vault = Vault::new(&self.new_key, &known_keys(config))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_key_dir(&self.key_dir);
        let bar = indicatif::ProgressBar::new(self.todo.max(0) as u64);
        if !std::io::stderr().is_terminal() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} wallets re-encrypted")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let stopping = || stop.load(Ordering::SeqCst);
        let r = rotation::rotate(store, &vault, self.batch, &stopping, &|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .await?;
        bar.finish_and_clear();
        Ok(r)
    }

    /// The outcome: when stopped, the command that resumes (exit 130); when done, what
    /// to do next.
    fn report(
        &self,
        config: &Config,
        config_flag: Option<&Path>,
        saved: &Path,
        r: &rotation::Rotation,
    ) -> ExitCode {
        let Plan {
            new_id, current_id, ..
        } = self;
        let resume = format!(
            "offerhub {}wallet rotate-key --resume {new_id} --batch {} --yes",
            config_flag
                .map(|p| format!("--config {} ", p.display()))
                .unwrap_or_default(),
            self.batch
        );
        if r.interrupted || r.remaining > 0 {
            eprintln!(
                "stopped: {} re-encrypted now, {} still under an older key. Every wallet opens \
                 with the keys on disk. Resume with:\n  {resume}",
                r.resealed, r.remaining
            );
            return ExitCode::from(130);
        }
        println!(
            "re-encrypted {} wallet(s) under key {new_id}; all {} verified to open with it alone",
            r.resealed, r.verified
        );
        let next = if self.secrets_env.is_some() || sandbox_secrets(config, &self.new_key).is_some()
        {
            "restart the daemon (it then seals new wallets with the new key)".to_string()
        } else {
            format!(
                "set WALLET_ENCRYPTION_KEY to key {new_id} (in {}) on every daemon and move \
                 the old key to WALLET_ENCRYPTION_KEYS_PREVIOUS, restart them",
                saved.display()
            )
        };
        println!(
            "Next: {next}; run `offerhub wallet rotate-key --resume {new_id}` once more to \
             re-seal wallets created meanwhile; then `offerhub wallet retire-key {current_id}`."
        );
        ExitCode::SUCCESS
    }
}

/// A flag that SIGINT or SIGTERM (on Unix) sets, for the rotation to stop between
/// batches.
fn stop_on_signal() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    {
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let mut sigterm =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = sigint.recv() => {},
                _ = sigterm.recv() => {},
            }
            stop.store(true, Ordering::SeqCst);
        });
    }
    Ok(stop)
}

/// `wallet retire-key`: refuses while the key is still in use, proves every wallet
/// opens without it, asks, then removes it from the key directory and the sandbox's
/// secrets.env.
pub async fn retire(
    config: &Config,
    store: &Store,
    key_id: &str,
    yes: bool,
) -> anyhow::Result<ExitCode> {
    if !keystore::is_key_id(key_id) {
        eprintln!("{key_id:?} is not a key id (16 hex characters; see `offerhub wallet keys`)");
        return Ok(ExitCode::from(2));
    }
    let Some(current) = config.wallet_encryption_key.clone() else {
        eprintln!("WALLET_ENCRYPTION_KEY is not set");
        return Ok(ExitCode::from(2));
    };
    let current_id = keystore::id_of(&current).unwrap_or_default();
    if let Some(code) = still_in_use(config, store, key_id, &current_id).await? {
        return Ok(code);
    }
    let verified = match verify_without(config, store, &current, key_id).await? {
        Ok(n) => n,
        Err(code) => return Ok(code),
    };
    if let Err(code) = confirm(
        &format!(
            "All {verified} wallet secret(s) open without key {key_id}. Remove it from this \
             instance's key files? (Backups taken before the rotation still need it.)"
        ),
        yes,
    ) {
        return Ok(code);
    }
    let mut removed_from = Vec::new();
    let dir = keystore::key_dir(&config.data_dir);
    if keystore::load_key(&dir, key_id)?.is_some() {
        keystore::remove_key(&dir, key_id)?;
        removed_from.push(keystore::key_file(&dir, key_id).display().to_string());
    }
    let secrets = offerhub::config::generated_secrets_path(&config.data_dir);
    if drop_previous_key(&secrets, key_id)? {
        removed_from.push(secrets.display().to_string());
    }
    report_retired(config, key_id, verified, &removed_from, &secrets);
    Ok(ExitCode::SUCCESS)
}

/// `Some(exit code)`, after saying why, when `key_id` is still in use: it is the
/// current key (`current_id`), wallets are sealed under it, or the daemon running on
/// this data directory still seals with it.
async fn still_in_use(
    config: &Config,
    store: &Store,
    key_id: &str,
    current_id: &str,
) -> anyhow::Result<Option<ExitCode>> {
    if current_id == key_id {
        eprintln!(
            "key {key_id} is the current WALLET_ENCRYPTION_KEY: rotate to a new key first \
             (`offerhub wallet rotate-key --generate`)"
        );
        return Ok(Some(ExitCode::FAILURE));
    }
    let under = rotation::count_under(store, key_id).await?;
    if under > 0 {
        eprintln!(
            "refused: {under} wallet secret(s) are still sealed under key {key_id}; finish \
             the rotation first (`offerhub wallet rotate-key --resume {current_id}`)"
        );
        return Ok(Some(ExitCode::FAILURE));
    }
    if let Some(d) = running_daemon(&config.data_dir)
        && d["sealingKeyId"].as_str() == Some(key_id)
    {
        eprintln!(
            "refused: the daemon running on this data directory (pid {}) still seals new \
             wallets with key {key_id}; restart it so that it uses key {current_id}, then retry",
            d["pid"]
        );
        return Ok(Some(ExitCode::FAILURE));
    }
    Ok(None)
}

/// The proof: every sealed value opens with the current key and the known keys other
/// than `key_id`. `Ok(Err(1))`, after saying so, when one does not.
async fn verify_without(
    config: &Config,
    store: &Store,
    current: &Secret,
    key_id: &str,
) -> anyhow::Result<Result<usize, ExitCode>> {
    let remaining: Vec<Secret> = known_keys(config)
        .into_iter()
        .filter(|k| keystore::id_of(k).as_deref() != Some(key_id))
        .collect();
    let vault = Vault::new(current, &remaining).map_err(|e| anyhow::anyhow!("{e}"))?;
    match rotation::verify(store, &vault).await {
        Ok(n) => Ok(Ok(n)),
        Err(e) => {
            eprintln!("refused: not every wallet opens without key {key_id}: {e}");
            Ok(Err(ExitCode::FAILURE))
        }
    }
}

/// Removes `key_id` from WALLET_ENCRYPTION_KEYS_PREVIOUS in the sandbox's `secrets`
/// file (the variable goes when nothing is left); whether it was there.
fn drop_previous_key(secrets: &Path, key_id: &str) -> anyhow::Result<bool> {
    let Ok(stored) = offerhub::config::read_dotenv(secrets) else {
        return Ok(false);
    };
    let Some(prev) = stored.get("WALLET_ENCRYPTION_KEYS_PREVIOUS") else {
        return Ok(false);
    };
    let kept: Vec<&str> = prev
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty() && keystore::id_of(&Secret::new(*k)).as_deref() != Some(key_id))
        .collect();
    if kept.len() == prev.split(',').filter(|k| !k.trim().is_empty()).count() {
        return Ok(false);
    }
    let joined = kept.join(",");
    keystore::update_env_file(
        secrets,
        &[(
            "WALLET_ENCRYPTION_KEYS_PREVIOUS",
            (!kept.is_empty()).then_some(joined.as_str()),
        )],
    )?;
    Ok(true)
}

/// What `wallet retire-key` did, and whether the configuration still names the key.
fn report_retired(
    config: &Config,
    key_id: &str,
    verified: usize,
    removed_from: &[String],
    secrets: &Path,
) {
    println!(
        "key {key_id} retired: nothing is sealed under it ({verified} wallet secret(s) verified)"
    );
    if !removed_from.is_empty() {
        println!("removed from {}", removed_from.join(" and "));
    }
    let still_configured = config
        .wallet_encryption_keys_previous
        .iter()
        .any(|k| keystore::id_of(k).as_deref() == Some(key_id))
        && removed_from
            .iter()
            .all(|p| *p != secrets.display().to_string());
    if still_configured {
        println!(
            "remove it from WALLET_ENCRYPTION_KEYS_PREVIOUS in your configuration (.env, \
             environment or offerhub.toml) and restart the daemons"
        );
    }
}

/// `wallet keys`.
pub async fn keys(config: &Config, store: &Store, output: Output) -> anyhow::Result<ExitCode> {
    let dir = keystore::key_dir(&config.data_dir);
    let current = config
        .wallet_encryption_key
        .as_ref()
        .and_then(keystore::id_of);
    let previous: Vec<String> = config
        .wallet_encryption_keys_previous
        .iter()
        .filter_map(keystore::id_of)
        .collect();
    let saved: Vec<String> = keystore::saved_keys(&dir)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut ids: Vec<String> = current.iter().cloned().collect();
    for id in previous.iter().chain(saved.iter()) {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    let mut rows = Vec::new();
    for id in &ids {
        let mut roles = Vec::new();
        if current.as_deref() == Some(id.as_str()) {
            roles.push("current");
        }
        if previous.contains(id) {
            roles.push("previous");
        }
        if saved.contains(id) {
            roles.push("saved");
        }
        rows.push(serde_json::json!({
            "keyId": id,
            "roles": roles,
            "sealed": rotation::count_under(store, id).await?,
        }));
    }
    let total = rotation::count_not_under(store, "-").await?;
    let known: i64 = rows.iter().filter_map(|r| r["sealed"].as_i64()).sum();
    match output {
        Output::Json => print_json(&serde_json::json!({
            "keys": rows,
            "sealedUnderUnknownKeys": total - known,
            "keyDirectory": dir,
        }))?,
        Output::Table => {
            println!(
                "{}",
                table(
                    &["KEY ID", "ROLE", "WALLETS SEALED"],
                    rows.iter().map(|r| vec![
                        r["keyId"].as_str().unwrap_or_default().to_string(),
                        r["roles"]
                            .as_array()
                            .map(|a| a
                                .iter()
                                .filter_map(|v| v.as_str())
                                .collect::<Vec<_>>()
                                .join(","))
                            .unwrap_or_default(),
                        r["sealed"].to_string(),
                    ])
                )
            );
            if total - known > 0 {
                println!(
                    "{} wallet secret(s) are sealed under a key this instance does not have",
                    total - known
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

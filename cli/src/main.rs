//! `offerhub`: the daemon (`serve`) and the operator's tools.
//!
//! This file holds the command line and the dispatch; each command group lives in its
//! module with its arguments and its `run`. [`context`] loads the configuration and
//! the database, [`logging`] sets up logs and traces, [`output`] prints tables and JSON.

mod audit;
mod context;
mod db;
mod disputes;
mod init;
mod keys;
mod ledger;
mod logging;
mod output;
mod reconcile;
mod sagas;
mod sandbox;
mod serve;
mod wallet;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::context::Globals;
use crate::logging::LogFormat;

#[derive(Parser)]
#[command(
    name = "offerhub",
    version,
    about = "OfferHub: self-hosted payments orchestrator for marketplaces"
)]
struct Cli {
    /// Configuration file (default: ./offerhub.toml when present).
    #[arg(long, global = true, env = "OFFERHUB_CONFIG")]
    config: Option<PathBuf>,
    /// Print which configuration file, data directory and database are used (stderr).
    #[arg(long, short = 'v', global = true, env = "OFFERHUB_VERBOSE")]
    verbose: bool,
    /// Log format on stderr: text (colours only on a terminal) or json (one object a
    /// line). Levels come from RUST_LOG, e.g. RUST_LOG=info,offerhub::access=warn.
    #[arg(
        long,
        global = true,
        env = "OFFERHUB_LOG_FORMAT",
        value_enum,
        ignore_case = true,
        default_value_t = LogFormat::Text
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: migrate the database, then serve the API until SIGINT/SIGTERM.
    /// One `serve` per data directory (data/serve.lock).
    Serve(serve::ServeArgs),
    /// Create a configuration directory: offerhub.toml, .env (fresh secrets, mode 0600),
    /// docker-compose.yml (PostgreSQL) and a systemd unit.
    Init(init::InitArgs),
    /// Manage API keys directly in the database (actor: operator).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Database maintenance.
    #[command(subcommand)]
    Db(db::DbCommand),
    /// The hash-chained audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// The double-entry ledger.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Webhooks: outbound endpoints and deliveries, received provider (Airtm) webhooks; replay.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Run the sandbox network alone (Horizon subset and Trustless Work V1 on loopback),
    /// or fund an address.
    #[command(args_conflicts_with_subcommands = true)]
    Sandbox {
        #[command(subcommand)]
        command: Option<sandbox::SandboxCommand>,
        #[command(flatten)]
        run: sandbox::SandboxRunArgs,
    },
    /// Wallet secrets: key rotation (rotate-key, retire-key, keys).
    #[command(subcommand)]
    Wallet(wallet::WalletCommand),
    /// Compare every wallet's on-chain USDC with its ledger balance, every escrow
    /// contract's balance with `escrow:{order}`, and the platform wallet's USDC with
    /// `fees:platform`; exit 1 on any discrepancy, 3 when it could not check
    /// (cron-friendly). `--fix` first credits deposits the monitor missed.
    Reconcile(reconcile::ReconcileArgs),
    /// Escrow disputes: list, show, assign, resolve on chain.
    #[command(subcommand)]
    Disputes(disputes::DisputesCommand),
    /// Sagas (the on-chain steps of escrow operations): list, retry.
    #[command(subcommand)]
    Sagas(sagas::SagasCommand),
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_) | Command::Sandbox { .. }) {
        // `offerhub … | head`: end quietly when the reader goes away (no panic on a
        // broken pipe). The daemon keeps ignoring SIGPIPE (its sockets report EPIPE).
        #[cfg(unix)]
        #[allow(unsafe_code, reason = "libc::signal: std has no API for SIGPIPE")]
        // SAFETY: restores the default disposition of SIGPIPE before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let serving = matches!(cli.command, Command::Serve(_));
    let default_level = if serving { "info" } else { "warn" };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let traces = match logging::traces(serving, &runtime) {
        Ok(t) => t,
        Err(code) => return code,
    };
    logging::init(cli.log_format, default_level, traces.as_ref());
    if let Some(t) = &traces {
        tracing::info!(url = %t.url, "exporting traces over OTLP");
    }
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    if let Some(t) = traces {
        t.shutdown();
    }
    code
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let globals = Globals {
        config: cli.config,
        verbose: cli.verbose,
    };
    match cli.command {
        Command::Completions { shell } => {
            let out = &mut std::io::stdout();
            clap_complete::generate(shell, &mut Cli::command(), "offerhub", out);
            Ok(ExitCode::SUCCESS)
        }
        Command::Init(args) => init::run(args),
        Command::Serve(args) => match globals.load_config(true, Some(&args)) {
            Ok(config) => serve::run(config).await,
            Err(code) => Ok(code),
        },
        Command::Sandbox { command, run } => sandbox::run(command, run, globals).await,
        Command::Keys(command) => keys::run(command, globals).await,
        Command::Db(command) => db::run(command, globals).await,
        Command::Audit(command) => audit::run(command, globals).await,
        Command::Ledger(command) => ledger::run(command, globals).await,
        Command::Webhooks(command) => webhooks::run(command, globals).await,
        Command::Wallet(command) => wallet::run(command, globals).await,
        Command::Reconcile(args) => reconcile::run(args, globals).await,
        Command::Disputes(command) => disputes::run(command, globals).await,
        Command::Sagas(command) => sagas::run(command, globals).await,
    }
}

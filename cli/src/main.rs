//! `offerhub`: the daemon (`serve`) and the operator's tools.

mod disputes;
mod init;
mod output;
mod serve;
mod wallet;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use offerhub::config::{Config, Sources};
use offerhub::context::Context;
use offerhub::pagination::PageRequest;
use offerhub::services::{inbox, keys, webhooks};
use offerhub::store::Store;

use crate::output::{Output, print_json, table};

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

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
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
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Database maintenance.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// The hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The double-entry ledger.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Webhooks: outbound endpoints and deliveries, received provider (Airtm) webhooks; replay.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Run the sandbox network alone (Horizon subset and Trustless Work V1 on loopback),
    /// or fund an address.
    #[command(args_conflicts_with_subcommands = true)]
    Sandbox {
        #[command(subcommand)]
        command: Option<SandboxCommand>,
        #[command(flatten)]
        run: SandboxRunArgs,
    },
    /// Wallet secrets: key rotation (rotate-key, retire-key, keys).
    Wallet {
        #[command(subcommand)]
        command: wallet::WalletCommand,
    },
    /// Compare every wallet's on-chain USDC with its ledger balance, every escrow
    /// contract's balance with `escrow:{order}`, and the platform wallet's USDC with
    /// `fees:platform`; exit 1 on any discrepancy, 3 when it could not check
    /// (cron-friendly). `--fix` first credits deposits the monitor missed.
    Reconcile {
        /// Credit missed deposits (exactly once) before checking.
        #[arg(long, env = "OFFERHUB_RECONCILE_FIX")]
        fix: bool,
        /// Wallets checked at the same time.
        #[arg(long, env = "OFFERHUB_RECONCILE_CONCURRENCY", default_value_t = 8)]
        concurrency: usize,
        /// Print the daemon's last scheduled reconciliation (`OFFERHUB_RECONCILE_EVERY`)
        /// instead of checking now: no network access. Exit 1 when it found
        /// discrepancies, 3 when there is none stored.
        #[arg(long, conflicts_with = "fix")]
        last: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Escrow disputes: list, show, assign, resolve on chain.
    Disputes {
        #[command(subcommand)]
        command: disputes::DisputesCommand,
    },
    /// Sagas (the on-chain steps of escrow operations): list, retry.
    Sagas {
        #[command(subcommand)]
        command: disputes::SagasCommand,
    },
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        /// A label for the key (e.g. the marketplace backend's name).
        #[arg(long, env = "OFFERHUB_KEY_NAME", default_value = "operator")]
        name: String,
        /// Comma-separated scopes: read, write, support.
        #[arg(
            long,
            env = "OFFERHUB_KEY_SCOPES",
            value_delimiter = ',',
            default_value = "read,write"
        )]
        scopes: Vec<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long, env = "OFFERHUB_LIMIT", default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Revoke a key; it is refused from its next request on.
    Revoke {
        /// The key id (key_…). A full secret (ohk_live_…) is accepted too, and never
        /// printed back.
        id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply pending migrations (also done by `serve`).
    Migrate,
    /// SQLite: write a consistent copy of the database to FILE while the daemon runs
    /// (`VACUUM INTO`, SQLite's online snapshot). PostgreSQL: use `pg_dump` (docs/OPERATIONS.md).
    /// Back up the wallet encryption key separately.
    Backup {
        /// The file to create (must not exist).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Re-compute the hash chain; exit 1 naming the first broken row.
    Verify {
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Args)]
struct SandboxRunArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, env = "OFFERHUB_SANDBOX_PORT", default_value_t = 8000)]
    port: u16,
    /// JSON file holding the sandbox ledger; with it the network survives restarts.
    #[arg(long, env = "OFFERHUB_SANDBOX_STATE")]
    state: Option<PathBuf>,
    /// Fault injection: latency added to every request, in milliseconds.
    #[arg(long, env = "OFFERHUB_SANDBOX_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    /// Fault injection: answer the next N requests with 503.
    #[arg(long, default_value_t = 0)]
    fail_5xx: u32,
    /// Fault injection: answer the next N requests with 429.
    #[arg(long, default_value_t = 0)]
    fail_429: u32,
    /// Fault injection: apply the next N submissions, then answer with a timeout.
    #[arg(long, default_value_t = 0)]
    timeout_after_apply: u32,
}

#[derive(Subcommand)]
enum SandboxCommand {
    /// Pay test USDC (from the issuer) or XLM (from the root account, creating the
    /// account when needed) to an address; it arrives like a real deposit.
    Fund {
        /// The G… address.
        address: String,
        /// Decimal amount, e.g. 100 or 12.5.
        amount: String,
        /// USDC or XLM.
        #[arg(long, default_value = "USDC")]
        asset: String,
        /// The sandbox's URL (default: the one a running `offerhub serve` wrote to
        /// `data/sandbox-url`, else http://127.0.0.1:8000 of `offerhub sandbox`).
        #[arg(long, env = "OFFERHUB_SANDBOX_URL")]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Prove the ledger: balanced transactions, projection equal to the journal, no
    /// negative available, reserved equal to pending holds. Exit 1 on any violation.
    Verify {
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Subcommand)]
enum WebhooksCommand {
    /// List webhook endpoints, or with --inbound the provider webhooks received
    /// (Airtm), newest first.
    List {
        /// List received provider webhooks (iwh_…) instead of endpoints.
        #[arg(long)]
        inbound: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show an endpoint (whe_…) with its latest deliveries, one delivery (whd_…), or
    /// one received provider webhook (iwh_…).
    Show {
        id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Send again: one delivery (whd_…), or with --endpoint and --since every matching
    /// event since a time to one endpoint. The running daemon sends them. With a
    /// received provider webhook (iwh_…): process it again (the daemon re-fetches the
    /// top-up or payout from Airtm; money moves at most once).
    Replay {
        /// A delivery id (whd_…) or received webhook id (iwh_…).
        delivery: Option<String>,
        /// Endpoint id (whe_…) for a replay since a time.
        #[arg(long, requires = "since", conflicts_with = "delivery")]
        endpoint: Option<String>,
        /// RFC 3339 time, e.g. 2026-11-22T00:00:00Z.
        #[arg(long, requires = "endpoint")]
        since: Option<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Args, Clone, Copy)]
pub(crate) struct OutputArgs {
    /// table or json.
    #[arg(long, env = "OFFERHUB_OUTPUT", value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_) | Command::Sandbox { .. }) {
        // `offerhub … | head`: end quietly when the reader goes away (no panic on a
        // broken pipe). The daemon keeps ignoring SIGPIPE (its sockets report EPIPE).
        #[cfg(unix)]
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Traces: the daemon exports over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let traces = if matches!(cli.command, Command::Serve(_)) {
        let url = offerhub_daemon::telemetry::traces_url_from_env(|k| std::env::var(k).ok());
        match url {
            Ok(None) => None,
            Ok(Some(url)) => {
                match offerhub_daemon::telemetry::Tracing::otlp(&url, runtime.handle().clone()) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            Err(problem) => {
                eprintln!("invalid configuration:\n  {problem}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    init_logging(cli.log_format, default_level, traces.as_ref());
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

/// The subscriber: an `EnvFilter` (`RUST_LOG`, default `default_level`), log lines on
/// stderr as text or JSON, and the OpenTelemetry layer when traces are exported.
fn init_logging(
    format: LogFormat,
    default_level: &str,
    traces: Option<&offerhub_daemon::telemetry::Tracing>,
) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let lines = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            // Plain text in files, pipes and under systemd; NO_COLOR is honoured.
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none(),
            )
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(traces.map(|t| t.layer()))
        .init();
}

/// Prints, with `--verbose`, which configuration, data directory and database a
/// command uses.
fn announce(verbose: bool, sources: &Sources, config: &Config) {
    if verbose {
        eprintln!(
            "config: {}; data directory: {}; database: {}",
            sources
                .config_file
                .as_ref()
                .map(|p| std::path::absolute(p)
                    .unwrap_or_else(|_| p.clone())
                    .display()
                    .to_string())
                .unwrap_or_else(|| "none (defaults and environment)".into()),
            config.data_dir.display(),
            serve::describe(&config.database_url)
        );
    }
}

/// Loads the configuration of an operator command without writing anything (no
/// generated secrets, no data directory); on a problem prints every issue and exits 2.
fn load_existing(path: Option<PathBuf>, verbose: bool) -> Result<Config, ExitCode> {
    match Sources::discover(path).and_then(|s| Config::load_existing(&s).map(|c| (s, c))) {
        Ok((sources, config)) => {
            announce(verbose, &sources, &config);
            Ok(config)
        }
        Err(e) => {
            eprint!("{e}");
            Err(ExitCode::from(2))
        }
    }
}

/// Opens the existing database of an operator command (never creates one).
async fn existing_store(path: Option<PathBuf>, verbose: bool) -> Result<(Config, Store), ExitCode> {
    let config = load_existing(path, verbose)?;
    match serve::open_existing(&config).await {
        Ok(store) => Ok((config, store)),
        Err(msg) => {
            eprintln!("error: {msg}");
            Err(ExitCode::from(2))
        }
    }
}

/// Loads the configuration; on a problem prints every issue and exits with 2.
fn load_config(
    path: Option<PathBuf>,
    announce_secrets: bool,
    verbose: bool,
    serve_args: Option<&serve::ServeArgs>,
) -> Result<Config, ExitCode> {
    let loaded = Sources::discover(path).and_then(|mut s| {
        if let Some(a) = serve_args {
            a.apply(&mut s);
        }
        Config::load(&s).map(|c| (s, c))
    });
    match loaded {
        Ok((sources, (config, generated))) => {
            announce(verbose, &sources, &config);
            if announce_secrets && let Some(p) = generated.written_to {
                eprintln!(
                    "Generated {} on first run and stored them in {} (mode 0600). \
                     The master key there bootstraps API keys.",
                    generated.names.join(" and "),
                    p.display()
                );
            }
            Ok(config)
        }
        Err(e) => {
            eprint!("{e}");
            Err(ExitCode::from(2))
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "offerhub",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Init(args) => init::run(args),
        Command::Sandbox {
            command:
                Some(SandboxCommand::Fund {
                    address,
                    amount,
                    asset,
                    url,
                }),
            ..
        } => {
            let url = url
                .or_else(|| {
                    let dir = Sources::discover(cli.config)
                        .and_then(|s| Config::data_dir(&s))
                        .ok()?;
                    let url = std::fs::read_to_string(dir.join("sandbox-url")).ok()?;
                    Some(url.trim().to_string())
                })
                .unwrap_or_else(|| "http://127.0.0.1:8000".into());
            sandbox_fund(&url, &address, &amount, &asset).await
        }
        Command::Sandbox { command: None, run } => {
            let sb = offerhub_sandbox::Sandbox::new(offerhub_sandbox::SandboxOptions {
                passphrase: None,
                state_file: run.state.clone(),
            })?;
            let addr =
                offerhub_sandbox::start(sb.clone(), ([127, 0, 0, 1], run.port).into()).await?;
            println!("OfferHub sandbox (Horizon subset) on http://{addr}");
            println!("network passphrase: {}", sb.passphrase());
            println!("USDC: {} issued by {}", sb.usdc().code, sb.usdc().issuer);
            if let Some(p) = &run.state {
                println!("state: {}", p.display());
            }
            tokio::signal::ctrl_c().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            let config = match load_config(cli.config, true, cli.verbose, Some(&args)) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            serve::run(config).await
        }
        Command::Db {
            command: DbCommand::Migrate,
        } => {
            let config = match load_config(cli.config, false, cli.verbose, None) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            if let Err(msg) = serve::open_or_create(&config).await {
                eprintln!("error: {msg}");
                return Ok(ExitCode::FAILURE);
            }
            println!("migrations applied to {}", config.database_url);
            Ok(ExitCode::SUCCESS)
        }
        Command::Db {
            command: DbCommand::Backup { file },
        } => {
            let (config, store) = match existing_store(cli.config, cli.verbose).await {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            if config.database_url.is_postgres() {
                eprintln!(
                    "error: {} is PostgreSQL: back it up with pg_dump --format=custom (docs/OPERATIONS.md, \"Backups\")",
                    config.database_url
                );
                return Ok(ExitCode::from(2));
            }
            if file.exists() {
                eprintln!("error: {} exists; choose a new file", file.display());
                return Ok(ExitCode::from(2));
            }
            let target = std::path::absolute(&file).unwrap_or(file.clone());
            let path = target.to_string_lossy().replace('\'', "''");
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM INTO '{path}'")))
                .execute(store.reader())
                .await
            {
                eprintln!("error: backup to {} failed: {e}", target.display());
                return Ok(ExitCode::FAILURE);
            }
            if let Err(e) = offerhub::store::private_file(&target) {
                eprintln!(
                    "warning: could not restrict {} to mode 0600: {e}",
                    target.display()
                );
            }
            println!("backed up {} to {}", config.database_url, target.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { command } => {
            let (_, store) = match existing_store(cli.config, cli.verbose).await {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            keys_command(&store, command).await
        }
        Command::Audit {
            command: AuditCommand::Verify { output },
        } => {
            let (_, store) = match existing_store(cli.config, cli.verbose).await {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            audit_verify(&store, output.output).await
        }
        Command::Wallet { command } => {
            let config_flag = cli.config.clone();
            let (config, store) = match existing_store(cli.config, cli.verbose).await {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            match command {
                wallet::WalletCommand::RotateKey(args) => {
                    wallet::rotate(&config, config_flag.as_deref(), &store, args).await
                }
                wallet::WalletCommand::RetireKey { key_id, yes } => {
                    wallet::retire(&config, &store, &key_id, yes).await
                }
                wallet::WalletCommand::Keys { output } => {
                    wallet::keys(&config, &store, output.output).await
                }
            }
        }
        Command::Reconcile {
            fix,
            concurrency,
            last,
            output,
        } => {
            // Exit 3 = could not check (unlike 1 = a discrepancy was found).
            let (mut config, store) = match existing_store(cli.config, cli.verbose).await {
                Ok(x) => x,
                Err(_) => return Ok(ExitCode::from(3)),
            };
            if last {
                return reconcile_last(&store, output.output).await;
            }
            if config.horizon_url.is_none() && config.network == offerhub::config::Network::Sandbox
            {
                let file = config.data_dir.join("sandbox-url");
                let Some(url) = std::fs::read_to_string(&file)
                    .ok()
                    .and_then(|u| url::Url::parse(u.trim()).ok())
                else {
                    eprintln!(
                        "could not check: the sandbox network runs inside `offerhub serve`: start it first (no {} yet), or set STELLAR_HORIZON_URL",
                        file.display()
                    );
                    return Ok(ExitCode::from(3));
                };
                config.horizon_url = Some(url);
            }
            let sc = match offerhub_daemon::wallets::context(&config).await {
                Ok(Some(sc)) => sc,
                Ok(None) => {
                    eprintln!(
                        "could not check: reconcile needs wallets: WALLET_ENCRYPTION_KEY and a Horizon (STELLAR_HORIZON_URL or the sandbox)"
                    );
                    return Ok(ExitCode::from(3));
                }
                Err(e) => {
                    eprintln!("could not check: Horizon is not reachable: {e}");
                    return Ok(ExitCode::from(3));
                }
            };
            let ec = offerhub_daemon::state::escrow_context(&config, &sc, &store);
            let treasury = config.payment_provider == offerhub::config::PaymentProvider::Airtm;
            match reconcile(
                &store,
                &sc,
                ec.as_deref(),
                treasury,
                fix,
                concurrency,
                output.output,
            )
            .await
            {
                Ok(code) => Ok(code),
                Err(e) => {
                    eprintln!("could not check: {e:#}");
                    Ok(ExitCode::from(3))
                }
            }
        }
        Command::Disputes { command } => {
            let (config, store) = match existing_store(cli.config, cli.verbose).await {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            let ec = escrow_context(config, &store).await;
            disputes::disputes_command(&store, ec.as_deref(), command).await
        }
        Command::Sagas { command } => {
            let (config, store) = match existing_store(cli.config, cli.verbose).await {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            let ec = escrow_context(config, &store).await;
            disputes::sagas_command(&store, ec.as_deref(), command).await
        }
        Command::Webhooks { command } => {
            let (_, store) = match existing_store(cli.config, cli.verbose).await {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            webhooks_command(&store, command).await
        }
        Command::Ledger {
            command: LedgerCommand::Verify { output },
        } => {
            let (_, store) = match existing_store(cli.config, cli.verbose).await {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            ledger_verify(&store, output.output).await
        }
    }
}

async fn keys_command(store: &Store, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let ctx = Context::operator();
    match command {
        KeysCommand::Create {
            name,
            scopes,
            output,
        } => {
            let scopes = keys::parse_scopes(&scopes)?;
            let created = keys::create(store, &ctx, &name, &scopes).await?;
            match output.output {
                Output::Json => {
                    let mut v = serde_json::to_value(&created.key)?;
                    v["key"] = created.token.expose_secret().into();
                    print_json(&v)?;
                }
                Output::Table => {
                    println!("{}", key_table(std::slice::from_ref(&created.key)));
                    println!(
                        "\nAPI key (shown once, store it now):\n{}",
                        created.token.expose_secret()
                    );
                }
            }
        }
        KeysCommand::List { limit, output } => {
            let page = PageRequest::new(Some(limit.clamp(1, 100)), None)?;
            let list = keys::list(store, &page).await?;
            match output.output {
                Output::Json => print_json(&list.items)?,
                Output::Table => println!("{}", key_table(&list.items)),
            }
        }
        KeysCommand::Revoke { id, output } => {
            let id = if id.starts_with("ohk_") {
                // A secret: find its key without ever printing it.
                match keys::authenticate(store, None, id.trim()).await {
                    Ok(keys::Principal::Key(k)) => k.id,
                    _ => {
                        eprintln!(
                            "error: that looks like an API key secret, and it matches no live \
                             key; revoke by id (key_…, see `offerhub keys list`)"
                        );
                        return Ok(ExitCode::from(2));
                    }
                }
            } else {
                id
            };
            let key = match keys::revoke(store, &ctx, &id).await {
                Ok(k) => k,
                Err(e)
                    if matches!(
                        e.code,
                        offerhub::ErrorCode::NotFound | offerhub::ErrorCode::ApiKeyNotFound
                    ) =>
                {
                    eprintln!("error: no API key {id} (see `offerhub keys list`)");
                    return Ok(ExitCode::FAILURE);
                }
                Err(e) => return Err(e.into()),
            };
            match output.output {
                Output::Json => print_json(&key)?,
                Output::Table => println!("revoked {} ({})", key.id, key.name),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn key_table(keys: &[keys::ApiKey]) -> comfy_table::Table {
    let rows = keys.iter().map(|k| {
        vec![
            k.id.clone(),
            k.name.clone(),
            k.scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(","),
            k.key_hint.clone(),
            k.created_at.clone(),
            k.last_used_at.clone().unwrap_or_else(|| "-".into()),
            k.revoked_at.clone().unwrap_or_else(|| "-".into()),
        ]
    });
    table(
        &[
            "ID",
            "NAME",
            "SCOPES",
            "KEY",
            "CREATED",
            "LAST USED",
            "REVOKED",
        ],
        rows,
    )
}

async fn audit_verify(store: &Store, output: Output) -> anyhow::Result<ExitCode> {
    use offerhub::audit::Verification;
    let result = offerhub::audit::verify(store).await?;
    match (&result, output) {
        (Verification::Intact { rows, unsequenced }, Output::Json) => print_json(
            &serde_json::json!({ "status": "intact", "rows": rows, "unsequenced": unsequenced }),
        )?,
        (Verification::Intact { rows, unsequenced }, Output::Table) => {
            println!("audit chain intact: {rows} rows verified");
            if *unsequenced > 0 {
                println!(
                    "{unsequenced} newer rows are committed but not numbered yet (younger than {} s)",
                    offerhub::audit::UNSEQUENCED_BOUND.as_secs()
                );
            }
        }
        (Verification::Broken { seq, id, reason }, Output::Json) => print_json(
            &serde_json::json!({ "status": "broken", "seq": seq, "id": id, "reason": reason }),
        )?,
        (Verification::Broken { seq, id, reason }, Output::Table) => {
            eprintln!("audit chain BROKEN at row {seq} ({id}): {reason}")
        }
    }
    Ok(match result {
        Verification::Intact { .. } => ExitCode::SUCCESS,
        Verification::Broken { .. } => ExitCode::FAILURE,
    })
}

async fn ledger_verify(store: &Store, output: Output) -> anyhow::Result<ExitCode> {
    let report = offerhub::ledger::verify(store).await?;
    match output {
        Output::Json => print_json(&report)?,
        Output::Table => {
            println!(
                "{} accounts, {} journal transactions, {} postings checked",
                report.accounts, report.transactions, report.postings
            );
            if report.is_clean() {
                println!("ledger verified: no violations");
            } else {
                let rows = report
                    .violations
                    .iter()
                    .map(|v| vec![v.check.to_string(), v.subject.clone(), v.detail.clone()]);
                eprintln!("{}", table(&["CHECK", "SUBJECT", "DETAIL"], rows));
            }
        }
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn endpoint_table(items: &[webhooks::Endpoint]) -> comfy_table::Table {
    table(
        &["ID", "URL", "EVENTS", "STATUS", "FAILING SINCE", "CREATED"],
        items.iter().map(|e| {
            vec![
                e.id.clone(),
                e.url.clone(),
                e.events.join(","),
                e.status.to_string(),
                e.failing_since.clone().unwrap_or_else(|| "-".into()),
                e.created_at.clone(),
            ]
        }),
    )
}

fn inbound_table(items: &[inbox::InboundWebhook]) -> comfy_table::Table {
    table(
        &[
            "ID", "PROVIDER", "EVENT ID", "TYPE", "STATUS", "ATTEMPTS", "NOTE", "RECEIVED",
        ],
        items.iter().map(|w| {
            vec![
                w.id.clone(),
                w.provider.clone(),
                w.event_id.clone(),
                w.event_type.clone(),
                w.status.to_string(),
                w.attempts.to_string(),
                w.last_error.clone().unwrap_or_else(|| "-".into()),
                w.received_at.clone(),
            ]
        }),
    )
}

fn delivery_table(items: &[webhooks::Delivery]) -> comfy_table::Table {
    table(
        &[
            "ID",
            "EVENT",
            "STATUS",
            "ATTEMPTS",
            "LAST",
            "NEXT ATTEMPT",
            "DELIVERED",
        ],
        items.iter().map(|d| {
            vec![
                d.id.clone(),
                d.event_id.clone(),
                d.status.to_string(),
                d.attempts.to_string(),
                d.last_status
                    .map(|s| s.to_string())
                    .or_else(|| d.last_error.clone())
                    .unwrap_or_else(|| "-".into()),
                d.next_attempt_at.clone(),
                d.delivered_at.clone().unwrap_or_else(|| "-".into()),
            ]
        }),
    )
}

async fn webhooks_command(store: &Store, command: WebhooksCommand) -> anyhow::Result<ExitCode> {
    let ctx = Context::operator();
    match command {
        WebhooksCommand::List {
            inbound: true,
            output,
        } => {
            let page = inbox::list(store, &PageRequest::new(Some(100), None)?).await?;
            match output.output {
                Output::Json => print_json(&page.items)?,
                Output::Table => println!("{}", inbound_table(&page.items)),
            }
        }
        WebhooksCommand::Show { id, output } if id.starts_with("iwh_") => {
            let w = inbox::get(store, &id).await?;
            match output.output {
                Output::Json => print_json(&w)?,
                Output::Table => {
                    println!("{}", inbound_table(std::slice::from_ref(&w)));
                    println!("{}", serde_json::to_string_pretty(&w.payload)?);
                }
            }
        }
        WebhooksCommand::Replay {
            delivery: Some(d),
            endpoint: None,
            since: None,
            output,
        } if d.starts_with("iwh_") => {
            let w = inbox::replay(store, &ctx, &d).await?;
            match output.output {
                Output::Json => print_json(&w)?,
                Output::Table => println!(
                    "{d} ({} {}) queued for processing by the running daemon",
                    w.provider, w.event_type
                ),
            }
        }
        WebhooksCommand::List { output, .. } => {
            let page = webhooks::list_endpoints(store, &PageRequest::new(Some(100), None)?).await?;
            match output.output {
                Output::Json => print_json(&page.items)?,
                Output::Table => println!("{}", endpoint_table(&page.items)),
            }
        }
        WebhooksCommand::Show { id, output } => {
            if id.starts_with("whd_") {
                let d = webhooks::get_delivery(store, &id).await?;
                match output.output {
                    Output::Json => print_json(&d)?,
                    Output::Table => println!("{}", delivery_table(std::slice::from_ref(&d))),
                }
            } else {
                let e = webhooks::get_endpoint(store, &id).await?;
                let filter = webhooks::DeliveryFilter {
                    endpoint_id: Some(id.clone()),
                    ..Default::default()
                };
                let ds =
                    webhooks::list_deliveries(store, &filter, &PageRequest::new(Some(20), None)?)
                        .await?;
                match output.output {
                    Output::Json => {
                        print_json(&serde_json::json!({ "endpoint": e, "deliveries": ds.items }))?
                    }
                    Output::Table => {
                        println!("{}", endpoint_table(std::slice::from_ref(&e)));
                        println!("latest deliveries:\n{}", delivery_table(&ds.items));
                    }
                }
            }
        }
        WebhooksCommand::Replay {
            delivery,
            endpoint,
            since,
            output,
        } => match (delivery, endpoint, since) {
            (Some(d), None, None) => {
                let new = webhooks::replay_delivery(store, &ctx, &d).await?;
                match output.output {
                    Output::Json => print_json(&new)?,
                    Output::Table => println!("queued {} (replay of {d})", new.id),
                }
            }
            (None, Some(e), Some(s)) => {
                let n = webhooks::replay_since(store, &ctx, &e, &s).await?;
                match output.output {
                    Output::Json => {
                        print_json(&serde_json::json!({ "endpointId": e, "queued": n }))?
                    }
                    Output::Table => println!("queued {n} deliveries to {e}"),
                }
            }
            _ => {
                eprintln!("give a delivery id, or --endpoint and --since");
                return Ok(ExitCode::from(2));
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

async fn sandbox_fund(
    url: &str,
    address: &str,
    amount: &str,
    asset: &str,
) -> anyhow::Result<ExitCode> {
    let resp = reqwest::Client::new()
        .post(format!("{}/_sandbox/fund", url.trim_end_matches('/')))
        .json(&serde_json::json!({ "address": address, "amount": amount, "asset": asset }))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the sandbox at {url}: {e}"))?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if status.is_success() {
        println!(
            "paid {amount} {asset} to {address} (transaction {})",
            body["hash"].as_str().unwrap_or("?")
        );
        Ok(ExitCode::SUCCESS)
    } else {
        let codes = &body["extras"]["result_codes"];
        eprintln!(
            "the sandbox refused: {} {}",
            body["detail"].as_str().unwrap_or("error"),
            if codes.is_null() {
                String::new()
            } else {
                codes.to_string()
            }
        );
        Ok(ExitCode::FAILURE)
    }
}

/// The escrow context of this configuration, when it can reach Horizon and Trustless
/// Work (on the sandbox network, through the URL a running `offerhub serve` wrote).
async fn escrow_context(
    mut config: Config,
    store: &Store,
) -> Option<std::sync::Arc<offerhub::services::escrow::EscrowContext>> {
    if config.horizon_url.is_none() && config.network == offerhub::config::Network::Sandbox {
        let url = std::fs::read_to_string(config.data_dir.join("sandbox-url")).ok()?;
        config.horizon_url = url::Url::parse(url.trim()).ok();
    }
    let sc = offerhub_daemon::wallets::context(&config).await.ok()??;
    offerhub_daemon::state::escrow_context(&config, &sc, store)
}

/// `offerhub reconcile --last`: the newest stored scheduled run.
async fn reconcile_last(store: &Store, output: Output) -> anyhow::Result<ExitCode> {
    let Some(run) = offerhub::services::reconcile_schedule::last(store, None).await? else {
        eprintln!(
            "no scheduled reconciliation stored yet: set OFFERHUB_RECONCILE_EVERY for `offerhub serve`, or run `offerhub reconcile`"
        );
        return Ok(ExitCode::from(3));
    };
    match output {
        Output::Json => print_json(&run)?,
        Output::Table => {
            println!(
                "scheduled reconciliation {} ({}), {} → {}: {} wallets, {} escrows checked, {} discrepancies",
                run.id,
                run.scope,
                run.started_at,
                run.finished_at,
                run.wallets_checked,
                run.escrows_checked,
                run.discrepancies
            );
            let mut rows = Vec::new();
            for (kind, list, subject) in [
                ("wallet", "wallets", "publicKey"),
                ("escrow", "escrows", "contractId"),
            ] {
                for i in run.report[list].as_array().into_iter().flatten() {
                    if i["status"] != "ok" {
                        rows.push(vec![
                            kind.to_string(),
                            i[subject].as_str().unwrap_or_default().to_string(),
                            i["onChain"].as_str().unwrap_or("-").to_string(),
                            i["ledger"].as_str().unwrap_or_default().to_string(),
                            i["difference"].as_str().unwrap_or_default().to_string(),
                            i["status"].as_str().unwrap_or_default().to_string(),
                        ]);
                    }
                }
            }
            let p = &run.report["platform"];
            if p.is_object() && p["status"] != "ok" {
                rows.push(vec![
                    "platform".to_string(),
                    p["publicKey"].as_str().unwrap_or_default().to_string(),
                    p["onChain"].as_str().unwrap_or("-").to_string(),
                    p["feesPlatform"].as_str().unwrap_or_default().to_string(),
                    p["difference"].as_str().unwrap_or_default().to_string(),
                    p["status"].as_str().unwrap_or_default().to_string(),
                ]);
            }
            if !rows.is_empty() {
                println!(
                    "{}",
                    table(
                        &[
                            "KIND",
                            "ACCOUNT",
                            "ON CHAIN",
                            "LEDGER",
                            "DIFFERENCE",
                            "STATUS"
                        ],
                        rows.into_iter(),
                    )
                );
            }
        }
    }
    Ok(if run.discrepancies > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

async fn reconcile(
    store: &Store,
    sc: &offerhub::services::wallets::StellarContext,
    ec: Option<&offerhub::services::escrow::EscrowContext>,
    treasury: bool,
    fix: bool,
    concurrency: usize,
    output: Output,
) -> anyhow::Result<ExitCode> {
    use offerhub::services::reconcile;
    if fix {
        let n = reconcile::fix(store, sc).await?;
        if output == Output::Table {
            println!("credited {n} missed deposit(s)");
        }
    }
    let bar = indicatif::ProgressBar::new(0);
    if output == Output::Json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} wallets")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut report = reconcile::wallets(store, sc, concurrency, &|done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .await?;
    if let Some(ec) = ec {
        reconcile::escrows(store, ec, &mut report).await?;
    }
    reconcile::platform(store, sc, treasury, &mut report).await?;
    bar.finish_and_clear();
    match output {
        Output::Json => print_json(&report)?,
        Output::Table => {
            let rows = report
                .wallets
                .iter()
                .filter(|c| c.status != offerhub::services::reconcile::CheckStatus::Ok)
                .map(|c| {
                    vec![
                        c.user_id.clone(),
                        c.public_key.clone(),
                        c.on_chain
                            .map(|a| a.to_string())
                            .unwrap_or_else(|| "-".into()),
                        c.ledger.to_string(),
                        c.difference.to_string(),
                        c.status.to_string(),
                    ]
                });
            let t = table(
                &[
                    "USER",
                    "WALLET",
                    "ON CHAIN",
                    "LEDGER",
                    "DIFFERENCE",
                    "STATUS",
                ],
                rows,
            );
            println!(
                "{} wallets checked, {} discrepancies",
                report.wallets.len(),
                report.discrepancies
            );
            if report
                .wallets
                .iter()
                .any(|c| c.status != offerhub::services::reconcile::CheckStatus::Ok)
            {
                println!("{t}");
            }
            if let Some(p) = &report.platform {
                println!(
                    "platform wallet {}: {} USDC on chain, fees:platform {}{}, difference {} ({})",
                    p.public_key,
                    p.on_chain
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "-".into()),
                    p.fees_platform,
                    p.external_airtm
                        .map(|a| format!(", external:airtm {a}"))
                        .unwrap_or_default(),
                    p.difference,
                    p.status
                );
            }
            println!("{} escrows checked", report.escrows.len());
            let bad: Vec<_> = report
                .escrows
                .iter()
                .filter(|e| e.status != offerhub::services::reconcile::CheckStatus::Ok)
                .collect();
            if !bad.is_empty() {
                let rows = bad.iter().map(|e| {
                    vec![
                        e.order_id.clone(),
                        e.contract_id.clone(),
                        e.on_chain
                            .map(|a| a.to_string())
                            .unwrap_or_else(|| "-".into()),
                        e.ledger.to_string(),
                        e.difference.to_string(),
                        e.status.to_string(),
                    ]
                });
                println!(
                    "{}",
                    table(
                        &[
                            "ORDER",
                            "CONTRACT",
                            "ON CHAIN",
                            "LEDGER",
                            "DIFFERENCE",
                            "STATUS"
                        ],
                        rows
                    )
                );
            }
        }
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

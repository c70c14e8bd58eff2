//! `offerhub init`: renders `templates/` into a directory — `offerhub.toml`, `.env`
//! (fresh `OFFERHUB_MASTER_KEY` and `WALLET_ENCRYPTION_KEY`, mode 0600),
//! `docker-compose.yml` (PostgreSQL) and `offerhub.service` (systemd). Interactive
//! (dialoguer) unless `--yes`; never overwrites a file without `--force`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use offerhub::config::{Network, generate_master_key, generate_wallet_key, write_private_file};

const TOML_TEMPLATE: &str = include_str!("../../templates/offerhub.toml");
const ENV_TEMPLATE: &str = include_str!("../../templates/env");
const COMPOSE_TEMPLATE: &str = include_str!("../../templates/docker-compose.yml");
const SYSTEMD_TEMPLATE: &str = include_str!("../../templates/offerhub.service");

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Directory to write into (created when missing).
    #[arg(long, env = "OFFERHUB_INIT_DIR", default_value = ".")]
    dir: PathBuf,
    /// Accept defaults and flags without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
    /// sandbox (embedded simulator), testnet or mainnet (case-insensitive).
    #[arg(long, env = "STELLAR_NETWORK", ignore_case = true,
          value_parser = clap::builder::PossibleValuesParser::new(["sandbox", "testnet", "mainnet"]))]
    network: Option<String>,
    /// Address to bind.
    #[arg(long, env = "HOST")]
    host: Option<String>,
    /// Port of the API.
    #[arg(long, env = "PORT")]
    port: Option<u16>,
    /// sqlite://… or postgres://… (default: SQLite under data/ on the sandbox network,
    /// the rendered docker-compose PostgreSQL on testnet/mainnet).
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Trustless Work API key (testnet/mainnet): made in Trustless Work's BackOffice dApp,
    /// https://dapp.trustlesswork.com (testnet: https://dapp.dev.trustlesswork.com), one
    /// per network, shown once.
    #[arg(long, env = "TRUSTLESS_API_KEY", hide_env_values = true)]
    trustless_api_key: Option<String>,
    /// Horizon URL (default per network).
    #[arg(long, env = "STELLAR_HORIZON_URL")]
    horizon_url: Option<String>,
    /// USDC issuer (default per network).
    #[arg(long, env = "STELLAR_USDC_ISSUER")]
    usdc_issuer: Option<String>,
}

struct Answers {
    pg_password: String,
    network: Network,
    host: String,
    port: u16,
    database_url: String,
    trustless_api_key: String,
    horizon_url: Option<String>,
    usdc_issuer: Option<String>,
}

/// Refuses a database URL that is neither SQLite nor PostgreSQL (naming only its
/// scheme: the URL may hold a password).
fn check_database_url(url: &str) -> Result<(), String> {
    let ok = ["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|p| url.starts_with(p));
    if ok {
        return Ok(());
    }
    let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or(url);
    Err(format!(
        "--database-url must start with sqlite: or postgres:// (got {scheme:?}), e.g. \
         sqlite://data/offerhub.db or postgres://user:password@host:5432/offerhub"
    ))
}

fn parse_network(s: &str) -> anyhow::Result<Network> {
    match s.to_ascii_lowercase().as_str() {
        "sandbox" => Ok(Network::Sandbox),
        "testnet" => Ok(Network::Testnet),
        "mainnet" => Ok(Network::Mainnet),
        other => bail!("--network must be sandbox, testnet or mainnet (got {other:?})"),
    }
}

/// The answers: the flags, the defaults, and (on a terminal, without `--yes`) what the
/// operator enters for what no flag gave.
fn ask(args: &InitArgs) -> anyhow::Result<Answers> {
    let mut network = parse_network(args.network.as_deref().unwrap_or("sandbox"))?;
    let interactive = !args.yes && std::io::stdin().is_terminal();
    if interactive && args.network.is_none() {
        network = select_network()?;
    }
    let mut a = defaults(args, network)?;
    if interactive {
        ask_server(args, &mut a)?;
        if network != Network::Sandbox {
            ask_stellar(&mut a)?;
        }
    }
    if network != Network::Sandbox {
        // Written out even when not asked, so the operator sees what the daemon will use.
        a.horizon_url = a
            .horizon_url
            .or_else(|| network.default_horizon_url().map(str::to_string));
        a.usdc_issuer = a
            .usdc_issuer
            .or_else(|| network.default_usdc_issuer().map(str::to_string));
    }
    Ok(a)
}

/// Asks for the Stellar network (sandbox by default).
fn select_network() -> anyhow::Result<Network> {
    let items = [
        "sandbox (embedded simulator, no keys needed)",
        "testnet",
        "mainnet",
    ];
    Ok(
        match dialoguer::Select::new()
            .with_prompt("Stellar network")
            .items(items)
            .default(0)
            .interact()?
        {
            0 => Network::Sandbox,
            1 => Network::Testnet,
            _ => Network::Mainnet,
        },
    )
}

/// The answers from the flags and the defaults, before anything is asked; refuses a
/// `--database-url` that is neither SQLite nor PostgreSQL.
fn defaults(args: &InitArgs, network: Network) -> anyhow::Result<Answers> {
    // The PostgreSQL password of the rendered docker-compose.yml; the default URL of a
    // testnet/mainnet deployment points at that database.
    let pg_password = hex::encode(rand::random::<[u8; 12]>());
    let default_db = if network == Network::Sandbox {
        "sqlite://data/offerhub.db".to_string()
    } else {
        format!("postgres://offerhub:{pg_password}@127.0.0.1:5432/offerhub")
    };
    let database_url = args.database_url.clone().unwrap_or(default_db);
    check_database_url(&database_url).map_err(|e| anyhow::anyhow!(e))?;
    Ok(Answers {
        pg_password,
        network,
        host: args.host.clone().unwrap_or_else(|| "127.0.0.1".into()),
        port: args.port.unwrap_or(4000),
        database_url,
        trustless_api_key: args.trustless_api_key.clone().unwrap_or_default(),
        horizon_url: args.horizon_url.clone(),
        usdc_issuer: args.usdc_issuer.clone(),
    })
}

/// Asks for the API port and the database URL, unless flags gave them.
fn ask_server(args: &InitArgs, a: &mut Answers) -> anyhow::Result<()> {
    use dialoguer::Input;
    if args.port.is_none() {
        a.port = Input::new()
            .with_prompt("API port")
            .default(a.port)
            .interact_text()?;
    }
    if args.database_url.is_none() {
        let prompt = if a.network == Network::Sandbox {
            "Database URL (sqlite://… or postgres://…)"
        } else {
            "PostgreSQL URL (the docker-compose.yml database by default)"
        };
        a.database_url = Input::new()
            .with_prompt(prompt)
            .default(a.database_url.clone())
            .validate_with(|u: &String| check_database_url(u))
            .interact_text()?;
    }
    Ok(())
}

/// Asks (testnet/mainnet) for the Trustless Work API key, the Horizon URL and the USDC
/// issuer, unless flags gave them.
fn ask_stellar(a: &mut Answers) -> anyhow::Result<()> {
    use dialoguer::{Input, Password};
    let network = a.network;
    if a.trustless_api_key.is_empty() {
        let dapp = backoffice_dapp(network);
        eprintln!(
            "A Trustless Work API key is made in Trustless Work's BackOffice dApp, \
             {dapp} (one per network, shown once). Leave it empty to set \
             TRUSTLESS_API_KEY in .env later."
        );
        a.trustless_api_key = Password::new()
            .with_prompt("Trustless Work API key")
            .allow_empty_password(true)
            .interact()?;
    }
    if a.horizon_url.is_none() {
        a.horizon_url = Some(
            Input::new()
                .with_prompt("Horizon URL")
                .default(
                    network
                        .default_horizon_url()
                        .unwrap_or_default()
                        .to_string(),
                )
                .interact_text()?,
        );
    }
    if a.usdc_issuer.is_none() {
        a.usdc_issuer = Some(
            Input::new()
                .with_prompt("USDC issuer")
                .default(
                    network
                        .default_usdc_issuer()
                        .unwrap_or_default()
                        .to_string(),
                )
                .interact_text()?,
        );
    }
    Ok(())
}

/// Trustless Work's BackOffice dApp, where the API key of `network` (testnet or
/// mainnet) is made.
fn backoffice_dapp(network: Network) -> &'static str {
    if network == Network::Testnet {
        "https://dapp.dev.trustlesswork.com"
    } else {
        "https://dapp.trustlesswork.com"
    }
}

fn render(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

/// Whether a database URL carries a password (`scheme://user:password@host/…`).
fn url_has_password(u: &str) -> bool {
    url::Url::parse(u).is_ok_and(|u| u.password().is_some())
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The files `offerhub init` writes.
const FILES: [&str; 4] = [
    "offerhub.toml",
    ".env",
    "docker-compose.yml",
    "offerhub.service",
];

/// `offerhub init`: asks, refuses to overwrite (without `--force`), renders every
/// template into the directory and says what to do next.
pub fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let a = ask(&args)?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let dir = std::path::absolute(&args.dir)?;
    if !args.force && refuse_overwrite(&dir) {
        return Ok(ExitCode::from(1));
    }
    let vars = template_vars(&a, &dir);
    write(&dir, "offerhub.toml", &render(TOML_TEMPLATE, &vars), false)?;
    write(&dir, ".env", &render(ENV_TEMPLATE, &vars), true)?;
    write(
        &dir,
        "docker-compose.yml",
        &render(COMPOSE_TEMPLATE, &vars),
        false,
    )?;
    write(
        &dir,
        "offerhub.service",
        &render(SYSTEMD_TEMPLATE, &vars),
        false,
    )?;
    print_next_steps(&a, &dir);
    Ok(ExitCode::SUCCESS)
}

/// Whether any of [`FILES`] exists in `dir` (then says so, naming them).
fn refuse_overwrite(dir: &Path) -> bool {
    let existing: Vec<_> = FILES.iter().filter(|f| dir.join(f).exists()).collect();
    if existing.is_empty() {
        return false;
    }
    eprintln!(
        "refusing to overwrite {} in {} (use --force)",
        existing
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        dir.display()
    );
    true
}

/// The `[stellar]` lines beyond `network`: the Horizon URL and the USDC issuer, when
/// set.
fn stellar_extra(a: &Answers) -> String {
    let mut stellar_extra = String::new();
    if let Some(h) = &a.horizon_url {
        stellar_extra.push_str(&format!(
            "horizon_url = {}           # [STELLAR_HORIZON_URL]\n",
            toml_string(h)
        ));
    }
    if let Some(i) = &a.usdc_issuer {
        stellar_extra.push_str(&format!(
            "usdc_issuer = {}           # [STELLAR_USDC_ISSUER]\n",
            toml_string(i)
        ));
    }
    stellar_extra
}

/// The `{{name}}` values of the templates, with a fresh master key and wallet key.
fn template_vars(a: &Answers, dir: &Path) -> [(&'static str, String); 15] {
    [
        ("host", a.host.clone()),
        ("port", a.port.to_string()),
        ("public_base_url", format!("http://localhost:{}", a.port)),
        (
            "environment",
            if a.network == Network::Mainnet {
                "production".into()
            } else {
                "development".into()
            },
        ),
        // A URL with a password goes to .env (0600) only; a SQLite path stays readable
        // in offerhub.toml.
        (
            "database_line",
            if url_has_password(&a.database_url) {
                "# url: in .env (DATABASE_URL), because it carries the password".to_string()
            } else {
                format!(
                    "url = {}                # [DATABASE_URL] sqlite://… or postgres://…",
                    toml_string(&a.database_url)
                )
            },
        ),
        (
            "database_env",
            if url_has_password(&a.database_url) {
                format!("DATABASE_URL={}", a.database_url)
            } else {
                String::new()
            },
        ),
        ("payment_provider", "crypto".into()),
        ("network", a.network.as_str().into()),
        ("stellar_extra", stellar_extra(a)),
        ("master_key", generate_master_key()),
        ("wallet_key", generate_wallet_key()),
        ("trustless_api_key", a.trustless_api_key.clone()),
        ("pg_password", a.pg_password.clone()),
        ("dir", dir.display().to_string()),
        (
            "binary",
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "/usr/local/bin/offerhub".into()),
        ),
    ]
}

/// What was written, and what to do next: the Trustless Work API key still missing,
/// PostgreSQL to start, the daemon to start and an API key to create.
fn print_next_steps(a: &Answers, dir: &Path) {
    println!(
        "Wrote offerhub.toml, .env (mode 0600), docker-compose.yml and offerhub.service to {}",
        dir.display()
    );
    if a.network != Network::Sandbox && a.trustless_api_key.is_empty() {
        println!(
            "TRUSTLESS_API_KEY is empty in .env: `offerhub serve` refuses to start on {} until it is set \
             (make one in Trustless Work's BackOffice dApp, {})",
            a.network.as_str(),
            backoffice_dapp(a.network)
        );
    }
    if a.network != Network::Sandbox && a.database_url.starts_with("postgres") {
        println!(
            "Start PostgreSQL first (docker compose up -d in {}), or point DATABASE_URL at yours",
            dir.display()
        );
    }
    println!(
        "Start the daemon with:  offerhub serve --config {}",
        dir.join("offerhub.toml").display()
    );
    println!(
        "Create an API key with: offerhub keys create --config {} --name my-marketplace --scopes read,write",
        dir.join("offerhub.toml").display()
    );
}

fn write(dir: &Path, name: &str, contents: &str, private: bool) -> anyhow::Result<()> {
    let path = dir.join(name);
    if private {
        write_private_file(&path, contents)
    } else {
        std::fs::write(&path, contents)
    }
    .with_context(|| format!("cannot write {}", path.display()))
}

//! `offerhub sandbox`: the sandbox network alone (Horizon subset and Trustless Work V1
//! on loopback), and `offerhub sandbox fund`; and where the operator commands find the
//! sandbox that a running `offerhub serve` started ([`url_file`], [`running_url`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use offerhub::config::{Config, Sources};

use crate::context::Globals;

/// The file in which `offerhub serve` on the sandbox network (without
/// `STELLAR_HORIZON_URL`) publishes the URL of the sandbox it started in-process: one
/// line, `http://127.0.0.1:PORT`, in its data directory; written once the daemon holds
/// the data directory and its port, removed when it stops.
pub fn url_file(data_dir: &Path) -> PathBuf {
    data_dir.join("sandbox-url")
}

/// The sandbox URL a running `offerhub serve` of `data_dir` published in [`url_file`],
/// trimmed, as written (callers parse it); `None` when the file cannot be read (no such
/// daemon).
pub fn running_url(data_dir: &Path) -> Option<String> {
    let url = std::fs::read_to_string(url_file(data_dir)).ok()?;
    Some(url.trim().to_string())
}

#[derive(Args)]
pub struct SandboxRunArgs {
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
pub enum SandboxCommand {
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

pub async fn run(
    command: Option<SandboxCommand>,
    run: SandboxRunArgs,
    globals: Globals,
) -> anyhow::Result<ExitCode> {
    match command {
        Some(SandboxCommand::Fund {
            address,
            amount,
            asset,
            url,
        }) => {
            let url = url
                .or_else(|| {
                    let dir = Sources::discover(globals.config)
                        .and_then(|s| Config::data_dir(&s))
                        .ok()?;
                    running_url(&dir)
                })
                .unwrap_or_else(|| "http://127.0.0.1:8000".into());
            sandbox_fund(&url, &address, &amount, &asset).await
        }
        None => {
            let sb = offerhub_sandbox::Sandbox::new(offerhub_sandbox::SandboxOptions {
                passphrase: None,
                state_file: run.state.clone(),
            })?;
            sb.set_faults(offerhub_sandbox::horizon::Faults {
                latency_ms: run.latency_ms,
                fail_5xx: run.fail_5xx,
                fail_429: run.fail_429,
                timeout_after_apply: run.timeout_after_apply,
                ..Default::default()
            });
            let addr =
                offerhub_sandbox::start(sb.clone(), ([127, 0, 0, 1], run.port).into()).await?;
            println!("OfferHub sandbox (Horizon subset) on http://{addr}");
            println!("network passphrase: {}", sb.passphrase());
            println!("USDC: {} issued by {}", sb.usdc().code, sb.usdc().issuer);
            if let Some(p) = &run.state {
                println!("state: {}", p.display());
            }
            if run.latency_ms + u64::from(run.fail_5xx + run.fail_429 + run.timeout_after_apply) > 0
            {
                println!(
                    "faults: {} ms latency, next {} requests 503, next {} requests 429, next {} submissions time out after applying",
                    run.latency_ms, run.fail_5xx, run.fail_429, run.timeout_after_apply
                );
            }
            tokio::signal::ctrl_c().await?;
            Ok(ExitCode::SUCCESS)
        }
    }
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

//! `offerhub reconcile`: every wallet's on-chain USDC against its ledger balance, every
//! escrow contract's balance against `escrow:{order}`, the platform wallet against
//! `fees:platform`; `--last` prints the daemon's last scheduled run instead. Exit 1 on
//! a discrepancy, 3 when it could not check.

use offerhub::money::Amount;
use offerhub::services::reconcile::{CheckStatus, Report};
use std::process::ExitCode;

use clap::Args;
use offerhub::store::Store;

use crate::context::Globals;
use crate::output::{Output, OutputArgs, print_json, table};
use crate::sandbox;

// No doc comment: the `reconcile` variant of the top-level command describes it.
#[derive(Args)]
pub struct ReconcileArgs {
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
}

pub async fn run(args: ReconcileArgs, globals: Globals) -> anyhow::Result<ExitCode> {
    let ReconcileArgs {
        fix,
        concurrency,
        last,
        output,
    } = args;
    // Exit 3 = could not check (unlike 1 = a discrepancy was found).
    let Ok((mut config, store)) = globals.existing_store().await else {
        return Ok(ExitCode::from(3));
    };
    if last {
        return reconcile_last(&store, output.output).await;
    }
    if config.horizon_url.is_none() && config.network == offerhub::config::Network::Sandbox {
        let Some(url) =
            sandbox::running_url(&config.data_dir).and_then(|u| url::Url::parse(&u).ok())
        else {
            eprintln!(
                "could not check: the sandbox network runs inside `offerhub serve`: start it first (no {} yet), or set STELLAR_HORIZON_URL",
                sandbox::url_file(&config.data_dir).display()
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
                    if i["status"] != CheckStatus::Ok.as_str() {
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
            if p.is_object() && p["status"] != CheckStatus::Ok.as_str() {
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

/// Checks now: credits missed deposits first with `fix`, then every wallet (with a
/// progress bar on a terminal), the escrows (with an escrow context) and the platform
/// wallet; exit 1 on a discrepancy.
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
    let bar = progress_bar(output);
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
        Output::Table => print_report(&report),
    }
    Ok(if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The wallets' progress bar, hidden with `--output json` or when stderr is no
/// terminal.
fn progress_bar(output: Output) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    if output == Output::Json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} wallets")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// An amount on chain, `-` when it could not be read.
fn on_chain(a: Option<Amount>) -> String {
    a.map(|a| a.to_string()).unwrap_or_else(|| "-".into())
}

/// `offerhub reconcile` as tables: the counts, then only what is not OK (wallets, the
/// platform wallet, escrows).
fn print_report(report: &Report) {
    let t = wallet_table(report);
    println!(
        "{} wallets checked, {} discrepancies",
        report.wallets.len(),
        report.discrepancies
    );
    if report.wallets.iter().any(|c| c.status != CheckStatus::Ok) {
        println!("{t}");
    }
    if let Some(p) = &report.platform {
        println!(
            "platform wallet {}: {} USDC on chain, fees:platform {}{}, difference {} ({})",
            p.public_key,
            on_chain(p.on_chain),
            p.fees_platform,
            p.external_airtm
                .map(|a| format!(", external:airtm {a}"))
                .unwrap_or_default(),
            p.difference,
            p.status
        );
    }
    println!("{} escrows checked", report.escrows.len());
    if let Some(t) = escrow_table(report) {
        println!("{t}");
    }
}

/// The wallets whose check is not OK.
fn wallet_table(report: &Report) -> comfy_table::Table {
    let rows = report
        .wallets
        .iter()
        .filter(|c| c.status != CheckStatus::Ok)
        .map(|c| {
            vec![
                c.user_id.clone(),
                c.public_key.clone(),
                on_chain(c.on_chain),
                c.ledger.to_string(),
                c.difference.to_string(),
                c.status.to_string(),
            ]
        });
    table(
        &[
            "USER",
            "WALLET",
            "ON CHAIN",
            "LEDGER",
            "DIFFERENCE",
            "STATUS",
        ],
        rows,
    )
}

/// The escrows whose check is not OK; `None` when there are none.
fn escrow_table(report: &Report) -> Option<comfy_table::Table> {
    let bad: Vec<_> = report
        .escrows
        .iter()
        .filter(|e| e.status != CheckStatus::Ok)
        .collect();
    if bad.is_empty() {
        return None;
    }
    let rows = bad.iter().map(|e| {
        vec![
            e.order_id.clone(),
            e.contract_id.clone(),
            on_chain(e.on_chain),
            e.ledger.to_string(),
            e.difference.to_string(),
            e.status.to_string(),
        ]
    });
    Some(table(
        &[
            "ORDER",
            "CONTRACT",
            "ON CHAIN",
            "LEDGER",
            "DIFFERENCE",
            "STATUS",
        ],
        rows,
    ))
}

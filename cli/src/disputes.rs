//! `offerhub disputes list|show|assign|resolve`: the operator's view of escrow
//! disputes.
//!
//! `resolve` runs its saga from the CLI itself (with the daemon's Horizon and
//! Trustless Work configuration); a running daemon would otherwise pick it up. Split
//! amounts are validated against the escrow balance before anything moves, and
//! `resolve` asks for confirmation (dialoguer) unless `--yes`.

use std::process::ExitCode;

use clap::Subcommand;
use offerhub::context::Context;
use offerhub::money::Amount;
use offerhub::pagination::PageRequest;
use offerhub::services::disputes::{self, Dispute, DisputeFilter};
use offerhub::services::escrow::{self, EscrowContext};
use offerhub::services::orders;
use offerhub::services::sagas;
use offerhub::store::Store;

use crate::context::{Globals, escrow_context};
use crate::output::{Output, OutputArgs, print_json, table, wire};
use crate::sagas::{run_saga, saga_rows};

/// `disputes list --status` (case-insensitive; `-` or `_` alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DisputeStatus {
    #[value(name = "OPENING")]
    Opening,
    #[value(name = "OPEN")]
    Open,
    #[value(name = "UNDER_REVIEW", alias = "under-review")]
    UnderReview,
    #[value(name = "RESOLVING")]
    Resolving,
    #[value(name = "RESOLVED")]
    Resolved,
    #[value(name = "FAILED")]
    Failed,
}

/// `disputes resolve --decision` (case-insensitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Decision {
    #[value(name = "FULL_RELEASE", alias = "full-release")]
    FullRelease,
    #[value(name = "FULL_REFUND", alias = "full-refund")]
    FullRefund,
    #[value(name = "SPLIT")]
    Split,
}

/// An error of the service layer, with API field names replaced by the flags that set
/// them.
fn flags(e: offerhub::Error) -> anyhow::Error {
    let mut m = e.message;
    for (field, flag) in [
        ("releaseAmount", "--release"),
        ("refundAmount", "--refund"),
        ("decision", "--decision"),
        ("assignedTo", "--to"),
    ] {
        m = m.replace(field, flag);
    }
    anyhow::anyhow!(m)
}

#[derive(Subcommand)]
pub enum DisputesCommand {
    /// List disputes, newest first.
    List {
        /// Only disputes in this status (case-insensitive).
        #[arg(long, env = "OFFERHUB_DISPUTE_STATUS", value_enum, ignore_case = true)]
        status: Option<DisputeStatus>,
        #[arg(long)]
        order: Option<String>,
        #[arg(long, env = "OFFERHUB_LIMIT", default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show a dispute with its comments and the order's escrow.
    Show {
        id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Assign a reviewer (OPEN → UNDER_REVIEW).
    Assign {
        id: String,
        /// Who reviews it (e.g. an email).
        #[arg(long, env = "OFFERHUB_DISPUTE_ASSIGNEE")]
        to: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Resolve on chain: FULL_RELEASE, FULL_REFUND or SPLIT (--release + --refund equal
    /// to the escrow balance).
    Resolve {
        id: String,
        /// Who gets the escrow (case-insensitive).
        #[arg(long, value_enum, ignore_case = true)]
        decision: Decision,
        /// SPLIT: gross amount to the seller, e.g. 80.00.
        #[arg(long)]
        release: Option<String>,
        /// SPLIT: gross amount to the buyer, e.g. 20.00.
        #[arg(long)]
        refund: Option<String>,
        #[arg(long)]
        note: Option<String>,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y', env = "OFFERHUB_YES")]
        yes: bool,
        #[command(flatten)]
        output: OutputArgs,
    },
}

fn dispute_rows(items: &[Dispute]) -> comfy_table::Table {
    table(
        &[
            "ID",
            "ORDER",
            "STATUS",
            "OPENED BY",
            "REASON",
            "ASSIGNED TO",
            "DECISION",
            "CREATED",
        ],
        items.iter().map(|d| {
            vec![
                d.id.clone(),
                d.order_id.clone(),
                d.status.to_string(),
                d.opened_by.clone(),
                d.reason.clone(),
                d.assigned_to.clone().unwrap_or_default(),
                d.decision.map(|x| x.to_string()).unwrap_or_default(),
                d.created_at.clone(),
            ]
        }),
    )
}

fn amount(flag: &str, v: &Option<String>) -> anyhow::Result<Option<Amount>> {
    v.as_deref()
        .map(|s| Amount::parse_non_negative(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
        .transpose()
}

pub async fn run(command: DisputesCommand, globals: Globals) -> anyhow::Result<ExitCode> {
    let (config, store) = match globals.existing_store().await {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let ec = escrow_context(config, &store).await;
    disputes_command(&store, ec.as_deref(), command).await
}

/// Runs one `disputes` subcommand (as the operator).
async fn disputes_command(
    store: &Store,
    ec: Option<&EscrowContext>,
    command: DisputesCommand,
) -> anyhow::Result<ExitCode> {
    let ctx = Context::operator();
    match command {
        DisputesCommand::List {
            status,
            order,
            limit,
            output,
        } => list(store, status, order, limit, output.output).await,
        DisputesCommand::Show { id, output } => show(store, &id, output.output).await,
        DisputesCommand::Assign { id, to, output } => {
            let d = disputes::assign(store, &ctx, &id, &to).await?;
            match output.output {
                Output::Json => print_json(&d)?,
                Output::Table => println!("{}", dispute_rows(std::slice::from_ref(&d))),
            }
            Ok(ExitCode::SUCCESS)
        }
        DisputesCommand::Resolve {
            id,
            decision,
            release,
            refund,
            note,
            yes,
            output,
        } => {
            let resolution = Resolution {
                decision: wire(decision),
                release: amount("release", &release)?,
                refund: amount("refund", &refund)?,
                id,
                note,
            };
            resolve(store, ec, &ctx, resolution, yes, output.output).await
        }
    }
}

/// `disputes list`: newest first, at most 100.
async fn list(
    store: &Store,
    status: Option<DisputeStatus>,
    order: Option<String>,
    limit: u32,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let f = DisputeFilter {
        order_id: order,
        status: status.map(wire),
        ..Default::default()
    };
    let page = disputes::list(store, &f, &PageRequest::new(Some(limit.min(100)), None)?).await?;
    match output {
        Output::Json => print_json(&page.items)?,
        Output::Table if page.items.is_empty() => println!(
            "no disputes match{}",
            status
                .map(|s| format!(" (status {})", wire(s)))
                .unwrap_or_default()
        ),
        Output::Table => println!("{}", dispute_rows(&page.items)),
    }
    Ok(ExitCode::SUCCESS)
}

/// `disputes show`: the dispute, the order's escrow and the comments.
async fn show(store: &Store, id: &str, output: Output) -> anyhow::Result<ExitCode> {
    let d = disputes::get(store, id).await?;
    let esc = escrow::for_order(store.reader(), &d.order_id).await?;
    match output {
        Output::Json => print_json(&serde_json::json!({ "dispute": d, "escrow": esc }))?,
        Output::Table => {
            println!("{}", dispute_rows(std::slice::from_ref(&d)));
            if let Some(e) = esc {
                println!(
                    "escrow {} ({}) contract {} status {} balance {} fee {}%",
                    e.id,
                    e.kind,
                    e.contract_id.unwrap_or_default(),
                    e.status,
                    e.balance,
                    e.platform_fee
                );
            }
            for c in d.comments.unwrap_or_default() {
                println!("[{}] {}: {}", c.created_at, c.author, c.body);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `disputes resolve` was asked to do, its amounts parsed.
struct Resolution {
    id: String,
    /// FULL_RELEASE, FULL_REFUND or SPLIT.
    decision: String,
    release: Option<Amount>,
    refund: Option<Amount>,
    note: Option<String>,
}

/// `disputes resolve`: validates the decision against the escrow balance, asks, then
/// runs the resolution saga here; exit 1 when it ends compensated or needing
/// attention.
async fn resolve(
    store: &Store,
    ec: Option<&EscrowContext>,
    ctx: &Context,
    r: Resolution,
    yes: bool,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let Resolution {
        id,
        decision,
        release,
        refund,
        note,
    } = r;
    let d = disputes::get(store, &id).await?;
    let order = orders::get(store, &d.order_id).await?;
    let esc = escrow::for_order(store.reader(), &order.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("order {} has no escrow", order.id))?;
    // Validated before anything moves or anyone is asked.
    let split = disputes::check_decision(&decision, release, refund, esc.balance).map_err(flags)?;
    let prompt = format!(
        "Resolve {id} ({decision}): {} to the seller, {} to the buyer (gross; fees {}% + 0.3% come off pro rata)?",
        split.release, split.refund, esc.platform_fee
    );
    if let Err(code) = crate::wallet::confirm(&prompt, yes) {
        return Ok(code);
    }
    let (_, saga) = disputes::resolve(store, ctx, &id, &decision, release, refund, note)
        .await
        .map_err(flags)?;
    let saga = run_saga(store, ec, &saga.id).await?;
    let d = disputes::get(store, &id).await?;
    match output {
        Output::Json => print_json(&serde_json::json!({ "dispute": d, "saga": saga }))?,
        Output::Table => {
            println!("{}", dispute_rows(std::slice::from_ref(&d)));
            println!("{}", saga_rows(std::slice::from_ref(&saga)));
        }
    }
    if matches!(
        saga.status,
        sagas::SagaStatus::Compensated | sagas::SagaStatus::NeedsAttention
    ) {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

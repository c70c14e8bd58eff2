//! `offerhub disputes list|show|assign|resolve` and `offerhub sagas list|retry`: the
//! operator's view of escrow disputes and of the sagas that move escrowed money.
//!
//! `resolve` and `retry` run the saga from the CLI itself (with the daemon's Horizon and
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
use offerhub::services::sagas::{self, Saga};
use offerhub::store::Store;

use crate::OutputArgs;
use crate::output::{Output, print_json, table};

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

/// `sagas list --status` (case-insensitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SagaStatus {
    /// RUNNING and NEEDS_ATTENTION.
    #[value(name = "active")]
    Active,
    #[value(name = "RUNNING")]
    Running,
    #[value(name = "COMPLETED")]
    Completed,
    #[value(name = "COMPENSATED")]
    Compensated,
    #[value(name = "NEEDS_ATTENTION", alias = "needs-attention")]
    NeedsAttention,
}

/// The wire spelling of a value enum (its clap name, upper case).
fn wire(v: impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_ascii_uppercase())
        .unwrap_or_default()
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

#[derive(Subcommand)]
pub enum SagasCommand {
    /// List sagas, newest first (default: those needing attention or running).
    List {
        /// `active` (RUNNING and NEEDS_ATTENTION) or one status (case-insensitive).
        #[arg(
            long,
            env = "OFFERHUB_SAGA_STATUS",
            value_enum,
            ignore_case = true,
            default_value_t = SagaStatus::Active
        )]
        status: SagaStatus,
        #[arg(long)]
        order: Option<String>,
        #[arg(long, env = "OFFERHUB_LIMIT", default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Put a NEEDS_ATTENTION saga back to work and run it now.
    Retry {
        id: String,
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

fn saga_rows(items: &[Saga]) -> comfy_table::Table {
    table(
        &[
            "ID",
            "KIND",
            "ORDER",
            "STATUS",
            "STEP",
            "LAST ERROR",
            "UPDATED",
        ],
        items.iter().map(|s| {
            vec![
                s.id.clone(),
                s.kind.to_string(),
                s.order_id.clone(),
                s.status.to_string(),
                format!("{}/{}", s.step, s.steps.len()),
                s.last_error
                    .as_ref()
                    .and_then(|e| e["message"].as_str().map(str::to_string))
                    .unwrap_or_default(),
                s.updated_at.clone(),
            ]
        }),
    )
}

fn amount(flag: &str, v: &Option<String>) -> anyhow::Result<Option<Amount>> {
    v.as_deref()
        .map(|s| Amount::parse_non_negative(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
        .transpose()
}

/// Runs a started saga to its end (or until it must wait) and reports it.
async fn run(store: &Store, ec: Option<&EscrowContext>, saga_id: &str) -> anyhow::Result<Saga> {
    match ec {
        Some(ec) => escrow::run(ec, store, saga_id).await?,
        None => eprintln!(
            "no Trustless Work configuration here: the running daemon will execute saga {saga_id}"
        ),
    }
    Ok(sagas::get(store, saga_id).await?)
}

pub async fn disputes_command(
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
        } => {
            let f = DisputeFilter {
                order_id: order,
                status: status.map(wire),
                ..Default::default()
            };
            let page =
                disputes::list(store, &f, &PageRequest::new(Some(limit.min(100)), None)?).await?;
            match output.output {
                Output::Json => print_json(&page.items)?,
                Output::Table if page.items.is_empty() => println!(
                    "no disputes match{}",
                    status
                        .map(|s| format!(" (status {})", wire(s)))
                        .unwrap_or_default()
                ),
                Output::Table => println!("{}", dispute_rows(&page.items)),
            }
        }
        DisputesCommand::Show { id, output } => {
            let d = disputes::get(store, &id).await?;
            let esc = escrow::for_order(store.reader(), &d.order_id).await?;
            match output.output {
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
        }
        DisputesCommand::Assign { id, to, output } => {
            let d = disputes::assign(store, &ctx, &id, &to).await?;
            match output.output {
                Output::Json => print_json(&d)?,
                Output::Table => println!("{}", dispute_rows(std::slice::from_ref(&d))),
            }
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
            let decision = wire(decision);
            let release = amount("release", &release)?;
            let refund = amount("refund", &refund)?;
            let d = disputes::get(store, &id).await?;
            let order = orders::get(store, &d.order_id).await?;
            let esc = escrow::for_order(store.reader(), &order.id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("order {} has no escrow", order.id))?;
            // Validated before anything moves or anyone is asked.
            let split =
                disputes::check_decision(&decision, release, refund, esc.balance).map_err(flags)?;
            let prompt = format!(
                "Resolve {id} ({decision}): {} to the seller, {} to the buyer (gross; fees {}% + 0.3% come off pro rata)?",
                split.release, split.refund, esc.platform_fee
            );
            if let Err(code) = crate::wallet::confirm(&prompt, yes) {
                return Ok(code);
            }
            let (_, saga) = disputes::resolve(store, &ctx, &id, &decision, release, refund, note)
                .await
                .map_err(flags)?;
            let saga = run(store, ec, &saga.id).await?;
            let d = disputes::get(store, &id).await?;
            match output.output {
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
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn sagas_command(
    store: &Store,
    ec: Option<&EscrowContext>,
    command: SagasCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        SagasCommand::List {
            status,
            order,
            limit,
            output,
        } => {
            let page = PageRequest::new(Some(limit.min(100)), None)?;
            let items = if status == SagaStatus::Active {
                let (parked, running) = (
                    Some(sagas::SagaStatus::NeedsAttention),
                    Some(sagas::SagaStatus::Running),
                );
                let mut v = sagas::list(store, parked, order.as_deref(), &page)
                    .await?
                    .items;
                v.extend(
                    sagas::list(store, running, order.as_deref(), &page)
                        .await?
                        .items,
                );
                v
            } else {
                sagas::list(
                    store,
                    sagas::SagaStatus::parse(&wire(status)),
                    order.as_deref(),
                    &page,
                )
                .await?
                .items
            };
            match output.output {
                Output::Json => print_json(&items)?,
                Output::Table if items.is_empty() => println!(
                    "no sagas match (status {})",
                    if status == SagaStatus::Active {
                        "RUNNING or NEEDS_ATTENTION".to_string()
                    } else {
                        wire(status)
                    }
                ),
                Output::Table => println!("{}", saga_rows(&items)),
            }
        }
        SagasCommand::Retry { id, output } => {
            sagas::retry(store, &Context::operator(), &id).await?;
            let saga = run(store, ec, &id).await?;
            match output.output {
                Output::Json => print_json(&saga)?,
                Output::Table => println!("{}", saga_rows(std::slice::from_ref(&saga))),
            }
            if saga.status != sagas::SagaStatus::Completed {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

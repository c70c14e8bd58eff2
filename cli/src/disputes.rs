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

#[derive(Subcommand)]
pub enum DisputesCommand {
    /// List disputes, newest first.
    List {
        /// OPENING, OPEN, UNDER_REVIEW, RESOLVING, RESOLVED or FAILED.
        #[arg(long, env = "OFFERHUB_DISPUTE_STATUS")]
        status: Option<String>,
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
        #[arg(long)]
        decision: String,
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
        /// RUNNING, COMPLETED, COMPENSATED, NEEDS_ATTENTION, or `active` (RUNNING and
        /// NEEDS_ATTENTION).
        #[arg(long, env = "OFFERHUB_SAGA_STATUS", default_value = "active")]
        status: String,
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
                d.status.clone(),
                d.opened_by.clone(),
                d.reason.clone(),
                d.assigned_to.clone().unwrap_or_default(),
                d.decision.clone().unwrap_or_default(),
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
                s.kind.clone(),
                s.order_id.clone(),
                s.status.clone(),
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
                status,
                ..Default::default()
            };
            let page =
                disputes::list(store, &f, &PageRequest::new(Some(limit.min(100)), None)?).await?;
            match output.output {
                Output::Json => print_json(&page.items)?,
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
            let release = amount("release", &release)?;
            let refund = amount("refund", &refund)?;
            let d = disputes::get(store, &id).await?;
            let order = orders::get(store, &d.order_id).await?;
            let esc = escrow::for_order(store.reader(), &order.id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("order {} has no escrow", order.id))?;
            // Validated before anything moves or anyone is asked.
            let split = disputes::check_decision(&decision, release, refund, esc.balance)?;
            if !yes {
                let prompt = format!(
                    "Resolve {id} ({decision}): {} to the seller, {} to the buyer (gross; fees {}% + 0.3% come off pro rata)?",
                    split.release, split.refund, esc.platform_fee
                );
                let ok = dialoguer::Confirm::new()
                    .with_prompt(prompt)
                    .default(false)
                    .interact()?;
                if !ok {
                    eprintln!("nothing changed");
                    return Ok(ExitCode::from(1));
                }
            }
            let (_, saga) =
                disputes::resolve(store, &ctx, &id, &decision, release, refund, note).await?;
            let saga = run(store, ec, &saga.id).await?;
            let d = disputes::get(store, &id).await?;
            match output.output {
                Output::Json => print_json(&serde_json::json!({ "dispute": d, "saga": saga }))?,
                Output::Table => {
                    println!("{}", dispute_rows(std::slice::from_ref(&d)));
                    println!("{}", saga_rows(std::slice::from_ref(&saga)));
                }
            }
            if saga.status == "COMPENSATED" || saga.status == "NEEDS_ATTENTION" {
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
            let items = if status == "active" {
                let mut v = sagas::list(store, Some("NEEDS_ATTENTION"), order.as_deref(), &page)
                    .await?
                    .items;
                v.extend(
                    sagas::list(store, Some("RUNNING"), order.as_deref(), &page)
                        .await?
                        .items,
                );
                v
            } else {
                sagas::list(store, Some(&status), order.as_deref(), &page)
                    .await?
                    .items
            };
            match output.output {
                Output::Json => print_json(&items)?,
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
            if saga.status != "COMPLETED" {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `offerhub sagas list|retry`: the sagas (the on-chain steps of escrow operations).
//!
//! `retry` runs the saga from the CLI itself (with the daemon's Horizon and Trustless
//! Work configuration); a running daemon would otherwise pick it up.

use std::process::ExitCode;

use clap::Subcommand;
use offerhub::context::Context;
use offerhub::pagination::PageRequest;
use offerhub::services::escrow::{self, EscrowContext};
use offerhub::services::sagas::{self, Saga};
use offerhub::store::Store;

use crate::context::{Globals, escrow_context};
use crate::output::{Output, OutputArgs, print_json, table, wire};

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

pub async fn run(command: SagasCommand, globals: Globals) -> anyhow::Result<ExitCode> {
    let (config, store) = match globals.existing_store().await {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let ec = escrow_context(config, &store).await;
    sagas_command(&store, ec.as_deref(), command).await
}

pub fn saga_rows(items: &[Saga]) -> comfy_table::Table {
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

/// Runs a started saga to its end (or until it must wait) and reports it.
pub async fn run_saga(
    store: &Store,
    ec: Option<&EscrowContext>,
    saga_id: &str,
) -> anyhow::Result<Saga> {
    match ec {
        Some(ec) => escrow::run(ec, store, saga_id).await?,
        None => eprintln!(
            "no Trustless Work configuration here: the running daemon will execute saga {saga_id}"
        ),
    }
    Ok(sagas::get(store, saga_id).await?)
}

async fn sagas_command(
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
            // Parked sagas first, then running ones (`active`).
            let statuses: &[sagas::SagaStatus] = match status {
                SagaStatus::Active => &[
                    sagas::SagaStatus::NeedsAttention,
                    sagas::SagaStatus::Running,
                ],
                SagaStatus::Running => &[sagas::SagaStatus::Running],
                SagaStatus::Completed => &[sagas::SagaStatus::Completed],
                SagaStatus::Compensated => &[sagas::SagaStatus::Compensated],
                SagaStatus::NeedsAttention => &[sagas::SagaStatus::NeedsAttention],
            };
            let mut items = Vec::new();
            for s in statuses {
                items.extend(
                    sagas::list(store, Some(*s), order.as_deref(), &page)
                        .await?
                        .items,
                );
            }
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
            let saga = run_saga(store, ec, &id).await?;
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

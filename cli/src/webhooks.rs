//! `offerhub webhooks list|show|replay`: outbound endpoints and deliveries, and the
//! provider (Airtm) webhooks received.

use std::process::ExitCode;

use clap::Subcommand;
use offerhub::context::Context;
use offerhub::pagination::PageRequest;
use offerhub::services::{inbox, webhooks};
use offerhub::store::Store;

use crate::context::Globals;
use crate::output::{Output, OutputArgs, print_json, table};

#[derive(Subcommand)]
pub enum WebhooksCommand {
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

pub async fn run(command: WebhooksCommand, globals: Globals) -> anyhow::Result<ExitCode> {
    let (_, store) = match globals.existing_store().await {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    webhooks_command(&store, command).await
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

/// Runs one `webhooks` subcommand (as the operator): ids starting `iwh_` are received
/// provider webhooks, `whd_` deliveries, others endpoints.
async fn webhooks_command(store: &Store, command: WebhooksCommand) -> anyhow::Result<ExitCode> {
    let ctx = Context::operator();
    match command {
        WebhooksCommand::List {
            inbound: true,
            output,
        } => list_inbound(store, output.output).await?,
        WebhooksCommand::Show { id, output } if id.starts_with("iwh_") => {
            show_inbound(store, &id, output.output).await?
        }
        WebhooksCommand::Replay {
            delivery: Some(d),
            endpoint: None,
            since: None,
            output,
        } if d.starts_with("iwh_") => replay_inbound(store, &ctx, &d, output.output).await?,
        WebhooksCommand::List { output, .. } => list_endpoints(store, output.output).await?,
        WebhooksCommand::Show { id, output } if id.starts_with("whd_") => {
            show_delivery(store, &id, output.output).await?
        }
        WebhooksCommand::Show { id, output } => show_endpoint(store, &id, output.output).await?,
        WebhooksCommand::Replay {
            delivery: Some(d),
            endpoint: None,
            since: None,
            output,
        } => replay_delivery(store, &ctx, &d, output.output).await?,
        WebhooksCommand::Replay {
            delivery: None,
            endpoint: Some(e),
            since: Some(s),
            output,
        } => replay_since(store, &ctx, &e, &s, output.output).await?,
        WebhooksCommand::Replay { .. } => {
            eprintln!("give a delivery id, or --endpoint and --since");
            return Ok(ExitCode::from(2));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `webhooks list --inbound`: the latest 100 received provider webhooks.
async fn list_inbound(store: &Store, output: Output) -> anyhow::Result<()> {
    let page = inbox::list(store, &PageRequest::new(Some(100), None)?).await?;
    match output {
        Output::Json => print_json(&page.items)?,
        Output::Table => println!("{}", inbound_table(&page.items)),
    }
    Ok(())
}

/// `webhooks show iwh_…`: a received provider webhook with its payload.
async fn show_inbound(store: &Store, id: &str, output: Output) -> anyhow::Result<()> {
    let w = inbox::get(store, id).await?;
    match output {
        Output::Json => print_json(&w)?,
        Output::Table => {
            println!("{}", inbound_table(std::slice::from_ref(&w)));
            println!("{}", serde_json::to_string_pretty(&w.payload)?);
        }
    }
    Ok(())
}

/// `webhooks replay iwh_…`: queues a received provider webhook for the daemon.
async fn replay_inbound(
    store: &Store,
    ctx: &Context,
    d: &str,
    output: Output,
) -> anyhow::Result<()> {
    let w = inbox::replay(store, ctx, d).await?;
    match output {
        Output::Json => print_json(&w)?,
        Output::Table => println!(
            "{d} ({} {}) queued for processing by the running daemon",
            w.provider, w.event_type
        ),
    }
    Ok(())
}

/// `webhooks list`: the first 100 endpoints.
async fn list_endpoints(store: &Store, output: Output) -> anyhow::Result<()> {
    let page = webhooks::list_endpoints(store, &PageRequest::new(Some(100), None)?).await?;
    match output {
        Output::Json => print_json(&page.items)?,
        Output::Table => println!("{}", endpoint_table(&page.items)),
    }
    Ok(())
}

/// `webhooks show whd_…`: one delivery.
async fn show_delivery(store: &Store, id: &str, output: Output) -> anyhow::Result<()> {
    let d = webhooks::get_delivery(store, id).await?;
    match output {
        Output::Json => print_json(&d)?,
        Output::Table => println!("{}", delivery_table(std::slice::from_ref(&d))),
    }
    Ok(())
}

/// `webhooks show` of any other id: an endpoint (whe_…) with its latest 20 deliveries.
async fn show_endpoint(store: &Store, id: &str, output: Output) -> anyhow::Result<()> {
    let e = webhooks::get_endpoint(store, id).await?;
    let filter = webhooks::DeliveryFilter {
        endpoint_id: Some(id.to_string()),
        ..Default::default()
    };
    let ds = webhooks::list_deliveries(store, &filter, &PageRequest::new(Some(20), None)?).await?;
    match output {
        Output::Json => print_json(&serde_json::json!({ "endpoint": e, "deliveries": ds.items }))?,
        Output::Table => {
            println!("{}", endpoint_table(std::slice::from_ref(&e)));
            println!("latest deliveries:\n{}", delivery_table(&ds.items));
        }
    }
    Ok(())
}

/// `webhooks replay whd_…`: queues the delivery again, as a new one.
async fn replay_delivery(
    store: &Store,
    ctx: &Context,
    d: &str,
    output: Output,
) -> anyhow::Result<()> {
    let new = webhooks::replay_delivery(store, ctx, d).await?;
    match output {
        Output::Json => print_json(&new)?,
        Output::Table => println!("queued {} (replay of {d})", new.id),
    }
    Ok(())
}

/// `webhooks replay --endpoint --since`: queues every matching event since a time to
/// one endpoint.
async fn replay_since(
    store: &Store,
    ctx: &Context,
    e: &str,
    s: &str,
    output: Output,
) -> anyhow::Result<()> {
    let n = webhooks::replay_since(store, ctx, e, s).await?;
    match output {
        Output::Json => print_json(&serde_json::json!({ "endpointId": e, "queued": n }))?,
        Output::Table => println!("queued {n} deliveries to {e}"),
    }
    Ok(())
}

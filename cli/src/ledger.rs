//! `offerhub ledger verify`: the double-entry ledger.

use std::process::ExitCode;

use clap::Subcommand;
use offerhub::store::Store;

use crate::context::Globals;
use crate::output::{Output, OutputArgs, print_json, table};

#[derive(Subcommand)]
pub enum LedgerCommand {
    /// Prove the ledger: balanced transactions, projection equal to the journal, no
    /// negative available, reserved equal to pending holds. Exit 1 on any violation.
    Verify {
        #[command(flatten)]
        output: OutputArgs,
    },
}

pub async fn run(command: LedgerCommand, globals: Globals) -> anyhow::Result<ExitCode> {
    let LedgerCommand::Verify { output } = command;
    let (_, store) = match globals.existing_store().await {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    ledger_verify(&store, output.output).await
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

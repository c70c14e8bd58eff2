//! `offerhub audit verify`: the hash-chained audit log.

use std::process::ExitCode;

use clap::Subcommand;
use offerhub::store::Store;

use crate::context::Globals;
use crate::output::{Output, OutputArgs, print_json};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Re-compute the hash chain; exit 1 naming the first broken row.
    Verify {
        #[command(flatten)]
        output: OutputArgs,
    },
}

pub async fn run(command: AuditCommand, globals: Globals) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify { output } = command;
    let (_, store) = match globals.existing_store().await {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    audit_verify(&store, output.output).await
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

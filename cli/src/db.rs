//! `offerhub db migrate|backup`: database maintenance.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::context::Globals;
use crate::serve;

#[derive(Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations (also done by `serve`).
    Migrate,
    /// SQLite: write a consistent copy of the database to FILE while the daemon runs
    /// (`VACUUM INTO`, SQLite's online snapshot). PostgreSQL: use `pg_dump` (docs/OPERATIONS.md).
    /// Back up the wallet encryption key separately.
    Backup {
        /// The file to create (must not exist).
        file: PathBuf,
    },
}

pub async fn run(command: DbCommand, globals: Globals) -> anyhow::Result<ExitCode> {
    match command {
        DbCommand::Migrate => {
            let config = match globals.load_config(false, None) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            if let Err(msg) = serve::open_or_create(&config, Default::default()).await {
                eprintln!("error: {msg}");
                return Ok(ExitCode::FAILURE);
            }
            println!("migrations applied to {}", config.database_url);
            Ok(ExitCode::SUCCESS)
        }
        DbCommand::Backup { file } => {
            let (config, store) = match globals.existing_store().await {
                Ok(x) => x,
                Err(code) => return Ok(code),
            };
            if config.database_url.is_postgres() {
                eprintln!(
                    "error: {} is PostgreSQL: back it up with pg_dump --format=custom (docs/OPERATIONS.md, \"Backups\")",
                    config.database_url
                );
                return Ok(ExitCode::from(2));
            }
            if file.exists() {
                eprintln!("error: {} exists; choose a new file", file.display());
                return Ok(ExitCode::from(2));
            }
            let target = std::path::absolute(&file).unwrap_or(file.clone());
            let path = target.to_string_lossy().replace('\'', "''");
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM INTO '{path}'")))
                .execute(store.reader())
                .await
            {
                eprintln!("error: backup to {} failed: {e}", target.display());
                return Ok(ExitCode::FAILURE);
            }
            if let Err(e) = offerhub::store::private_file(&target) {
                eprintln!(
                    "warning: could not restrict {} to mode 0600: {e}",
                    target.display()
                );
            }
            println!("backed up {} to {}", config.database_url, target.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

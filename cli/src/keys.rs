//! `offerhub keys create|list|revoke`: API keys managed directly in the database
//! (actor: operator).

use std::process::ExitCode;

use clap::Subcommand;
use offerhub::context::Context;
use offerhub::pagination::PageRequest;
use offerhub::services::keys;
use offerhub::store::Store;

use crate::context::Globals;
use crate::output::{Output, OutputArgs, print_json, table};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key; its secret is printed once.
    Create {
        /// A label for the key (e.g. the marketplace backend's name).
        #[arg(long, env = "OFFERHUB_KEY_NAME", default_value = "operator")]
        name: String,
        /// Comma-separated scopes: read, write, support.
        #[arg(
            long,
            env = "OFFERHUB_KEY_SCOPES",
            value_delimiter = ',',
            default_value = "read,write"
        )]
        scopes: Vec<String>,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long, env = "OFFERHUB_LIMIT", default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Revoke a key; it is refused from its next request on.
    Revoke {
        /// The key id (key_…). A full secret (ohk_live_…) is accepted too, and never
        /// printed back.
        id: String,
        #[command(flatten)]
        output: OutputArgs,
    },
}

pub async fn run(command: KeysCommand, globals: Globals) -> anyhow::Result<ExitCode> {
    let (_, store) = match globals.existing_store().await {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    keys_command(&store, command).await
}

async fn keys_command(store: &Store, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let ctx = Context::operator();
    match command {
        KeysCommand::Create {
            name,
            scopes,
            output,
        } => {
            let scopes = keys::parse_scopes(&scopes)?;
            let created = keys::create(store, &ctx, &name, &scopes).await?;
            match output.output {
                Output::Json => {
                    let mut v = serde_json::to_value(&created.key)?;
                    v["key"] = created.token.expose_secret().into();
                    print_json(&v)?;
                }
                Output::Table => {
                    println!("{}", key_table(std::slice::from_ref(&created.key)));
                    println!(
                        "\nAPI key (shown once, store it now):\n{}",
                        created.token.expose_secret()
                    );
                }
            }
        }
        KeysCommand::List { limit, output } => {
            let page = PageRequest::new(Some(limit.clamp(1, 100)), None)?;
            let list = keys::list(store, &page).await?;
            match output.output {
                Output::Json => print_json(&list.items)?,
                Output::Table => println!("{}", key_table(&list.items)),
            }
        }
        KeysCommand::Revoke { id, output } => {
            let id = if id.starts_with("ohk_") {
                // A secret: find its key without ever printing it.
                match keys::authenticate(store, None, id.trim()).await {
                    Ok(keys::Principal::Key(k)) => k.id,
                    _ => {
                        eprintln!(
                            "error: that looks like an API key secret, and it matches no live \
                             key; revoke by id (key_…, see `offerhub keys list`)"
                        );
                        return Ok(ExitCode::from(2));
                    }
                }
            } else {
                id
            };
            let key = match keys::revoke(store, &ctx, &id).await {
                Ok(k) => k,
                Err(e)
                    if matches!(
                        e.code,
                        offerhub::ErrorCode::NotFound | offerhub::ErrorCode::ApiKeyNotFound
                    ) =>
                {
                    eprintln!("error: no API key {id} (see `offerhub keys list`)");
                    return Ok(ExitCode::FAILURE);
                }
                Err(e) => return Err(e.into()),
            };
            match output.output {
                Output::Json => print_json(&key)?,
                Output::Table => println!("revoked {} ({})", key.id, key.name),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn key_table(keys: &[keys::ApiKey]) -> comfy_table::Table {
    let rows = keys.iter().map(|k| {
        vec![
            k.id.clone(),
            k.name.clone(),
            k.scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(","),
            k.key_hint.clone(),
            k.created_at.clone(),
            k.last_used_at.clone().unwrap_or_else(|| "-".into()),
            k.revoked_at.clone().unwrap_or_else(|| "-".into()),
        ]
    });
    table(
        &[
            "ID",
            "NAME",
            "SCOPES",
            "KEY",
            "CREATED",
            "LAST USED",
            "REVOKED",
        ],
        rows,
    )
}

//! What a command runs against: the configuration (from `--config`, the environment
//! and the defaults), the existing database of an operator command and, for the
//! escrow commands, the escrow context.

use std::path::PathBuf;
use std::process::ExitCode;

use offerhub::config::{Config, Sources};
use offerhub::store::Store;

use crate::serve;

/// The global flags a command loads its configuration with.
pub struct Globals {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--verbose`.
    pub verbose: bool,
}

impl Globals {
    /// Loads the configuration of an operator command without writing anything (no
    /// generated secrets, no data directory); on a problem prints every issue and exits 2.
    fn load_existing(self) -> Result<Config, ExitCode> {
        match Sources::discover(self.config).and_then(|s| Config::load_existing(&s).map(|c| (s, c)))
        {
            Ok((sources, config)) => {
                announce(self.verbose, &sources, &config);
                Ok(config)
            }
            Err(e) => {
                eprint!("{e}");
                Err(ExitCode::from(2))
            }
        }
    }

    /// Opens the existing database of an operator command (never creates one).
    pub async fn existing_store(self) -> Result<(Config, Store), ExitCode> {
        let config = self.load_existing()?;
        match serve::open_existing(&config).await {
            Ok(store) => Ok((config, store)),
            Err(msg) => {
                eprintln!("error: {msg}");
                Err(ExitCode::from(2))
            }
        }
    }

    /// Loads the configuration; on a problem prints every issue and exits with 2.
    pub fn load_config(
        self,
        announce_secrets: bool,
        serve_args: Option<&serve::ServeArgs>,
    ) -> Result<Config, ExitCode> {
        let loaded = Sources::discover(self.config).and_then(|mut s| {
            if let Some(a) = serve_args {
                a.apply(&mut s);
            }
            Config::load(&s).map(|c| (s, c))
        });
        match loaded {
            Ok((sources, (config, generated))) => {
                announce(self.verbose, &sources, &config);
                if announce_secrets && let Some(p) = generated.written_to {
                    eprintln!(
                        "Generated {} on first run and stored them in {} (mode 0600). \
                         The master key there bootstraps API keys.",
                        generated.names.join(" and "),
                        p.display()
                    );
                }
                Ok(config)
            }
            Err(e) => {
                eprint!("{e}");
                Err(ExitCode::from(2))
            }
        }
    }
}

/// Prints, with `--verbose`, which configuration, data directory and database a
/// command uses.
fn announce(verbose: bool, sources: &Sources, config: &Config) {
    if verbose {
        eprintln!(
            "config: {}; data directory: {}; database: {}",
            sources
                .config_file
                .as_ref()
                .map(|p| std::path::absolute(p)
                    .unwrap_or_else(|_| p.clone())
                    .display()
                    .to_string())
                .unwrap_or_else(|| "none (defaults and environment)".into()),
            config.data_dir.display(),
            serve::describe(&config.database_url)
        );
    }
}

/// The escrow context of this configuration, when it can reach Horizon and Trustless
/// Work (on the sandbox network, through the URL a running `offerhub serve` wrote).
pub async fn escrow_context(
    mut config: Config,
    store: &Store,
) -> Option<std::sync::Arc<offerhub::services::escrow::EscrowContext>> {
    if config.horizon_url.is_none() && config.network == offerhub::config::Network::Sandbox {
        let url = crate::sandbox::running_url(&config.data_dir)?;
        config.horizon_url = url::Url::parse(&url).ok();
    }
    let sc = offerhub_daemon::wallets::context(&config).await.ok()??;
    offerhub_daemon::state::escrow_context(&config, &sc, store)
}

//! Logs and traces of every command: `--log-format`, the `RUST_LOG` filter and, for
//! `serve`, the OTLP trace exporter.

use std::process::ExitCode;

use offerhub_daemon::telemetry::Tracing;

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Traces: the daemon (`serving`) exports over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is
/// set; other commands export none. On a problem prints it and exits with 2.
pub fn traces(
    serving: bool,
    runtime: &tokio::runtime::Runtime,
) -> Result<Option<Tracing>, ExitCode> {
    if !serving {
        return Ok(None);
    }
    let url = offerhub_daemon::telemetry::traces_url_from_env(|k| std::env::var(k).ok());
    match url {
        Ok(None) => Ok(None),
        Ok(Some(url)) => match Tracing::otlp(&url, runtime.handle().clone()) {
            Ok(t) => Ok(Some(t)),
            Err(e) => {
                eprintln!("error: {e}");
                Err(ExitCode::from(2))
            }
        },
        Err(problem) => {
            eprintln!("invalid configuration:\n  {problem}");
            Err(ExitCode::from(2))
        }
    }
}

/// The subscriber: an `EnvFilter` (`RUST_LOG`, default `default_level`), log lines on
/// stderr as text or JSON, and the OpenTelemetry layer when traces are exported.
pub fn init(format: LogFormat, default_level: &str, traces: Option<&Tracing>) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let lines = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            // Plain text in files, pipes and under systemd; NO_COLOR is honoured.
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stderr())
                    && std::env::var_os("NO_COLOR").is_none(),
            )
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .with(traces.map(|t| t.layer()))
        .init();
}

//! Output of operator commands: tables (comfy-table) for people, JSON for scripts.
//!
//! Tables fit the terminal's width (dynamic arrangement) and colour their STATUS column
//! only when stdout is a terminal and `NO_COLOR` is unset; piped output is plain.

use std::io::IsTerminal;

use serde::Serialize;

/// `--output table|json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// The `--output` flag of every command that prints records.
#[derive(clap::Args, Clone, Copy)]
pub(crate) struct OutputArgs {
    /// table or json.
    #[arg(long, env = "OFFERHUB_OUTPUT", value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
}

/// The wire spelling of a value enum (its clap name, upper case).
pub fn wire(v: impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_ascii_uppercase())
        .unwrap_or_default()
}

/// Pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Whether stdout gets colours.
fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// The colour of a status value.
fn status_colour(v: &str) -> Option<comfy_table::Color> {
    use comfy_table::Color;
    match v.to_ascii_uppercase().as_str() {
        "OK" | "ACTIVE" | "COMPLETED" | "RESOLVED" | "DELIVERED" | "PROCESSED" | "CLOSED" => {
            Some(Color::Green)
        }
        "FAILED" | "NEEDS_ATTENTION" | "DISABLED" | "DISCREPANCY" | "MISMATCH" | "COMPENSATED" => {
            Some(Color::Red)
        }
        "RUNNING" | "PENDING" | "OPEN" | "UNDER_REVIEW" | "RESOLVING" | "RETRYING" => {
            Some(Color::Yellow)
        }
        _ => None,
    }
}

/// A table with `header` and `rows`, as wide as the terminal allows.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    let colour = colour();
    t.set_header(header.iter().copied());
    let status = header.iter().position(|h| *h == "STATUS");
    for r in rows {
        let cells = r.into_iter().enumerate().map(|(i, v)| {
            let c = status
                .filter(|s| *s == i && colour)
                .and_then(|_| status_colour(&v));
            let cell = comfy_table::Cell::new(v);
            match c {
                Some(c) => cell.fg(c),
                None => cell,
            }
        });
        t.add_row(cells);
    }
    t
}

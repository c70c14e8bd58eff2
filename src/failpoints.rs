//! Test hooks (feature `failpoints`, never in a release build): fail points of the `fail`
//! crate, configured from the `FAILPOINTS` environment variable when the daemon starts.
//!
//! `FAILPOINTS` is `name=actions;…` in the `fail` crate's syntax. The crash tests use
//! `return` with a count, so that the N-th time a point is reached it fires:
//! `after_store=1*return` (the first time), `after_submit=1*off->1*return` (the second).
//! A point that fires prints `FAILPOINT <name> reached` to stderr and stops the task
//! there for good, so a test can SIGKILL the process at exactly that point.

use crate::error::{Error, ErrorCode, Result};

/// Configures the fail points named in `FAILPOINTS` (none when it is unset or empty).
/// A malformed entry is an error naming it.
pub fn setup() -> Result<()> {
    let Ok(spec) = std::env::var("FAILPOINTS") else {
        return Ok(());
    };
    for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let invalid = |why: &str| {
            Error::new(
                ErrorCode::ValidationError,
                format!("FAILPOINTS: {entry:?}: {why}"),
            )
        };
        let (name, actions) = entry
            .split_once('=')
            .ok_or_else(|| invalid("expected name=actions"))?;
        fail::cfg(name.trim(), actions.trim()).map_err(|e| invalid(&e))?;
        tracing::warn!(
            failpoint = name.trim(),
            actions = actions.trim(),
            "fail point armed"
        );
    }
    Ok(())
}

/// The fail point `name`: when it fires, says so on stderr and never returns.
pub(crate) async fn stop_here(name: &str) {
    if fired(name) {
        eprintln!("FAILPOINT {name} reached");
        std::future::pending::<()>().await;
    }
}

/// Whether the fail point `name` fires now (its `return` action).
fn fired(name: &str) -> bool {
    fail::fail_point!(name, |_| true);
    false
}

//! SQLite WAL checkpoints off the writer's path.
//!
//! By default SQLite checkpoints inside the `COMMIT` that takes the write-ahead log past
//! 1,000 pages: that commit copies the log back into the database file and syncs both,
//! on the one writer connection, while every other write waits. Measured on the
//! adjustments workload (32 connections, 2 cores, with [`super::group_commit`]): a
//! group's `COMMIT` took 2.9 ms on average with those checkpoints and 0.93 ms without;
//! 1,460–1,690 adjustments/s with them, 1,720–1,740 with this checkpointer.
//!
//! With [`StoreOptions::background_checkpoints`](super::StoreOptions) (the daemon sets
//! it) the writer's automatic checkpoints wait for a much longer log
//! ([`WRITER_BACKSTOP_FRAMES`] pages instead of 1,000) and
//! a task of the store checkpoints every [`INTERVAL`] on a connection of its own, in
//! `PASSIVE` mode, which blocks neither the writer nor readers: the bulk of the copying
//! happens while writes go on. A log only starts over from its beginning when a write
//! transaction begins after a checkpoint copied all of it, which a checkpoint racing
//! the writer never does; so once the log holds [`RESTART_AFTER_FRAMES`] pages, the
//! task takes the writer connection between two transactions (queueing like one) and
//! finishes there, copying only what was written since its last pass (5–13 ms on the
//! writer every second or two under that load; with a longer interval the passes on
//! the writer took 50 ms and more). Nothing here waits for readers: a reader that
//! keeps an old snapshot open holds the log back (as it does with SQLite's own
//! checkpoints), reported past [`FORCE_AFTER_FRAMES`] pages. Should the checkpointer
//! fall behind or fail, the writer still checkpoints by itself past
//! [`WRITER_BACKSTOP_FRAMES`]. The task stops when the store is dropped or closed (the
//! last connection to close checkpoints what is left, as SQLite always does).

use std::time::Duration;

use sqlx::{AnyPool, Row};

use crate::error::Result;

/// How often the checkpointer runs.
pub const INTERVAL: Duration = Duration::from_millis(50);

/// Log size in pages (frames of the database's page size, 4 KiB by default) from which
/// the checkpointer finishes a pass on the writer connection, so the log starts over.
pub const RESTART_AFTER_FRAMES: i64 = 4_096;

/// Log size in pages beyond which a log that does not start over is reported (once):
/// readers still reading an old snapshot hold it.
pub const FORCE_AFTER_FRAMES: i64 = 50_000;

/// The writer's own automatic checkpoint, kept as a backstop should the checkpointer
/// fall behind: SQLite checkpoints inside a commit once the log holds this many pages.
pub const WRITER_BACKSTOP_FRAMES: i64 = 10 * RESTART_AFTER_FRAMES;

/// The outcome of one checkpoint (`PRAGMA wal_checkpoint`'s three columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The checkpoint could not run (SQLite's `SQLITE_BUSY`; never for `PASSIVE`).
    pub busy: bool,
    /// Pages (frames) in the write-ahead log.
    pub log_frames: i64,
    /// Pages of the log copied into the database file (all of them once equal to
    /// `log_frames`).
    pub checkpointed_frames: i64,
}

/// One `PASSIVE` checkpoint on `conn`.
pub(super) async fn run(conn: &mut sqlx::AnyConnection) -> Result<Checkpoint> {
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(conn)
        .await?;
    Ok(Checkpoint {
        busy: row.try_get::<i64, _>(0)? != 0,
        log_frames: row.try_get(1)?,
        checkpointed_frames: row.try_get(2)?,
    })
}

/// One pass: `PASSIVE` on `own`; when the log is long, again on the `writer` (between
/// two transactions), so that the log starts over. Never waits for readers.
async fn pass(own: &AnyPool, writer: &AnyPool, warned: &mut bool) -> Result<Checkpoint> {
    let c = run(&mut *own.acquire().await?).await?;
    if c.log_frames < RESTART_AFTER_FRAMES {
        return Ok(c);
    }
    let c = run(&mut *writer.acquire().await?).await?;
    if c.log_frames > FORCE_AFTER_FRAMES && !*warned {
        tracing::warn!(
            log_frames = c.log_frames,
            "SQLite write-ahead log is not starting over (a long-running reader?); it grows until the reader ends"
        );
        *warned = true;
    }
    Ok(c)
}

/// Checkpoints every [`INTERVAL`] until the store is gone (`alive` no longer upgrades)
/// or closed.
pub(super) async fn checkpointer(own: AnyPool, writer: AnyPool, alive: std::sync::Weak<()>) {
    let mut warned = false;
    while !own.is_closed() && alive.strong_count() > 0 {
        tokio::time::sleep(INTERVAL).await;
        match pass(&own, &writer, &mut warned).await {
            Ok(c) => crate::metrics::sqlite_wal_frames(c.log_frames - c.checkpointed_frames),
            Err(e) if !own.is_closed() && !writer.is_closed() => {
                tracing::warn!(error = %e, "SQLite checkpoint failed; retrying")
            }
            Err(_) => {}
        }
    }
}

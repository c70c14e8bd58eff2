//! SQLite group commit: transactions that queue for the one writer connection share
//! one database transaction, each inside a savepoint of its own, and commit together.
//!
//! SQLite serialises writers; each `COMMIT` appends every page the transaction changed
//! to the write-ahead log (≈25 pages, 100 KB, for a balance adjustment: the tails of
//! the journal, postings, audit and event tables and their indexes) and, every 1,000
//! pages, checkpoints inside that commit. Transactions queued behind one another change
//! mostly the same pages, so one `COMMIT` for the queue writes each page once.
//!
//! How it runs ([`Writer::join`]): the first transaction of a group starts it with
//! `BEGIN IMMEDIATE`; when it is done and others wait for the writer, it hands the open
//! transaction on instead of committing ([`MAX_MEMBERS`] at most). Each later member
//! starts with `SAVEPOINT member`; if it fails or is dropped, `ROLLBACK TO member` undoes
//! its changes and nothing else. The last member (nobody waiting, or the group full)
//! sends `COMMIT`; every member's [`super::Tx::commit`] returns only then, with the
//! group's outcome: no member ever reports a change that was not committed. When the
//! database itself rolled the whole transaction back (SQLite does on some I/O and
//! out-of-memory errors, so `ROLLBACK TO` finds no savepoint), or the `COMMIT` fails,
//! every member of the group gets the error and nothing of the group is committed —
//! the same outcome as a failed commit of each.
//!
//! Cancellation: joining, handing on and committing run in tasks of their own, so a
//! caller that goes away (a client hanging up) leaves neither the group nor the writer
//! stuck; a member dropped before its commit is rolled back to its savepoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, watch};

use super::AuditHeadCache;
use crate::error::{Error, Result};

/// Most transactions committed by one `COMMIT`: bounds how long the first member of a
/// group waits for the others (each holds the writer for a fraction of a millisecond).
pub const MAX_MEMBERS: usize = 16;

/// The outcome of a group's `COMMIT`, as members receive it (`None` until sent).
type Outcome = Option<std::result::Result<(), String>>;

/// The one SQLite writer connection and the group transaction open on it.
#[derive(Clone)]
pub(crate) struct Writer {
    pool: AnyPool,
    /// How long a caller waits for the writer before 503 `SERVICE_UNAVAILABLE`.
    acquire_timeout: std::time::Duration,
    slot: Arc<Mutex<Slot>>,
    /// Callers queued for the writer (handing on pays only when someone waits).
    waiting: Arc<AtomicUsize>,
    audit_head: AuditHeadCache,
    events_written: Arc<Notify>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The group transaction between two members (`None`: no group open).
#[derive(Default)]
struct Slot {
    open: Option<Group>,
}

/// A group transaction.
struct Group {
    tx: Transaction<'static, Any>,
    members: usize,
    /// The audit chain's head after the last member that appended to it (uncommitted).
    audit_head: Option<(i64, String)>,
    wrote_events: bool,
    outcome: watch::Sender<Outcome>,
}

/// One transaction of a group, holding the writer until it commits or is dropped.
pub(crate) struct Member {
    parts: Option<(OwnedMutexGuard<Slot>, Group)>,
    /// The group's first member: no savepoint, so rolling it back ends the group (it is
    /// alone in it: nobody joins before it hands on).
    first: bool,
    writer: Writer,
}

/// Counts a caller queued for the writer while it lives.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Queued(n)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Writer {
    pub(crate) fn new(
        pool: AnyPool,
        acquire_timeout: std::time::Duration,
        audit_head: AuditHeadCache,
        events_written: Arc<Notify>,
    ) -> Self {
        Writer {
            pool,
            acquire_timeout,
            slot: Arc::new(Mutex::new(Slot::default())),
            waiting: Arc::new(AtomicUsize::new(0)),
            audit_head,
            events_written,
        }
    }

    /// Waits for the writer (first come, first served) and joins the open group, or
    /// starts one. Errors: the database's (`BEGIN`, `SAVEPOINT`), the pool's timeout.
    pub(crate) async fn join(&self) -> Result<Member> {
        let writer = self.clone();
        // In a task: a caller cancelled meanwhile drops the member, which rolls back.
        tokio::spawn(async move { writer.join_now().await })
            .await
            .map_err(|e| Error::internal(format!("transaction start task failed: {e}")))?
    }

    async fn join_now(self) -> Result<Member> {
        let queued = Queued::new(&self.waiting);
        let locked =
            tokio::time::timeout(self.acquire_timeout, self.slot.clone().lock_owned()).await;
        drop(queued);
        let Ok(mut guard) = locked else {
            // The member before may have handed its group on because this caller was
            // still counted: if it sits in the slot now, end it. (If the lock is still
            // held, `finish` re-reads the count after releasing it and ends the group.)
            if let Ok(mut guard) = self.slot.clone().try_lock_owned()
                && let Some(group) = guard.open.take()
            {
                self.finish(guard, group, true).await;
            }
            return Err(Error::unavailable(
                "timed out waiting for the database writer",
            ));
        };
        match guard.open.take() {
            Some(mut group) => {
                match sqlx::query("SAVEPOINT member")
                    .execute(&mut *group.tx)
                    .await
                {
                    Ok(_) => {
                        group.members += 1;
                        Ok(Member {
                            parts: Some((guard, group)),
                            first: false,
                            writer: self,
                        })
                    }
                    Err(e) => {
                        // Nothing of this caller's exists, but SQLite may have rolled
                        // the whole transaction back (a later `SAVEPOINT` would then
                        // start a new one): the members before it fail together.
                        self.finish(guard, group, false).await;
                        Err(e.into())
                    }
                }
            }
            None => {
                let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                let (outcome, _) = watch::channel(None);
                Ok(Member {
                    parts: Some((
                        guard,
                        Group {
                            tx,
                            members: 1,
                            audit_head: None,
                            wrote_events: false,
                            outcome,
                        },
                    )),
                    first: true,
                    writer: self,
                })
            }
        }
    }

    /// Ends a member's turn: hands the group on when someone waits and it has room,
    /// else commits it and sends every member the outcome. `healthy = false`: the
    /// transaction is no longer whole; it is rolled back and every member fails.
    async fn finish(&self, guard: OwnedMutexGuard<Slot>, group: Group, healthy: bool) {
        if !healthy {
            let Group { tx, outcome, .. } = group;
            drop(tx);
            let _ = outcome.send(Some(Err(
                "the group transaction was rolled back by the database".into(),
            )));
            return;
        }
        let (mut guard, mut group) = (guard, group);
        while self.waiting.load(Ordering::SeqCst) > 0 && group.members < MAX_MEMBERS {
            guard.open = Some(group);
            drop(guard);
            // The caller counted above may have given up (timed out) before taking
            // the group, and seen the lock still held: if nobody waits now and the
            // group is still parked, end it here (one of the two sides always sees it).
            if self.waiting.load(Ordering::SeqCst) > 0 {
                return;
            }
            let Ok(mut again) = self.slot.clone().try_lock_owned() else {
                return;
            };
            let Some(parked) = again.open.take() else {
                return;
            };
            (guard, group) = (again, parked);
        }
        let Group {
            tx,
            audit_head,
            wrote_events,
            outcome,
            ..
        } = group;
        let committed = tx.commit().await;
        if let Some(head) = audit_head {
            // The chain's head as committed; unknown after a failed COMMIT.
            self.audit_head.set(committed.is_ok().then_some(head));
        }
        if committed.is_ok() && wrote_events {
            self.events_written.notify_one();
        }
        let _ = outcome.send(Some(committed.map_err(|e| e.to_string())));
        drop(guard);
    }
}

impl Member {
    /// The connection, inside the group transaction.
    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        match &mut self.parts {
            Some((_, group)) => &mut group.tx,
            // `parts` is taken only by `commit`/`rollback`, which consume the member.
            None => unreachable!("a group member used after its commit"),
        }
    }

    /// The audit chain's head this member appends after: the group's (uncommitted)
    /// when an earlier member appended, else the process's cached one.
    pub(crate) fn audit_head(&self) -> Option<(i64, String)> {
        self.parts
            .as_ref()
            .and_then(|(_, g)| g.audit_head.clone())
            .or_else(|| self.writer.audit_head.get())
    }

    /// Commits this member's work: hands the group on or commits it, then waits for
    /// the group's `COMMIT`. `audit_head`: the chain's head after this member's rows.
    pub(crate) async fn commit(
        mut self,
        wrote_events: bool,
        audit_head: Option<(i64, String)>,
    ) -> Result<()> {
        let Some((guard, mut group)) = self.parts.take() else {
            return Err(Error::internal("group member committed twice"));
        };
        group.wrote_events |= wrote_events;
        if audit_head.is_some() {
            group.audit_head = audit_head;
        }
        let mut outcome = group.outcome.subscribe();
        let writer = self.writer.clone();
        tokio::spawn(async move { writer.finish(guard, group, true).await })
            .await
            .map_err(|e| Error::internal(format!("commit task failed: {e}")))?;
        let result = outcome
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Error::internal("the group transaction ended without an outcome"))?
            .clone();
        match result {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(Error::unavailable(format!("commit failed: {e}"))),
            None => Err(Error::internal(
                "the group transaction ended without an outcome",
            )),
        }
    }

    /// Rolls this member back now (what dropping it does, in the background), then
    /// waits until the members before it are committed: what the caller saw of theirs
    /// (a conflict with a row one of them inserted) is then what other connections
    /// see. Prefer it to dropping when re-reading on another connection. Errors: 500
    /// (unavailable) when the group failed instead — what the caller saw never was.
    pub(crate) async fn rollback(mut self) -> Result<()> {
        if let Some((guard, group)) = self.parts.take() {
            let (writer, first) = (self.writer.clone(), self.first);
            let mut outcome = group.outcome.subscribe();
            tokio::spawn(async move { writer.roll_back(guard, group, first).await })
                .await
                .map_err(|e| Error::internal(format!("rollback task failed: {e}")))?;
            if !first {
                // What this member saw of the earlier members must be settled: an error
                // when it was not committed (the caller must not act on it).
                let settled = outcome.wait_for(Option::is_some).await.map(|o| o.clone());
                if !matches!(settled, Ok(Some(Ok(())))) {
                    return Err(Error::unavailable(
                        "the transactions before this one in its commit group failed",
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Writer {
    /// Undoes one member's work: the whole transaction for a first member (alone in
    /// it), else back to its savepoint; then ends its turn.
    async fn roll_back(&self, guard: OwnedMutexGuard<Slot>, mut group: Group, first: bool) {
        if first {
            drop(group.tx);
            drop(guard);
            return;
        }
        let undone = sqlx::query("ROLLBACK TO member")
            .execute(&mut *group.tx)
            .await
            .is_ok();
        self.finish(guard, group, undone).await;
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some((guard, group)) = self.parts.take() {
            let (writer, first) = (self.writer.clone(), self.first);
            // Outside a runtime (the process is ending) nothing can run any more.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { writer.roll_back(guard, group, first).await });
            }
        }
    }
}

//! Event fan-out inside one daemon; the SSE endpoints that subscribe to it are
//! [`crate::routes::events`].
//!
//! One [`EventHub`] per daemon runs three tasks (on PostgreSQL on a one-thread runtime
//! of their own, where their round trips do not queue behind request tasks):
//! - the pump runs the sequencer's events passes ([`offerhub::sequencer`], which
//!   numbers events committed on PostgreSQL) on a local commit, shortly after a pass
//!   that left committed rows waiting on an older transaction, and every second as a
//!   fallback (e.g. writes by the CLI); on PostgreSQL at most one pass per
//!   [`PASS_PACE`];
//! - the broadcaster sends, in sequence order, what the pump's passes numbered and,
//!   woken by a PostgreSQL `NOTIFY offerhub_events`, what another daemon's passes
//!   numbered, without waiting for this daemon's pass to end (with no subscriber it
//!   reads only the head, and wakes the webhook worker, [`EventHub::numbered`]). A
//!   `NOTIFY` makes the pump run a pass only when its own rows are waiting: each
//!   daemon numbers what it commits (any pass numbers every ready row), so two daemons
//!   do not set off each other's passes without end;
//! - the audit task (PostgreSQL) extends the audit chain with passes of its own,
//!   nudged by the pump and at most every [`AUDIT_PACE`] while rows keep coming: SSE
//!   does not wait for it.

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, Retryable};
use offerhub::events::{self, Event};
use offerhub::retry::AFTER_ERROR;
use offerhub::store::{Backend, Store};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Broadcasts committed events to this daemon's subscribers.
pub struct EventHub {
    sender: broadcast::Sender<Arc<Event>>,
    /// Cancelled once the daemon shuts down: SSE streams end, the pump stops.
    stopping: CancellationToken,
    /// The pump, the broadcaster, the audit task, the LISTEN connection and every SSE
    /// stream's forwarder.
    tasks: TaskTracker,
    /// Woken whenever `sender` moved on ([`EventHub::numbered`]).
    news: Arc<tokio::sync::Notify>,
    /// Cancelled by [`EventHub::finish`]: the sequencing runtime ends.
    finished: CancellationToken,
    /// PostgreSQL: the runtime of the pump, the broadcaster, the audit task and the
    /// LISTEN connection ([`sequencing_runtime`]).
    sequencing: Option<tokio::runtime::Handle>,
}

/// A one-thread runtime for the sequencer's tasks; `None` (they run on the daemon's
/// runtime) when it cannot be started. Each of their steps is a round trip to the
/// database: on the daemon's runtime, every step waited behind the request tasks
/// queued on its workers, which made a pass several times longer under load.
///
/// The tasks end with `stopping`; the runtime itself runs until `finished` is
/// cancelled ([`EventHub::finish`], after the store closed: the background pool's
/// connections were opened on this runtime, and closing them needs it) or the runtime
/// that started it ends (a test's, when the hub is not shut down).
fn sequencing_runtime(
    stopping: CancellationToken,
    finished: CancellationToken,
) -> Option<tokio::runtime::Handle> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let handle = rt.handle().clone();
    let until = finished.clone();
    std::thread::Builder::new()
        .name("offerhub-sequencer".into())
        .spawn(move || rt.block_on(until.cancelled_owned()))
        .ok()?;
    tokio::spawn(async move {
        let _stop_on_drop = stopping.drop_guard();
        let _finish_on_drop = finished.clone().drop_guard();
        finished.cancelled().await;
    });
    Some(handle)
}

/// The pump starts an events pass at most once per this interval: the commits of a
/// burst share a pass. Each pass costs a transaction (and its WAL flush); measured
/// with two daemons at 32 connections, passes back to back cost ~9 % of the
/// throughput, 20 ms kept it at the cost of a few milliseconds of event latency.
pub const PASS_PACE: Duration = Duration::from_millis(20);

/// After an audit pass that chained rows, the audit task waits this long before the
/// next: a pass per burst rather than per commit (audit reads number what they need
/// first, [`offerhub::sequencer::catch_up`]).
pub const AUDIT_PACE: Duration = Duration::from_millis(20);

/// The audit task: runs audit passes when nudged by the pump (after its events
/// passes), a few milliseconds after a pass that left rows behind an older
/// transaction, and every second as a fallback. PostgreSQL only (SQLite chains audit
/// rows at commit).
async fn audit_task(store: Store, due: Arc<tokio::sync::Notify>) {
    if store.backend() != Backend::Postgres {
        return;
    }
    let (mut waiting, mut idle_waits) = (false, 0u32);
    loop {
        let idle = if waiting {
            Duration::from_millis(2 << idle_waits.min(6))
        } else {
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = due.notified() => {}
            _ = tokio::time::sleep(idle) => {}
        }
        match offerhub::sequencer::try_audit_pass(&store).await {
            // Another daemon's audit pass is running: retry shortly.
            Ok(None) => (waiting, idle_waits) = (true, idle_waits.saturating_add(1)),
            Ok(Some(pass)) => {
                waiting = pass.waiting;
                if pass.audit > 0 {
                    idle_waits = 0;
                    tokio::time::sleep(AUDIT_PACE).await;
                } else {
                    idle_waits = idle_waits.saturating_add(1);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "audit pass failed");
                (waiting, idle_waits) = (false, 0);
            }
        }
    }
}

/// Broadcasts every event numbered after `last`, in sequence order (pages of 1,000),
/// moving `last` on; stops at the first read error (the next wake-up retries). With no
/// subscriber, reads no event: `last` moves to the head (a subscriber reads from the
/// database what it has not been sent, [`crate::routes::events`]). Wakes `news`
/// when `last` moved.
async fn broadcast_after(
    store: &Store,
    sender: &broadcast::Sender<Arc<Event>>,
    news: &tokio::sync::Notify,
    last: &mut i64,
) {
    // The head first (one row): most calls find nothing new, and a read of `events`
    // from `last` costs more than the head even when it finds nothing.
    match events::last_seq_on(store.background_reader(), store.backend()).await {
        Ok(head) if head <= *last => return,
        Ok(head) if sender.receiver_count() == 0 => {
            *last = head;
            news.notify_one();
            return;
        }
        Ok(_) => {}
        Err(_) => return,
    }
    news.notify_one();
    loop {
        let Ok(batch) = events::after_on(store.background_reader(), *last, 1000).await else {
            return;
        };
        let full = batch.len() == 1000;
        for e in batch {
            *last = e.seq;
            let _ = sender.send(Arc::new(e));
        }
        if !full {
            return;
        }
    }
}

/// The broadcaster: sends every numbered event to this daemon's subscribers, in
/// sequence order, as soon as it is numbered — what this daemon's pump numbered (`own`,
/// sent without reading it back when it follows what was sent) and, on a `NOTIFY`
/// (`elsewhere`), what another daemon's pass numbered. A task of its own, so events
/// numbered elsewhere do not wait for this daemon's pass to end.
async fn broadcaster(
    store: Store,
    sender: broadcast::Sender<Arc<Event>>,
    news: Arc<tokio::sync::Notify>,
    mut own: tokio::sync::mpsc::Receiver<Vec<Event>>,
    elsewhere: Arc<tokio::sync::Notify>,
) {
    // On the background pool, like every database access of these tasks: its
    // connections belong to the sequencing runtime, the query pool's to the daemon's.
    let head = || events::last_seq_on(store.background_reader(), store.backend());
    let Ok(mut last) = head.retry(AFTER_ERROR).await else {
        // AFTER_ERROR has no limit: only reached if it ever gets one.
        return;
    };
    loop {
        tokio::select! {
            // This daemon's pass first: its own NOTIFY then finds nothing new.
            biased;
            numbered = own.recv() => {
                let Some(numbered) = numbered else {
                    return; // the pump ended: shutting down
                };
                // Already sent (read after the pass's NOTIFY) are skipped.
                let read_back = numbered.is_empty();
                let sent = last;
                let mut fresh = numbered.into_iter().skip_while(|e| e.seq <= sent).peekable();
                match fresh.peek() {
                    Some(e) if e.seq == last + 1 => {
                        for e in fresh {
                            last = e.seq;
                            let _ = sender.send(Arc::new(e));
                        }
                        news.notify_one();
                    }
                    // Another daemon numbered events before these (or the pass numbered
                    // none: the CLI wrote on SQLite, another daemon numbered ours): read
                    // from `last`.
                    Some(_) => broadcast_after(&store, &sender, &news, &mut last).await,
                    None if read_back => broadcast_after(&store, &sender, &news, &mut last).await,
                    None => {}
                }
            }
            _ = elsewhere.notified() => broadcast_after(&store, &sender, &news, &mut last).await,
        }
    }
}

impl EventHub {
    /// Starts the pump, the broadcaster and the audit task (and, on PostgreSQL, its
    /// LISTEN connection): on PostgreSQL on a one-thread runtime of their own
    /// ([`sequencing_runtime`], which ends with the current runtime at the latest),
    /// on SQLite on the current runtime.
    pub fn start(store: Store, database_url: Option<String>) -> Arc<EventHub> {
        let (sender, _) = broadcast::channel(8192);
        let (stopping, finished) = (CancellationToken::new(), CancellationToken::new());
        let news = Arc::new(tokio::sync::Notify::new());
        let hub = EventHub {
            sender: sender.clone(),
            news: news.clone(),
            sequencing: (store.backend() == Backend::Postgres)
                .then(|| sequencing_runtime(stopping.clone(), finished.clone()))
                .flatten(),
            finished,
            stopping,
            tasks: TaskTracker::new(),
        };
        let wake = store.events_written();
        // Another daemon's pass numbered events: the broadcaster sends them; the pump
        // runs no pass for that alone (the other daemon numbers what it committed; a
        // pass per NOTIFY made two daemons trigger each other's passes without end).
        let numbered_elsewhere = Arc::new(tokio::sync::Notify::new());
        let retry_due = Arc::new(tokio::sync::Notify::new());
        if store.backend() == Backend::Postgres
            && let Some(url) = database_url
        {
            let (broadcast_due, retry_due) = (numbered_elsewhere.clone(), retry_due.clone());
            hub.spawn_sequencing(async move {
                let mut reconnect = AFTER_ERROR.build();
                loop {
                    match sqlx::postgres::PgListener::connect(&url).await {
                        Ok(mut l) => {
                            if l.listen(events::NOTIFY_CHANNEL).await.is_ok() {
                                while l.recv().await.is_ok() {
                                    broadcast_due.notify_one();
                                    retry_due.notify_one();
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "event LISTEN connection failed; retrying")
                        }
                    }
                    // Unlimited schedule: `None` never comes.
                    tokio::time::sleep(reconnect.next().unwrap_or(Duration::from_secs(1))).await;
                }
            });
        }
        let audit_due = Arc::new(tokio::sync::Notify::new());
        hub.spawn_sequencing(audit_task(store.clone(), audit_due.clone()));
        let (own, numbered_here) = tokio::sync::mpsc::channel(16);
        hub.spawn_sequencing(broadcaster(
            store.clone(),
            sender.clone(),
            news,
            numbered_here,
            numbered_elsewhere,
        ));
        hub.spawn_sequencing(async move {
            // Passes that found rows waiting on an older transaction and numbered
            // nothing, in a row: the retry backs off from 4 ms to 128 ms (on
            // PostgreSQL, never sooner than PASS_PACE after the last pass started).
            let mut idle_waits: u32 = 0;
            let mut waiting = false;
            let mut last_pass = std::time::Instant::now();
            loop {
                let idle = if waiting {
                    Duration::from_millis(2 << idle_waits.min(6))
                } else {
                    Duration::from_secs(1)
                };
                let elsewhere = tokio::select! {
                    _ = wake.notified() => false,
                    _ = retry_due.notified() => true,
                    _ = tokio::time::sleep(idle) => false,
                };
                // Unless this daemon has rows waiting (its last pass was skipped, or left
                // rows behind an older transaction): then the other's pass, just ended,
                // is the moment to retry.
                if elsewhere && !waiting {
                    continue;
                }
                // Passes start at most every PASS_PACE: the commits of a burst share one
                // (PostgreSQL; on SQLite a pass is nothing and only broadcasts).
                if store.backend() == Backend::Postgres {
                    let since = last_pass.elapsed();
                    if since < PASS_PACE {
                        tokio::time::sleep(PASS_PACE - since).await;
                    }
                    last_pass = std::time::Instant::now();
                }
                let mut numbered = Vec::new();
                // Whatever woke the pump may have committed audit rows too.
                audit_due.notify_one();
                (waiting, idle_waits) = match offerhub::sequencer::try_pass(&store).await {
                    // Another daemon's pass is running; it wakes this pump when done
                    // (and a short retry covers rows it could not see yet).
                    Ok(None) => (true, idle_waits.saturating_add(1)),
                    Ok(Some(pass)) => {
                        numbered = pass.numbered;
                        (
                            pass.waiting,
                            if pass.events > 0 {
                                0
                            } else {
                                idle_waits.saturating_add(1)
                            },
                        )
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "sequencer pass failed");
                        (false, 0)
                    }
                };
                if own.send(numbered).await.is_err() {
                    return; // the broadcaster ended: shutting down
                }
            }
        });
        Arc::new(hub)
    }

    /// Resolves once events were numbered since the last call returned (at once if
    /// they were in between): a wake-up for one waiter, the webhook worker, which
    /// reads what it needs from the database. Cheaper than a subscription, and it
    /// lets a daemon with no SSE subscriber skip reading the events ([`broadcast_after`]).
    pub async fn numbered(&self) {
        self.news.notified().await
    }

    /// A receiver of every event broadcast from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
    }

    /// [`EventHub::spawn`], on the sequencing runtime when there is one.
    fn spawn_sequencing(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let task = self.stopping.clone().run_until_cancelled_owned(task);
        match &self.sequencing {
            Some(rt) => {
                self.tasks.spawn_on(task, rt);
            }
            None => {
                self.tasks.spawn(task);
            }
        }
    }

    /// Runs `task` until it ends or [`EventHub::shutdown`] is called (then it is dropped
    /// where it waits).
    pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks
            .spawn(self.stopping.clone().run_until_cancelled_owned(task));
    }

    /// Resolves once [`EventHub::shutdown`] was called.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.stopping.clone().cancelled_owned()
    }

    /// Ends every SSE stream (so a graceful shutdown does not wait on them) and stops
    /// the pump, the broadcaster, the audit task and the LISTEN connection;
    /// [`EventHub::stopped_within`] waits for them ([`EventHub::finish`] then ends the
    /// sequencing runtime).
    pub fn shutdown(&self) {
        self.stopping.cancel();
        self.tasks.close();
    }

    /// Ends the sequencing runtime (PostgreSQL), once the store is closed: call after
    /// [`EventHub::shutdown`] and `Store::close`. Also happens when the runtime that
    /// started the hub ends.
    pub fn finish(&self) {
        self.finished.cancel();
    }

    /// Waits until the pump, the broadcaster, the audit task, the LISTEN connection and
    /// every SSE forwarder have ended after [`EventHub::shutdown`], up to `timeout`;
    /// `false` when some were still running then.
    pub async fn stopped_within(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.tasks.wait())
            .await
            .is_ok()
    }
}

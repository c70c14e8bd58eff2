//! Event fan-out inside one daemon; the SSE endpoints that subscribe to it are
//! [`crate::routes::events`].
//!
//! One [`EventHub`] pump per daemon broadcasts, in sequence order, what other daemons
//! numbered, runs the sequencer ([`offerhub::sequencer`], which numbers events
//! committed on PostgreSQL), then broadcasts what that pass numbered. It runs a pass
//! on a local commit, a few milliseconds after a pass that left committed rows waiting
//! on an older transaction, and every second as a fallback (e.g. writes by the CLI).
//! A PostgreSQL `NOTIFY offerhub_events` (another daemon's sequencer numbered events)
//! wakes it to broadcast them, and to run a pass only when its own rows are waiting:
//! each daemon numbers what it commits (any pass numbers every ready row), so two
//! daemons do not set off each other's passes without end.

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
    /// The pump, its LISTEN connection and every SSE stream's forwarder.
    tasks: TaskTracker,
}

/// Broadcasts every event numbered after `last`, in sequence order (pages of 1,000),
/// moving `last` on; stops at the first read error (the next wake-up retries).
async fn broadcast_after(store: &Store, sender: &broadcast::Sender<Arc<Event>>, last: &mut i64) {
    // The head first (one row): most calls find nothing new, and a read of `events`
    // from `last` costs more than the head even when it finds nothing.
    match events::last_seq_on(store.background_reader(), store.backend()).await {
        Ok(head) if head <= *last => return,
        Ok(_) => {}
        Err(_) => return,
    }
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

impl EventHub {
    /// Starts the pump (and, on PostgreSQL, its LISTEN connection) on the current runtime.
    pub fn start(store: Store, database_url: Option<String>) -> Arc<EventHub> {
        let (sender, _) = broadcast::channel(8192);
        let hub = EventHub {
            sender: sender.clone(),
            stopping: CancellationToken::new(),
            tasks: TaskTracker::new(),
        };
        let wake = store.events_written();
        // Another daemon's pass numbered events: broadcast them, but run no pass for
        // that alone (the other daemon numbers what it committed; a pass per NOTIFY
        // made two daemons trigger each other's passes without end).
        let numbered_elsewhere = Arc::new(tokio::sync::Notify::new());
        if store.backend() == Backend::Postgres
            && let Some(url) = database_url
        {
            let wake = numbered_elsewhere.clone();
            hub.spawn(async move {
                let mut reconnect = AFTER_ERROR.build();
                loop {
                    match sqlx::postgres::PgListener::connect(&url).await {
                        Ok(mut l) => {
                            if l.listen(events::NOTIFY_CHANNEL).await.is_ok() {
                                while l.recv().await.is_ok() {
                                    wake.notify_one();
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
        hub.spawn(async move {
            let Ok(mut last) = (|| events::last_seq(&store)).retry(AFTER_ERROR).await else {
                // AFTER_ERROR has no limit: only reached if it ever gets one.
                return;
            };
            // Passes that found rows waiting on an older transaction and numbered
            // nothing, in a row: the retry backs off from 2 ms to 128 ms.
            let mut idle_waits: u32 = 0;
            let mut waiting = false;
            loop {
                let idle = if waiting {
                    Duration::from_millis(2 << idle_waits.min(6))
                } else {
                    Duration::from_secs(1)
                };
                let elsewhere = tokio::select! {
                    _ = wake.notified() => false,
                    _ = numbered_elsewhere.notified() => true,
                    _ = tokio::time::sleep(idle) => false,
                };
                // Unless this daemon has rows waiting (its last pass was skipped, or left
                // rows behind an older transaction): then the other's pass, just ended,
                // is the moment to retry.
                if elsewhere && !waiting {
                    broadcast_after(&store, &sender, &mut last).await;
                    continue;
                }
                if store.backend() == Backend::Postgres {
                    // What another daemon numbered (its NOTIFY may be what woke this
                    // pump) goes out before this daemon's own pass, which takes a few
                    // round trips.
                    broadcast_after(&store, &sender, &mut last).await;
                }
                let mut numbered = Vec::new();
                (waiting, idle_waits) = match offerhub::sequencer::try_pass(&store).await {
                    // Another daemon's pass is running; it wakes this pump when done
                    // (and a short retry covers rows it could not see yet).
                    Ok(None) => (true, idle_waits.saturating_add(1)),
                    Ok(Some(pass)) => {
                        let busy = pass.events + pass.audit > 0;
                        numbered = pass.numbered;
                        (
                            pass.waiting,
                            if busy {
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
                // What this daemon just numbered follows what it has sent: broadcast it
                // without reading it back. Otherwise (another daemon numbered events,
                // the CLI wrote on SQLite, or nothing was numbered) read from `last`.
                if numbered.first().is_some_and(|e| e.seq == last + 1) {
                    for e in numbered {
                        last = e.seq;
                        let _ = sender.send(Arc::new(e));
                    }
                    continue;
                }
                broadcast_after(&store, &sender, &mut last).await;
            }
        });
        Arc::new(hub)
    }

    /// A receiver of every event broadcast from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.sender.subscribe()
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
    /// the pump and its LISTEN connection; [`EventHub::stopped_within`] waits for them.
    pub fn shutdown(&self) {
        self.stopping.cancel();
        self.tasks.close();
    }

    /// Waits until the pump, its LISTEN connection and every SSE forwarder have ended
    /// after [`EventHub::shutdown`], up to `timeout`; `false` when some were still
    /// running then.
    pub async fn stopped_within(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.tasks.wait())
            .await
            .is_ok()
    }
}

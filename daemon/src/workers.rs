//! Background workers of the daemon: wallet activation and the deposit monitor, saga
//! resume, in Airtm mode the inbox of Airtm webhooks and the Airtm reconciler (with the
//! expiry of unpaid top-ups), the webhook dispatcher/sender, the purge of expired
//! idempotency records, the order lifecycle (automatic release after the inspection
//! window, expiry of stale reservations) and the scheduled reconciliation (one leader
//! among the daemons). Each loop survives errors (logged) and wakes on new events or a
//! short tick. All of them run on one task tracker until one cancellation token is
//! cancelled: the daemon's shutdown cancels it and waits until they have ended.

use std::time::Duration;

use offerhub::services::{idempotency, webhooks};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::AppState;

/// The running workers of a daemon: each runs on one [`TaskTracker`] until one
/// [`CancellationToken`] is cancelled. Clones share the same workers.
#[derive(Clone, Default)]
pub struct Workers {
    tracker: TaskTracker,
    token: CancellationToken,
}

impl Workers {
    /// Runs `worker` until it ends or [`Workers::stop`] is called: then it is dropped at
    /// the point where it waits (a sleep, a query, a provider call).
    fn spawn(&self, worker: impl Future<Output = ()> + Send + 'static) {
        self.tracker
            .spawn(self.token.clone().run_until_cancelled_owned(worker));
    }

    /// Asks every worker to stop; [`Workers::stopped`] waits until they have. Safe at
    /// any point: a worker's open transaction rolls back, and chain operations resume
    /// from their stored envelope (sagas, withdrawals) on the next start or in another
    /// daemon.
    pub fn stop(&self) {
        self.token.cancel();
        self.tracker.close();
    }

    /// Waits until every worker has ended after [`Workers::stop`], up to `timeout`;
    /// `false` when some were still running then.
    pub async fn stopped(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// Starts every worker on the current runtime; [`Workers::stop`] ends them (dropping
/// the handle leaves them running).
pub fn start(state: &AppState) -> Workers {
    let workers = Workers::default();
    if let Some(sc) = &state.stellar {
        workers.spawn(crate::wallets::activation_worker(
            state.store.clone(),
            sc.clone(),
            state.config.platform_user_id.clone(),
            state.wallet_wake.clone(),
        ));
        workers.spawn(crate::wallets::deposit_monitor(
            state.store.clone(),
            sc.clone(),
        ));
    }
    if let Some(ec) = &state.escrow {
        let (ec, store) = (ec.clone(), state.store.clone());
        workers.spawn(async move {
            // Resumes sagas left running (a restart, an unknown outcome, a retry).
            loop {
                if let Err(e) = offerhub::services::escrow::resume_due(&ec, &store).await {
                    tracing::warn!(error = %e, "saga resume pass failed");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }
    if let (Some(ac), Some(wake)) = (&state.airtm, &state.airtm_wake) {
        let (ac, wake, store) = (ac.clone(), wake.clone(), state.store.clone());
        let every = std::time::Duration::from_secs(u64::from(state.config.airtm.reconcile_secs));
        workers.spawn(async move {
            // The inbox of Airtm webhooks, and the reconciler: open top-ups and payouts
            // are re-read from Airtm so a missed webhook never leaves money stuck.
            let mut last_reconcile = tokio::time::Instant::now();
            loop {
                let processed = offerhub::services::airtm::process_inbox(&store, &ac, 50)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "Airtm inbox pass failed");
                        0
                    });
                if last_reconcile.elapsed() >= every {
                    last_reconcile = tokio::time::Instant::now();
                    let stale = i64::try_from(every.as_secs()).unwrap_or(60);
                    if let Err(e) = offerhub::services::airtm::reconcile(&store, &ac, stale).await {
                        tracing::warn!(error = %e, "Airtm reconciliation pass failed");
                    }
                    // Payins Airtm itself expired: close their top-ups (`topup.expired`).
                    match offerhub::services::topups::expire_stale(
                        &store,
                        &ac,
                        offerhub::services::topups::PAYIN_EXPIRY_SECS,
                        50,
                    )
                    .await
                    {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(topups = n, "expired unpaid top-ups"),
                        Err(e) => tracing::warn!(error = %e, "top-up expiry pass failed"),
                    }
                }
                if processed == 0 {
                    let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
                }
            }
        });
    }
    workers.spawn(webhook_loop(state.clone()));
    let s = state.clone();
    workers.spawn(async move {
        loop {
            if let Err(e) = idempotency::purge_expired(&s.store).await {
                tracing::warn!(error = %e, "idempotency purge failed");
            }
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
    });
    workers.spawn(lifecycle_loop(state.clone(), workers.clone()));
    match (state.config.reconcile_every_secs, &state.stellar) {
        (Some(every), Some(sc)) => workers.spawn(scheduled_reconciliation(
            state.clone(),
            sc.clone(),
            Duration::from_secs(every),
        )),
        (Some(_), None) => tracing::warn!(
            "OFFERHUB_RECONCILE_EVERY is set but there are no wallets to reconcile (no WALLET_ENCRYPTION_KEY or Horizon): scheduled reconciliation disabled"
        ),
        _ => {}
    }
    workers
}

/// The order lifecycle, every second: orders whose inspection window expired are
/// released (through the saga of a manual release; several daemons may look, the
/// schedule's compare-and-set lets one release), and with `OFFERHUB_ORDER_RESERVATION_TTL`
/// stale `FUNDS_RESERVED` orders are canceled (`order.expired`). Each release saga runs
/// as one more of `workers`.
async fn lifecycle_loop(state: AppState, workers: Workers) {
    use offerhub::services::{escrow, lifecycle};
    loop {
        if let Some(ec) = &state.escrow {
            match lifecycle::due_auto_releases(&state.store, 20).await {
                Ok(ids) => {
                    for id in ids {
                        match escrow::auto_release(&state.store, &id).await {
                            Ok(Some(saga)) => {
                                tracing::info!(order_id = %id, saga_id = %saga.id, "inspection window expired: releasing");
                                let (ec, store) = (ec.clone(), state.store.clone());
                                workers.spawn(async move {
                                    if let Err(e) = escrow::run(&ec, &store, &saga.id).await {
                                        tracing::warn!(saga_id = %saga.id, error = %e, "automatic release saga run failed");
                                    }
                                });
                            }
                            Ok(None) => {}
                            // Another daemon claimed it, or the order moved meanwhile.
                            Err(e) => {
                                tracing::debug!(order_id = %id, error = %e, "automatic release not started")
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "automatic release pass failed"),
            }
        }
        if let Some(ttl) = state.config.order_reservation_ttl_secs {
            match lifecycle::expire_reservations(&state.store, ttl, 50).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(orders = n, "expired stale reservations"),
                Err(e) => tracing::warn!(error = %e, "reservation expiry pass failed"),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Advisory lock key of the scheduled reconciliation's leadership.
const RECONCILE_LOCK: i64 = 7301002;

/// `OFFERHUB_RECONCILE_EVERY`: one daemon among those sharing a PostgreSQL database
/// (session advisory lock on a dedicated connection, re-checked before every run —
/// fencing, as the deposit monitor does) runs
/// [`offerhub::services::reconcile_schedule::run`] every `every`.
async fn scheduled_reconciliation(
    state: AppState,
    sc: std::sync::Arc<offerhub::services::wallets::StellarContext>,
    every: Duration,
) {
    use offerhub::services::reconcile_schedule;
    let store = state.store.clone();
    let treasury = state.airtm.is_some();
    let full_every = state.config.reconcile_full_every_secs;
    let postgres = store.backend() == offerhub::store::Backend::Postgres;
    loop {
        // Leadership (PostgreSQL): try the lock; others keep trying.
        let mut conn = None;
        if postgres {
            match store.reader().acquire().await {
                Ok(mut c) => {
                    let got: std::result::Result<bool, _> =
                        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                            .bind(RECONCILE_LOCK)
                            .fetch_one(&mut *c)
                            .await;
                    if matches!(got, Ok(true)) {
                        tracing::info!("this daemon runs the scheduled reconciliation");
                        conn = Some(c);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "scheduled reconciliation: no database connection")
                }
            }
            if conn.is_none() {
                tokio::time::sleep(every.min(Duration::from_secs(5))).await;
                continue;
            }
        }
        loop {
            if let Some(c) = conn.as_mut() {
                // Fencing: still the holder of the lock on this session?
                let held: std::result::Result<bool, _> = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                     AND objid = $1 AND pid = pg_backend_pid() AND granted)",
                )
                .bind(RECONCILE_LOCK)
                .fetch_one(&mut **c)
                .await;
                if !matches!(held, Ok(true)) {
                    tracing::warn!("scheduled reconciliation: leadership lost");
                    break;
                }
            }
            match reconcile_schedule::run(
                &store,
                &sc,
                state.escrow.as_deref(),
                treasury,
                full_every,
            )
            .await
            {
                Ok(run) if run.discrepancies > 0 => tracing::warn!(
                    run_id = %run.id, scope = %run.scope, discrepancies = run.discrepancies,
                    "scheduled reconciliation found discrepancies"
                ),
                Ok(run) => {
                    tracing::info!(run_id = %run.id, scope = %run.scope, wallets = run.wallets_checked, escrows = run.escrows_checked, "scheduled reconciliation clean")
                }
                Err(e) => tracing::warn!(error = %e, "scheduled reconciliation failed"),
            }
            tokio::time::sleep(every).await;
        }
        // The connection may be broken: never hand it back to the pool.
        if let Some(c) = conn.take() {
            drop(c.detach());
        }
    }
}

async fn webhook_loop(state: AppState) {
    let allow_private = state.config.webhook_allow_private_networks;
    let client = match offerhub::outbound::client(
        concat!("OfferHub-Webhooks/", env!("CARGO_PKG_VERSION")),
        allow_private,
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhook HTTP client unavailable; webhooks disabled");
            return;
        }
    };
    let Some(vault) = state.vault.clone() else {
        tracing::warn!("no WALLET_ENCRYPTION_KEY: outbound webhooks disabled");
        return;
    };
    match webhooks::seal_plaintext_secrets(&state.store, &vault).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            endpoints = n,
            "sealed webhook endpoint secrets stored in plain text"
        ),
        Err(e) => tracing::warn!(error = %e, "sealing plain-text webhook secrets failed"),
    }
    let policy = webhooks::SendPolicy {
        backoff_base: Duration::from_millis(state.config.webhook_backoff_base_ms),
        disable_after: Duration::from_secs(
            u64::from(state.config.webhook_disable_after_hours) * 3600,
        ),
        vault: &vault,
        allow_private_networks: allow_private,
    };
    let tick = Duration::from_millis(state.config.webhook_backoff_base_ms.clamp(10, 1000));
    loop {
        let dispatched = webhooks::dispatch(&state.store).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "webhook dispatch failed");
            0
        });
        let sent = webhooks::deliver_due(&state.store, &client, policy, 100)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "webhook delivery pass failed");
                0
            });
        if dispatched == 0 && sent == 0 {
            // One dispatch covers every event numbered so far, not one per event.
            let _ = tokio::time::timeout(tick, state.events.numbered()).await;
        }
    }
}

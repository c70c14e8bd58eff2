//! Background workers of the daemon: wallet activation and the deposit monitor, saga
//! resume, in Airtm mode the inbox of Airtm webhooks and the Airtm reconciler, the webhook
//! dispatcher/sender and the purge of expired idempotency records. Each loop survives errors (logged) and wakes on new
//! events or a short tick.

use std::time::Duration;

use offerhub::services::{idempotency, webhooks};

use crate::state::AppState;

/// The running workers of a daemon.
pub struct Workers(Vec<tokio::task::JoinHandle<()>>);

impl Workers {
    /// Stops every worker now. Safe at any point: a worker's open transaction rolls back,
    /// and chain operations resume from their stored envelope (sagas, withdrawals) on
    /// the next start or in another daemon.
    pub fn stop(self) {
        for h in self.0 {
            h.abort();
        }
    }
}

/// Starts every worker on the current runtime; [`Workers::stop`] ends them (dropping
/// the handle leaves them running).
pub fn start(state: &AppState) -> Workers {
    let mut handles = Vec::new();
    if let Some(sc) = &state.stellar {
        handles.push(tokio::spawn(crate::wallets::activation_worker(
            state.store.clone(),
            sc.clone(),
            state.config.platform_user_id.clone(),
            state.wallet_wake.clone(),
        )));
        handles.push(tokio::spawn(crate::wallets::deposit_monitor(
            state.store.clone(),
            sc.clone(),
        )));
    }
    if let Some(ec) = &state.escrow {
        let (ec, store) = (ec.clone(), state.store.clone());
        handles.push(tokio::spawn(async move {
            // Resumes sagas left running (a restart, an unknown outcome, a retry).
            loop {
                if let Err(e) = offerhub::services::escrow::resume_due(&ec, &store).await {
                    tracing::warn!(error = %e, "saga resume pass failed");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }
    if let (Some(ac), Some(wake)) = (&state.airtm, &state.airtm_wake) {
        let (ac, wake, store) = (ac.clone(), wake.clone(), state.store.clone());
        let every = std::time::Duration::from_secs(u64::from(state.config.airtm.reconcile_secs));
        handles.push(tokio::spawn(async move {
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
                }
                if processed == 0 {
                    let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
                }
            }
        }));
    }
    let s = state.clone();
    handles.push(tokio::spawn(async move { webhook_loop(s).await }));
    let s = state.clone();
    handles.push(tokio::spawn(async move {
        loop {
            if let Err(e) = idempotency::purge_expired(&s.store).await {
                tracing::warn!(error = %e, "idempotency purge failed");
            }
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
    }));
    Workers(handles)
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
    let mut live = state.events.subscribe();
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
            let _ = tokio::time::timeout(tick, live.recv()).await;
        }
    }
}

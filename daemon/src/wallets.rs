//! Crypto mode in the daemon: the Stellar context built at start, the user-creation
//! hook that gives every new user a wallet, the activation worker and the deposit
//! monitor. The wallet endpoints are [`crate::routes::wallets`].

use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::future::BoxFuture;
use offerhub::config::{Config, Network};
use offerhub::context::Context;
use offerhub::error::{Error, ErrorCode, Result};
use offerhub::services::users::{User, UserHooks};
use offerhub::services::wallets::{self, StellarContext, WalletKind};
use offerhub::stellar::horizon::Horizon;
use offerhub::stellar::network::StellarNetwork;
use offerhub::stellar::tx::CreditAsset;
use offerhub::store::Store;
use offerhub::vault::Vault;
use tokio::sync::Notify;

/// XLM float sent to each wallet at activation: 1 XLM (stroops).
pub const WALLET_FLOAT_STROOPS: i64 = 10_000_000;

/// Builds the Stellar context (wallets, treasury); `None` when the deployment has no
/// Horizon or no wallet key. Airtm mode uses it too: fiat settles as USDC in wallets. Fails when Horizon serves another network than
/// configured (a signature for the wrong network would be refused as `tx_bad_auth`).
pub async fn context(config: &Config) -> Result<Option<Arc<StellarContext>>> {
    let (Some(horizon_url), Some(key)) = (&config.horizon_url, &config.wallet_encryption_key)
    else {
        return Ok(None);
    };
    let horizon = match config.network {
        // Public Horizon's per-IP limit; the sandbox is local and unlimited.
        Network::Testnet | Network::Mainnet => Horizon::new(horizon_url.clone())?.paced(3600),
        Network::Sandbox => Horizon::new(horizon_url.clone())?,
    };
    let served = horizon.network_passphrase().await?;
    let network = match StellarNetwork::for_config(config.network) {
        Some(n) if n.passphrase != served => {
            return Err(Error::new(
                ErrorCode::ProviderError,
                format!(
                    "STELLAR_HORIZON_URL serves {served:?}, not the {} network",
                    config.network.as_str()
                ),
            ));
        }
        Some(n) => n,
        None => StellarNetwork::from_passphrase(&served),
    };
    let issuer = match &config.usdc_issuer {
        Some(i) => i.clone(),
        None => {
            // The sandbox publishes its USDC issuer.
            let info: serde_json::Value = reqwest::get(
                horizon_url
                    .join("/_sandbox/info")
                    .map_err(|e| Error::internal(e.to_string()))?,
            )
            .await
            .map_err(|e| Error::new(ErrorCode::ProviderError, format!("sandbox info: {e}")))?
            .json()
            .await
            .map_err(|e| Error::new(ErrorCode::ProviderError, format!("sandbox info: {e}")))?;
            info["usdc"]["issuer"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| {
                    Error::new(ErrorCode::ProviderError, "sandbox info has no USDC issuer")
                })?
        }
    };
    let friendbot = match config.network {
        Network::Sandbox => horizon_url.join("/friendbot").ok(),
        Network::Testnet => "https://friendbot.stellar.org/".parse().ok(),
        Network::Mainnet => None,
    };
    Ok(Some(Arc::new(StellarContext {
        horizon,
        network,
        usdc: CreditAsset {
            code: config.usdc_asset_code.clone(),
            issuer: offerhub::stellar::keys::parse_account(&issuer, "STELLAR_USDC_ISSUER")?,
        },
        usdc_issuer: issuer,
        // A key a rotation saved (see offerhub::keystore) is loaded when first needed.
        vault: Arc::new(
            Vault::new(key, &config.wallet_encryption_keys_previous)?
                .with_key_dir(offerhub::keystore::key_dir(&config.data_dir)),
        ),
        float_stroops: WALLET_FLOAT_STROOPS,
        friendbot,
    })))
}

/// Gives each new user a wallet (a database row; the activation worker puts it on chain).
pub struct WalletProvisioner {
    pub store: Store,
    pub stellar: Arc<StellarContext>,
    pub wake: Arc<Notify>,
}

impl UserHooks for WalletProvisioner {
    fn user_created<'a>(&'a self, user: &'a User) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            wallets::create(
                &self.store,
                &Context::system(),
                &self.stellar,
                WalletKind::User,
                Some(&user.id),
            )
            .await?;
            self.wake.notify_one();
            Ok(())
        })
    }
}

/// Setting up the platform wallet again: from 1 s, doubling up to 60 s, with jitter,
/// until it is active.
const PLATFORM_WALLET_RETRY: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_secs(1))
    .with_factor(2.0)
    .with_max_delay(Duration::from_secs(60))
    .without_max_times()
    .with_jitter();

/// The first pause of [`STREAM_RECONNECT`].
const STREAM_RECONNECT_MIN: Duration = Duration::from_millis(200);

/// Reopening the deposit monitor's payment stream: from 200 ms (or the server's `retry:`
/// after a stream that opened), doubling up to 30 s, with jitter; the schedule starts
/// over once a stream opens.
const STREAM_RECONNECT: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(STREAM_RECONNECT_MIN)
    .with_factor(2.0)
    .with_max_delay(Duration::from_secs(30))
    .without_max_times()
    .with_jitter();

/// Prepares the platform wallet, then activates pending wallets (and backfills users
/// without one) whenever woken or every 2 s.
pub async fn activation_worker(
    store: Store,
    sc: Arc<StellarContext>,
    platform_user: Option<String>,
    wake: Arc<Notify>,
) {
    use backon::Retryable;
    let platform_ready = || async {
        match wallets::ensure_platform(&store, &sc, platform_user.as_deref()).await {
            Ok(w) if w.status == wallets::WalletStatus::Active => Ok(()),
            Ok(w) => {
                tracing::warn!(reason = ?w.failure_reason, "platform wallet not active yet");
                Err(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "platform wallet setup failed; retrying");
                Err(())
            }
        }
    };
    // Unlimited: it ends only once the platform wallet is active.
    let _ = platform_ready.retry(PLATFORM_WALLET_RETRY).await;
    loop {
        if let Err(e) = wallets::backfill(&store, &sc, 100).await {
            tracing::warn!(error = %e, "wallet backfill failed");
        }
        if let Err(e) = wallets::activate_pending(&store, &sc, 50).await {
            tracing::warn!(error = %e, "wallet activation pass failed");
        }
        if let Err(e) = offerhub::services::withdrawals::resume_pending(&store, &sc).await {
            tracing::warn!(error = %e, "withdrawal resume pass failed");
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), wake.notified()).await;
    }
}

/// Advisory lock key of the deposit monitor's leadership.
const MONITOR_LOCK: i64 = 7301001;

/// How often the leader proves it still holds its lock.
const LEADERSHIP_CHECK: Duration = Duration::from_secs(2);

/// The deposit monitor: one leader among the daemons sharing a PostgreSQL database
/// (session advisory lock on a dedicated connection); streams every payment from the
/// saved cursor (the tip on first start) and credits managed wallets exactly once;
/// reconnects with backoff when the stream drops. The leader re-checks its lock every
/// [`LEADERSHIP_CHECK`] on that connection (fencing): when the session is gone (its
/// connection terminated or broken) it stops monitoring at once and competes for the
/// lock again, so two daemons never both believe they lead for longer than that.
pub async fn deposit_monitor(store: Store, sc: Arc<StellarContext>) {
    if store.backend() != offerhub::store::Backend::Postgres {
        monitor_payments(&store, &sc).await;
        return;
    }
    loop {
        let mut conn = loop {
            match store.reader().acquire().await {
                Ok(mut conn) => {
                    let got: std::result::Result<bool, _> =
                        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                            .bind(MONITOR_LOCK)
                            .fetch_one(&mut *conn)
                            .await;
                    if matches!(got, Ok(true)) {
                        tracing::info!("this daemon runs the deposit monitor");
                        break conn;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "deposit monitor: no database connection"),
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        };
        let fence = async {
            loop {
                tokio::time::sleep(LEADERSHIP_CHECK).await;
                let held: std::result::Result<bool, _> = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                     AND objid = $1 AND pid = pg_backend_pid() AND granted)",
                )
                .bind(MONITOR_LOCK)
                .fetch_one(&mut *conn)
                .await;
                if !matches!(held, Ok(true)) {
                    return;
                }
            }
        };
        tokio::select! {
            () = fence => {
                tracing::warn!("deposit monitor: leadership lost (database session gone); monitoring stopped");
            }
            () = monitor_payments(&store, &sc) => {}
        }
        // The connection may be broken: never hand it back to the pool.
        drop(conn.detach());
    }
}

/// Streams payments from the saved cursor and credits deposits, until the future is
/// dropped (it never ends by itself). A new stream resumes from the saved cursor: the
/// paging token (Horizon's SSE `id:`) of the last record processed, which the
/// stream's own last event id may be past when a record could not be processed.
async fn monitor_payments(store: &Store, sc: &StellarContext) {
    use futures_util::StreamExt;
    use offerhub::services::deposits::{self, ManagedWallets};
    let mut managed = ManagedWallets::default();
    let mut backoff = STREAM_RECONNECT.build();
    // The last pause: a cursor that cannot be read is read again after it.
    let mut pause = STREAM_RECONNECT_MIN;
    loop {
        let cursor = match deposits::cursor(store).await {
            Ok(c) => c.unwrap_or_else(|| "now".to_string()),
            Err(e) => {
                tracing::warn!(error = %e, "deposit monitor: cannot read the cursor");
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        match sc.horizon.stream_payments(&cursor).await {
            Ok(mut stream) => {
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(record) => {
                            match deposits::process_record(store, sc, &mut managed, &record).await {
                                Ok(credited) => record_lag(&record, credited),
                                Err(e) => {
                                    tracing::warn!(error = %e, "deposit monitor: record not processed; reconnecting");
                                    break;
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "deposit monitor: stream error");
                            break;
                        }
                    }
                }
                // The stream opened: the schedule starts over, from the reconnection
                // time the server asked for (`retry:`; at least the default pause, so
                // a `retry: 0` cannot spin).
                let first = stream
                    .retry()
                    .map_or(STREAM_RECONNECT_MIN, |r| r.max(STREAM_RECONNECT_MIN));
                backoff = STREAM_RECONNECT.with_min_delay(first).build();
            }
            Err(e) => tracing::warn!(error = %e, "deposit monitor: cannot open the stream"),
        }
        offerhub::metrics::deposit_stream_reconnect();
        // Unlimited schedule: `None` never comes; the cap stands in for it.
        pause = backoff.next().unwrap_or(Duration::from_secs(30));
        tokio::time::sleep(pause).await;
    }
}

/// Deposit-monitor lag: the record's ledger close (`created_at`) → now, in seconds.
fn record_lag(record: &serde_json::Value, credited: usize) {
    if let Some(closed) = record["created_at"]
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    {
        let lag = chrono::Utc::now().signed_duration_since(closed);
        offerhub::metrics::deposit_record(lag.num_milliseconds() as f64 / 1000.0, credited);
    }
}

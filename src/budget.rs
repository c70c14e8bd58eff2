//! Request budgets shared by every daemon on one database: the per-API-key request
//! limit and the Trustless Work pacing (TW allows 50 requests a minute per API key, not
//! per process).
//!
//! The budget is a GCRA bucket (generic cell rate algorithm: one row per key holding the
//! theoretical arrival time `tat`, in microseconds since the Unix epoch) of `per_minute`
//! tokens a minute with a burst of `burst`. A daemon does not touch the row on every
//! request: it takes a **lease** of up to `chunk` tokens at once (one row update, under
//! the row's lock) and spends it locally; a lease it cannot spend within a minute
//! expires. Nothing is ever spent that was not taken from the shared row, so the
//! combined rate never exceeds the limit; tokens leased and not spent are lost, at most
//! `chunk` per daemon, so with the default chunk (1/20 of the limit) two daemons get at
//! least 90 % of it.
//!
//! On SQLite (one daemon per file) the same bucket is kept in memory with `governor`:
//! exact, no database round trip.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use sqlx::Row;
use tokio::sync::Mutex;

use crate::error::Result;
use crate::store::{Backend, Store};

/// How long a leased token may wait to be spent.
const LEASE_TTL: Duration = Duration::from_secs(60);

/// How long a lease renewal may take before the caller is told the budget is
/// unavailable (the API limiter then lets the request through).
const TAKE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct Lease {
    remaining: u32,
    expires: Instant,
}

/// A request budget per key (see the module documentation). Cheap to clone.
#[derive(Clone)]
pub struct SharedBudget {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` on SQLite: the in-memory limiter decides.
    store: Option<Store>,
    /// Prefix of the database key (`api:` / `tw:`), so budgets never share a row.
    namespace: &'static str,
    per_minute: u32,
    burst: u32,
    chunk: u32,
    /// One lease per key, each behind its own lock (held across the database call that
    /// renews it, so one key's renewal never holds up another key).
    leases: std::sync::Mutex<HashMap<String, Arc<Mutex<Lease>>>>,
    local: governor::DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl std::fmt::Debug for SharedBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBudget")
            .field("namespace", &self.inner.namespace)
            .field("per_minute", &self.inner.per_minute)
            .field("burst", &self.inner.burst)
            .field("chunk", &self.inner.chunk)
            .finish()
    }
}

impl SharedBudget {
    /// `per_minute` tokens a minute, bursts of `burst`, leased `chunk` at a time (all at
    /// least 1; `chunk` at most `burst`). Shared through `store` on PostgreSQL.
    pub fn new(
        store: &Store,
        namespace: &'static str,
        per_minute: u32,
        burst: u32,
        chunk: u32,
    ) -> SharedBudget {
        let per_minute = per_minute.max(1);
        let burst = burst.max(1);
        let chunk = chunk.clamp(1, burst);
        let quota =
            governor::Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        SharedBudget {
            inner: Arc::new(Inner {
                store: (store.backend() == Backend::Postgres).then(|| store.clone()),
                namespace,
                per_minute,
                burst,
                chunk,
                leases: std::sync::Mutex::new(HashMap::new()),
                local: governor::RateLimiter::keyed(quota),
                clock: DefaultClock::default(),
            }),
        }
    }

    /// The limit per minute.
    pub fn per_minute(&self) -> u32 {
        self.inner.per_minute
    }

    /// Spends one token of `key`: `Ok(Ok(()))`, or `Ok(Err(wait))` — how long until one
    /// is available. `Err` only for a database error (PostgreSQL).
    pub async fn try_acquire(&self, key: &str) -> Result<std::result::Result<(), Duration>> {
        let i = &self.inner;
        let Some(store) = &i.store else {
            return Ok(match i.local.check_key(&key.to_string()) {
                Ok(()) => Ok(()),
                Err(not_until) => Err(not_until.wait_time_from(i.clock.now())),
            });
        };
        let lease = {
            let mut map = i.leases.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.to_string())
                .or_insert_with(|| {
                    Arc::new(Mutex::new(Lease {
                        remaining: 0,
                        expires: Instant::now(),
                    }))
                })
                .clone()
        };
        let mut lease = lease.lock().await;
        let now = Instant::now();
        if lease.remaining > 0 && lease.expires > now {
            lease.remaining -= 1;
            return Ok(Ok(()));
        }
        let taken = tokio::time::timeout(TAKE_TIMEOUT, take(store, i, key))
            .await
            .map_err(|_| {
                crate::error::Error::unavailable("the shared request budget did not answer in time")
            })??;
        match taken {
            Ok(got) => {
                *lease = Lease {
                    remaining: got - 1,
                    expires: now + LEASE_TTL,
                };
                Ok(Ok(()))
            }
            Err(wait) => {
                lease.remaining = 0;
                Ok(Err(wait))
            }
        }
    }

    /// Waits until a token of `key` is spent (Trustless Work pacing). On a database
    /// error, tries again a second later ([`crate::retry::AFTER_ERROR`]).
    pub async fn until_ready(&self, key: &str) {
        use backon::Retryable;
        loop {
            let taken = (|| self.try_acquire(key))
                .retry(crate::retry::AFTER_ERROR)
                .notify(|e, _| {
                    tracing::warn!(error = %e, "shared request budget unavailable; retrying");
                })
                .await;
            match taken {
                Ok(Ok(())) => return,
                Ok(Err(wait)) => tokio::time::sleep(wait.max(Duration::from_millis(5))).await,
                // AFTER_ERROR has no limit: only reached if it ever gets one.
                Err(_) => {}
            }
        }
    }
}

/// Takes up to `chunk` tokens of `key` from the shared row: `Ok(n)` (n ≥ 1) or
/// `Err(wait)` until one is available.
async fn take(store: &Store, i: &Inner, key: &str) -> Result<std::result::Result<u32, Duration>> {
    let id = format!("{}{key}", i.namespace);
    // Emission interval (at least 1 µs) and the bucket's depth, in microseconds.
    let interval = (60_000_000_i64 / i64::from(i.per_minute)).max(1);
    let depth = interval * i64::from(i.burst);
    let mut tx = store.begin().await?;
    sqlx::query("INSERT INTO rate_budgets (id, tat) VALUES ($1, 0) ON CONFLICT (id) DO NOTHING")
        .bind(&id)
        .execute(tx.conn())
        .await?;
    // The database's clock, so daemons whose clocks differ share one timeline.
    let row = sqlx::query(
        "SELECT tat, CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT) AS now \
         FROM rate_budgets WHERE id = $1 FOR UPDATE",
    )
    .bind(&id)
    .fetch_one(tx.conn())
    .await?;
    let tat: i64 = row.try_get("tat")?;
    let now: i64 = row.try_get("now")?;
    let start = tat.max(now);
    // Tokens that fit before the bucket is full: start + n·interval − now ≤ depth.
    let available = (depth - (start - now)) / interval;
    if available < 1 {
        let wait = start + interval - now - depth;
        return Ok(Err(Duration::from_micros(wait.max(1) as u64)));
    }
    let n = available.min(i64::from(i.chunk));
    sqlx::query("UPDATE rate_budgets SET tat = $1 WHERE id = $2")
        .bind(start + n * interval)
        .bind(&id)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(Ok(n as u32))
}

//! Backoff policies of the in-process retry loops ([`backon`]), exponential or constant,
//! with jitter: each pause is drawn between its nominal value and twice that, so clients
//! that failed together do not retry together. The nominal pauses and the limits are the
//! ones these loops always had. Retries scheduled in the database (sagas' `next_run_at`,
//! webhook deliveries) are not here.

use std::time::Duration;

use backon::{ConstantBuilder, ExponentialBuilder};

/// Idempotent provider reads (Horizon and Airtm `GET`s): up to 3 retries of a transient
/// failure (4 attempts), after 200 ms, 400 ms and 800 ms.
pub const PROVIDER_READ: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(200))
    .with_factor(2.0)
    .with_max_times(3)
    .with_jitter();

/// Settling a submitted transaction whose outcome is unknown: the next look from 200 ms,
/// doubling up to 5 s, with no limit of its own (the envelope's `max_time` ends it).
pub const SETTLE: ExponentialBuilder = ExponentialBuilder::new()
    .with_min_delay(Duration::from_millis(200))
    .with_factor(2.0)
    .with_max_delay(Duration::from_secs(5))
    .without_max_times()
    .with_jitter();

/// Trying again after an error with nothing to back off from (a lost `LISTEN`
/// connection, an unreachable shared budget): every second, with jitter, with no limit.
pub const AFTER_ERROR: ConstantBuilder = ConstantBuilder::new()
    .with_delay(Duration::from_secs(1))
    .without_max_times()
    .with_jitter();

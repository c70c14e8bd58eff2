//! Prometheus metrics: the name of every series OfferHub exports and the helpers that
//! record them through the [`metrics`] facade.
//!
//! The core records; it never exports. Without an installed recorder (operator
//! commands, unit tests) every call is a no-op; the daemon installs the Prometheus
//! recorder (`offerhub_daemon::metrics`) and serves the text format at `/metrics`.
//!
//! Labels are bounded by construction: route templates, operation names chosen in the
//! code, outcomes and statuses of small fixed sets — never user ids, raw URLs or
//! amounts. [`CATALOG`] lists every series with its kind, unit and help text; the
//! daemon describes them to the exporter from it and a test checks that the Grafana
//! dashboard and the Prometheus alert rules under `deploy/` name only these.

use std::time::Duration;

/// What a series is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported series family.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// The name as Prometheus shows it (counters end in `_total`).
    pub name: &'static str,
    pub kind: Kind,
    /// Help text, stating the unit.
    pub help: &'static str,
    /// The label names (bounded sets, see the module documentation).
    pub labels: &'static [&'static str],
}

/// `offerhub_http_requests_total{method, route, status}`: requests answered; `route`
/// is the axum route template (`/api/v1/users/{id}`) or `(unmatched)`.
pub const HTTP_REQUESTS: &str = "offerhub_http_requests_total";
/// `offerhub_http_request_duration_seconds{method, route}`: latency, seconds.
pub const HTTP_DURATION: &str = "offerhub_http_request_duration_seconds";
/// `offerhub_ledger_transactions_total{kind}`: journal transactions written.
pub const LEDGER_TRANSACTIONS: &str = "offerhub_ledger_transactions_total";
/// `offerhub_sagas_total{operation, status}`: sagas started (`RUNNING`) and ended
/// (`COMPLETED`, `COMPENSATED`, `NEEDS_ATTENTION`).
pub const SAGAS: &str = "offerhub_sagas_total";
/// `offerhub_saga_step_duration_seconds{operation, outcome}`: one saga step, seconds.
pub const SAGA_STEP_DURATION: &str = "offerhub_saga_step_duration_seconds";
/// `offerhub_sagas_needs_attention`: sagas parked for an operator (database count).
pub const SAGAS_NEEDS_ATTENTION: &str = "offerhub_sagas_needs_attention";
/// `offerhub_sagas_running`: sagas in progress (database count).
pub const SAGAS_RUNNING: &str = "offerhub_sagas_running";
/// `offerhub_event_sequencer_lag_seconds`: commit → sequence number of an event,
/// seconds (recorded by the event sequencer).
pub const EVENT_SEQUENCER_LAG: &str = "offerhub_event_sequencer_lag_seconds";
/// `offerhub_events_unsequenced`: committed events still waiting for a sequence
/// number (set by the event sequencer).
pub const EVENTS_UNSEQUENCED: &str = "offerhub_events_unsequenced";
/// `offerhub_sqlite_wal_frames`: pages of the SQLite write-ahead log not yet copied
/// into the database file, after the last background checkpoint.
pub const SQLITE_WAL_FRAMES: &str = "offerhub_sqlite_wal_frames";
/// `offerhub_webhook_deliveries_total{outcome}`: delivery attempts; `outcome` is
/// `succeeded`, `retrying` or `failed` (retries exhausted).
pub const WEBHOOK_DELIVERIES: &str = "offerhub_webhook_deliveries_total";
/// `offerhub_webhook_delivery_duration_seconds`: one delivery attempt, seconds.
pub const WEBHOOK_DELIVERY_DURATION: &str = "offerhub_webhook_delivery_duration_seconds";
/// `offerhub_webhook_endpoints_disabled_total`: endpoints disabled after failing
/// continuously.
pub const WEBHOOK_ENDPOINTS_DISABLED: &str = "offerhub_webhook_endpoints_disabled_total";
/// `offerhub_webhook_endpoints{state}`: endpoints by `active` / `disabled` (database
/// count).
pub const WEBHOOK_ENDPOINTS: &str = "offerhub_webhook_endpoints";
/// `offerhub_webhook_deliveries_pending`: deliveries queued or waiting for a retry
/// (database count).
pub const WEBHOOK_PENDING: &str = "offerhub_webhook_deliveries_pending";
/// `offerhub_deposit_credit_lag_seconds`: ledger close of a deposit → its credit,
/// seconds.
pub const DEPOSIT_CREDIT_LAG: &str = "offerhub_deposit_credit_lag_seconds";
/// `offerhub_deposit_monitor_lag_seconds`: age of the last payment record the monitor
/// processed (its ledger close time → now), seconds.
pub const DEPOSIT_MONITOR_LAG: &str = "offerhub_deposit_monitor_lag_seconds";
/// `offerhub_deposits_credited_total`: deposits credited.
pub const DEPOSITS_CREDITED: &str = "offerhub_deposits_credited_total";
/// `offerhub_deposit_stream_reconnects_total`: Horizon payment stream reconnections.
pub const DEPOSIT_STREAM_RECONNECTS: &str = "offerhub_deposit_stream_reconnects_total";
/// `offerhub_provider_requests_total{provider, operation, outcome}`: calls to Horizon
/// (`horizon`), Trustless Work (`trustless_work`) and Airtm (`airtm`); `outcome` is
/// `ok`, `client_error`, `rate_limited`, `server_error`, `timeout` or `unreachable`.
pub const PROVIDER_REQUESTS: &str = "offerhub_provider_requests_total";
/// `offerhub_provider_request_duration_seconds{provider, operation}`: seconds.
pub const PROVIDER_DURATION: &str = "offerhub_provider_request_duration_seconds";
/// `offerhub_provider_pacing_wait_seconds{provider}`: time a call waited for its
/// client's rate budget, seconds.
pub const PROVIDER_PACING_WAIT: &str = "offerhub_provider_pacing_wait_seconds";
/// `offerhub_trustless_budget_per_minute`: the configured Trustless Work pacing
/// (requests per minute, of the 50 TW allows).
pub const TRUSTLESS_BUDGET: &str = "offerhub_trustless_budget_per_minute";
/// `offerhub_trustless_waiting`: calls currently queued for a Trustless Work token.
pub const TRUSTLESS_WAITING: &str = "offerhub_trustless_waiting";
/// `offerhub_idempotency_requests_total{outcome}`: `replayed`, `conflict` or
/// `in_progress`.
pub const IDEMPOTENCY: &str = "offerhub_idempotency_requests_total";
/// `offerhub_rate_limited_total`: requests refused by the per-key rate limit.
pub const RATE_LIMITED: &str = "offerhub_rate_limited_total";
/// `offerhub_reconcile_discrepancies{check}`: mismatches found by the last
/// reconciliation of `wallets`, `escrows` or `platform`.
pub const RECONCILE_DISCREPANCIES: &str = "offerhub_reconcile_discrepancies";
/// `offerhub_reconcile_runs_total{check}`: reconciliations run.
pub const RECONCILE_RUNS: &str = "offerhub_reconcile_runs_total";
/// `offerhub_reconcile_last_run_timestamp_seconds{check}`: Unix time of the last run.
pub const RECONCILE_LAST_RUN: &str = "offerhub_reconcile_last_run_timestamp_seconds";
/// `offerhub_build_info{version}`: always 1.
pub const BUILD_INFO: &str = "offerhub_build_info";

const fn m(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    labels: &'static [&'static str],
) -> Metric {
    Metric {
        name,
        kind,
        help,
        labels,
    }
}

/// Every series family OfferHub exports.
pub const CATALOG: &[Metric] = &[
    m(
        HTTP_REQUESTS,
        Kind::Counter,
        "HTTP requests answered, by route template, method and status",
        &["method", "route", "status"],
    ),
    m(
        HTTP_DURATION,
        Kind::Histogram,
        "HTTP request latency in seconds, by route template and method",
        &["method", "route"],
    ),
    m(
        LEDGER_TRANSACTIONS,
        Kind::Counter,
        "Ledger journal transactions written, by kind",
        &["kind"],
    ),
    m(
        SAGAS,
        Kind::Counter,
        "Sagas started (RUNNING) and ended (COMPLETED, COMPENSATED, NEEDS_ATTENTION), by operation",
        &["operation", "status"],
    ),
    m(
        SAGA_STEP_DURATION,
        Kind::Histogram,
        "Duration of one saga step in seconds, by operation and outcome (ok, transient, definitive)",
        &["operation", "outcome"],
    ),
    m(
        SAGAS_NEEDS_ATTENTION,
        Kind::Gauge,
        "Sagas parked as NEEDS_ATTENTION, waiting for an operator (count)",
        &[],
    ),
    m(SAGAS_RUNNING, Kind::Gauge, "Sagas RUNNING (count)", &[]),
    m(
        EVENT_SEQUENCER_LAG,
        Kind::Histogram,
        "Event commit to sequence number assignment, seconds",
        &[],
    ),
    m(
        EVENTS_UNSEQUENCED,
        Kind::Gauge,
        "Committed events not yet sequenced (count)",
        &[],
    ),
    m(
        SQLITE_WAL_FRAMES,
        Kind::Gauge,
        "SQLite write-ahead log pages not yet checkpointed into the database file (count)",
        &[],
    ),
    m(
        WEBHOOK_DELIVERIES,
        Kind::Counter,
        "Outbound webhook delivery attempts by outcome (succeeded, retrying, failed)",
        &["outcome"],
    ),
    m(
        WEBHOOK_DELIVERY_DURATION,
        Kind::Histogram,
        "Outbound webhook delivery attempt duration, seconds",
        &[],
    ),
    m(
        WEBHOOK_ENDPOINTS_DISABLED,
        Kind::Counter,
        "Webhook endpoints disabled after failing continuously",
        &[],
    ),
    m(
        WEBHOOK_ENDPOINTS,
        Kind::Gauge,
        "Webhook endpoints by state (active, disabled), count",
        &["state"],
    ),
    m(
        WEBHOOK_PENDING,
        Kind::Gauge,
        "Webhook deliveries pending (queued or waiting for a retry), count",
        &[],
    ),
    m(
        DEPOSIT_CREDIT_LAG,
        Kind::Histogram,
        "Ledger close of a USDC deposit to its credit in the ledger, seconds",
        &[],
    ),
    m(
        DEPOSIT_MONITOR_LAG,
        Kind::Gauge,
        "Age of the last payment record processed by the deposit monitor, seconds",
        &[],
    ),
    m(
        DEPOSITS_CREDITED,
        Kind::Counter,
        "USDC deposits credited",
        &[],
    ),
    m(
        DEPOSIT_STREAM_RECONNECTS,
        Kind::Counter,
        "Reconnections of the deposit monitor's Horizon payment stream",
        &[],
    ),
    m(
        PROVIDER_REQUESTS,
        Kind::Counter,
        "Provider calls by provider, operation and outcome",
        &["provider", "operation", "outcome"],
    ),
    m(
        PROVIDER_DURATION,
        Kind::Histogram,
        "Provider call latency in seconds, by provider and operation",
        &["provider", "operation"],
    ),
    m(
        PROVIDER_PACING_WAIT,
        Kind::Histogram,
        "Time a provider call waited for its client's rate budget, seconds",
        &["provider"],
    ),
    m(
        TRUSTLESS_BUDGET,
        Kind::Gauge,
        "Configured Trustless Work pacing, requests per minute",
        &[],
    ),
    m(
        TRUSTLESS_WAITING,
        Kind::Gauge,
        "Trustless Work calls queued for a pacing token (count)",
        &[],
    ),
    m(
        IDEMPOTENCY,
        Kind::Counter,
        "Idempotency-Key outcomes other than a first execution (replayed, conflict, in_progress)",
        &["outcome"],
    ),
    m(
        RATE_LIMITED,
        Kind::Counter,
        "Requests refused by the per-API-key rate limit",
        &[],
    ),
    m(
        RECONCILE_DISCREPANCIES,
        Kind::Gauge,
        "Mismatches found by the last reconciliation, by check (wallets, escrows, platform)",
        &["check"],
    ),
    m(
        RECONCILE_RUNS,
        Kind::Counter,
        "Reconciliations run, by check",
        &["check"],
    ),
    m(
        RECONCILE_LAST_RUN,
        Kind::Gauge,
        "Unix time of the last reconciliation, by check, seconds",
        &["check"],
    ),
    m(
        BUILD_INFO,
        Kind::Gauge,
        "Always 1; the label carries the OfferHub version",
        &["version"],
    ),
];

/// A journal transaction of `kind` was written.
pub fn ledger_transaction(kind: &str) {
    ::metrics::counter!(LEDGER_TRANSACTIONS, "kind" => kind.to_string()).increment(1);
}

/// A saga of `operation` (its kind, e.g. `ESCROW_FUND`) entered `status`.
pub fn saga(operation: &str, status: &str) {
    ::metrics::counter!(SAGAS, "operation" => operation.to_string(), "status" => status.to_string())
        .increment(1);
}

/// One saga step of `operation` took `elapsed`; `outcome`: `ok`, `transient`,
/// `definitive`.
pub fn saga_step(operation: &str, outcome: &'static str, elapsed: Duration) {
    ::metrics::histogram!(SAGA_STEP_DURATION, "operation" => operation.to_string(), "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

/// One webhook delivery attempt: `outcome` `succeeded`, `retrying` or `failed`.
pub fn webhook_delivery(outcome: &'static str, elapsed: Duration) {
    ::metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
    ::metrics::histogram!(WEBHOOK_DELIVERY_DURATION).record(elapsed.as_secs_f64());
}

/// A webhook endpoint was disabled.
pub fn webhook_endpoint_disabled() {
    ::metrics::counter!(WEBHOOK_ENDPOINTS_DISABLED).increment(1);
}

/// The deposit monitor processed a payment record that closed `lag_secs` ago, and
/// credited `credited` deposits from it.
pub fn deposit_record(lag_secs: f64, credited: usize) {
    let lag = lag_secs.max(0.0);
    ::metrics::gauge!(DEPOSIT_MONITOR_LAG).set(lag);
    if credited > 0 {
        ::metrics::counter!(DEPOSITS_CREDITED).increment(credited as u64);
        for _ in 0..credited {
            ::metrics::histogram!(DEPOSIT_CREDIT_LAG).record(lag);
        }
    }
}

/// The deposit monitor's payment stream ended and is being reopened.
pub fn deposit_stream_reconnect() {
    ::metrics::counter!(DEPOSIT_STREAM_RECONNECTS).increment(1);
}

/// A provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Horizon,
    TrustlessWork,
    Airtm,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Horizon => "horizon",
            Provider::TrustlessWork => "trustless_work",
            Provider::Airtm => "airtm",
        }
    }
}

/// The `outcome` label of a provider answer with HTTP `status`.
pub fn outcome_of_status(status: u16) -> &'static str {
    match status {
        200..=399 => "ok",
        429 => "rate_limited",
        400..=499 => "client_error",
        _ => "server_error",
    }
}

/// The `outcome` label of a transport failure.
pub fn outcome_of_transport(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else {
        "unreachable"
    }
}

/// One provider call: `operation` is a bounded template such as `GET /accounts/{id}`
/// (see [`operation`]); `elapsed` its latency.
pub fn provider_call(
    provider: Provider,
    operation: &str,
    outcome: &'static str,
    elapsed: Duration,
) {
    ::metrics::counter!(
        PROVIDER_REQUESTS,
        "provider" => provider.as_str(),
        "operation" => operation.to_string(),
        "outcome" => outcome
    )
    .increment(1);
    ::metrics::histogram!(
        PROVIDER_DURATION,
        "provider" => provider.as_str(),
        "operation" => operation.to_string()
    )
    .record(elapsed.as_secs_f64());
}

/// A call of `provider` waited `elapsed` for its rate budget.
pub fn provider_pacing(provider: Provider, elapsed: Duration) {
    ::metrics::histogram!(PROVIDER_PACING_WAIT, "provider" => provider.as_str())
        .record(elapsed.as_secs_f64());
}

/// The configured Trustless Work budget, requests per minute.
pub fn trustless_budget(per_minute: u32) {
    ::metrics::gauge!(TRUSTLESS_BUDGET).set(f64::from(per_minute));
}

/// A Trustless Work call started (`+1.0`) or stopped (`-1.0`) waiting for a token.
pub fn trustless_waiting(delta: f64) {
    ::metrics::gauge!(TRUSTLESS_WAITING).increment(delta);
}

/// A bounded operation label: `method` and `path` without its query string, every
/// segment that is an identifier (a Stellar key or hash, a UUID, an email, digits)
/// replaced by `{id}`.
pub fn operation(method: &str, path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path
        .split('/')
        .map(|s| {
            let idish = s.len() >= 20
                || s.contains('@')
                || s.contains('%')
                || (!s.is_empty() && s.chars().any(|c| c.is_ascii_digit()));
            if idish { "{id}" } else { s }
        })
        .collect();
    format!("{method} {}", segments.join("/"))
}

/// Idempotency: `outcome` `replayed`, `conflict` or `in_progress`.
pub fn idempotency(outcome: &'static str) {
    ::metrics::counter!(IDEMPOTENCY, "outcome" => outcome).increment(1);
}

/// A request was refused by the rate limit.
pub fn rate_limited() {
    ::metrics::counter!(RATE_LIMITED).increment(1);
}

/// A reconciliation `check` (`wallets`, `escrows`, `platform`) found `discrepancies`.
pub fn reconciled(check: &'static str, discrepancies: usize) {
    ::metrics::gauge!(RECONCILE_DISCREPANCIES, "check" => check).set(discrepancies as f64);
    ::metrics::counter!(RECONCILE_RUNS, "check" => check).increment(1);
    ::metrics::gauge!(RECONCILE_LAST_RUN, "check" => check)
        .set(chrono::Utc::now().timestamp() as f64);
}

/// The sequencer numbered an event `seconds` after its `occurredAt` (written just
/// before its transaction committed).
pub fn event_sequencer_lag(seconds: f64) {
    ::metrics::histogram!(EVENT_SEQUENCER_LAG).record(seconds);
}

/// Committed events still waiting for a sequence number, after a sequencer pass.
pub fn events_unsequenced(n: i64) {
    ::metrics::gauge!(EVENTS_UNSEQUENCED).set(n as f64);
}

/// SQLite write-ahead log pages left after a background checkpoint.
pub fn sqlite_wal_frames(n: i64) {
    ::metrics::gauge!(SQLITE_WAL_FRAMES).set(n as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_templates() {
        assert_eq!(
            operation(
                "GET",
                "/accounts/GBZXN7PIRZGNMHGA7MUUUF4GWPY5AYPV6LY4UV2GL6VJGIQRXFDNMADI?x=1"
            ),
            "GET /accounts/{id}"
        );
        assert_eq!(
            operation("GET", "/transactions/ab12"),
            "GET /transactions/{id}"
        );
        assert_eq!(
            operation("POST", "/escrow/single-release/fund-escrow"),
            "POST /escrow/single-release/fund-escrow"
        );
        assert_eq!(operation("GET", "/"), "GET /");
    }

    #[test]
    fn catalog_names_are_unique_and_prefixed() {
        let mut names: Vec<&str> = CATALOG.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOG.len());
        for m in CATALOG {
            assert!(m.name.starts_with("offerhub_"), "{}", m.name);
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}",
                m.name
            );
        }
    }
}

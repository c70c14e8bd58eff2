//! Horizon client (docs/PROVIDERS.md, Stellar and Horizon): accounts, form-encoded
//! submission, transactions by hash, payment pages.
//!
//! Submission outcomes are three-valued: applied, failed (with Horizon's result codes),
//! or **unknown** (504 `timeout`, another 5xx, a transport error). An unknown outcome is
//! settled by [`Horizon::submit_settled`]: poll `GET /transactions/{hash}` and resubmit
//! only the identical envelope until it lands or its `max_time` has passed — never a new
//! transaction, so nothing is paid twice. Submissions from one account are serialised by
//! [`Horizon::account_lock`] (sequence numbers).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use url::Url;

use crate::domain::transaction::TxResultCode;
use crate::error::{Error, ErrorCode, Result};
use crate::money::Amount;
use crate::stellar::tx::SignedEnvelope;

/// A balance line of an account (amounts in base units).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceLine {
    /// `native`, `credit_alphanum4`, `credit_alphanum12`.
    pub asset_type: String,
    pub asset_code: Option<String>,
    pub asset_issuer: Option<String>,
    pub balance: Amount,
    pub limit: Option<Amount>,
}

/// `GET /accounts/{id}`.
#[derive(Clone, Debug)]
pub struct AccountInfo {
    pub id: String,
    pub sequence: i64,
    pub balances: Vec<BalanceLine>,
    pub num_sponsored: i64,
}

impl AccountInfo {
    /// The balance of a credit asset; `None` without a trustline.
    pub fn credit(&self, code: &str, issuer: &str) -> Option<Amount> {
        self.balances
            .iter()
            .find(|b| {
                b.asset_code.as_deref() == Some(code) && b.asset_issuer.as_deref() == Some(issuer)
            })
            .map(|b| b.balance)
    }

    pub fn native(&self) -> Amount {
        self.balances
            .iter()
            .find(|b| b.asset_type == "native")
            .map(|b| b.balance)
            .unwrap_or(Amount::ZERO)
    }
}

/// What happened to a submitted transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// In a ledger and successful.
    Applied { hash: String, ledger: i64 },
    /// Rejected or failed, with Horizon's `result_codes`.
    Failed {
        hash: String,
        tx_code: TxResultCode,
        op_codes: Vec<String>,
    },
    /// Not known (504, 5xx, transport): must be settled by the hash.
    Unknown { hash: String, reason: String },
}

/// A Horizon payment stream (Server-Sent Events, parsed by `eventsource-stream`: lines
/// and multi-byte characters split across network chunks are reassembled). Yields each
/// payment record as JSON; keeps the `id:` of the last event (Horizon's paging token)
/// and the reconnection time the server asked for with `retry:`.
pub struct PaymentStream {
    events: futures_util::stream::BoxStream<
        'static,
        std::result::Result<
            eventsource_stream::Event,
            eventsource_stream::EventStreamError<reqwest::Error>,
        >,
    >,
    last_event_id: String,
    retry: Option<Duration>,
    closed: bool,
}

impl PaymentStream {
    /// Where a new stream resumes (`Last-Event-ID`, `cursor`): the `id:` of the last
    /// event received (Horizon's paging token of that record), or the cursor this stream
    /// was opened with before any.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// The reconnection time the server asked for with `retry:` (Horizon sends 1 s with
    /// its `open` event); `None` while it has sent none.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }
}

impl futures_util::Stream for PaymentStream {
    type Item = Result<Value>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Value>>> {
        use std::task::Poll;
        loop {
            if self.closed {
                return Poll::Ready(None);
            }
            let event = match self.events.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Some(Err(provider(format!("Horizon stream: {e}")))));
                }
                Poll::Ready(Some(Ok(event))) => event,
            };
            if let Some(retry) = event.retry {
                self.retry = Some(retry);
            }
            // The event's id is the stream's last event id (it carries over events
            // without an `id:` line); empty until the server sent one.
            if !event.id.is_empty() {
                self.last_event_id.clone_from(&event.id);
            }
            match event.event.as_str() {
                "close" => {
                    self.closed = true;
                    return Poll::Ready(None);
                }
                "message" => {}
                _ => continue,
            }
            let Ok(mut record) = serde_json::from_str::<Value>(&event.data) else {
                continue;
            };
            let Some(fields) = record.as_object_mut() else {
                continue;
            };
            // Horizon's event id is the record's paging token.
            if !fields.contains_key("paging_token") && !event.id.is_empty() {
                fields.insert("paging_token".into(), Value::String(event.id));
            }
            return Poll::Ready(Some(Ok(record)));
        }
    }
}

/// A Horizon server.
#[derive(Clone)]
pub struct Horizon {
    base: Url,
    http: reqwest::Client,
    /// For SSE: a connect timeout but no total timeout.
    stream_http: reqwest::Client,
    /// Request pacing (public Horizon: 3,600 requests/hour per IP); `None` = unpaced.
    pacer: Option<Arc<governor::DefaultDirectRateLimiter>>,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// `v` percent-encoded for a query string value, so that it cannot add parameters.
fn query_value(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// Whether `c` has the shape of a Horizon paging token (`now`, or a decimal operation
/// or ledger id that fits a signed 64-bit integer, as Horizon's are). API cursors that reach
/// Horizon are checked with this first, so a malformed one is the caller's 400 rather
/// than Horizon's error.
pub fn is_paging_token(c: &str) -> bool {
    c == "now"
        || (!c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) && c.parse::<i64>().is_ok())
}

fn provider(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::ProviderError, message)
}

/// A Horizon amount string (any the network allows, [`Amount::parse_network`]).
fn amount(v: &Value) -> Option<Amount> {
    v.as_str().and_then(|s| Amount::parse_network(s).ok())
}

impl Horizon {
    /// A client for the Horizon at `base` (10 s per request).
    pub fn new(base: Url) -> Result<Horizon> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::internal(format!("http client: {e}")))?;
        let stream_http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::internal(format!("http client: {e}")))?;
        Ok(Horizon {
            base,
            http,
            stream_http,
            pacer: None,
            locks: Arc::default(),
        })
    }

    /// Paces requests to at most `per_hour`, with bursts of up to a minute's worth
    /// (public Horizon allows 3,600/hour per IP: docs/PROVIDERS.md, Stellar and Horizon:
    /// rate limits).
    pub fn paced(mut self, per_hour: u32) -> Horizon {
        if let Some(n) = std::num::NonZeroU32::new(per_hour) {
            let burst = std::num::NonZeroU32::new((per_hour / 60).max(1))
                .unwrap_or(std::num::NonZeroU32::MIN);
            self.pacer = Some(Arc::new(governor::RateLimiter::direct(
                governor::Quota::per_hour(n).allow_burst(burst),
            )));
        }
        self
    }

    async fn pace(&self) {
        if let Some(p) = &self.pacer {
            let waited = std::time::Instant::now();
            p.until_ready().await;
            crate::metrics::provider_pacing(crate::metrics::Provider::Horizon, waited.elapsed());
        }
    }

    /// Runs one request in a `provider.call` span and records its outcome and latency
    /// (until the answer's headers) under `operation`.
    async fn observed(
        &self,
        operation: &str,
        request: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
    ) -> reqwest::Result<reqwest::Response> {
        use crate::metrics::{self as m, Provider};
        use tracing::Instrument;
        let span = tracing::info_span!(
            "provider.call",
            provider = "horizon",
            operation = %operation,
            status = tracing::field::Empty
        );
        let started = std::time::Instant::now();
        let r = request.instrument(span.clone()).await;
        let outcome = match &r {
            Ok(resp) => {
                span.record("status", resp.status().as_u16());
                m::outcome_of_status(resp.status().as_u16())
            }
            Err(e) => m::outcome_of_transport(e),
        };
        m::provider_call(Provider::Horizon, operation, outcome, started.elapsed());
        r
    }

    /// `base` + `path`. Every value interpolated into `path` must already be encoded
    /// ([`query_value`]) or validated (account ids, hashes).
    fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path)
            .map_err(|e| Error::internal(format!("horizon url: {e}")))
    }

    /// A lock held while building, signing and submitting a transaction of `account`,
    /// so its sequence numbers are used one at a time.
    pub fn account_lock(&self, account: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(account.to_string()).or_default().clone()
    }

    /// GET with bounded retries of transient answers (429, 5xx, transport errors):
    /// reads are idempotent, so up to 4 attempts ([`crate::retry::PROVIDER_READ`]: 200 ms,
    /// 400 ms, 800 ms pauses, with jitter); the last answer is returned as it is. Each
    /// attempt is a `provider.call` span and one
    /// `offerhub_provider_requests_total{provider="horizon"}`.
    async fn get(&self, path: &str) -> Result<reqwest::Response> {
        use crate::retry::PROVIDER_READ;
        use backon::Retryable;
        let url = self.url(path)?;
        let operation = crate::metrics::operation("GET", path);
        let attempt = || async {
            self.pace().await;
            let r = self
                .observed(&operation, self.http.get(url.clone()).send())
                .await;
            let transient = match &r {
                Ok(resp) => resp.status().as_u16() == 429 || resp.status().is_server_error(),
                Err(_) => true,
            };
            // A transient answer is the "error" that is retried; after the last attempt
            // it is the answer.
            if transient { Err(r) } else { Ok(r) }
        };
        let r = attempt
            .retry(PROVIDER_READ)
            .await
            .unwrap_or_else(|last| last);
        r.map_err(|e| provider(format!("Horizon unreachable: {e}")))
    }

    /// `GET /`: the network passphrase this Horizon serves.
    pub async fn network_passphrase(&self) -> Result<String> {
        let v: Value = self
            .get("/")
            .await?
            .json()
            .await
            .map_err(|e| provider(format!("Horizon root: {e}")))?;
        v["network_passphrase"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| provider("Horizon root has no network_passphrase"))
    }

    /// `GET /accounts/{id}`; `None` when the account does not exist (404).
    pub async fn account(&self, id: &str) -> Result<Option<AccountInfo>> {
        let resp = self.get(&format!("/accounts/{id}")).await?;
        if resp.status().as_u16() == 404 {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(provider(format!(
                "Horizon GET /accounts answered {}",
                resp.status()
            )));
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|e| provider(format!("account JSON: {e}")))?;
        let sequence = v["sequence"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| provider("account without sequence"))?;
        // A balance line that cannot be read is an error: dropping it would read as
        // "no trustline" (or zero) where the account holds money.
        let balances = v["balances"]
            .as_array()
            .ok_or_else(|| provider("account without balances"))?
            .iter()
            .map(|b| {
                Ok(BalanceLine {
                    asset_type: b["asset_type"]
                        .as_str()
                        .ok_or_else(|| provider("balance line without asset_type"))?
                        .to_string(),
                    asset_code: b["asset_code"].as_str().map(str::to_string),
                    asset_issuer: b["asset_issuer"].as_str().map(str::to_string),
                    balance: amount(&b["balance"])
                        .ok_or_else(|| provider("balance line without a readable balance"))?,
                    limit: amount(&b["limit"]),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(AccountInfo {
            id: id.to_string(),
            sequence,
            balances,
            num_sponsored: v["num_sponsored"].as_i64().unwrap_or(0),
        }))
    }

    /// `GET /payments?cursor=&limit=&order=asc`: the records after `cursor` (from the
    /// beginning of history when empty), oldest first.
    pub async fn payments_page(&self, cursor: &str, limit: u32) -> Result<Vec<Value>> {
        let mut path = format!("/payments?order=asc&limit={}", limit.clamp(1, 200));
        if !cursor.is_empty() {
            path.push_str(&format!("&cursor={}", query_value(cursor)));
        }
        let resp = self.get(&path).await?;
        if !resp.status().is_success() {
            return Err(provider(format!(
                "Horizon GET /payments answered {}",
                resp.status()
            )));
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|e| provider(format!("payments JSON: {e}")))?;
        Ok(v["_embedded"]["records"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// `GET /payments?order=desc&limit=1`: the paging token of the newest payment on
    /// the network (`None` when there is none): where "activity since now" starts.
    pub async fn latest_payment_token(&self) -> Result<Option<String>> {
        let resp = self.get("/payments?order=desc&limit=1").await?;
        if !resp.status().is_success() {
            return Err(provider(format!(
                "Horizon GET /payments answered {}",
                resp.status()
            )));
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|e| provider(format!("payments JSON: {e}")))?;
        Ok(v["_embedded"]["records"]
            .get(0)
            .and_then(|r| r["paging_token"].as_str())
            .map(str::to_string))
    }

    /// `GET /transactions/{hash}/payments`: the payment records of one transaction
    /// (contract transfers appear as `invoke_host_function` with `asset_balance_changes`,
    /// docs/PROVIDERS.md, Stellar and Horizon: payments and streams). Empty when Horizon
    /// does not know the transaction yet.
    pub async fn transaction_payments(&self, hash: &str) -> Result<Vec<Value>> {
        self.records(
            &format!("/transactions/{hash}/payments?limit=200"),
            "/transactions/…/payments",
        )
        .await
    }

    /// The `_embedded.records` of a page; empty on 404.
    async fn records(&self, path: &str, what: &str) -> Result<Vec<Value>> {
        let resp = self.get(path).await?;
        if resp.status().as_u16() == 404 {
            return Ok(Vec::new());
        }
        if !resp.status().is_success() {
            return Err(provider(format!(
                "Horizon GET {what} answered {}",
                resp.status()
            )));
        }
        let v: Value = resp
            .json()
            .await
            .map_err(|e| provider(format!("payments JSON: {e}")))?;
        Ok(v["_embedded"]["records"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// `GET /accounts/{id}/payments?order=desc&limit=&cursor=`: an account's payment
    /// records, newest first.
    pub async fn account_payments(
        &self,
        account: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Value>> {
        let mut path = format!(
            "/accounts/{account}/payments?order=desc&limit={}",
            limit.clamp(1, 200)
        );
        if let Some(c) = cursor.filter(|c| !c.is_empty()) {
            path.push_str(&format!("&cursor={}", query_value(c)));
        }
        self.records(&path, "/accounts/…/payments").await
    }

    /// Streams `GET /payments` as Server-Sent Events from `cursor` (`now` for the tip),
    /// sent both as `?cursor=` and as `Last-Event-ID`, as Horizon resumes a stream: the
    /// returned [`PaymentStream`] yields each record (skipping `open` and other named
    /// events) until the server closes the stream (`event: close` or end of body) or an
    /// error occurs. Resume by calling again with [`PaymentStream::last_event_id`] (or the
    /// paging token of the last record processed), after [`PaymentStream::retry`].
    pub async fn stream_payments(&self, cursor: &str) -> Result<PaymentStream> {
        use eventsource_stream::Eventsource;
        use futures_util::StreamExt;
        let url = self.url(&format!("/payments?cursor={}", query_value(cursor)))?;
        let resp = self
            .observed(
                "STREAM /payments",
                self.stream_http
                    .get(url)
                    .header("accept", "text/event-stream")
                    .header("last-event-id", cursor)
                    .send(),
            )
            .await
            .map_err(|e| provider(format!("Horizon stream: {e}")))?;
        if !resp.status().is_success() {
            return Err(provider(format!(
                "Horizon stream answered {}",
                resp.status()
            )));
        }
        Ok(PaymentStream {
            events: resp.bytes_stream().eventsource().boxed(),
            last_event_id: cursor.to_string(),
            retry: None,
            closed: false,
        })
    }

    /// `POST /transactions` (form-encoded `tx`), once.
    pub async fn submit(&self, env: &SignedEnvelope) -> Result<SubmitOutcome> {
        self.pace().await;
        let sent = self
            .observed(
                "POST /transactions",
                self.http
                    .post(self.url("/transactions")?)
                    .form(&[("tx", env.xdr.as_str())])
                    .send(),
            )
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                return Ok(SubmitOutcome::Unknown {
                    hash: env.hash.clone(),
                    reason: format!("transport: {e}"),
                });
            }
        };
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Ok(match status {
            200 => SubmitOutcome::Applied {
                hash: body["hash"].as_str().unwrap_or(&env.hash).to_string(),
                ledger: body["ledger"].as_i64().unwrap_or(0),
            },
            400 if body["extras"]["result_codes"].is_object() => SubmitOutcome::Failed {
                hash: env.hash.clone(),
                tx_code: TxResultCode::parse(
                    body["extras"]["result_codes"]["transaction"]
                        .as_str()
                        .unwrap_or(TxResultCode::Failed.as_str()),
                ),
                op_codes: body["extras"]["result_codes"]["operations"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            400..=499 if status != 429 => {
                return Err(provider(format!(
                    "Horizon refused the transaction ({status}): {}",
                    body["title"].as_str().unwrap_or("bad request")
                )));
            }
            _ => SubmitOutcome::Unknown {
                hash: env.hash.clone(),
                reason: format!("HTTP {status}"),
            },
        })
    }

    /// `GET /transactions/{hash}`: `Some(successful, ledger)` once ingested.
    pub async fn transaction(&self, hash: &str) -> Result<Option<(bool, i64)>> {
        let resp = self.get(&format!("/transactions/{hash}")).await?;
        match resp.status().as_u16() {
            404 => Ok(None),
            200 => {
                let v: Value = resp
                    .json()
                    .await
                    .map_err(|e| provider(format!("transaction JSON: {e}")))?;
                Ok(Some((
                    v["successful"].as_bool().unwrap_or(false),
                    v["ledger"].as_i64().unwrap_or(0),
                )))
            }
            s => Err(provider(format!("Horizon GET /transactions answered {s}"))),
        }
    }

    /// Submits and settles: on an unknown outcome, polls the hash and resubmits the
    /// identical envelope ([`crate::retry::SETTLE`]: from 200 ms, doubling up to 5 s) until
    /// it is known or `max_time` has passed (then it can never land: `Failed` with
    /// `tx_too_late`). Never builds a new transaction.
    pub async fn submit_settled(&self, env: &SignedEnvelope) -> Result<SubmitOutcome> {
        use crate::retry::SETTLE;
        use backon::Retryable;
        /// Why an attempt did not settle: still unknown (retried), or an error.
        enum Unsettled {
            Unknown(SubmitOutcome),
            Failed(Error),
        }
        let attempt = || async {
            let outcome = self.submit(env).await.map_err(Unsettled::Failed)?;
            let SubmitOutcome::Unknown { reason, .. } = &outcome else {
                return Ok(outcome);
            };
            tracing::warn!(hash = %env.hash, %reason, "transaction outcome unknown; settling by hash");
            match self.transaction(&env.hash).await {
                Ok(Some((true, ledger))) => {
                    return Ok(SubmitOutcome::Applied {
                        hash: env.hash.clone(),
                        ledger,
                    });
                }
                Ok(Some((false, _))) => {
                    return Ok(SubmitOutcome::Failed {
                        hash: env.hash.clone(),
                        tx_code: TxResultCode::Failed,
                        op_codes: Vec::new(),
                    });
                }
                _ => {}
            }
            let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
            if env.max_time != 0 && now > env.max_time + 5 {
                return Ok(SubmitOutcome::Failed {
                    hash: env.hash.clone(),
                    tx_code: TxResultCode::TooLate,
                    op_codes: Vec::new(),
                });
            }
            Err(Unsettled::Unknown(outcome))
        };
        match attempt
            .retry(SETTLE)
            .when(|e| matches!(e, Unsettled::Unknown(_)))
            .await
        {
            Ok(known) => Ok(known),
            // SETTLE has no limit of its own: only reached if it ever gets one.
            Err(Unsettled::Unknown(outcome)) => Ok(outcome),
            Err(Unsettled::Failed(e)) => Err(e),
        }
    }
}

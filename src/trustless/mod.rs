//! Trustless Work V1 REST client (docs/PROVIDERS.md, Trustless Work).
//!
//! - Base URL per network (`https://api.trustlesswork.com`, testnet
//!   `https://dev.api.trustlesswork.com`, the embedded sandbox otherwise), `x-api-key` on
//!   every request (docs/PROVIDERS.md, Trustless Work: base URLs and auth). The key never
//!   appears in logs or errors.
//! - **Pacing**: TW allows 50 requests per 60 s per client (docs/PROVIDERS.md, Trustless
//!   Work: rate limit). Every request waits for a token of a bucket (default 45/min, burst
//!   5), so callers queue instead of provoking 429s. The daemon shares that bucket with
//!   every daemon on its database ([`TrustlessWork::share_budget`], [`crate::budget`]).
//! - **Builders** (`POST /deployer/{single,multi}-release`, `POST /escrow/{type}/…`)
//!   answer `201 {status: "SUCCESS", unsignedTransaction}` (docs/PROVIDERS.md,
//!   Trustless Work: build, sign, send); [`TrustlessWork::build`] returns that base64
//!   envelope — unverified: callers must pass it through [`verify`] before any key
//!   signs it.
//! - **Submission**: `POST /helper/send-transaction {signedXdr}` → [`SendOutcome`]:
//!   `SUCCESS` → submitted (deploys add `contractId`); `FAILED` with a 4xx → refused or
//!   failed on chain (message kept); a 5xx, a timeout or a transport error → **unknown**:
//!   the caller settles it by the transaction hash on Horizon (docs/PROVIDERS.md,
//!   Trustless Work: pitfalls).
//! - **Errors**: any non-2xx is a failure; the contract's error texts (docs/PROVIDERS.md,
//!   Trustless Work: errors), and the `Error(Contract, #n)` form, become
//!   `ESCROW_CONTRACT_ERROR` (422) with `details.contractError` naming the variant; 401/403
//!   → `PROVIDER_ERROR`; 429 → `PROVIDER_UNAVAILABLE`; 5xx → `PROVIDER_ERROR`; timeouts →
//!   `PROVIDER_TIMEOUT`.
//!
//! JSON amounts are **human units** (numbers, `5000` = 5,000 USDC); OfferHub keeps base
//! units (10^7 per USDC) and converts only here ([`human`]).

pub mod calls;
pub mod escrows;
pub mod verify;
pub mod wire;

pub use escrows::TrustlessWorkEscrows;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use url::Url;

use crate::error::{Error, ErrorCode, Result};
use crate::money::Amount;

/// The contract's errors (docs/PROVIDERS.md, Trustless Work: errors): code, variant, and
/// the text the API echoes (the texts of codes 1 and 5 are verbatim from the contract; the
/// others follow the variant names).
pub const CONTRACT_ERRORS: &[(u32, &str, &str)] = &[
    (
        1,
        "AmountCannotBeZero",
        "Amount cannot be equal to or less than zero",
    ),
    (2, "EscrowAlreadyInitialized", "Escrow already initialized"),
    (3, "EscrowNotFound", "Escrow not found"),
    (
        4,
        "OnlyReleaseSignerCanReleaseEarnings",
        "Only the release signer can release the escrow earnings",
    ),
    (
        5,
        "EscrowNotCompleted",
        "The escrow must be completed to release earnings",
    ),
    (
        6,
        "EscrowBalanceNotEnoughToSendEarnings",
        "The escrow balance must be equal to the amount of earnings defined for the escrow",
    ),
    (
        8,
        "OnlyServiceProviderChangeMilstoneStatus",
        "Only the service provider can change milestone status",
    ),
    (
        9,
        "NoMilestoneDefined",
        "Escrow initialized without milestone",
    ),
    (10, "InvalidMileStoneIndex", "Invalid milestone index"),
    (
        11,
        "OnlyApproverChangeMilstoneFlag",
        "Only the approver can change milestone flag",
    ),
    (
        12,
        "OnlyDisputeResolverCanExecuteThisFunction",
        "Only the dispute resolver can execute this function",
    ),
    (13, "EscrowAlreadyInDispute", "Escrow already in dispute"),
    (14, "EscrowNotInDispute", "Escrow not in dispute"),
    (
        16,
        "EscrowOpenedForDisputeResolution",
        "Escrow is opened for dispute resolution",
    ),
    (
        24,
        "EscrowAlreadyResolved",
        "The escrow is already resolved",
    ),
    (
        26,
        "UnauthorizedToChangeDisputeFlag",
        "You are not authorized to change the dispute flag",
    ),
    (27, "TooManyMilestones", "Too many milestones"),
    (
        29,
        "MilestoneHasAlreadyBeenApproved",
        "The milestone has already been approved",
    ),
    (
        30,
        "EmptyMilestoneStatus",
        "The milestone status cannot be empty",
    ),
    (
        31,
        "PlatformFeeTooHigh",
        "The platform fee cannot exceed 99%",
    ),
    (32, "FlagsMustBeFalse", "All flags must be false"),
    (
        33,
        "EscrowPropertiesMismatch",
        "The escrow properties do not match",
    ),
    (
        35,
        "EscrowAlreadyReleased",
        "The escrow funds have been released",
    ),
    (
        38,
        "AmountsToBeTransferredShouldBePositive",
        "The amounts to be transferred should be positive",
    ),
    (
        39,
        "DistributionsMustEqualEscrowBalance",
        "The total amount to be distributed must be equal to the escrow balance",
    ),
    (
        40,
        "DisputeResolverCannotDisputeTheEscrow",
        "The dispute resolver cannot dispute the escrow",
    ),
    (41, "TotalAmountCannotBeZero", "Total amount cannot be zero"),
];

/// The contract error variant a TW message carries, if any: its text (docs/PROVIDERS.md,
/// Trustless Work: errors), its variant name, or `Error(Contract, #n)`.
pub fn contract_error(message: &str) -> Option<&'static str> {
    let lower = message.to_ascii_lowercase();
    for (code, variant, text) in CONTRACT_ERRORS {
        if lower.contains(&text.to_ascii_lowercase())
            || message.contains(variant)
            || message.contains(&format!("Error(Contract, #{code})"))
        {
            return Some(variant);
        }
    }
    None
}

/// Base units → the human-unit JSON number TW expects (`1000000000` → `100`).
///
/// TW's API is JavaScript: a JSON number is a double on its side. The number is built
/// from the exact decimal text and checked to read back as the same amount; an amount a
/// double cannot carry exactly is refused (422 `AMOUNT_OUT_OF_RANGE`) instead of being
/// sent rounded.
pub fn human(amount: Amount) -> Result<Value> {
    let units = amount.base_units();
    let whole = units / 10_000_000;
    let frac = (units % 10_000_000).abs();
    let sign = if units < 0 && whole == 0 { "-" } else { "" };
    let text = if frac == 0 {
        whole.to_string()
    } else {
        let f = format!("{frac:07}");
        format!("{sign}{whole}.{}", f.trim_end_matches('0'))
    };
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Error::internal(format!("amount {text} as JSON: {e}")))?;
    if self::units(&value) != Some(amount) {
        return Err(Error::out_of_range(
            "amount",
            format!(
                "{amount} cannot be sent to Trustless Work exactly (its amounts are JavaScript numbers)"
            ),
        ));
    }
    Ok(value)
}

/// A human-unit JSON number (or numeric string) from TW → base units, from its exact
/// text (decimal and exponent forms alike), rounded half away from zero to 7 decimals:
/// TW is JavaScript, so a balance may come back as `0.30000000000000004`
/// ([`Amount::from_json_number_rounded`]). `None` when it is not a number.
pub fn units(v: &Value) -> Option<Amount> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    let (amount, exact) = Amount::from_json_number_rounded(&text, 7).ok()?;
    if !exact {
        tracing::debug!(%text, %amount, "Trustless Work amount rounded to 7 decimals");
    }
    Some(amount)
}

/// What `POST /helper/send-transaction` said.
#[derive(Clone, Debug, PartialEq)]
pub enum SendOutcome {
    /// `status: "SUCCESS"`; deploys carry the new `contractId`.
    Submitted { contract_id: Option<String> },
    /// A 4xx or `status: "FAILED"`: refused, or failed on chain (`message` from TW).
    Failed { message: String },
    /// 5xx, timeout, transport error: settle by the hash.
    Unknown { reason: String },
}

/// A Trustless Work V1 API.
#[derive(Clone)]
pub struct TrustlessWork {
    base: Url,
    api_key: Arc<String>,
    http: reqwest::Client,
    pacer: Arc<governor::DefaultDirectRateLimiter>,
    per_minute: u32,
    /// The budget shared with every daemon on the database, keyed by a digest of the
    /// API key ([`TrustlessWork::share_budget`]); `None`: `pacer` alone.
    shared: Option<(crate::budget::SharedBudget, String)>,
}

impl std::fmt::Debug for TrustlessWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustlessWork")
            .field("base", &self.base.as_str())
            .field("api_key", &"[redacted]")
            .finish()
    }
}

fn provider(message: impl Into<String>) -> Error {
    Error::new(ErrorCode::ProviderError, message)
}

fn message_of(body: &Value) -> String {
    match &body["message"] {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; "),
        Value::Null => body.to_string(),
        other => other.to_string(),
    }
}

/// The error for a non-2xx answer of TW.
fn answer_error(status: u16, body: &Value, path: &str) -> Error {
    let message = message_of(body);
    if let Some(variant) = contract_error(&message) {
        return Error::new(
            ErrorCode::EscrowContractError,
            format!("The escrow contract refused: {message}"),
        )
        .with_details(json!({ "contractError": variant, "providerMessage": message }));
    }
    match status {
        401 | 403 => provider(format!(
            "Trustless Work rejected the API key ({status}) on {path}"
        )),
        429 => Error::new(
            ErrorCode::ProviderUnavailable,
            "Trustless Work rate limit reached; retrying later",
        ),
        400..=499 => Error::new(
            ErrorCode::ProviderError,
            format!("Trustless Work refused {path} ({status}): {message}"),
        )
        .with_details(json!({ "providerStatus": status, "providerMessage": message })),
        _ => provider(format!(
            "Trustless Work answered {status} on {path}: {message}"
        )),
    }
}

/// Whether a failure may succeed when simply tried again later (rate limit, provider
/// down, timeouts) — as opposed to a refusal that needs a change.
pub fn is_transient(e: &Error) -> bool {
    match e.code {
        ErrorCode::ProviderUnavailable | ErrorCode::ProviderTimeout => true,
        ErrorCode::ProviderError => e
            .details
            .as_ref()
            .and_then(|d| d.get("providerStatus"))
            .is_none(),
        _ => false,
    }
}

impl TrustlessWork {
    /// A client for `base` with `api_key`, at most `per_minute` requests a minute
    /// (bursts of 5), 30 s per request.
    pub fn new(base: Url, api_key: String, per_minute: u32) -> Result<TrustlessWork> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::internal(format!("http client: {e}")))?;
        let per = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(per_minute.clamp(1, 5)).unwrap_or(NonZeroU32::MIN);
        let quota = governor::Quota::per_minute(per).allow_burst(burst);
        crate::metrics::trustless_budget(per.get());
        Ok(TrustlessWork {
            base,
            api_key: Arc::new(api_key),
            http,
            pacer: Arc::new(governor::RateLimiter::direct(quota)),
            per_minute,
            shared: None,
        })
    }

    /// Paces through a budget shared by every daemon on `store`'s database
    /// ([`crate::budget`]), since Trustless Work limits requests per API key, not per
    /// process: `per_minute` (the same setting) in total, bursts of up to 5. On SQLite
    /// this is the in-process pacing again.
    pub fn share_budget(mut self, store: &crate::store::Store) -> TrustlessWork {
        use sha2::{Digest, Sha256};
        let digest = hex::encode(&Sha256::digest(self.api_key.as_bytes())[..8]);
        let burst = self.per_minute.clamp(1, 5);
        let budget = crate::budget::SharedBudget::new(store, "tw:", self.per_minute, burst, 1);
        self.shared = Some((budget, digest));
        self
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| Error::internal(format!("TW url: {e}")))
    }

    /// One request, paced, timed and traced (span `provider.call`, metric
    /// `offerhub_provider_requests_total{provider="trustless_work"}`).
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        path: &str,
    ) -> std::result::Result<(u16, Value), Error> {
        use crate::metrics::{self as m, Provider};
        use tracing::Instrument;
        let method = req
            .try_clone()
            .and_then(|r| r.build().ok())
            .map(|r| r.method().to_string())
            .unwrap_or_else(|| "POST".to_string());
        let operation = m::operation(&method, path);
        let span = tracing::info_span!(
            "provider.call",
            provider = "trustless_work",
            operation = %operation,
            status = tracing::field::Empty
        );
        async move {
            /// Counts a caller queued for a token, until dropped (also when the
            /// caller gives up waiting).
            struct Queued;
            impl Drop for Queued {
                fn drop(&mut self) {
                    crate::metrics::trustless_waiting(-1.0);
                }
            }
            let waited = std::time::Instant::now();
            m::trustless_waiting(1.0);
            let queued = Queued;
            match &self.shared {
                Some((budget, key)) => budget.until_ready(key).await,
                None => self.pacer.until_ready().await,
            }
            drop(queued);
            m::provider_pacing(Provider::TrustlessWork, waited.elapsed());
            let started = std::time::Instant::now();
            let sent = req.header("x-api-key", self.api_key.as_str()).send().await;
            let outcome = match &sent {
                Ok(r) => m::outcome_of_status(r.status().as_u16()),
                Err(e) => m::outcome_of_transport(e),
            };
            if let Ok(r) = &sent {
                tracing::Span::current().record("status", r.status().as_u16());
            }
            let answer = self.answer(sent, path).await;
            m::provider_call(
                Provider::TrustlessWork,
                &operation,
                outcome,
                started.elapsed(),
            );
            answer
        }
        .instrument(span)
        .await
    }

    async fn answer(
        &self,
        sent: std::result::Result<reqwest::Response, reqwest::Error>,
        path: &str,
    ) -> std::result::Result<(u16, Value), Error> {
        let resp = sent.map_err(|e| {
            if e.is_timeout() {
                Error::new(
                    ErrorCode::ProviderTimeout,
                    format!("Trustless Work timed out on {path}"),
                )
            } else {
                Error::new(
                    ErrorCode::ProviderUnavailable,
                    format!("Trustless Work unreachable on {path}: {}", e.without_url()),
                )
            }
        })?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// Calls a builder (`POST` [`wire::EscrowRequest::path`] with the request as its body) and
    /// returns the unsigned envelope (base64 XDR). Errors: see the module documentation.
    pub async fn build(&self, request: &wire::EscrowRequest) -> Result<String> {
        let path = request.path();
        let (status, answer) = self
            .send(self.http.post(self.url(&path)?).json(request), &path)
            .await?;
        if !(200..300).contains(&status) {
            return Err(answer_error(status, &answer, &path));
        }
        let message = message_of(&answer);
        let built: wire::BuildAnswer = wire::read(answer, &path)?;
        if !wire::succeeded(built.status.as_deref()) {
            return Err(provider(format!(
                "Trustless Work answered {path} without SUCCESS: {message}"
            )));
        }
        built
            .unsigned_transaction
            .filter(|s| !s.is_empty())
            .ok_or_else(|| provider(format!("Trustless Work returned no transaction for {path}")))
    }

    /// `PUT /escrow/{single-release|multi-release}/update-escrow {contractId, signer,
    /// escrow}` (docs/PROVIDERS.md, Trustless Work: endpoints): the unsigned envelope that
    /// replaces an escrow's properties. Only the platform address may sign it, and the
    /// contract accepts it only before funding, with no dispute and no approved
    /// milestone, and the same platform address. `kind` is `single-release` or
    /// `multi-release`; `escrow` is the whole new property set in Trustless Work's
    /// camelCase shape. As for every builder, verify the envelope before signing.
    /// OfferHub's API does not expose it (an order's terms are fixed once it is created:
    /// to change them, cancel and create a new order); operators and integrations can use
    /// it through this client.
    pub async fn build_update(
        &self,
        kind: crate::domain::escrow::EscrowKind,
        contract_id: &str,
        signer: &str,
        escrow: &Value,
    ) -> Result<String> {
        let path = format!("/escrow/{kind}/update-escrow");
        let body = wire::UpdateEscrow {
            contract_id,
            signer,
            escrow,
        };
        let (status, answer) = self
            .send(self.http.put(self.url(&path)?).json(&body), &path)
            .await?;
        if !(200..300).contains(&status) {
            return Err(answer_error(status, &answer, &path));
        }
        let built: wire::BuildAnswer = wire::read(answer, &path)?;
        built
            .unsigned_transaction
            .filter(|s| !s.is_empty())
            .ok_or_else(|| provider(format!("Trustless Work returned no transaction for {path}")))
    }

    /// `POST /helper/send-transaction {signedXdr}`.
    pub async fn send_transaction(&self, signed_xdr: &str) -> Result<SendOutcome> {
        let path = "/helper/send-transaction";
        let posted = self
            .send(
                self.http
                    .post(self.url(path)?)
                    .json(&wire::SendTransaction { signed_xdr }),
                path,
            )
            .await;
        let (status, answer) = match posted {
            Ok(x) => x,
            Err(e) => return Ok(SendOutcome::Unknown { reason: e.message }),
        };
        // A success answer of another shape says nothing certain: settle by the hash.
        let read = serde_json::from_value::<wire::SendAnswer>(answer.clone());
        Ok(match (status, read) {
            (200..=299, Ok(a)) if wire::succeeded(a.status.as_deref()) => SendOutcome::Submitted {
                contract_id: a.contract_id,
            },
            (200..=299, Err(e)) => SendOutcome::Unknown {
                reason: format!("HTTP {status} with an unexpected answer: {e}"),
            },
            (200..=299 | 400..=499, _) if status != 429 => SendOutcome::Failed {
                message: message_of(&answer),
            },
            _ => SendOutcome::Unknown {
                reason: format!("HTTP {status}: {}", message_of(&answer)),
            },
        })
    }

    /// `POST /indexer/update-from-txHash {txHash}` (docs/PROVIDERS.md, Trustless Work:
    /// reads and the indexer): tells TW's indexer about a transaction submitted straight
    /// to Horizon. Best effort.
    pub async fn update_from_tx_hash(&self, hash: &str) -> Result<()> {
        let path = "/indexer/update-from-txHash";
        let (status, answer) = self
            .send(
                self.http
                    .post(self.url(path)?)
                    .json(&wire::UpdateFromTxHash { tx_hash: hash }),
                path,
            )
            .await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(answer_error(status, &answer, path))
        }
    }

    async fn get_json(&self, path: &str, query: &[(String, String)]) -> Result<Value> {
        let (status, answer) = self
            .send(self.http.get(self.url(path)?).query(query), path)
            .await?;
        if !(200..300).contains(&status) {
            return Err(answer_error(status, &answer, path));
        }
        Ok(answer)
    }

    /// `GET /helper/get-escrow-by-contract-ids?contractIds[]=…`: the escrows as TW's
    /// indexer knows them (docs/PROVIDERS.md, Trustless Work: reads and the indexer), each
    /// TW's whole escrow document, kept as JSON: OfferHub reads none of its fields and
    /// passes it back to [`TrustlessWork::build_update`]. An answer that is not a list is
    /// `PROVIDER_ERROR`.
    pub async fn escrows(&self, contract_ids: &[String]) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for chunk in contract_ids.chunks(20) {
            let q: Vec<(String, String)> = chunk
                .iter()
                .map(|id| ("contractIds[]".to_string(), id.clone()))
                .chain([("validateOnChain".to_string(), "true".to_string())])
                .collect();
            let path = "/helper/get-escrow-by-contract-ids";
            let escrows: Vec<Value> = wire::read(self.get_json(path, &q).await?, path)?;
            out.extend(escrows);
        }
        Ok(out)
    }

    /// `GET /helper/get-escrows-by-signer?signer=…&engagementId=…` (docs/PROVIDERS.md,
    /// Trustless Work: reads and the indexer): how a deploy whose answer was lost finds its
    /// contract id.
    pub async fn escrows_by_signer(
        &self,
        signer: &str,
        engagement_id: &str,
    ) -> Result<Vec<wire::IndexedEscrow>> {
        let path = "/helper/get-escrows-by-signer";
        let v = self
            .get_json(
                path,
                &[
                    ("signer".into(), signer.into()),
                    ("engagementId".into(), engagement_id.into()),
                    ("validateOnChain".into(), "true".into()),
                ],
            )
            .await?;
        wire::read(v, path)
    }

    /// `GET /helper/get-multiple-escrow-balance?addresses[]=…` (≤ 20 per request;
    /// docs/PROVIDERS.md, Trustless Work: reads and the indexer):
    /// `(contract id, balance in base units)`.
    pub async fn balances(&self, contract_ids: &[String]) -> Result<Vec<(String, Amount)>> {
        let mut out = Vec::new();
        for chunk in contract_ids.chunks(20) {
            let q: Vec<(String, String)> = chunk
                .iter()
                .map(|id| ("addresses[]".to_string(), id.clone()))
                .collect();
            let path = "/helper/get-multiple-escrow-balance";
            let items: Vec<wire::EscrowBalance> = wire::read(self.get_json(path, &q).await?, path)?;
            for item in items {
                let (Some(addr), Some(bal)) = (item.address, units(&item.balance)) else {
                    return Err(provider("Trustless Work balance without address or amount"));
                };
                out.push((addr, bal));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_amount_a_javascript_number_cannot_carry_is_refused() {
        // 18 significant digits: a double would round it.
        let e = human(Amount::from_base_units(123_456_789_012_345_678)).unwrap_err();
        assert_eq!(e.code, ErrorCode::AmountOutOfRange);
        assert!(human(Amount::from_base_units(1_000_000_000_000_000_000)).is_ok());
        assert_eq!(units(&json!(5e-7)), Some(Amount::from_base_units(5)));
        // JavaScript float artifacts round to the nearest base unit.
        assert_eq!(
            units(&json!(0.1 + 0.2)),
            Some(Amount::from_base_units(3_000_000))
        );
        assert_eq!(units(&json!("abc")), None);
    }

    #[test]
    fn human_units_round_trip() {
        for (units_, text) in [
            (1_000_000_000, "100"),
            (12_345_678, "1.2345678"),
            (800_000_000, "80"),
            (5, "5e-7"),
        ] {
            let v = human(Amount::from_base_units(units_)).unwrap();
            assert_eq!(v.to_string(), text);
            assert_eq!(units(&v), Some(Amount::from_base_units(units_)));
        }
    }

    #[test]
    fn contract_texts_and_codes_are_recognised() {
        assert_eq!(
            contract_error("Escrow already in dispute"),
            Some("EscrowAlreadyInDispute")
        );
        assert_eq!(
            contract_error("HostError: Error(Contract, #39)"),
            Some("DistributionsMustEqualEscrowBalance")
        );
        assert_eq!(contract_error("something else"), None);
        let e = answer_error(
            400,
            &json!({"message": "The escrow must be completed to release earnings", "statusCode": 400}),
            "/x",
        );
        assert_eq!(e.code, ErrorCode::EscrowContractError);
        assert_eq!(e.details.unwrap()["contractError"], "EscrowNotCompleted");
        assert!(is_transient(&answer_error(503, &Value::Null, "/x")));
        assert!(!is_transient(&answer_error(
            400,
            &json!({"message": ["x"]}),
            "/x"
        )));
    }
}

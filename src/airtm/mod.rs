//! Airtm Enterprise API v2 client (docs/PROVIDERS.md, Airtm; Airtm's OpenAPI document
//! "Airtm Enterprise API V2", `https://api.enterprise.airtm.com/openapi.json`).
//!
//! - **Base URL** by `AIRTM_ENV`: `https://api.stg.enterprise.airtm.com/v2` (sandbox) or
//!   `https://api.enterprise.airtm.com/v2` (production), `AIRTM_BASE_URL` overrides;
//!   the embedded OfferHub sandbox serves the same paths under `/airtm/v2`
//!   (docs/PROVIDERS.md, Airtm: base URLs).
//! - **Auth**: HTTP Basic `base64(api_key:secret_key)` on every request (docs/PROVIDERS.md,
//!   Airtm: auth); the header is built once and never logged (`Debug` redacts it).
//! - **Pacing**: Airtm allows 10 requests/s per key (docs/PROVIDERS.md, Airtm: rate
//!   limits): every request waits for a token of a governor bucket of 10/s with bursts of
//!   1, so no second window ever holds more than 10 requests.
//! - **Errors**: the `{code, message, data}` envelope (docs/PROVIDERS.md, Airtm: error
//!   codes). 401/403 and the auth reason codes → `PROVIDER_ERROR` naming the credentials;
//!   429 → `PROVIDER_UNAVAILABLE` (transient); 5xx, `415003`, `415998`, `415999`, timeouts,
//!   transport → transient; other 4xx → `PROVIDER_ERROR` with
//!   `details.providerCode`/`providerMessage`/`providerStatus` (recipient codes map to
//!   `AIRTM_USER_*`). GETs are retried up to 3 times on transient failures; creates are not
//!   — they carry our `code`, and callers look the resource up by code before trying again;
//!   commits are never retried blindly (docs/PROVIDERS.md, Airtm: idempotency).
//! - **Amounts**: USD as JSON numbers with at most 2 decimals (docs/PROVIDERS.md, Airtm:
//!   amounts). OfferHub keeps base units (10^-7) and converts only here ([`usd`],
//!   [`amount_of`]).
//! - **Statuses** are parsed case-insensitively and never fail deserialisation: values
//!   we do not know become `Other(..)` (docs/PROVIDERS.md, Airtm: payouts).
//! - **Documents**: request bodies and responses are the typed structs of [`wire`]; the
//!   client answers with [`Payin`], [`Payout`] and [`AirtmUser`].
//! - **Port**: [`Airtm`] implements [`FiatProvider`], the port through which the top-up
//!   and payout services reach the fiat provider (the impl is in `port`).
//!
//! [`FiatProvider`]: crate::services::fiat_provider::FiatProvider

mod port;
pub mod svix;
pub mod wire;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde::Serialize;
use serde_json::{Number, Value, json};
use url::Url;

use crate::error::{Error, ErrorCode, Result};
use crate::money::Amount;
use wire::{CreatePayinRequest, CreatePayoutRequest, ErrorEnvelope, UserResponse};

/// Status of a payin (`PayinStatus`, docs/PROVIDERS.md, Airtm: payins). `BRIDGE_FAILED`
/// reads as `Failed` and `BRIDGE_CANCELED` as `Canceled`; anything else unknown is kept as
/// `Other`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayinStatus {
    /// `CREATED`: waiting for the payer.
    Created,
    /// `PROCESSING`.
    Processing,
    /// `CONFIRMED`: paid; the only status that moves money.
    Confirmed,
    /// `CANCELED` (or `CANCELLED`, `BRIDGE_CANCELED`).
    Canceled,
    /// `FAILED` (or `BRIDGE_FAILED`).
    Failed,
    /// Any other value, uppercased.
    Other(String),
}

impl PayinStatus {
    /// Airtm's status text, in any case; never fails.
    pub fn parse(s: &str) -> PayinStatus {
        match s.to_ascii_uppercase().as_str() {
            "CREATED" => PayinStatus::Created,
            "PROCESSING" => PayinStatus::Processing,
            "CONFIRMED" => PayinStatus::Confirmed,
            "CANCELED" | "CANCELLED" | "BRIDGE_CANCELED" => PayinStatus::Canceled,
            "FAILED" | "BRIDGE_FAILED" => PayinStatus::Failed,
            other => PayinStatus::Other(other.to_string()),
        }
    }
}

/// Status of a payout (`PayoutStatus`, docs/PROVIDERS.md, Airtm: payouts), grouped by what
/// OfferHub does with it: `Processing` covers `COMMITTED`, `PROCESSING`, `SIGNED`,
/// `PENDING_SIGNATURE`, `CANCEL_REQUESTED` and every `BRIDGE_*`/`COSMOEM_*` value that is
/// not a wait on the recipient; `PendingUserAction` covers `PENDING`, `PENDING_USER_ACTION`
/// and `BRIDGE_USER_SIGNUP_PENDING`. Only `COMPLETED`, `CANCELED` and `FAILED` are final;
/// `ERROR` needs an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayoutStatus {
    /// `CREATED`: awaiting the commit.
    Created,
    /// Committed and on its way (the value, uppercased).
    Processing(String),
    /// Held for the recipient (a new account, KYC).
    PendingUserAction,
    /// `COMPLETED`: the recipient was paid.
    Completed,
    /// `CANCELED` (or `CANCELLED`): the funds went back to the enterprise.
    Canceled,
    /// `FAILED`: the funds went back to the enterprise.
    Failed,
    /// `ERROR`: Airtm needs to be contacted.
    Error,
}

impl PayoutStatus {
    /// Airtm's status text, in any case; never fails.
    pub fn parse(s: &str) -> PayoutStatus {
        match s.to_ascii_uppercase().as_str() {
            "CREATED" => PayoutStatus::Created,
            "PENDING" | "PENDING_USER_ACTION" | "BRIDGE_USER_SIGNUP_PENDING" => {
                PayoutStatus::PendingUserAction
            }
            "COMPLETED" => PayoutStatus::Completed,
            "CANCELED" | "CANCELLED" => PayoutStatus::Canceled,
            "FAILED" => PayoutStatus::Failed,
            "ERROR" => PayoutStatus::Error,
            other => PayoutStatus::Processing(other.to_string()),
        }
    }
}

/// A payin as Airtm reports it (a [`wire::PayinResponse`] with an id; docs/PROVIDERS.md,
/// Airtm: payins). Amounts are base units (10^-7 USD) holding whole cents.
#[derive(Clone, Debug)]
pub struct Payin {
    /// Airtm's payin id.
    pub id: String,
    /// Our code: the top-up id (empty when Airtm sent none).
    pub code: String,
    /// Airtm's status text, as sent (empty when absent).
    pub status_text: String,
    /// [`PayinStatus::parse`] of `status_text`.
    pub status: PayinStatus,
    /// What the user pays.
    pub amount: Option<Amount>,
    /// What the enterprise receives (`amount − airtmFee`).
    pub net_amount: Option<Amount>,
    /// Airtm's fee.
    pub airtm_fee: Option<Amount>,
    /// The payer's Airtm email, once known.
    pub airtm_user_email: Option<String>,
    /// Airtm's text for a failed payin.
    pub failure_reason: Option<String>,
}

/// A payout as Airtm reports it (a [`wire::PayoutResponse`] with an id;
/// docs/PROVIDERS.md, Airtm: payouts). Amounts are base units (10^-7 USD) holding whole
/// cents.
#[derive(Clone, Debug)]
pub struct Payout {
    /// Airtm's payout id.
    pub id: String,
    /// Our code: the withdrawal id (empty when Airtm sent none).
    pub code: String,
    /// Airtm's status text, as sent (empty when absent).
    pub status_text: String,
    /// [`PayoutStatus::parse`] of `status_text`.
    pub status: PayoutStatus,
    /// `grossAmount − enterpriseFee`: what the enterprise is charged.
    pub amount: Option<Amount>,
    /// What the recipient receives.
    pub net_amount: Option<Amount>,
    /// Airtm's fee.
    pub airtm_fee: Option<Amount>,
    /// Why it failed: a reason code (docs/PROVIDERS.md, Airtm: error codes).
    pub reason_code: Option<String>,
    /// Airtm's text for `reason_code`.
    pub reason_description: Option<String>,
}

/// An Airtm user (a [`wire::UserResponse`] with an id; `GET /users/{email}`,
/// docs/PROVIDERS.md, Airtm: user linking).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AirtmUser {
    /// Airtm's user id.
    pub id: String,
    /// `active`, `inactive` or another text, lowercased (empty when Airtm sent none).
    pub status: AirtmUserStatus,
    /// Whether Airtm verified the user's identity (`false` when not stated).
    pub is_verified: bool,
    /// The user's country, as Airtm sends it.
    pub country: Option<String>,
}

impl AirtmUser {
    /// Whether the account is `active`: only an active account may be linked
    /// (docs/PROVIDERS.md, Airtm: user linking).
    pub fn is_active(&self) -> bool {
        self.status == AirtmUserStatus::Active
    }
}

/// Status of an Airtm account (`GET /users/{email}`, docs/PROVIDERS.md, Airtm: user
/// linking), read in any case; serialised as the lowercase text. Built by
/// [`AirtmUserStatus::parse`] only: an `Other` holding a known text would not equal its
/// variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AirtmUserStatus {
    /// `active`: the only status that may be linked.
    Active,
    /// `inactive`.
    Inactive,
    /// Any other value, lowercased (empty when Airtm sent none).
    Other(String),
}

impl AirtmUserStatus {
    /// Airtm's status text, in any case; never fails.
    pub fn parse(s: &str) -> AirtmUserStatus {
        match s.to_ascii_lowercase().as_str() {
            "active" => AirtmUserStatus::Active,
            "inactive" => AirtmUserStatus::Inactive,
            other => AirtmUserStatus::Other(other.to_string()),
        }
    }

    /// The lowercase text.
    pub fn as_str(&self) -> &str {
        match self {
            AirtmUserStatus::Active => "active",
            AirtmUserStatus::Inactive => "inactive",
            AirtmUserStatus::Other(s) => s,
        }
    }
}

impl std::fmt::Display for AirtmUserStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AirtmUserStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What creating a payin takes (the port's `create_payin`); sent as the body of
/// `POST /payins` ([`wire::CreatePayinRequest`]; docs/PROVIDERS.md, Airtm: payins).
#[derive(Clone, Debug)]
pub struct NewPayin<'a> {
    /// Our idempotency key: the top-up id.
    pub code: &'a str,
    /// What the payer pays: base units holding whole cents ([`usd`] refuses others).
    pub amount: Amount,
    /// Shown to the payer; also the single item's description.
    pub description: &'a str,
    /// Where the browser returns after paying (absolute URL).
    pub confirmation_uri: &'a str,
    /// Where the browser returns after canceling (absolute URL).
    pub cancel_uri: &'a str,
}

/// What creating a payout takes (the port's `create_payout`); sent as the body of
/// `POST /payouts` ([`wire::CreatePayoutRequest`]; docs/PROVIDERS.md, Airtm: payouts).
#[derive(Clone, Debug)]
pub struct NewPayout<'a> {
    /// Our idempotency key: the withdrawal id.
    pub code: &'a str,
    /// The recipient's Airtm email (the user's linked one).
    pub email: &'a str,
    /// What the enterprise pays: base units holding whole cents ([`usd`] refuses others).
    pub amount: Amount,
    /// Free text shown with the payout.
    pub notes: &'a str,
    /// Commit at once (`true`) or wait for `POST /payouts/{id}/commit`.
    pub commit: bool,
}

/// `amount` (base units) as Airtm's USD JSON number, written from its cents (`50.25`,
/// `7.0`). `Err` (`INVALID_AMOUNT_FORMAT` naming `field`) when the amount has more than
/// 2 decimals, which Airtm refuses.
pub fn usd(amount: Amount, field: &str) -> Result<Number> {
    let units = amount.base_units();
    if units % 100_000 != 0 {
        return Err(Error::amount(
            field,
            "Airtm amounts have at most 2 decimals (USD cents)",
        ));
    }
    let cents = units / 100_000;
    let text = format!(
        "{}{}.{:02}",
        if cents < 0 { "-" } else { "" },
        cents.abs() / 100,
        cents.abs() % 100
    );
    serde_json::from_str(&text).map_err(|e| Error::internal(format!("amount JSON: {e}")))
}

/// An Airtm JSON amount (number, or numeric string) as base units, rounded half away
/// from zero to cents from its exact decimal text (no floats,
/// [`Amount::from_json_number_rounded`]); `None` when absent or unreadable.
pub fn amount_of(v: &Value) -> Option<Amount> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    Amount::from_json_number_rounded(&text, 2)
        .ok()
        .map(|(a, _)| a)
}

/// Reason codes that mean "try again later" (docs/PROVIDERS.md, Airtm: error codes).
const TRANSIENT_CODES: &[&str] = &["415003", "415998", "415999"];
/// Reason codes about our credentials or account (docs/PROVIDERS.md, Airtm: error codes).
const AUTH_CODES: &[&str] = &["415904", "415905", "415006", "415028"];
/// Reason codes about the recipient (docs/PROVIDERS.md, Airtm: error codes).
const USER_CODES: &[&str] = &[
    "415008", "415009", "415010", "415060", "415061", "415062", "415064", "415065", "415103",
    "415912",
];

/// The reason code of an error returned by this client, if Airtm sent one.
pub fn provider_code(e: &Error) -> Option<&str> {
    e.details.as_ref()?.get("providerCode")?.as_str()
}

/// Whether a failure of this client may succeed when tried again later.
pub fn is_transient(e: &Error) -> bool {
    match e.code {
        ErrorCode::ProviderUnavailable | ErrorCode::ProviderTimeout => true,
        ErrorCode::ProviderError => {
            provider_code(e).is_some_and(|c| TRANSIENT_CODES.contains(&c))
                || e.details
                    .as_ref()
                    .and_then(|d| d.get("providerStatus"))
                    .and_then(Value::as_u64)
                    .is_none_or(|s| s >= 500)
        }
        _ => false,
    }
}

/// The error for a non-2xx answer (docs/PROVIDERS.md, Airtm: error codes).
fn answer_error(status: u16, body: &Value, what: &str) -> Error {
    let envelope = wire::read::<ErrorEnvelope>(body).unwrap_or_default();
    let code = envelope.code.unwrap_or_default();
    let message = envelope.message.unwrap_or_else(|| format!("HTTP {status}"));
    let details =
        json!({ "providerStatus": status, "providerCode": code, "providerMessage": message });
    if status == 401 || status == 403 || AUTH_CODES.contains(&code.as_str()) {
        return Error::new(
            ErrorCode::ProviderError,
            format!("Airtm rejected the API credentials ({status}) on {what}: check AIRTM_API_KEY, AIRTM_API_SECRET and AIRTM_ENV"),
        )
        .with_details(details);
    }
    if status == 429 {
        return Error::new(
            ErrorCode::ProviderUnavailable,
            "Airtm rate limit reached; try again shortly",
        )
        .with_details(details);
    }
    if code == "415059" {
        return Error::new(
            ErrorCode::AirtmUserNotFound,
            format!("Airtm has no account for this email: {message}"),
        )
        .with_details(details);
    }
    if USER_CODES.contains(&code.as_str()) {
        return Error::new(
            ErrorCode::AirtmUserInvalid,
            format!("The Airtm account cannot take part: {message}"),
        )
        .with_details(details);
    }
    Error::new(
        ErrorCode::ProviderError,
        format!("Airtm refused {what} ({status} {code}): {message}"),
    )
    .with_details(details)
}

/// An Airtm Enterprise API v2 client. Cheap to clone.
#[derive(Clone)]
pub struct Airtm {
    base: Url,
    authorization: Arc<String>,
    http: reqwest::Client,
    pacer: Arc<governor::DefaultDirectRateLimiter>,
}

impl std::fmt::Debug for Airtm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Airtm")
            .field("base", &self.base.as_str())
            .field("authorization", &"[redacted]")
            .finish()
    }
}

impl Airtm {
    /// A client for `base` (ending in `/v2`) with Basic credentials, 30 s per request.
    pub fn new(base: Url, api_key: &str, api_secret: &str) -> Result<Airtm> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::internal(format!("http client: {e}")))?;
        let creds =
            base64::engine::general_purpose::STANDARD.encode(format!("{api_key}:{api_secret}"));
        let quota = governor::Quota::per_second(NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        let mut base = base;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        Ok(Airtm {
            base,
            authorization: Arc::new(format!("Basic {creds}")),
            http,
            pacer: Arc::new(governor::RateLimiter::direct(quota)),
        })
    }

    /// The base URL (ends in `/`).
    pub fn base(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| Error::internal(format!("Airtm url: {e}")))
    }

    /// One request: `(status, JSON body or Null)`; transport failures as errors.
    /// Paced, timed and traced (span `provider.call`, metric
    /// `offerhub_provider_requests_total{provider="airtm"}`); `what` is the operation
    /// template (`GET /payins/{id}`), never a concrete path.
    async fn send(&self, req: reqwest::RequestBuilder, what: &str) -> Result<(u16, Value)> {
        use crate::metrics::{self as m, Provider};
        use tracing::Instrument;
        let span = tracing::info_span!(
            "provider.call",
            provider = "airtm",
            operation = %what,
            status = tracing::field::Empty
        );
        async move {
            let waited = std::time::Instant::now();
            self.pacer.until_ready().await;
            m::provider_pacing(Provider::Airtm, waited.elapsed());
            let started = std::time::Instant::now();
            let sent = req
                .header("authorization", self.authorization.as_str())
                .header("accept", "application/json")
                .send()
                .await;
            let outcome = match &sent {
                Ok(r) => m::outcome_of_status(r.status().as_u16()),
                Err(e) => m::outcome_of_transport(e),
            };
            if let Ok(r) = &sent {
                tracing::Span::current().record("status", r.status().as_u16());
            }
            let answer = Self::answer(sent, what).await;
            m::provider_call(Provider::Airtm, what, outcome, started.elapsed());
            answer
        }
        .instrument(span)
        .await
    }

    async fn answer(
        sent: std::result::Result<reqwest::Response, reqwest::Error>,
        what: &str,
    ) -> Result<(u16, Value)> {
        let resp = sent.map_err(|e| {
            if e.is_timeout() {
                Error::new(
                    ErrorCode::ProviderTimeout,
                    format!("Airtm timed out on {what}"),
                )
            } else {
                Error::new(
                    ErrorCode::ProviderUnavailable,
                    format!("Airtm unreachable on {what}: {}", e.without_url()),
                )
            }
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// A request whose success is any 2xx with a body we do not need (cancel, commit).
    async fn expect_2xx(&self, req: reqwest::RequestBuilder, what: &str) -> Result<()> {
        let (status, body) = self.send(req, what).await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(answer_error(status, &body, what))
        }
    }

    /// GET with up to 3 retries on transient failures ([`crate::retry::PROVIDER_READ`]:
    /// 200 ms, 400 ms, 800 ms pauses, with jitter); `Ok(None)` on 404.
    async fn get(&self, path: &str, what: &str) -> Result<Option<Value>> {
        use crate::retry::PROVIDER_READ;
        use backon::Retryable;
        let attempt = || async {
            match self.send(self.http.get(self.url(path)?), what).await? {
                (404, _) => Ok(None),
                (s, body) if (200..300).contains(&s) => Ok(Some(body)),
                (s, body) => Err(answer_error(s, &body, what)),
            }
        };
        attempt
            .retry(PROVIDER_READ)
            .when(is_transient)
            .notify(|e, _| tracing::debug!(what, error = %e, "Airtm GET failed; retrying"))
            .await
    }

    /// `GET /users/{email}` (docs/PROVIDERS.md, Airtm: user linking): `None` when Airtm has
    /// no such user (404, 415059).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<AirtmUser>> {
        let path = format!(
            "users/{}",
            url::form_urlencoded::byte_serialize(email.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        );
        let body = match self.get(&path, "GET /users/{email}").await {
            Ok(b) => b,
            Err(e) if e.code == ErrorCode::AirtmUserNotFound => None,
            Err(e) => return Err(e),
        };
        Ok(body
            .as_ref()
            .and_then(wire::read::<UserResponse>)
            .and_then(UserResponse::into_user))
    }

    /// `POST /payins` (docs/PROVIDERS.md, Airtm: payins): one item carrying the whole
    /// amount. A duplicate `code` (415029) answers with the existing payin (fetched by
    /// code).
    pub async fn create_payin(&self, p: &NewPayin<'_>) -> Result<Payin> {
        let body = CreatePayinRequest::new(p)?;
        let what = "POST /payins";
        let (status, answer) = self
            .send(self.http.post(self.url("payins")?).json(&body), what)
            .await?;
        if (200..300).contains(&status) {
            return wire::payin(&answer)
                .ok_or_else(|| Error::new(ErrorCode::ProviderError, "Airtm payin without an id"));
        }
        let e = answer_error(status, &answer, what);
        if provider_code(&e) == Some("415029")
            && let Some(existing) = self.payin_by_code(p.code).await?
        {
            return Ok(existing);
        }
        Err(e)
    }

    /// `GET /payins/{id}`.
    pub async fn payin(&self, id: &str) -> Result<Option<Payin>> {
        Ok(self
            .get(&format!("payins/{}", seg(id)), "GET /payins/{id}")
            .await?
            .as_ref()
            .and_then(wire::payin))
    }

    /// `GET /payins/by-code/{code}` — how a payin is found after a crash
    /// (docs/PROVIDERS.md, Airtm: idempotency).
    pub async fn payin_by_code(&self, code: &str) -> Result<Option<Payin>> {
        Ok(self
            .get(
                &format!("payins/by-code/{}", seg(code)),
                "GET /payins/by-code/{code}",
            )
            .await?
            .as_ref()
            .and_then(wire::payin))
    }

    /// `DELETE /payins/{id}`: cancels a payin the user has not paid (docs/PROVIDERS.md,
    /// Airtm: payins). Errors with reason 415030 when it can no longer be canceled.
    pub async fn cancel_payin(&self, id: &str) -> Result<()> {
        let req = self.http.delete(self.url(&format!("payins/{}", seg(id)))?);
        self.expect_2xx(req, "DELETE /payins/{id}").await
    }

    /// `POST /payouts` (docs/PROVIDERS.md, Airtm: payouts). A duplicate `code` (415056)
    /// answers with the existing payout (fetched by code).
    pub async fn create_payout(&self, p: &NewPayout<'_>) -> Result<Payout> {
        let body = CreatePayoutRequest::new(p)?;
        let what = "POST /payouts";
        let (status, answer) = self
            .send(self.http.post(self.url("payouts")?).json(&body), what)
            .await?;
        if (200..300).contains(&status) {
            return wire::payout(&answer)
                .ok_or_else(|| Error::new(ErrorCode::ProviderError, "Airtm payout without an id"));
        }
        let e = answer_error(status, &answer, what);
        if provider_code(&e) == Some("415056")
            && let Some(existing) = self.payout_by_code(p.code).await?
        {
            return Ok(existing);
        }
        Err(e)
    }

    /// `POST /payouts/{id}/commit`: answers an empty 2xx (docs/PROVIDERS.md, Airtm:
    /// payouts); callers re-read the payout. Reason 415027 ("already processed") is
    /// reported as an error for the caller to settle with a GET; never retried here.
    pub async fn commit_payout(&self, id: &str) -> Result<()> {
        let req = self
            .http
            .post(self.url(&format!("payouts/{}/commit", seg(id)))?);
        self.expect_2xx(req, "POST /payouts/{id}/commit").await
    }

    /// `GET /payouts/{id}`.
    pub async fn payout(&self, id: &str) -> Result<Option<Payout>> {
        Ok(self
            .get(&format!("payouts/{}", seg(id)), "GET /payouts/{id}")
            .await?
            .as_ref()
            .and_then(wire::payout))
    }

    /// `GET /payouts/by-code/{code}` (docs/PROVIDERS.md, Airtm: idempotency).
    pub async fn payout_by_code(&self, code: &str) -> Result<Option<Payout>> {
        Ok(self
            .get(
                &format!("payouts/by-code/{}", seg(code)),
                "GET /payouts/by-code/{code}",
            )
            .await?
            .as_ref()
            .and_then(wire::payout))
    }

    /// `DELETE /payouts/{id}`: cancels a `CREATED` or `PENDING` payout; 415055 when it
    /// is neither (docs/PROVIDERS.md, Airtm: payouts).
    pub async fn cancel_payout(&self, id: &str) -> Result<()> {
        let req = self.http.delete(self.url(&format!("payouts/{}", seg(id)))?);
        self.expect_2xx(req, "DELETE /payouts/{id}").await
    }
}

/// One URL path segment, percent-encoded.
fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_cents_both_ways() {
        let a = Amount::parse("50.25").unwrap();
        assert_eq!(usd(a, "amount").unwrap().to_string(), "50.25");
        assert_eq!(
            usd(Amount::parse("7").unwrap(), "amount")
                .unwrap()
                .to_string(),
            "7.0"
        );
        let e = usd(Amount::parse("1.005").unwrap(), "amount").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidAmountFormat);
        assert_eq!(
            amount_of(&json!(49.5)),
            Some(Amount::parse("49.50").unwrap())
        );
        assert_eq!(
            amount_of(&json!(0.1 + 0.2)),
            Some(Amount::parse("0.30").unwrap())
        );
        assert_eq!(
            amount_of(&json!("12.3")),
            Some(Amount::parse("12.30").unwrap())
        );
        assert_eq!(amount_of(&json!(null)), None);
        assert_eq!(amount_of(&json!("abc")), None);
    }

    #[test]
    fn statuses_never_fail() {
        assert_eq!(PayinStatus::parse("confirmed"), PayinStatus::Confirmed);
        assert_eq!(PayinStatus::parse("BRIDGE_FAILED"), PayinStatus::Failed);
        assert_eq!(PayinStatus::parse("BRIDGE_CANCELED"), PayinStatus::Canceled);
        assert_eq!(
            PayinStatus::parse("SOMETHING_NEW"),
            PayinStatus::Other("SOMETHING_NEW".into())
        );
        assert_eq!(
            PayoutStatus::parse("pending"),
            PayoutStatus::PendingUserAction
        );
        assert_eq!(
            PayoutStatus::parse("BRIDGE_FAILED"),
            PayoutStatus::Processing("BRIDGE_FAILED".into())
        );
        assert_eq!(PayoutStatus::parse("Completed"), PayoutStatus::Completed);
        assert_eq!(PayoutStatus::parse("ERROR"), PayoutStatus::Error);
        let p = wire::payout(&json!({"id": "p1", "status": 7})).unwrap();
        assert_eq!(p.status, PayoutStatus::Processing("7".into()));
        assert!(wire::payin(&json!({"status": "CREATED"})).is_none());
    }

    #[test]
    fn error_envelope_mapping() {
        let e = answer_error(
            400,
            &json!({"code": "415059", "message": "Recipient not found"}),
            "x",
        );
        assert_eq!(e.code, ErrorCode::AirtmUserNotFound);
        let e = answer_error(
            401,
            &json!({"code": "415904", "message": "Unauthorized"}),
            "x",
        );
        assert_eq!(e.code, ErrorCode::ProviderError);
        assert!(!is_transient(&e));
        let e = answer_error(
            400,
            &json!({"code": "415016", "message": "Insufficient balance"}),
            "x",
        );
        assert_eq!(provider_code(&e), Some("415016"));
        assert!(!is_transient(&e));
        assert!(is_transient(&answer_error(503, &Value::Null, "x")));
        assert!(is_transient(&answer_error(
            400,
            &json!({"code": "415003", "message": "down"}),
            "x"
        )));
        assert!(is_transient(&answer_error(429, &Value::Null, "x")));
    }

    #[test]
    fn debug_hides_credentials() {
        let a = Airtm::new("http://127.0.0.1:1/v2".parse().unwrap(), "key", "s3cret").unwrap();
        let d = format!("{a:?}");
        assert!(
            !d.contains("s3cret")
                && !d.contains(&base64::engine::general_purpose::STANDARD.encode("key:s3cret"))
        );
        assert_eq!(a.base().as_str(), "http://127.0.0.1:1/v2/");
    }
}

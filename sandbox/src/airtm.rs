//! Airtm Enterprise API v2 simulator (docs/PROVIDERS.md, Airtm, which summarises
//! Airtm's OpenAPI document): the paths OfferHub uses, under `/airtm/v2`, with HTTP
//! Basic auth, the `{code, message, data}` error envelope and Airtm's reason codes;
//! a hosted checkout at `/airtm/payin/{id}`; webhooks delivered through a Svix-like
//! sender (real Svix signatures, Svix's retry schedule).
//!
//! API (`/airtm/v2`): `GET /users/{email}`, `POST|GET /payins`, `GET /payins/{id}`,
//! `GET /payins/by-code/{code}`, `DELETE /payins/{id}`, `POST|GET /payouts`,
//! `GET /payouts/{id}`, `GET /payouts/by-code/{code}`, `POST /payouts/{id}/commit`
//! (empty 204), `DELETE /payouts/{id}`, `GET /me`, `GET /me/balance`.
//!
//! Simulated people, by email: one containing `unknown` does not exist (415059),
//! `inactive` is inactive, `unverified` is not ID-verified. A payout committed to an
//! email containing `+pending` waits in `PENDING` (complete or fail it with the control
//! routes), `+fail` fails; anything else completes at once.
//!
//! Control (`/_sandbox/airtm`): `POST /webhook-endpoints {url, secret}` registers the
//! receiving endpoint (as Airtm's dashboard does); `POST /config {retryScale,
//! dropWebhooks, payinFeeBps}`; `POST /payins/{id}/{confirm|cancel|fail}` plays the
//! payer's checkout; `POST /payouts/{id}/{complete|fail}` settles a pending payout;
//! `GET /messages` lists messages and delivery attempts; `POST /messages/{id}/resend`
//! redelivers one now (same `svix-id`, fresh timestamp and signature).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::Sandbox;

/// Svix's retry schedule after a failed attempt (docs/PROVIDERS.md, Airtm: webhooks):
/// immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h — seconds, before
/// [`AirtmSim::retry_scale`].
pub const RETRY_SCHEDULE_SECS: [u64; 8] = [0, 5, 300, 1800, 7200, 18000, 36000, 36000];

#[derive(Clone, Debug)]
struct SimPayin {
    id: String,
    code: String,
    status: &'static str,
    amount: i64,
    fee: i64,
    description: String,
    confirmation_uri: String,
    cancel_uri: String,
    email: Option<String>,
    failure_reason: Option<String>,
    created_at: String,
    updated_at: String,
}

#[derive(Clone, Debug)]
struct SimPayout {
    id: String,
    code: String,
    email: String,
    user_id: String,
    status: &'static str,
    amount: i64,
    notes: String,
    committed: bool,
    reason_code: Option<String>,
    created_at: String,
    updated_at: String,
}

#[derive(Clone, Debug)]
struct Endpoint {
    url: String,
    key: Vec<u8>,
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Attempt {
    at: String,
    status: u16,
}

#[derive(Clone, Debug)]
struct Message {
    id: String,
    event_type: String,
    payload: String,
    attempts: Vec<Attempt>,
    delivered: bool,
}

/// The simulator's state.
#[derive(Debug)]
pub struct AirtmSim {
    payins: Vec<SimPayin>,
    payouts: Vec<SimPayout>,
    endpoints: Vec<Endpoint>,
    messages: Vec<Message>,
    /// The enterprise balance (cents).
    available: i64,
    /// Multiplies [`RETRY_SCHEDULE_SECS`] (tests use small values).
    pub retry_scale: f64,
    /// Simulates an outage of the receiving side: messages are recorded, not sent.
    pub drop_webhooks: bool,
    /// Airtm's payin fee, basis points of the amount (default 100 = 1 %).
    pub payin_fee_bps: i64,
}

impl Default for AirtmSim {
    fn default() -> Self {
        AirtmSim {
            payins: Vec::new(),
            payouts: Vec::new(),
            endpoints: Vec::new(),
            messages: Vec::new(),
            available: 100_000_000,
            retry_scale: 1.0,
            drop_webhooks: false,
            payin_fee_bps: 100,
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn uuid_like(seed: &str) -> String {
    let h = hex::encode(Sha256::digest(seed.as_bytes()));
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn random_uuid() -> String {
    uuid_like(&format!("{}", rand::random::<u128>()))
}

fn fail(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "code": code, "message": message, "data": {} })),
    )
        .into_response()
}

/// A refusal in Airtm's error envelope (kept small; rendered by [`fail`]).
struct Refusal(StatusCode, &'static str, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        fail(self.0, self.1, self.2)
    }
}

fn usd(cents: i64) -> Value {
    serde_json::from_str(&format!("{}.{:02}", cents / 100, cents % 100)).unwrap_or(Value::Null)
}

/// Cents of a JSON amount with at most 2 decimals.
fn cents(v: &Value) -> Option<i64> {
    let f = v.as_f64()?;
    let c = (f * 100.0).round();
    if !f.is_finite() || (f * 100.0 - c).abs() > 1e-6 || !(1.0..=1e13).contains(&c) {
        return None;
    }
    Some(c as i64)
}

fn authorized(headers: &HeaderMap) -> bool {
    let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(b64) = v.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(raw) = STANDARD.decode(b64.trim()) else {
        return false;
    };
    let text = String::from_utf8_lossy(&raw);
    matches!(text.split_once(':'), Some((k, s)) if !k.is_empty() && !s.is_empty())
}

macro_rules! auth {
    ($headers:expr) => {
        if !authorized(&$headers) {
            return fail(StatusCode::UNAUTHORIZED, "415904", "Unauthorized");
        }
    };
}

impl SimPayin {
    fn json(&self) -> Value {
        json!({
            "id": self.id, "code": self.code, "hash": hex::encode(&Sha256::digest(self.id.as_bytes())[..8]),
            "status": self.status, "amount": usd(self.amount), "netAmount": usd(self.amount - self.fee),
            "airtmFee": usd(self.fee), "description": self.description,
            "items": [{ "id": uuid_like(&format!("{}:item", self.id)), "payinId": self.id,
                        "description": self.description, "amount": usd(self.amount), "quantity": 1 }],
            "airtmUserId": self.email.as_deref().map(uuid_like),
            "airtmUserEmail": self.email, "failureReason": self.failure_reason,
            "createdAt": self.created_at, "updatedAt": self.updated_at,
            "confirmationUri": self.confirmation_uri, "cancelUri": self.cancel_uri,
        })
    }
}

impl SimPayout {
    fn json(&self) -> Value {
        json!({
            "id": self.id, "bulkPayoutId": null, "hash": hex::encode(&Sha256::digest(self.id.as_bytes())[..8]),
            "code": self.code, "airtmUserId": self.user_id, "airtmUserEmail": self.email,
            "requireIdVerified": false, "notes": self.notes, "internalNote": null,
            "status": self.status, "grossAmount": usd(self.amount), "amount": usd(self.amount),
            "netAmount": usd(self.amount), "airtmFee": usd(0), "enterpriseFee": usd(0),
            "reasonCode": self.reason_code, "reasonDescription": null,
            "createdAt": self.created_at, "updatedAt": self.updated_at,
        })
    }
}

/// The simulated person behind an email: `None` when unknown.
fn person(email: &str) -> Option<Value> {
    let e = email.to_ascii_lowercase();
    if e.contains("unknown") || !e.contains('@') {
        return None;
    }
    Some(json!({
        "id": uuid_like(&e),
        "status": if e.contains("inactive") { "inactive" } else { "active" },
        "primaryEmail": true,
        "firstName": "Sandbox", "lastName": "User", "country": "COL",
        "isVerified": !e.contains("unverified"),
    }))
}

impl Sandbox {
    fn airtm(&self) -> std::sync::MutexGuard<'_, AirtmSim> {
        self.airtm.lock().expect("airtm lock")
    }

    /// Records a webhook message and starts its delivery to every endpoint.
    fn publish(self: &Arc<Self>, event_type: &str, data: Value) {
        let payload = json!({ "type": event_type, "data": data }).to_string();
        let id = format!("msg_{}", &hex::encode(rand::random::<[u8; 16]>())[..27]);
        {
            let mut sim = self.airtm();
            sim.messages.push(Message {
                id: id.clone(),
                event_type: event_type.to_string(),
                payload,
                attempts: Vec::new(),
                delivered: false,
            });
        }
        let sb = self.clone();
        tokio::spawn(async move { sb.deliver_with_retries(id).await });
    }

    async fn deliver_with_retries(self: Arc<Self>, id: String) {
        for delay in RETRY_SCHEDULE_SECS {
            let scale = self.airtm().retry_scale;
            if delay > 0 {
                tokio::time::sleep(Duration::from_secs_f64(delay as f64 * scale)).await;
            }
            if self.deliver_once(&id).await {
                return;
            }
        }
    }

    /// One attempt to every endpoint; `true` when all answered 2xx.
    async fn deliver_once(&self, id: &str) -> bool {
        let (endpoints, payload, drop) = {
            let sim = self.airtm();
            let Some(m) = sim.messages.iter().find(|m| m.id == id) else {
                return true;
            };
            (sim.endpoints.clone(), m.payload.clone(), sim.drop_webhooks)
        };
        if endpoints.is_empty() {
            return false;
        }
        let mut all_ok = true;
        for ep in endpoints {
            let status = if drop {
                0
            } else {
                let ts = chrono::Utc::now().timestamp();
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&ep.key) else {
                    continue;
                };
                mac.update(format!("{id}.{ts}.{payload}").as_bytes());
                let sig = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
                match self
                    .webhook_http
                    .post(&ep.url)
                    .header("content-type", "application/json")
                    .header("svix-id", id)
                    .header("svix-timestamp", ts.to_string())
                    .header("svix-signature", sig)
                    .body(payload.clone())
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                }
            };
            let ok = (200..300).contains(&status);
            all_ok &= ok;
            let mut sim = self.airtm();
            if let Some(m) = sim.messages.iter_mut().find(|m| m.id == id) {
                m.attempts.push(Attempt { at: now(), status });
                m.delivered |= ok;
            }
        }
        all_ok
    }
}

async fn user(
    State(sb): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Path(email): Path<String>,
) -> Response {
    auth!(headers);
    let _ = &sb;
    match person(&email) {
        Some(p) => Json(p).into_response(),
        None => fail(StatusCode::NOT_FOUND, "415059", "Recipient not found"),
    }
}

async fn create_payin(
    State(sb): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Json(b): Json<Value>,
) -> Response {
    auth!(headers);
    let code = b["code"].as_str().unwrap_or_default().to_string();
    let description = b["description"].as_str().unwrap_or_default().to_string();
    let confirmation = b["confirmationUri"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let cancel = b["cancelUri"].as_str().unwrap_or_default().to_string();
    let Some(amount) = cents(&b["amount"]) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "415906",
            "amount must be at least 0.01 with at most 2 decimals",
        );
    };
    if code.is_empty() || description.is_empty() || description.len() > 250 {
        return fail(
            StatusCode::BAD_REQUEST,
            "415906",
            "code and description (max 250) are required",
        );
    }
    let items = b["items"].as_array().cloned().unwrap_or_default();
    let mut sum = 0;
    for it in &items {
        match (cents(&it["amount"]), it["quantity"].as_i64()) {
            (Some(a), Some(q)) if q >= 1 => sum += a * q,
            _ => {
                return fail(
                    StatusCode::BAD_REQUEST,
                    "415906",
                    "items need amount >= 0.01 and quantity >= 1",
                );
            }
        }
    }
    if items.is_empty() || sum != amount {
        return fail(
            StatusCode::BAD_REQUEST,
            "415906",
            "amount must equal the sum of the items",
        );
    }
    for u in [&confirmation, &cancel] {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return fail(
                StatusCode::BAD_REQUEST,
                "415906",
                "confirmationUri and cancelUri must be URLs",
            );
        }
    }
    let payin = {
        let mut sim = sb.airtm();
        if sim.payins.iter().any(|p| p.code == code) {
            return fail(StatusCode::BAD_REQUEST, "415029", "Duplicate payin code");
        }
        let t = now();
        let p = SimPayin {
            id: random_uuid(),
            code,
            status: "CREATED",
            amount,
            fee: amount * sim.payin_fee_bps / 10_000,
            description,
            confirmation_uri: confirmation,
            cancel_uri: cancel,
            email: None,
            failure_reason: None,
            created_at: t.clone(),
            updated_at: t,
        };
        sim.payins.push(p.clone());
        p
    };
    sb.publish("payin.created", payin.json());
    Json(payin.json()).into_response()
}

async fn list_payins(State(sb): State<Arc<Sandbox>>, headers: HeaderMap) -> Response {
    auth!(headers);
    let items: Vec<Value> = sb.airtm().payins.iter().map(SimPayin::json).collect();
    Json(json!({ "items": items, "startCursor": null, "endCursor": null })).into_response()
}

async fn get_payin(
    State(sb): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    auth!(headers);
    match sb.airtm().payins.iter().find(|p| p.id == id) {
        Some(p) => Json(p.json()).into_response(),
        None => fail(StatusCode::NOT_FOUND, "415031", "Payin not found"),
    }
}

async fn payin_by_code(
    State(sb): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Response {
    auth!(headers);
    match sb.airtm().payins.iter().find(|p| p.code == code) {
        Some(p) => Json(p.json()).into_response(),
        None => fail(StatusCode::NOT_FOUND, "415031", "Payin not found"),
    }
}

/// Moves a `CREATED` payin to `to` (the checkout's outcome or an API cancel).
fn settle_payin(
    sb: &Arc<Sandbox>,
    id: &str,
    to: &'static str,
    email: Option<String>,
) -> Result<SimPayin, Refusal> {
    let payin = {
        let mut sim = sb.airtm();
        let Some(p) = sim.payins.iter_mut().find(|p| p.id == id) else {
            return Err(Refusal(StatusCode::NOT_FOUND, "415031", "Payin not found"));
        };
        if p.status != "CREATED" {
            let code = if p.status == "CONFIRMED" {
                "415032"
            } else {
                "415030"
            };
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                code,
                "The payin cannot be confirmed or canceled",
            ));
        }
        p.status = to;
        p.updated_at = now();
        if to == "CONFIRMED" {
            p.email = Some(email.unwrap_or_else(|| "payer@sandbox.airtm.test".into()));
        }
        if to == "FAILED" {
            p.failure_reason = Some("Payment method declined (sandbox)".into());
        }
        let p = p.clone();
        if to == "CONFIRMED" {
            sim.available += p.amount - p.fee;
        }
        p
    };
    let event = match to {
        "CONFIRMED" => "payin.confirmed",
        "CANCELED" => "payin.canceled",
        _ => "payin.failed",
    };
    sb.publish(event, payin.json());
    Ok(payin)
}

async fn delete_payin(
    State(sb): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    auth!(headers);
    match settle_payin(&sb, &id, "CANCELED", None) {
        Ok(p) => Json(p.json()).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn create_payout(
    State(sb): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Json(b): Json<Value>,
) -> Response {
    auth!(headers);
    let email = b["airtmUserEmail"].as_str().unwrap_or_default().to_string();
    let notes = b["notes"].as_str().unwrap_or_default().to_string();
    let code = b["code"].as_str().unwrap_or_default().to_string();
    let Some(amount) = cents(&b["amount"]) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "415058",
            "Amount below the minimum (0.01, 2 decimals)",
        );
    };
    if notes.is_empty() {
        return fail(StatusCode::BAD_REQUEST, "415906", "notes is required");
    }
    let Some(p) = person(&email) else {
        return fail(StatusCode::BAD_REQUEST, "415059", "Recipient not found");
    };
    if p["status"] != "active" {
        return fail(
            StatusCode::BAD_REQUEST,
            "415060",
            "The recipient cannot receive payouts",
        );
    }
    let payout = {
        let mut sim = sb.airtm();
        if !code.is_empty() && sim.payouts.iter().any(|p| p.code == code) {
            return fail(StatusCode::BAD_REQUEST, "415056", "Duplicate payout code");
        }
        let t = now();
        let po = SimPayout {
            id: random_uuid(),
            code,
            user_id: p["id"].as_str().unwrap_or_default().to_string(),
            email,
            status: "CREATED",
            amount,
            notes,
            committed: false,
            reason_code: None,
            created_at: t.clone(),
            updated_at: t,
        };
        sim.payouts.push(po.clone());
        po
    };
    sb.publish("payout.created", payout.json());
    if b["commit"].as_bool() == Some(true) {
        match commit(&sb, &payout.id) {
            Ok(p) => return Json(p.json()).into_response(),
            Err(r) => return r.into_response(),
        }
    }
    Json(payout.json()).into_response()
}

fn commit(sb: &Arc<Sandbox>, id: &str) -> Result<SimPayout, Refusal> {
    let (payout, event) = {
        let mut sim = sb.airtm();
        let available = sim.available;
        let Some(p) = sim.payouts.iter_mut().find(|p| p.id == id) else {
            return Err(Refusal(StatusCode::NOT_FOUND, "415005", "Payout not found"));
        };
        if p.status != "CREATED" {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "415027",
                "Payout already processed",
            ));
        }
        if available < p.amount {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "415016",
                "Insufficient enterprise balance",
            ));
        }
        p.committed = true;
        p.updated_at = now();
        let e = p.email.to_ascii_lowercase();
        let (status, event, refund) = if e.contains("+pending") {
            ("PENDING", None, false)
        } else if e.contains("+fail") {
            ("FAILED", Some("payout.failed"), true)
        } else {
            ("COMPLETED", Some("payout.completed"), false)
        };
        p.status = status;
        if status == "FAILED" {
            p.reason_code = Some("415073".into());
        }
        let p = p.clone();
        sim.available -= p.amount;
        if refund {
            sim.available += p.amount;
        }
        (p, event)
    };
    if let Some(e) = event {
        sb.publish(e, payout.json());
    }
    Ok(payout)
}

async fn commit_payout(
    State(sb): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    auth!(headers);
    match commit(&sb, &id) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(r) => r.into_response(),
    }
}

async fn list_payouts(State(sb): State<Arc<Sandbox>>, headers: HeaderMap) -> Response {
    auth!(headers);
    let items: Vec<Value> = sb.airtm().payouts.iter().map(SimPayout::json).collect();
    Json(json!({ "items": items, "startCursor": null, "endCursor": null })).into_response()
}

async fn get_payout(
    State(sb): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    auth!(headers);
    match sb.airtm().payouts.iter().find(|p| p.id == id) {
        Some(p) => Json(p.json()).into_response(),
        None => fail(StatusCode::NOT_FOUND, "415005", "Payout not found"),
    }
}

async fn payout_by_code(
    State(sb): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Path(code): Path<String>,
) -> Response {
    auth!(headers);
    match sb.airtm().payouts.iter().find(|p| p.code == code) {
        Some(p) => Json(p.json()).into_response(),
        None => fail(StatusCode::NOT_FOUND, "415005", "Payout not found"),
    }
}

/// Ends a payout: `CANCELED` (from `CREATED` or `PENDING`) or, for a pending one,
/// `COMPLETED`/`FAILED`. Committed money returns to the enterprise unless completed.
fn end_payout(sb: &Arc<Sandbox>, id: &str, to: &'static str) -> Result<SimPayout, Refusal> {
    let payout = {
        let mut sim = sb.airtm();
        let Some(p) = sim.payouts.iter_mut().find(|p| p.id == id) else {
            return Err(Refusal(StatusCode::NOT_FOUND, "415005", "Payout not found"));
        };
        let allowed = match to {
            "CANCELED" => p.status == "CREATED" || p.status == "PENDING",
            _ => p.status == "PENDING",
        };
        if !allowed {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                "415055",
                "Cannot cancel a non-pending payout",
            ));
        }
        p.status = to;
        p.updated_at = now();
        let p = p.clone();
        if p.committed && to != "COMPLETED" {
            sim.available += p.amount;
        }
        p
    };
    let event = match to {
        "CANCELED" => "payout.canceled",
        "COMPLETED" => "payout.completed",
        _ => "payout.failed",
    };
    sb.publish(event, payout.json());
    Ok(payout)
}

async fn delete_payout(
    State(sb): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    auth!(headers);
    match end_payout(&sb, &id, "CANCELED") {
        Ok(p) => Json(p.json()).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn me(headers: HeaderMap) -> Response {
    auth!(headers);
    Json(json!({ "id": uuid_like("enterprise"), "cancelPendingPayoutsAfterDays": 90, "payoutRequireIdVerification": false })).into_response()
}

async fn me_balance(State(sb): State<Arc<Sandbox>>, headers: HeaderMap) -> Response {
    auth!(headers);
    let sim = sb.airtm();
    let pending: i64 = sim
        .payouts
        .iter()
        .filter(|p| p.status == "PENDING")
        .map(|p| p.amount)
        .sum();
    Json(json!({ "available": usd(sim.available), "pending": usd(pending) })).into_response()
}

/// The hosted checkout page (what `https://<host>/payin/{id}` shows the payer).
async fn checkout(State(sb): State<Arc<Sandbox>>, Path(id): Path<String>) -> Response {
    let sim = sb.airtm();
    let Some(p) = sim.payins.iter().find(|p| p.id == id) else {
        return (
            StatusCode::NOT_FOUND,
            Html("<h1>Payment not found</h1>".to_string()),
        )
            .into_response();
    };
    if p.status != "CREATED" {
        return (
            StatusCode::GONE,
            Html(format!("<h1>This payment is {}</h1>", p.status)),
        )
            .into_response();
    }
    Html(format!(
        "<!doctype html><title>Airtm sandbox checkout</title><h1>Pay ${}.{:02}</h1><p>{}</p>\
         <form method=post action=\"/airtm/payin/{id}/confirm\"><input name=email value=\"payer@sandbox.airtm.test\"><button>Confirm</button></form>\
         <form method=post action=\"/airtm/payin/{id}/cancel\"><button>Cancel</button></form>",
        p.amount / 100,
        p.amount % 100,
        html_escape(&p.description)
    ))
    .into_response()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn with_code(uri: &str, code: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!(
        "{uri}{sep}code={}",
        form_urlencoded::byte_serialize(code.as_bytes()).collect::<String>()
    )
}

async fn checkout_confirm(
    State(sb): State<Arc<Sandbox>>,
    Path(id): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    match settle_payin(&sb, &id, "CONFIRMED", f.get("email").cloned()) {
        Ok(p) => Redirect::to(&with_code(&p.confirmation_uri, &p.code)).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn checkout_cancel(State(sb): State<Arc<Sandbox>>, Path(id): Path<String>) -> Response {
    match settle_payin(&sb, &id, "CANCELED", None) {
        Ok(p) => Redirect::to(&with_code(&p.cancel_uri, &p.code)).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn control_payin(
    State(sb): State<Arc<Sandbox>>,
    Path((id, action)): Path<(String, String)>,
    body: Option<Json<Value>>,
) -> Response {
    let email = body.and_then(|Json(b)| b["email"].as_str().map(str::to_string));
    let to = match action.as_str() {
        "confirm" => "CONFIRMED",
        "cancel" => "CANCELED",
        "fail" => "FAILED",
        _ => return fail(StatusCode::NOT_FOUND, "415902", "unknown action"),
    };
    match settle_payin(&sb, &id, to, email) {
        Ok(p) => Json(p.json()).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn control_payout(
    State(sb): State<Arc<Sandbox>>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let to = match action.as_str() {
        "complete" => "COMPLETED",
        "fail" => "FAILED",
        _ => return fail(StatusCode::NOT_FOUND, "415902", "unknown action"),
    };
    match end_payout(&sb, &id, to) {
        Ok(p) => Json(p.json()).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn register_endpoint(State(sb): State<Arc<Sandbox>>, Json(b): Json<Value>) -> Response {
    let url = b["url"].as_str().unwrap_or_default().to_string();
    let secret = b["secret"].as_str().unwrap_or_default();
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .unwrap_or_default();
    if !(url.starts_with("http://") || url.starts_with("https://")) || key.is_empty() {
        return fail(
            StatusCode::BAD_REQUEST,
            "415906",
            "url and a whsec_ secret are required",
        );
    }
    let mut sim = sb.airtm();
    sim.endpoints.retain(|e| e.url != url);
    sim.endpoints.push(Endpoint { url, key });
    StatusCode::NO_CONTENT.into_response()
}

async fn configure(State(sb): State<Arc<Sandbox>>, Json(b): Json<Value>) -> Response {
    let mut sim = sb.airtm();
    if let Some(s) = b["retryScale"].as_f64() {
        sim.retry_scale = s.clamp(0.0, 10.0);
    }
    if let Some(d) = b["dropWebhooks"].as_bool() {
        sim.drop_webhooks = d;
    }
    if let Some(f) = b["payinFeeBps"].as_i64() {
        sim.payin_fee_bps = f.clamp(0, 10_000);
    }
    Json(json!({ "retryScale": sim.retry_scale, "dropWebhooks": sim.drop_webhooks, "payinFeeBps": sim.payin_fee_bps })).into_response()
}

async fn messages(
    State(sb): State<Arc<Sandbox>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let sim = sb.airtm();
    let items: Vec<Value> = sim
        .messages
        .iter()
        .filter(|m| q.get("eventType").is_none_or(|t| *t == m.event_type))
        .map(|m| json!({ "id": m.id, "eventType": m.event_type, "payload": serde_json::from_str::<Value>(&m.payload).unwrap_or(Value::Null), "attempts": m.attempts, "delivered": m.delivered }))
        .collect();
    Json(json!({ "data": items })).into_response()
}

async fn resend(State(sb): State<Arc<Sandbox>>, Path(id): Path<String>) -> Response {
    if !sb.airtm().messages.iter().any(|m| m.id == id) {
        return fail(StatusCode::NOT_FOUND, "415902", "No such message");
    }
    let ok = sb.deliver_once(&id).await;
    Json(json!({ "delivered": ok })).into_response()
}

pub(crate) fn routes() -> Router<Arc<Sandbox>> {
    Router::new()
        .route("/airtm/v2/users/{email}", get(user))
        .route("/airtm/v2/payins", post(create_payin).get(list_payins))
        .route("/airtm/v2/payins/{id}", get(get_payin).delete(delete_payin))
        .route("/airtm/v2/payins/by-code/{code}", get(payin_by_code))
        .route("/airtm/v2/payouts", post(create_payout).get(list_payouts))
        .route(
            "/airtm/v2/payouts/{id}",
            get(get_payout).delete(delete_payout),
        )
        .route("/airtm/v2/payouts/{id}/commit", post(commit_payout))
        .route("/airtm/v2/payouts/by-code/{code}", get(payout_by_code))
        .route("/airtm/v2/me", get(me))
        .route("/airtm/v2/me/balance", get(me_balance))
        .route("/airtm/payin/{id}", get(checkout))
        .route("/airtm/payin/{id}/confirm", post(checkout_confirm))
        .route("/airtm/payin/{id}/cancel", post(checkout_cancel))
        .route("/_sandbox/airtm/webhook-endpoints", post(register_endpoint))
        .route("/_sandbox/airtm/config", post(configure))
        .route("/_sandbox/airtm/payins/{id}/{action}", post(control_payin))
        .route(
            "/_sandbox/airtm/payouts/{id}/{action}",
            post(control_payout),
        )
        .route("/_sandbox/airtm/messages", get(messages))
        .route("/_sandbox/airtm/messages/{id}/resend", post(resend))
}

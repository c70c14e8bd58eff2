//! The Horizon subset over HTTP (research/trustless-stellar.md §D): root, accounts,
//! form-encoded `POST /transactions`, transactions by hash, payment pages and SSE
//! streams, Friendbot; plus sandbox admin routes under `/_sandbox` (faucet, faults,
//! info). Errors are Horizon's problem+json.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::Sandbox;
use crate::ledger::{CreditAsset, PaymentRecord, Rejection, TxRecord, parse_strkey};

/// `"12.3400000"`: Horizon's fixed 7-decimal amount format.
pub fn amount(units: i64) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let u = units.unsigned_abs();
    format!("{sign}{}.{:07}", u / 10_000_000, u % 10_000_000)
}

/// Parses a decimal amount (up to 7 decimals) to base units.
pub fn parse_amount(s: &str) -> Option<i64> {
    let (i, f) = s.split_once('.').unwrap_or((s, ""));
    if i.is_empty()
        || f.len() > 7
        || !i.bytes().all(|b| b.is_ascii_digit())
        || !f.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac: i64 = format!("{f:0<7}").parse().ok()?;
    i.parse::<i64>()
        .ok()?
        .checked_mul(10_000_000)?
        .checked_add(frac)
}

pub(crate) fn problem(
    status: StatusCode,
    kind: &str,
    title: &str,
    detail: &str,
    extras: Option<Value>,
) -> Response {
    let mut body = json!({
        "type": format!("https://stellar.org/horizon-errors/{kind}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    if let Some(e) = extras {
        body["extras"] = e;
    }
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/problem+json".parse().expect("static"),
    );
    resp
}

pub(crate) fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "not_found",
        "Resource Missing",
        "The resource at the url requested was not found.  This usually occurs for one of two reasons:  The url requested is not valid, or no data in our database could be found with the parameters provided.",
        None,
    )
}

pub(crate) fn routes() -> Router<Arc<Sandbox>> {
    Router::new()
        .route("/", get(root))
        .route("/accounts/{id}", get(account))
        .route("/accounts/{id}/payments", get(account_payments))
        .route("/payments", get(all_payments))
        .route("/transactions", post(submit))
        .route("/transactions/{hash}", get(transaction))
        .route("/transactions/{hash}/payments", get(transaction_payments))
        .route("/_sandbox/invocations", get(invocations))
        .route("/friendbot", get(friendbot))
        .route("/_sandbox/info", get(info))
        .route("/_sandbox/fund", post(fund))
        .route("/_sandbox/accounts", post(external_account))
        .route("/_sandbox/faults", post(set_faults))
}

/// Applies injected latency, 5xx and 429 faults; `Some(response)` short-circuits.
pub(crate) async fn faults(sb: &Sandbox) -> Option<Response> {
    let (latency, f5xx, f429) = {
        let mut f = sb.faults.lock().expect("faults lock");
        let r = (
            f.latency_ms,
            f.fail_5xx > 0,
            f.fail_429 > 0 && f.fail_5xx == 0,
        );
        if r.1 {
            f.fail_5xx -= 1;
        } else if r.2 {
            f.fail_429 -= 1;
        }
        r
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if f5xx {
        return Some(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_over_capacity",
            "Server Over Capacity",
            "This horizon server is currently overloaded.  Please wait for several minutes before trying your request again.",
            None,
        ));
    }
    if f429 {
        return Some(problem(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            "Rate Limit Exceeded",
            "The rate limit for the requesting IP address is over its alloted limit.  The allowed limit and requests left per time period are communicated to clients via the http response headers 'X-RateLimit-*' headers.",
            None,
        ));
    }
    None
}

async fn root(State(sb): State<Arc<Sandbox>>) -> Response {
    let l = sb.ledger.lock().expect("ledger lock");
    Json(json!({
        "horizon_version": concat!("offerhub-sandbox-", env!("CARGO_PKG_VERSION")),
        "core_version": "offerhub-sandbox",
        "network_passphrase": l.passphrase,
        "history_latest_ledger": l.ledger_seq,
        "core_latest_ledger": l.ledger_seq,
        "current_protocol_version": 23,
    }))
    .into_response()
}

pub(crate) fn account_json(a: &crate::ledger::Account) -> Value {
    let mut balances: Vec<Value> = a
        .trustlines
        .values()
        .map(|(asset, line)| {
            let mut b = json!({
                "balance": amount(line.balance),
                "limit": amount(line.limit),
                "buying_liabilities": "0.0000000",
                "selling_liabilities": "0.0000000",
                "last_modified_ledger": a.last_modified_ledger,
                "is_authorized": true,
                "is_authorized_to_maintain_liabilities": true,
                "is_clawback_enabled": false,
                "asset_type": if asset.code.len() <= 4 { "credit_alphanum4" } else { "credit_alphanum12" },
                "asset_code": asset.code,
                "asset_issuer": asset.issuer,
            });
            if let Some(s) = &line.sponsor {
                b["sponsor"] = json!(s);
            }
            b
        })
        .collect();
    balances.push(json!({
        "balance": amount(a.balance),
        "buying_liabilities": "0.0000000",
        "selling_liabilities": "0.0000000",
        "asset_type": "native",
    }));
    let mut v = json!({
        "id": a.id,
        "account_id": a.id,
        "sequence": a.seq.to_string(),
        "sequence_ledger": a.last_modified_ledger,
        "subentry_count": a.subentries,
        "num_sponsoring": a.num_sponsoring,
        "num_sponsored": a.num_sponsored,
        "last_modified_ledger": a.last_modified_ledger,
        "thresholds": { "low_threshold": 0, "med_threshold": 0, "high_threshold": 0 },
        "flags": { "auth_required": false, "auth_revocable": false, "auth_immutable": false, "auth_clawback_enabled": false },
        "balances": balances,
        "signers": [{ "weight": 1, "key": a.id, "type": "ed25519_public_key" }],
        "data": {},
        "paging_token": a.id,
    });
    if let Some(s) = &a.sponsor {
        v["sponsor"] = json!(s);
    }
    v
}

async fn account(State(sb): State<Arc<Sandbox>>, Path(id): Path<String>) -> Response {
    if let Some(r) = faults(&sb).await {
        return r;
    }
    let l = sb.ledger.lock().expect("ledger lock");
    match l.accounts.get(&id) {
        Some(a) => Json(account_json(a)).into_response(),
        None => not_found(),
    }
}

pub(crate) fn tx_json(t: &TxRecord) -> Value {
    json!({
        "id": t.hash,
        "paging_token": t.paging_token,
        "successful": t.successful,
        "hash": t.hash,
        "ledger": t.ledger,
        "created_at": t.created_at,
        "source_account": t.source_account,
        "source_account_sequence": t.source_account_sequence.to_string(),
        "fee_account": t.source_account,
        "fee_charged": t.fee_charged.to_string(),
        "max_fee": t.max_fee.to_string(),
        "operation_count": t.operation_count,
        "envelope_xdr": t.envelope_xdr,
        "result_xdr": t.result_xdr,
        "result_meta_xdr": "",
        "fee_meta_xdr": "",
        "memo_type": t.memo_type,
        "signatures": t.signatures,
    })
}

fn rejection_response(r: &Rejection) -> Response {
    if r.tx_code == "tx_malformed" {
        return problem(
            StatusCode::BAD_REQUEST,
            "transaction_malformed",
            "Transaction Malformed",
            "Horizon could not decode the transaction envelope in this request. A transaction should be an XDR TransactionEnvelope struct encoded using base64.  The envelope read from this request is echoed in the `extras.envelope_xdr` field of this response for your convenience.",
            Some(json!({ "envelope_xdr": r.envelope_xdr })),
        );
    }
    let mut codes = json!({ "transaction": r.tx_code });
    if !r.op_codes.is_empty() {
        codes["operations"] = json!(r.op_codes);
    }
    let mut extras = json!({ "envelope_xdr": r.envelope_xdr, "result_xdr": r.result_xdr, "result_codes": codes });
    if let Some(h) = &r.hash {
        extras["hash"] = json!(h);
    }
    problem(
        StatusCode::BAD_REQUEST,
        "transaction_failed",
        "Transaction Failed",
        "The transaction failed when submitted to the stellar network. The `extras.result_codes` field on this response contains further details.  Descriptions of each code can be found at: https://developers.stellar.org/docs/data/apis/horizon/api-reference/errors/http-status-codes/horizon-specific/transaction-failed",
        Some(extras),
    )
}

async fn submit(State(sb): State<Arc<Sandbox>>, headers: HeaderMap, body: Bytes) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !(ct.starts_with("application/x-www-form-urlencoded")
        || ct.starts_with("multipart/form-data"))
    {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported Media Type",
            "The request has an unsupported content type. Presently, the only supported content type is application/x-www-form-urlencoded.",
            None,
        );
    }
    if let Some(r) = faults(&sb).await {
        return r;
    }
    let tx = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "tx")
        .map(|(_, v)| v.into_owned());
    let Some(tx) = tx else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Bad Request",
            "The request you sent was invalid in some way.",
            Some(json!({ "invalid_field": "tx", "reason": "cannot be blank" })),
        );
    };
    let result = sb.submit(&tx);
    if sb.take_timeout_after_apply() {
        return problem(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "Timeout",
            "Your request timed out before completing.  Please try your request again. If you are submitting a transaction make sure you are sending exactly the same transaction (with the same sequence number).",
            None,
        );
    }
    match result {
        Ok(t) => Json(tx_json(&t)).into_response(),
        Err(r) => rejection_response(&r),
    }
}

async fn transaction(State(sb): State<Arc<Sandbox>>, Path(hash): Path<String>) -> Response {
    if let Some(r) = faults(&sb).await {
        return r;
    }
    let l = sb.ledger.lock().expect("ledger lock");
    match l.transactions.get(&hash) {
        Some(t) => Json(tx_json(t)).into_response(),
        None => not_found(),
    }
}

/// `GET /transactions/{hash}/payments`: the payment records of one transaction.
async fn transaction_payments(
    State(sb): State<Arc<Sandbox>>,
    Path(hash): Path<String>,
) -> Response {
    if let Some(r) = faults(&sb).await {
        return r;
    }
    let l = sb.ledger.lock().expect("ledger lock");
    if !l.transactions.contains_key(&hash) {
        return not_found();
    }
    let records: Vec<Value> = l
        .payments
        .iter()
        .filter(|p| p.tx_hash == hash)
        .map(payment_json)
        .collect();
    Json(json!({ "_links": {}, "_embedded": { "records": records } })).into_response()
}

/// `GET /_sandbox/invocations`: every contract call submitted to the sandbox
/// (`[{hash, source, contract, function, successful}]`, in ledger order) — lets tests
/// prove that no step was submitted twice.
async fn invocations(State(sb): State<Arc<Sandbox>>) -> Response {
    use stellar_xdr::{HostFunction, Limits, OperationBody, ReadXdr, TransactionEnvelope};
    let l = sb.ledger.lock().expect("ledger lock");
    let mut out: Vec<(u32, Value)> = Vec::new();
    for t in l.transactions.values() {
        let Ok(TransactionEnvelope::Tx(v1)) =
            TransactionEnvelope::from_xdr_base64(&t.envelope_xdr, Limits::none())
        else {
            continue;
        };
        for op in v1.tx.operations.iter() {
            if let OperationBody::InvokeHostFunction(i) = &op.body
                && let HostFunction::InvokeContract(c) = &i.host_function
            {
                let contract =
                    crate::tw::scval_json(&stellar_xdr::ScVal::Address(c.contract_address.clone()));
                out.push((
                    t.ledger,
                    json!({
                        "hash": t.hash,
                        "source": t.source_account,
                        "contract": contract,
                        "function": String::from_utf8_lossy(c.function_name.0.as_slice()),
                        "successful": t.successful,
                    }),
                ));
            }
        }
    }
    out.sort_by_key(|(ledger, _)| *ledger);
    Json(Value::Array(out.into_iter().map(|(_, v)| v).collect())).into_response()
}

fn asset_fields(v: &mut Value, asset: &Option<CreditAsset>) {
    match asset {
        None => v["asset_type"] = json!("native"),
        Some(a) => {
            v["asset_type"] = json!(if a.code.len() <= 4 {
                "credit_alphanum4"
            } else {
                "credit_alphanum12"
            });
            v["asset_code"] = json!(a.code);
            v["asset_issuer"] = json!(a.issuer);
        }
    }
}

/// A payments record as Horizon renders it (three shapes).
pub(crate) fn payment_json(p: &PaymentRecord) -> Value {
    let mut v = json!({
        "id": p.id.to_string(),
        "paging_token": p.id.to_string(),
        "transaction_successful": p.successful,
        "source_account": p.source_account,
        "type": p.kind,
        "created_at": p.created_at,
        "transaction_hash": p.tx_hash,
    });
    match p.kind.as_str() {
        "create_account" => {
            v["type_i"] = json!(0);
            v["starting_balance"] = json!(amount(p.amount));
            v["funder"] = json!(p.from);
            v["account"] = json!(p.to);
        }
        "invoke_host_function" => {
            v["type_i"] = json!(24);
            v["function"] = json!("HostFunctionTypeHostFunctionTypeInvokeContract");
            v["parameters"] = json!([]);
            v["address"] = json!("");
            v["salt"] = json!("");
            v["asset_balance_changes"] = json!(p
                .balance_changes
                .iter()
                .map(|(a, from, to, amt)| {
                    let mut c = json!({ "type": "transfer", "from": from, "to": to, "amount": amount(*amt) });
                    asset_fields(&mut c, &Some(a.clone()));
                    c
                })
                .collect::<Vec<_>>());
        }
        _ => {
            v["type_i"] = json!(1);
            asset_fields(&mut v, &p.asset);
            v["from"] = json!(p.from);
            v["to"] = json!(p.to);
            v["amount"] = json!(amount(p.amount));
        }
    }
    v
}

#[derive(Deserialize, Default)]
pub(crate) struct PageQuery {
    cursor: Option<String>,
    order: Option<String>,
    limit: Option<u32>,
    include_failed: Option<bool>,
}

async fn account_payments(
    State(sb): State<Arc<Sandbox>>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    if parse_strkey(&id).is_none() {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Bad Request",
            "The request you sent was invalid in some way.",
            Some(
                json!({ "invalid_field": "account_id", "reason": "Account ID must start with `G` and contain 56 alphanum characters" }),
            ),
        );
    }
    payments(sb, Some(id), q, headers).await
}

async fn all_payments(
    State(sb): State<Arc<Sandbox>>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    payments(sb, None, q, headers).await
}

async fn payments(
    sb: Arc<Sandbox>,
    account: Option<String>,
    q: PageQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = faults(&sb).await {
        return r;
    }
    let include_failed = q.include_failed.unwrap_or(false);
    let matches = move |p: &PaymentRecord| {
        (include_failed || p.successful)
            && account
                .as_ref()
                .is_none_or(|a| p.participants.iter().any(|x| x == a))
    };
    let streaming = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    let latest = sb
        .ledger
        .lock()
        .expect("ledger lock")
        .payments
        .last()
        .map(|p| p.id)
        .unwrap_or(0);
    let cursor_raw = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(q.cursor.clone());
    let cursor = match cursor_raw.as_deref() {
        None | Some("") => None,
        Some("now") => Some(latest),
        Some(c) => match c.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "Bad Request",
                    "The request you sent was invalid in some way.",
                    Some(json!({ "invalid_field": "cursor", "reason": "unable to parse cursor" })),
                );
            }
        },
    };
    let limit = q.limit.unwrap_or(10);
    if !(1..=200).contains(&limit) {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Bad Request",
            "The request you sent was invalid in some way.",
            Some(
                json!({ "invalid_field": "limit", "reason": "The limit must be between 1 and 200" }),
            ),
        );
    }
    let desc = q.order.as_deref() == Some("desc");
    if !streaming {
        let l = sb.ledger.lock().expect("ledger lock");
        let mut records: Vec<&PaymentRecord> = l.payments.iter().filter(|p| matches(p)).collect();
        if desc {
            records.reverse();
            if let Some(c) = cursor {
                records.retain(|p| p.id < c);
            }
        } else if let Some(c) = cursor {
            records.retain(|p| p.id > c);
        }
        records.truncate(limit as usize);
        let next = records
            .last()
            .map(|p| p.id.to_string())
            .unwrap_or_else(|| cursor.unwrap_or(0).to_string());
        let order = if desc { "desc" } else { "asc" };
        return Json(json!({
            "_links": {
                "self": { "href": format!("?cursor={}&limit={limit}&order={order}", cursor_raw.unwrap_or_default()) },
                "next": { "href": format!("?cursor={next}&limit={limit}&order={order}") },
                "prev": { "href": format!("?cursor={}&limit={limit}&order={}", records.first().map(|p| p.id).unwrap_or(0), if desc { "asc" } else { "desc" }) },
            },
            "_embedded": { "records": records.iter().map(|p| payment_json(p)).collect::<Vec<_>>() },
        }))
        .into_response();
    }
    // SSE: open, replay after the cursor, then live; ids are paging tokens.
    let mut live = sb.payments_tx.subscribe();
    let mut drop_rx = sb.drop_streams.subscribe();
    let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(256);
    let sb2 = sb.clone();
    tokio::spawn(async move {
        let _ = tx
            .send(Ok(SseEvent::default()
                .retry(Duration::from_millis(1000))
                .event("open")
                .data("\"hello\"")))
            .await;
        let mut last = cursor.unwrap_or(0);
        let backlog: Vec<PaymentRecord> = {
            let l = sb2.ledger.lock().expect("ledger lock");
            l.payments
                .iter()
                .filter(|p| p.id > last && matches(p))
                .cloned()
                .collect()
        };
        for p in backlog {
            last = last.max(p.id);
            if tx
                .send(Ok(SseEvent::default()
                    .id(p.id.to_string())
                    .data(payment_json(&p).to_string())))
                .await
                .is_err()
            {
                return;
            }
        }
        loop {
            tokio::select! {
                r = live.recv() => match r {
                    Ok(p) => {
                        if p.id <= last || !matches(&p) { continue; }
                        last = p.id;
                        if tx.send(Ok(SseEvent::default().id(p.id.to_string()).data(payment_json(&p).to_string()))).await.is_err() { return; }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let backlog: Vec<PaymentRecord> = {
                            let l = sb2.ledger.lock().expect("ledger lock");
                            l.payments.iter().filter(|p| p.id > last && matches(p)).cloned().collect()
                        };
                        for p in backlog {
                            last = p.id;
                            if tx.send(Ok(SseEvent::default().id(p.id.to_string()).data(payment_json(&p).to_string()))).await.is_err() { return; }
                        }
                    }
                    Err(_) => return,
                },
                _ = drop_rx.recv() => return,
            }
        }
    });
    Sse::new(ReceiverStream::new(rx)).into_response()
}

#[derive(Deserialize)]
struct FriendbotQuery {
    addr: Option<String>,
}

/// Friendbot: creates the account with 10,000 XLM from the root account.
async fn friendbot(State(sb): State<Arc<Sandbox>>, Query(q): Query<FriendbotQuery>) -> Response {
    let Some(addr) = q.addr.filter(|a| parse_strkey(a).is_some()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Bad Request",
            "The request you sent was invalid in some way.",
            Some(
                json!({ "invalid_field": "addr", "reason": "base32 decode failed: illegal base32 data" }),
            ),
        );
    };
    match sb.fund(&addr, 10_000 * crate::ledger::STROOPS, false) {
        Ok(t) => Json(tx_json(&t)).into_response(),
        Err(r) => rejection_response(&r),
    }
}

async fn info(State(sb): State<Arc<Sandbox>>) -> Response {
    let l = sb.ledger.lock().expect("ledger lock");
    Json(json!({
        "networkPassphrase": l.passphrase,
        "usdc": { "code": sb.usdc.code, "issuer": sb.usdc.issuer },
        "rootAccount": sb.root_id(),
        "latestLedger": l.ledger_seq,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FundBody {
    address: String,
    amount: String,
    #[serde(default)]
    asset: Option<String>,
}

/// Faucet: pays `amount` of USDC (from the issuer) or XLM (from the root account,
/// creating the account when missing) as a real transaction, so it shows in payment
/// streams like any deposit.
async fn fund(State(sb): State<Arc<Sandbox>>, Json(b): Json<FundBody>) -> Response {
    let Some(units) = parse_amount(&b.amount).filter(|u| *u > 0) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Bad Request",
            "amount must be a positive decimal with at most 7 decimals",
            Some(json!({ "invalid_field": "amount" })),
        );
    };
    if parse_strkey(&b.address).is_none() {
        return problem(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Bad Request",
            "address must be a G… account id",
            Some(json!({ "invalid_field": "address" })),
        );
    }
    let usdc = match b.asset.as_deref().unwrap_or("USDC") {
        "USDC" => true,
        "XLM" | "native" => false,
        _ => {
            return problem(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad Request",
                "asset must be USDC or XLM",
                Some(json!({ "invalid_field": "asset" })),
            );
        }
    };
    match sb.fund(&b.address, units, usdc) {
        Ok(t) => Json(tx_json(&t)).into_response(),
        Err(r) => rejection_response(&r),
    }
}

/// `POST /_sandbox/accounts` → 201 `{"address": "G…", "trustlines": ["USDC"]}`: a new
/// account outside OfferHub (100 XLM, a USDC trustline), e.g. as the destination of a
/// withdrawal. Its key is not kept.
async fn external_account(State(sb): State<Arc<Sandbox>>) -> Response {
    match sb.external_account(100 * 10_000_000) {
        Ok(address) => (
            StatusCode::CREATED,
            Json(json!({ "address": address, "trustlines": ["USDC"] })),
        )
            .into_response(),
        Err(r) => rejection_response(&r),
    }
}

/// Fault settings; counters are consumed one request at a time.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Faults {
    /// Added to every Horizon request.
    #[serde(default)]
    pub latency_ms: u64,
    /// The next N requests answer 503.
    #[serde(default)]
    pub fail_5xx: u32,
    /// The next N requests answer 429.
    #[serde(default)]
    pub fail_429: u32,
    /// The next N submissions are applied, then answered with 504.
    #[serde(default)]
    pub timeout_after_apply: u32,
    /// Close every open stream now.
    #[serde(default)]
    pub drop_streams: bool,
    /// The next Trustless Work builder answer carries a tampered transaction:
    /// `"amount"` (integer arguments doubled) or `"destination"` (account arguments
    /// replaced by another account) — to prove that callers refuse to sign it.
    #[serde(default)]
    pub tamper_xdr: Option<String>,
}

async fn set_faults(State(sb): State<Arc<Sandbox>>, Json(f): Json<Faults>) -> Response {
    if f.drop_streams {
        let _ = sb.drop_streams.send(());
    }
    let mut current = sb.faults.lock().expect("faults lock");
    *current = Faults {
        drop_streams: false,
        ..f
    };
    Json(json!({ "latencyMs": current.latency_ms, "fail5xx": current.fail_5xx, "fail429": current.fail_429, "timeoutAfterApply": current.timeout_after_apply })).into_response()
}

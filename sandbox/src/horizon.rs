//! The Horizon subset over HTTP (docs/PROVIDERS.md, Stellar and Horizon): root, accounts,
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
use sha2::Digest;
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
        .route("/accounts/{id}/transactions", get(account_transactions))
        .route("/accounts/{id}/operations", get(account_operations))
        .route("/accounts/{id}/effects", get(account_effects))
        .route("/fee_stats", get(fee_stats))
        .route("/ledgers", get(ledgers))
        .route("/ledgers/{seq}", get(ledger))
        .route("/operations", get(operations))
        .route("/effects", get(effects))
        .route("/assets", get(assets))
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

/// `GET /accounts/{id}` (Horizon's account record, with its `_links`; the JS SDK turns
/// each link into a method and moves a clashing field aside, so `data` is read as
/// `data_attr` — e.g. for the SEP-29 memo-required check — only when `_links.data` is
/// there, as on the real Horizon).
async fn account(
    State(sb): State<Arc<Sandbox>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = faults(&sb).await {
        return r;
    }
    let l = sb.ledger.lock().expect("ledger lock");
    match l.accounts.get(&id) {
        Some(a) => {
            let mut v = account_json(a);
            let base = format!("{}/accounts/{id}", base_url(&headers));
            let t = |p: &str| json!({ "href": format!("{base}/{p}{{?cursor,limit,order}}"), "templated": true });
            v["_links"] = json!({
                "self": { "href": base },
                "transactions": t("transactions"),
                "operations": t("operations"),
                "payments": t("payments"),
                "effects": t("effects"),
                "offers": t("offers"),
                "trades": t("trades"),
                "data": { "href": format!("{base}/data/{{key}}"), "templated": true },
            });
            Json(v).into_response()
        }
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
        "path_payment_strict_receive" | "path_payment_strict_send" => {
            let receive = p.kind == "path_payment_strict_receive";
            v["type_i"] = json!(if receive { 2 } else { 13 });
            asset_fields(&mut v, &p.asset);
            v["from"] = json!(p.from);
            v["to"] = json!(p.to);
            v["amount"] = json!(amount(p.amount));
            v["path"] = json!([]);
            v["source_amount"] = json!(amount(p.source_amount));
            if receive {
                v["source_max"] = json!(amount(p.bound));
            } else {
                v["destination_min"] = json!(amount(p.bound));
            }
            let mut src = json!({});
            asset_fields(&mut src, &p.asset);
            for k in ["asset_type", "asset_code", "asset_issuer"] {
                if let Some(x) = src.get(k) {
                    v[format!("source_{k}")] = x.clone();
                }
            }
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

#[derive(Deserialize, Default, Clone)]
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
    let path = format!("/accounts/{id}/payments");
    payments(sb, Some(id), q, headers, path).await
}

async fn all_payments(
    State(sb): State<Arc<Sandbox>>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    payments(sb, None, q, headers, "/payments".to_string()).await
}

async fn payments(
    sb: Arc<Sandbox>,
    account: Option<String>,
    q: PageQuery,
    headers: HeaderMap,
    path: String,
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
        let base = format!("{}{}", base_url(&headers), path);
        return Json(json!({
            "_links": {
                "self": { "href": format!("{base}?cursor={}&limit={limit}&order={order}", cursor_raw.unwrap_or_default()) },
                "next": { "href": format!("{base}?cursor={next}&limit={limit}&order={order}") },
                "prev": { "href": format!("{base}?cursor={}&limit={limit}&order={}", records.first().map(|p| p.id).unwrap_or(0), if desc { "asc" } else { "desc" }) },
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
    /// The next Trustless Work builder answer (for `function`, when given) calls the
    /// contract with the argument at `path` altered — any argument, nested or not:
    /// `{"path": "escrow.milestones[0].amount", "function": "fund_escrow"}`
    /// (see [`crate::tamper`]).
    #[serde(default)]
    pub tamper_arg: Option<crate::tamper::TamperArg>,
    /// The next N Trustless Work builder answers carry the source account's current
    /// (already used) sequence number, as when another transaction of that account
    /// lands between build and submission: the submission fails `tx_bad_seq`.
    #[serde(default)]
    pub stale_sequence: u32,
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

// ---------- history routes (issue #19) ----------

/// `http://{Host}`: Horizon's `_links.href` values are absolute URLs.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// A Horizon collection page (`_links.self/next/prev` absolute, `_embedded.records`)
/// over records in ascending paging order: `(sort key, paging_token, record)`.
/// Cursors are paging tokens (`"now"` = the end); `order` asc|desc; `limit` 1..=200.
fn page(
    items: Vec<(i64, String, Value)>,
    q: &PageQuery,
    base: &str,
    path: &str,
    cursor_key: fn(&str) -> Option<i64>,
) -> Response {
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
    let desc = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "Bad Request",
                "The request you sent was invalid in some way.",
                Some(json!({ "invalid_field": "order", "reason": "order: invalid value" })),
            );
        }
    };
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some("now") => Some(i64::MAX),
        Some(c) => match cursor_key(c) {
            Some(k) => Some(k),
            None => {
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
    let mut items = items;
    if desc {
        items.reverse();
        if let Some(c) = cursor {
            items.retain(|(k, _, _)| *k < c);
        }
    } else if let Some(c) = cursor {
        items.retain(|(k, _, _)| *k > c);
    }
    items.truncate(limit as usize);
    let order = if desc { "desc" } else { "asc" };
    let first = items.first().map(|(_, t, _)| t.clone()).unwrap_or_default();
    let last = items
        .last()
        .map(|(_, t, _)| t.clone())
        .or(q.cursor.clone())
        .unwrap_or_default();
    let link = |cursor: &str, order: &str| json!({ "href": format!("{base}{path}?cursor={cursor}&limit={limit}&order={order}") });
    Json(json!({
        "_links": {
            "self": link(q.cursor.as_deref().unwrap_or(""), order),
            "next": link(&last, order),
            "prev": link(&first, if desc { "asc" } else { "desc" }),
        },
        "_embedded": { "records": items.into_iter().map(|(_, _, v)| v).collect::<Vec<_>>() },
    }))
    .into_response()
}

fn int_cursor(c: &str) -> Option<i64> {
    c.parse().ok()
}

/// Effects' paging tokens are `{operation id}-{index}`.
fn effect_cursor(c: &str) -> Option<i64> {
    match c.split_once('-') {
        Some((op, n)) => Some(op.parse::<i64>().ok()?.checked_mul(64)? + n.parse::<i64>().ok()?),
        None => c.parse::<i64>().ok()?.checked_mul(64),
    }
}

fn bad_account(id: &str) -> Option<Response> {
    parse_strkey(id).is_none().then(|| {
        problem(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Bad Request",
            "The request you sent was invalid in some way.",
            Some(json!({ "invalid_field": "account_id", "reason": "Account ID must start with `G` and contain 56 alphanum characters" })),
        )
    })
}

/// `GET /fee_stats` (Horizon "Retrieve Fee Stats"): the sandbox's ledgers are never
/// full, so every percentile is the 100-stroop base fee.
async fn fee_stats(State(sb): State<Arc<Sandbox>>) -> Response {
    if let Some(r) = faults(&sb).await {
        return r;
    }
    let last = sb.ledger.lock().expect("ledger lock").ledger_seq;
    let dist = json!({
        "max": "100", "min": "100", "mode": "100",
        "p10": "100", "p20": "100", "p30": "100", "p40": "100", "p50": "100",
        "p60": "100", "p70": "100", "p80": "100", "p90": "100", "p95": "100", "p99": "100",
    });
    Json(json!({
        "last_ledger": last.to_string(),
        "last_ledger_base_fee": "100",
        "ledger_capacity_usage": "0.01",
        "fee_charged": dist,
        "max_fee": dist,
    }))
    .into_response()
}

fn ledger_hash(seq: u32) -> String {
    hex::encode(sha2::Sha256::digest(
        format!("offerhub-sandbox-ledger:{seq}").as_bytes(),
    ))
}

/// A ledger record (Horizon "Ledger" resource); every sandbox ledger closes with one
/// transaction (or none, for the genesis ledgers).
fn ledger_json(seq: u32, tx: Option<&TxRecord>, base: &str) -> Value {
    let (ok, failed, ops, closed) = match tx {
        Some(t) => (
            u32::from(t.successful),
            u32::from(!t.successful),
            t.operation_count,
            t.created_at.clone(),
        ),
        None => (0, 0, 0, "1970-01-01T00:00:00Z".to_string()),
    };
    let token = (i64::from(seq) << 32).to_string();
    json!({
        "_links": {
            "self": { "href": format!("{base}/ledgers/{seq}") },
            "transactions": { "href": format!("{base}/ledgers/{seq}/transactions{{?cursor,limit,order}}"), "templated": true },
            "operations": { "href": format!("{base}/ledgers/{seq}/operations{{?cursor,limit,order}}"), "templated": true },
            "payments": { "href": format!("{base}/ledgers/{seq}/payments{{?cursor,limit,order}}"), "templated": true },
            "effects": { "href": format!("{base}/ledgers/{seq}/effects{{?cursor,limit,order}}"), "templated": true },
        },
        "id": ledger_hash(seq),
        "paging_token": token,
        "hash": ledger_hash(seq),
        "prev_hash": if seq > 1 { ledger_hash(seq - 1) } else { String::new() },
        "sequence": seq,
        "successful_transaction_count": ok,
        "failed_transaction_count": failed,
        "operation_count": ops,
        "tx_set_operation_count": ops,
        "closed_at": closed,
        "total_coins": "100000000000.0000000",
        "fee_pool": "0.0000000",
        "base_fee_in_stroops": 100,
        "base_reserve_in_stroops": crate::ledger::BASE_RESERVE,
        "max_tx_set_size": 1000,
        "protocol_version": 23,
        "header_xdr": "",
    })
}

/// `GET /ledgers` (Horizon "List All Ledgers").
async fn ledgers(
    State(sb): State<Arc<Sandbox>>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = faults(&sb).await {
        return r;
    }
    let base = base_url(&headers);
    let l = sb.ledger.lock().expect("ledger lock");
    let by_seq: std::collections::BTreeMap<u32, &TxRecord> =
        l.transactions.values().map(|t| (t.ledger, t)).collect();
    let items = (1..=l.ledger_seq)
        .map(|seq| {
            (
                i64::from(seq) << 32,
                (i64::from(seq) << 32).to_string(),
                ledger_json(seq, by_seq.get(&seq).copied(), &base),
            )
        })
        .collect();
    page(items, &q, &base, "/ledgers", int_cursor)
}

/// `GET /ledgers/{sequence}` (Horizon "Retrieve a Ledger").
async fn ledger(
    State(sb): State<Arc<Sandbox>>,
    Path(seq): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = faults(&sb).await {
        return r;
    }
    let l = sb.ledger.lock().expect("ledger lock");
    let Some(seq) = seq
        .parse::<u32>()
        .ok()
        .filter(|s| (1..=l.ledger_seq).contains(s))
    else {
        return not_found();
    };
    let tx = l.transactions.values().find(|t| t.ledger == seq);
    Json(ledger_json(seq, tx, &base_url(&headers))).into_response()
}

/// Every operation of the ledger's transactions, in order, as Horizon "Operation"
/// records: payments-like ones as in the payments endpoints, others with their
/// type-specific fields (`change_trust`, sponsorship).
fn operations_of(l: &crate::ledger::Ledger, account: Option<&str>) -> Vec<(i64, String, Value)> {
    use stellar_xdr::{Limits, OperationBody, ReadXdr, TransactionEnvelope};
    let mut txs: Vec<&TxRecord> = l.transactions.values().collect();
    txs.sort_by_key(|t| t.ledger);
    let mut out = Vec::new();
    for t in txs {
        let Ok(TransactionEnvelope::Tx(v1)) =
            TransactionEnvelope::from_xdr_base64(&t.envelope_xdr, Limits::none())
        else {
            continue;
        };
        for (i, op) in v1.tx.operations.iter().enumerate() {
            let toid = (i64::from(t.ledger) << 32) | (1 << 12) | (i as i64 + 1);
            let source = op
                .source_account
                .as_ref()
                .map(|m| match m {
                    stellar_xdr::MuxedAccount::Ed25519(k) => crate::ledger::strkey(&k.0),
                    stellar_xdr::MuxedAccount::MuxedEd25519(m) => {
                        crate::ledger::strkey(&m.ed25519.0)
                    }
                })
                .unwrap_or_else(|| t.source_account.clone());
            let recorded = l
                .payments
                .binary_search_by_key(&toid, |p| p.id)
                .ok()
                .and_then(|ix| l.payments.get(ix));
            let mut v = match recorded {
                Some(p) => payment_json(p),
                None => {
                    let (kind, type_i, extra) = match &op.body {
                        OperationBody::ChangeTrust(ct) => {
                            let mut e = json!({ "limit": amount(ct.limit), "trustor": source });
                            if let stellar_xdr::ChangeTrustAsset::CreditAlphanum4(a) = &ct.line {
                                let issuer = match &a.issuer.0 {
                                    stellar_xdr::PublicKey::PublicKeyTypeEd25519(k) => {
                                        crate::ledger::strkey(&k.0)
                                    }
                                };
                                e["asset_type"] = json!("credit_alphanum4");
                                e["asset_code"] = json!(
                                    String::from_utf8_lossy(&a.asset_code.0).trim_end_matches('\0')
                                );
                                e["trustee"] = json!(issuer);
                                e["asset_issuer"] = json!(issuer);
                            }
                            ("change_trust", 6, e)
                        }
                        OperationBody::BeginSponsoringFutureReserves(b) => (
                            "begin_sponsoring_future_reserves",
                            16,
                            json!({ "sponsored_id": match &b.sponsored_id.0 {
                                stellar_xdr::PublicKey::PublicKeyTypeEd25519(k) => crate::ledger::strkey(&k.0),
                            } }),
                        ),
                        OperationBody::EndSponsoringFutureReserves => {
                            ("end_sponsoring_future_reserves", 17, json!({}))
                        }
                        other => (other.name(), other.discriminant() as i32, json!({})),
                    };
                    let mut v = json!({
                        "id": toid.to_string(),
                        "paging_token": toid.to_string(),
                        "transaction_successful": t.successful,
                        "source_account": source,
                        "type": to_snake(kind),
                        "type_i": type_i,
                        "created_at": t.created_at,
                        "transaction_hash": t.hash,
                    });
                    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                        for (k, x) in e {
                            o.insert(k.clone(), x.clone());
                        }
                    }
                    v
                }
            };
            let involved = |a: &str| {
                source == a
                    || t.source_account == a
                    || recorded.is_some_and(|p| p.participants.iter().any(|x| x == a))
                    || v.get("sponsored_id").and_then(Value::as_str) == Some(a)
            };
            if account.is_some_and(|a| !involved(a)) {
                continue;
            }
            v["transaction_successful"] = json!(t.successful);
            out.push((toid, toid.to_string(), v));
        }
    }
    out
}

fn to_snake(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn failed_filter(items: Vec<(i64, String, Value)>, q: &PageQuery) -> Vec<(i64, String, Value)> {
    if q.include_failed.unwrap_or(false) {
        items
    } else {
        items
            .into_iter()
            .filter(|(_, _, v)| v["transaction_successful"] != false)
            .collect()
    }
}

/// `GET /operations` (Horizon "List All Operations").
async fn operations(
    State(sb): State<Arc<Sandbox>>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = faults(&sb).await {
        return r;
    }
    let items = {
        let l = sb.ledger.lock().expect("ledger lock");
        failed_filter(operations_of(&l, None), &q)
    };
    page(items, &q, &base_url(&headers), "/operations", int_cursor)
}

/// `GET /accounts/{id}/operations` (Horizon "Retrieve an Account's Operations").
async fn account_operations(
    State(sb): State<Arc<Sandbox>>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = bad_account(&id) {
        return r;
    }
    if let Some(r) = faults(&sb).await {
        return r;
    }
    let items = {
        let l = sb.ledger.lock().expect("ledger lock");
        failed_filter(operations_of(&l, Some(&id)), &q)
    };
    page(
        items,
        &q,
        &base_url(&headers),
        &format!("/accounts/{id}/operations"),
        int_cursor,
    )
}

/// `GET /accounts/{id}/transactions` (Horizon "Retrieve an Account's Transactions"):
/// transactions the account is the source of or takes part in.
async fn account_transactions(
    State(sb): State<Arc<Sandbox>>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = bad_account(&id) {
        return r;
    }
    if let Some(r) = faults(&sb).await {
        return r;
    }
    let items = {
        let l = sb.ledger.lock().expect("ledger lock");
        let ops = operations_of(&l, Some(&id));
        let hashes: std::collections::BTreeSet<&str> = ops
            .iter()
            .filter_map(|(_, _, v)| v["transaction_hash"].as_str())
            .collect();
        let mut txs: Vec<&TxRecord> = l
            .transactions
            .values()
            .filter(|t| t.source_account == id || hashes.contains(t.hash.as_str()))
            .filter(|t| t.successful || q.include_failed.unwrap_or(false))
            .collect();
        txs.sort_by_key(|t| t.ledger);
        txs.into_iter()
            .map(|t| {
                let k: i64 = t.paging_token.parse().unwrap_or(0);
                (k, t.paging_token.clone(), tx_json(t))
            })
            .collect()
    };
    page(
        items,
        &q,
        &base_url(&headers),
        &format!("/accounts/{id}/transactions"),
        int_cursor,
    )
}

/// Effects derived from the payment records (Horizon "Effect" resources):
/// `account_created`, `account_debited`, `account_credited`.
fn effects_of(l: &crate::ledger::Ledger, account: Option<&str>) -> Vec<(i64, String, Value)> {
    let mut out = Vec::new();
    for p in l.payments.iter().filter(|p| p.successful) {
        let mut list: Vec<(String, &str, Value)> = Vec::new();
        match p.kind.as_str() {
            "create_account" => {
                list.push((
                    p.to.clone(),
                    "account_created",
                    json!({ "starting_balance": amount(p.amount) }),
                ));
                list.push((
                    p.from.clone(),
                    "account_debited",
                    json!({ "asset_type": "native", "amount": amount(p.amount) }),
                ));
            }
            "invoke_host_function" => {
                for (a, from, to, amt) in &p.balance_changes {
                    let mut x = json!({ "amount": amount(*amt) });
                    asset_fields(&mut x, &Some(a.clone()));
                    if from.starts_with('G') {
                        list.push((from.clone(), "account_debited", x.clone()));
                    }
                    if to.starts_with('G') {
                        list.push((to.clone(), "account_credited", x));
                    }
                }
            }
            _ => {
                let mut x = json!({ "amount": amount(p.amount) });
                asset_fields(&mut x, &p.asset);
                list.push((p.to.clone(), "account_credited", x.clone()));
                list.push((p.from.clone(), "account_debited", x));
            }
        }
        for (n, (acct, kind, extra)) in list.into_iter().enumerate() {
            if account.is_some_and(|a| a != acct) {
                continue;
            }
            let n = n as i64 + 1;
            let type_i = match kind {
                "account_created" => 0,
                "account_credited" => 2,
                _ => 3,
            };
            let mut v = json!({
                "id": format!("{:019}-{:010}", p.id, n),
                "paging_token": format!("{}-{n}", p.id),
                "account": acct,
                "type": kind,
                "type_i": type_i,
                "created_at": p.created_at,
            });
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                for (k, x) in e {
                    o.insert(k.clone(), x.clone());
                }
            }
            out.push((p.id * 64 + n, format!("{}-{n}", p.id), v));
        }
    }
    out
}

/// `GET /effects` (Horizon "List All Effects"; balance effects only).
async fn effects(
    State(sb): State<Arc<Sandbox>>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = faults(&sb).await {
        return r;
    }
    let items = effects_of(&sb.ledger.lock().expect("ledger lock"), None);
    page(items, &q, &base_url(&headers), "/effects", effect_cursor)
}

/// `GET /accounts/{id}/effects` (Horizon "Retrieve an Account's Effects").
async fn account_effects(
    State(sb): State<Arc<Sandbox>>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = bad_account(&id) {
        return r;
    }
    if let Some(r) = faults(&sb).await {
        return r;
    }
    let items = effects_of(&sb.ledger.lock().expect("ledger lock"), Some(&id));
    page(
        items,
        &q,
        &base_url(&headers),
        &format!("/accounts/{id}/effects"),
        effect_cursor,
    )
}

#[derive(Deserialize, Default)]
struct AssetQuery {
    asset_code: Option<String>,
    asset_issuer: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

/// `GET /assets` (Horizon "List All Assets"): every credit asset with a trustline,
/// with its holders and amounts.
async fn assets(
    State(sb): State<Arc<Sandbox>>,
    Query(q): Query<AssetQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = faults(&sb).await {
        return r;
    }
    let base = base_url(&headers);
    let mut totals: std::collections::BTreeMap<(String, String), (u64, i64)> = Default::default();
    {
        let l = sb.ledger.lock().expect("ledger lock");
        for a in l.accounts.values() {
            for (asset, line) in a.trustlines.values() {
                let e = totals
                    .entry((asset.code.clone(), asset.issuer.clone()))
                    .or_default();
                e.0 += 1;
                e.1 += line.balance;
            }
        }
    }
    let items: Vec<(i64, String, Value)> = totals
        .into_iter()
        .filter(|((code, issuer), _)| {
            q.asset_code.as_ref().is_none_or(|c| c == code)
                && q.asset_issuer.as_ref().is_none_or(|i| i == issuer)
        })
        .enumerate()
        .map(|(i, ((code, issuer), (n, total)))| {
            let token = format!("{code}_{issuer}_credit_alphanum4");
            (
                i as i64 + 1,
                token.clone(),
                json!({
                    "_links": { "toml": { "href": "" } },
                    "asset_type": if code.len() <= 4 { "credit_alphanum4" } else { "credit_alphanum12" },
                    "asset_code": code,
                    "asset_issuer": issuer,
                    "paging_token": token,
                    "num_accounts": n,
                    "num_claimable_balances": 0,
                    "num_liquidity_pools": 0,
                    "num_contracts": 0,
                    "amount": amount(total),
                    "accounts": { "authorized": n, "authorized_to_maintain_liabilities": 0, "unauthorized": 0 },
                    "balances": { "authorized": amount(total), "authorized_to_maintain_liabilities": "0.0000000", "unauthorized": "0.0000000" },
                    "claimable_balances_amount": "0.0000000",
                    "liquidity_pools_amount": "0.0000000",
                    "contracts_amount": "0.0000000",
                    "flags": { "auth_required": false, "auth_revocable": false, "auth_immutable": false, "auth_clawback_enabled": false },
                }),
            )
        })
        .collect();
    // Asset cursors are paging tokens, not numbers: page from the position.
    let mut pq = PageQuery {
        cursor: None,
        order: q.page.order.clone(),
        limit: q.page.limit,
        include_failed: None,
    };
    let skip_to = q.page.cursor.as_ref().and_then(|c| {
        items
            .iter()
            .find(|(_, t, _)| t == c)
            .map(|(k, _, _)| k.to_string())
    });
    pq.cursor = skip_to;
    page(items, &pq, &base, "/assets", int_cursor)
}

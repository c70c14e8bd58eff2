//! Request middleware of `/api/v1`:
//!
//! - [`authenticate`]: when an `Authorization` header is present, authenticates it once
//!   (and applies the per-key rate limit), leaving the outcome in the request
//!   extensions for the [`crate::api::Auth`] extractor;
//! - [`idempotency`]: for a POST with an `Idempotency-Key` header from an authenticated
//!   caller, claims the key, replays a stored response (header `Idempotent-Replayed:
//!   true`), or runs the handler and stores its response.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use offerhub::error::{Error, ErrorCode};
use offerhub::services::idempotency::{self, Claim, ClaimRequest};
use offerhub::services::keys::{self, Principal};
use serde_json::json;

use crate::api::ApiError;
use crate::state::AppState;

/// The authentication outcome of a request that carried an `Authorization` header.
#[derive(Clone)]
pub struct Authenticated(pub Arc<Result<Principal, (Error, Option<u64>)>>);

/// The idempotency record claimed for this request.
#[derive(Clone)]
pub struct IdempotencyRecord(pub String);

/// Response header marking a replayed response.
pub const REPLAYED: &str = "idempotent-replayed";

/// Refuses a request whose path or query string carries a NUL character (`%00`): no
/// identifier or filter contains one, and PostgreSQL cannot store one in text. 400
/// `VALIDATION_ERROR` naming `path` or the query parameter.
pub async fn refuse_nul(req: Request, next: Next) -> Response {
    let path_has_nul = percent_decodes_to_nul(req.uri().path());
    if path_has_nul {
        return ApiError::from(Error::validation(
            "path",
            "must not contain NUL characters (%00)",
        ))
        .into_response();
    }
    if let Some(q) = req.uri().query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            if k.contains('\0') || v.contains('\0') {
                return ApiError::from(Error::validation(
                    &k.replace('\0', ""),
                    "must not contain NUL characters (%00)",
                ))
                .into_response();
            }
        }
    }
    next.run(req).await
}

fn percent_decodes_to_nul(s: &str) -> bool {
    s.as_bytes().windows(3).any(|w| w == b"%00") || s.contains('\0')
}

pub async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    if let Some(h) = req.headers().get(header::AUTHORIZATION) {
        let outcome = match h
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            None => Err((
                Error::new(
                    ErrorCode::Unauthorized,
                    "Malformed Authorization header: expected Bearer <API key>",
                ),
                None,
            )),
            Some(token) => {
                match keys::authenticate(&state.store, state.config.master_key.as_ref(), token)
                    .await
                {
                    Err(e) => Err((e, None)),
                    Ok(principal) => match state.rate_limiter.check(principal.id()).await {
                        Ok(()) => Ok(principal),
                        Err(wait) => Err((
                            Error::new(
                                ErrorCode::RateLimited,
                                "Rate limit exceeded for this API key",
                            )
                            .with_details(json!({
                                "limitPerMinute": state.config.rate_limit_per_minute,
                                "retryAfter": wait,
                            })),
                            Some(wait),
                        )),
                    },
                }
            }
        };
        if matches!(&outcome, Err((_, Some(_)))) {
            offerhub::metrics::rate_limited();
        }
        req.extensions_mut()
            .insert(Authenticated(Arc::new(outcome)));
    }
    next.run(req).await
}

pub async fn idempotency(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(key) = req.headers().get("idempotency-key").cloned() else {
        return next.run(req).await;
    };
    let principal = match req.extensions().get::<Authenticated>().map(|a| a.0.clone()) {
        Some(outcome) => match outcome.as_ref() {
            Ok(p) => p.clone(),
            Err(_) => return next.run(req).await,
        },
        // Unauthenticated: the route's Auth extractor answers 401 (or it is public).
        None => return next.run(req).await,
    };
    let Ok(key) = key.to_str().map_err(|_| ()).and_then(|k| {
        idempotency::validate_key(k)
            .map(|_| k.to_string())
            .map_err(|_| ())
    }) else {
        return ApiError::from(Error::validation(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
        ))
        .into_response();
    };
    let (mut parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, state.config.body_limit_bytes).await else {
        return ApiError::from(Error::new(
            ErrorCode::PayloadTooLarge,
            "Request body is larger than the configured limit",
        ))
        .into_response();
    };
    let body_hash = idempotency::request_hash(&bytes);
    let method = parts.method.to_string();
    let path = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map(|u| u.0.path().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    let claim = idempotency::claim(
        &state.store,
        &ClaimRequest {
            api_key_id: principal.id(),
            method: &method,
            path: &path,
            key: &key,
            body_hash: &body_hash,
        },
        state.config.idempotency_ttl_hours,
        Duration::from_secs(30),
    )
    .await;
    let record = match claim {
        Err(e) => {
            match e.code {
                ErrorCode::IdempotencyConflict => offerhub::metrics::idempotency("conflict"),
                ErrorCode::IdempotencyKeyInProgress => {
                    offerhub::metrics::idempotency("in_progress")
                }
                _ => {}
            }
            return ApiError::from(e).into_response();
        }
        Ok(Claim::Replay { status, body }) => {
            offerhub::metrics::idempotency("replayed");
            let mut resp = Response::new(Body::from(body));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp.headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            return resp;
        }
        Ok(Claim::Proceed { record }) => record,
    };
    parts.extensions.insert(IdempotencyRecord(record.clone()));
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (resp_parts, resp_body) = resp.into_parts();
    let resp_bytes = match to_bytes(resp_body, 16 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => {
            let _ = idempotency::finish(&state.store, &record, 500, "").await;
            return ApiError::from(Error::internal(format!("response body: {e}"))).into_response();
        }
    };
    let text = String::from_utf8_lossy(&resp_bytes).into_owned();
    if let Err(e) =
        idempotency::finish(&state.store, &record, resp_parts.status.as_u16(), &text).await
    {
        tracing::error!(error = %e, "storing the idempotent response failed");
    }
    Response::from_parts(resp_parts, Body::from(resp_bytes))
}

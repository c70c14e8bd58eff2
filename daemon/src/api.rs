//! HTTP conventions shared by every route (docs/ARCHITECTURE.md, API conventions):
//!
//! - success: `{"data": …, "meta": {"requestId", "timestamp"}}`, lists add
//!   `meta.pagination {hasMore, nextCursor}`;
//! - errors: `{"error": {"code", "message", "statusCode", "details"?}}`;
//! - [`Auth`]: the one extractor every protected route uses: it takes the outcome of
//!   [`crate::middleware::authenticate`] (bearer key, per-key rate limit) and enforces
//!   the route's scope;
//! - [`ApiJson`] / [`ApiQuery`]: bodies and query strings whose errors are 400
//!   `VALIDATION_ERROR` naming the field.

use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use offerhub::context::Context;
use offerhub::error::{Error, ErrorCode};
use offerhub::pagination::Page;
use offerhub::services::keys::{Principal, Scope};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::dto::Body;
use crate::middleware::{Authenticated, IdempotencyRecord};
use crate::state::AppState;

/// The request id header, accepted from the caller or generated.
pub const REQUEST_ID: &str = "x-request-id";

/// An [`Error`] on its way out as an HTTP response.
#[derive(Debug)]
pub struct ApiError {
    pub error: Error,
    /// Seconds for a `Retry-After` header (rate limiting).
    pub retry_after: Option<u64>,
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError {
            error,
            retry_after: None,
        }
    }
}

/// Renders the error envelope for `e`.
pub fn error_body(e: &Error) -> Value {
    let mut body = json!({
        "code": e.code.as_str(),
        "message": e.message,
        "statusCode": e.http_status(),
    });
    if let Some(d) = &e.details {
        body["details"] = d.clone();
    }
    json!({ "error": body })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.error.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, axum::Json(error_body(&self.error))).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

pub type ApiResult<T = Response> = Result<T, ApiError>;

/// The request id set by the request-id middleware.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn meta(request_id: &str) -> Value {
    json!({
        "requestId": request_id,
        "timestamp": offerhub::clock::now(),
    })
}

/// `{"data": data, "meta": {...}}` with `status`.
pub fn respond<T: Body>(status: StatusCode, request_id: &str, data: T) -> Response {
    let body = json!({ "data": data, "meta": meta(request_id) });
    (status, axum::Json(body)).into_response()
}

/// A list page: `data` is the items, each shown as `show` makes it, `meta.pagination`
/// says how to continue.
pub fn respond_page<T, D: Body>(
    request_id: &str,
    page: Page<T>,
    show: impl FnMut(T) -> D,
) -> Response {
    let mut m = meta(request_id);
    m["pagination"] = json!({ "hasMore": page.has_more, "nextCursor": page.next_cursor });
    let items: Vec<D> = page.items.into_iter().map(show).collect();
    let body = json!({ "data": items, "meta": m });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// A list page built by hand: `extra` is merged into `meta`.
pub fn respond_page_with<T: Body>(
    request_id: &str,
    items: Vec<T>,
    has_more: bool,
    next_cursor: Option<String>,
    extra: Value,
) -> Response {
    let mut m = meta(request_id);
    m["pagination"] = json!({ "hasMore": has_more, "nextCursor": next_cursor });
    if let (Some(obj), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        obj.extend(e.clone());
    }
    (
        StatusCode::OK,
        axum::Json(json!({ "data": items, "meta": m })),
    )
        .into_response()
}

/// Which scope a route requires. Implemented by the marker types [`Read`], [`Write`],
/// [`Support`] and [`AnyScope`].
pub trait RequiredScope: Send + Sync + 'static {
    const SCOPE: Option<Scope>;
}

/// `GET` routes.
pub struct Read;
/// Mutations.
pub struct Write;
/// Keys, audit, disputes, adjustments.
pub struct Support;
/// Any valid key (`/auth/me`, `/events`).
pub struct AnyScope;

impl RequiredScope for Read {
    const SCOPE: Option<Scope> = Some(Scope::Read);
}
impl RequiredScope for Write {
    const SCOPE: Option<Scope> = Some(Scope::Write);
}
impl RequiredScope for Support {
    const SCOPE: Option<Scope> = Some(Scope::Support);
}
impl RequiredScope for AnyScope {
    const SCOPE: Option<Scope> = None;
}

/// An authenticated caller with scope `S`. Rejects with 401 `UNAUTHORIZED` (no, malformed,
/// unknown or revoked key), 403 `INSUFFICIENT_SCOPE`, or 429 `RATE_LIMITED` with
/// `Retry-After`.
pub struct Auth<S: RequiredScope> {
    pub principal: Principal,
    pub request_id: String,
    pub idempotency_key: Option<String>,
    idempotency_record: Option<String>,
    _scope: PhantomData<S>,
}

impl<S: RequiredScope> Auth<S> {
    /// The service-layer context (actor, request id, idempotency key) of this request.
    pub fn context(&self) -> Context {
        Context {
            actor: self.principal.actor(),
            request_id: Some(self.request_id.clone()),
            idempotency_key: self.idempotency_key.clone(),
            idempotency_record: self.idempotency_record.clone(),
        }
    }
}

impl<S: RequiredScope> FromRequestParts<AppState> for Auth<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, ApiError> {
        let outcome = parts
            .extensions
            .get::<Authenticated>()
            .map(|a| a.0.clone())
            .ok_or_else(|| {
                ApiError::from(Error::new(
                    ErrorCode::Unauthorized,
                    "Missing Authorization header: expected Bearer <API key>",
                ))
            })?;
        let principal = match outcome.as_ref() {
            Ok(p) => p.clone(),
            Err((e, retry_after)) => {
                return Err(ApiError {
                    error: e.clone(),
                    retry_after: *retry_after,
                });
            }
        };
        if let Some(scope) = S::SCOPE
            && !principal.has(scope)
        {
            return Err(Error::new(
                ErrorCode::InsufficientScope,
                format!("This API key lacks the `{}` scope", scope.as_str()),
            )
            .with_details(json!({ "required": scope.as_str(), "granted": principal.scopes() }))
            .into());
        }
        let idempotency_key = parts
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let idempotency_record = parts
            .extensions
            .get::<IdempotencyRecord>()
            .map(|r| r.0.clone());
        Ok(Auth {
            principal,
            request_id: request_id(&parts.headers),
            idempotency_key,
            idempotency_record,
            _scope: PhantomData,
        })
    }
}

/// Turns a serde error at `path` into 400 `VALIDATION_ERROR` naming the field.
fn serde_error(path: String, inner: &str) -> Error {
    // serde reports a missing field at the parent path: name the field itself.
    let field = if let Some(rest) = inner.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        if path == "." || path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    } else if path == "." || path.is_empty() {
        "body".to_string()
    } else {
        path
    };
    let problem = if inner.starts_with("missing field `") {
        "is required"
    } else {
        inner.split(" at line ").next().unwrap_or(inner)
    };
    Error::validation(&field, problem)
}

/// Whether a `Content-Type` value is JSON: `application/json` or a `+json` type, any
/// parameters (`; charset=utf-8`), case-insensitive.
fn is_json_media_type(v: &str) -> bool {
    let essence = v
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A JSON body of type `T`. An empty body is read as `{}` (for POSTs whose fields are
/// all optional). Errors: 415 `UNSUPPORTED_MEDIA_TYPE` for a body without
/// `Content-Type: application/json`; 400 `VALIDATION_ERROR` naming the field; 413
/// `PAYLOAD_TOO_LARGE` above the configured limit.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &St) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("?").to_string());
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::from(Error::new(
                    ErrorCode::PayloadTooLarge,
                    "Request body is larger than the configured limit",
                ))
            } else {
                ApiError::from(Error::validation("body", e.body_text()))
            }
        })?;
        let slice: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            if !content_type.as_deref().is_some_and(is_json_media_type) {
                return Err(Error::new(
                    ErrorCode::UnsupportedMediaType,
                    format!(
                        "Content-Type must be application/json (got {})",
                        content_type.as_deref().unwrap_or("none")
                    ),
                )
                .with_details(json!({ "field": "Content-Type" }))
                .into());
            }
            &bytes
        };
        // JSON can carry NUL only as the escape \u0000; no field accepts it and
        // PostgreSQL cannot store it in text.
        if slice
            .windows(6)
            .any(|w| w[0] == b'\\' && w[1] == b'u' && w[2..].eq_ignore_ascii_case(b"0000"))
        {
            return Err(Error::validation(
                "body",
                "strings must not contain NUL characters (\\u0000)",
            )
            .into());
        }
        let de = &mut serde_json::Deserializer::from_slice(slice);
        match serde_path_to_error::deserialize(de) {
            Ok(v) => Ok(ApiJson(v)),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                if inner.is_syntax() || inner.is_eof() {
                    return Err(
                        Error::validation("body", format!("malformed JSON: {inner}")).into(),
                    );
                }
                Err(serde_error(path, &inner.to_string()).into())
            }
        }
    }
}

/// A query string of type `T`; errors name the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequestParts<St> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                serde_error(path, &e.into_inner().to_string()).into()
            })
    }
}

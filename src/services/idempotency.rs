//! Idempotency keys for mutating POSTs (docs/ARCHITECTURE.md, API conventions).
//!
//! A record is scoped to (API key, method, path, `Idempotency-Key`) and holds the hash
//! of the canonical request body. States:
//!
//! - `IN_PROGRESS`: claimed by a running request; duplicates wait for it.
//! - `COMMITTED`: the request's database transaction committed (set inside that very
//!   transaction by `Store::begin_for`), response not stored yet.
//! - `COMPLETED`: the response (status + body) is stored; duplicates get it replayed.
//!
//! Same key with another body → 409 `IDEMPOTENCY_CONFLICT`. A request that failed with
//! a 5xx before committing releases its record so that a retry runs again; one that
//! committed keeps it, so its effect can never happen twice. Records expire after the
//! configured retention (24 h by default) and are purged by [`purge_expired`].

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::domain::idempotency::KeyState;
use crate::error::{Error, ErrorCode, Result};
use crate::store::{Store, Tx};

/// An `IN_PROGRESS` record older than this is considered abandoned (its process died
/// before committing) and may be taken over.
const STALE_AFTER_SECS: i64 = 300;

/// The outcome of [`claim`].
#[derive(Debug)]
pub enum Claim {
    /// Run the request; pass `record` to the services (via the context) and call
    /// [`finish`] with the response.
    Proceed { record: String },
    /// A completed duplicate: answer with this stored response.
    Replay { status: u16, body: String },
}

/// Validates an `Idempotency-Key` header value: 1–255 visible ASCII characters.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::validation(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
        ));
    }
    Ok(())
}

/// SHA-256 of the request body in canonical form: JSON re-serialised with sorted keys
/// (so key order and whitespace do not matter), other bodies as raw bytes.
pub fn request_hash(body: &[u8]) -> String {
    let canonical = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => v.to_string().into_bytes(),
        Err(_) if body.iter().all(u8::is_ascii_whitespace) => b"{}".to_vec(),
        Err(_) => body.to_vec(),
    };
    hex::encode(Sha256::digest(&canonical))
}

fn scope_hash(api_key_id: &str, method: &str, path: &str, key: &str) -> String {
    let mut h = Sha256::new();
    for part in [api_key_id, method, path, key] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

fn in_progress(message: &str) -> Error {
    Error::new(ErrorCode::IdempotencyKeyInProgress, message)
}

/// What a request claims: its scope and body hash.
#[derive(Clone, Debug)]
pub struct ClaimRequest<'a> {
    pub api_key_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub key: &'a str,
    /// [`request_hash`] of the body.
    pub body_hash: &'a str,
}

/// Claims the request's scope, waiting up to `wait` for a concurrent duplicate to
/// finish. Errors: 409 `IDEMPOTENCY_CONFLICT` (other body), 409
/// `IDEMPOTENCY_KEY_IN_PROGRESS` (duplicate still running after `wait`).
pub async fn claim(
    store: &Store,
    req: &ClaimRequest<'_>,
    ttl_hours: u32,
    wait: Duration,
) -> Result<Claim> {
    let scope = scope_hash(req.api_key_id, req.method, req.path, req.key);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let state = match claim_once(store, req, &scope, ttl_hours).await? {
            Pass::Done(claim) => return Ok(claim),
            Pass::Again => continue,
            Pass::Busy(state) => state,
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(if state == KeyState::Committed {
                in_progress(
                    "The original request with this Idempotency-Key took effect but its response is not available; read the resource instead of retrying",
                )
            } else {
                in_progress(
                    "A request with this Idempotency-Key is still being processed; retry later",
                )
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The outcome of one pass of [`claim`].
enum Pass {
    /// Answer with this claim.
    Done(Claim),
    /// The record vanished, or had expired and was deleted: try again at once.
    Again,
    /// A duplicate holds the record (`IN_PROGRESS` and not stale, or `COMMITTED`): wait
    /// and try again.
    Busy(KeyState),
}

/// One pass of [`claim`], in its own database transaction: inserts the record, or
/// reads the existing one and replays it, takes it over when stale, deletes it when
/// expired, or reports it busy. Errors: 409 `IDEMPOTENCY_CONFLICT` (other body).
async fn claim_once(
    store: &Store,
    req: &ClaimRequest<'_>,
    scope: &str,
    ttl_hours: u32,
) -> Result<Pass> {
    let now = chrono::Utc::now();
    let expires = crate::clock::format_ts(now + chrono::Duration::hours(i64::from(ttl_hours)));
    let now_s = crate::clock::format_ts(now);
    let mut tx = store.begin().await?;
    if insert_record(&mut tx, req, scope, &now_s, &expires).await? {
        tx.commit().await?;
        return Ok(Pass::Done(Claim::Proceed {
            record: scope.to_string(),
        }));
    }
    let row = sqlx::query(
        "SELECT request_hash, state, response_status, response_body, created_at, expires_at \
         FROM idempotency_keys WHERE scope_hash = $1",
    )
    .bind(scope)
    .fetch_optional(tx.conn())
    .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        return Ok(Pass::Again);
    };
    let expires_at: String = row.try_get("expires_at")?;
    let state: KeyState = row.try_get("state")?;
    let created_at: String = row.try_get("created_at")?;
    if expires_at < now_s {
        sqlx::query("DELETE FROM idempotency_keys WHERE scope_hash = $1 AND expires_at = $2")
            .bind(scope)
            .bind(&expires_at)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        return Ok(Pass::Again);
    }
    let stored_hash: String = row.try_get("request_hash")?;
    if stored_hash != req.body_hash {
        return Err(Error::new(
            ErrorCode::IdempotencyConflict,
            "This Idempotency-Key was already used with a different request body",
        )
        .with_details(serde_json::json!({ "idempotencyKey": req.key })));
    }
    match state {
        KeyState::Completed => {
            let status: i64 = row.try_get("response_status")?;
            let body: Option<String> = row.try_get("response_body")?;
            return Ok(Pass::Done(Claim::Replay {
                status: u16::try_from(status).unwrap_or(500),
                body: body.unwrap_or_default(),
            }));
        }
        KeyState::InProgress => {
            let stale = chrono::DateTime::parse_from_rfc3339(&created_at)
                .map(|t| (now - t.with_timezone(&chrono::Utc)).num_seconds() > STALE_AFTER_SECS)
                .unwrap_or(false);
            if stale && take_over(&mut tx, scope, &created_at, &now_s).await? {
                tx.commit().await?;
                return Ok(Pass::Done(Claim::Proceed {
                    record: scope.to_string(),
                }));
            }
        }
        KeyState::Committed => {}
    }
    tx.rollback().await?;
    Ok(Pass::Busy(state))
}

/// Inserts the request's `IN_PROGRESS` record, created at `now_s` and expiring at
/// `expires`, unless its scope already has one. Returns whether it did.
async fn insert_record(
    tx: &mut Tx,
    req: &ClaimRequest<'_>,
    scope: &str,
    now_s: &str,
    expires: &str,
) -> Result<bool> {
    let ClaimRequest {
        api_key_id,
        method,
        path,
        key,
        body_hash,
    } = *req;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope_hash, api_key_id, idempotency_key, method, path, \
         request_hash, state, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $9, $7, $8) ON CONFLICT (scope_hash) DO NOTHING",
    )
    .bind(scope)
    .bind(api_key_id)
    .bind(key)
    .bind(method)
    .bind(path)
    .bind(body_hash)
    .bind(now_s)
    .bind(expires)
    .bind(KeyState::InProgress)
    .execute(tx.conn())
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Takes over a stale `IN_PROGRESS` record (its process died before committing):
/// compare-and-set on its `created_at`, so one waiter wins. Returns whether this one did.
async fn take_over(tx: &mut Tx, scope: &str, created_at: &str, now_s: &str) -> Result<bool> {
    let taken = sqlx::query(
        "UPDATE idempotency_keys SET created_at = $1 \
         WHERE scope_hash = $2 AND state = $4 AND created_at = $3",
    )
    .bind(now_s)
    .bind(scope)
    .bind(created_at)
    .bind(KeyState::InProgress)
    .execute(tx.conn())
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Stores the response of a claimed request. A 5xx of a request whose transaction never
/// committed releases the record instead (a retry runs again).
pub async fn finish(store: &Store, record: &str, status: u16, body: &str) -> Result<()> {
    let mut tx = store.begin().await?;
    if status >= 500 {
        let released =
            sqlx::query("DELETE FROM idempotency_keys WHERE scope_hash = $1 AND state = $2")
                .bind(record)
                .bind(KeyState::InProgress)
                .execute(tx.conn())
                .await?;
        if released.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(());
        }
    }
    sqlx::query(
        "UPDATE idempotency_keys SET state = $4, response_status = $1, response_body = $2 \
         WHERE scope_hash = $3",
    )
    .bind(i64::from(status))
    .bind(body)
    .bind(record)
    .bind(KeyState::Completed)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Deletes expired records; returns how many.
pub async fn purge_expired(store: &Store) -> Result<u64> {
    let mut tx = store.begin().await?;
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at < $1")
        .bind(crate::clock::now())
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_key_order_and_whitespace() {
        assert_eq!(
            request_hash(br#"{"a":1,"b":2}"#),
            request_hash(b"{ \"b\": 2,\n \"a\": 1 }")
        );
        assert_ne!(request_hash(br#"{"a":1}"#), request_hash(br#"{"a":2}"#));
        assert_eq!(request_hash(b""), request_hash(b"{}"));
    }

    #[test]
    fn keys_are_validated() {
        assert!(validate_key("550e8400-e29b-41d4-a716-446655440000").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("has space").is_err());
        assert!(validate_key(&"x".repeat(256)).is_err());
    }
}

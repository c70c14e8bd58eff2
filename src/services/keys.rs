//! API keys: creation (the secret is returned once), listing, revocation and
//! authentication of bearer tokens.
//!
//! A key looks like `ohk_live_<32 alphanumerics>_<40 alphanumerics>`; the first part
//! names the key (`key_<32 alphanumerics>`), the whole token is stored only as its
//! SHA-256 and compared in constant time. `OFFERHUB_MASTER_KEY` authenticates as the
//! `master` principal with every scope; it exists to bootstrap keys.

use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::context::{Actor, ActorType, Context};
use crate::error::{Error, ErrorCode, Result};
use crate::ids::{self, IdKind};
use crate::pagination::{Page, PageRequest};
use crate::store::Store;

/// Token prefix of every API key.
pub const KEY_PREFIX: &str = "ohk_live_";
const SECRET_LEN: usize = 40;
/// `lastUsedAt` is refreshed at most this often, so authentication is not a write per
/// request.
const LAST_USED_RESOLUTION_SECS: i64 = 60;

/// What a key may do: `read` (GET), `write` (mutations), `support` (keys, audit,
/// disputes, adjustments). Scopes are independent; a key holds the ones it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Support,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Support];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Support => "support",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "support" => Some(Scope::Support),
            _ => None,
        }
    }
}

/// Parses and de-duplicates a scope list; 400 naming `scopes` when empty or unknown.
pub fn parse_scopes<S: AsRef<str>>(items: &[S]) -> Result<Vec<Scope>> {
    if items.is_empty() {
        return Err(Error::validation(
            "scopes",
            "must list at least one of read, write, support",
        ));
    }
    let mut out = Vec::new();
    for s in items {
        let s = s.as_ref().trim();
        let scope = Scope::parse(s).ok_or_else(|| {
            Error::validation(
                "scopes",
                format!("unknown scope {s:?}; expected read, write or support"),
            )
        })?;
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    out.sort();
    Ok(out)
}

/// A stored API key (never the secret).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// The first characters of the token, to recognise it (`ohk_live_AbCd…`).
    pub key_hint: String,
    pub created_at: String,
    pub created_by: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    #[serde(skip)]
    seq: i64,
}

/// A newly created key with its token, which is shown this once.
#[derive(Clone, Debug)]
pub struct CreatedKey {
    pub key: ApiKey,
    pub token: Secret,
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub enum Principal {
    Master,
    Key(ApiKey),
}

impl Principal {
    pub fn id(&self) -> &str {
        match self {
            Principal::Master => "master",
            Principal::Key(k) => &k.id,
        }
    }
    pub fn name(&self) -> &str {
        match self {
            Principal::Master => "master",
            Principal::Key(k) => &k.name,
        }
    }
    pub fn scopes(&self) -> Vec<Scope> {
        match self {
            Principal::Master => Scope::ALL.to_vec(),
            Principal::Key(k) => k.scopes.clone(),
        }
    }
    pub fn has(&self, scope: Scope) -> bool {
        match self {
            Principal::Master => true,
            Principal::Key(k) => k.scopes.contains(&scope),
        }
    }
    /// The audit actor of this principal.
    pub fn actor(&self) -> Actor {
        match self {
            Principal::Master => Actor {
                kind: ActorType::Master,
                id: "master".into(),
            },
            Principal::Key(k) => Actor {
                kind: ActorType::ApiKey,
                id: k.id.clone(),
            },
        }
    }
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

const COLUMNS: &str =
    "seq, id, name, scopes, key_hint, created_at, created_by, last_used_at, revoked_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<ApiKey> {
    let scopes: String = r.try_get("scopes")?;
    Ok(ApiKey {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        scopes: scopes.split(',').filter_map(Scope::parse).collect(),
        key_hint: r.try_get("key_hint")?,
        created_at: r.try_get("created_at")?,
        created_by: r.try_get("created_by")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

/// Creates a key. `name`: 1–100 characters; `scopes`: see [`parse_scopes`]. Audited as
/// `api_key.created` (without the secret).
pub async fn create(
    store: &Store,
    ctx: &Context,
    name: &str,
    scopes: &[Scope],
) -> Result<CreatedKey> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::validation("name", "must be 1 to 100 characters"));
    }
    if scopes.is_empty() {
        return Err(Error::validation(
            "scopes",
            "must list at least one of read, write, support",
        ));
    }
    let id_part = ids::random_alphanumeric(ids::RANDOM_LEN);
    let token = format!(
        "{KEY_PREFIX}{id_part}_{}",
        ids::random_alphanumeric(SECRET_LEN)
    );
    let key = ApiKey {
        seq: 0,
        id: format!("{}{id_part}", IdKind::ApiKey.prefix()),
        name: name.to_string(),
        scopes: scopes.to_vec(),
        key_hint: format!("{}…", &token[..KEY_PREFIX.len() + 6]),
        created_at: crate::clock::now(),
        created_by: ctx.actor.id.clone(),
        last_used_at: None,
        revoked_at: None,
    };
    let scope_text = key
        .scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let mut tx = store.begin_for(ctx).await?;
    sqlx::query(
        "INSERT INTO api_keys (id, name, scopes, key_hash, key_hint, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&key.id)
    .bind(&key.name)
    .bind(&scope_text)
    .bind(hash_token(&token))
    .bind(&key.key_hint)
    .bind(&key.created_at)
    .bind(&key.created_by)
    .execute(tx.conn())
    .await?;
    tx.audit(ctx.audit("api_key.created", "api_key", &key.id).after(&key));
    tx.commit().await?;
    Ok(CreatedKey {
        key,
        token: Secret::new(token),
    })
}

/// One key by id; 404 `API_KEY_NOT_FOUND`.
pub async fn get(store: &Store, id: &str) -> Result<ApiKey> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM api_keys WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(store.reader())
    .await?;
    match row {
        Some(r) => from_row(&r),
        None => Err(Error::new(
            ErrorCode::ApiKeyNotFound,
            format!("API key {id} does not exist"),
        )),
    }
}

/// Keys, newest first (revoked ones included, with `revokedAt`).
pub async fn list(store: &Store, page: &PageRequest) -> Result<Page<ApiKey>> {
    let cursor = page.cursor_seq()?.unwrap_or(i64::MAX);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM api_keys WHERE seq < $1 ORDER BY seq DESC LIMIT {}",
        page.limit + 1
    )))
    .bind(cursor)
    .fetch_all(store.reader())
    .await?;
    let keys = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(keys, page.limit, |k| k.seq))
}

/// Revokes a key; effective on the next request. Revoking twice is a no-op that
/// returns the key. 404 `API_KEY_NOT_FOUND`. Audited as `api_key.revoked`.
pub async fn revoke(store: &Store, ctx: &Context, id: &str) -> Result<ApiKey> {
    let before = get(store, id).await?;
    if before.revoked_at.is_some() {
        return Ok(before);
    }
    let now = crate::clock::now();
    let mut tx = store.begin_for(ctx).await?;
    let done =
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(&now)
            .bind(id)
            .execute(tx.conn())
            .await?;
    let mut after = before.clone();
    after.revoked_at = Some(now);
    if done.rows_affected() == 1 {
        tx.audit(
            ctx.audit("api_key.revoked", "api_key", id)
                .before(&before)
                .after(&after),
        );
    }
    tx.commit().await?;
    Ok(after)
}

/// Authenticates a bearer token: the master key, or a live (unrevoked) API key.
/// Every failure is 401 `UNAUTHORIZED`; the message says whether the token is
/// malformed or not accepted, never which part was wrong.
pub async fn authenticate(
    store: &Store,
    master: Option<&Secret>,
    token: &str,
) -> Result<Principal> {
    let hashed = hash_token(token);
    if let Some(m) = master {
        let expected = hash_token(m.expose_secret());
        if bool::from(expected.as_bytes().ct_eq(hashed.as_bytes())) {
            return Ok(Principal::Master);
        }
    }
    let unauthorized = |m: &str| Error::new(ErrorCode::Unauthorized, m);
    let id_part = token
        .strip_prefix(KEY_PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .filter(|(id, secret)| {
            id.len() == ids::RANDOM_LEN
                && secret.len() == SECRET_LEN
                && id.bytes().all(|b| b.is_ascii_alphanumeric())
                && secret.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .map(|(id, _)| id)
        .ok_or_else(|| unauthorized("Malformed API key: expected Bearer ohk_live_…"))?;
    let id = format!("{}{id_part}", IdKind::ApiKey.prefix());
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, key_hash FROM api_keys WHERE id = $1"
    )))
    .bind(&id)
    .fetch_optional(store.reader())
    .await?;
    let invalid = || unauthorized("Invalid or revoked API key");
    let Some(row) = row else {
        return Err(invalid());
    };
    let stored: String = row.try_get("key_hash")?;
    if !bool::from(stored.as_bytes().ct_eq(hashed.as_bytes())) {
        return Err(invalid());
    }
    let key = from_row(&row)?;
    if key.revoked_at.is_some() {
        return Err(invalid());
    }
    touch_last_used(store, &key).await?;
    Ok(Principal::Key(key))
}

async fn touch_last_used(store: &Store, key: &ApiKey) -> Result<()> {
    let now = chrono::Utc::now();
    let stale = key.last_used_at.as_deref().is_none_or(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| {
                (now - t.with_timezone(&chrono::Utc)).num_seconds() >= LAST_USED_RESOLUTION_SECS
            })
            .unwrap_or(true)
    });
    if stale {
        let mut tx = store.begin().await?;
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(crate::clock::format_ts(now))
            .bind(&key.id)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

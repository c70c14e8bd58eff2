//! Users of the marketplace, known by the marketplace's own `externalUserId`.
//!
//! Creation is idempotent and race-safe on `externalUserId` (a unique index plus
//! `INSERT … ON CONFLICT DO NOTHING`): concurrent creates yield one user. Creating a user
//! opens its ledger accounts in the same transaction and then calls the
//! [`UserHooks::user_created`] hook (wallet provisioning in crypto mode).

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::context::Context;
use crate::error::{Error, ErrorCode, Result};
use crate::events::NewEvent;
use crate::ids::{self, IdKind, new_id};
use crate::ledger;
use crate::pagination::{Page, PageRequest};
use crate::store::Store;

/// Role of a user in orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserType {
    Buyer,
    Seller,
    Both,
}

impl UserType {
    pub fn as_str(self) -> &'static str {
        match self {
            UserType::Buyer => "BUYER",
            UserType::Seller => "SELLER",
            UserType::Both => "BOTH",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        match s {
            "BUYER" => Ok(UserType::Buyer),
            "SELLER" => Ok(UserType::Seller),
            "BOTH" => Ok(UserType::Both),
            other => Err(Error::internal(format!("unknown user type {other}"))),
        }
    }
}

pub use crate::domain::account::UserStatus;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub external_user_id: String,
    pub email: Option<String>,
    #[serde(rename = "type")]
    pub user_type: UserType,
    pub status: UserStatus,
    /// The linked Airtm account (`POST /users/{id}/airtm/link`), if any.
    pub airtm: Option<AirtmLink>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip)]
    seq: i64,
}

/// A user's Airtm account: Airtm's user id (uuid) and the email payouts go to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AirtmLink {
    pub airtm_user_id: String,
    pub email: String,
    pub linked_at: String,
}

impl User {
    /// 422 `USER_SUSPENDED` unless the user is active. Called before any new money
    /// movement that the user starts.
    pub fn ensure_active(&self) -> Result<()> {
        match self.status {
            UserStatus::Active => Ok(()),
            UserStatus::Suspended => Err(Error::new(
                ErrorCode::UserSuspended,
                format!("User {} is suspended", self.id),
            )),
        }
    }
}

/// Called after a user is created (not when an existing user is returned).
/// Failures are logged; they do not undo the user.
pub trait UserHooks: Send + Sync {
    fn user_created<'a>(&'a self, user: &'a User) -> BoxFuture<'a, Result<()>>;
}

/// Hooks that do nothing (no wallet provisioning).
pub struct NoHooks;

impl UserHooks for NoHooks {
    fn user_created<'a>(&'a self, _user: &'a User) -> BoxFuture<'a, Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

const COLUMNS: &str = "seq, id, external_user_id, email, user_type, status, airtm_user_id, airtm_email, \
     airtm_linked_at, created_at, updated_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<User> {
    Ok(User {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        external_user_id: r.try_get("external_user_id")?,
        email: r.try_get("email")?,
        user_type: UserType::parse(&r.try_get::<String, _>("user_type")?)?,
        status: r.try_get("status")?,
        airtm: match (
            r.try_get::<Option<String>, _>("airtm_user_id")?,
            r.try_get::<Option<String>, _>("airtm_email")?,
            r.try_get::<Option<String>, _>("airtm_linked_at")?,
        ) {
            (Some(airtm_user_id), Some(email), Some(linked_at)) => Some(AirtmLink {
                airtm_user_id,
                email,
                linked_at,
            }),
            _ => None,
        },
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// `externalUserId`: 1–255 printable characters.
fn validate_external_id(v: &str) -> Result<()> {
    if v.trim().is_empty() || v.chars().count() > 255 || v.chars().any(char::is_control) {
        return Err(Error::validation(
            "externalUserId",
            "must be 1 to 255 printable characters",
        ));
    }
    Ok(())
}

/// A plausible email: `local@domain.tld`, no spaces, at most 254 characters.
pub fn validate_email(v: &str) -> Result<()> {
    let ok = v.len() <= 254
        && !v.chars().any(|c| c.is_whitespace() || c.is_control())
        && v.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::validation("email", "must be an email address"))
    }
}

/// Input of [`create`].
#[derive(Clone, Debug)]
pub struct NewUser {
    pub external_user_id: String,
    pub email: Option<String>,
    pub user_type: UserType,
}

/// Creates the user, or returns the existing one with the same `externalUserId`.
/// Returns `(user, created)`. Audited as `user.created`.
pub async fn create(
    store: &Store,
    ctx: &Context,
    hooks: &dyn UserHooks,
    new: NewUser,
) -> Result<(User, bool)> {
    validate_external_id(&new.external_user_id)?;
    if let Some(e) = &new.email {
        validate_email(e)?;
    }
    if let Some(existing) = find_by_external_id(store, &new.external_user_id).await? {
        return Ok((existing, false));
    }
    let now = crate::clock::now();
    let id = new_id(IdKind::User);
    let mut tx = store.begin_for(ctx).await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO users (id, external_user_id, email, user_type, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $6, $5, $5) ON CONFLICT (external_user_id) DO NOTHING \
         RETURNING {COLUMNS}"
    )))
    .bind(&id)
    .bind(&new.external_user_id)
    .bind(&new.email)
    .bind(new.user_type.as_str())
    .bind(&now)
    .bind(UserStatus::Active)
    .fetch_optional(tx.conn())
    .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        let existing = find_by_external_id(store, &new.external_user_id)
            .await?
            .ok_or_else(|| Error::internal("user vanished after a conflict"))?;
        return Ok((existing, false));
    };
    let user = from_row(&row)?;
    ledger::open_user_accounts(&mut tx, &user.id).await?;
    tx.audit(ctx.audit("user.created", "user", &user.id).after(&user));
    tx.emit(NewEvent::new(
        "user.created",
        "user",
        &user.id,
        serde_json::json!({
            "userId": user.id,
            "externalUserId": user.external_user_id,
            "email": user.email,
            "type": user.user_type,
            "status": user.status,
        }),
    ));
    tx.commit().await?;
    if let Err(e) = hooks.user_created(&user).await {
        tracing::warn!(user_id = %user.id, error = %e, "user_created hook failed");
    }
    Ok((user, true))
}

/// 404 `USER_NOT_FOUND` for `id`, `details.userId` = `id`.
pub(crate) fn not_found(id: &str) -> Error {
    Error::new(ErrorCode::UserNotFound, format!("User {id} does not exist"))
        .with_details(serde_json::json!({ "userId": id }))
}

/// One user; 404 `USER_NOT_FOUND` (also for a malformed id).
pub async fn get(store: &Store, id: &str) -> Result<User> {
    if !ids::is_valid(IdKind::User, id) {
        return Err(not_found(id));
    }
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(store.reader())
    .await?;
    row.as_ref()
        .map(from_row)
        .transpose()?
        .ok_or_else(|| not_found(id))
}

/// The user with this `externalUserId`, if any.
pub async fn find_by_external_id(store: &Store, external_user_id: &str) -> Result<Option<User>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE external_user_id = $1"
    )))
    .bind(external_user_id)
    .fetch_optional(store.reader())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Users, newest first, optionally only the one with `external_user_id`.
pub async fn list(
    store: &Store,
    external_user_id: Option<&str>,
    page: &PageRequest,
) -> Result<Page<User>> {
    let cursor = page.cursor_seq()?.unwrap_or(i64::MAX);
    let limit = page.limit + 1;
    let rows = match external_user_id {
        Some(ext) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM users WHERE external_user_id = $1 AND seq < $2 \
                 ORDER BY seq DESC LIMIT {limit}"
            )))
            .bind(ext)
            .bind(cursor)
            .fetch_all(store.reader())
            .await?
        }
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM users WHERE seq < $1 ORDER BY seq DESC LIMIT {limit}"
            )))
            .bind(cursor)
            .fetch_all(store.reader())
            .await?
        }
    };
    let users = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(users, page.limit, |u| u.seq))
}

/// Changes of [`update`]; `None` leaves a field as it is. `email: Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct UserPatch {
    pub email: Option<Option<String>>,
    pub user_type: Option<UserType>,
    pub status: Option<UserStatus>,
}

/// Applies a patch (compare-and-set on `updated_at`, retried on a concurrent change).
/// Audited as `user.updated` (or `user.suspended` / `user.reactivated` when the status
/// changes).
pub async fn update(store: &Store, ctx: &Context, id: &str, patch: UserPatch) -> Result<User> {
    if let Some(Some(e)) = &patch.email {
        validate_email(e)?;
    }
    for _attempt in 0..5 {
        let before = get(store, id).await?;
        let mut after = before.clone();
        if let Some(e) = &patch.email {
            after.email = e.clone();
        }
        if let Some(t) = patch.user_type {
            after.user_type = t;
        }
        if let Some(s) = patch.status {
            after.status = s;
        }
        if after == before {
            return Ok(before);
        }
        after.updated_at = crate::clock::now();
        let mut tx = store.begin_for(ctx).await?;
        let done = sqlx::query(
            "UPDATE users SET email = $1, user_type = $2, status = $3, updated_at = $4 \
             WHERE id = $5 AND updated_at = $6",
        )
        .bind(&after.email)
        .bind(after.user_type.as_str())
        .bind(after.status.as_str())
        .bind(&after.updated_at)
        .bind(id)
        .bind(&before.updated_at)
        .execute(tx.conn())
        .await?;
        if done.rows_affected() == 0 {
            continue;
        }
        let action = match (before.status, after.status) {
            (UserStatus::Active, UserStatus::Suspended) => "user.suspended",
            (UserStatus::Suspended, UserStatus::Active) => "user.reactivated",
            _ => "user.updated",
        };
        tx.audit(ctx.audit(action, "user", id).before(&before).after(&after));
        tx.emit(NewEvent::new(
            action,
            "user",
            id,
            serde_json::json!({ "userId": id, "before": before, "after": after }),
        ));
        tx.commit().await?;
        return Ok(after);
    }
    Err(Error::new(
        ErrorCode::InvalidStateTransition,
        "The user changed concurrently; retry",
    ))
}

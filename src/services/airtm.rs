//! Airtm mode (`PAYMENT_PROVIDER=airtm`): the context the top-up and payout services
//! share, account linking, the processing of Airtm webhooks from the inbox, and the
//! reconciler pass.
//!
//! Linking (docs/PROVIDERS.md, Airtm: user linking): the v2 API has no OAuth; a user is
//! identified by email. `GET /users/{email}` must show an `active` account (and
//! `isVerified` when `AIRTM_REQUIRE_VERIFIED=true`); its id and the email are stored on the
//! user. Payouts go only to the linked email.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::context::Context;
use crate::domain::webhook::InboundStatus;
use crate::error::{Error, ErrorCode, Result};
use crate::events::NewEvent;
use crate::services::fiat_provider::FiatProvider;
use crate::services::inbox::{self, InboundWebhook};
use crate::services::wallets::StellarContext;
use crate::services::{payouts, topups, users};
use crate::store::Store;

/// What the Airtm services need.
#[derive(Clone)]
pub struct AirtmContext {
    /// The fiat provider: Airtm's client ([`crate::airtm::Airtm`]) in production, an
    /// in-memory fake in tests.
    pub client: Arc<dyn FiatProvider>,
    /// The wallets and the treasury (platform wallet) on Stellar.
    pub sc: Arc<StellarContext>,
    /// Airtm's checkout URL with `{id}` for the payin id.
    pub checkout_template: String,
    /// OfferHub's public base URL (browser callbacks).
    pub public_base_url: url::Url,
    /// `AIRTM_REQUIRE_VERIFIED`: linking needs an ID-verified Airtm account.
    pub require_verified: bool,
}

impl AirtmContext {
    /// The hosted checkout URL of a payin.
    pub fn checkout_url(&self, payin_id: &str) -> String {
        self.checkout_template.replace("{id}", payin_id)
    }
}

/// The default checkout template for an API base: `{origin}{path without /v2}/payin/{id}`
/// (docs/PROVIDERS.md, Airtm: base URLs — `https://<API Host>/payin/:id`).
pub fn default_checkout_template(base: &url::Url) -> String {
    let mut u = base.clone();
    let path = u
        .path()
        .trim_end_matches('/')
        .trim_end_matches("/v2")
        .to_string();
    u.set_path(&format!("{path}/payin/"));
    format!("{}{{id}}", u.as_str())
}

fn valid_email(email: &str) -> bool {
    let email = email.trim();
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && email.len() <= 254
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// Links user `user_id` to the Airtm account of `email`. Errors: `email` malformed
/// (`VALIDATION_ERROR`), `USER_NOT_FOUND`, `AIRTM_USER_NOT_FOUND` (no Airtm account),
/// `AIRTM_USER_INVALID` (inactive, or not ID-verified when required). Re-linking to
/// another email replaces the link. Emits `user.airtm_linked`.
pub async fn link(
    store: &Store,
    ctx: &Context,
    ac: &AirtmContext,
    user_id: &str,
    email: &str,
) -> Result<users::User> {
    let email = email.trim();
    if !valid_email(email) {
        return Err(Error::validation("email", "must be an email address"));
    }
    let user = users::get(store, user_id).await?;
    let found = ac.client.user_by_email(email).await?.ok_or_else(|| {
        Error::new(
            ErrorCode::AirtmUserNotFound,
            "Airtm has no account for this email",
        )
        .with_details(json!({ "field": "email" }))
    })?;
    if !found.is_active() {
        let state = if found.status.as_str().is_empty() {
            "has no status".to_string()
        } else {
            format!("is {}", found.status)
        };
        return Err(Error::new(
            ErrorCode::AirtmUserInvalid,
            format!("The Airtm account {state}; it must be active"),
        )
        .with_details(json!({ "field": "email", "airtmStatus": found.status })));
    }
    if ac.require_verified && !found.is_verified {
        return Err(Error::new(
            ErrorCode::AirtmUserInvalid,
            "The Airtm account is not ID-verified (AIRTM_REQUIRE_VERIFIED=true)",
        )
        .with_details(json!({ "field": "email", "isVerified": false })));
    }
    let now = crate::clock::now();
    let mut db = store.begin_for(ctx).await?;
    sqlx::query(
        "UPDATE users SET airtm_user_id = $1, airtm_email = $2, airtm_linked_at = $3, updated_at = $3 WHERE id = $4",
    )
    .bind(&found.id)
    .bind(email)
    .bind(&now)
    .bind(user_id)
    .execute(db.conn())
    .await?;
    let data =
        json!({ "userId": user_id, "airtmUserId": found.id, "isVerified": found.is_verified });
    db.audit(
        ctx.audit("user.airtm_linked", "user", user_id)
            .before(json!({ "airtmUserId": user.airtm.as_ref().map(|a| &a.airtm_user_id) }))
            .after(&data),
    );
    db.emit(NewEvent::new("user.airtm_linked", "user", user_id, data));
    db.commit().await?;
    users::get(store, user_id).await
}

/// Processes one Airtm webhook from the inbox: finds our top-up or withdrawal from the
/// body's `data.code`, then re-fetches it from Airtm and applies what Airtm says (the
/// body itself never moves money). Returns the inbox status to record and a note.
pub async fn process(
    store: &Store,
    ac: &AirtmContext,
    msg: &InboundWebhook,
) -> Result<(InboundStatus, Option<String>)> {
    let code = msg.payload["data"]["code"].as_str().unwrap_or_default();
    let kind = msg.event_type.split('.').next().unwrap_or_default();
    match kind {
        "payin" if code.starts_with("topup_") => match topups::refresh(store, ac, code).await {
            Ok(t) => Ok((
                InboundStatus::Processed,
                Some(format!("{} {}", t.id, t.status)),
            )),
            Err(e) if e.code == ErrorCode::TopupNotFound => {
                Ok((InboundStatus::Ignored, Some("no such top-up".into())))
            }
            Err(e) => Err(e),
        },
        "payout" if code.starts_with("wd_") => match payouts::refresh(store, ac, code).await {
            Ok(w) => Ok((
                InboundStatus::Processed,
                Some(format!("{} {}", w.id, w.status)),
            )),
            Err(e) if e.code == ErrorCode::WithdrawalNotFound => {
                Ok((InboundStatus::Ignored, Some("no such withdrawal".into())))
            }
            Err(e) => Err(e),
        },
        _ => Ok((
            InboundStatus::Ignored,
            Some(format!(
                "{} for code {code:?} is not an OfferHub resource",
                msg.event_type
            )),
        )),
    }
}

/// Processes due Airtm messages of the inbox (at most `limit`). Returns how many were
/// finished (failed attempts are not counted, so a caller can back off).
pub async fn process_inbox(store: &Store, ac: &AirtmContext, limit: u32) -> Result<usize> {
    let due = inbox::due(store, limit).await?;
    let mut n = 0;
    for msg in due.into_iter().filter(|m| m.provider == "airtm") {
        match process(store, ac, &msg).await {
            Ok((status, note)) => {
                inbox::finish(store, &msg.id, status, note.as_deref()).await?;
                n += 1;
            }
            Err(e) => {
                tracing::warn!(webhook_id = %msg.id, error = %e, "Airtm webhook processing failed; will retry");
                inbox::attempt_failed(store, &msg.id, &e.message).await?;
            }
        }
    }
    Ok(n)
}

/// The reconciler's pass: open top-ups and payout withdrawals untouched for
/// `stale_secs` (and everything settling) are re-read from Airtm by id or code.
pub async fn reconcile(
    store: &Store,
    ac: &AirtmContext,
    stale_secs: i64,
) -> Result<(usize, usize)> {
    let t = topups::reconcile_open(store, ac, stale_secs, 50).await?;
    let p = payouts::reconcile_open(store, ac, stale_secs, 50).await?;
    Ok((t, p))
}

/// Parses a verified Airtm webhook body (`{type, data}`, docs/PROVIDERS.md, Airtm:
/// webhooks): `Some(type)` when it has that shape.
pub fn event_type(body: &Value) -> Option<&str> {
    let t = body.get("type")?.as_str()?;
    body.get("data")?.as_object()?;
    Some(t).filter(|t| !t.is_empty() && t.len() <= 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_template_from_base() {
        let b: url::Url = "https://api.stg.enterprise.airtm.com/v2".parse().unwrap();
        assert_eq!(
            default_checkout_template(&b),
            "https://api.stg.enterprise.airtm.com/payin/{id}"
        );
        let b: url::Url = "http://127.0.0.1:9/airtm/v2/".parse().unwrap();
        assert_eq!(
            default_checkout_template(&b),
            "http://127.0.0.1:9/airtm/payin/{id}"
        );
    }

    #[test]
    fn emails() {
        assert!(valid_email("ana@example.com"));
        assert!(!valid_email("ana@example"));
        assert!(!valid_email("@example.com"));
        assert!(!valid_email("a na@example.com"));
    }

    #[test]
    fn webhook_shape() {
        assert_eq!(
            event_type(&json!({"type": "payin.confirmed", "data": {}})),
            Some("payin.confirmed")
        );
        assert_eq!(event_type(&json!({"type": "payin.confirmed"})), None);
        assert_eq!(event_type(&json!({"data": {}})), None);
    }
}

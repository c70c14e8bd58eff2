pub mod airtm;
pub mod balances;
pub mod deposits;
pub mod disputes;
pub mod escrow;
pub mod fiat_provider;
pub mod idempotency;
pub mod inbox;
pub mod keys;
pub mod lifecycle;
pub mod orders;
pub mod payouts;
pub mod reconcile;
pub mod reconcile_schedule;
pub mod rotation;
pub mod sagas;
pub mod topups;
pub mod treasury;
pub mod users;
pub mod wallets;
pub mod webhooks;
pub mod withdrawals;

/// `v` as an absolute http(s) URL of at most 2048 characters; 400 `VALIDATION_ERROR`
/// naming `field` otherwise. Used for webhook endpoints and top-up return URLs.
pub fn http_url(field: &str, v: &str) -> crate::error::Result<url::Url> {
    match url::Url::parse(v) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https") && u.host().is_some() && v.len() <= 2048 =>
        {
            Ok(u)
        }
        _ => Err(crate::error::Error::validation(
            field,
            "must be an absolute http(s) URL of at most 2048 characters",
        )),
    }
}

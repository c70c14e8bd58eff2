//! The fiat provider port: what the top-up and payout services ([`crate::services::topups`],
//! [`crate::services::payouts`]) and account linking ([`crate::services::airtm::link`])
//! ask of the provider that moves US dollars between people and the enterprise.
//!
//! Airtm's Enterprise API v2 client ([`crate::airtm::Airtm`]) implements it over HTTP
//! (docs/PROVIDERS.md, Airtm); tests implement it in memory, so the services run against
//! a real store without HTTP. The services hold it as `Arc<dyn FiatProvider>` in
//! [`crate::services::airtm::AirtmContext`].

use async_trait::async_trait;

use crate::airtm::{AirtmUser, NewPayin, NewPayout, Payin, Payout};
use crate::error::Result;

/// The port Airtm implements: users, payins (top-ups) and payouts (withdrawals), each
/// operation one provider call (docs/PROVIDERS.md, Airtm).
///
/// Amounts are [`crate::money::Amount`] base units (10^-7 USD) holding whole cents;
/// resources are identified by the provider's id or by our `code` (the top-up or
/// withdrawal id, the deduplication key: docs/PROVIDERS.md, Airtm: idempotency).
///
/// Errors follow the Airtm client's mapping (docs/PROVIDERS.md, Airtm: error codes), on
/// which the services decide: transient failures are those
/// [`crate::airtm::is_transient`] accepts (`PROVIDER_UNAVAILABLE`, `PROVIDER_TIMEOUT`,
/// `PROVIDER_ERROR` with a 5xx or transient reason code), and a refusal is a
/// `PROVIDER_ERROR` or `AIRTM_USER_*` whose `details.providerCode` holds the reason
/// code ([`crate::airtm::provider_code`]). Error texts never carry credentials.
#[async_trait]
pub trait FiatProvider: Send + Sync {
    /// The account of `email` (`GET /users/{email}`; docs/PROVIDERS.md, Airtm: user
    /// linking); `None` when there is none.
    async fn user_by_email(&self, email: &str) -> Result<Option<AirtmUser>>;

    /// Creates a payin of `p.amount` under code `p.code` (`POST /payins`;
    /// docs/PROVIDERS.md, Airtm: payins). A code already used answers with the existing
    /// payin, so retrying a create never makes a second one.
    async fn create_payin(&self, p: &NewPayin<'_>) -> Result<Payin>;

    /// The payin of provider id `id` (`GET /payins/{id}`; docs/PROVIDERS.md, Airtm:
    /// payins); `None` when unknown.
    async fn payin(&self, id: &str) -> Result<Option<Payin>>;

    /// The payin created under `code` (`GET /payins/by-code/{code}`; docs/PROVIDERS.md,
    /// Airtm: idempotency); `None` when none was.
    async fn payin_by_code(&self, code: &str) -> Result<Option<Payin>>;

    /// Cancels an unpaid payin (`DELETE /payins/{id}`; docs/PROVIDERS.md, Airtm:
    /// payins). A refusal (reason 415030: paid or final) is an error.
    async fn cancel_payin(&self, id: &str) -> Result<()>;

    /// Creates a payout of `p.amount` to `p.email` under code `p.code`, committed when
    /// `p.commit` (`POST /payouts`; docs/PROVIDERS.md, Airtm: payouts). A code already
    /// used answers with the existing payout.
    async fn create_payout(&self, p: &NewPayout<'_>) -> Result<Payout>;

    /// Commits a created payout (`POST /payouts/{id}/commit`; docs/PROVIDERS.md, Airtm:
    /// payouts); callers re-read the payout afterwards. Not idempotent: reason 415027
    /// ("already processed") comes back as an error, never retried blindly.
    async fn commit_payout(&self, id: &str) -> Result<()>;

    /// The payout of provider id `id` (`GET /payouts/{id}`; docs/PROVIDERS.md, Airtm:
    /// payouts); `None` when unknown.
    async fn payout(&self, id: &str) -> Result<Option<Payout>>;

    /// The payout created under `code` (`GET /payouts/by-code/{code}`;
    /// docs/PROVIDERS.md, Airtm: idempotency); `None` when none was.
    async fn payout_by_code(&self, code: &str) -> Result<Option<Payout>>;

    /// Cancels a payout still `CREATED` or `PENDING` (`DELETE /payouts/{id}`;
    /// docs/PROVIDERS.md, Airtm: payouts); reason 415055 otherwise.
    async fn cancel_payout(&self, id: &str) -> Result<()>;
}

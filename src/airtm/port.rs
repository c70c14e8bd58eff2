//! [`Airtm`] as the fiat provider port ([`FiatProvider`]): the HTTP adapter the top-up
//! and payout services reach Airtm through.

use super::{Airtm, AirtmUser, NewPayin, NewPayout, Payin, Payout};
use crate::error::Result;
use crate::services::fiat_provider::FiatProvider;

/// The HTTP adapter of the fiat provider port: each operation is the request named on
/// [`FiatProvider`]'s method, made by [`Airtm`]'s inherent method of the same name
/// (pacing, retries of reads, error mapping: the `airtm` module documentation).
#[async_trait::async_trait]
impl FiatProvider for Airtm {
    async fn user_by_email(&self, email: &str) -> Result<Option<AirtmUser>> {
        Airtm::user_by_email(self, email).await
    }

    async fn create_payin(&self, p: &NewPayin<'_>) -> Result<Payin> {
        Airtm::create_payin(self, p).await
    }

    async fn payin(&self, id: &str) -> Result<Option<Payin>> {
        Airtm::payin(self, id).await
    }

    async fn payin_by_code(&self, code: &str) -> Result<Option<Payin>> {
        Airtm::payin_by_code(self, code).await
    }

    async fn cancel_payin(&self, id: &str) -> Result<()> {
        Airtm::cancel_payin(self, id).await
    }

    async fn create_payout(&self, p: &NewPayout<'_>) -> Result<Payout> {
        Airtm::create_payout(self, p).await
    }

    async fn commit_payout(&self, id: &str) -> Result<()> {
        Airtm::commit_payout(self, id).await
    }

    async fn payout(&self, id: &str) -> Result<Option<Payout>> {
        Airtm::payout(self, id).await
    }

    async fn payout_by_code(&self, code: &str) -> Result<Option<Payout>> {
        Airtm::payout_by_code(self, code).await
    }

    async fn cancel_payout(&self, id: &str) -> Result<()> {
        Airtm::cancel_payout(self, id).await
    }
}

//! Trustless Work on Stellar as OfferHub's escrow provider: implements the saga engine's
//! port ([`EscrowProvider`]) with TW's builders and submission helper
//! (docs/PROVIDERS.md, Trustless Work: build, sign, send) and Horizon, which settles every
//! submission by its hash and lists what a transaction paid (docs/PROVIDERS.md, Stellar
//! and Horizon).

use async_trait::async_trait;

use super::calls::{CallTerms, call_for};
use super::{SendOutcome, TrustlessWork};
use crate::domain::transaction::TxResultCode;
use crate::error::{Error, ErrorCode, Result};
use crate::money::Amount;
use crate::services::escrow::{EscrowProvider, StepCall, Submission};
use crate::stellar::horizon::{Horizon, SubmitOutcome};
use crate::stellar::tx::SignedEnvelope;
use crate::trustless::verify::Expected;

/// Trustless Work (`tw`) and the Horizon of its network (`horizon`), with the terms every
/// request is built with.
pub struct TrustlessWorkEscrows {
    tw: TrustlessWork,
    horizon: Horizon,
    terms: CallTerms,
}

impl TrustlessWorkEscrows {
    pub fn new(tw: TrustlessWork, horizon: Horizon, terms: CallTerms) -> TrustlessWorkEscrows {
        TrustlessWorkEscrows { tw, horizon, terms }
    }

    /// TW said the submission failed: what the network says of the hash decides.
    async fn settle_refused(
        &self,
        signed: &SignedEnvelope,
        message: String,
    ) -> Result<SubmitOutcome> {
        Ok(match self.horizon.transaction(&signed.hash).await? {
            Some((true, ledger)) => SubmitOutcome::Applied {
                hash: signed.hash.clone(),
                ledger,
            },
            Some((false, _)) => SubmitOutcome::Failed {
                hash: signed.hash.clone(),
                tx_code: TxResultCode::Failed,
                op_codes: vec![message],
            },
            // Not on the network: Trustless Work's message carries Horizon's result code. A
            // sequence race (another transaction of the account landed first) or an expired
            // envelope is rebuilt, never surfaced; anything else was refused.
            None => SubmitOutcome::Failed {
                hash: signed.hash.clone(),
                tx_code: TxResultCode::named_in(&message).unwrap_or(TxResultCode::Refused),
                op_codes: vec![message],
            },
        })
    }
}

#[async_trait]
impl EscrowProvider for TrustlessWorkEscrows {
    /// The expected transaction of the step's TW call ([`call_for`]).
    fn expected(&self, call: StepCall<'_>) -> Result<Expected> {
        Ok(call_for(&self.terms, call)?.expected)
    }

    /// The step's TW request ([`call_for`]) built by TW (`POST` to its builder).
    async fn build(&self, call: StepCall<'_>) -> Result<String> {
        self.tw.build(&call_for(&self.terms, call)?.request).await
    }

    /// `POST /helper/send-transaction`, then the hash on Horizon: TW's `SUCCESS` or an
    /// unknown answer is settled with [`Horizon::submit_settled`]; TW's failure by what
    /// Horizon knows of the hash.
    async fn submit(&self, signed: &SignedEnvelope) -> Result<Submission> {
        let (outcome, contract_id) = match self.tw.send_transaction(&signed.xdr).await? {
            SendOutcome::Submitted { contract_id } => {
                (self.horizon.submit_settled(signed).await?, contract_id)
            }
            SendOutcome::Unknown { reason } => {
                tracing::warn!(hash = %signed.hash, %reason, "send-transaction outcome unknown; settling by hash");
                (self.horizon.submit_settled(signed).await?, None)
            }
            SendOutcome::Failed { message } => (self.settle_refused(signed, message).await?, None),
        };
        Ok(Submission {
            outcome,
            contract_id,
        })
    }

    /// Resubmits the envelope to Horizon (`POST /transactions`, settled by the hash) and,
    /// once applied, tells TW's indexer (`/indexer/update-from-txHash`, best effort).
    async fn settle(&self, signed: &SignedEnvelope) -> Result<SubmitOutcome> {
        let outcome = self.horizon.submit_settled(signed).await?;
        if let SubmitOutcome::Applied { hash, .. } = &outcome
            && let Err(e) = self.tw.update_from_tx_hash(hash).await
        {
            tracing::info!(error = %e, "TW indexer update failed (reads may lag)");
        }
        Ok(outcome)
    }

    /// `GET /helper/get-escrows-by-signer`, matched on the engagement id.
    async fn find_contract(&self, deployer: &str, engagement_id: &str) -> Result<Option<String>> {
        Ok(self
            .tw
            .escrows_by_signer(deployer, engagement_id)
            .await?
            .into_iter()
            .find(|e| e.engagement_id.as_deref() == Some(engagement_id))
            .and_then(|e| e.contract_id))
    }

    /// `GET /helper/get-multiple-escrow-balance`.
    async fn balances(&self, contract_ids: &[String]) -> Result<Vec<(String, Amount)>> {
        self.tw.balances(contract_ids).await
    }

    /// Horizon's `GET /transactions/{hash}/payments`: the USDC `asset_balance_changes`
    /// of type `transfer` from the contract.
    async fn payouts(&self, hash: &str, contract: &str) -> Result<Vec<(String, Amount)>> {
        let records = self.horizon.transaction_payments(hash).await?;
        if records.is_empty() {
            return Err(Error::new(
                ErrorCode::ProviderUnavailable,
                "Horizon does not list the transaction's payments yet",
            ));
        }
        let (code, issuer) = (
            self.terms.usdc.code.as_str(),
            self.terms.usdc_issuer.as_str(),
        );
        let mut out = Vec::new();
        for r in &records {
            let Some(changes) = r["asset_balance_changes"].as_array() else {
                continue;
            };
            for c in changes {
                let usdc = c["asset_code"].as_str() == Some(code)
                    && c["asset_issuer"].as_str() == Some(issuer);
                if !(usdc
                    && c["type"].as_str() == Some("transfer")
                    && c["from"].as_str() == Some(contract))
                {
                    continue;
                }
                // A transfer out of the escrow that cannot be read is an error, never
                // skipped: the books must hold every unit that left the contract. A
                // transfer of zero (the contract pays a 0 % platform fee too) moves
                // nothing and is left out.
                let amount = c["amount"].as_str().map(Amount::parse_non_negative);
                match (c["to"].as_str(), amount) {
                    (Some(_), Some(Ok(Amount::ZERO))) => {}
                    (Some(to), Some(Ok(a))) => out.push((to.to_string(), a)),
                    _ => {
                        return Err(Error::new(
                            ErrorCode::ProviderError,
                            format!(
                                "Horizon lists a transfer out of {contract} in {hash} without a recipient or a readable amount"
                            ),
                        ));
                    }
                }
            }
        }
        Ok(out)
    }
}

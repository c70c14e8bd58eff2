//! The escrow provider port: what the saga engine needs from an escrow platform, so the
//! engine depends on this trait and not on Trustless Work's HTTP API
//! (docs/ARCHITECTURE.md, The provider port). [`crate::trustless::escrows`] implements it
//! with Trustless Work and Horizon; tests implement it in memory.
//!
//! The split of duties is the saga's safety: the provider prepares a step's unsigned
//! transaction **and** says what that transaction must be (computed locally from
//! OfferHub's own records, never from the provider's answer); the engine checks the one
//! against the other ([`crate::trustless::verify`]) before any key signs, stores the
//! signed envelope before it is submitted, and settles it by its hash.

use async_trait::async_trait;

use super::{Escrow, Parties};
use crate::error::Result;
use crate::money::Amount;
use crate::services::orders::Order;
use crate::services::sagas::Step;
use crate::stellar::horizon::SubmitOutcome;
use crate::stellar::tx::SignedEnvelope;
use crate::trustless::verify::Expected;

/// What one saga step is prepared from: the order, its escrow, the parties' wallets and
/// the step (action, signer, milestone, shares).
#[derive(Clone, Copy)]
pub struct StepCall<'a> {
    pub order: &'a Order,
    pub escrow: &'a Escrow,
    pub parties: &'a Parties,
    pub step: &'a Step,
}

/// A step's unsigned transaction and what it must be.
#[derive(Clone, Debug)]
pub struct PreparedStep {
    /// The unsigned envelope (base64 XDR) as the provider built it: unverified.
    pub unsigned_xdr: String,
    /// The invocation, source, fee and validity the transaction must have.
    pub expected: Expected,
}

/// A submitted envelope's final outcome.
#[derive(Clone, Debug)]
pub struct Submission {
    /// Applied, failed (with the network's result codes) or unknown (settle later).
    pub outcome: SubmitOutcome,
    /// For a deploy: the new contract's `C…` id when the provider reported it.
    pub contract_id: Option<String>,
}

/// An escrow platform as the saga engine uses it. Errors follow the crate's codes: a
/// provider outage is `PROVIDER_UNAVAILABLE`/`PROVIDER_TIMEOUT` (the engine retries), a
/// refusal `PROVIDER_ERROR`/`ESCROW_CONTRACT_ERROR` (the engine compensates or parks).
#[async_trait]
pub trait EscrowProvider: Send + Sync {
    /// Builds the step's unsigned transaction and says what it must be.
    async fn prepare(&self, call: StepCall<'_>) -> Result<PreparedStep>;

    /// Submits a signed envelope and settles it by its hash. A sequence race or an
    /// expired envelope is `Failed` with `tx_bad_seq` / `tx_too_late` (the engine rebuilds
    /// the step).
    async fn submit(&self, envelope: &SignedEnvelope) -> Result<Submission>;

    /// Settles an envelope stored by an earlier attempt: resubmits exactly it (a known
    /// transaction answers with its result), never signing anew.
    async fn settle(&self, envelope: &SignedEnvelope) -> Result<SubmitOutcome>;

    /// The contract id of the escrow `deployer` deployed for `engagement_id` (how a
    /// deploy whose answer was lost finds its contract); `None` while unknown.
    async fn find_contract(&self, deployer: &str, engagement_id: &str) -> Result<Option<String>>;

    /// `(contract id, on-chain balance)` of each contract, in base units.
    async fn balances(&self, contract_ids: &[String]) -> Result<Vec<(String, Amount)>>;

    /// What left `contract` in the landed transaction `hash`: `(recipient, amount)` per
    /// transfer of the escrow's asset, in base units. Transient (`PROVIDER_UNAVAILABLE`)
    /// while the network does not list the transaction yet.
    async fn payouts(&self, hash: &str, contract: &str) -> Result<Vec<(String, Amount)>>;
}

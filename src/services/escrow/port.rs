//! The escrow provider port: what the saga engine needs from an escrow platform, so the
//! engine depends on this trait and not on Trustless Work's HTTP API
//! (docs/ARCHITECTURE.md, Providers). [`crate::trustless::escrows`] implements it
//! with Trustless Work and Horizon; tests implement it in memory.
//!
//! The split of duties is the saga's safety. What a step's transaction must be
//! ([`EscrowProvider::expected`]) is a plain function of OfferHub's own records: it
//! takes no transaction and does no I/O, so it cannot be derived from what the provider
//! answers. The engine checks the built transaction against it
//! ([`crate::trustless::verify`]) before any key signs, stores the signed envelope
//! before it is submitted, and settles it by its hash.

use async_trait::async_trait;

use super::{Escrow, Parties};
use crate::error::Result;
use crate::money::Amount;
use crate::services::orders::Order;
use crate::services::sagas::Step;
use crate::stellar::horizon::SubmitOutcome;
use crate::stellar::tx::SignedEnvelope;
use crate::trustless::verify::Expected;

/// What one saga step is built from: the order, its escrow, the parties' wallets, the
/// step (action, signer, milestone, shares) and, for a single-release resolution (whose
/// shares must equal it), the escrow's on-chain balance read by the engine first.
#[derive(Clone, Copy)]
pub struct StepCall<'a> {
    pub order: &'a Order,
    pub escrow: &'a Escrow,
    pub parties: &'a Parties,
    pub step: &'a Step,
    pub escrow_balance: Option<Amount>,
}

/// A submitted envelope's final outcome.
#[derive(Clone, Debug)]
pub struct Submission {
    /// Applied, failed (with the network's result codes) or unknown (settle later).
    pub outcome: SubmitOutcome,
    /// For a deploy: the new contract's `C…` id when the provider reported it.
    pub contract_id: Option<String>,
}

/// An escrow platform as the saga engine uses it. Errors follow the crate's codes, and
/// the engine classifies them ([`crate::trustless::is_transient`]): retried are
/// `PROVIDER_UNAVAILABLE`, `PROVIDER_TIMEOUT` and a `PROVIDER_ERROR` without
/// `details.providerStatus` (a 5xx, an answer of the wrong shape); definitive —
/// compensated on a saga's first step, parked after — are a `PROVIDER_ERROR` with
/// `details.providerStatus` (a 4xx), `ESCROW_CONTRACT_ERROR` and the other 4xx codes;
/// an `INTERNAL` error is a bug and parks the saga at once.
#[async_trait]
pub trait EscrowProvider: Send + Sync {
    /// What the step's transaction must be (source, contract, function, every argument,
    /// fee cap, validity), from OfferHub's records alone: no I/O, never from a
    /// provider's answer. Refusals known before any call (e.g. shares that do not add
    /// up to the escrow's balance) are errors here.
    fn expected(&self, call: StepCall<'_>) -> Result<Expected>;

    /// Has the provider build the step's unsigned transaction (base64 XDR); unverified
    /// until the engine checked it against [`EscrowProvider::expected`].
    async fn build(&self, call: StepCall<'_>) -> Result<String>;

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
    /// transfer of the escrow's asset, in base units; transfers of zero are left out.
    /// Transient (`PROVIDER_UNAVAILABLE`) while the network does not list the
    /// transaction yet.
    async fn payouts(&self, hash: &str, contract: &str) -> Result<Vec<(String, Amount)>>;
}

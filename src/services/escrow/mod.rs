//! Escrow orchestration with Trustless Work (docs/ARCHITECTURE.md, Sagas and the engine;
//! the flows of docs/API.md, Escrow; docs/PROVIDERS.md, Trustless Work).
//!
//! Every operation is a saga ([`crate::services::sagas`]) whose steps are contract calls:
//!
//! | operation | order | steps (signer) |
//! |---|---|---|
//! | create escrow | `FUNDS_RESERVED → ESCROW_CREATING → ESCROW_FUNDING` | deploy (platform) |
//! | fund | `ESCROW_FUNDING → IN_PROGRESS` | fund_escrow (buyer), exactly the order amount |
//! | release | `IN_PROGRESS → RELEASE_REQUESTED → RELEASED → CLOSED` | change_milestone_status (seller), approve_milestone (buyer), release_funds (buyer); multi-release: per unreleased milestone |
//! | refund | `IN_PROGRESS → REFUND_REQUESTED → REFUNDED → CLOSED` | dispute_escrow (buyer), resolve_dispute 100 % to the buyer (platform) |
//! | dispute | `IN_PROGRESS → DISPUTED` | dispute_escrow (buyer or seller) |
//! | resolution | `DISPUTED → CLOSED` | resolve_dispute (platform) with the decision's shares |
//! | milestones (multi-release) | `IN_PROGRESS` | change status / approve / release_milestone_funds |
//!
//! Roles: approver and releaseSigner = buyer, serviceProvider and receiver = seller,
//! platformAddress and disputeResolver = platform; the platform deploys (and pays that
//! fee). Orders with milestones get a multi-release escrow (one contract milestone per
//! order milestone, receiver = seller), others a single-release escrow with one
//! milestone.
//!
//! Each step goes through the escrow provider port ([`EscrowProvider`]; Trustless Work
//! and Horizon in production, [`crate::trustless::TrustlessWorkEscrows`]): the expected
//! transaction → the provider builds it → **verify** ([`crate::trustless::verify`]) →
//! sign with the role's wallet → store envelope + hash → submit (TW's
//! `/helper/send-transaction`) → settle by the hash (Horizon). Money: funding posts
//! the buyer's hold into `escrow:{order}`; a release or resolution credits what
//! **actually arrived** — read from the transaction's `asset_balance_changes` on
//! Horizon — to the seller/buyer, the platform fee to `fees:platform` and Trustless
//! Work's fee to `fees:trustless`, so balances equal the chain (docs/PROVIDERS.md,
//! Trustless Work: fees).
//!
//! A definitive failure of a saga's first step (nothing reached the chain) compensates:
//! the order returns to its state before the call (the hold stays until the order is
//! canceled). A failure after a step landed parks the saga `NEEDS_ATTENTION`.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::Row;
use tracing::Instrument;

use crate::context::Context;
use crate::domain::dispute::Decision;
pub use crate::domain::escrow::{EscrowKind, EscrowStatus, MilestoneStatus};
use crate::domain::order::{AutoReleaseStatus, CloseOutcome, OrderStatus, transition};
use crate::domain::saga::{SagaKind, SagaStatus};
use crate::domain::wallet::WalletStatus;
use crate::error::{Error, ErrorCode, Result};
use crate::events::NewEvent;
use crate::ids::{IdKind, new_id};
use crate::ledger::{self, Posting};
use crate::money::Amount;
use crate::services::orders::{self, Order};
use crate::services::sagas::{self, Action, Party, Plan, Saga, Share, Step};
use crate::services::wallets::{self, StellarContext, Wallet};
use crate::stellar::horizon::SubmitOutcome;
use crate::stellar::tx;
use crate::store::{Store, Tx};
use crate::trustless::{self as tw, verify};

mod bookkeeping;
mod engine;
mod operations;
mod parties;
mod plan;
mod port;
mod storage;

use bookkeeping::*;
use engine::*;
use storage::*;

pub use engine::{drive, resume_due, run};
pub use operations::{
    auto_release, create, fee_bps, fund, milestone, refund, release, start_dispute, start_resolve,
};
pub use parties::Parties;
pub use plan::{dispute_steps, refund_steps, release_steps, resolution_steps};
pub use port::{EscrowProvider, StepCall, Submission};
pub use storage::{Escrow, escrows_of, for_order, is_own_contract};

/// Tunables of escrow orchestration.
#[derive(Clone, Debug)]
pub struct EscrowSettings {
    /// Default platform fee in basis points (`TRUSTLESS_PLATFORM_FEE` percent × 100).
    pub platform_fee_bps: u32,
    /// How long an API call waits for its saga before answering 202.
    pub wait: Duration,
    /// Transient failures of one step before the saga parks `NEEDS_ATTENTION`.
    pub max_attempts: u32,
    /// An executor's lease on a saga (renewed at every step); after a crash another
    /// executor resumes the saga once it expires.
    pub lease_secs: i64,
}

/// What escrow code needs: the Stellar context (wallets, keys, per-account submission
/// locks), the escrow provider ([`EscrowProvider`]: Trustless Work in production), the settings.
pub struct EscrowContext {
    pub sc: Arc<StellarContext>,
    pub provider: Arc<dyn EscrowProvider>,
    pub settings: EscrowSettings,
}

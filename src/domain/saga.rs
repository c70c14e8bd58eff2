//! Sagas (docs/ARCHITECTURE.md, Sagas and the engine): what a saga does ([`SagaKind`])
//! and where it is ([`SagaStatus`]).
//!
//! `RUNNING → COMPLETED | COMPENSATED | NEEDS_ATTENTION`, and `NEEDS_ATTENTION → RUNNING`
//! when an operator retries it. `COMPLETED` and `COMPENSATED` are final.

text_enum! {
    /// Where a saga is.
    pub enum SagaStatus {
        /// Steps left to run (or a step's outcome to settle); a worker leases it.
        Running = "RUNNING",
        /// Every step applied and the bookkeeping done.
        Completed = "COMPLETED",
        /// A definitive failure before anything reached the chain: undone.
        Compensated = "COMPENSATED",
        /// Parked for an operator: something reached the chain and cannot be undone
        /// automatically, or the step failed `saga_max_attempts` times, or a bug.
        NeedsAttention = "NEEDS_ATTENTION",
    }
}

impl SagaStatus {
    /// The states reachable from this one.
    pub fn next(self) -> &'static [SagaStatus] {
        use SagaStatus::*;
        match self {
            Running => &[Completed, Compensated, NeedsAttention],
            NeedsAttention => &[Running],
            Completed | Compensated => &[],
        }
    }

    /// Whether an operator may retry a saga in this state (`offerhub sagas retry`).
    pub fn retryable(self) -> bool {
        matches!(self, SagaStatus::Running | SagaStatus::NeedsAttention)
    }

    /// Whether the saga has ended for good.
    pub fn is_final(self) -> bool {
        self.next().is_empty()
    }
}

text_enum! {
    /// What a saga does to an order's escrow.
    pub enum SagaKind {
        EscrowDeploy = "ESCROW_DEPLOY",
        EscrowFund = "ESCROW_FUND",
        Release = "RELEASE",
        Refund = "REFUND",
        Dispute = "DISPUTE",
        Resolve = "RESOLVE",
        MilestoneComplete = "MILESTONE_COMPLETE",
        MilestoneApprove = "MILESTONE_APPROVE",
        MilestoneRelease = "MILESTONE_RELEASE",
    }
}

impl SagaKind {
    /// Whether the saga's last step pays money out of the escrow (its completion
    /// closes the order or a milestone).
    pub fn pays_out(self) -> bool {
        matches!(
            self,
            SagaKind::Release | SagaKind::Refund | SagaKind::Resolve | SagaKind::MilestoneRelease
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip_and_final_states_have_no_successor() {
        for s in SagaStatus::ALL {
            assert_eq!(SagaStatus::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert!(!s.next().contains(s));
        }
        for k in SagaKind::ALL {
            assert_eq!(SagaKind::parse(k.as_str()), Some(*k));
        }
        assert!(SagaStatus::Completed.is_final() && SagaStatus::Compensated.is_final());
        assert!(!SagaStatus::NeedsAttention.is_final());
        assert_eq!(SagaStatus::parse("running"), None);
    }
}

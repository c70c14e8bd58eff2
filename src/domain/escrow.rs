//! Escrows (Trustless Work contracts; docs/ARCHITECTURE.md, State machines):
//! [`EscrowKind`], [`EscrowStatus`] and, for multi-release escrows, [`MilestoneStatus`].
//!
//! Escrow: `CREATING → CREATED → FUNDING → FUNDED → {RELEASED | REFUNDED | DISPUTED →
//! {RELEASED | REFUNDED | RESOLVED}}`; a failed funding goes back `FUNDING → CREATED`; an
//! order cancelled after deploy and before funding ends `CREATED → CANCELED`. A failed
//! deploy deletes the `CREATING` row (no contract exists).
//!
//! Milestone: `PENDING → COMPLETED → APPROVED → RELEASED`, and `DISPUTED → RESOLVED` from
//! any state before `RELEASED`.

text_enum! {
    /// Trustless Work's two contract kinds (the path segment of its API).
    pub enum EscrowKind {
        /// One amount, released or refunded at once.
        SingleRelease = "single-release",
        /// Milestones, each with its own amount, released one by one.
        MultiRelease = "multi-release",
    }
}

text_enum! {
    /// Where an order's escrow is.
    pub enum EscrowStatus {
        /// Row written, contract not yet deployed.
        Creating = "CREATING",
        /// Contract deployed, not funded.
        Created = "CREATED",
        /// Funding transaction under way.
        Funding = "FUNDING",
        /// The contract holds the amount.
        Funded = "FUNDED",
        Disputed = "DISPUTED",
        Released = "RELEASED",
        Refunded = "REFUNDED",
        /// A dispute resolved with a split.
        Resolved = "RESOLVED",
        /// The order was cancelled after deploy, before funding.
        Canceled = "CANCELED",
    }
}

impl EscrowStatus {
    /// The states reachable from this one.
    pub fn next(self) -> &'static [EscrowStatus] {
        use EscrowStatus::*;
        match self {
            Creating => &[Created],
            Created => &[Funding, Canceled],
            Funding => &[Funded, Created],
            Funded => &[Released, Refunded, Disputed],
            Disputed => &[Released, Refunded, Resolved],
            Released | Refunded | Resolved | Canceled => &[],
        }
    }

    /// Whether the contract has paid everything out (or was never funded and is done).
    pub fn is_closed(self) -> bool {
        self.next().is_empty()
    }
}

text_enum! {
    /// Where a milestone of a multi-release escrow is.
    pub enum MilestoneStatus {
        Pending = "PENDING",
        /// The seller marked it done.
        Completed = "COMPLETED",
        /// The buyer approved it: it may be released.
        Approved = "APPROVED",
        Disputed = "DISPUTED",
        Released = "RELEASED",
        /// Its dispute was resolved (released, refunded or split).
        Resolved = "RESOLVED",
    }
}

impl MilestoneStatus {
    /// The states reachable from this one.
    pub fn next(self) -> &'static [MilestoneStatus] {
        use MilestoneStatus::*;
        match self {
            Pending => &[Completed, Approved, Disputed],
            Completed => &[Approved, Disputed],
            Approved => &[Released, Disputed],
            Disputed => &[Resolved],
            Released | Resolved => &[],
        }
    }

    /// Whether the milestone's money has left the escrow.
    pub fn is_paid_out(self) -> bool {
        matches!(self, MilestoneStatus::Released | MilestoneStatus::Resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every state reaches one without successors (no cycle traps an escrow).
    fn reaches_end<S: Copy + PartialEq>(all: &[S], next: fn(S) -> &'static [S]) {
        for s in all {
            let (mut seen, mut frontier) = (vec![*s], vec![*s]);
            while let Some(x) = frontier.pop() {
                for n in next(x) {
                    if !seen.contains(n) {
                        seen.push(*n);
                        frontier.push(*n);
                    }
                }
            }
            assert!(seen.iter().any(|x| next(*x).is_empty()));
        }
    }

    #[test]
    fn texts_round_trip_and_every_state_reaches_an_end() {
        assert_eq!(
            EscrowKind::parse("multi-release"),
            Some(EscrowKind::MultiRelease)
        );
        assert_eq!(
            serde_json::to_value(EscrowKind::SingleRelease).unwrap(),
            "single-release"
        );
        for s in EscrowStatus::ALL {
            assert_eq!(EscrowStatus::parse(s.as_str()), Some(*s));
            assert!(!s.next().contains(s));
        }
        for m in MilestoneStatus::ALL {
            assert_eq!(MilestoneStatus::parse(m.as_str()), Some(*m));
            assert!(!m.next().contains(m));
        }
        reaches_end(EscrowStatus::ALL, EscrowStatus::next);
        reaches_end(MilestoneStatus::ALL, MilestoneStatus::next);
        assert!(MilestoneStatus::Resolved.is_paid_out());
        assert!(!MilestoneStatus::Approved.is_paid_out());
    }
}

//! Disputes (docs/ARCHITECTURE.md, State machines): [`DisputeStatus`] and the operator's
//! [`Decision`].
//!
//! `OPENING → OPEN → UNDER_REVIEW → RESOLVING → RESOLVED`; `OPEN → RESOLVING` directly is
//! allowed too. A compensated opening ends `OPENING → FAILED`; a compensated resolution
//! goes back `RESOLVING → OPEN | UNDER_REVIEW` (where it was).

text_enum! {
    /// Where a dispute is.
    pub enum DisputeStatus {
        /// The on-chain dispute call is under way (its saga runs).
        Opening = "OPENING",
        Open = "OPEN",
        /// An operator took it (`assignedTo`).
        UnderReview = "UNDER_REVIEW",
        /// The decision's on-chain resolution is under way.
        Resolving = "RESOLVING",
        Resolved = "RESOLVED",
        /// The on-chain dispute call failed definitively (compensated).
        Failed = "FAILED",
    }
}

impl DisputeStatus {
    /// Every state in which the dispute blocks the order (one such dispute per order).
    pub const ACTIVE: [DisputeStatus; 4] = [
        DisputeStatus::Opening,
        DisputeStatus::Open,
        DisputeStatus::UnderReview,
        DisputeStatus::Resolving,
    ];

    /// States from which an operator may assign or resolve the dispute.
    pub const DECIDABLE: [DisputeStatus; 2] = [DisputeStatus::Open, DisputeStatus::UnderReview];

    /// The states reachable from this one.
    pub fn next(self) -> &'static [DisputeStatus] {
        use DisputeStatus::*;
        match self {
            Opening => &[Open, Failed],
            Open => &[UnderReview, Resolving],
            UnderReview => &[Resolving],
            Resolving => &[Resolved, Open, UnderReview],
            Resolved | Failed => &[],
        }
    }
}

text_enum! {
    /// How a dispute ends.
    pub enum Decision {
        /// Everything to the seller (net of the platform fee).
        FullRelease = "FULL_RELEASE",
        /// Everything back to the buyer.
        FullRefund = "FULL_REFUND",
        /// `releaseAmount` to the seller and `refundAmount` to the buyer.
        Split = "SPLIT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip_and_decidable_states_can_resolve() {
        for s in DisputeStatus::ALL {
            assert_eq!(DisputeStatus::parse(s.as_str()), Some(*s));
            assert!(!s.next().contains(s));
        }
        for s in DisputeStatus::DECIDABLE {
            assert!(s.next().contains(&DisputeStatus::Resolving));
        }
        for d in Decision::ALL {
            assert_eq!(Decision::parse(d.as_str()), Some(*d));
        }
    }
}

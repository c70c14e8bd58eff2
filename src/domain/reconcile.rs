//! Reconciliation against Stellar ([`crate::services::reconcile`]): the verdict of one
//! check (a wallet, an escrow, the platform account).

text_enum! {
    /// The verdict of one reconciliation check.
    pub enum CheckStatus {
        /// The chain and the ledger agree.
        Ok = "ok",
        /// They differ by money known to be moving (a withdrawal being paid, a top-up
        /// being settled).
        InFlight = "in_flight",
        /// They differ: a discrepancy.
        Mismatch = "mismatch",
        /// The wallet is not on chain yet and the ledger holds nothing for it.
        NotActivated = "not_activated",
        /// Airtm mode, the platform (treasury) account: USDC beyond what the ledger owes
        /// is the treasury's float, not a discrepancy (a negative float is one).
        Float = "float",
    }
}

impl CheckStatus {
    /// Whether the check is a discrepancy.
    pub fn is_discrepancy(self) -> bool {
        self == CheckStatus::Mismatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip() {
        for s in CheckStatus::ALL {
            assert_eq!(CheckStatus::parse(s.as_str()), Some(*s));
        }
        assert!(CheckStatus::Mismatch.is_discrepancy() && !CheckStatus::InFlight.is_discrepancy());
    }
}

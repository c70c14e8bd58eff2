//! Withdrawals: USDC to an outside Stellar address ([`crate::services::withdrawals`]) or
//! an Airtm payout ([`crate::services::payouts`]).
//!
//! Crypto: `WITHDRAWAL_CREATED → WITHDRAWAL_PENDING → WITHDRAWAL_COMPLETED |
//! WITHDRAWAL_FAILED`. Airtm payout: `WITHDRAWAL_CREATED → {WITHDRAWAL_COMMITTED,
//! WITHDRAWAL_PENDING_USER_ACTION, WITHDRAWAL_NEEDS_ATTENTION} → WITHDRAWAL_SETTLING →
//! WITHDRAWAL_COMPLETED`, or `WITHDRAWAL_CANCELED` / `WITHDRAWAL_FAILED` from an open
//! state (the hold voided).

text_enum! {
    /// Where a withdrawal is.
    pub enum WithdrawalStatus {
        Created = "WITHDRAWAL_CREATED",
        /// Crypto: the payment's envelope is stored and submitted.
        Pending = "WITHDRAWAL_PENDING",
        /// Airtm accepted the committed payout.
        Committed = "WITHDRAWAL_COMMITTED",
        /// Airtm waits for the recipient.
        PendingUserAction = "WITHDRAWAL_PENDING_USER_ACTION",
        /// Airtm completed; the USDC sweep to the treasury is under way.
        Settling = "WITHDRAWAL_SETTLING",
        Completed = "WITHDRAWAL_COMPLETED",
        Failed = "WITHDRAWAL_FAILED",
        Canceled = "WITHDRAWAL_CANCELED",
        /// Airtm answered `ERROR`: the hold is kept for an operator.
        NeedsAttention = "WITHDRAWAL_NEEDS_ATTENTION",
    }
}

impl WithdrawalStatus {
    /// Crypto withdrawals not yet settled.
    pub const CRYPTO_OPEN: [WithdrawalStatus; 2] =
        [WithdrawalStatus::Created, WithdrawalStatus::Pending];

    /// Airtm payouts whose status may still change by Airtm's word.
    pub const PAYOUT_OPEN: [WithdrawalStatus; 4] = [
        WithdrawalStatus::Created,
        WithdrawalStatus::Committed,
        WithdrawalStatus::PendingUserAction,
        WithdrawalStatus::NeedsAttention,
    ];

    /// The states reachable from this one.
    pub fn next(self) -> &'static [WithdrawalStatus] {
        use WithdrawalStatus::*;
        match self {
            Created => &[
                Pending,
                Committed,
                PendingUserAction,
                NeedsAttention,
                Settling,
                Completed,
                Failed,
                Canceled,
            ],
            Pending => &[Completed, Failed],
            Committed | PendingUserAction | NeedsAttention => &[
                Committed,
                PendingUserAction,
                NeedsAttention,
                Settling,
                Failed,
                Canceled,
            ],
            Settling => &[Completed],
            Completed | Failed | Canceled => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip() {
        for s in WithdrawalStatus::ALL {
            assert_eq!(WithdrawalStatus::parse(s.as_str()), Some(*s));
        }
        for s in WithdrawalStatus::PAYOUT_OPEN {
            assert!(s.next().contains(&WithdrawalStatus::Settling));
        }
    }
}

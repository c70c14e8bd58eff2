//! Top-ups: fiat in through an Airtm payin ([`crate::services::topups`] has the flow).
//!
//! `TOPUP_CREATED → TOPUP_AWAITING_USER_CONFIRMATION → TOPUP_PROCESSING → TOPUP_SETTLING →
//! TOPUP_SUCCEEDED`; any open state before settling may end `TOPUP_CANCELED` or
//! `TOPUP_FAILED` (and Airtm's expiry closes an unconfirmed one). A payin Airtm confirms
//! after we saw it fail or cancel is still credited (the money arrived):
//! `CANCELED | FAILED → SETTLING`.

text_enum! {
    /// Where a top-up is.
    pub enum TopUpStatus {
        Created = "TOPUP_CREATED",
        /// The buyer must confirm on Airtm's hosted checkout (`confirmationUri`).
        AwaitingUserConfirmation = "TOPUP_AWAITING_USER_CONFIRMATION",
        /// Airtm says `PROCESSING`.
        Processing = "TOPUP_PROCESSING",
        /// Airtm confirmed; the treasury's USDC payment to the user's wallet is under way.
        Settling = "TOPUP_SETTLING",
        Succeeded = "TOPUP_SUCCEEDED",
        Failed = "TOPUP_FAILED",
        Canceled = "TOPUP_CANCELED",
    }
}

impl TopUpStatus {
    /// States from which the top-up may still change by Airtm's word.
    pub const OPEN: [TopUpStatus; 4] = [
        TopUpStatus::Created,
        TopUpStatus::AwaitingUserConfirmation,
        TopUpStatus::Processing,
        TopUpStatus::Settling,
    ];

    /// States in which the buyer has not confirmed yet: cancelable, and closed by
    /// Airtm's expiry.
    pub const UNCONFIRMED: [TopUpStatus; 2] =
        [TopUpStatus::Created, TopUpStatus::AwaitingUserConfirmation];

    /// The states reachable from this one.
    pub fn next(self) -> &'static [TopUpStatus] {
        use TopUpStatus::*;
        match self {
            Created => &[
                AwaitingUserConfirmation,
                Processing,
                Settling,
                Failed,
                Canceled,
            ],
            AwaitingUserConfirmation => &[Processing, Settling, Failed, Canceled],
            Processing => &[Settling, Failed, Canceled],
            Settling => &[Succeeded],
            Failed | Canceled => &[Settling],
            Succeeded => &[],
        }
    }

    /// Whether the status may still change by Airtm's word.
    pub fn is_open(self) -> bool {
        Self::OPEN.contains(&self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip() {
        for s in TopUpStatus::ALL {
            assert_eq!(TopUpStatus::parse(s.as_str()), Some(*s));
            assert!(!s.next().contains(s));
        }
        assert!(TopUpStatus::Settling.is_open() && !TopUpStatus::Succeeded.is_open());
    }
}

//! Users and their holds ([`crate::services::users`], [`crate::ledger`]).
//!
//! User: `ACTIVE ⇄ SUSPENDED`. Hold: `PENDING → POSTED | VOIDED` (posted: the reserved
//! money moved, e.g. into an escrow; voided: it went back to available).

text_enum! {
    /// A suspended user starts no new money movement.
    pub enum UserStatus {
        Active = "ACTIVE",
        Suspended = "SUSPENDED",
    }
}

text_enum! {
    /// Where a hold (funds set aside: available → reserved) is.
    pub enum HoldStatus {
        Pending = "PENDING",
        Posted = "POSTED",
        Voided = "VOIDED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip() {
        for s in UserStatus::ALL {
            assert_eq!(UserStatus::parse(s.as_str()), Some(*s));
        }
        for s in HoldStatus::ALL {
            assert_eq!(HoldStatus::parse(s.as_str()), Some(*s));
        }
    }
}

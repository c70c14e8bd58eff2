//! Wallets (docs/ARCHITECTURE.md, Wallets and keys): [`WalletKind`] and [`WalletStatus`].
//!
//! `PENDING_ACTIVATION → ACTIVE | FAILED`; a failed activation may be retried
//! (`FAILED → PENDING_ACTIVATION`), and a wallet found not yet created on chain goes back
//! `ACTIVE → PENDING_ACTIVATION`.

text_enum! {
    /// Whose wallet it is.
    pub enum WalletKind {
        /// A user's invisible wallet.
        User = "USER",
        /// The platform's wallet (fees; the treasury in Airtm mode).
        Platform = "PLATFORM",
    }
}

text_enum! {
    /// Whether the wallet exists on chain with its USDC trustline.
    pub enum WalletStatus {
        PendingActivation = "PENDING_ACTIVATION",
        Active = "ACTIVE",
        Failed = "FAILED",
    }
}

impl WalletStatus {
    /// The states reachable from this one.
    pub fn next(self) -> &'static [WalletStatus] {
        use WalletStatus::*;
        match self {
            PendingActivation => &[Active, Failed],
            Active => &[PendingActivation],
            Failed => &[PendingActivation, Active],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip() {
        for s in WalletStatus::ALL {
            assert_eq!(WalletStatus::parse(s.as_str()), Some(*s));
            assert!(!s.next().contains(s));
        }
        assert_eq!(WalletKind::parse("PLATFORM"), Some(WalletKind::Platform));
    }
}

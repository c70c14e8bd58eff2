//! A Stellar transaction's result code, as Horizon answers a submission that failed
//! (`extras.result_codes.transaction` of `POST /transactions`' 400 problem; the codes are
//! Stellar's `TransactionResultCode`, docs/PROVIDERS.md, Stellar and Horizon: submission).

use std::fmt;

/// Why a submitted transaction did not apply. The codes OfferHub decides on are
/// variants; any other is kept as Horizon sent it ([`TxResultCode::Other`]). Built by
/// [`TxResultCode::parse`] only: an `Other` holding a known text would not equal its
/// variant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TxResultCode {
    /// `tx_failed`: in a ledger, but one of its operations failed (the operations'
    /// codes say which); also what a transaction recorded as failed on chain is.
    Failed,
    /// `tx_too_late`: past the max time of its time bounds; it can never land.
    TooLate,
    /// `tx_bad_seq`: its sequence number is not the source account's next (another
    /// transaction of the account landed first); this envelope can never land.
    BadSeq,
    /// `tx_refused` (OfferHub's, not Stellar's): Trustless Work answered that the
    /// submission failed and the transaction is not on the network.
    Refused,
    /// Any other code (`tx_bad_auth`, `tx_insufficient_fee`, …), as sent.
    Other(String),
}

impl TxResultCode {
    /// The code for Horizon's text (unknown texts are [`TxResultCode::Other`]).
    pub fn parse(code: &str) -> TxResultCode {
        match code {
            "tx_failed" => TxResultCode::Failed,
            "tx_too_late" => TxResultCode::TooLate,
            "tx_bad_seq" => TxResultCode::BadSeq,
            "tx_refused" => TxResultCode::Refused,
            other => TxResultCode::Other(other.to_string()),
        }
    }

    /// Horizon's text of the code.
    pub fn as_str(&self) -> &str {
        match self {
            TxResultCode::Failed => "tx_failed",
            TxResultCode::TooLate => "tx_too_late",
            TxResultCode::BadSeq => "tx_bad_seq",
            TxResultCode::Refused => "tx_refused",
            TxResultCode::Other(code) => code,
        }
    }

    /// Whether this envelope can never land, so a new one (fresh sequence number and
    /// time bounds) may be built: `tx_too_late` or `tx_bad_seq`.
    pub fn can_no_longer_land(&self) -> bool {
        matches!(self, TxResultCode::TooLate | TxResultCode::BadSeq)
    }

    /// `Some(BadSeq)` or `Some(TooLate)` when a provider's free-text failure message
    /// contains `tx_bad_seq` (looked for first) or `tx_too_late`; else `None`.
    pub fn named_in(message: &str) -> Option<TxResultCode> {
        [TxResultCode::BadSeq, TxResultCode::TooLate]
            .into_iter()
            .find(|c| message.contains(c.as_str()))
    }
}

impl fmt::Display for TxResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip_and_unknown_codes_are_kept() {
        for code in [
            "tx_failed",
            "tx_too_late",
            "tx_bad_seq",
            "tx_refused",
            "tx_bad_auth",
        ] {
            assert_eq!(TxResultCode::parse(code).as_str(), code);
        }
        assert_eq!(
            TxResultCode::parse("tx_bad_auth"),
            TxResultCode::Other("tx_bad_auth".into())
        );
        assert!(TxResultCode::parse("tx_bad_seq").can_no_longer_land());
        assert!(TxResultCode::parse("tx_too_late").can_no_longer_land());
        assert!(!TxResultCode::parse("tx_failed").can_no_longer_land());
        assert_eq!(
            TxResultCode::named_in("HostError: ... tx_bad_seq ..."),
            Some(TxResultCode::BadSeq)
        );
        assert_eq!(TxResultCode::named_in("contract panicked"), None);
    }
}

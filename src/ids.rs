//! Prefixed resource identifiers: `usr_`, `ord_`, `esc_`, … followed by 32 random
//! alphanumeric characters (≈190 bits), so ids are unguessable and never collide.

use rand::Rng;
use rand::distr::Alphanumeric;

/// The kinds of resource that carry a prefixed id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    User,
    Order,
    Escrow,
    Dispute,
    Withdrawal,
    TopUp,
    Event,
    Audit,
    ApiKey,
    Wallet,
    Hold,
    Journal,
    WebhookEndpoint,
    WebhookDelivery,
    Saga,
    DisputeComment,
    InboundWebhook,
    /// A scheduled reconciliation run.
    Reconciliation,
}

impl IdKind {
    /// The prefix including its trailing underscore.
    pub const fn prefix(self) -> &'static str {
        match self {
            IdKind::User => "usr_",
            IdKind::Order => "ord_",
            IdKind::Escrow => "esc_",
            IdKind::Dispute => "dsp_",
            IdKind::Withdrawal => "wd_",
            IdKind::TopUp => "topup_",
            IdKind::Event => "evt_",
            IdKind::Audit => "aud_",
            IdKind::ApiKey => "key_",
            IdKind::Wallet => "wal_",
            IdKind::Hold => "hold_",
            IdKind::Journal => "jtx_",
            IdKind::WebhookEndpoint => "whe_",
            IdKind::WebhookDelivery => "whd_",
            IdKind::Saga => "sag_",
            IdKind::DisputeComment => "dcm_",
            IdKind::InboundWebhook => "iwh_",
            IdKind::Reconciliation => "rec_",
        }
    }
}

/// Length of the random part of every id.
pub const RANDOM_LEN: usize = 32;

/// Random alphanumeric string of `len` characters from the OS-seeded thread RNG.
pub fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A fresh id of the given kind, e.g. `usr_3kQ…` (prefix + 32 alphanumerics).
pub fn new_id(kind: IdKind) -> String {
    format!("{}{}", kind.prefix(), random_alphanumeric(RANDOM_LEN))
}

/// Whether `s` is shaped like an id of `kind` (prefix + 1..=64 alphanumerics). Used to
/// reject malformed path parameters before they reach the database.
pub fn is_valid(kind: IdKind, s: &str) -> bool {
    match s.strip_prefix(kind.prefix()) {
        Some(rest) => {
            !rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_length() {
        let id = new_id(IdKind::TopUp);
        assert!(id.starts_with("topup_"));
        assert_eq!(id.len(), "topup_".len() + RANDOM_LEN);
        assert!(is_valid(IdKind::TopUp, &id));
        assert!(!is_valid(IdKind::User, &id));
        assert!(!is_valid(IdKind::User, "usr_"));
        assert!(!is_valid(IdKind::User, "usr_abc'--"));
        assert_ne!(new_id(IdKind::User), new_id(IdKind::User));
    }
}

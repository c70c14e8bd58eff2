//! Prefixed resource identifiers: `usr_`, `ord_`, `esc_`, … followed by 32
//! alphanumeric characters: the creation time, then ≈137 random bits, so ids are
//! unguessable, never collide, and are inserted at the end of their indexes.

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

/// Characters of an id's time part ([`new_id`]).
pub const TIME_LEN: usize = 9;

/// A fresh id of the given kind, e.g. `jtx_mis7k2q0d3kQ…`: prefix + 32 alphanumerics —
/// [`TIME_LEN`] lowercase base-36 digits of the creation time (Unix milliseconds, fixed
/// width), then 23 random alphanumerics (≈137 bits, unguessable).
///
/// Time first, so that ids sort by creation in byte order and in every common
/// collation (digits, then lowercase letters): each index on an id column is appended
/// at its right edge instead of at a random leaf. With random ids every insert dirtied
/// a random index page of its own — in SQLite a page appended to the write-ahead log
/// by every commit, in PostgreSQL a page read and a full-page image after each
/// checkpoint (docs/PERFORMANCE.md). Ids made in one millisecond share the time part
/// and differ in the random one.
pub fn new_id(kind: IdKind) -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut id = String::with_capacity(kind.prefix().len() + RANDOM_LEN);
    id.push_str(kind.prefix());
    id.push_str(&base36_fixed(millis));
    id.push_str(&random_alphanumeric(RANDOM_LEN - TIME_LEN));
    id
}

/// `n` in lowercase base 36, [`TIME_LEN`] digits, zero-padded (the top digits of a value
/// beyond 36^9 ms — year 5188 — are dropped).
fn base36_fixed(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = [b'0'; TIME_LEN];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    out.iter().map(|&b| char::from(b)).collect()
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

    #[test]
    fn ids_sort_by_creation_time() {
        assert_eq!(base36_fixed(0), "000000000");
        assert_eq!(base36_fixed(35), "00000000z");
        assert_eq!(base36_fixed(36), "000000010");
        // Later times sort later, in byte order and case-insensitively alike.
        let (a, b) = (
            base36_fixed(1_764_000_000_000),
            base36_fixed(1_764_000_000_001),
        );
        assert!(a < b && a.to_lowercase() < b.to_lowercase());
        let first = new_id(IdKind::Journal);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = new_id(IdKind::Journal);
        assert!(first < second, "{first} then {second}");
        assert!(is_valid(IdKind::Journal, &second));
        assert_eq!(second.len(), "jtx_".len() + RANDOM_LEN);
    }
}

//! The one error type of OfferHub. Every failure a caller can see is an [`Error`] with a
//! stable [`ErrorCode`]; the daemon renders it as the error envelope
//! `{"error": {"code", "message", "statusCode", "details"?}}` with the code's HTTP status.
//!
//! Messages never carry secrets: internal failures (database, I/O) are logged with their
//! cause and shown to callers only as `INTERNAL_ERROR` with a generic message.

use serde_json::Value;

/// Declares every error code once: its variant, wire spelling and HTTP status. Generates
/// [`ErrorCode`], [`ErrorCode::ALL`], [`ErrorCode::as_str`] and [`ErrorCode::http_status`].
macro_rules! error_codes {
    ($($variant:ident => $wire:literal, $status:literal;)*) => {
        /// Stable, documented error codes, each with its HTTP status. docs/ERRORS.md
        /// explains each one (a test checks).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The wire spelling, e.g. `INSUFFICIENT_FUNDS`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $wire,)*
                }
            }

            /// The HTTP status the daemon answers with.
            pub const fn http_status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)*
                }
            }
        }
    };
}

error_codes! {
    ValidationError => "VALIDATION_ERROR", 400;
    InvalidAmountFormat => "INVALID_AMOUNT_FORMAT", 400;
    InvalidRequest => "INVALID_REQUEST", 400;
    Unauthorized => "UNAUTHORIZED", 401;
    InsufficientScope => "INSUFFICIENT_SCOPE", 403;
    NotFound => "NOT_FOUND", 404;
    UserNotFound => "USER_NOT_FOUND", 404;
    ApiKeyNotFound => "API_KEY_NOT_FOUND", 404;
    OrderNotFound => "ORDER_NOT_FOUND", 404;
    InsufficientFunds => "INSUFFICIENT_FUNDS", 422;
    InvalidStateTransition => "INVALID_STATE_TRANSITION", 409;
    IdempotencyConflict => "IDEMPOTENCY_CONFLICT", 409;
    ClientOrderRefConflict => "CLIENT_ORDER_REF_CONFLICT", 409;
    IdempotencyKeyInProgress => "IDEMPOTENCY_KEY_IN_PROGRESS", 409;
    UserSuspended => "USER_SUSPENDED", 422;
    WithdrawalDestinationInvalid => "WITHDRAWAL_DESTINATION_INVALID", 422;
    WithdrawalNotFound => "WITHDRAWAL_NOT_FOUND", 404;
    PayloadTooLarge => "PAYLOAD_TOO_LARGE", 413;
    UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE", 415;
    AmountOutOfRange => "AMOUNT_OUT_OF_RANGE", 422;
    FeatureNotEnabled => "FEATURE_NOT_ENABLED", 422;
    MethodNotAllowed => "METHOD_NOT_ALLOWED", 405;
    RateLimited => "RATE_LIMITED", 429;
    Internal => "INTERNAL_ERROR", 500;
    ProviderError => "PROVIDER_ERROR", 502;
    ProviderTimeout => "PROVIDER_TIMEOUT", 504;
    ProviderUnavailable => "PROVIDER_UNAVAILABLE", 503;
    EscrowNotFound => "ESCROW_NOT_FOUND", 404;
    DisputeNotFound => "DISPUTE_NOT_FOUND", 404;
    MilestoneNotFound => "MILESTONE_NOT_FOUND", 404;
    SagaNotFound => "SAGA_NOT_FOUND", 404;
    EscrowAlreadyExists => "ESCROW_ALREADY_EXISTS", 409;
    DisputeAlreadyOpen => "DISPUTE_ALREADY_OPEN", 409;
    OperationInProgress => "OPERATION_IN_PROGRESS", 409;
    EscrowContractError => "ESCROW_CONTRACT_ERROR", 422;
    WalletNotReady => "WALLET_NOT_READY", 422;
    XdrVerificationFailed => "XDR_VERIFICATION_FAILED", 502;
    TopupNotFound => "TOPUP_NOT_FOUND", 404;
    AirtmUserNotFound => "AIRTM_USER_NOT_FOUND", 422;
    AirtmUserNotLinked => "AIRTM_USER_NOT_LINKED", 422;
    AirtmUserInvalid => "AIRTM_USER_INVALID", 422;
    WithdrawalNotCommittable => "WITHDRAWAL_NOT_COMMITTABLE", 409;
}

/// An error with its code, a human message and optional structured details.
#[derive(Debug, Clone)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
    /// Set by [`Error::unavailable`]: an `INTERNAL_ERROR` caused by the environment (the
    /// database unreachable, a lock timeout, a serialization conflict) rather than by a
    /// bug. Never shown to callers; the saga engine retries such errors and parks on
    /// any other internal error at once ([`Error::is_unavailable`]).
    unavailable: bool,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            details: None,
            unavailable: false,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 400 `VALIDATION_ERROR` naming the offending field: message `"{field}: {problem}"`,
    /// details `{"field": field}`.
    pub fn validation(field: &str, problem: impl std::fmt::Display) -> Self {
        Error::new(ErrorCode::ValidationError, format!("{field}: {problem}"))
            .with_details(serde_json::json!({ "field": field }))
    }

    /// 400 `INVALID_AMOUNT_FORMAT` for a bad decimal string in `field`.
    pub fn amount(field: &str, problem: impl std::fmt::Display) -> Self {
        Error::new(
            ErrorCode::InvalidAmountFormat,
            format!("{field}: {problem}"),
        )
        .with_details(serde_json::json!({ "field": field }))
    }

    /// 422 `AMOUNT_OUT_OF_RANGE` for `field`: the amount, or the balance it would
    /// produce, is beyond what OfferHub holds or a configured ceiling.
    pub fn out_of_range(field: &str, problem: impl std::fmt::Display) -> Self {
        Error::new(ErrorCode::AmountOutOfRange, format!("{field}: {problem}"))
            .with_details(serde_json::json!({ "field": field }))
    }

    /// 422 `FEATURE_NOT_ENABLED`: the operation needs a mode or provider this deployment
    /// is not configured for; `setting` (e.g. `PAYMENT_PROVIDER=airtm`) says what enables
    /// it and goes into `details.setting`.
    pub fn feature_not_enabled(message: impl Into<String>, setting: &str) -> Self {
        Error::new(ErrorCode::FeatureNotEnabled, message)
            .with_details(serde_json::json!({ "setting": setting }))
    }

    /// 500 `INTERNAL_ERROR`. The cause is logged here and never shown to the caller.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Error::new(ErrorCode::Internal, "An internal error occurred")
    }

    /// 500 `INTERNAL_ERROR` caused by the environment, not by a bug: worth retrying.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error (unavailable)");
        Error {
            unavailable: true,
            ..Error::new(ErrorCode::Internal, "An internal error occurred")
        }
    }

    /// Whether this is an internal error caused by the environment (retry) rather than
    /// a bug (stop).
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }

    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for Error {}

impl From<sqlx::Error> for Error {
    /// Connection, pool, I/O and database-reported errors (lock timeouts, serialization
    /// conflicts, a busy SQLite file) are [`Error::unavailable`]; a row or column that
    /// does not decode, or a query that expects a row and finds none, is a bug.
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            E::RowNotFound
            | E::ColumnNotFound(_)
            | E::ColumnIndexOutOfBounds { .. }
            | E::ColumnDecode { .. }
            | E::Decode(_)
            | E::TypeNotFound { .. }
            | E::Encode(_)
            | E::Configuration(_)
            | E::Migrate(_) => Error::internal(format!("database: {e}")),
            E::Database(db) if !database_is_unavailable(db.code().as_deref()) => {
                Error::internal(format!("database: {e}"))
            }
            _ => Error::unavailable(format!("database: {e}")),
        }
    }
}

/// Whether a database-reported error code means "try again": PostgreSQL serialization
/// failure, deadlock, lock not available, statement canceled (timeouts), connection
/// exceptions (class 08), insufficient resources (53), operator intervention (57), and a
/// unique violation (a concurrent writer did it first; the retry re-reads); SQLite
/// `BUSY`/`LOCKED` (any extended code) and unique constraint violations. Anything else
/// (a malformed statement, a type mismatch, a check or foreign key violation) is a bug.
fn database_is_unavailable(code: Option<&str>) -> bool {
    let Some(code) = code else {
        return true;
    };
    // PostgreSQL SQLSTATEs have five characters (often all digits); SQLite's extended
    // result codes are shorter numbers.
    if code.len() != 5
        && let Ok(n) = code.parse::<i64>()
    {
        // SQLite: primary code in the low byte; 2067 = SQLITE_CONSTRAINT_UNIQUE, 1555 =
        // SQLITE_CONSTRAINT_PRIMARYKEY.
        return matches!(n & 0xff, 5 | 6) || matches!(n, 2067 | 1555);
    }
    matches!(code, "40001" | "40P01" | "55P03" | "57014" | "23505")
        || code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Error::internal(format!("migration: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    /// docs/ERRORS.md lists every code with the status the daemon answers.
    #[test]
    fn database_errors_retry_only_when_the_environment_is_at_fault() {
        use super::database_is_unavailable as unavailable;
        for code in [
            "40001", "40P01", "55P03", "57014", "08006", "53300", "23505", "5", "517", "6", "2067",
        ] {
            assert!(unavailable(Some(code)), "{code}");
        }
        for code in [
            "42601", "42P18", "22P02", "23503", "23514", "1", "19", "787",
        ] {
            assert!(!unavailable(Some(code)), "{code}");
        }
    }

    #[test]
    fn every_code_is_documented_with_its_status() {
        let doc = include_str!("../docs/ERRORS.md");
        for code in ErrorCode::ALL {
            let row = format!("| `{}` | {} |", code.as_str(), code.http_status());
            assert!(doc.contains(&row), "docs/ERRORS.md lacks the row {row}");
        }
        let rows = doc.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(
            rows,
            ErrorCode::ALL.len(),
            "a documented code no longer exists"
        );
    }
}

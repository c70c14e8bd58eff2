//! The one error type of OfferHub. Every failure a caller can see is an [`Error`] with a
//! stable [`ErrorCode`]; the daemon renders it as the error envelope
//! `{"error": {"code", "message", "statusCode", "details"?}}` with the code's HTTP status.
//!
//! Messages never carry secrets: internal failures (database, I/O) are logged with their
//! cause and shown to callers only as `INTERNAL_ERROR` with a generic message.

use serde_json::Value;

/// Stable, documented error codes (seed 004 and research/upstream.md §6), each with its
/// HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    ValidationError,
    InvalidAmountFormat,
    InvalidRequest,
    Unauthorized,
    InsufficientScope,
    NotFound,
    UserNotFound,
    ApiKeyNotFound,
    OrderNotFound,
    InsufficientFunds,
    InvalidStateTransition,
    IdempotencyConflict,
    ClientOrderRefConflict,
    IdempotencyKeyInProgress,
    UserSuspended,
    WithdrawalDestinationInvalid,
    WithdrawalNotFound,
    PayloadTooLarge,
    MethodNotAllowed,
    RateLimited,
    Internal,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    EscrowNotFound,
    DisputeNotFound,
    MilestoneNotFound,
    SagaNotFound,
    EscrowAlreadyExists,
    DisputeAlreadyOpen,
    OperationInProgress,
    EscrowContractError,
    WalletNotReady,
    XdrVerificationFailed,
    TopupNotFound,
    AirtmUserNotFound,
    AirtmUserNotLinked,
    AirtmUserInvalid,
    WithdrawalNotCommittable,
}

impl ErrorCode {
    /// Every code, in declaration order (docs/ERRORS.md lists each; a test checks). A new
    /// variant goes here too.
    pub const ALL: &[ErrorCode] = &[
        ErrorCode::ValidationError,
        ErrorCode::InvalidAmountFormat,
        ErrorCode::InvalidRequest,
        ErrorCode::Unauthorized,
        ErrorCode::InsufficientScope,
        ErrorCode::NotFound,
        ErrorCode::UserNotFound,
        ErrorCode::ApiKeyNotFound,
        ErrorCode::OrderNotFound,
        ErrorCode::InsufficientFunds,
        ErrorCode::InvalidStateTransition,
        ErrorCode::IdempotencyConflict,
        ErrorCode::ClientOrderRefConflict,
        ErrorCode::IdempotencyKeyInProgress,
        ErrorCode::UserSuspended,
        ErrorCode::WithdrawalDestinationInvalid,
        ErrorCode::WithdrawalNotFound,
        ErrorCode::PayloadTooLarge,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::ProviderError,
        ErrorCode::ProviderTimeout,
        ErrorCode::ProviderUnavailable,
        ErrorCode::EscrowNotFound,
        ErrorCode::DisputeNotFound,
        ErrorCode::MilestoneNotFound,
        ErrorCode::SagaNotFound,
        ErrorCode::EscrowAlreadyExists,
        ErrorCode::DisputeAlreadyOpen,
        ErrorCode::OperationInProgress,
        ErrorCode::EscrowContractError,
        ErrorCode::WalletNotReady,
        ErrorCode::XdrVerificationFailed,
        ErrorCode::TopupNotFound,
        ErrorCode::AirtmUserNotFound,
        ErrorCode::AirtmUserNotLinked,
        ErrorCode::AirtmUserInvalid,
        ErrorCode::WithdrawalNotCommittable,
    ];

    /// The wire spelling, e.g. `INSUFFICIENT_FUNDS`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::InvalidAmountFormat => "INVALID_AMOUNT_FORMAT",
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::InsufficientScope => "INSUFFICIENT_SCOPE",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::UserNotFound => "USER_NOT_FOUND",
            ErrorCode::ApiKeyNotFound => "API_KEY_NOT_FOUND",
            ErrorCode::OrderNotFound => "ORDER_NOT_FOUND",
            ErrorCode::InsufficientFunds => "INSUFFICIENT_FUNDS",
            ErrorCode::InvalidStateTransition => "INVALID_STATE_TRANSITION",
            ErrorCode::IdempotencyConflict => "IDEMPOTENCY_CONFLICT",
            ErrorCode::ClientOrderRefConflict => "CLIENT_ORDER_REF_CONFLICT",
            ErrorCode::IdempotencyKeyInProgress => "IDEMPOTENCY_KEY_IN_PROGRESS",
            ErrorCode::UserSuspended => "USER_SUSPENDED",
            ErrorCode::WithdrawalDestinationInvalid => "WITHDRAWAL_DESTINATION_INVALID",
            ErrorCode::WithdrawalNotFound => "WITHDRAWAL_NOT_FOUND",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Internal => "INTERNAL_ERROR",
            ErrorCode::ProviderError => "PROVIDER_ERROR",
            ErrorCode::ProviderTimeout => "PROVIDER_TIMEOUT",
            ErrorCode::ProviderUnavailable => "PROVIDER_UNAVAILABLE",
            ErrorCode::EscrowNotFound => "ESCROW_NOT_FOUND",
            ErrorCode::DisputeNotFound => "DISPUTE_NOT_FOUND",
            ErrorCode::MilestoneNotFound => "MILESTONE_NOT_FOUND",
            ErrorCode::SagaNotFound => "SAGA_NOT_FOUND",
            ErrorCode::EscrowAlreadyExists => "ESCROW_ALREADY_EXISTS",
            ErrorCode::DisputeAlreadyOpen => "DISPUTE_ALREADY_OPEN",
            ErrorCode::OperationInProgress => "OPERATION_IN_PROGRESS",
            ErrorCode::EscrowContractError => "ESCROW_CONTRACT_ERROR",
            ErrorCode::WalletNotReady => "WALLET_NOT_READY",
            ErrorCode::XdrVerificationFailed => "XDR_VERIFICATION_FAILED",
            ErrorCode::TopupNotFound => "TOPUP_NOT_FOUND",
            ErrorCode::AirtmUserNotFound => "AIRTM_USER_NOT_FOUND",
            ErrorCode::AirtmUserNotLinked => "AIRTM_USER_NOT_LINKED",
            ErrorCode::AirtmUserInvalid => "AIRTM_USER_INVALID",
            ErrorCode::WithdrawalNotCommittable => "WITHDRAWAL_NOT_COMMITTABLE",
        }
    }

    /// The HTTP status the daemon answers with.
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorCode::ValidationError
            | ErrorCode::InvalidAmountFormat
            | ErrorCode::InvalidRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::InsufficientScope => 403,
            ErrorCode::NotFound
            | ErrorCode::UserNotFound
            | ErrorCode::ApiKeyNotFound
            | ErrorCode::OrderNotFound
            | ErrorCode::WithdrawalNotFound
            | ErrorCode::EscrowNotFound
            | ErrorCode::DisputeNotFound
            | ErrorCode::MilestoneNotFound
            | ErrorCode::SagaNotFound
            | ErrorCode::TopupNotFound => 404,
            ErrorCode::InvalidStateTransition
            | ErrorCode::IdempotencyConflict
            | ErrorCode::ClientOrderRefConflict
            | ErrorCode::IdempotencyKeyInProgress
            | ErrorCode::EscrowAlreadyExists
            | ErrorCode::DisputeAlreadyOpen
            | ErrorCode::OperationInProgress
            | ErrorCode::WithdrawalNotCommittable => 409,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::InsufficientFunds
            | ErrorCode::UserSuspended
            | ErrorCode::WithdrawalDestinationInvalid
            | ErrorCode::EscrowContractError
            | ErrorCode::WalletNotReady
            | ErrorCode::AirtmUserNotFound
            | ErrorCode::AirtmUserNotLinked
            | ErrorCode::AirtmUserInvalid => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::ProviderError | ErrorCode::XdrVerificationFailed => 502,
            ErrorCode::ProviderUnavailable => 503,
            ErrorCode::ProviderTimeout => 504,
        }
    }
}

/// An error with its code, a human message and optional structured details.
#[derive(Debug, Clone)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Value>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            details: None,
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

    /// 500 `INTERNAL_ERROR`. The cause is logged here and never shown to the caller.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Error::new(ErrorCode::Internal, "An internal error occurred")
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
    fn from(e: sqlx::Error) -> Self {
        Error::internal(format!("database: {e}"))
    }
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

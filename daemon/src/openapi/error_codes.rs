//! The error codes each operation answers besides those every operation of its kind
//! answers (authentication, validation, idempotency: see [`super::contract`]): lookups,
//! state rules, money and providers. One row per group of operations that answer the
//! same codes; each row's codes in the order the document lists them.

use offerhub::error::ErrorCode::{self, *};

/// What an escrow action run as a saga can answer: its order and escrow, the state
/// rules, the wallets and funds it moves, and Trustless Work and Horizon.
const CHAIN: &[ErrorCode] = &[
    OrderNotFound,
    EscrowNotFound,
    InvalidStateTransition,
    EscrowAlreadyExists,
    DisputeAlreadyOpen,
    OperationInProgress,
    FeatureNotEnabled,
    WalletNotReady,
    EscrowContractError,
    InsufficientFunds,
    UserSuspended,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    XdrVerificationFailed,
];

/// `(operation ids, the codes they answer)`; an operation listed nowhere answers none
/// besides those of its kind.
const TABLE: &[(&[&str], &[ErrorCode])] = &[
    (&["revokeApiKey"], &[ApiKeyNotFound]),
    (&["createApiKey"], &[InsufficientScope]),
    (
        &[
            "getUser",
            "getUserBalance",
            "getBalance",
            "listBalanceHistory",
        ],
        &[UserNotFound],
    ),
    (&["updateUser"], &[UserNotFound, InvalidStateTransition]),
    (
        &["adjustBalance"],
        &[
            UserNotFound,
            InvalidAmountFormat,
            AmountOutOfRange,
            InsufficientFunds,
        ],
    ),
    (
        &[
            "getWallet",
            "getDepositInstructions",
            "listWalletTransactions",
            "syncBalance",
        ],
        &[
            UserNotFound,
            FeatureNotEnabled,
            WalletNotReady,
            ProviderError,
            ProviderTimeout,
            ProviderUnavailable,
        ],
    ),
    (
        &["createWithdrawal"],
        &[
            UserNotFound,
            InvalidAmountFormat,
            AmountOutOfRange,
            InsufficientFunds,
            UserSuspended,
            WithdrawalDestinationInvalid,
            WalletNotReady,
            FeatureNotEnabled,
            AirtmUserNotFound,
            AirtmUserNotLinked,
            AirtmUserInvalid,
            OperationInProgress,
            ProviderError,
            ProviderTimeout,
            ProviderUnavailable,
            XdrVerificationFailed,
        ],
    ),
    (&["getWithdrawal"], &[WithdrawalNotFound]),
    (
        &["commitWithdrawal", "refreshWithdrawal", "cancelWithdrawal"],
        &[
            WithdrawalNotFound,
            WithdrawalNotCommittable,
            FeatureNotEnabled,
            InvalidStateTransition,
            ProviderError,
            ProviderTimeout,
            ProviderUnavailable,
        ],
    ),
    (
        &["linkAirtmAccount"],
        &[
            UserNotFound,
            FeatureNotEnabled,
            AirtmUserNotFound,
            AirtmUserInvalid,
            ProviderError,
            ProviderTimeout,
            ProviderUnavailable,
        ],
    ),
    (
        &["createTopUp"],
        &[
            UserNotFound,
            InvalidAmountFormat,
            AmountOutOfRange,
            UserSuspended,
            WalletNotReady,
            FeatureNotEnabled,
            AirtmUserNotLinked,
            AirtmUserInvalid,
            ProviderError,
            ProviderTimeout,
            ProviderUnavailable,
        ],
    ),
    (&["listTopUps"], &[FeatureNotEnabled]),
    (&["getTopUp"], &[TopupNotFound]),
    (
        &["refreshTopUp", "cancelTopUp"],
        &[
            TopupNotFound,
            FeatureNotEnabled,
            InvalidStateTransition,
            ProviderError,
            ProviderTimeout,
            ProviderUnavailable,
        ],
    ),
    (&["topUpCallback"], &[TopupNotFound, FeatureNotEnabled]),
    (&["receiveAirtmWebhook"], &[Unauthorized, FeatureNotEnabled]),
    (
        &["createOrder"],
        &[
            UserNotFound,
            InvalidRequest,
            InvalidAmountFormat,
            AmountOutOfRange,
            ClientOrderRefConflict,
            UserSuspended,
        ],
    ),
    (&["getOrder", "listMilestones"], &[OrderNotFound]),
    (
        &["reserveOrderFunds"],
        &[
            OrderNotFound,
            InvalidStateTransition,
            InsufficientFunds,
            AmountOutOfRange,
            UserSuspended,
            OperationInProgress,
        ],
    ),
    (
        &["cancelOrder"],
        &[OrderNotFound, InvalidStateTransition, OperationInProgress],
    ),
    (
        &[
            "createEscrow",
            "fundEscrow",
            "releaseEscrow",
            "refundEscrow",
            "openDispute",
        ],
        CHAIN,
    ),
    (
        &["advanceMilestone"],
        &[
            NotFound,
            MilestoneNotFound,
            OrderNotFound,
            EscrowNotFound,
            InvalidStateTransition,
            OperationInProgress,
            FeatureNotEnabled,
            WalletNotReady,
            EscrowContractError,
            ProviderError,
            ProviderTimeout,
            ProviderUnavailable,
            XdrVerificationFailed,
        ],
    ),
    (&["getDispute"], &[DisputeNotFound]),
    (
        &["assignDispute", "commentOnDispute"],
        &[DisputeNotFound, InvalidStateTransition],
    ),
    (
        &["resolveDispute"],
        &[
            DisputeNotFound,
            InvalidAmountFormat,
            InvalidStateTransition,
            OperationInProgress,
            FeatureNotEnabled,
            WalletNotReady,
            EscrowContractError,
            ProviderError,
            ProviderTimeout,
            ProviderUnavailable,
            XdrVerificationFailed,
        ],
    ),
    (&["getSaga"], &[SagaNotFound]),
    (
        &["retrySaga"],
        &[
            SagaNotFound,
            InvalidStateTransition,
            OperationInProgress,
            FeatureNotEnabled,
            EscrowContractError,
            ProviderError,
            ProviderTimeout,
            ProviderUnavailable,
            XdrVerificationFailed,
        ],
    ),
    (&["createWebhookEndpoint"], &[FeatureNotEnabled]),
    (
        &["deleteWebhookEndpoint", "replayWebhookDelivery"],
        &[NotFound],
    ),
];

/// The codes `operation_id` answers besides those every operation of its kind answers.
pub(super) fn codes(operation_id: &str) -> &'static [ErrorCode] {
    TABLE
        .iter()
        .find(|(ids, _)| ids.contains(&operation_id))
        .map_or(&[], |(_, codes)| codes)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::TABLE;

    /// Each operation is listed once, under an `operationId` of the document (a renamed
    /// operation would silently lose its codes).
    #[test]
    fn every_listed_operation_exists_once() {
        let doc = serde_json::to_value(super::super::document()).unwrap();
        let documented: BTreeSet<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .filter_map(|op| op["operationId"].as_str())
            .collect();
        let mut seen = BTreeSet::new();
        for id in TABLE.iter().flat_map(|(ids, _)| ids.iter()) {
            assert!(documented.contains(id), "{id} is not an operation");
            assert!(seen.insert(*id), "{id} is listed twice");
        }
    }
}

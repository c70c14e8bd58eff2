//! `InvokeHostFunction` on sandbox contracts. The ledger hands contract calls to a
//! [`ContractHost`]: the Trustless Work escrow simulator (`crate::tw::EscrowHost`).

use stellar_xdr::{
    HostFunction, InvokeHostFunctionOp, InvokeHostFunctionResult, OperationResult,
    OperationResultTr, ScAddress,
};

use crate::ledger::{ContractHost, Ledger, PaymentRecord};

fn trapped() -> OperationResult {
    OperationResult::OpInner(OperationResultTr::InvokeHostFunction(
        InvokeHostFunctionResult::Trapped,
    ))
}

/// Applies an `InvokeHostFunction` operation: only `InvokeContract` is supported.
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply_invoke(
    ledger: &mut Ledger,
    op: &InvokeHostFunctionOp,
    op_source: &str,
    toid: i64,
    hash: &str,
    now_iso: &str,
    records: &mut Vec<PaymentRecord>,
    host: &dyn ContractHost,
) -> crate::ledger::OpOutcomePub {
    let HostFunction::InvokeContract(call) = &op.host_function else {
        return crate::ledger::OpOutcomePub::fail(
            "op_not_supported",
            OperationResult::OpNotSupported,
        );
    };
    let contract = match &call.contract_address {
        ScAddress::Contract(c) => stellar_strkey::Contract(c.0.0).to_string().to_string(),
        _ => return crate::ledger::OpOutcomePub::fail("op_malformed", trapped()),
    };
    let function = String::from_utf8_lossy(call.function_name.0.as_slice()).to_string();
    match host.invoke(
        ledger,
        &contract,
        &function,
        call.args.as_slice(),
        op_source,
    ) {
        Ok(changes) => {
            let mut participants: Vec<String> = vec![op_source.to_string()];
            for (_, from, to, _) in &changes {
                participants.push(from.clone());
                participants.push(to.clone());
            }
            participants.sort();
            participants.dedup();
            records.push(PaymentRecord {
                id: toid,
                kind: "invoke_host_function".into(),
                tx_hash: hash.to_string(),
                successful: true,
                source_account: op_source.to_string(),
                created_at: now_iso.to_string(),
                asset: None,
                from: op_source.to_string(),
                to: contract.clone(),
                amount: 0,
                participants,
                contract: Some(contract),
                function: Some(function),
                balance_changes: changes,
                source_amount: 0,
                bound: 0,
            });
            crate::ledger::OpOutcomePub::ok(OperationResult::OpInner(
                OperationResultTr::InvokeHostFunction(InvokeHostFunctionResult::Success(
                    stellar_xdr::Hash([0; 32]),
                )),
            ))
        }
        Err(text) => {
            tracing::debug!(%text, "contract call trapped");
            ledger.last_trap = Some(text);
            crate::ledger::OpOutcomePub::fail("function_trapped", trapped())
        }
    }
}

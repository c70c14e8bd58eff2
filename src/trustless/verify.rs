//! **No blind signing** (docs/ARCHITECTURE.md, Sagas and the engine; docs/PROVIDERS.md,
//! Trustless Work: pitfalls): every envelope Trustless Work returns is decoded and checked
//! against what OfferHub asked for before any wallet key signs it:
//!
//! - a v1 transaction envelope (no fee bump, no v0), no signatures yet;
//! - source account = the expected signer; no operation with another source;
//! - exactly **one** `InvokeHostFunction` calling `InvokeContract` on the expected
//!   contract (for deploys: the configured factory, when one is configured) and function;
//! - the call's arguments equal the expected ones (addresses, amounts in base units,
//!   milestone indexes, distributions, the escrow's roles, amount, fee and trustline,
//!   and — issue #19 — its title, description, flags and every milestone field);
//! - every Soroban authorization entry uses the source account's credentials (anything
//!   else would need another signature);
//! - fee ≤ the configured cap; time bounds present and ending within the allowed window.
//!
//! A mismatch is `XDR_VERIFICATION_FAILED` (502) naming the check, what was expected
//! and what was found; the caller audits it and signs nothing.

use serde_json::{Value, json};
use stellar_xdr::{
    HostFunction, InvokeHostFunctionOp, OperationBody, Preconditions, ScAddress, ScVal,
    SorobanCredentials, Transaction, TransactionEnvelope, TransactionV1Envelope,
};

use crate::error::{Error, ErrorCode, Result};
use crate::stellar::keys::account_strkey;
use crate::stellar::tx::decode_envelope;

/// The expected value of one argument.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// Any value (not checked).
    Any,
    /// An account (`G…`) or contract (`C…`) address.
    Address(String),
    /// An integer (i128/u32/i32/u64/i64 or a numeric string), e.g. base units or an index.
    Int(i128),
    /// A string.
    Str(String),
    /// One of these strings (e.g. a milestone's initial status, which the deployer
    /// leaves empty and Trustless Work may default); `Void` (an absent
    /// `Option<String>`) counts as `""`.
    StrIn(Vec<&'static str>),
    /// A boolean (the escrow's and milestones' flags).
    Bool(bool),
    /// A map with symbol keys: the listed keys must be present with these values
    /// (other keys are not checked).
    Fields(Vec<(&'static str, Arg)>),
    /// A vector with exactly these items.
    Items(Vec<Arg>),
    /// A `Map<Address, i128>` with exactly these entries (distributions).
    Distribution(Vec<(String, i128)>),
}

/// What a builder's transaction must be.
#[derive(Clone, Debug)]
pub struct Expected {
    /// The account that signs and is the transaction source (`G…`).
    pub source: String,
    /// The contract called (`C…`); `None` only for a deploy without a configured factory.
    pub contract: Option<String>,
    /// Acceptable function names (deploys: the factory function of the escrow type).
    pub functions: Vec<&'static str>,
    pub args: Vec<Arg>,
    /// Largest acceptable `fee` (stroops, resource fee included).
    pub max_fee: u32,
    /// `max_time` must be in `(now, now + max_validity_secs]`.
    pub max_validity_secs: u64,
}

fn refuse(check: &str, expected: Value, found: Value) -> Error {
    Error::new(
        ErrorCode::XdrVerificationFailed,
        format!(
            "The transaction Trustless Work returned fails the {check} check; nothing was signed"
        ),
    )
    .with_details(json!({ "check": check, "expected": expected, "found": found }))
}

/// An address as its strkey.
pub fn address(v: &ScVal) -> Option<String> {
    match v {
        ScVal::Address(ScAddress::Account(stellar_xdr::AccountId(
            stellar_xdr::PublicKey::PublicKeyTypeEd25519(k),
        ))) => Some(account_strkey(&k.0)),
        ScVal::Address(ScAddress::Contract(c)) => {
            Some(stellar_strkey::Contract(c.0.0).to_string().to_string())
        }
        _ => None,
    }
}

/// An integer value (any integer type, or a numeric string).
pub fn int(v: &ScVal) -> Option<i128> {
    match v {
        ScVal::I128(p) => Some((i128::from(p.hi) << 64) | i128::from(p.lo)),
        ScVal::U128(p) => i128::try_from((u128::from(p.hi) << 64) | u128::from(p.lo)).ok(),
        ScVal::U32(n) => Some(i128::from(*n)),
        ScVal::I32(n) => Some(i128::from(*n)),
        ScVal::U64(n) => Some(i128::from(*n)),
        ScVal::I64(n) => Some(i128::from(*n)),
        ScVal::String(s) => String::from_utf8_lossy(s.0.as_slice()).parse().ok(),
        _ => None,
    }
}

fn text(v: &ScVal) -> Option<String> {
    match v {
        ScVal::String(s) => Some(String::from_utf8_lossy(s.0.as_slice()).into_owned()),
        ScVal::Symbol(s) => Some(String::from_utf8_lossy(s.0.as_slice()).into_owned()),
        _ => None,
    }
}

/// A short rendering of a value for error details.
fn show(v: &ScVal) -> Value {
    if let Some(a) = address(v) {
        return json!(a);
    }
    if let Some(n) = int(v) {
        return json!(n.to_string());
    }
    if let Some(t) = text(v) {
        return json!(t);
    }
    if let ScVal::Bool(b) = v {
        return json!(b);
    }
    json!(format!("{:?}", std::mem::discriminant(v)))
}

fn field<'a>(v: &'a ScVal, key: &str) -> Option<&'a ScVal> {
    match v {
        ScVal::Map(Some(m)) => {
            m.0.iter()
                .find(|e| text(&e.key).as_deref() == Some(key))
                .map(|e| &e.val)
        }
        _ => None,
    }
}

/// The refusal of argument `path`: `expected` against what was `found`.
fn mismatch(path: &str, expected: Value, found: &ScVal) -> Result<()> {
    Err(refuse(&format!("argument {path}"), expected, show(found)))
}

/// Checks one call argument (at `path`: its index, then `.field` and `[item]` within)
/// against its expected value.
fn check_arg(path: &str, expected: &Arg, found: &ScVal) -> Result<()> {
    match expected {
        Arg::Any => Ok(()),
        Arg::Address(a) => {
            if address(found).as_deref() == Some(a.as_str()) {
                Ok(())
            } else {
                mismatch(path, json!(a), found)
            }
        }
        Arg::Int(n) => {
            if int(found) == Some(*n) {
                Ok(())
            } else {
                mismatch(path, json!(n.to_string()), found)
            }
        }
        Arg::Str(s) => {
            if text(found).as_deref() == Some(s.as_str()) {
                Ok(())
            } else {
                mismatch(path, json!(s), found)
            }
        }
        Arg::StrIn(options) => check_str_in(path, options, found),
        Arg::Bool(b) => {
            if matches!(found, ScVal::Bool(x) if x == b) {
                Ok(())
            } else {
                mismatch(path, json!(b), found)
            }
        }
        Arg::Fields(fields) => check_fields(path, fields, found),
        Arg::Items(items) => check_items(path, items, found),
        Arg::Distribution(entries) => check_distribution(path, entries, found),
    }
}

/// [`Arg::StrIn`]: one of `options`; an absent option (`Void`) counts as `""`.
fn check_str_in(path: &str, options: &[&'static str], found: &ScVal) -> Result<()> {
    let t = match found {
        ScVal::Void => Some(String::new()),
        v => text(v),
    };
    if t.is_some_and(|t| options.contains(&t.as_str())) {
        Ok(())
    } else {
        mismatch(path, json!(options), found)
    }
}

/// [`Arg::Fields`]: every listed key present, with its expected value, in order.
fn check_fields(path: &str, fields: &[(&'static str, Arg)], found: &ScVal) -> Result<()> {
    for (k, want) in fields {
        let Some(v) = field(found, k) else {
            return Err(refuse(
                &format!("argument {path}.{k}"),
                json!("present"),
                json!("missing"),
            ));
        };
        check_arg(&format!("{path}.{k}"), want, v)?;
    }
    Ok(())
}

/// [`Arg::Items`]: a vector of exactly these items.
fn check_items(path: &str, items: &[Arg], found: &ScVal) -> Result<()> {
    let ScVal::Vec(Some(v)) = found else {
        return mismatch(path, json!("a vector"), found);
    };
    if v.0.len() != items.len() {
        return Err(refuse(
            &format!("argument {path} length"),
            json!(items.len()),
            json!(v.0.len()),
        ));
    }
    for (i, (want, got)) in items.iter().zip(v.0.iter()).enumerate() {
        check_arg(&format!("{path}[{i}]"), want, got)?;
    }
    Ok(())
}

/// [`Arg::Distribution`]: a map of address → amount with exactly these entries (in any
/// order).
fn check_distribution(path: &str, entries: &[(String, i128)], found: &ScVal) -> Result<()> {
    let ScVal::Map(Some(m)) = found else {
        return mismatch(path, json!("a map of distributions"), found);
    };
    let mut got: Vec<(String, i128)> = Vec::new();
    for e in m.0.iter() {
        match (address(&e.key), int(&e.val)) {
            (Some(a), Some(n)) => got.push((a, n)),
            _ => return mismatch(path, json!("address → amount entries"), found),
        }
    }
    let mut want = entries.to_vec();
    want.sort();
    got.sort();
    if want == got {
        Ok(())
    } else {
        Err(refuse(
            &format!("argument {path} (distributions)"),
            json!(
                want.iter()
                    .map(|(a, n)| json!({"address": a, "amount": n.to_string()}))
                    .collect::<Vec<_>>()
            ),
            json!(
                got.iter()
                    .map(|(a, n)| json!({"address": a, "amount": n.to_string()}))
                    .collect::<Vec<_>>()
            ),
        ))
    }
}

/// The strkey of a transaction or operation source (a muxed account's underlying key).
fn source_strkey(account: &stellar_xdr::MuxedAccount) -> String {
    match account {
        stellar_xdr::MuxedAccount::Ed25519(k) => account_strkey(&k.0),
        stellar_xdr::MuxedAccount::MuxedEd25519(m) => account_strkey(&m.ed25519.0),
    }
}

/// Checks the unsigned envelope `b64` against `exp` at unix time `now`, in this order:
/// the envelope, the transaction's source, fee and time bounds, its one operation, the
/// contract call and its arguments, the authorization entries.
pub fn verify(b64: &str, exp: &Expected, now: u64) -> Result<()> {
    let v1 = unsigned_v1(b64)?;
    let tx = &v1.tx;
    check_transaction(tx, exp, now)?;
    let invoke = the_invocation(tx, exp)?;
    check_call(invoke, exp)?;
    check_auth(invoke)
}

/// Decodes `b64`: a v1 transaction envelope (no fee bump, no v0) without signatures.
fn unsigned_v1(b64: &str) -> Result<TransactionV1Envelope> {
    let env = decode_envelope(b64).map_err(|e| {
        refuse(
            "decoding",
            json!("a transaction envelope"),
            json!(e.message),
        )
    })?;
    let TransactionEnvelope::Tx(v1) = env else {
        return Err(refuse(
            "envelope type",
            json!("v1 transaction"),
            json!("fee bump or v0"),
        ));
    };
    if !v1.signatures.is_empty() {
        return Err(refuse("signatures", json!(0), json!(v1.signatures.len())));
    }
    Ok(v1)
}

/// The transaction's source is the expected signer, its fee within the cap, and its
/// time bounds end within `(now, now + max_validity_secs]`.
fn check_transaction(tx: &Transaction, exp: &Expected, now: u64) -> Result<()> {
    let source = source_strkey(&tx.source_account);
    if source != exp.source {
        return Err(refuse("source account", json!(exp.source), json!(source)));
    }
    if tx.fee > exp.max_fee {
        return Err(refuse("fee cap", json!(exp.max_fee), json!(tx.fee)));
    }
    let bounds = match &tx.cond {
        Preconditions::Time(tb) => Some(tb.clone()),
        Preconditions::V2(p) => p.time_bounds.clone(),
        Preconditions::None => None,
    };
    let max_time = bounds.map(|b| b.max_time.0).unwrap_or(0);
    if max_time == 0 || max_time <= now || max_time > now + exp.max_validity_secs {
        return Err(refuse(
            "time bounds",
            json!(format!("max_time within {} s", exp.max_validity_secs)),
            json!(max_time),
        ));
    }
    Ok(())
}

/// The transaction's only operation: an `InvokeHostFunction` with no source other than
/// the expected signer.
fn the_invocation<'a>(tx: &'a Transaction, exp: &Expected) -> Result<&'a InvokeHostFunctionOp> {
    if tx.operations.len() != 1 {
        return Err(refuse(
            "operation count",
            json!(1),
            json!(tx.operations.len()),
        ));
    }
    let op = &tx.operations[0];
    if let Some(s) = &op.source_account {
        let key = source_strkey(s);
        if key != exp.source {
            return Err(refuse("operation source", json!(exp.source), json!(key)));
        }
    }
    let OperationBody::InvokeHostFunction(invoke) = &op.body else {
        return Err(refuse(
            "operation type",
            json!("invoke_host_function"),
            json!(op.body.name()),
        ));
    };
    Ok(invoke)
}

/// The invocation calls `InvokeContract` on the expected contract (when one is
/// expected) and one of the expected functions, with the expected arguments.
fn check_call(invoke: &InvokeHostFunctionOp, exp: &Expected) -> Result<()> {
    let HostFunction::InvokeContract(call) = &invoke.host_function else {
        return Err(refuse(
            "host function",
            json!("InvokeContract"),
            json!(invoke.host_function.name()),
        ));
    };
    let contract = address(&ScVal::Address(call.contract_address.clone())).unwrap_or_default();
    if let Some(c) = &exp.contract
        && *c != contract
    {
        return Err(refuse("contract", json!(c), json!(contract)));
    }
    let function = String::from_utf8_lossy(call.function_name.0.as_slice()).into_owned();
    if !exp.functions.contains(&function.as_str()) {
        return Err(refuse("function", json!(exp.functions), json!(function)));
    }
    if call.args.len() != exp.args.len() {
        return Err(refuse(
            "argument count",
            json!(exp.args.len()),
            json!(call.args.len()),
        ));
    }
    for (i, (want, got)) in exp.args.iter().zip(call.args.iter()).enumerate() {
        check_arg(&i.to_string(), want, got)?;
    }
    Ok(())
}

/// Every Soroban authorization entry uses the source account's credentials (anything
/// else would need another signature).
fn check_auth(invoke: &InvokeHostFunctionOp) -> Result<()> {
    for a in invoke.auth.iter() {
        if !matches!(a.credentials, SorobanCredentials::SourceAccount) {
            return Err(refuse(
                "authorization entries",
                json!("source-account credentials only"),
                json!("address credentials (another signer)"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stellar::keys::Keypair;
    use stellar_xdr::{
        InvokeContractArgs, InvokeHostFunctionOp, Limits, Memo, MuxedAccount, Operation, ScSymbol,
        SequenceNumber, SorobanAddressCredentials, SorobanAuthorizationEntry,
        SorobanAuthorizedFunction, SorobanAuthorizedInvocation, TimeBounds, TimePoint, Transaction,
        TransactionExt, TransactionV1Envelope, Uint256, WriteXdr,
    };

    const NOW: u64 = 1_800_000_000;
    const CONTRACT: &str = "CBIELTK6YBZJU5UP2WWQEUCYKLPU6AUNZ2BQ4WWFEIE3USCIHMXQDAMA";

    fn addr(s: &str) -> ScVal {
        if let Ok(c) = stellar_strkey::Contract::from_string(s) {
            return ScVal::Address(ScAddress::Contract(stellar_xdr::ContractId(
                stellar_xdr::Hash(c.0),
            )));
        }
        let k = crate::stellar::keys::parse_account(s, "a").unwrap();
        ScVal::Address(ScAddress::Account(stellar_xdr::AccountId(
            stellar_xdr::PublicKey::PublicKeyTypeEd25519(Uint256(k)),
        )))
    }

    fn i128v(n: i64) -> ScVal {
        ScVal::I128(stellar_xdr::Int128Parts {
            hi: 0,
            lo: n as u64,
        })
    }

    /// A fund call sourced by `source`, with `ops` copies, `fee`, `max_time`, and
    /// optionally an address-credential auth entry.
    fn envelope(
        source: &Keypair,
        amount: i64,
        ops: usize,
        fee: u32,
        max_time: u64,
        foreign_auth: bool,
    ) -> String {
        let args = vec![addr(&source.public_key()), ScVal::Void, i128v(amount)];
        let call = InvokeContractArgs {
            contract_address: match addr(CONTRACT) {
                ScVal::Address(a) => a,
                _ => unreachable!(),
            },
            function_name: ScSymbol("fund_escrow".as_bytes().to_vec().try_into().unwrap()),
            args: args.try_into().unwrap(),
        };
        let mut auth = Vec::new();
        if foreign_auth {
            auth.push(SorobanAuthorizationEntry {
                credentials: SorobanCredentials::Address(SorobanAddressCredentials {
                    address: match addr(&Keypair::random().public_key()) {
                        ScVal::Address(a) => a,
                        _ => unreachable!(),
                    },
                    nonce: 1,
                    signature_expiration_ledger: 10,
                    signature: ScVal::Void,
                }),
                root_invocation: SorobanAuthorizedInvocation {
                    function: SorobanAuthorizedFunction::ContractFn(call.clone()),
                    sub_invocations: Default::default(),
                },
            });
        }
        let op = Operation {
            source_account: None,
            body: OperationBody::InvokeHostFunction(InvokeHostFunctionOp {
                host_function: HostFunction::InvokeContract(call),
                auth: auth.try_into().unwrap(),
            }),
        };
        let tx = Transaction {
            source_account: MuxedAccount::Ed25519(Uint256(source.public_bytes())),
            fee,
            seq_num: SequenceNumber(5),
            cond: Preconditions::Time(TimeBounds {
                min_time: TimePoint(0),
                max_time: TimePoint(max_time),
            }),
            memo: Memo::None,
            operations: vec![op; ops].try_into().unwrap(),
            ext: TransactionExt::V0,
        };
        TransactionEnvelope::Tx(TransactionV1Envelope {
            tx,
            signatures: Default::default(),
        })
        .to_xdr_base64(Limits::none())
        .unwrap()
    }

    fn expected(source: &Keypair) -> Expected {
        Expected {
            source: source.public_key(),
            contract: Some(CONTRACT.into()),
            functions: vec!["fund_escrow"],
            args: vec![
                Arg::Address(source.public_key()),
                Arg::Any,
                Arg::Int(1_000_000_000),
            ],
            max_fee: 1_000_000,
            max_validity_secs: 900,
        }
    }

    fn check(b64: &str, exp: &Expected) -> String {
        match verify(b64, exp, NOW) {
            Ok(()) => "ok".into(),
            Err(e) => {
                assert_eq!(e.code, ErrorCode::XdrVerificationFailed);
                e.details.unwrap()["check"].as_str().unwrap().to_string()
            }
        }
    }

    #[test]
    fn every_check_refuses_its_mismatch() {
        let kp = Keypair::random();
        let exp = expected(&kp);
        let good = envelope(&kp, 1_000_000_000, 1, 50_100, NOW + 300, false);
        assert_eq!(check(&good, &exp), "ok");
        assert_eq!(
            check(
                &envelope(&kp, 2_000_000_000, 1, 50_100, NOW + 300, false),
                &exp
            ),
            "argument 2"
        );
        assert_eq!(
            check(
                &envelope(
                    &Keypair::random(),
                    1_000_000_000,
                    1,
                    50_100,
                    NOW + 300,
                    false
                ),
                &exp
            ),
            "source account"
        );
        assert_eq!(
            check(
                &envelope(&kp, 1_000_000_000, 2, 50_100, NOW + 300, false),
                &exp
            ),
            "operation count"
        );
        assert_eq!(
            check(
                &envelope(&kp, 1_000_000_000, 1, 5_000_000, NOW + 300, false),
                &exp
            ),
            "fee cap"
        );
        assert_eq!(
            check(&envelope(&kp, 1_000_000_000, 1, 50_100, 0, false), &exp),
            "time bounds"
        );
        assert_eq!(
            check(
                &envelope(&kp, 1_000_000_000, 1, 50_100, NOW + 86_400, false),
                &exp
            ),
            "time bounds"
        );
        assert_eq!(
            check(
                &envelope(&kp, 1_000_000_000, 1, 50_100, NOW - 1, false),
                &exp
            ),
            "time bounds"
        );
        assert_eq!(
            check(
                &envelope(&kp, 1_000_000_000, 1, 50_100, NOW + 300, true),
                &exp
            ),
            "authorization entries"
        );
        let mut other = exp.clone();
        other.contract = Some("CA3D5KRYM6CB7OWQ6TWYRR3Z4T7GNZLKERYNZGGA5SOAOPIFY6YQGAXE".into());
        assert_eq!(check(&good, &other), "contract");
        let mut other = exp.clone();
        other.functions = vec!["release_funds"];
        assert_eq!(check(&good, &other), "function");
        assert_eq!(check("AAAA", &exp), "decoding");
    }

    #[test]
    fn distributions_compare_as_sets() {
        let a = "GBWWSOATPLIC72ZBOIM7WJCT7VCAHNWW4QUBZ2H4FORMCCIUM5ZVKSZN".to_string();
        let b = Keypair::random().public_key();
        let map = ScVal::Map(Some(stellar_xdr::ScMap(
            vec![
                stellar_xdr::ScMapEntry {
                    key: addr(&b),
                    val: i128v(20),
                },
                stellar_xdr::ScMapEntry {
                    key: addr(&a),
                    val: i128v(80),
                },
            ]
            .try_into()
            .unwrap(),
        )));
        assert!(
            check_arg(
                "1",
                &Arg::Distribution(vec![(a.clone(), 80), (b.clone(), 20)]),
                &map
            )
            .is_ok()
        );
        assert!(
            check_arg(
                "1",
                &Arg::Distribution(vec![(a.clone(), 80), (b.clone(), 21)]),
                &map
            )
            .is_err()
        );
        assert!(check_arg("1", &Arg::Distribution(vec![(a, 100)]), &map).is_err());
    }
}

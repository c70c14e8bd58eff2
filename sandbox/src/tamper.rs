//! Argument-level tampering of Trustless Work builder answers (issue #19, item 4).
//!
//! A compromised or buggy Trustless Work API could answer a builder call
//! (`POST /deployer/…`, `POST /escrow/…`, docs/PROVIDERS.md, Trustless Work: endpoints)
//! with a transaction that calls the right contract function with one argument changed. The
//! [`TamperArg`] fault (`POST /_sandbox/faults {"tamperArg": {…}}`) does exactly that to
//! the next builder answer, so that tests can prove that callers verify every argument
//! before signing.
//!
//! **Paths** name one argument of the contract call, by the contract's parameter names
//! ([`arg_names`]), then map keys (`.key`) and vector or map-entry indexes (`[i]`):
//!
//! - `amount`, `signer`, `milestone_index`, `dispute_resolver`, `service_provider`, …
//! - `escrow.roles.approver`, `escrow.milestones[0].amount`,
//!   `escrow.milestones[1].flags.approved`, `escrow.trustline.address`;
//! - `distributions[1].amount` (the entry's value), `distributions[0].address` (its key);
//! - a path whose first segment is not a parameter name is looked up inside the
//!   `escrow` argument: `roles.approver` = `escrow.roles.approver`.
//!
//! **Alterations** when no `value` is given: integers are doubled (0 becomes 1),
//! accounts become another account, contracts another contract, strings and symbols
//! get a suffix, booleans flip, an absent option (`Void`) becomes a string, a vector
//! gets a copy of its last item, a map keyed by addresses (distributions) gets one more
//! entry for another account, bytes change their first byte. A `value` replaces the
//! leaf instead: a string that is a `G…`/`C…` strkey becomes an address, a number an
//! integer of the leaf's type, a boolean a boolean, any other string a string.

use serde::Deserialize;
use serde_json::Value;
use stellar_xdr::{Hash, Int128Parts, ScAddress, ScMap, ScMapEntry, ScString, ScSymbol, ScVal};

use crate::ledger::parse_strkey;

/// An account that is nobody's in OfferHub's flows (the tampered destination).
pub const ATTACKER_ACCOUNT: &str = "GBWWSOATPLIC72ZBOIM7WJCT7VCAHNWW4QUBZ2H4FORMCCIUM5ZVKSZN";
/// The contract id bytes a tampered contract address points to.
const ATTACKER_CONTRACT: [u8; 32] = [0xAB; 32];

/// The `tamperArg` fault: alter one argument of the next builder answer.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TamperArg {
    /// Which argument, e.g. `escrow.milestones[0].amount` (see the module docs).
    pub path: String,
    /// Only the next builder answer calling this contract function (e.g.
    /// `approve_milestone`) is tampered; `None`: the next builder answer.
    #[serde(default)]
    pub function: Option<String>,
    /// The replacement value; `None`: the default alteration for the leaf's type.
    #[serde(default)]
    pub value: Option<Value>,
}

/// The parameter names of each contract function the builders call, in order
/// (the escrow and factory contracts; docs/PROVIDERS.md, Trustless Work: contract rules).
pub fn arg_names(function: &str) -> &'static [&'static str] {
    match function {
        crate::tw::DEPLOY_FN | crate::tw::DEPLOY_MULTI_FN => &["deployer", "escrow", "salt"],
        "fund_escrow" => &["signer", "escrow", "amount"],
        "change_milestone_status" => &[
            "milestone_index",
            "new_status",
            "new_evidence",
            "service_provider",
        ],
        "approve_milestone" => &["milestone_index", "approver"],
        "release_funds" => &["release_signer"],
        "dispute_escrow" => &["signer"],
        "resolve_dispute" | "withdraw_remaining_funds" => &["dispute_resolver", "distributions"],
        "release_milestone_funds" => &["release_signer", "milestone_index"],
        "dispute_milestone" => &["signer", "milestone_index"],
        "resolve_milestone_dispute" => &["dispute_resolver", "milestone_index", "distributions"],
        "update_escrow" => &["signer", "escrow"],
        _ => &[],
    }
}

#[derive(Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn parse_path(path: &str) -> Option<Vec<Seg>> {
    let mut segs = Vec::new();
    for part in path.split('.') {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            segs.push(Seg::Key(name.to_string()));
        } else if rest.is_empty() {
            return None;
        }
        while let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            segs.push(Seg::Index(r[..end].parse().ok()?));
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            return None;
        }
    }
    (!segs.is_empty()).then_some(segs)
}

/// Applies `t` to the arguments of `function`. `Err` says why the path does not name
/// an argument of this call.
pub fn apply(function: &str, args: &mut [ScVal], t: &TamperArg) -> Result<(), String> {
    let names = arg_names(function);
    let segs = parse_path(&t.path).ok_or_else(|| format!("bad tamper path {:?}", t.path))?;
    let (index, rest) = match segs.first() {
        Some(Seg::Key(k)) if names.contains(&k.as_str()) => (
            names.iter().position(|n| n == k).unwrap_or(usize::MAX),
            &segs[1..],
        ),
        _ => (
            names.iter().position(|n| *n == "escrow").ok_or_else(|| {
                format!(
                    "{function} has no argument {:?} (arguments: {names:?})",
                    t.path
                )
            })?,
            &segs[..],
        ),
    };
    let arg = args
        .get_mut(index)
        .ok_or_else(|| format!("{function} has no argument {index}"))?;
    if alter(arg, rest, t.value.as_ref()) {
        Ok(())
    } else {
        Err(format!(
            "tamper path {:?} does not exist in the {function} call",
            t.path
        ))
    }
}

fn text(v: &ScVal) -> Option<String> {
    match v {
        ScVal::String(s) => Some(String::from_utf8_lossy(s.0.as_slice()).into_owned()),
        ScVal::Symbol(s) => Some(String::from_utf8_lossy(s.0.as_slice()).into_owned()),
        _ => None,
    }
}

fn rebuild_map(mut entries: Vec<ScMapEntry>) -> ScVal {
    // Soroban maps are sorted by key.
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    ScVal::Map(Some(ScMap(entries.try_into().unwrap_or_default())))
}

/// Walks `segs` from `v` and alters the leaf; false when the path does not exist.
fn alter(v: &mut ScVal, segs: &[Seg], value: Option<&Value>) -> bool {
    let Some((first, rest)) = segs.split_first() else {
        return match leaf(v, value) {
            Some(new) => {
                *v = new;
                true
            }
            None => false,
        };
    };
    match (first, &mut *v) {
        (Seg::Key(k), ScVal::Map(Some(m))) => {
            let mut entries = m.0.to_vec();
            let Some(e) = entries
                .iter_mut()
                .find(|e| text(&e.key).as_deref() == Some(k.as_str()))
            else {
                return false;
            };
            if !alter(&mut e.val, rest, value) {
                return false;
            }
            *v = rebuild_map(entries);
            true
        }
        (Seg::Index(i), ScVal::Vec(Some(items))) => {
            let mut list = items.0.to_vec();
            let Some(item) = list.get_mut(*i) else {
                return false;
            };
            if !alter(item, rest, value) {
                return false;
            }
            *v = ScVal::Vec(Some(stellar_xdr::ScVec(
                list.try_into().unwrap_or_default(),
            )));
            true
        }
        // A map entry by position: `.address` is its key, `.amount` its value
        // (distributions are `Map<Address, i128>`).
        (Seg::Index(i), ScVal::Map(Some(m))) => {
            let mut entries = m.0.to_vec();
            let Some(e) = entries.get_mut(*i) else {
                return false;
            };
            let ok = match rest.split_first() {
                Some((Seg::Key(k), more)) if k == "address" || k == "key" => {
                    alter(&mut e.key, more, value)
                }
                Some((Seg::Key(k), more)) if k == "amount" || k == "value" => {
                    alter(&mut e.val, more, value)
                }
                _ => false,
            };
            if ok {
                *v = rebuild_map(entries);
            }
            ok
        }
        _ => false,
    }
}

fn i128_of(n: i128) -> ScVal {
    ScVal::I128(Int128Parts {
        hi: (n >> 64) as i64,
        lo: n as u64,
    })
}

fn sc_address(s: &str) -> Option<ScVal> {
    if let Some(k) = parse_strkey(s) {
        return Some(ScVal::Address(ScAddress::Account(stellar_xdr::AccountId(
            stellar_xdr::PublicKey::PublicKeyTypeEd25519(stellar_xdr::Uint256(k)),
        ))));
    }
    stellar_strkey::Contract::from_string(s)
        .ok()
        .map(|c| ScVal::Address(ScAddress::Contract(stellar_xdr::ContractId(Hash(c.0)))))
}

fn sc_string(s: &str) -> ScVal {
    ScVal::String(ScString(
        s.as_bytes().to_vec().try_into().unwrap_or_default(),
    ))
}

/// An integer leaf as `n`, keeping its type (out of range: `None`).
fn int_like(v: &ScVal, n: i128) -> Option<ScVal> {
    Some(match v {
        ScVal::I128(_) => i128_of(n),
        ScVal::U32(_) => ScVal::U32(u32::try_from(n).ok()?),
        ScVal::I32(_) => ScVal::I32(i32::try_from(n).ok()?),
        ScVal::U64(_) => ScVal::U64(u64::try_from(n).ok()?),
        ScVal::I64(_) => ScVal::I64(i64::try_from(n).ok()?),
        _ => return None,
    })
}

fn int_of(v: &ScVal) -> Option<i128> {
    match v {
        ScVal::I128(p) => Some((i128::from(p.hi) << 64) | i128::from(p.lo)),
        ScVal::U32(n) => Some(i128::from(*n)),
        ScVal::I32(n) => Some(i128::from(*n)),
        ScVal::U64(n) => Some(i128::from(*n)),
        ScVal::I64(n) => Some(i128::from(*n)),
        _ => None,
    }
}

/// The altered leaf (see the module docs).
fn leaf(v: &ScVal, value: Option<&Value>) -> Option<ScVal> {
    if let Some(value) = value {
        return match value {
            Value::Bool(b) => Some(ScVal::Bool(*b)),
            Value::Number(n) => int_like(v, i128::from(n.as_i64()?)),
            Value::String(s) => {
                if let Some(a) = sc_address(s) {
                    Some(a)
                } else if int_of(v).is_some() {
                    int_like(v, s.parse().ok()?)
                } else if matches!(v, ScVal::Symbol(_)) {
                    Some(ScVal::Symbol(ScSymbol(
                        s.as_bytes().to_vec().try_into().ok()?,
                    )))
                } else {
                    Some(sc_string(s))
                }
            }
            _ => None,
        };
    }
    if let Some(n) = int_of(v) {
        return int_like(v, if n > 0 { n.saturating_mul(2) } else { n + 1 });
    }
    match v {
        ScVal::Address(ScAddress::Contract(_)) => Some(ScVal::Address(ScAddress::Contract(
            stellar_xdr::ContractId(Hash(ATTACKER_CONTRACT)),
        ))),
        ScVal::Address(_) => sc_address(ATTACKER_ACCOUNT),
        ScVal::String(_) => Some(sc_string(&format!("{}~tampered", text(v)?))),
        ScVal::Symbol(_) => Some(ScVal::Symbol(ScSymbol(
            format!("{}_tampered", text(v)?)
                .into_bytes()
                .try_into()
                .ok()?,
        ))),
        ScVal::Bool(b) => Some(ScVal::Bool(!b)),
        ScVal::Void => Some(sc_string("tampered")),
        ScVal::Vec(Some(items)) => {
            let mut list = items.0.to_vec();
            list.push(list.last().cloned().unwrap_or(ScVal::Void));
            Some(ScVal::Vec(Some(stellar_xdr::ScVec(list.try_into().ok()?))))
        }
        ScVal::Map(Some(m)) if m.0.iter().all(|e| matches!(e.key, ScVal::Address(_))) => {
            let mut entries = m.0.to_vec();
            entries.push(ScMapEntry {
                key: sc_address(ATTACKER_ACCOUNT)?,
                val: i128_of(1),
            });
            Some(rebuild_map(entries))
        }
        ScVal::Bytes(b) => {
            let mut bytes = b.0.to_vec();
            let first = bytes.first_mut()?;
            *first ^= 0xFF;
            Some(ScVal::Bytes(stellar_xdr::ScBytes(bytes.try_into().ok()?)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> ScVal {
        ScVal::Symbol(ScSymbol(s.as_bytes().to_vec().try_into().unwrap()))
    }

    fn map(entries: Vec<(ScVal, ScVal)>) -> ScVal {
        rebuild_map(
            entries
                .into_iter()
                .map(|(key, val)| ScMapEntry { key, val })
                .collect(),
        )
    }

    #[test]
    fn paths_parse() {
        assert_eq!(
            parse_path("escrow.milestones[1].amount"),
            Some(vec![
                Seg::Key("escrow".into()),
                Seg::Key("milestones".into()),
                Seg::Index(1),
                Seg::Key("amount".into()),
            ])
        );
        assert_eq!(
            parse_path("distributions[0].address").map(|s| s.len()),
            Some(3)
        );
        assert_eq!(parse_path("a[x]"), None);
        assert_eq!(parse_path(""), None);
    }

    #[test]
    fn nested_amounts_and_distribution_entries_are_altered() {
        let seller = "GBWWSOATPLIC72ZBOIM7WJCT7VCAHNWW4QUBZ2H4FORMCCIUM5ZVKSZN";
        let escrow = map(vec![(
            sym("milestones"),
            ScVal::Vec(Some(stellar_xdr::ScVec(
                vec![map(vec![(sym("amount"), i128_of(70))])]
                    .try_into()
                    .unwrap(),
            ))),
        )]);
        let mut args = vec![sc_address(seller).unwrap(), escrow, i128_of(70)];
        let t = TamperArg {
            path: "milestones[0].amount".into(),
            ..Default::default()
        };
        apply("fund_escrow", &mut args, &t).unwrap();
        let ScVal::Map(Some(m)) = &args[1] else {
            panic!()
        };
        let ScVal::Vec(Some(ms)) = &m.0[0].val else {
            panic!()
        };
        let ScVal::Map(Some(m0)) = &ms.0[0] else {
            panic!()
        };
        assert_eq!(int_of(&m0.0[0].val), Some(140));
        assert_eq!(
            int_of(&args[2]),
            Some(70),
            "only the named argument changes"
        );

        let mut args = vec![
            sc_address(seller).unwrap(),
            map(vec![(sc_address(seller).unwrap(), i128_of(5))]),
        ];
        let t = TamperArg {
            path: "distributions[0].amount".into(),
            value: Some(serde_json::json!(9)),
            ..Default::default()
        };
        apply("resolve_dispute", &mut args, &t).unwrap();
        let ScVal::Map(Some(d)) = &args[1] else {
            panic!()
        };
        assert_eq!(int_of(&d.0[0].val), Some(9));
        let bad = TamperArg {
            path: "distributions[3].amount".into(),
            ..Default::default()
        };
        assert!(apply("resolve_dispute", &mut args, &bad).is_err());
    }
}

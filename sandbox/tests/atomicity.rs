//! A transaction that fails after validation changes nothing but its fee and sequence
//! number (docs/PROVIDERS.md, Stellar and Horizon: submission), now that rollback uses
//! the ledger's undo journal instead of a whole-state snapshot.

use ed25519_dalek::{Signer, SigningKey};
use offerhub_sandbox::{Sandbox, SandboxOptions, start};
use serde_json::Value;
use sha2::{Digest, Sha256};
use stellar_xdr::{
    AccountId, AlphaNum4, Asset, AssetCode4, ChangeTrustAsset, ChangeTrustOp, CreateAccountOp,
    DecoratedSignature, Limits, Memo, MuxedAccount, Operation, OperationBody, PaymentOp,
    Preconditions, PublicKey, SequenceNumber, Signature, SignatureHint, Transaction,
    TransactionEnvelope, TransactionExt, TransactionV1Envelope, Uint256, WriteXdr,
};

fn key() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}
fn gid(k: &SigningKey) -> String {
    stellar_strkey::ed25519::PublicKey(k.verifying_key().to_bytes())
        .to_string()
        .to_string()
}
fn account_id(k: &SigningKey) -> AccountId {
    AccountId(PublicKey::PublicKeyTypeEd25519(Uint256(
        k.verifying_key().to_bytes(),
    )))
}
fn muxed(k: &SigningKey) -> MuxedAccount {
    MuxedAccount::Ed25519(Uint256(k.verifying_key().to_bytes()))
}

fn envelope(passphrase: &str, source: &SigningKey, seq: i64, ops: Vec<Operation>) -> String {
    let n = ops.len() as u32;
    let tx = Transaction {
        source_account: muxed(source),
        fee: 100 * n,
        seq_num: SequenceNumber(seq),
        cond: Preconditions::None,
        memo: Memo::None,
        operations: ops.try_into().unwrap(),
        ext: TransactionExt::V0,
    };
    let hash = tx
        .hash(Sha256::digest(passphrase.as_bytes()).into())
        .unwrap();
    let sig = DecoratedSignature {
        hint: SignatureHint(
            source.verifying_key().to_bytes()[28..32]
                .try_into()
                .unwrap(),
        ),
        signature: Signature(source.sign(&hash).to_bytes().to_vec().try_into().unwrap()),
    };
    TransactionEnvelope::Tx(TransactionV1Envelope {
        tx,
        signatures: vec![sig].try_into().unwrap(),
    })
    .to_xdr_base64(Limits::none())
    .unwrap()
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{base}{path}")).await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn without(mut v: Value, keys: &[&str]) -> Value {
    for k in keys {
        if let Some(o) = v.as_object_mut() {
            o.remove(*k);
        }
    }
    v
}

#[tokio::test]
async fn a_failed_transaction_changes_nothing_but_fee_and_sequence() {
    let sb = Sandbox::new(SandboxOptions::default()).unwrap();
    let base = format!(
        "http://{}",
        start(sb.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    );
    let pass = sb.passphrase();
    let usdc = AlphaNum4 {
        asset_code: AssetCode4(*b"USDC"),
        issuer: sb.usdc().issuer.parse::<AccountId>().unwrap(),
    };
    let (a, b) = (key(), key());
    sb.fund(&gid(&a), 100 * 10_000_000, false).unwrap();
    sb.fund(&gid(&b), 100 * 10_000_000, false).unwrap();
    for k in [&a, &b] {
        let (_, acct) = get(&base, &format!("/accounts/{}", gid(k))).await;
        let seq: i64 = acct["sequence"].as_str().unwrap().parse().unwrap();
        let trust = Operation {
            source_account: None,
            body: OperationBody::ChangeTrust(ChangeTrustOp {
                line: ChangeTrustAsset::CreditAlphanum4(usdc.clone()),
                limit: i64::MAX,
            }),
        };
        sb.submit(&envelope(&pass, k, seq + 1, vec![trust]))
            .unwrap();
    }
    sb.fund(&gid(&a), 10 * 10_000_000, true).unwrap();

    let (_, a_before) = get(&base, &format!("/accounts/{}", gid(&a))).await;
    let (_, b_before) = get(&base, &format!("/accounts/{}", gid(&b))).await;
    let (_, pays_before) = get(&base, "/payments?limit=200&include_failed=true").await;
    let seq: i64 = a_before["sequence"].as_str().unwrap().parse().unwrap();
    let fresh = key();
    // Five operations: the first four succeed (XLM and USDC payments, a new account,
    // a trustline change), the last is underfunded — the whole set is undone.
    let ops = vec![
        Operation {
            source_account: None,
            body: OperationBody::Payment(PaymentOp {
                destination: muxed(&b),
                asset: Asset::Native,
                amount: 5 * 10_000_000,
            }),
        },
        Operation {
            source_account: None,
            body: OperationBody::Payment(PaymentOp {
                destination: muxed(&b),
                asset: Asset::CreditAlphanum4(usdc.clone()),
                amount: 4 * 10_000_000,
            }),
        },
        Operation {
            source_account: None,
            body: OperationBody::CreateAccount(CreateAccountOp {
                destination: account_id(&fresh),
                starting_balance: 2 * 10_000_000,
            }),
        },
        Operation {
            source_account: None,
            body: OperationBody::ChangeTrust(ChangeTrustOp {
                line: ChangeTrustAsset::CreditAlphanum4(usdc.clone()),
                limit: 50 * 10_000_000,
            }),
        },
        Operation {
            source_account: None,
            body: OperationBody::Payment(PaymentOp {
                destination: muxed(&b),
                asset: Asset::CreditAlphanum4(usdc.clone()),
                amount: 7 * 10_000_000,
            }),
        },
    ];
    let r = sb.submit(&envelope(&pass, &a, seq + 1, ops)).unwrap_err();
    assert_eq!(r.tx_code, "tx_failed");
    assert_eq!(
        r.op_codes,
        [
            "op_success",
            "op_success",
            "op_success",
            "op_success",
            "op_underfunded"
        ]
    );

    // The new account does not exist; B is untouched; A paid 500 stroops and used
    // one sequence number, nothing else.
    assert_eq!(
        get(&base, &format!("/accounts/{}", gid(&fresh))).await.0,
        404
    );
    let (_, b_after) = get(&base, &format!("/accounts/{}", gid(&b))).await;
    assert_eq!(b_after, b_before);
    let (_, a_after) = get(&base, &format!("/accounts/{}", gid(&a))).await;
    let volatile = [
        "sequence",
        "balances",
        "last_modified_ledger",
        "sequence_ledger",
    ];
    assert_eq!(
        without(a_after.clone(), &volatile),
        without(a_before.clone(), &volatile)
    );
    assert_eq!(a_after["sequence"].as_str().unwrap(), (seq + 1).to_string());
    let native = |v: &Value| {
        v["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["asset_type"] == "native")
            .unwrap()["balance"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let usdc_line = |v: &Value| {
        let l = v["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["asset_code"] == "USDC")
            .unwrap()
            .clone();
        (l["balance"].clone(), l["limit"].clone())
    };
    assert_eq!(usdc_line(&a_after), usdc_line(&a_before));
    let before: f64 = native(&a_before).parse().unwrap();
    let after: f64 = native(&a_after).parse().unwrap();
    assert!(
        (before - after - 0.00005).abs() < 1e-9,
        "{before} → {after}"
    );

    // No successful payment record was added; the failed ones are marked so.
    let (_, pays_after) = get(&base, "/payments?limit=200&include_failed=true").await;
    let n = |v: &Value| v["_embedded"]["records"].as_array().unwrap().len();
    let added: Vec<&Value> = pays_after["_embedded"]["records"].as_array().unwrap()
        [n(&pays_before)..]
        .iter()
        .collect();
    assert!(!added.is_empty());
    assert!(added.iter().all(|p| p["transaction_successful"] == false));
    let (_, ok_only) = get(&base, "/payments?limit=200").await;
    assert_eq!(n(&ok_only), n(&pays_before));

    // The ledger still works: the same payments, affordable, succeed.
    let ok = Operation {
        source_account: None,
        body: OperationBody::Payment(PaymentOp {
            destination: muxed(&b),
            asset: Asset::CreditAlphanum4(usdc),
            amount: 4 * 10_000_000,
        }),
    };
    sb.submit(&envelope(&pass, &a, seq + 2, vec![ok])).unwrap();
}

//! In-process throughput of the sandbox ledger: sponsored wallet activations/s and
//! USDC payments/s through [`Sandbox::submit`] (the code behind Horizon's
//! `POST /transactions`), with envelopes built and signed before the clock starts so
//! that only validation (signature checks included) and application are measured.
//!
//! `cargo bench -p offerhub-sandbox --bench throughput`
//! (`BENCH_WALLETS`, default 2,000; `BENCH_PAYMENTS`, default 5,000).

use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey};
use offerhub_sandbox::{Sandbox, SandboxOptions};
use sha2::{Digest, Sha256};
use stellar_xdr::{
    AccountId, AlphaNum4, Asset, AssetCode4, BeginSponsoringFutureReservesOp, ChangeTrustAsset,
    ChangeTrustOp, CreateAccountOp, DecoratedSignature, Limits, Memo, MuxedAccount, Operation,
    OperationBody, PaymentOp, Preconditions, PublicKey, SequenceNumber, Signature, SignatureHint,
    Transaction, TransactionEnvelope, TransactionExt, TransactionV1Envelope, Uint256, WriteXdr,
};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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

fn envelope(
    network_id: [u8; 32],
    source: &SigningKey,
    seq: i64,
    ops: Vec<Operation>,
    signers: &[&SigningKey],
) -> String {
    let n = u32::try_from(ops.len()).expect("few operations");
    let tx = Transaction {
        source_account: muxed(source),
        fee: 100 * n,
        seq_num: SequenceNumber(seq),
        cond: Preconditions::None,
        memo: Memo::None,
        operations: ops.try_into().expect("operations"),
        ext: TransactionExt::V0,
    };
    let hash = tx.hash(network_id).expect("hash");
    let sigs: Vec<DecoratedSignature> = signers
        .iter()
        .map(|k| DecoratedSignature {
            hint: SignatureHint(
                k.verifying_key().to_bytes()[28..32]
                    .try_into()
                    .expect("hint"),
            ),
            signature: Signature(
                k.sign(&hash)
                    .to_bytes()
                    .to_vec()
                    .try_into()
                    .expect("signature"),
            ),
        })
        .collect();
    TransactionEnvelope::Tx(TransactionV1Envelope {
        tx,
        signatures: sigs.try_into().expect("signatures"),
    })
    .to_xdr_base64(Limits::none())
    .expect("encode")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn report(what: &str, n: usize, total: Duration, mut lat: Vec<Duration>) {
    lat.sort();
    println!(
        "{what}: {n} in {:.2} s = {:.0}/s; p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        percentile(&lat, 1.0).as_secs_f64() * 1e3,
    );
}

fn main() {
    let wallets_n = env_usize("BENCH_WALLETS", 2_000);
    let payments_n = env_usize("BENCH_PAYMENTS", 5_000);
    let sb = Sandbox::new(SandboxOptions::default()).expect("sandbox");
    let network_id: [u8; 32] = Sha256::digest(sb.passphrase().as_bytes()).into();
    let usdc = sb.usdc();
    let usdc4 = AlphaNum4 {
        asset_code: AssetCode4(*b"USDC"),
        issuer: usdc.issuer.parse::<AccountId>().expect("issuer"),
    };
    let platform = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    let rec = sb
        .fund(&gid(&platform), 10_000_000 * 10_000_000, false)
        .expect("fund platform");
    let mut platform_seq = i64::from(rec.ledger) << 32;

    // Activations: the sponsored four-operation transaction OfferHub submits.
    let wallets: Vec<SigningKey> = (0..wallets_n)
        .map(|_| SigningKey::from_bytes(&rand::random::<[u8; 32]>()))
        .collect();
    let activations: Vec<String> = wallets
        .iter()
        .map(|w| {
            platform_seq += 1;
            let ops = vec![
                Operation {
                    source_account: None,
                    body: OperationBody::BeginSponsoringFutureReserves(
                        BeginSponsoringFutureReservesOp {
                            sponsored_id: account_id(w),
                        },
                    ),
                },
                Operation {
                    source_account: None,
                    body: OperationBody::CreateAccount(CreateAccountOp {
                        destination: account_id(w),
                        starting_balance: 0,
                    }),
                },
                Operation {
                    source_account: Some(muxed(w)),
                    body: OperationBody::ChangeTrust(ChangeTrustOp {
                        line: ChangeTrustAsset::CreditAlphanum4(usdc4.clone()),
                        limit: i64::MAX,
                    }),
                },
                Operation {
                    source_account: Some(muxed(w)),
                    body: OperationBody::EndSponsoringFutureReserves,
                },
            ];
            envelope(network_id, &platform, platform_seq, ops, &[&platform, w])
        })
        .collect();
    let mut lat = Vec::with_capacity(wallets_n);
    let start = Instant::now();
    for env in &activations {
        let t = Instant::now();
        sb.submit(env).expect("activation applies");
        lat.push(t.elapsed());
    }
    report("activations", wallets_n, start.elapsed(), lat);

    // Deposits through the faucet (built and signed inside, as a client would).
    let mut lat = Vec::with_capacity(wallets_n);
    let start = Instant::now();
    for w in &wallets {
        let t = Instant::now();
        sb.fund(&gid(w), 1_000 * 10_000_000, true)
            .expect("deposit applies");
        lat.push(t.elapsed());
    }
    report(
        "faucet deposits (signed in-process)",
        wallets_n,
        start.elapsed(),
        lat,
    );

    // Payments wallet[i] → wallet[i+1], 1 USDC each; the platform pays the fee (the
    // transaction's source) as OfferHub does for its sponsored wallets.
    let payments: Vec<String> = (0..payments_n)
        .map(|i| {
            let from = i % wallets_n;
            let to = (i + 1) % wallets_n;
            platform_seq += 1;
            let op = Operation {
                source_account: Some(muxed(&wallets[from])),
                body: OperationBody::Payment(PaymentOp {
                    destination: muxed(&wallets[to]),
                    asset: Asset::CreditAlphanum4(usdc4.clone()),
                    amount: 10_000_000,
                }),
            };
            envelope(
                network_id,
                &platform,
                platform_seq,
                vec![op],
                &[&platform, &wallets[from]],
            )
        })
        .collect();
    let mut lat = Vec::with_capacity(payments_n);
    let start = Instant::now();
    for env in &payments {
        let t = Instant::now();
        sb.submit(env).expect("payment applies");
        lat.push(t.elapsed());
    }
    report("payments", payments_n, start.elapsed(), lat);

    // Failed payments (too large: op_underfunded): the rollback path.
    let failing: Vec<String> = (0..payments_n.min(wallets_n))
        .map(|i| {
            platform_seq += 1;
            let op = Operation {
                source_account: Some(muxed(&wallets[i])),
                body: OperationBody::Payment(PaymentOp {
                    destination: muxed(&wallets[(i + 1) % wallets_n]),
                    asset: Asset::CreditAlphanum4(usdc4.clone()),
                    amount: 1_000_000 * 10_000_000,
                }),
            };
            envelope(
                network_id,
                &platform,
                platform_seq,
                vec![op],
                &[&platform, &wallets[i]],
            )
        })
        .collect();
    let mut lat = Vec::with_capacity(failing.len());
    let start = Instant::now();
    for env in &failing {
        let t = Instant::now();
        let r = sb.submit(env);
        assert!(r.is_err(), "an underfunded payment fails");
        lat.push(t.elapsed());
    }
    report(
        "failed payments (rolled back)",
        failing.len(),
        start.elapsed(),
        lat,
    );
}

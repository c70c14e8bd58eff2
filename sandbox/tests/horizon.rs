//! The Horizon subset over real HTTP, with envelopes built by hand with stellar-xdr.

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use futures_util::StreamExt;
use offerhub_sandbox::{Sandbox, SandboxOptions, start};
use serde_json::{Value, json};
use stellar_xdr::{
    AccountId, AlphaNum4, Asset, AssetCode4, BeginSponsoringFutureReservesOp, ChangeTrustAsset,
    ChangeTrustOp, CreateAccountOp, DecoratedSignature, Limits, Memo, MuxedAccount, Operation,
    OperationBody, PaymentOp, Preconditions, PublicKey, SequenceNumber, Signature, SignatureHint,
    TimeBounds, TimePoint, Transaction, TransactionEnvelope, TransactionExt, TransactionV1Envelope,
    Uint256, WriteXdr,
};

struct Net {
    base: String,
    http: reqwest::Client,
    passphrase: String,
    usdc_issuer: String,
    _sb: Arc<Sandbox>,
}

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

impl Net {
    async fn new() -> Net {
        let sb = Sandbox::new(SandboxOptions::default()).unwrap();
        let addr = start(sb.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let base = format!("http://{addr}");
        let http = reqwest::Client::new();
        let root: Value = http.get(&base).send().await.unwrap().json().await.unwrap();
        let info: Value = http
            .get(format!("{base}/_sandbox/info"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Net {
            passphrase: root["network_passphrase"].as_str().unwrap().to_string(),
            usdc_issuer: info["usdc"]["issuer"].as_str().unwrap().to_string(),
            base,
            http,
            _sb: sb,
        }
    }

    fn usdc(&self) -> AlphaNum4 {
        AlphaNum4 {
            asset_code: AssetCode4(*b"USDC"),
            issuer: self.usdc_issuer.parse::<AccountId>().unwrap(),
        }
    }

    async fn account(&self, id: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/accounts/{id}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    async fn seq(&self, k: &SigningKey) -> i64 {
        self.account(&gid(k)).await.1["sequence"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn envelope(
        &self,
        source: &SigningKey,
        seq: i64,
        ops: Vec<Operation>,
        signers: &[&SigningKey],
        max_time: u64,
    ) -> String {
        let n = ops.len() as u32;
        let tx = Transaction {
            source_account: muxed(source),
            fee: 100 * n,
            seq_num: SequenceNumber(seq),
            cond: Preconditions::Time(TimeBounds {
                min_time: TimePoint(0),
                max_time: TimePoint(max_time),
            }),
            memo: Memo::None,
            operations: ops.try_into().unwrap(),
            ext: TransactionExt::V0,
        };
        let network_id: [u8; 32] = sha2::Digest::finalize(sha2::Digest::chain_update(
            <sha2::Sha256 as sha2::Digest>::new(),
            self.passphrase.as_bytes(),
        ))
        .into();
        let hash = tx.hash(network_id).unwrap();
        let sigs: Vec<DecoratedSignature> = signers
            .iter()
            .map(|k| DecoratedSignature {
                hint: SignatureHint(k.verifying_key().to_bytes()[28..32].try_into().unwrap()),
                signature: Signature(k.sign(&hash).to_bytes().to_vec().try_into().unwrap()),
            })
            .collect();
        TransactionEnvelope::Tx(TransactionV1Envelope {
            tx,
            signatures: sigs.try_into().unwrap(),
        })
        .to_xdr_base64(Limits::none())
        .unwrap()
    }

    async fn submit(&self, b64: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/transactions", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "tx={}",
                form_urlencoded::byte_serialize(b64.as_bytes()).collect::<String>()
            ))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body: Value = r.json().await.unwrap();
        if status != 200 {
            assert_eq!(ct, "application/problem+json");
        }
        (status, body)
    }

    async fn fund(&self, k: &SigningKey, amount: &str, asset: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/_sandbox/fund", self.base))
            .json(&json!({ "address": gid(k), "amount": amount, "asset": asset }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// A funded account (10 XLM) with a USDC trustline.
    async fn wallet(&self) -> SigningKey {
        let k = key();
        assert_eq!(self.fund(&k, "10", "XLM").await.0, 200);
        let seq = self.seq(&k).await;
        let op = Operation {
            source_account: None,
            body: OperationBody::ChangeTrust(ChangeTrustOp {
                line: ChangeTrustAsset::CreditAlphanum4(self.usdc()),
                limit: i64::MAX,
            }),
        };
        let (s, b) = self
            .submit(&self.envelope(&k, seq + 1, vec![op], &[&k], 0))
            .await;
        assert_eq!(s, 200, "{b}");
        k
    }
}

fn later() -> u64 {
    (chrono::Utc::now().timestamp() + 300) as u64
}

fn payment(to: &SigningKey, asset: Asset, amount: i64) -> Operation {
    Operation {
        source_account: None,
        body: OperationBody::Payment(PaymentOp {
            destination: muxed(to),
            asset,
            amount,
        }),
    }
}

fn tx_code(body: &Value) -> &str {
    body["extras"]["result_codes"]["transaction"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn accounts_payments_and_result_codes() {
    let net = Net::new().await;
    // Unknown account: 404 problem+json.
    let stranger = key();
    let (s, b) = net.account(&gid(&stranger)).await;
    assert_eq!(s, 404);
    assert_eq!(b["type"], "https://stellar.org/horizon-errors/not_found");

    let alice = net.wallet().await;
    let bob = net.wallet().await;
    assert_eq!(net.fund(&alice, "100", "USDC").await.0, 200);
    let (_, a) = net.account(&gid(&alice)).await;
    let usdc = a["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["asset_code"] == "USDC")
        .unwrap();
    assert_eq!(usdc["balance"], "100.0000000");
    assert_eq!(usdc["limit"], "922337203685.4775807");
    assert_eq!(usdc["asset_issuer"], net.usdc_issuer.as_str());
    assert_eq!(a["subentry_count"], 1);
    assert!(a["sequence"].is_string());

    // A correctly signed payment applies.
    let seq = net.seq(&alice).await;
    let good = net.envelope(
        &alice,
        seq + 1,
        vec![payment(
            &bob,
            Asset::CreditAlphanum4(net.usdc()),
            12_345_678,
        )],
        &[&alice],
        later(),
    );
    let (s, b) = net.submit(&good).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["successful"], true);
    assert_eq!(b["fee_charged"], "100");
    let hash = b["hash"].as_str().unwrap().to_string();
    let (_, bob_acct) = net.account(&gid(&bob)).await;
    assert!(bob_acct["balances"].to_string().contains("\"1.2345678\""));
    // The same envelope again: Horizon returns the original result.
    let (s, again) = net.submit(&good).await;
    assert_eq!(s, 200);
    assert_eq!(again["hash"], hash.as_str());
    let r: Value = net
        .http
        .get(format!("{}/transactions/{hash}", net.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["ledger"], b["ledger"]);

    // Reused sequence number: tx_bad_seq, nothing changes.
    let reused = net.envelope(
        &alice,
        seq + 1,
        vec![payment(&bob, Asset::CreditAlphanum4(net.usdc()), 1)],
        &[&alice],
        later(),
    );
    let (s, b) = net.submit(&reused).await;
    assert_eq!((s, tx_code(&b)), (400, "tx_bad_seq"), "{b}");
    assert_eq!(
        b["type"],
        "https://stellar.org/horizon-errors/transaction_failed"
    );
    assert!(
        b["extras"]["result_xdr"]
            .as_str()
            .is_some_and(|x| !x.is_empty())
    );

    // Wrong signature: tx_bad_auth.
    let mallory = key();
    let forged = net.envelope(
        &alice,
        seq + 2,
        vec![payment(&bob, Asset::CreditAlphanum4(net.usdc()), 1)],
        &[&mallory],
        later(),
    );
    let (s, b) = net.submit(&forged).await;
    assert_eq!((s, tx_code(&b)), (400, "tx_bad_auth"), "{b}");
    // Signed for another network: tx_bad_auth too (the hash differs).
    let other = Net {
        passphrase: "Test SDF Network ; September 2015".into(),
        base: net.base.clone(),
        http: net.http.clone(),
        usdc_issuer: net.usdc_issuer.clone(),
        _sb: net._sb.clone(),
    };
    let (s, b) = net
        .submit(&other.envelope(
            &alice,
            seq + 2,
            vec![payment(&bob, Asset::Native, 1)],
            &[&alice],
            later(),
        ))
        .await;
    assert_eq!((s, tx_code(&b)), (400, "tx_bad_auth"));

    // No trustline at the destination: tx_failed / op_no_trust; fee and sequence spent.
    let carol = key();
    assert_eq!(net.fund(&carol, "5", "XLM").await.0, 200);
    let (s, b) = net
        .submit(&net.envelope(
            &alice,
            seq + 2,
            vec![payment(&carol, Asset::CreditAlphanum4(net.usdc()), 1)],
            &[&alice],
            later(),
        ))
        .await;
    assert_eq!((s, tx_code(&b)), (400, "tx_failed"), "{b}");
    assert_eq!(
        b["extras"]["result_codes"]["operations"],
        json!(["op_no_trust"])
    );
    assert_eq!(net.seq(&alice).await, seq + 2);
    // Underfunded, no destination, expired.
    let (_, b) = net
        .submit(&net.envelope(
            &alice,
            seq + 3,
            vec![payment(
                &bob,
                Asset::CreditAlphanum4(net.usdc()),
                1_000 * 10_000_000,
            )],
            &[&alice],
            later(),
        ))
        .await;
    assert_eq!(
        b["extras"]["result_codes"]["operations"],
        json!(["op_underfunded"])
    );
    let (_, b) = net
        .submit(&net.envelope(
            &alice,
            seq + 4,
            vec![payment(&stranger, Asset::Native, 1)],
            &[&alice],
            later(),
        ))
        .await;
    assert_eq!(
        b["extras"]["result_codes"]["operations"],
        json!(["op_no_destination"])
    );
    let (_, b) = net
        .submit(&net.envelope(
            &alice,
            seq + 5,
            vec![payment(&bob, Asset::Native, 1)],
            &[&alice],
            1_000,
        ))
        .await;
    assert_eq!(tx_code(&b), "tx_too_late");
    // Creating an account below the reserve.
    let (_, b) = net
        .submit(&net.envelope(
            &alice,
            seq + 5,
            vec![Operation {
                source_account: None,
                body: OperationBody::CreateAccount(CreateAccountOp {
                    destination: account_id(&key()),
                    starting_balance: 1,
                }),
            }],
            &[&alice],
            later(),
        ))
        .await;
    assert_eq!(
        b["extras"]["result_codes"]["operations"],
        json!(["op_low_reserve"])
    );
    // Malformed XDR and wrong content type.
    let (s, b) = net.submit("AAAA-not-xdr").await;
    assert_eq!(
        (s, b["type"].as_str().unwrap()),
        (
            400,
            "https://stellar.org/horizon-errors/transaction_malformed"
        )
    );
    let r = net
        .http
        .post(format!("{}/transactions", net.base))
        .json(&json!({ "tx": good }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
}

#[tokio::test]
async fn sponsored_activation_and_timeout_after_apply() {
    let net = Net::new().await;
    let platform = key();
    assert_eq!(net.fund(&platform, "100", "XLM").await.0, 200);
    let wallet = key();
    let ops = vec![
        Operation {
            source_account: None,
            body: OperationBody::BeginSponsoringFutureReserves(BeginSponsoringFutureReservesOp {
                sponsored_id: account_id(&wallet),
            }),
        },
        Operation {
            source_account: None,
            body: OperationBody::CreateAccount(CreateAccountOp {
                destination: account_id(&wallet),
                starting_balance: 0,
            }),
        },
        Operation {
            source_account: Some(muxed(&wallet)),
            body: OperationBody::ChangeTrust(ChangeTrustOp {
                line: ChangeTrustAsset::CreditAlphanum4(net.usdc()),
                limit: i64::MAX,
            }),
        },
        Operation {
            source_account: Some(muxed(&wallet)),
            body: OperationBody::EndSponsoringFutureReserves,
        },
    ];
    let seq = net.seq(&platform).await;
    // Without the new account's signature: its operations lack authority.
    let (s, b) = net
        .submit(&net.envelope(&platform, seq + 1, ops.clone(), &[&platform], later()))
        .await;
    assert_eq!(s, 400, "{b}");
    // Both signatures; the sandbox answers 504 after applying it.
    net.http
        .post(format!("{}/_sandbox/faults", net.base))
        .json(&json!({ "timeoutAfterApply": 1 }))
        .send()
        .await
        .unwrap();
    let env = net.envelope(&platform, seq + 2, ops, &[&platform, &wallet], later());
    let (s, b) = net.submit(&env).await;
    assert_eq!(
        (s, b["type"].as_str().unwrap()),
        (504, "https://stellar.org/horizon-errors/timeout")
    );
    // The outcome is known by resubmitting the identical envelope (or by hash).
    let (s, b) = net.submit(&env).await;
    assert_eq!(s, 200, "{b}");
    let (_, w) = net.account(&gid(&wallet)).await;
    assert_eq!(w["num_sponsored"], 3, "{w}");
    assert_eq!(w["sponsor"], gid(&platform).as_str());
    assert_eq!(w["balances"][0]["asset_code"], "USDC");
    assert_eq!(w["balances"][0]["sponsor"], gid(&platform).as_str());
    let (_, p) = net.account(&gid(&platform)).await;
    assert_eq!(p["num_sponsoring"], 3);
}

#[tokio::test]
async fn payment_stream_resumes_with_last_event_id() {
    let net = Net::new().await;
    let w = net.wallet().await;
    let open = |last: Option<String>| {
        let mut req = net
            .http
            .get(format!("{}/accounts/{}/payments", net.base, gid(&w)))
            .header("accept", "text/event-stream");
        if let Some(l) = last {
            req = req.header("last-event-id", l);
        }
        req.send()
    };
    async fn read(resp: reqwest::Response, n: usize) -> Vec<(String, Value)> {
        let mut s = resp.bytes_stream();
        let mut buf = String::new();
        let mut out = Vec::new();
        while out.len() < n {
            let chunk = tokio::time::timeout(Duration::from_secs(5), s.next())
                .await
                .expect("stream stalled")
                .unwrap()
                .unwrap();
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let id = block
                    .lines()
                    .find_map(|l| l.strip_prefix("id:"))
                    .map(|s| s.trim().to_string());
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data:"))
                    .map(|s| s.trim().to_string());
                if let (Some(id), Some(d)) = (id, data) {
                    out.push((id, serde_json::from_str(&d).unwrap()));
                }
            }
        }
        out
    }
    let first = open(None).await.unwrap();
    assert!(
        first.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    net.fund(&w, "1", "USDC").await;
    net.fund(&w, "2", "USDC").await;
    // create_account + two payments.
    let got = read(first, 3).await;
    assert_eq!(got[0].1["type"], "create_account");
    assert_eq!(got[2].1["amount"], "2.0000000");
    let last = got[2].0.clone();
    // Dropped; payments continue meanwhile.
    for a in ["3", "4", "5"] {
        net.fund(&w, a, "USDC").await;
    }
    let resumed = read(open(Some(last)).await.unwrap(), 3).await;
    let amounts: Vec<_> = resumed
        .iter()
        .map(|(_, v)| v["amount"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(amounts, ["3.0000000", "4.0000000", "5.0000000"]);
    assert!(
        resumed
            .iter()
            .all(|(id, v)| v["paging_token"] == id.as_str())
    );
    // Pages: order and limit.
    let page: Value = net
        .http
        .get(format!(
            "{}/accounts/{}/payments?order=desc&limit=2",
            net.base,
            gid(&w)
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let recs = page["_embedded"]["records"].as_array().unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0]["amount"], "5.0000000");
}

#[tokio::test]
async fn state_file_survives_restarts() {
    let dir = std::env::temp_dir().join(format!("oh-sb-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.json");
    let k = key();
    {
        let sb = Sandbox::new(SandboxOptions {
            passphrase: None,
            state_file: Some(state.clone()),
        })
        .unwrap();
        sb.fund(&gid(&k), 50 * 10_000_000, false).unwrap();
    }
    let sb = Sandbox::new(SandboxOptions {
        passphrase: None,
        state_file: Some(state.clone()),
    })
    .unwrap();
    let addr = start(sb.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let a: Value = reqwest::get(format!("http://{addr}/accounts/{}", gid(&k)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a["balances"][0]["balance"], "50.0000000");
    // Another network's state is refused.
    let other = Sandbox::new(SandboxOptions {
        passphrase: Some("other".into()),
        state_file: Some(state),
    });
    assert!(other.is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The official Python SDK (PyPI `stellar-sdk`) as an independent client. Runs when
/// `OFFERHUB_PY_STELLAR_SDK` names a Python with the SDK installed (`.ci/run` sets one
/// up); otherwise it says so and passes.
#[tokio::test]
async fn python_stellar_sdk_is_accepted() {
    let Ok(python) = std::env::var("OFFERHUB_PY_STELLAR_SDK") else {
        eprintln!("skipped: set OFFERHUB_PY_STELLAR_SDK to a python with stellar-sdk installed");
        return;
    };
    let sb = Sandbox::new(SandboxOptions::default()).unwrap();
    let addr = start(sb, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/py_stellar_sdk.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .arg(format!("http://{addr}"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "python stellar-sdk run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

/// The official JavaScript SDK (npm `@stellar/stellar-sdk`, pinned in
/// `tests/sdk/js/package-lock.json`) as an independent client: fee stats, a payment,
/// path payments strict-send and strict-receive (same asset, empty path), the payment
/// stream and paging. Runs when `OFFERHUB_JS_STELLAR_SDK` names the directory where
/// `npm ci` succeeded (`.ci/run` sets it) and `node` is on the PATH; otherwise it says
/// so and passes.
#[tokio::test]
async fn js_stellar_sdk_is_accepted() {
    let Ok(dir) = std::env::var("OFFERHUB_JS_STELLAR_SDK") else {
        eprintln!(
            "skipped: set OFFERHUB_JS_STELLAR_SDK to sandbox/tests/sdk/js after `npm ci` there"
        );
        return;
    };
    let sb = Sandbox::new(SandboxOptions::default()).unwrap();
    let addr = start(sb, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let out = tokio::process::Command::new("node")
        .current_dir(&dir)
        .arg("stellar_sdk.mjs")
        .arg(format!("http://{addr}"))
        .output()
        .await
        .expect("node runs");
    assert!(
        out.status.success(),
        "node @stellar/stellar-sdk run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[tokio::test]
async fn dropped_streams_fault_closes_open_streams() {
    let net = Net::new().await;
    let resp = net
        .http
        .get(format!("{}/payments", net.base))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut s = resp.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: open"));
    net.http
        .post(format!("{}/_sandbox/faults", net.base))
        .json(&json!({ "dropStreams": true }))
        .send()
        .await
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(chunk) = s.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the stream was closed by the fault");
}

#[tokio::test]
async fn outside_account_with_a_usdc_trustline_receives_payments() {
    let net = Net::new().await;
    let r = net
        .http
        .post(format!("{}/_sandbox/accounts", net.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    let address = body["address"].as_str().unwrap().to_string();
    assert!(address.starts_with('G') && address.len() == 56, "{body}");
    let (status, account) = net.account(&address).await;
    assert_eq!(status, 200);
    let balances = account["balances"].as_array().unwrap();
    let usdc = balances
        .iter()
        .find(|b| b["asset_code"] == "USDC")
        .expect("a USDC trustline");
    assert_eq!(usdc["balance"], "0.0000000");
    assert_eq!(usdc["asset_issuer"], net.usdc_issuer.as_str());
    let xlm = balances
        .iter()
        .find(|b| b["asset_type"] == "native")
        .unwrap();
    // 100 XLM less the 100-stroop fee of the trustline transaction it signed.
    assert_eq!(xlm["balance"], "99.9999900");
    // USDC can be paid to it.
    let r = net
        .http
        .post(format!("{}/_sandbox/fund", net.base))
        .json(&json!({ "address": address, "amount": "7.5", "asset": "USDC" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, account) = net.account(&address).await;
    assert!(
        account["balances"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["asset_code"] == "USDC" && b["balance"] == "7.5000000")
    );
}

/// Issue #19: path payments (same asset, empty path), fee stats, ledgers, operations,
/// effects, assets, account sub-collections, absolute links, problem+json 404s.
#[tokio::test]
async fn path_payments_and_history_routes() {
    use stellar_xdr::{PathPaymentStrictReceiveOp, PathPaymentStrictSendOp};
    let net = Net::new().await;
    let (a, b) = (net.wallet().await, net.wallet().await);
    assert_eq!(net.fund(&a, "10", "USDC").await.0, 200);
    let usdc = Asset::CreditAlphanum4(net.usdc());
    let seq = net.seq(&a).await;
    let ops = vec![
        Operation {
            source_account: None,
            body: OperationBody::PathPaymentStrictSend(PathPaymentStrictSendOp {
                send_asset: usdc.clone(),
                send_amount: 20_000_000,
                destination: muxed(&b),
                dest_asset: usdc.clone(),
                dest_min: 20_000_000,
                path: Default::default(),
            }),
        },
        Operation {
            source_account: None,
            body: OperationBody::PathPaymentStrictReceive(PathPaymentStrictReceiveOp {
                send_asset: usdc.clone(),
                send_max: 30_000_000,
                destination: muxed(&b),
                dest_asset: usdc.clone(),
                dest_amount: 30_000_000,
                path: Default::default(),
            }),
        },
    ];
    let (s, body) = net.submit(&net.envelope(&a, seq + 1, ops, &[&a], 0)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        offerhub_sandbox::usdc_balance(&net.base, &gid(&b))
            .await
            .unwrap()
            .as_deref(),
        Some("5.0000000")
    );
    // A conversion needs an order book the sandbox does not model.
    let seq = net.seq(&a).await;
    let op = Operation {
        source_account: None,
        body: OperationBody::PathPaymentStrictSend(PathPaymentStrictSendOp {
            send_asset: usdc.clone(),
            send_amount: 10_000_000,
            destination: muxed(&b),
            dest_asset: Asset::Native,
            dest_min: 1,
            path: Default::default(),
        }),
    };
    let (s, body) = net
        .submit(&net.envelope(&a, seq + 1, vec![op], &[&a], 0))
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        body["extras"]["result_codes"]["operations"][0],
        "op_too_few_offers"
    );

    let get = |path: &str| {
        let url = format!("{}{path}", net.base);
        let http = net.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            let s = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            (s, ct, r.json::<Value>().await.unwrap())
        }
    };
    // The payments record of a path payment.
    let (_, _, p) = get(&format!(
        "/accounts/{}/payments?order=desc&limit=2",
        gid(&b)
    ))
    .await;
    let recs = p["_embedded"]["records"].as_array().unwrap();
    assert_eq!(recs[0]["type"], "path_payment_strict_receive");
    assert_eq!(recs[0]["source_max"], "3.0000000");
    assert_eq!(recs[1]["type"], "path_payment_strict_send");
    assert_eq!(recs[1]["destination_min"], "2.0000000");
    assert_eq!(recs[1]["path"], json!([]));
    let next = p["_links"]["next"]["href"].as_str().unwrap();
    assert!(next.starts_with(&net.base), "absolute link: {next}");

    let (s, _, fs) = get("/fee_stats").await;
    assert_eq!((s, fs["last_ledger_base_fee"].as_str()), (200, Some("100")));
    assert_eq!(fs["fee_charged"]["p50"], "100");
    let (_, _, ls) = get("/ledgers?order=desc&limit=1").await;
    let last = &ls["_embedded"]["records"][0];
    let seqn = last["sequence"].as_u64().unwrap();
    assert!(
        last["_links"]["self"]["href"]
            .as_str()
            .unwrap()
            .starts_with("http://")
    );
    let (s, _, one) = get(&format!("/ledgers/{seqn}")).await;
    assert_eq!((s, &one["hash"]), (200, &last["hash"]));
    let (s, ct, _) = get("/ledgers/99999999").await;
    assert_eq!((s, ct.as_deref()), (404, Some("application/problem+json")));

    let (_, _, ops) = get(&format!("/accounts/{}/operations?limit=200", gid(&a))).await;
    let types: Vec<&str> = ops["_embedded"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"change_trust"), "{types:?}");
    assert!(types.contains(&"path_payment_strict_send"), "{types:?}");
    let (_, _, txs) = get(&format!("/accounts/{}/transactions?limit=200", gid(&b))).await;
    assert!(
        txs["_embedded"]["records"].as_array().unwrap().len() >= 3,
        "{txs}"
    );
    let (_, _, effs) = get(&format!("/accounts/{}/effects?limit=200", gid(&b))).await;
    assert!(
        effs["_embedded"]["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "account_credited" && e["amount"] == "2.0000000"),
        "{effs}"
    );
    let (s, _, _) = get("/operations?limit=5").await;
    assert_eq!(s, 200);
    let (s, _, _) = get("/effects?limit=5").await;
    assert_eq!(s, 200);
    let (_, _, assets) = get("/assets?asset_code=USDC").await;
    let usdc_rec = &assets["_embedded"]["records"][0];
    assert_eq!(usdc_rec["asset_code"], "USDC");
    assert!(
        usdc_rec["num_accounts"].as_u64().unwrap() >= 3,
        "{usdc_rec}"
    );
    let (s, ct, _) = get("/no_such_route").await;
    assert_eq!((s, ct.as_deref()), (404, Some("application/problem+json")));
}

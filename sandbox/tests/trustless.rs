//! The Trustless Work V1 simulator driven over raw HTTP, like OfferHub's client will.

use std::sync::Arc;

use ed25519_dalek::{Signer, SigningKey};
use offerhub_sandbox::{Sandbox, SandboxOptions, start};
use serde_json::{Value, json};
use stellar_xdr::{
    AlphaNum4, AssetCode4, ChangeTrustAsset, ChangeTrustOp, DecoratedSignature, Limits, Memo,
    MuxedAccount, Operation, OperationBody, Preconditions, ReadXdr, SequenceNumber, Signature,
    SignatureHint, Transaction, TransactionEnvelope, TransactionExt, TransactionV1Envelope,
    Uint256, WriteXdr,
};

const TW_FEE: &str = "GBWWSOATPLIC72ZBOIM7WJCT7VCAHNWW4QUBZ2H4FORMCCIUM5ZVKSZN";

struct Tw {
    base: String,
    http: reqwest::Client,
    network_id: [u8; 32],
    issuer: String,
    _sb: Arc<Sandbox>,
}

fn gid(k: &SigningKey) -> String {
    stellar_strkey::ed25519::PublicKey(k.verifying_key().to_bytes())
        .to_string()
        .to_string()
}

impl Tw {
    async fn new() -> Tw {
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
        let pass = root["network_passphrase"].as_str().unwrap();
        Tw {
            network_id: sha2::Digest::finalize(sha2::Digest::chain_update(
                <sha2::Sha256 as sha2::Digest>::new(),
                pass.as_bytes(),
            ))
            .into(),
            issuer: info["usdc"]["issuer"].as_str().unwrap().to_string(),
            base,
            http,
            _sb: sb,
        }
    }

    fn sign(&self, b64: &str, k: &SigningKey) -> String {
        let env = TransactionEnvelope::from_xdr_base64(b64, Limits::none()).unwrap();
        let TransactionEnvelope::Tx(mut v1) = env else {
            panic!("not a v1 envelope")
        };
        let hash = v1.tx.hash(self.network_id).unwrap();
        let mut sigs = v1.signatures.to_vec();
        sigs.push(DecoratedSignature {
            hint: SignatureHint(k.verifying_key().to_bytes()[28..32].try_into().unwrap()),
            signature: Signature(k.sign(&hash).to_bytes().to_vec().try_into().unwrap()),
        });
        v1.signatures = sigs.try_into().unwrap();
        TransactionEnvelope::Tx(v1)
            .to_xdr_base64(Limits::none())
            .unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("x-api-key", "tw_test.key")
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// Builder call, then sign and send; returns the send-transaction body.
    async fn run(&self, path: &str, body: Value, k: &SigningKey) -> Value {
        let (s, b) = self.post(path, body).await;
        assert_eq!(s, 201, "{path}: {b}");
        assert_eq!(b["status"], "SUCCESS");
        let signed = self.sign(b["unsignedTransaction"].as_str().unwrap(), k);
        let (s, r) = self
            .post("/helper/send-transaction", json!({ "signedXdr": signed }))
            .await;
        assert_eq!(s, 200, "{path}: {r}");
        assert_eq!(r["status"], "SUCCESS");
        r
    }

    async fn usdc(&self, who: &str) -> String {
        offerhub_sandbox::usdc_balance(&self.base, who)
            .await
            .unwrap()
            .unwrap_or_default()
    }

    async fn wallet(&self, usdc: &str) -> SigningKey {
        let k = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        self.http
            .post(format!("{}/_sandbox/fund", self.base))
            .json(&json!({ "address": gid(&k), "amount": "20", "asset": "XLM" }))
            .send()
            .await
            .unwrap();
        let a: Value = self
            .http
            .get(format!("{}/accounts/{}", self.base, gid(&k)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let seq: i64 = a["sequence"].as_str().unwrap().parse().unwrap();
        let tx = Transaction {
            source_account: MuxedAccount::Ed25519(Uint256(k.verifying_key().to_bytes())),
            fee: 100,
            seq_num: SequenceNumber(seq + 1),
            cond: Preconditions::None,
            memo: Memo::None,
            operations: vec![Operation {
                source_account: None,
                body: OperationBody::ChangeTrust(ChangeTrustOp {
                    line: ChangeTrustAsset::CreditAlphanum4(AlphaNum4 {
                        asset_code: AssetCode4(*b"USDC"),
                        issuer: self.issuer.parse().unwrap(),
                    }),
                    limit: i64::MAX,
                }),
            }]
            .try_into()
            .unwrap(),
            ext: TransactionExt::V0,
        };
        let unsigned = TransactionEnvelope::Tx(TransactionV1Envelope {
            tx,
            signatures: Default::default(),
        })
        .to_xdr_base64(Limits::none())
        .unwrap();
        let signed = self.sign(&unsigned, &k);
        let r = self
            .http
            .post(format!("{}/transactions", self.base))
            .form(&[("tx", signed)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        if usdc != "0" {
            self.http
                .post(format!("{}/_sandbox/fund", self.base))
                .json(&json!({ "address": gid(&k), "amount": usdc, "asset": "USDC" }))
                .send()
                .await
                .unwrap();
        }
        k
    }

    async fn deploy(
        &self,
        platform: &SigningKey,
        buyer: &SigningKey,
        seller: &SigningKey,
        amount: f64,
    ) -> String {
        let body = json!({
            "signer": gid(platform),
            "engagementId": "ord_test",
            "title": "Logo",
            "description": "A logo",
            "roles": {
                "approver": gid(buyer), "serviceProvider": gid(seller), "platformAddress": gid(platform),
                "releaseSigner": gid(buyer), "disputeResolver": gid(platform), "receiver": gid(seller),
            },
            "amount": amount,
            "platformFee": 5,
            "milestones": [{ "description": "Deliver the logo" }],
            "trustline": { "address": self.issuer, "symbol": "USDC" },
        });
        let r = self.run("/deployer/single-release", body, platform).await;
        assert_eq!(r["escrow"]["amount"], amount);
        r["contractId"].as_str().unwrap().to_string()
    }
}

#[tokio::test]
async fn release_lifecycle_moves_balances_with_fees() {
    let tw = Tw::new().await;
    let platform = tw.wallet("0").await;
    let buyer = tw.wallet("100").await;
    let seller = tw.wallet("0").await;
    let id = tw.deploy(&platform, &buyer, &seller, 100.0).await;
    assert!(id.starts_with('C'));

    tw.run(
        "/escrow/single-release/fund-escrow",
        json!({ "contractId": id, "signer": gid(&buyer), "amount": 100 }),
        &buyer,
    )
    .await;
    assert_eq!(tw.usdc(&gid(&buyer)).await, "0.0000000");
    let b: Value = tw
        .http
        .get(format!(
            "{}/helper/get-multiple-escrow-balance?addresses[]={id}",
            tw.base
        ))
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(b[0]["balance"], 100.0);

    // Call order: approve before a status is set fails with the contract's text.
    let (s, e) = tw
        .post(
            "/escrow/single-release/approve-milestone",
            json!({ "contractId": id, "milestoneIndex": "0", "approver": gid(&buyer) }),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(e["message"], "The milestone status cannot be empty");
    tw.run("/escrow/single-release/change-milestone-status", json!({ "contractId": id, "milestoneIndex": "0", "newStatus": "Delivered", "newEvidence": "https://x", "serviceProvider": gid(&seller) }), &seller).await;
    tw.run(
        "/escrow/single-release/approve-milestone",
        json!({ "contractId": id, "milestoneIndex": "0", "approver": gid(&buyer) }),
        &buyer,
    )
    .await;
    // A wrong signer gets the contract's error text.
    let (s, e) = tw
        .post(
            "/escrow/single-release/release-funds",
            json!({ "contractId": id, "releaseSigner": gid(&seller) }),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        e["message"],
        "Only the release signer can release the escrow earnings"
    );
    tw.run(
        "/escrow/single-release/release-funds",
        json!({ "contractId": id, "releaseSigner": gid(&buyer) }),
        &buyer,
    )
    .await;

    // 0.3 % to Trustless Work, 5 % to the platform, the rest to the receiver.
    assert_eq!(tw.usdc(&gid(&seller)).await, "94.7000000");
    assert_eq!(tw.usdc(&gid(&platform)).await, "5.0000000");
    assert_eq!(tw.usdc(TW_FEE).await, "0.3000000");
    let escrows: Value = tw
        .http
        .get(format!(
            "{}/helper/get-escrow-by-contract-ids?contractIds[]={id}",
            tw.base
        ))
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(escrows[0]["flags"]["released"], true);
    assert_eq!(escrows[0]["balance"], 0.0);
    // The seller's payment stream shows the contract transfer.
    let p: Value = tw
        .http
        .get(format!(
            "{}/accounts/{}/payments?order=desc&limit=1",
            tw.base,
            gid(&seller)
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rec = &p["_embedded"]["records"][0];
    assert_eq!(rec["type"], "invoke_host_function");
    let change = rec["asset_balance_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["to"] == gid(&seller).as_str())
        .unwrap();
    assert_eq!(change["amount"], "94.7000000");
    assert_eq!(change["asset_code"], "USDC");
    // Releasing twice is refused.
    let (s, e) = tw
        .post(
            "/escrow/single-release/release-funds",
            json!({ "contractId": id, "releaseSigner": gid(&buyer) }),
        )
        .await;
    assert_eq!(
        (s, e["message"].as_str().unwrap()),
        (400, "The escrow funds have been released")
    );
}

#[tokio::test]
async fn dispute_and_split_pays_pro_rata() {
    let tw = Tw::new().await;
    let platform = tw.wallet("0").await;
    let buyer = tw.wallet("100").await;
    let seller = tw.wallet("0").await;
    let id = tw.deploy(&platform, &buyer, &seller, 100.0).await;
    tw.run(
        "/escrow/single-release/fund-escrow",
        json!({ "contractId": id, "signer": gid(&buyer), "amount": 100 }),
        &buyer,
    )
    .await;
    // The dispute resolver cannot open a dispute.
    let (_, e) = tw
        .post(
            "/escrow/single-release/dispute-escrow",
            json!({ "contractId": id, "signer": gid(&platform) }),
        )
        .await;
    assert_eq!(
        e["message"],
        "The dispute resolver cannot dispute the escrow"
    );
    tw.run(
        "/escrow/single-release/dispute-escrow",
        json!({ "contractId": id, "signer": gid(&buyer) }),
        &buyer,
    )
    .await;
    // Distributions must equal the escrow balance.
    let (_, e) = tw
        .post("/escrow/single-release/resolve-dispute", json!({ "contractId": id, "disputeResolver": gid(&platform), "distributions": [{ "address": gid(&seller), "amount": 80 }] }))
        .await;
    assert_eq!(
        e["message"],
        "The total amount to be distributed must be equal to the escrow balance"
    );
    tw.run(
        "/escrow/single-release/resolve-dispute",
        json!({ "contractId": id, "disputeResolver": gid(&platform), "distributions": [{ "address": gid(&seller), "amount": 80 }, { "address": gid(&buyer), "amount": 20 }] }),
        &platform,
    )
    .await;
    // Fees 5.3 % taken pro rata from each share.
    assert_eq!(tw.usdc(&gid(&seller)).await, "75.7600000");
    assert_eq!(tw.usdc(&gid(&buyer)).await, "18.9400000");
    assert_eq!(tw.usdc(&gid(&platform)).await, "5.0000000");
    assert_eq!(tw.usdc(TW_FEE).await, "0.3000000");
}

#[tokio::test]
async fn api_key_and_rate_limit() {
    let tw = Tw::new().await;
    let r = tw
        .http
        .get(format!(
            "{}/helper/get-escrow-by-contract-ids?contractIds[]=C",
            tw.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let mut last = 0;
    for _ in 0..51 {
        let r = tw
            .http
            .get(format!("{}/helper/get-multiple-escrow-balance", tw.base))
            .header("x-api-key", "limited")
            .send()
            .await
            .unwrap();
        last = r.status().as_u16();
        if last == 429 {
            let b: Value = r.json().await.unwrap();
            assert_eq!(
                b,
                json!({ "statusCode": 429, "message": "ThrottlerException: Too Many Requests" })
            );
            break;
        }
    }
    assert_eq!(last, 429, "the 51st request inside a minute is throttled");
    // Another key has its own budget.
    let r = tw
        .http
        .get(format!("{}/helper/get-multiple-escrow-balance", tw.base))
        .header("x-api-key", "other")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn send_transaction_unknown_outcome_is_settled_by_the_hash() {
    let tw = Tw::new().await;
    let platform = tw.wallet("0").await;
    let buyer = tw.wallet("10").await;
    let seller = tw.wallet("0").await;
    let id = tw.deploy(&platform, &buyer, &seller, 10.0).await;
    let (_, b) = tw
        .post(
            "/escrow/single-release/fund-escrow",
            json!({ "contractId": id, "signer": gid(&buyer), "amount": 10 }),
        )
        .await;
    let signed = tw.sign(b["unsignedTransaction"].as_str().unwrap(), &buyer);
    tw.http
        .post(format!("{}/_sandbox/faults", tw.base))
        .json(&json!({ "timeoutAfterApply": 1 }))
        .send()
        .await
        .unwrap();
    let (s, r) = tw
        .post("/helper/send-transaction", json!({ "signedXdr": signed }))
        .await;
    assert_eq!(s, 500);
    assert_eq!(r["status"], "FAILED");
    // It was applied: Horizon knows the hash; resending the same envelope changes nothing.
    let env = TransactionEnvelope::from_xdr_base64(&signed, Limits::none()).unwrap();
    let TransactionEnvelope::Tx(v1) = env else {
        panic!()
    };
    let hash = hex::encode(v1.tx.hash(tw.network_id).unwrap());
    let t: Value = tw
        .http
        .get(format!("{}/transactions/{hash}", tw.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["successful"], true);
    let (s, _) = tw
        .post("/helper/send-transaction", json!({ "signedXdr": signed }))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        tw.usdc(&gid(&buyer)).await,
        "0.0000000",
        "funded exactly once"
    );
    // Injected 5xx also reaches the TW routes.
    tw.http
        .post(format!("{}/_sandbox/faults", tw.base))
        .json(&json!({ "fail5xx": 1 }))
        .send()
        .await
        .unwrap();
    let (s, _) = tw
        .post(
            "/escrow/single-release/release-funds",
            json!({ "contractId": id, "releaseSigner": gid(&buyer) }),
        )
        .await;
    assert_eq!(s, 503);
}

#[tokio::test]
async fn multi_release_per_milestone_release_and_dispute() {
    let tw = Tw::new().await;
    let platform = tw.wallet("0").await;
    let buyer = tw.wallet("100").await;
    let seller = tw.wallet("0").await;
    let designer = tw.wallet("0").await;
    let body = json!({
        "signer": gid(&platform),
        "engagementId": "ord_multi",
        "title": "Site",
        "description": "Two deliverables",
        "roles": {
            "approver": gid(&buyer), "serviceProvider": gid(&seller), "platformAddress": gid(&platform),
            "releaseSigner": gid(&buyer), "disputeResolver": gid(&platform),
        },
        "platformFee": 5,
        "milestones": [
            { "description": "Design", "amount": 60, "receiver": gid(&seller) },
            { "description": "Build", "amount": 40, "receiver": gid(&designer) },
        ],
        "trustline": { "address": tw.issuer, "symbol": "USDC" },
    });
    let r = tw.run("/deployer/multi-release", body, &platform).await;
    let id = r["contractId"].as_str().unwrap().to_string();
    assert_eq!(r["escrow"]["type"], "multi-release");
    assert_eq!(r["escrow"]["milestones"][1]["amount"], 40.0);
    tw.run(
        "/escrow/multi-release/fund-escrow",
        json!({ "contractId": id, "signer": gid(&buyer), "amount": 100 }),
        &buyer,
    )
    .await;
    // Single-release paths refuse a multi-release escrow.
    let (s, _) = tw
        .post(
            "/escrow/single-release/fund-escrow",
            json!({ "contractId": id, "signer": gid(&buyer), "amount": 1 }),
        )
        .await;
    assert_eq!(s, 400);
    // Milestone 0: status, approval, release to its receiver with fees.
    tw.run("/escrow/multi-release/change-milestone-status", json!({ "contractId": id, "milestoneIndex": "0", "newStatus": "Done", "serviceProvider": gid(&seller) }), &seller).await;
    let (_, e) = tw
        .post(
            "/escrow/multi-release/release-milestone-funds",
            json!({ "contractId": id, "milestoneIndex": "0", "releaseSigner": gid(&buyer) }),
        )
        .await;
    assert_eq!(
        e["message"],
        "The escrow must be completed to release earnings"
    );
    tw.run(
        "/escrow/multi-release/approve-milestone",
        json!({ "contractId": id, "milestoneIndex": "0", "approver": gid(&buyer) }),
        &buyer,
    )
    .await;
    tw.run(
        "/escrow/multi-release/release-milestone-funds",
        json!({ "contractId": id, "milestoneIndex": "0", "releaseSigner": gid(&buyer) }),
        &buyer,
    )
    .await;
    assert_eq!(tw.usdc(&gid(&seller)).await, "56.8200000"); // 60 − 0.18 − 3.00
    // Milestone 1: disputed by the buyer, resolved 30/10 pro rata.
    tw.run(
        "/escrow/multi-release/dispute-milestone",
        json!({ "contractId": id, "milestoneIndex": "1", "signer": gid(&buyer) }),
        &buyer,
    )
    .await;
    let (_, e) = tw
        .post("/escrow/multi-release/resolve-milestone-dispute", json!({ "contractId": id, "milestoneIndex": "1", "disputeResolver": gid(&platform), "distributions": [{ "address": gid(&designer), "amount": 30 }] }))
        .await;
    assert_eq!(
        e["message"],
        "The total amount to be distributed must be equal to the escrow balance"
    );
    tw.run(
        "/escrow/multi-release/resolve-milestone-dispute",
        json!({ "contractId": id, "milestoneIndex": "1", "disputeResolver": gid(&platform), "distributions": [{ "address": gid(&designer), "amount": 30 }, { "address": gid(&buyer), "amount": 10 }] }),
        &platform,
    )
    .await;
    assert_eq!(tw.usdc(&gid(&designer)).await, "28.4100000"); // 30 − 30 × 5.3 %
    assert_eq!(tw.usdc(&gid(&buyer)).await, "9.4700000");
    assert_eq!(tw.usdc(&gid(&platform)).await, "5.0000000");
    assert_eq!(tw.usdc(TW_FEE).await, "0.3000000");
    let escrows: Value = tw
        .http
        .get(format!(
            "{}/helper/get-escrow-by-contract-ids?contractIds[]={id}",
            tw.base
        ))
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(escrows[0]["balance"], 0.0);
    assert_eq!(escrows[0]["milestones"][0]["flags"]["released"], true);
    assert_eq!(escrows[0]["milestones"][1]["flags"]["resolved"], true);
}

/// Issue #19: the indexer's answer typed as `GetEscrowsFromIndexerResponse` of
/// `@trustless-work/escrow` 3.0.5; `get-escrows-by-role`; the indexed array form;
/// `update-escrow` with the contract's rules; TW's error body on 404s.
#[tokio::test]
async fn indexer_types_roles_update_and_errors() {
    let tw = Tw::new().await;
    let platform = tw.wallet("0").await;
    let buyer = tw.wallet("100").await;
    let seller = tw.wallet("0").await;
    let id = tw.deploy(&platform, &buyer, &seller, 50.0).await;

    let get = |path: String| {
        let http = tw.http.clone();
        let url = format!("{}{path}", tw.base);
        async move {
            let r = http
                .get(url)
                .header("x-api-key", "tw_test.key")
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    // Indexed array form, and the fields the npm client's type declares.
    let (s, b) = get(format!(
        "/helper/get-escrow-by-contract-ids?contractIds[0]={id}"
    ))
    .await;
    assert_eq!(s, 200, "{b}");
    let e = &b[0];
    assert_eq!(e["contractId"], id.as_str());
    assert_eq!(e["user"], gid(&platform).as_str());
    assert_eq!(e["type"], "single-release");
    assert!(
        e["createdAt"]["_seconds"].as_i64().unwrap() > 1_700_000_000,
        "{e}"
    );
    assert!(e["createdAt"]["_nanoseconds"].is_u64(), "{e}");
    assert!(e["updatedAt"]["_seconds"].is_i64(), "{e}");
    for k in [
        "engagementId",
        "title",
        "roles",
        "description",
        "amount",
        "platformFee",
        "balance",
        "milestones",
        "flags",
        "trustline",
        "isActive",
    ] {
        assert!(!e[k].is_null(), "{k} missing: {e}");
    }

    // By role (and the by-signer filters).
    let (s, b) = get(format!(
        "/helper/get-escrows-by-role?role=approver&roleAddress={}",
        gid(&buyer)
    ))
    .await;
    assert_eq!((s, b.as_array().unwrap().len()), (200, 1), "{b}");
    let (_, b) = get(format!(
        "/helper/get-escrows-by-role?role=serviceProvider&roleAddress={}",
        gid(&buyer)
    ))
    .await;
    assert_eq!(b, json!([]));
    let (s, b) = get(format!(
        "/helper/get-escrows-by-role?role=owner&roleAddress={}",
        gid(&buyer)
    ))
    .await;
    assert_eq!((s, b["statusCode"].as_u64()), (400, Some(400)), "{b}");
    let (_, b) = get(format!(
        "/helper/get-escrows-by-signer?signer={}&status=working&type=single-release",
        gid(&platform)
    ))
    .await;
    assert_eq!(b.as_array().unwrap().len(), 1, "{b}");
    let (_, b) = get(format!(
        "/helper/get-escrows-by-signer?signer={}&status=released",
        gid(&platform)
    ))
    .await;
    assert_eq!(b, json!([]));

    // update-escrow before funding: the platform changes the milestone and amount.
    let put = |body: Value| {
        let http = tw.http.clone();
        let url = format!("{}/escrow/single-release/update-escrow", tw.base);
        async move {
            let r = http
                .put(url)
                .header("x-api-key", "tw_test.key")
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let escrow = |amount: f64, platform_addr: &str| {
        json!({
            "engagementId": "ord_test", "title": "Logo v2", "description": "A better logo",
            "roles": {
                "approver": gid(&buyer), "serviceProvider": gid(&seller), "platformAddress": platform_addr,
                "releaseSigner": gid(&buyer), "disputeResolver": gid(&platform), "receiver": gid(&seller),
            },
            "amount": amount, "platformFee": 5,
            "milestones": [{ "description": "Deliver the logo in SVG" }],
            "trustline": { "address": tw.issuer, "symbol": "USDC" },
        })
    };
    // Only the platform address may update (contract error 7), and it cannot change.
    let (s, b) = put(
        json!({ "contractId": id, "signer": gid(&buyer), "escrow": escrow(60.0, &gid(&platform)) }),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(b["error"], "Bad Request");
    assert_eq!(
        b["message"],
        "Only the platform address should be able to execute this function"
    );
    let (s, b) = put(
        json!({ "contractId": id, "signer": gid(&platform), "escrow": escrow(60.0, &gid(&buyer)) }),
    )
    .await;
    assert_eq!(
        (s, b["message"].as_str()),
        (
            400,
            Some("The platform address of the escrow cannot be changed")
        )
    );
    let (s, b) = put(json!({ "contractId": id, "signer": gid(&platform), "escrow": escrow(60.0, &gid(&platform)) })).await;
    assert_eq!(s, 201, "{b}");
    let signed = tw.sign(b["unsignedTransaction"].as_str().unwrap(), &platform);
    let (s, r) = tw
        .post("/helper/send-transaction", json!({ "signedXdr": signed }))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["contractId"], id.as_str());
    assert_eq!(r["escrow"]["amount"], 60.0);
    assert_eq!(r["escrow"]["title"], "Logo v2");
    assert_eq!(
        r["escrow"]["milestones"][0]["description"],
        "Deliver the logo in SVG"
    );
    // Funded: no more updates (contract error 23).
    let (_, b) = get(format!(
        "/helper/get-escrow-by-contract-ids?contractIds[]={id}"
    ))
    .await;
    let _ = b;
    tw.run(
        "/escrow/single-release/fund-escrow",
        json!({ "contractId": id, "signer": gid(&buyer), "amount": 60 }),
        &buyer,
    )
    .await;
    let (s, b) = put(json!({ "contractId": id, "signer": gid(&platform), "escrow": escrow(70.0, &gid(&platform)) })).await;
    assert_eq!(
        (s, b["message"].as_str()),
        (400, Some("The escrow has funds, it cannot be modified"))
    );

    // TW's error body on unknown routes and on a body that is not JSON.
    let (s, b) = get("/helper/no-such-route".into()).await;
    assert_eq!(
        (s, b),
        (
            404,
            json!({ "message": "Cannot GET /helper/no-such-route", "error": "Not Found", "statusCode": 404 })
        )
    );
    let r = tw
        .http
        .post(format!("{}/escrow/single-release/fund-escrow", tw.base))
        .header("x-api-key", "tw_test.key")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let b: Value = r.json().await.unwrap();
    assert_eq!(
        (b["statusCode"].as_u64(), b["error"].as_str()),
        (Some(400), Some("Bad Request"))
    );
    // Horizon paths keep Horizon's problem+json.
    let r = tw
        .http
        .get(format!("{}/no/such/thing", tw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
}

/// Trustless Work's own published npm client (`@trustless-work/escrow` 3.0.5, its React
/// hooks rendered in Node with react-dom/server, no browser) with `@stellar/stellar-sdk`
/// signing the unsigned XDRs: a single-release escrow deployed, funded, milestone
/// status changed, approved and released; a second one disputed and resolved 25/15; a
/// multi-release one updated, released, disputed, resolved and its remainder withdrawn;
/// TW reads and on-chain USDC asserted (sandbox/tests/sdk/tw/tw_client.mjs).
#[tokio::test]
async fn tw_npm_client_round_trip() {
    let Ok(dir) = std::env::var("OFFERHUB_JS_TW_CLIENT") else {
        eprintln!(
            "skipped: set OFFERHUB_JS_TW_CLIENT to sandbox/tests/sdk/tw after `npm ci` there"
        );
        return;
    };
    let sb = Sandbox::new(SandboxOptions::default()).unwrap();
    let addr = start(sb, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let out = tokio::process::Command::new("node")
        .current_dir(&dir)
        .arg("tw_client.mjs")
        .arg(format!("http://{addr}"))
        .output()
        .await
        .expect("node runs");
    assert!(
        out.status.success(),
        "node @trustless-work/escrow run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

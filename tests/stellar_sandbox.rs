//! OfferHub's Stellar code against the sandbox over HTTP: the sandbox verifies
//! signatures and rules independently (stellar-xdr + ed25519-dalek of its own).

use offerhub::money::Amount;
use offerhub::stellar::horizon::{Horizon, SubmitOutcome};
use offerhub::stellar::keys::Keypair;
use offerhub::stellar::network::StellarNetwork;
use offerhub::stellar::tx::{self, CreditAsset};
use offerhub_sandbox::{Sandbox, SandboxOptions, start};

struct Env {
    horizon: Horizon,
    network: StellarNetwork,
    usdc: CreditAsset,
    usdc_issuer: String,
    base: String,
    _sb: std::sync::Arc<Sandbox>,
}

async fn env() -> Env {
    let sb = Sandbox::new(SandboxOptions::default()).unwrap();
    let addr = start(sb.clone(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = format!("http://{addr}");
    let horizon = Horizon::new(base.parse().unwrap()).unwrap();
    let network = StellarNetwork::from_passphrase(&horizon.network_passphrase().await.unwrap());
    let issuer = sb.usdc().issuer;
    Env {
        horizon,
        network,
        usdc: CreditAsset {
            code: "USDC".into(),
            issuer: offerhub::stellar::keys::parse_account(&issuer, "issuer").unwrap(),
        },
        usdc_issuer: issuer,
        base,
        _sb: sb,
    }
}

fn later() -> u64 {
    (chrono::Utc::now().timestamp() + 120) as u64
}

async fn friendbot(e: &Env, kp: &Keypair) {
    let r = reqwest::get(format!("{}/friendbot?addr={}", e.base, kp.public_key()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn faucet(e: &Env, to: &str, amount: &str) {
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/fund", e.base))
        .json(&serde_json::json!({ "address": to, "amount": amount, "asset": "USDC" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Sponsored activation: a new wallet with 0 XLM and a USDC trustline, reserves paid by
/// the platform (research/trustless-stellar.md §C.7).
async fn activate(e: &Env, platform: &Keypair) -> Keypair {
    let wallet = Keypair::random();
    let seq = e
        .horizon
        .account(&platform.public_key())
        .await
        .unwrap()
        .unwrap()
        .sequence;
    let w = wallet.public_bytes();
    let t = tx::transaction(
        &platform.public_bytes(),
        seq + 1,
        later(),
        vec![
            tx::begin_sponsoring(&w),
            tx::create_account(&w, 0),
            tx::change_trust(&w, &e.usdc),
            tx::end_sponsoring(&w),
        ],
    )
    .unwrap();
    let signed = tx::sign(t, &e.network, &[platform, &wallet]).unwrap();
    assert!(matches!(
        e.horizon.submit(&signed).await.unwrap(),
        SubmitOutcome::Applied { .. }
    ));
    wallet
}

#[tokio::test]
async fn accounts_activation_and_payments() {
    let e = env().await;
    let platform = Keypair::random();
    assert!(
        e.horizon
            .account(&platform.public_key())
            .await
            .unwrap()
            .is_none()
    );
    friendbot(&e, &platform).await;
    let wallet = activate(&e, &platform).await;
    let acct = e
        .horizon
        .account(&wallet.public_key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(acct.credit("USDC", &e.usdc_issuer), Some(Amount::ZERO));
    assert_eq!(acct.native(), Amount::ZERO);
    assert_eq!(acct.num_sponsored, 3);

    // The wallet holds no XLM: fees come from a fee source. Here the platform pays a
    // USDC payment out of the wallet by being the transaction source.
    faucet(&e, &wallet.public_key(), "10").await;
    let dest = activate(&e, &platform).await;
    let seq = e
        .horizon
        .account(&platform.public_key())
        .await
        .unwrap()
        .unwrap()
        .sequence;
    let mut pay = tx::payment(
        &dest.public_bytes(),
        Some(&e.usdc),
        Amount::parse("2.5").unwrap(),
    );
    pay.source_account = Some(stellar_xdr::MuxedAccount::Ed25519(stellar_xdr::Uint256(
        wallet.public_bytes(),
    )));
    let t = tx::transaction(&platform.public_bytes(), seq + 1, later(), vec![pay]).unwrap();
    let signed = tx::sign(t, &e.network, &[&platform, &wallet]).unwrap();
    assert!(matches!(
        e.horizon.submit(&signed).await.unwrap(),
        SubmitOutcome::Applied { .. }
    ));
    let d = e
        .horizon
        .account(&dest.public_key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        d.credit("USDC", &e.usdc_issuer),
        Some(Amount::parse("2.5").unwrap())
    );

    // Signed for another network: tx_bad_auth.
    let other = StellarNetwork::from_passphrase(offerhub::stellar::network::TESTNET_PASSPHRASE);
    let seq = e
        .horizon
        .account(&platform.public_key())
        .await
        .unwrap()
        .unwrap()
        .sequence;
    let t = tx::transaction(
        &platform.public_bytes(),
        seq + 1,
        later(),
        vec![tx::payment(
            &dest.public_bytes(),
            None,
            Amount::parse("1").unwrap(),
        )],
    )
    .unwrap();
    match e
        .horizon
        .submit(&tx::sign(t, &other, &[&platform]).unwrap())
        .await
        .unwrap()
    {
        SubmitOutcome::Failed { tx_code, .. } => assert_eq!(tx_code, "tx_bad_auth"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn timeout_after_apply_pays_exactly_once() {
    let e = env().await;
    let platform = Keypair::random();
    friendbot(&e, &platform).await;
    let wallet = activate(&e, &platform).await;
    faucet(&e, &wallet.public_key(), "10").await;
    let dest = activate(&e, &platform).await;
    let seq = e
        .horizon
        .account(&platform.public_key())
        .await
        .unwrap()
        .unwrap()
        .sequence;
    let mut pay = tx::payment(
        &dest.public_bytes(),
        Some(&e.usdc),
        Amount::parse("4").unwrap(),
    );
    pay.source_account = Some(stellar_xdr::MuxedAccount::Ed25519(stellar_xdr::Uint256(
        wallet.public_bytes(),
    )));
    let signed = tx::sign(
        tx::transaction(&platform.public_bytes(), seq + 1, later(), vec![pay]).unwrap(),
        &e.network,
        &[&platform, &wallet],
    )
    .unwrap();
    reqwest::Client::new()
        .post(format!("{}/_sandbox/faults", e.base))
        .json(&serde_json::json!({ "timeoutAfterApply": 2 }))
        .send()
        .await
        .unwrap();
    // First answer is a 504 although it was applied: settled through the hash.
    match e.horizon.submit_settled(&signed).await.unwrap() {
        SubmitOutcome::Applied { hash, .. } => assert_eq!(hash, signed.hash),
        other => panic!("{other:?}"),
    }
    let w = e
        .horizon
        .account(&wallet.public_key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        w.credit("USDC", &e.usdc_issuer),
        Some(Amount::parse("6").unwrap()),
        "paid exactly once"
    );
    let d = e
        .horizon
        .account(&dest.public_key())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        d.credit("USDC", &e.usdc_issuer),
        Some(Amount::parse("4").unwrap())
    );
}

//! OfferHub's Stellar code against the sandbox over HTTP: the sandbox verifies
//! signatures and rules independently (stellar-xdr + ed25519-dalek of its own).

use offerhub::money::Amount;
use offerhub::stellar::horizon::{Horizon, SubmitOutcome};
use offerhub::stellar::keys::Keypair;
use offerhub::stellar::network::StellarNetwork;
use offerhub::stellar::tx;

mod common;

use common::SandboxNet as Env;

async fn env() -> Env {
    common::sandbox_network().await
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
/// the platform (docs/PROVIDERS.md, Stellar and Horizon: reserves and sponsorship).
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
        SubmitOutcome::Failed { tx_code, .. } => assert_eq!(tx_code.as_str(), "tx_bad_auth"),
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

/// The payment stream over a hand-written SSE answer: a multi-byte character split
/// across two network chunks arrives whole, `id:` is the record's paging token and the
/// stream's last event id, `retry:` is kept, `event: close` ends the stream, and the
/// cursor is sent both as `?cursor=` and as `Last-Event-ID`.
#[tokio::test]
async fn payment_stream_reassembles_split_characters_and_keeps_ids() {
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0_u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "request ended early");
            request.extend_from_slice(&buf[..n]);
        }
        let café = "café".as_bytes(); // "é" is 0xC3 0xA9
        let euro = "€".as_bytes(); // 0xE2 0x82 0xAC
        let mut chunks: Vec<Vec<u8>> = vec![
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
                .to_vec(),
        ];
        let mut first = b"retry: 1500\nevent: open\ndata: \"hello\"\n\n".to_vec();
        first.extend_from_slice(
            b"id: 12345\ndata: {\"id\":\"12345\",\"paging_token\":\"12345\",\"memo\":\"",
        );
        first.extend_from_slice(&café[..4]); // "caf" and the first byte of "é"
        chunks.push(first);
        let mut second = café[4..].to_vec();
        second.extend_from_slice(b"\"}\n\nid: 12346\ndata: {\"memo\":\"");
        second.extend_from_slice(&euro[..1]);
        chunks.push(second);
        let mut third = euro[1..].to_vec();
        third.extend_from_slice(b"\"}\n\nevent: close\ndata: \"byebye\"\n\n");
        third.extend_from_slice(b"id: 99999\ndata: {\"memo\":\"after close\"}\n\n");
        chunks.push(third);
        for c in chunks {
            sock.write_all(&c).await.unwrap();
            sock.flush().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        String::from_utf8(request).unwrap()
    });
    let horizon = Horizon::new(format!("http://{addr}").parse().unwrap()).unwrap();
    let mut stream = horizon.stream_payments("12000").await.unwrap();
    assert_eq!(
        stream.last_event_id(),
        "12000",
        "the cursor before any event"
    );
    let mut records = Vec::new();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(r) = stream.next().await {
            records.push(r.unwrap());
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ended at `event: close`");
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0]["memo"], "café");
    assert_eq!(records[0]["paging_token"], "12345");
    assert_eq!(records[1]["memo"], "€");
    assert_eq!(
        records[1]["paging_token"], "12346",
        "the event id stands for a missing paging token"
    );
    assert_eq!(stream.last_event_id(), "12346");
    assert_eq!(stream.retry(), Some(std::time::Duration::from_millis(1500)));
    let request = server.await.unwrap().to_ascii_lowercase();
    assert!(
        request.starts_with("get /payments?cursor=12000 "),
        "{request}"
    );
    assert!(
        request.contains("\r\nlast-event-id: 12000\r\n"),
        "{request}"
    );
    assert!(
        request.contains("\r\naccept: text/event-stream\r\n"),
        "{request}"
    );
}

/// The payment stream against the sandbox's Horizon: the `id:` of each event is the
/// record's paging token, and the `open` event's `retry:` (1 s, as Horizon) is kept.
#[tokio::test]
async fn payment_stream_ids_are_paging_tokens() {
    use futures_util::StreamExt;
    let e = env().await;
    let mut stream = e.horizon.stream_payments("now").await.unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/accounts", e.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let address = r.json::<serde_json::Value>().await.unwrap()["address"]
        .as_str()
        .unwrap()
        .to_string();
    faucet(&e, &address, "3").await;
    let record = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let r = stream.next().await.unwrap().unwrap();
            if r["type"] == "payment" && r["to"] == address.as_str() {
                break r;
            }
        }
    })
    .await
    .expect("the payment streamed");
    assert_eq!(record["amount"], "3.0000000");
    let token = record["paging_token"].as_str().unwrap();
    assert_eq!(stream.last_event_id(), token);
    assert_eq!(stream.retry(), Some(std::time::Duration::from_secs(1)));
}

/// Reads retry transient answers (503, 429) up to 4 attempts, pausing at least 200 ms,
/// 400 ms and 800 ms (with jitter, less than twice that); the 4th transient answer is
/// the caller's error.
#[tokio::test]
async fn reads_retry_transient_answers_up_to_four_attempts() {
    let e = env().await;
    let faults = |f: serde_json::Value| {
        let url = format!("{}/_sandbox/faults", e.base);
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .json(&f)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    let someone = Keypair::random().public_key();
    faults(serde_json::json!({ "fail5xx": 2, "fail429": 1 })).await;
    let started = std::time::Instant::now();
    assert!(e.horizon.account(&someone).await.unwrap().is_none());
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(1400),
        "{waited:?}"
    );
    assert!(waited < std::time::Duration::from_secs(5), "{waited:?}");
    faults(serde_json::json!({ "fail5xx": 4 })).await;
    let err = e.horizon.account(&someone).await.unwrap_err();
    assert!(err.message.contains("503"), "{err:?}");
    // The four attempts consumed the four faults.
    assert!(e.horizon.account(&someone).await.unwrap().is_none());
}

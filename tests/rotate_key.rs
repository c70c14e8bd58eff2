//! `wallet rotate-key` over 1,000 wallets, interrupted and resumed — both backends.

use std::sync::Arc;

use offerhub::config::{DatabaseUrl, Secret};
use offerhub::context::Context;
use offerhub::services::users::{self, NewUser, NoHooks, UserType};
use offerhub::services::wallets::{self, StellarContext, WalletKind};
use offerhub::stellar::horizon::Horizon;
use offerhub::stellar::network::StellarNetwork;
use offerhub::stellar::tx::CreditAsset;
use offerhub::store::Store;
use offerhub::vault::Vault;
use offerhub_testkit::both_backends;

fn key(b: u8) -> Secret {
    Secret::new(hex::encode([b; 32]))
}

async fn rotation(url: String) {
    let store = Store::connect(&DatabaseUrl::new(&url)).await.unwrap();
    store.migrate().await.unwrap();
    // Wallet creation only needs the vault; Horizon is never called here.
    let sc = StellarContext {
        horizon: Horizon::new("http://127.0.0.1:9/".parse().unwrap()).unwrap(),
        network: StellarNetwork::from_passphrase("test"),
        usdc: CreditAsset {
            code: "USDC".into(),
            issuer: [1; 32],
        },
        usdc_issuer: String::new(),
        vault: Arc::new(Vault::new(&key(1), &[]).unwrap()),
        float_stroops: 0,
        friendbot: None,
    };
    let mut ids = Vec::new();
    for i in 0..1000 {
        let (u, _) = users::create(
            &store,
            &Context::system(),
            &NoHooks,
            NewUser {
                external_user_id: format!("k{i}"),
                email: None,
                user_type: UserType::Both,
            },
        )
        .await
        .unwrap();
        let w = wallets::create(
            &store,
            &Context::system(),
            &sc,
            WalletKind::User,
            Some(&u.id),
        )
        .await
        .unwrap();
        ids.push((
            w.id.clone(),
            wallets::keypair(&sc, &w).unwrap().public_key(),
        ));
    }
    let rotating = Vault::new(&key(2), &[key(1)]).unwrap();
    // Interrupted after three batches.
    let first = wallets::rotate_key(&store, &rotating, 100, Some(3), &|_, _| {})
        .await
        .unwrap();
    assert_eq!(
        (first.resealed, first.remaining, first.verified),
        (300, 700, 0)
    );
    // Meanwhile a daemon holding the old key plus the new one as "previous" opens all.
    let daemon = Vault::new(&key(1), &[key(2)]).unwrap();
    for (id, _) in ids.iter().take(5).chain(ids.iter().skip(995)) {
        let sealed: String = sqlx::query_scalar("SELECT sealed_secret FROM wallets WHERE id = $1")
            .bind(id)
            .fetch_one(store.reader())
            .await
            .unwrap();
        daemon.open(id, &sealed).unwrap();
    }
    // Resumed to the end, with progress.
    let last = std::sync::atomic::AtomicUsize::new(0);
    let second = wallets::rotate_key(&store, &rotating, 100, None, &|done, _| {
        last.store(done, std::sync::atomic::Ordering::SeqCst)
    })
    .await
    .unwrap();
    assert_eq!(
        (second.resealed, second.remaining, second.verified),
        (700, 0, 1000)
    );
    assert_eq!(last.load(std::sync::atomic::Ordering::SeqCst), 700);
    // Every wallet decrypts under the new key alone, to the same keypair.
    let new_only = StellarContext {
        vault: Arc::new(Vault::new(&key(2), &[]).unwrap()),
        ..sc
    };
    for (id, public) in &ids {
        let w = sqlx::query_scalar::<_, String>("SELECT user_id FROM wallets WHERE id = $1")
            .bind(id)
            .fetch_one(store.reader())
            .await
            .unwrap();
        let wallet = wallets::for_user(&store, &w).await.unwrap();
        assert_eq!(
            &wallets::keypair(&new_only, &wallet).unwrap().public_key(),
            public
        );
    }
    // Running again is a no-op.
    let third = wallets::rotate_key(&store, &rotating, 100, None, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(
        (third.resealed, third.remaining, third.verified),
        (0, 0, 1000)
    );
}
both_backends!(rotate_on, rotation);

/// Webhook endpoint secrets are sealed with the same vault and rotate with it: a secret
/// sealed under the old key and one stored in plain text (before sealing existed) both
/// end under the new key, open to the same secret, and the old key can be retired.
async fn webhook_secrets_rotate(url: String) {
    use offerhub::services::{rotation, webhooks};
    let store = Store::connect(&DatabaseUrl::new(&url)).await.unwrap();
    store.migrate().await.unwrap();
    let old = Vault::new(&key(1), &[]).unwrap();
    let created = webhooks::create_endpoint(
        &store,
        &Context::operator(),
        webhooks::EndpointPolicy {
            vault: &old,
            allow_private_networks: false,
        },
        "https://93.184.216.34/hooks",
        &["order.*".to_string()],
    )
    .await
    .unwrap();
    let stored = |id: String| {
        let store = store.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT secret FROM webhook_endpoints WHERE id = $1")
                .bind(id)
                .fetch_one(store.reader())
                .await
                .unwrap()
        }
    };
    let sealed = stored(created.endpoint.id.clone()).await;
    assert!(sealed.starts_with(&format!("v1.{}.", old.current_key_id())));
    assert!(!sealed.contains(created.secret.expose_secret()));
    // A row from before secrets were sealed.
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, url, event_filter, secret, status, created_at) \
         VALUES ('whe_legacy', 'https://93.184.216.34/old', '*', 'whsec_legacyplaintext', 'ACTIVE', '2026-01-01T00:00:00.000Z')",
    )
    .execute(store.reader())
    .await
    .unwrap();
    let new = Vault::new(&key(2), &[key(1)]).unwrap();
    let r = rotation::rotate(&store, &new, 1, &|| false, &|_, _| {})
        .await
        .unwrap();
    assert_eq!(r.remaining, 0, "{r:?}");
    let new_only = Vault::new(&key(2), &[]).unwrap();
    assert_eq!(rotation::verify(&store, &new_only).await.unwrap(), 2);
    for (id, secret) in [
        (
            created.endpoint.id.clone(),
            created.secret.expose_secret().to_string(),
        ),
        (
            "whe_legacy".to_string(),
            "whsec_legacyplaintext".to_string(),
        ),
    ] {
        let s = stored(id.clone()).await;
        assert!(
            s.starts_with(&format!("v1.{}.", new_only.current_key_id())),
            "{s}"
        );
        assert_eq!(
            new_only.open(&id, &s).unwrap().as_slice(),
            secret.as_bytes()
        );
    }
    assert_eq!(
        rotation::count_under(&store, old.current_key_id())
            .await
            .unwrap(),
        0
    );
}
both_backends!(webhook_rotate_on, webhook_secrets_rotate);

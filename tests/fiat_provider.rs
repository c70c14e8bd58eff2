//! The top-up and payout services against an in-memory fiat provider (the
//! `FiatProvider` port without HTTP), on SQLite and PostgreSQL. The store is real, and so
//! is the chain: the treasury settles in USDC on the sandbox's Horizon (in process). Every
//! flow ends with balances, statuses and events checked, the ledger equal to the chain
//! and `ledger verify` clean.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use offerhub::airtm::{
    AirtmUser, AirtmUserStatus, NewPayin, NewPayout, Payin, PayinStatus, Payout, PayoutStatus,
};
use offerhub::context::Context;
use offerhub::domain::topup::TopUpStatus;
use offerhub::domain::withdrawal::WithdrawalStatus;
use offerhub::error::{Error, ErrorCode, Result};
use offerhub::money::Amount;
use offerhub::services::airtm::{self as airtm_service, AirtmContext};
use offerhub::services::fiat_provider::FiatProvider;
use offerhub::services::payouts::{self, NewPayoutWithdrawal};
use offerhub::services::topups::{self, NewTopUp};
use offerhub::services::wallets::{self, WalletKind};
use offerhub::services::{reconcile, withdrawals};
use offerhub::store::Store;
use offerhub::{ledger, sequencer};
use offerhub_testkit::both_backends;
use serde_json::json;

/// Airtm in memory: payins and payouts by id, unique by code as at Airtm (a create with
/// a known code answers the existing resource, as the HTTP client does after 415029 /
/// 415056), statuses as Airtm's texts. Switches simulate an outage (every call answers
/// `PROVIDER_UNAVAILABLE`) and a create whose answer is lost (`PROVIDER_TIMEOUT` after
/// the payout was made).
#[derive(Default)]
struct FakeAirtm {
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    users: HashMap<String, AirtmUser>,
    payins: Vec<Payin>,
    payouts: Vec<Payout>,
    down: bool,
    lose_create_answers: bool,
    /// Every call, as `METHOD /path` with the id or code.
    calls: Vec<String>,
}

fn outage() -> Error {
    Error::new(
        ErrorCode::ProviderUnavailable,
        "Airtm unreachable (fake outage)",
    )
}

fn refusal(code: &str, message: &str) -> Error {
    Error::new(
        ErrorCode::ProviderError,
        format!("Airtm refused: {message}"),
    )
    .with_details(
        json!({ "providerStatus": 400, "providerCode": code, "providerMessage": message }),
    )
}

impl FakeAirtm {
    /// Records the call; `Err` during an outage.
    fn enter(&self, call: String) -> Result<std::sync::MutexGuard<'_, FakeState>> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(call);
        if s.down { Err(outage()) } else { Ok(s) }
    }

    fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    fn lose_create_answers(&self, lose: bool) {
        self.state.lock().unwrap().lose_create_answers = lose;
    }

    fn add_user(&self, email: &str, status: &str) {
        self.state.lock().unwrap().users.insert(
            email.to_string(),
            AirtmUser {
                id: format!("user-{email}"),
                status: AirtmUserStatus::parse(status),
                is_verified: true,
                country: Some("AR".into()),
            },
        );
    }

    fn calls(&self, prefix: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.calls.iter().filter(|c| c.starts_with(prefix)).count()
    }

    fn payout_count(&self, code: &str) -> usize {
        let s = self.state.lock().unwrap();
        s.payouts.iter().filter(|p| p.code == code).count()
    }

    /// The payer paid at the checkout: `CONFIRMED`, Airtm keeping `fee`.
    fn confirm_payin(&self, id: &str, fee: Amount, email: &str) {
        let mut s = self.state.lock().unwrap();
        let p = s.payins.iter_mut().find(|p| p.id == id).unwrap();
        let amount = p.amount.unwrap();
        p.status_text = "CONFIRMED".into();
        p.status = PayinStatus::parse(&p.status_text);
        p.airtm_fee = Some(fee);
        p.net_amount = amount.checked_sub(fee);
        p.airtm_user_email = Some(email.into());
    }

    /// Airtm moves a payout to `status` (its text), with a reason for failures.
    fn payout_becomes(&self, id: &str, status: &str, reason: Option<(&str, &str)>) {
        let mut s = self.state.lock().unwrap();
        let p = s.payouts.iter_mut().find(|p| p.id == id).unwrap();
        p.status_text = status.into();
        p.status = PayoutStatus::parse(status);
        p.net_amount = p.amount;
        if let Some((code, text)) = reason {
            p.reason_code = Some(code.into());
            p.reason_description = Some(text.into());
        }
    }
}

#[async_trait::async_trait]
impl FiatProvider for FakeAirtm {
    async fn user_by_email(&self, email: &str) -> Result<Option<AirtmUser>> {
        let s = self.enter(format!("GET /users/{email}"))?;
        Ok(s.users.get(email).cloned())
    }

    async fn create_payin(&self, p: &NewPayin<'_>) -> Result<Payin> {
        offerhub::airtm::usd(p.amount, "amount")?;
        let mut s = self.enter(format!("POST /payins {}", p.code))?;
        if let Some(existing) = s.payins.iter().find(|x| x.code == p.code) {
            return Ok(existing.clone());
        }
        let payin = Payin {
            id: format!("payin-{}", s.payins.len() + 1),
            code: p.code.into(),
            status_text: "CREATED".into(),
            status: PayinStatus::Created,
            amount: Some(p.amount),
            net_amount: None,
            airtm_fee: None,
            airtm_user_email: None,
            failure_reason: None,
        };
        s.payins.push(payin.clone());
        Ok(payin)
    }

    async fn payin(&self, id: &str) -> Result<Option<Payin>> {
        let s = self.enter(format!("GET /payins/{id}"))?;
        Ok(s.payins.iter().find(|p| p.id == id).cloned())
    }

    async fn payin_by_code(&self, code: &str) -> Result<Option<Payin>> {
        let s = self.enter(format!("GET /payins/by-code/{code}"))?;
        Ok(s.payins.iter().find(|p| p.code == code).cloned())
    }

    async fn cancel_payin(&self, id: &str) -> Result<()> {
        let mut s = self.enter(format!("DELETE /payins/{id}"))?;
        let p = s
            .payins
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or_else(|| refusal("415031", "Payin not found"))?;
        if p.status != PayinStatus::Created {
            return Err(refusal("415030", "The payin cannot be canceled"));
        }
        p.status_text = "CANCELED".into();
        p.status = PayinStatus::Canceled;
        Ok(())
    }

    async fn create_payout(&self, p: &NewPayout<'_>) -> Result<Payout> {
        offerhub::airtm::usd(p.amount, "amount")?;
        let mut s = self.enter(format!("POST /payouts {}", p.code))?;
        if let Some(existing) = s.payouts.iter().find(|x| x.code == p.code) {
            return Ok(existing.clone());
        }
        let status_text = if p.commit { "COMMITTED" } else { "CREATED" };
        let payout = Payout {
            id: format!("payout-{}", s.payouts.len() + 1),
            code: p.code.into(),
            status_text: status_text.into(),
            status: PayoutStatus::parse(status_text),
            amount: Some(p.amount),
            net_amount: None,
            airtm_fee: None,
            reason_code: None,
            reason_description: None,
        };
        s.payouts.push(payout.clone());
        if s.lose_create_answers {
            return Err(Error::new(
                ErrorCode::ProviderTimeout,
                "Airtm timed out on POST /payouts",
            ));
        }
        Ok(payout)
    }

    async fn commit_payout(&self, id: &str) -> Result<()> {
        let mut s = self.enter(format!("POST /payouts/{id}/commit"))?;
        let p = s
            .payouts
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or_else(|| refusal("415005", "Payout not found"))?;
        if p.status != PayoutStatus::Created {
            return Err(refusal("415027", "The payout was already processed"));
        }
        p.status_text = "COMMITTED".into();
        p.status = PayoutStatus::parse(&p.status_text);
        Ok(())
    }

    async fn payout(&self, id: &str) -> Result<Option<Payout>> {
        let s = self.enter(format!("GET /payouts/{id}"))?;
        Ok(s.payouts.iter().find(|p| p.id == id).cloned())
    }

    async fn payout_by_code(&self, code: &str) -> Result<Option<Payout>> {
        let s = self.enter(format!("GET /payouts/by-code/{code}"))?;
        Ok(s.payouts.iter().find(|p| p.code == code).cloned())
    }

    async fn cancel_payout(&self, id: &str) -> Result<()> {
        let mut s = self.enter(format!("DELETE /payouts/{id}"))?;
        let p = s
            .payouts
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or_else(|| refusal("415005", "Payout not found"))?;
        if !matches!(
            p.status,
            PayoutStatus::Created | PayoutStatus::PendingUserAction
        ) {
            return Err(refusal("415055", "The payout cannot be canceled"));
        }
        p.status_text = "CANCELED".into();
        p.status = PayoutStatus::Canceled;
        Ok(())
    }
}

struct World {
    store: Store,
    fake: Arc<FakeAirtm>,
    ac: AirtmContext,
    sandbox: String,
}

fn usd(s: &str) -> Amount {
    Amount::parse(s).unwrap()
}

/// A store, the sandbox's Horizon, the platform wallet (the treasury) holding 1000 USDC,
/// and the services' context with the fake as the fiat provider.
async fn setup(url: &str) -> World {
    let store = common::store(url).await;
    let (sc, sandbox) = common::sandbox_context(7).await;
    let sc = Arc::new(sc);
    let platform = wallets::ensure_platform(&store, &sc, None).await.unwrap();
    let fake = Arc::new(FakeAirtm::default());
    let w = World {
        store,
        fake: fake.clone(),
        ac: AirtmContext {
            client: fake,
            sc,
            checkout_template: "https://checkout.airtm.example/payin/{id}".into(),
            public_base_url: "https://offerhub.example".parse().unwrap(),
            require_verified: false,
        },
        sandbox,
    };
    w.fund(&platform.public_key, "1000").await;
    w
}

impl World {
    async fn fund(&self, address: &str, amount: &str) {
        let r = reqwest::Client::new()
            .post(format!("{}/_sandbox/fund", self.sandbox))
            .json(&json!({ "address": address, "amount": amount, "asset": "USDC" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// A user with an active wallet: (user id, wallet address).
    async fn user(&self, ext: &str) -> (String, String) {
        let user_id = common::create_user(&self.store, ext).await;
        let sc = &self.ac.sc;
        let w = wallets::create(
            &self.store,
            &Context::system(),
            sc,
            WalletKind::User,
            Some(&user_id),
        )
        .await
        .unwrap();
        let w = wallets::activate(&self.store, sc, &w.id).await.unwrap();
        assert_eq!(w.status, wallets::WalletStatus::Active);
        (user_id, w.public_key)
    }

    async fn topup(&self, user: &str, amount: &str) -> topups::TopUp {
        topups::create(
            &self.store,
            &Context::system(),
            &self.ac,
            &NewTopUp {
                user_id: user,
                amount: usd(amount),
                currency: "USD",
                return_url: "https://market.example/wallet/ok",
                cancel_url: "https://market.example/wallet/cancel",
            },
        )
        .await
        .unwrap()
    }

    /// A top-up of `amount` that Airtm confirms without a fee, applied: `amount` becomes
    /// available.
    async fn funded(&self, user: &str, amount: &str) {
        let t = self.topup(user, amount).await;
        let payin = t.airtm_payin_id.unwrap();
        self.fake
            .confirm_payin(&payin, Amount::ZERO, "payer@example.com");
        let done = topups::refresh(&self.store, &self.ac, &t.id).await.unwrap();
        assert_eq!(done.status, TopUpStatus::Succeeded);
    }

    async fn payout(
        &self,
        user: &str,
        amount: &str,
        commit: bool,
    ) -> Result<withdrawals::Withdrawal> {
        payouts::create(
            &self.store,
            &Context::system(),
            &self.ac,
            &NewPayoutWithdrawal {
                user_id: user,
                amount: usd(amount),
                destination_type: "airtm_balance",
                destination_ref: None,
                commit,
            },
        )
        .await
    }

    async fn balance(&self, user: &str) -> (Amount, Amount) {
        let b = ledger::balance(self.store.reader(), user).await.unwrap();
        (b.available, b.reserved)
    }

    async fn on_chain(&self, address: &str) -> Option<Amount> {
        let sc = &self.ac.sc;
        sc.horizon
            .account(address)
            .await
            .unwrap()
            .unwrap()
            .credit("USDC", &sc.usdc_issuer)
    }

    /// How many events of `event_type` resource `id` has.
    async fn events(&self, event_type: &str, id: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM events WHERE event_type = $1 AND resource_id = $2",
        )
        .bind(event_type)
        .bind(id)
        .fetch_one(self.store.reader())
        .await
        .unwrap()
    }

    /// Ledger = chain for every wallet, the treasury's float is not negative, and the
    /// ledger proves itself.
    async fn assert_clean(&self) {
        let sc = &self.ac.sc;
        let mut report = reconcile::wallets(&self.store, sc, 4, &|_, _| {})
            .await
            .unwrap();
        reconcile::platform(&self.store, sc, true, &mut report)
            .await
            .unwrap();
        assert!(
            report.is_clean(),
            "{}",
            serde_json::to_string_pretty(&report).unwrap()
        );
        let v = ledger::verify(&self.store).await.unwrap();
        assert!(v.is_clean(), "{v:?}");
    }
}

/// A payin Airtm reports confirmed is credited exactly once, however often (and however
/// concurrently) it is applied.
async fn confirmed_payin_credits_once(url: String) {
    let w = setup(&url).await;
    let (buyer, address) = w.user("buyer").await;
    let t = w.topup(&buyer, "20").await;
    assert_eq!(t.status, TopUpStatus::AwaitingUserConfirmation);
    let payin_id = t.airtm_payin_id.clone().unwrap();
    assert_eq!(
        t.confirmation_uri.as_deref(),
        Some(format!("https://checkout.airtm.example/payin/{payin_id}").as_str())
    );
    assert_eq!(w.fake.calls(&format!("POST /payins {}", t.id)), 1);
    // Nothing is credited before Airtm says CONFIRMED.
    let again = topups::refresh(&w.store, &w.ac, &t.id).await.unwrap();
    assert_eq!(again.status, TopUpStatus::AwaitingUserConfirmation);
    assert_eq!(w.balance(&buyer).await, (Amount::ZERO, Amount::ZERO));

    w.fake
        .confirm_payin(&payin_id, usd("0.20"), "buyer@example.com");
    let payin = w.fake.payin(&payin_id).await.unwrap().unwrap();
    // A webhook and the reconciler at once, then the same report again.
    let (a, b) = tokio::join!(
        topups::apply(&w.store, &w.ac, &t.id, &payin),
        topups::refresh(&w.store, &w.ac, &t.id),
    );
    a.unwrap();
    b.unwrap();
    let done = topups::apply(&w.store, &w.ac, &t.id, &payin).await.unwrap();
    assert_eq!(done.status, TopUpStatus::Succeeded);
    assert_eq!(done.credited_amount, Some(usd("19.80")));
    assert_eq!(done.airtm_fee, Some(usd("0.20")));
    assert!(done.settlement_tx_hash.is_some());
    let again = topups::refresh(&w.store, &w.ac, &t.id).await.unwrap();
    assert_eq!(again.settlement_tx_hash, done.settlement_tx_hash);

    assert_eq!(w.balance(&buyer).await, (usd("19.80"), Amount::ZERO));
    assert_eq!(w.on_chain(&address).await, Some(usd("19.80")));
    assert_eq!(w.events("topup.succeeded", &t.id).await, 1);
    assert_eq!(w.events("balance.credited", &buyer).await, 1);
    let journal: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM journal_transactions WHERE kind = 'topup' AND reference = $1",
    )
    .bind(&t.id)
    .fetch_one(w.store.reader())
    .await
    .unwrap();
    assert_eq!(journal, 1);
    sequencer::catch_up(&w.store, Duration::from_secs(5))
        .await
        .unwrap();
    let credited = offerhub::events::after(&w.store, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == "balance.credited")
        .unwrap();
    assert_eq!(credited.data["amount"], "19.80");
    assert_eq!(credited.data["sourceId"], t.id.as_str());
    assert_eq!(credited.data["newAvailableBalance"], "19.80");
    w.assert_clean().await;
}
both_backends!(payin_credits_once, confirmed_payin_credits_once);

/// A payout Airtm fails, and one canceled, each release the hold: the balance is whole
/// again and nothing left the user's wallet.
async fn failed_or_canceled_payout_releases_the_hold(url: String) {
    let w = setup(&url).await;
    let (seller, address) = w.user("seller").await;
    w.funded(&seller, "50").await;
    w.fake.add_user("seller@example.com", "active");
    w.fake.add_user("dormant@example.com", "inactive");
    let ctx = Context::system();
    let refused = airtm_service::link(&w.store, &ctx, &w.ac, &seller, "nobody@example.com")
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::AirtmUserNotFound);
    let refused = airtm_service::link(&w.store, &ctx, &w.ac, &seller, "dormant@example.com")
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::AirtmUserInvalid);
    assert_eq!(
        refused.message,
        "The Airtm account is inactive; it must be active"
    );
    w.fake.add_user("blank@example.com", "");
    let refused = airtm_service::link(&w.store, &ctx, &w.ac, &seller, "blank@example.com")
        .await
        .unwrap_err();
    assert_eq!(
        (refused.code, refused.message.as_str()),
        (
            ErrorCode::AirtmUserInvalid,
            "The Airtm account has no status; it must be active"
        )
    );
    airtm_service::link(&w.store, &ctx, &w.ac, &seller, "seller@example.com")
        .await
        .unwrap();

    // Committed at once, then Airtm fails it.
    let wd = w.payout(&seller, "20", true).await.unwrap();
    assert_eq!(wd.status, WithdrawalStatus::Committed);
    assert_eq!(w.balance(&seller).await, (usd("30"), usd("20")));
    let pid = wd.airtm_payout_id.clone().unwrap();
    w.fake.payout_becomes(
        &pid,
        "FAILED",
        Some(("415060", "The recipient cannot receive payouts")),
    );
    for _ in 0..2 {
        let failed = payouts::refresh(&w.store, &w.ac, &wd.id).await.unwrap();
        assert_eq!(failed.status, WithdrawalStatus::Failed);
        assert_eq!(
            failed.failure_reason.as_deref(),
            Some("Airtm 415060: The recipient cannot receive payouts")
        );
    }
    assert_eq!(w.balance(&seller).await, (usd("50"), Amount::ZERO));
    assert_eq!(w.events("withdrawal.failed", &wd.id).await, 1);

    // Created uncommitted, then canceled through OfferHub.
    let wd2 = w.payout(&seller, "15", false).await.unwrap();
    assert_eq!(wd2.status, WithdrawalStatus::Created);
    assert_eq!(w.balance(&seller).await, (usd("35"), usd("15")));
    let canceled = payouts::cancel(&w.store, &ctx, &w.ac, &wd2.id)
        .await
        .unwrap();
    assert_eq!(canceled.status, WithdrawalStatus::Canceled);
    assert_eq!(w.balance(&seller).await, (usd("50"), Amount::ZERO));
    assert_eq!(w.events("withdrawal.canceled", &wd2.id).await, 1);
    // A canceled payout cannot be canceled or committed again.
    let e = payouts::cancel(&w.store, &ctx, &w.ac, &wd2.id)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidStateTransition);
    let e = payouts::commit(&w.store, &ctx, &w.ac, &wd2.id)
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::WithdrawalNotCommittable);

    // Nothing was swept: the wallet still holds everything.
    assert_eq!(w.on_chain(&address).await, Some(usd("50")));
    w.assert_clean().await;
}
both_backends!(
    payout_failure_releases,
    failed_or_canceled_payout_releases_the_hold
);

/// Airtm down when a payout is created: the withdrawal waits (hold kept) for the
/// reconciler, which creates the payout by code once Airtm is back (uncommitted, so once
/// only); committed and completed by Airtm, the next pass settles it. A create whose
/// answer is lost is found by its code.
async fn outage_leaves_the_payout_to_the_reconciler(url: String) {
    let w = setup(&url).await;
    let (seller, address) = w.user("seller").await;
    w.funded(&seller, "50").await;
    w.fake.add_user("seller@example.com", "active");
    let ctx = Context::system();
    airtm_service::link(&w.store, &ctx, &w.ac, &seller, "seller@example.com")
        .await
        .unwrap();

    w.fake.set_down(true);
    let wd = w.payout(&seller, "20", true).await.unwrap();
    assert_eq!(wd.status, WithdrawalStatus::Created);
    assert_eq!(wd.airtm_payout_id, None);
    assert_eq!(w.balance(&seller).await, (usd("30"), usd("20")));
    // A pass during the outage changes nothing.
    tokio::time::sleep(Duration::from_millis(20)).await;
    airtm_service::reconcile(&w.store, &w.ac, 0).await.unwrap();
    let still = withdrawals::get(&w.store, &wd.id).await.unwrap();
    assert_eq!(still.status, WithdrawalStatus::Created);
    assert_eq!(w.fake.payout_count(&wd.id), 0);

    w.fake.set_down(false);
    tokio::time::sleep(Duration::from_millis(20)).await;
    airtm_service::reconcile(&w.store, &w.ac, 0).await.unwrap();
    let created = withdrawals::get(&w.store, &wd.id).await.unwrap();
    assert_eq!(created.status, WithdrawalStatus::Created);
    let pid = created.airtm_payout_id.clone().unwrap();
    assert_eq!(w.fake.payout_count(&wd.id), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    airtm_service::reconcile(&w.store, &w.ac, 0).await.unwrap();
    assert_eq!(w.fake.payout_count(&wd.id), 1, "never created twice");

    let committed = payouts::commit(&w.store, &ctx, &w.ac, &wd.id)
        .await
        .unwrap();
    assert_eq!(committed.status, WithdrawalStatus::Committed);
    w.fake.payout_becomes(&pid, "COMPLETED", None);
    tokio::time::sleep(Duration::from_millis(20)).await;
    airtm_service::reconcile(&w.store, &w.ac, 0).await.unwrap();
    let done = withdrawals::get(&w.store, &wd.id).await.unwrap();
    assert_eq!(done.status, WithdrawalStatus::Completed);
    assert!(done.settlement_tx_hash.is_some());
    assert_eq!(w.balance(&seller).await, (usd("30"), Amount::ZERO));
    assert_eq!(w.on_chain(&address).await, Some(usd("30")));
    for event in [
        "withdrawal.created",
        "withdrawal.committed",
        "withdrawal.completed",
    ] {
        assert_eq!(w.events(event, &wd.id).await, 1, "{event}");
    }

    // The create lands at Airtm but its answer is lost: found by code at once.
    w.fake.lose_create_answers(true);
    let lost = w.payout(&seller, "10", true).await.unwrap();
    w.fake.lose_create_answers(false);
    assert_eq!(lost.status, WithdrawalStatus::Committed);
    assert_eq!(w.fake.payout_count(&lost.id), 1);
    assert_eq!(w.fake.calls(&format!("POST /payouts {}", lost.id)), 1);
    assert_eq!(w.balance(&seller).await, (usd("20"), usd("10")));
    w.assert_clean().await;
}
both_backends!(payout_outage, outage_leaves_the_payout_to_the_reconciler);

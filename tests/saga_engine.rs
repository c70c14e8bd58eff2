//! The escrow saga engine against an in-memory escrow provider (the port
//! `EscrowProvider`), no HTTP: compensation, parking and resumption, with their effects
//! on the order, the escrow, the balances, the events and the ledger. On SQLite and
//! PostgreSQL. (The Trustless Work adapter itself is tested against the sandbox over
//! HTTP: daemon/tests/escrow.rs.)

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use offerhub::config::{DatabaseUrl, Secret};
use offerhub::context::Context;
use offerhub::domain::escrow::EscrowStatus;
use offerhub::domain::order::OrderStatus;
use offerhub::domain::saga::SagaStatus;
use offerhub::domain::transaction::TxResultCode;
use offerhub::domain::wallet::WalletStatus;
use offerhub::error::{Error, ErrorCode, Result};
use offerhub::money::Amount;
use offerhub::services::escrow::{
    self, EscrowContext, EscrowProvider, EscrowSettings, StepCall, Submission,
};
use offerhub::services::orders::{self, NewOrder, OrderLimits};
use offerhub::services::sagas::{self, Action, Party, Saga};
use offerhub::services::users::{self, NewUser, NoHooks, UserType};
use offerhub::services::wallets::{self, StellarContext, WalletKind};
use offerhub::stellar::horizon::{Horizon, SubmitOutcome};
use offerhub::stellar::network::{StellarNetwork, TESTNET_PASSPHRASE};
use offerhub::stellar::tx::{CreditAsset, SignedEnvelope};
use offerhub::store::Store;
use offerhub::trustless::verify::{Arg, Expected};
use offerhub::vault::Vault;
use offerhub_testkit::both_backends;
use stellar_xdr::{
    ContractId, Hash, HostFunction, InvokeContractArgs, InvokeHostFunctionOp, Limits, Memo,
    MuxedAccount, Operation, OperationBody, Preconditions, ScAddress, ScSymbol, SequenceNumber,
    TimeBounds, TimePoint, Transaction, TransactionEnvelope, TransactionExt, TransactionV1Envelope,
    Uint256, WriteXdr,
};

/// The contract the fake deploys.
const CONTRACT: &str = "CBIELTK6YBZJU5UP2WWQEUCYKLPU6AUNZ2BQ4WWFEIE3USCIHMXQDAMA";
/// The function every fake transaction calls.
const FUNCTION: &str = "fake_step";

/// What the fake does at one call instead of succeeding.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// `expected` says the transaction must be something else than what `build`
    /// returns (as if the provider built another transaction).
    Tampered,
    /// `build` answers a refusal (a 4xx of the provider): definitive.
    Refused,
    /// `build` answers an outage: transient.
    Unavailable,
    /// `build` fails with an internal error (a bug): the saga parks at once.
    Bug,
    /// `submit`: the transaction failed on the network with this code.
    FailedOnChain(&'static str),
    /// `submit`: the outcome is unknown (a timeout) and it landed.
    Unknown,
    /// `submit`: the outcome is unknown and it never landed; settling it finds it
    /// expired (`tx_too_late`).
    Lost,
    /// `submit` of a deploy lands but its answer has no contract id.
    NoContractId,
}

impl Fault {
    fn of_build(self) -> bool {
        matches!(self, Fault::Refused | Fault::Unavailable | Fault::Bug)
    }
}

/// What a landed transaction paid out, from what the step was built with.
#[derive(Clone, Debug)]
struct Prepared {
    action: Action,
    payout: Option<(String, Amount)>,
}

/// An escrow provider in memory: builds a one-operation transaction per step, lands
/// every submission unless a fault is queued for that action, and remembers what it
/// built, submitted and settled. With the store, it checks that every envelope it is
/// given was stored by the engine first.
#[derive(Default)]
struct FakeEscrows {
    faults: Mutex<HashMap<Action, VecDeque<Fault>>>,
    last: Mutex<Option<Prepared>>,
    landed: Mutex<HashMap<String, Prepared>>,
    /// `submit <action>`, `settle <action>`, `failed <action>`, `lost <action>`,
    /// `find_contract` in order.
    log: Mutex<Vec<String>>,
    ledger: Mutex<i64>,
    /// Sequence numbers, so that no two envelopes are alike.
    sequence: std::sync::atomic::AtomicI64,
    store: std::sync::OnceLock<Store>,
}

impl FakeEscrows {
    fn fail(&self, action: Action, fault: Fault) {
        self.faults
            .lock()
            .unwrap()
            .entry(action)
            .or_default()
            .push_back(fault);
    }

    /// The next fault queued for `action` when `when` accepts it.
    fn take_if(&self, action: Action, when: impl Fn(Fault) -> bool) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap();
        let queue = faults.get_mut(&action)?;
        match queue.front() {
            Some(f) if when(*f) => queue.pop_front(),
            _ => None,
        }
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn note(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }

    fn land(&self, hash: &str, verb: &str) -> SubmitOutcome {
        let p = self.last.lock().unwrap().clone();
        let mut landed = self.landed.lock().unwrap();
        let p = landed.entry(hash.to_string()).or_insert_with(|| p.unwrap());
        self.note(format!("{verb} {:?}", p.action));
        let mut ledger = self.ledger.lock().unwrap();
        *ledger += 1;
        SubmitOutcome::Applied {
            hash: hash.to_string(),
            ledger: *ledger,
        }
    }

    /// The engine stores an envelope before anyone submits it.
    async fn assert_stored(&self, envelope: &SignedEnvelope) {
        let Some(store) = self.store.get() else {
            return;
        };
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sagas WHERE envelope = $1")
            .bind(&envelope.xdr)
            .fetch_one(store.reader())
            .await
            .unwrap();
        assert_eq!(stored, 1, "an envelope is stored before it is submitted");
    }
}

/// An unsigned v1 envelope from `source` calling [`FUNCTION`] on [`CONTRACT`].
fn envelope(source: &str, sequence: i64) -> String {
    let key = stellar_strkey::ed25519::PublicKey::from_string(source).unwrap();
    let contract = stellar_strkey::Contract::from_string(CONTRACT).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let call = InvokeContractArgs {
        contract_address: ScAddress::Contract(ContractId(Hash(contract.0))),
        function_name: ScSymbol(FUNCTION.as_bytes().to_vec().try_into().unwrap()),
        args: Vec::new().try_into().unwrap(),
    };
    let tx = Transaction {
        source_account: MuxedAccount::Ed25519(Uint256(key.0)),
        fee: 100,
        seq_num: SequenceNumber(sequence),
        cond: Preconditions::Time(TimeBounds {
            min_time: TimePoint(0),
            max_time: TimePoint(now + 300),
        }),
        memo: Memo::None,
        operations: vec![Operation {
            source_account: None,
            body: OperationBody::InvokeHostFunction(InvokeHostFunctionOp {
                host_function: HostFunction::InvokeContract(call),
                auth: Vec::new().try_into().unwrap(),
            }),
        }]
        .try_into()
        .unwrap(),
        ext: TransactionExt::V0,
    };
    TransactionEnvelope::Tx(TransactionV1Envelope {
        tx,
        signatures: Vec::new().try_into().unwrap(),
    })
    .to_xdr_base64(Limits::none())
    .unwrap()
}

#[async_trait]
impl EscrowProvider for FakeEscrows {
    fn expected(&self, call: StepCall<'_>) -> Result<Expected> {
        let mut expected = Expected {
            source: call.parties.address(call.step.signer).to_string(),
            contract: Some(CONTRACT.into()),
            functions: vec![FUNCTION],
            args: Vec::new(),
            max_fee: 1_000,
            max_validity_secs: 900,
        };
        if self
            .take_if(call.step.action, |f| f == Fault::Tampered)
            .is_some()
        {
            expected.args = vec![Arg::Int(1)];
        }
        Ok(expected)
    }

    async fn build(&self, call: StepCall<'_>) -> Result<String> {
        let action = call.step.action;
        match self.take_if(action, Fault::of_build) {
            Some(Fault::Refused) => {
                return Err(Error::new(ErrorCode::ProviderError, "the provider refused")
                    .with_details(serde_json::json!({ "providerStatus": 400 })));
            }
            Some(Fault::Unavailable) => {
                return Err(Error::new(ErrorCode::ProviderUnavailable, "provider down"));
            }
            Some(_) => return Err(Error::internal("the fake hit a bug")),
            None => {}
        }
        if action != Action::Deploy {
            assert_eq!(call.escrow.contract_id.as_deref(), Some(CONTRACT));
        }
        // Who the contract pays when this step lands: the seller on release, the
        // buyer on a refund (the whole escrow, no fees in these tests).
        let payout = match action {
            Action::ReleaseFunds => Some((Party::Seller, call.escrow.amount)),
            Action::ResolveDispute => Some((Party::Buyer, call.escrow.amount)),
            _ => None,
        }
        .map(|(p, a)| (call.parties.address(p).to_string(), a));
        *self.last.lock().unwrap() = Some(Prepared { action, payout });
        let sequence = self
            .sequence
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(envelope(call.parties.address(call.step.signer), sequence))
    }

    async fn submit(&self, envelope: &SignedEnvelope) -> Result<Submission> {
        self.assert_stored(envelope).await;
        let action = self.last.lock().unwrap().as_ref().unwrap().action;
        let mut contract_id = (action == Action::Deploy).then(|| CONTRACT.to_string());
        let unknown = || SubmitOutcome::Unknown {
            hash: envelope.hash.clone(),
            reason: "timeout".into(),
        };
        let outcome = match self.take_if(action, |f| !f.of_build()) {
            Some(Fault::FailedOnChain(code)) => {
                self.note(format!("failed {action:?}"));
                SubmitOutcome::Failed {
                    hash: envelope.hash.clone(),
                    tx_code: TxResultCode::parse(code),
                    op_codes: vec!["refused".into()],
                }
            }
            Some(Fault::Unknown) => {
                // Sent, but the answer was lost: it lands, the engine does not know yet.
                self.land(&envelope.hash, "submit");
                unknown()
            }
            Some(Fault::Lost) => {
                self.note(format!("lost {action:?}"));
                unknown()
            }
            Some(Fault::NoContractId) => {
                contract_id = None;
                self.land(&envelope.hash, "submit")
            }
            _ => self.land(&envelope.hash, "submit"),
        };
        Ok(Submission {
            outcome,
            contract_id,
        })
    }

    async fn settle(&self, envelope: &SignedEnvelope) -> Result<SubmitOutcome> {
        self.assert_stored(envelope).await;
        let lost = self.log().last().is_some_and(|l| l.starts_with("lost"))
            && !self.landed.lock().unwrap().contains_key(&envelope.hash);
        if lost {
            self.note("expired".into());
            return Ok(SubmitOutcome::Failed {
                hash: envelope.hash.clone(),
                tx_code: TxResultCode::TooLate,
                op_codes: Vec::new(),
            });
        }
        Ok(self.land(&envelope.hash, "settle"))
    }

    async fn find_contract(&self, _deployer: &str, _engagement: &str) -> Result<Option<String>> {
        self.note("find_contract".into());
        Ok(Some(CONTRACT.into()))
    }

    async fn balances(&self, ids: &[String]) -> Result<Vec<(String, Amount)>> {
        Ok(ids.iter().map(|c| (c.clone(), Amount::ZERO)).collect())
    }

    async fn payouts(&self, hash: &str, _contract: &str) -> Result<Vec<(String, Amount)>> {
        let landed = self.landed.lock().unwrap();
        Ok(landed
            .get(hash)
            .and_then(|p| p.payout.clone())
            .into_iter()
            .collect())
    }
}

/// A store, the fake, and an order of 100 between a funded buyer and a seller, all
/// wallets active, reserved and ready for its escrow.
struct World {
    store: Store,
    fake: Arc<FakeEscrows>,
    ec: Arc<EscrowContext>,
    buyer: String,
    seller: String,
    order: String,
}

async fn user(store: &Store, ext: &str) -> String {
    let new = NewUser {
        external_user_id: ext.into(),
        email: None,
        user_type: UserType::Both,
    };
    users::create(store, &Context::system(), &NoHooks, new)
        .await
        .unwrap()
        .0
        .id
}

async fn world(url: &str) -> World {
    let store = Store::connect(&DatabaseUrl::new(url)).await.unwrap();
    store.migrate().await.unwrap();
    let issuer = "GBWWSOATPLIC72ZBOIM7WJCT7VCAHNWW4QUBZ2H4FORMCCIUM5ZVKSZN";
    let sc = Arc::new(StellarContext {
        // Never called: the fake is the only provider; the engine only takes the
        // per-account submission lock of this client.
        horizon: Horizon::new("http://127.0.0.1:9".parse().unwrap()).unwrap(),
        network: StellarNetwork::from_passphrase(TESTNET_PASSPHRASE),
        usdc: CreditAsset {
            code: "USDC".into(),
            issuer: offerhub::stellar::keys::parse_account(issuer, "issuer").unwrap(),
        },
        usdc_issuer: issuer.into(),
        vault: Arc::new(Vault::new(&Secret::new(hex::encode([9u8; 32])), &[]).unwrap()),
        float_stroops: 10_000_000,
        friendbot: None,
    });
    let ctx = Context::system();
    let (buyer, seller) = (user(&store, "buyer").await, user(&store, "seller").await);
    wallets::create(&store, &ctx, &sc, WalletKind::Platform, None)
        .await
        .unwrap();
    for u in [&buyer, &seller] {
        wallets::create(&store, &ctx, &sc, WalletKind::User, Some(u))
            .await
            .unwrap();
    }
    // Activation needs the network; these tests start from active wallets.
    let mut db = store.begin().await.unwrap();
    sqlx::query("UPDATE wallets SET status = $1")
        .bind(WalletStatus::Active)
        .execute(db.conn())
        .await
        .unwrap();
    db.commit().await.unwrap();
    let hundred = Amount::parse_positive("100").unwrap();
    offerhub::services::balances::adjust(&store, &ctx, &buyer, hundred, "test deposit")
        .await
        .unwrap();
    let limits = OrderLimits {
        min: Amount::parse_positive("1").unwrap(),
        max: Amount::parse_positive("10000").unwrap(),
    };
    let new = NewOrder {
        buyer_id: buyer.clone(),
        seller_id: seller.clone(),
        amount: hundred,
        currency: "USD".into(),
        title: "Logo".into(),
        description: None,
        client_order_ref: None,
        milestones: Vec::new(),
        metadata: None,
        auto_release_after_secs: None,
        auto_release_at: None,
    };
    let order = orders::create(&store, &ctx, limits, new).await.unwrap().id;
    orders::reserve(&store, &ctx, &order).await.unwrap();
    let fake = Arc::new(FakeEscrows::default());
    let _ = fake.store.set(store.clone());
    let ec = Arc::new(EscrowContext {
        sc,
        provider: fake.clone(),
        settings: EscrowSettings {
            platform_fee_bps: 0,
            wait: std::time::Duration::from_secs(5),
            max_attempts: 5,
            lease_secs: 30,
        },
    });
    World {
        store,
        fake,
        ec,
        buyer,
        seller,
        order,
    }
}

impl World {
    /// Runs the saga as the engine's worker would, then reads it back.
    async fn run(&self, saga: &Saga) -> Saga {
        escrow::run(&self.ec, &self.store, &saga.id).await.unwrap();
        sagas::get(&self.store, &saga.id).await.unwrap()
    }

    async fn order_status(&self) -> OrderStatus {
        orders::get(&self.store, &self.order).await.unwrap().status
    }

    async fn escrow_status(&self) -> Option<EscrowStatus> {
        escrow::for_order(self.store.reader(), &self.order)
            .await
            .unwrap()
            .map(|e| e.status)
    }

    /// `(available, reserved)` of a user.
    async fn balance(&self, user: &str) -> (Amount, Amount) {
        let b = offerhub::services::balances::get(&self.store, user)
            .await
            .unwrap();
        (b.available, b.reserved)
    }

    async fn events(&self, event_type: &str) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(self.store.reader())
            .await
            .unwrap()
    }

    async fn deploy_and_fund(&self) {
        let ctx = Context::system();
        let saga = escrow::create(&self.store, &self.ec, &ctx, &self.order, None)
            .await
            .unwrap();
        assert_eq!(self.run(&saga).await.status, SagaStatus::Completed);
        let saga = escrow::fund(&self.store, &ctx, &self.order).await.unwrap();
        assert_eq!(self.run(&saga).await.status, SagaStatus::Completed);
        assert_eq!(self.order_status().await, OrderStatus::InProgress);
    }

    async fn assert_ledger_clean(&self) {
        let report = offerhub::ledger::verify(&self.store).await.unwrap();
        assert!(report.is_clean(), "{:?}", report.violations);
    }
}

/// A definitive refusal of a saga's first step compensates it: the order goes back to
/// where it was, nothing was submitted, `saga.compensated` is emitted; a refused
/// transaction (verification) does the same and is audited.
async fn first_step_refusals_compensate(url: String) {
    let w = world(&url).await;
    let ctx = Context::system();
    w.fake.fail(Action::Deploy, Fault::Refused);
    let saga = escrow::create(&w.store, &w.ec, &ctx, &w.order, None)
        .await
        .unwrap();
    let saga = w.run(&saga).await;
    assert_eq!(saga.status, SagaStatus::Compensated);
    assert_eq!(w.order_status().await, OrderStatus::FundsReserved);
    assert_eq!(
        w.escrow_status().await,
        None,
        "the unborn escrow is removed"
    );
    assert_eq!(w.events("saga.compensated").await, 1);
    assert!(w.fake.log().is_empty(), "nothing was submitted");
    // The hold stays until the order is canceled.
    let hundred = Amount::parse_positive("100").unwrap();
    assert_eq!(w.balance(&w.buyer).await, (Amount::ZERO, hundred));

    // The next attempt deploys; then the provider returns a transaction that is not the
    // one asked for: refused, audited, compensated, nothing signed.
    w.deploy_and_fund_with_tampered_fund().await;
    w.assert_ledger_clean().await;
}
both_backends!(compensation, first_step_refusals_compensate);

impl World {
    async fn deploy_and_fund_with_tampered_fund(&self) {
        let ctx = Context::system();
        let saga = escrow::create(&self.store, &self.ec, &ctx, &self.order, None)
            .await
            .unwrap();
        assert_eq!(self.run(&saga).await.status, SagaStatus::Completed);
        self.fake.fail(Action::Fund, Fault::Tampered);
        let saga = escrow::fund(&self.store, &ctx, &self.order).await.unwrap();
        let saga = self.run(&saga).await;
        assert_eq!(saga.status, SagaStatus::Compensated);
        assert_eq!(
            saga.last_error.as_ref().unwrap()["code"],
            "XDR_VERIFICATION_FAILED"
        );
        let refused: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_logs WHERE action = $1")
            .bind("escrow.xdr_refused")
            .fetch_one(self.store.reader())
            .await
            .unwrap();
        assert_eq!(refused, 1);
        assert_eq!(self.order_status().await, OrderStatus::EscrowFunding);
        assert_eq!(self.escrow_status().await, Some(EscrowStatus::Created));
        assert_eq!(self.fake.log(), ["submit Deploy"]);
    }
}

/// A definitive failure after a step landed cannot be undone: the saga parks
/// `NEEDS_ATTENTION` at that step (event emitted), the order stays mid-release and no
/// money moves; once the operator retries it, it resumes at that step — the landed steps
/// are not submitted again — and completes, crediting the seller once.
async fn later_failures_park_and_resume(url: String) {
    let w = world(&url).await;
    w.deploy_and_fund().await;
    let ctx = Context::system();
    w.fake
        .fail(Action::ApproveMilestone, Fault::FailedOnChain("tx_failed"));
    let saga = escrow::release(&w.store, &ctx, &w.order).await.unwrap();
    let saga = w.run(&saga).await;
    assert_eq!(saga.status, SagaStatus::NeedsAttention);
    assert_eq!(saga.step, 1, "parked at the approval");
    assert_eq!(saga.envelope, None, "a failed envelope is not kept");
    assert_eq!(w.events("saga.needs_attention").await, 1);
    assert_eq!(w.order_status().await, OrderStatus::ReleaseRequested);
    assert_eq!(w.balance(&w.seller).await.0, Amount::ZERO);

    let saga = sagas::retry(&w.store, &ctx, &saga.id).await.unwrap();
    let saga = w.run(&saga).await;
    assert_eq!(saga.status, SagaStatus::Completed);
    assert_eq!(w.order_status().await, OrderStatus::Closed);
    let hundred = Amount::parse_positive("100").unwrap();
    assert_eq!(w.balance(&w.seller).await, (hundred, Amount::ZERO));
    assert_eq!(w.balance(&w.buyer).await, (Amount::ZERO, Amount::ZERO));
    assert_eq!(
        w.fake.log(),
        [
            "submit Deploy",
            "submit Fund",
            "submit ChangeMilestoneStatus",
            "failed ApproveMilestone",
            "submit ApproveMilestone",
            "submit ReleaseFunds",
        ]
    );
    let credited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE event_type = $1 AND resource_id = $2",
    )
    .bind("balance.credited")
    .bind(&w.seller)
    .fetch_one(w.store.reader())
    .await
    .unwrap();
    assert_eq!(credited, 1, "the seller is credited once");
    w.assert_ledger_clean().await;
}
both_backends!(parking, later_failures_park_and_resume);

/// Transient trouble waits and resumes: an outage before anything was built is retried
/// from scratch; an unknown outcome after the envelope was sent is settled by
/// resubmitting exactly the stored envelope (never rebuilt, never signed anew), so the
/// refund lands once; a sequence race is rebuilt. Too many transient failures park.
async fn transient_failures_resume(url: String) {
    let w = world(&url).await;
    w.deploy_and_fund().await;
    let ctx = Context::system();
    w.fake.fail(Action::DisputeEscrow, Fault::Unavailable);
    w.fake
        .fail(Action::DisputeEscrow, Fault::FailedOnChain("tx_bad_seq"));
    w.fake.fail(Action::ResolveDispute, Fault::Unknown);
    let saga = escrow::refund(&w.store, &ctx, &w.order, "not delivered")
        .await
        .unwrap();
    // Outage: waits, attempt counted, nothing stored.
    let s = w.run(&saga).await;
    assert_eq!((s.status, s.step, s.attempts), (SagaStatus::Running, 0, 1));
    assert_eq!(s.envelope, None);
    // Sequence race: rebuilt on the next attempt.
    let s = w.run(&s).await;
    assert_eq!((s.status, s.step, s.attempts), (SagaStatus::Running, 0, 2));
    assert_eq!(s.envelope, None);
    // The dispute lands; the resolution's answer is lost: its envelope is kept.
    let s = w.run(&s).await;
    assert_eq!((s.status, s.step), (SagaStatus::Running, 1));
    let stored = s.envelope.clone().expect("the sent envelope is kept");
    assert_eq!(w.balance(&w.buyer).await.0, Amount::ZERO);
    // Resumed: the same envelope is settled, not rebuilt.
    let s = w.run(&s).await;
    assert_eq!(s.status, SagaStatus::Completed);
    assert_eq!(
        s.pending_transaction_hash, None,
        "no envelope pending after completion"
    );
    let hundred = Amount::parse_positive("100").unwrap();
    assert_eq!(w.balance(&w.buyer).await, (hundred, Amount::ZERO));
    assert_eq!(w.order_status().await, OrderStatus::Closed);
    let log = w.fake.log();
    assert_eq!(
        &log[2..],
        [
            "failed DisputeEscrow",
            "submit DisputeEscrow",
            "submit ResolveDispute",
            "settle ResolveDispute",
        ]
    );
    let hashes = w.fake.landed.lock().unwrap().len();
    assert_eq!(hashes, 4, "deploy, fund, dispute, one resolution");
    assert!(stored.len() > 100);
    w.assert_ledger_clean().await;
}
both_backends!(resumption, transient_failures_resume);

/// A step that keeps failing transiently parks once `max_attempts` is reached (the
/// deploy stays `ESCROW_CREATING` for an operator: nothing is compensated while the
/// provider may yet answer).
async fn transient_failures_park_after_max_attempts(url: String) {
    let w = world(&url).await;
    let ctx = Context::system();
    for _ in 0..5 {
        w.fake.fail(Action::Deploy, Fault::Unavailable);
    }
    let mut s = escrow::create(&w.store, &w.ec, &ctx, &w.order, None)
        .await
        .unwrap();
    for attempt in 1..=4 {
        s = w.run(&s).await;
        assert_eq!((s.status, s.attempts), (SagaStatus::Running, attempt));
    }
    s = w.run(&s).await;
    assert_eq!(s.status, SagaStatus::NeedsAttention);
    assert_eq!(w.events("saga.needs_attention").await, 1);
    assert_eq!(w.order_status().await, OrderStatus::EscrowCreating);
    assert!(w.fake.log().is_empty());
}
both_backends!(max_attempts, transient_failures_park_after_max_attempts);

/// An internal error (a bug) parks at once, without retrying and without compensating;
/// the operator's retry completes the saga. A transaction that is not what it should be
/// at a later step parks too (audited, nothing signed), since earlier steps landed.
async fn bugs_and_later_refusals_park(url: String) {
    let w = world(&url).await;
    let ctx = Context::system();
    w.fake.fail(Action::Deploy, Fault::Bug);
    let saga = escrow::create(&w.store, &w.ec, &ctx, &w.order, None)
        .await
        .unwrap();
    let s = w.run(&saga).await;
    assert_eq!((s.status, s.attempts), (SagaStatus::NeedsAttention, 0));
    assert_eq!(s.last_error.as_ref().unwrap()["code"], "INTERNAL_ERROR");
    assert_eq!(w.order_status().await, OrderStatus::EscrowCreating);
    assert!(w.fake.log().is_empty());
    let s = sagas::retry(&w.store, &ctx, &s.id).await.unwrap();
    assert_eq!(w.run(&s).await.status, SagaStatus::Completed);
    let s = escrow::fund(&w.store, &ctx, &w.order).await.unwrap();
    assert_eq!(w.run(&s).await.status, SagaStatus::Completed);

    w.fake.fail(Action::ApproveMilestone, Fault::Tampered);
    let s = escrow::release(&w.store, &ctx, &w.order).await.unwrap();
    let s = w.run(&s).await;
    assert_eq!((s.status, s.step), (SagaStatus::NeedsAttention, 1));
    assert_eq!(
        s.last_error.as_ref().unwrap()["code"],
        "XDR_VERIFICATION_FAILED"
    );
    assert_eq!(w.order_status().await, OrderStatus::ReleaseRequested);
    assert_eq!(
        w.fake.log(),
        [
            "submit Deploy",
            "submit Fund",
            "submit ChangeMilestoneStatus"
        ]
    );
    w.assert_ledger_clean().await;
}
both_backends!(bugs, bugs_and_later_refusals_park);

/// Lost answers: a deploy whose answer carries no contract id finds its contract through
/// the provider; a funding whose submission answer was lost and that never landed is
/// settled from its stored envelope, found expired, and only then built and signed anew
/// — the buyer's funds move once.
async fn lost_answers_are_settled_then_rebuilt(url: String) {
    let w = world(&url).await;
    let ctx = Context::system();
    w.fake.fail(Action::Deploy, Fault::NoContractId);
    let saga = escrow::create(&w.store, &w.ec, &ctx, &w.order, None)
        .await
        .unwrap();
    assert_eq!(w.run(&saga).await.status, SagaStatus::Completed);
    let contract = escrow::for_order(w.store.reader(), &w.order)
        .await
        .unwrap()
        .unwrap()
        .contract_id;
    assert_eq!(contract.as_deref(), Some(CONTRACT));

    w.fake.fail(Action::Fund, Fault::Lost);
    let s = escrow::fund(&w.store, &ctx, &w.order).await.unwrap();
    let s = w.run(&s).await;
    assert_eq!((s.status, s.step), (SagaStatus::Running, 0));
    assert!(s.envelope.is_some(), "the sent envelope is kept");
    let s = w.run(&s).await;
    assert_eq!((s.status, s.step), (SagaStatus::Running, 0));
    assert_eq!(s.envelope, None, "an expired envelope is dropped");
    let s = w.run(&s).await;
    assert_eq!(s.status, SagaStatus::Completed);
    assert_eq!(w.order_status().await, OrderStatus::InProgress);
    assert_eq!(
        w.fake.log(),
        [
            "submit Deploy",
            "find_contract",
            "lost Fund",
            "expired",
            "submit Fund"
        ]
    );
    let hundred = Amount::parse_positive("100").unwrap();
    assert_eq!(w.balance(&w.buyer).await, (Amount::ZERO, Amount::ZERO));
    let escrowed = offerhub::ledger::account_balance(
        w.store.reader(),
        &offerhub::ledger::escrow_account(&w.order),
    )
    .await
    .unwrap();
    assert_eq!(escrowed, hundred);
    w.assert_ledger_clean().await;
}
both_backends!(lost_answers, lost_answers_are_settled_then_rebuilt);

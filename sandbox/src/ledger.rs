//! The sandbox ledger: accounts, trustlines and the transaction processor.
//!
//! Rules follow stellar-core (docs/PROVIDERS.md, Stellar and Horizon):
//! signatures are checked over the real signature base
//! (`sha256(network_id || ENVELOPE_TYPE_TX || XDR(tx))`), sequence numbers must be
//! `account.seq + 1`, time bounds and the minimum fee (100 stroops per operation) are
//! enforced, and reserves follow `(2 + subentries + sponsoring − sponsored) × 0.5 XLM`.
//! A transaction that fails validation changes nothing; one that passes validation
//! pays its fee and consumes its sequence number even if an operation then fails
//! (`tx_failed`), exactly as on the network.
//!
//! Decoding and verification use `stellar-xdr` and `ed25519-dalek` directly: nothing of
//! OfferHub's own Stellar code is involved, so the sandbox is an independent check.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{Signature as DalekSignature, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use stellar_xdr::{
    Asset, BeginSponsoringFutureReservesResult, ChangeTrustAsset, ChangeTrustResult,
    CreateAccountResult, EndSponsoringFutureReservesResult, Limits, MuxedAccount, OperationBody,
    OperationResult, OperationResultTr, PaymentResult, Preconditions, ReadXdr, TransactionEnvelope,
    TransactionExt, TransactionResult, TransactionResultExt, TransactionResultResult, WriteXdr,
};

/// Stroops per lumen.
pub const STROOPS: i64 = 10_000_000;
/// Base reserve: 0.5 XLM.
pub const BASE_RESERVE: i64 = STROOPS / 2;
/// Minimum inclusion fee per operation, in stroops.
pub const BASE_FEE: i64 = 100;

/// A 32-byte ed25519 public key (account id).
pub type Key = [u8; 32];

/// `G…` strkey of a key.
pub fn strkey(k: &Key) -> String {
    stellar_strkey::ed25519::PublicKey(*k)
        .to_string()
        .to_string()
}

/// Parses a `G…` strkey.
pub fn parse_strkey(s: &str) -> Option<Key> {
    stellar_strkey::ed25519::PublicKey::from_string(s)
        .ok()
        .map(|k| k.0)
}

/// A credit asset: code and issuer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CreditAsset {
    pub code: String,
    pub issuer: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Trustline {
    pub balance: i64,
    pub limit: i64,
    pub sponsor: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Account {
    /// `G…`.
    pub id: String,
    /// Native balance in stroops.
    pub balance: i64,
    pub seq: i64,
    pub subentries: u32,
    pub num_sponsoring: u32,
    pub num_sponsored: u32,
    pub sponsor: Option<String>,
    pub trustlines: BTreeMap<String, (CreditAsset, Trustline)>,
    pub last_modified_ledger: u32,
}

impl Account {
    /// Minimum native balance in stroops.
    pub fn min_balance(&self) -> i64 {
        let entries = 2 + i64::from(self.subentries) + i64::from(self.num_sponsoring)
            - i64::from(self.num_sponsored);
        entries.max(0) * BASE_RESERVE
    }
}

fn asset_key(a: &CreditAsset) -> String {
    format!("{}:{}", a.code, a.issuer)
}

/// One effect that a payment stream shows (Horizon `payments` record).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// Horizon operation id (TOID), also the paging token.
    pub id: i64,
    pub kind: String,
    pub tx_hash: String,
    pub successful: bool,
    pub source_account: String,
    pub created_at: String,
    /// `native` or `credit_alphanum4`/`credit_alphanum12`.
    pub asset: Option<CreditAsset>,
    pub from: String,
    pub to: String,
    /// Stroops / base units.
    pub amount: i64,
    /// Accounts whose payment stream shows this record.
    pub participants: Vec<String>,
    /// For `invoke_host_function`: the contract and function called.
    pub contract: Option<String>,
    pub function: Option<String>,
    /// For `invoke_host_function`: `[(asset, from, to, amount)]` transfers.
    pub balance_changes: Vec<(CreditAsset, String, String, i64)>,
    /// For path payments: the amount sent and the operation's bound (`send_max` of
    /// strict-receive, `dest_min` of strict-send).
    #[serde(default)]
    pub source_amount: i64,
    #[serde(default)]
    pub bound: i64,
}

/// A processed (applied or failed-after-validation) transaction.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TxRecord {
    pub hash: String,
    pub ledger: u32,
    pub successful: bool,
    pub created_at: String,
    pub source_account: String,
    pub source_account_sequence: i64,
    pub fee_charged: i64,
    pub max_fee: i64,
    pub operation_count: u32,
    pub envelope_xdr: String,
    pub result_xdr: String,
    pub tx_code: String,
    pub op_codes: Vec<String>,
    pub memo_type: String,
    pub signatures: Vec<String>,
    pub paging_token: String,
}

/// Why a transaction was rejected before being applied (no fee, no sequence change).
#[derive(Clone, Debug)]
pub struct Rejection {
    pub tx_code: &'static str,
    pub op_codes: Vec<String>,
    pub result_xdr: String,
    pub envelope_xdr: String,
    pub hash: Option<String>,
}

/// A map of ledger entries whose changes are journaled, so that a failed transaction
/// (or a builder's dry run) is undone in time proportional to the entries it touched
/// rather than to the size of the ledger — what stellar-core's nested `LedgerTxn`
/// achieves for the network (a transaction that fails after validation changes nothing
/// but its fee and sequence number; docs/PROVIDERS.md, Stellar and Horizon: submission).
///
/// Reads go through `Deref` to the underlying `BTreeMap`; every mutation goes through
/// [`Journaled::get_mut`], [`Journaled::insert`] or [`Journaled::remove`], which record
/// the entry's previous value. [`Journaled::mark`] and [`Journaled::rollback_to`] give
/// nested savepoints. It serialises as the plain map.
#[derive(Clone, Debug)]
pub struct Journaled<V> {
    map: BTreeMap<String, V>,
    undo: Vec<(String, Option<V>)>,
}

impl<V> Default for Journaled<V> {
    fn default() -> Self {
        Journaled {
            map: BTreeMap::new(),
            undo: Vec::new(),
        }
    }
}

impl<V> std::ops::Deref for Journaled<V> {
    type Target = BTreeMap<String, V>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<V: Serialize> Serialize for Journaled<V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(s)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Journaled<V> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Journaled {
            map: BTreeMap::deserialize(d)?,
            undo: Vec::new(),
        })
    }
}

impl<V: Clone> Journaled<V> {
    /// The entry for `key`, to modify; its current value is journaled first.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let old = self.map.get(key)?.clone();
        self.undo.push((key.to_string(), Some(old)));
        self.map.get_mut(key)
    }

    /// Inserts or replaces an entry (journaled).
    pub fn insert(&mut self, key: String, value: V) -> Option<V> {
        let old = self.map.insert(key.clone(), value);
        self.undo.push((key, old.clone()));
        old
    }

    /// Removes an entry (journaled).
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let old = self.map.remove(key)?;
        self.undo.push((key.to_string(), Some(old.clone())));
        Some(old)
    }

    /// A savepoint: the journal's current length.
    pub fn mark(&self) -> usize {
        self.undo.len()
    }

    /// Undoes every change made since `mark`, newest first.
    pub fn rollback_to(&mut self, mark: usize) {
        while self.undo.len() > mark {
            let Some((key, old)) = self.undo.pop() else {
                break;
            };
            match old {
                Some(v) => {
                    self.map.insert(key, v);
                }
                None => {
                    self.map.remove(&key);
                }
            }
        }
    }

    /// Drops the journal (the changes are final).
    pub fn commit(&mut self) {
        self.undo.clear();
    }
}

/// A savepoint of the mutable ledger state ([`Ledger::savepoint`]).
#[derive(Clone, Copy, Debug)]
pub struct Savepoint {
    accounts: usize,
    contracts: usize,
    payments: usize,
}

/// The whole ledger state (serialisable for `--state`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    pub passphrase: String,
    pub ledger_seq: u32,
    pub accounts: Journaled<Account>,
    pub transactions: BTreeMap<String, TxRecord>,
    pub payments: Vec<PaymentRecord>,
    /// Contract state of the Trustless Work simulator, keyed by contract id.
    #[serde(default)]
    pub contracts: Journaled<serde_json::Value>,
    /// The error text of the last contract call that trapped (what TW's API echoes).
    #[serde(skip)]
    pub last_trap: Option<String>,
}

/// Outcome of an operation: Horizon's code and the XDR result.
pub(crate) struct OpOutcome {
    code: &'static str,
    result: OperationResult,
}

/// Constructors of [`OpOutcome`] for sibling modules.
pub(crate) type OpOutcomePub = OpOutcome;

impl OpOutcome {
    pub(crate) fn ok(result: OperationResult) -> Self {
        ok(result)
    }
    pub(crate) fn fail(code: &'static str, result: OperationResult) -> Self {
        fail(code, result)
    }
}

fn ok(result: OperationResult) -> OpOutcome {
    OpOutcome {
        code: "op_success",
        result,
    }
}

fn fail(code: &'static str, result: OperationResult) -> OpOutcome {
    OpOutcome { code, result }
}

fn pay(r: PaymentResult) -> OperationResult {
    OperationResult::OpInner(OperationResultTr::Payment(r))
}
fn create(r: CreateAccountResult) -> OperationResult {
    OperationResult::OpInner(OperationResultTr::CreateAccount(r))
}
fn trust(r: ChangeTrustResult) -> OperationResult {
    OperationResult::OpInner(OperationResultTr::ChangeTrust(r))
}

fn muxed_key(m: &MuxedAccount) -> Key {
    match m {
        MuxedAccount::Ed25519(k) => k.0,
        MuxedAccount::MuxedEd25519(m) => m.ed25519.0,
    }
}

fn account_key(a: &stellar_xdr::AccountId) -> Key {
    match &a.0 {
        stellar_xdr::PublicKey::PublicKeyTypeEd25519(k) => k.0,
    }
}

fn credit_of(asset: &Asset) -> Option<CreditAsset> {
    match asset {
        Asset::Native => None,
        Asset::CreditAlphanum4(a) => Some(CreditAsset {
            code: String::from_utf8_lossy(&a.asset_code.0)
                .trim_end_matches('\0')
                .to_string(),
            issuer: strkey(&account_key(&a.issuer)),
        }),
        Asset::CreditAlphanum12(a) => Some(CreditAsset {
            code: String::from_utf8_lossy(&a.asset_code.0)
                .trim_end_matches('\0')
                .to_string(),
            issuer: strkey(&account_key(&a.issuer)),
        }),
    }
}

/// The network id: `sha256(passphrase)`.
pub fn network_id(passphrase: &str) -> [u8; 32] {
    Sha256::digest(passphrase.as_bytes()).into()
}

fn encode_result(fee: i64, result: TransactionResultResult) -> String {
    TransactionResult {
        fee_charged: fee,
        result,
        ext: TransactionResultExt::V0,
    }
    .to_xdr_base64(Limits::none())
    .unwrap_or_default()
}

/// Calls an invoked contract; implemented by the Trustless Work simulator.
pub trait ContractHost {
    /// Applies `function(args)` of `contract`, invoked by `invoker`, on `ledger`.
    /// Returns the balance changes on success or Horizon-style failure text.
    fn invoke(
        &self,
        ledger: &mut Ledger,
        contract: &str,
        function: &str,
        args: &[stellar_xdr::ScVal],
        invoker: &str,
    ) -> Result<Vec<(CreditAsset, String, String, i64)>, String>;
}

impl Ledger {
    /// A fresh ledger for `passphrase`.
    pub fn new(passphrase: &str) -> Ledger {
        Ledger {
            passphrase: passphrase.to_string(),
            ledger_seq: 2,
            ..Default::default()
        }
    }

    /// A savepoint: what [`Ledger::rollback`] returns to.
    pub fn savepoint(&self) -> Savepoint {
        Savepoint {
            accounts: self.accounts.mark(),
            contracts: self.contracts.mark(),
            payments: self.payments.len(),
        }
    }

    /// Undoes every change to accounts, contracts and payments since `sp`.
    pub fn rollback(&mut self, sp: Savepoint) {
        self.accounts.rollback_to(sp.accounts);
        self.contracts.rollback_to(sp.contracts);
        self.payments.truncate(sp.payments);
    }

    /// Makes every journaled change final (drops the undo journal).
    pub fn commit(&mut self) {
        self.accounts.commit();
        self.contracts.commit();
    }

    /// Creates an account directly (genesis: root and issuer).
    pub fn genesis_account(&mut self, id: &str, balance: i64) {
        let seq = i64::from(self.ledger_seq) << 32;
        self.accounts.insert(
            id.to_string(),
            Account {
                id: id.to_string(),
                balance,
                seq,
                subentries: 0,
                num_sponsoring: 0,
                num_sponsored: 0,
                sponsor: None,
                trustlines: BTreeMap::new(),
                last_modified_ledger: self.ledger_seq,
            },
        );
    }

    /// Moves `amount` of a credit asset between two accounts (used by contracts).
    /// Errors with Horizon-like codes.
    pub fn transfer_credit(
        &mut self,
        asset: &CreditAsset,
        from: &str,
        to: &str,
        amount: i64,
    ) -> Result<(), &'static str> {
        if amount < 0 {
            return Err("op_malformed");
        }
        let key = asset_key(asset);
        if from != asset.issuer {
            let src = self.accounts.get_mut(from).ok_or("op_no_source_account")?;
            let (_, line) = src.trustlines.get_mut(&key).ok_or("op_src_no_trust")?;
            if line.balance < amount {
                return Err("op_underfunded");
            }
            line.balance -= amount;
        }
        if to != asset.issuer {
            let Some(dst) = self.accounts.get_mut(to) else {
                // Undo the debit.
                if from != asset.issuer
                    && let Some((_, l)) = self
                        .accounts
                        .get_mut(from)
                        .and_then(|a| a.trustlines.get_mut(&key))
                {
                    l.balance += amount;
                }
                return Err("op_no_destination");
            };
            let line = match dst.trustlines.get_mut(&key) {
                Some((_, l)) if l.balance.checked_add(amount).is_some_and(|b| b <= l.limit) => l,
                other => {
                    let code = if other.is_some() {
                        "op_line_full"
                    } else {
                        "op_no_trust"
                    };
                    if from != asset.issuer
                        && let Some((_, l)) = self
                            .accounts
                            .get_mut(from)
                            .and_then(|a| a.trustlines.get_mut(&key))
                    {
                        l.balance += amount;
                    }
                    return Err(code);
                }
            };
            line.balance += amount;
        }
        Ok(())
    }

    /// Validates and applies a base64 envelope at unix time `now`.
    /// `Ok(record)` for an applied transaction (successful or `tx_failed`);
    /// `Err(rejection)` for malformed or invalid ones (nothing changed).
    pub fn submit(
        &mut self,
        b64: &str,
        now: u64,
        now_iso: &str,
        host: &dyn ContractHost,
    ) -> Result<TxRecord, Rejection> {
        let reject = |code: &'static str, hash: Option<String>, env: &str| Rejection {
            tx_code: code,
            op_codes: Vec::new(),
            result_xdr: encode_result(
                0,
                match code {
                    "tx_too_early" => TransactionResultResult::TxTooEarly,
                    "tx_too_late" => TransactionResultResult::TxTooLate,
                    "tx_bad_seq" => TransactionResultResult::TxBadSeq,
                    "tx_bad_auth" => TransactionResultResult::TxBadAuth,
                    "tx_bad_auth_extra" => TransactionResultResult::TxBadAuthExtra,
                    "tx_insufficient_balance" => TransactionResultResult::TxInsufficientBalance,
                    "tx_no_source_account" => TransactionResultResult::TxNoAccount,
                    "tx_insufficient_fee" => TransactionResultResult::TxInsufficientFee,
                    "tx_missing_operation" => TransactionResultResult::TxMissingOperation,
                    "tx_bad_sponsorship" => TransactionResultResult::TxBadSponsorship,
                    "tx_not_supported" => TransactionResultResult::TxNotSupported,
                    _ => TransactionResultResult::TxMalformed,
                },
            ),
            envelope_xdr: env.to_string(),
            hash,
        };
        let env = TransactionEnvelope::from_xdr_base64(
            b64,
            Limits {
                depth: 500,
                len: 512 * 1024,
            },
        )
        .map_err(|_| reject("tx_malformed", None, b64))?;
        let TransactionEnvelope::Tx(v1) = &env else {
            return Err(reject("tx_not_supported", None, b64));
        };
        let tx = &v1.tx;
        let hash_bytes = tx
            .hash(network_id(&self.passphrase))
            .map_err(|_| reject("tx_malformed", None, b64))?;
        let hash = hex::encode(hash_bytes);
        if let Some(existing) = self.transactions.get(&hash) {
            // Horizon answers a resubmission of a known transaction with its result.
            return if existing.successful {
                Ok(existing.clone())
            } else {
                Err(Rejection {
                    tx_code: "tx_failed",
                    op_codes: existing.op_codes.clone(),
                    result_xdr: existing.result_xdr.clone(),
                    envelope_xdr: existing.envelope_xdr.clone(),
                    hash: Some(hash),
                })
            };
        }
        let h = Some(hash.clone());
        let source = strkey(&muxed_key(&tx.source_account));
        let n_ops = tx.operations.len() as i64;
        if n_ops == 0 {
            return Err(reject("tx_missing_operation", h, b64));
        }
        // Time bounds.
        let bounds = match &tx.cond {
            Preconditions::None => None,
            Preconditions::Time(tb) => Some(tb.clone()),
            Preconditions::V2(v2) => v2.time_bounds.clone(),
        };
        if let Some(tb) = bounds {
            if tb.min_time.0 > now {
                return Err(reject("tx_too_early", h, b64));
            }
            if tb.max_time.0 != 0 && now > tb.max_time.0 {
                return Err(reject("tx_too_late", h, b64));
            }
        }
        // Fees: inclusion fee per op, plus the declared Soroban resource fee.
        let resource_fee = match &tx.ext {
            TransactionExt::V0 => 0,
            TransactionExt::V1(d) => d.resource_fee,
        };
        let max_fee = i64::from(tx.fee);
        if max_fee < BASE_FEE * n_ops + resource_fee {
            return Err(reject("tx_insufficient_fee", h, b64));
        }
        let fee_charged = BASE_FEE * n_ops + resource_fee;
        let Some(src) = self.accounts.get(&source) else {
            return Err(reject("tx_no_source_account", h, b64));
        };
        if tx.seq_num.0 != src.seq + 1 {
            return Err(reject("tx_bad_seq", h, b64));
        }
        // Signatures: each required signer (tx source, every op source) needs one valid
        // signature by its master key; every signature must be used.
        let mut required: BTreeSet<Key> = BTreeSet::new();
        required.insert(muxed_key(&tx.source_account));
        for op in tx.operations.iter() {
            if let Some(s) = &op.source_account {
                required.insert(muxed_key(s));
            }
        }
        let mut satisfied: BTreeSet<Key> = BTreeSet::new();
        for sig in v1.signatures.iter() {
            let used = required.iter().find(|k| {
                k[28..32] == sig.hint.0
                    && VerifyingKey::from_bytes(k).is_ok_and(|vk| {
                        DalekSignature::from_slice(sig.signature.0.as_slice())
                            .is_ok_and(|s| vk.verify(&hash_bytes, &s).is_ok())
                    })
            });
            match used {
                Some(k) => {
                    satisfied.insert(*k);
                }
                None => {
                    return Err(reject(
                        if satisfied.contains(&muxed_key(&tx.source_account))
                            || v1.signatures.len() > required.len()
                        {
                            "tx_bad_auth_extra"
                        } else {
                            "tx_bad_auth"
                        },
                        h,
                        b64,
                    ));
                }
            }
        }
        if !satisfied.contains(&muxed_key(&tx.source_account)) {
            return Err(reject("tx_bad_auth", h, b64));
        }
        if src.balance - fee_charged < src.min_balance() {
            return Err(reject("tx_insufficient_balance", h, b64));
        }

        // Valid: a new ledger closes with this transaction; fee and sequence are spent.
        self.ledger_seq += 1;
        let ledger_seq = self.ledger_seq;
        {
            let src = self.accounts.get_mut(&source).expect("checked above");
            src.balance -= fee_charged;
            src.seq = tx.seq_num.0;
            src.last_modified_ledger = ledger_seq;
        }
        // Fee and sequence are final; operations are journaled from here.
        self.commit();
        let savepoint = self.savepoint();
        let mut outcomes = Vec::new();
        let mut records = Vec::new();
        let mut sponsoring: BTreeMap<String, String> = BTreeMap::new(); // sponsored → sponsor
        for (i, op) in tx.operations.iter().enumerate() {
            let op_source = op
                .source_account
                .as_ref()
                .map(|m| strkey(&muxed_key(m)))
                .unwrap_or_else(|| source.clone());
            let toid = (i64::from(ledger_seq) << 32) | (1 << 12) | (i as i64 + 1);
            let signed = satisfied.contains(
                &op.source_account
                    .as_ref()
                    .map(muxed_key)
                    .unwrap_or_else(|| muxed_key(&tx.source_account)),
            );
            let outcome = if !signed {
                fail("op_bad_auth", OperationResult::OpBadAuth)
            } else {
                self.apply_op(
                    &op.body,
                    &op_source,
                    toid,
                    &hash,
                    now_iso,
                    &mut sponsoring,
                    &mut records,
                    host,
                )
            };
            outcomes.push(outcome);
        }
        let mut success = outcomes.iter().all(|o| o.code == "op_success");
        let mut tx_code = if success { "tx_success" } else { "tx_failed" };
        if success && !sponsoring.is_empty() {
            success = false;
            tx_code = "tx_bad_sponsorship";
        }
        let results: Vec<OperationResult> = outcomes.iter().map(|o| o.result.clone()).collect();
        let result_xdr = encode_result(
            fee_charged,
            match (success, tx_code) {
                (true, _) => {
                    TransactionResultResult::TxSuccess(results.try_into().unwrap_or_default())
                }
                (false, "tx_bad_sponsorship") => TransactionResultResult::TxBadSponsorship,
                (false, _) => {
                    TransactionResultResult::TxFailed(results.try_into().unwrap_or_default())
                }
            },
        );
        if !success {
            // Operations are rolled back; fee and sequence (charged before the
            // snapshot) stay spent.
            self.rollback(savepoint);
            for r in &mut records {
                r.successful = false;
            }
        }
        self.commit();
        self.payments.extend(records);
        let record = TxRecord {
            hash: hash.clone(),
            ledger: ledger_seq,
            successful: success,
            created_at: now_iso.to_string(),
            source_account: source,
            source_account_sequence: tx.seq_num.0,
            fee_charged,
            max_fee,
            operation_count: n_ops as u32,
            envelope_xdr: b64.to_string(),
            result_xdr,
            tx_code: tx_code.to_string(),
            op_codes: outcomes.iter().map(|o| o.code.to_string()).collect(),
            memo_type: match &tx.memo {
                stellar_xdr::Memo::None => "none",
                stellar_xdr::Memo::Text(_) => "text",
                stellar_xdr::Memo::Id(_) => "id",
                stellar_xdr::Memo::Hash(_) => "hash",
                stellar_xdr::Memo::Return(_) => "return",
            }
            .to_string(),
            signatures: v1
                .signatures
                .iter()
                .map(|s| {
                    base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        s.signature.0.as_slice(),
                    )
                })
                .collect(),
            paging_token: ((i64::from(ledger_seq) << 32) | (1 << 12)).to_string(),
        };
        self.transactions.insert(hash.clone(), record.clone());
        if success {
            Ok(record)
        } else {
            Err(Rejection {
                tx_code: if tx_code == "tx_bad_sponsorship" {
                    "tx_bad_sponsorship"
                } else {
                    "tx_failed"
                },
                op_codes: record.op_codes.clone(),
                result_xdr: record.result_xdr.clone(),
                envelope_xdr: b64.to_string(),
                hash: Some(hash),
            })
        }
    }

    /// Moves `amount` of `asset` (native or credit) from `from` to `to` with the
    /// payment rules; Horizon's operation code on failure.
    fn move_asset(
        &mut self,
        asset: &Asset,
        from: &str,
        to: &str,
        amount: i64,
    ) -> Result<(), &'static str> {
        if !self.accounts.contains_key(to) {
            return Err("op_no_destination");
        }
        match credit_of(asset) {
            None => {
                if !self.reserve_ok(from, 0, amount) {
                    return Err("op_underfunded");
                }
                let ledger_seq = self.ledger_seq;
                if let Some(a) = self.accounts.get_mut(from) {
                    a.balance -= amount;
                }
                if let Some(a) = self.accounts.get_mut(to) {
                    a.balance += amount;
                    a.last_modified_ledger = ledger_seq;
                }
                Ok(())
            }
            Some(c) => self.transfer_credit(&c, from, to, amount),
        }
    }

    fn reserve_ok(&self, id: &str, extra_entries: i64, spend: i64) -> bool {
        self.accounts
            .get(id)
            .is_some_and(|a| a.balance - spend >= a.min_balance() + extra_entries * BASE_RESERVE)
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_op(
        &mut self,
        body: &OperationBody,
        op_source: &str,
        toid: i64,
        hash: &str,
        now_iso: &str,
        sponsoring: &mut BTreeMap<String, String>,
        records: &mut Vec<PaymentRecord>,
        host: &dyn ContractHost,
    ) -> OpOutcome {
        let ledger_seq = self.ledger_seq;
        let record = |kind: &str, asset: Option<CreditAsset>, from: &str, to: &str, amount: i64| {
            PaymentRecord {
                id: toid,
                kind: kind.to_string(),
                tx_hash: hash.to_string(),
                successful: true,
                source_account: op_source.to_string(),
                created_at: now_iso.to_string(),
                asset,
                from: from.to_string(),
                to: to.to_string(),
                amount,
                participants: vec![from.to_string(), to.to_string()],
                contract: None,
                function: None,
                balance_changes: Vec::new(),
                source_amount: 0,
                bound: 0,
            }
        };
        if !self.accounts.contains_key(op_source)
            && !matches!(body, OperationBody::EndSponsoringFutureReserves)
        {
            // The source of an op must exist when the op runs (it may have been created
            // earlier in this transaction).
            if !self.accounts.contains_key(op_source) {
                return fail("op_no_source_account", OperationResult::OpNoAccount);
            }
        }
        match body {
            OperationBody::CreateAccount(op) => {
                let dest = strkey(&account_key(&op.destination));
                if op.starting_balance < 0 || dest == op_source {
                    return fail("op_malformed", create(CreateAccountResult::Malformed));
                }
                if self.accounts.contains_key(&dest) {
                    return fail(
                        "op_already_exists",
                        create(CreateAccountResult::AlreadyExist),
                    );
                }
                let sponsor = sponsoring.get(&dest).cloned();
                if sponsor.is_none() && op.starting_balance < 2 * BASE_RESERVE {
                    return fail("op_low_reserve", create(CreateAccountResult::LowReserve));
                }
                let sponsor_extra = if sponsor.as_deref() == Some(op_source) {
                    2
                } else {
                    0
                };
                if !self.reserve_ok(op_source, sponsor_extra, op.starting_balance) {
                    return fail("op_underfunded", create(CreateAccountResult::Underfunded));
                }
                if let Some(sp) = &sponsor
                    && sp != op_source
                    && !self.reserve_ok(sp, 2, 0)
                {
                    return fail("op_low_reserve", create(CreateAccountResult::LowReserve));
                }
                if let Some(a) = self.accounts.get_mut(op_source) {
                    a.balance -= op.starting_balance;
                }
                let mut new = Account {
                    id: dest.clone(),
                    balance: op.starting_balance,
                    seq: i64::from(ledger_seq) << 32,
                    subentries: 0,
                    num_sponsoring: 0,
                    num_sponsored: 0,
                    sponsor: None,
                    trustlines: BTreeMap::new(),
                    last_modified_ledger: ledger_seq,
                };
                if let Some(sp) = sponsor {
                    new.num_sponsored = 2;
                    new.sponsor = Some(sp.clone());
                    if let Some(a) = self.accounts.get_mut(&sp) {
                        a.num_sponsoring += 2;
                    }
                }
                self.accounts.insert(dest.clone(), new);
                let mut r = record(
                    "create_account",
                    None,
                    op_source,
                    &dest,
                    op.starting_balance,
                );
                r.participants = vec![op_source.to_string(), dest];
                records.push(r);
                ok(create(CreateAccountResult::Success))
            }
            OperationBody::Payment(op) => {
                let dest = strkey(&muxed_key(&op.destination));
                if op.amount <= 0 {
                    return fail("op_malformed", pay(PaymentResult::Malformed));
                }
                if !self.accounts.contains_key(&dest) {
                    return fail("op_no_destination", pay(PaymentResult::NoDestination));
                }
                match credit_of(&op.asset) {
                    None => {
                        if !self.reserve_ok(op_source, 0, op.amount) {
                            return fail("op_underfunded", pay(PaymentResult::Underfunded));
                        }
                        if let Some(a) = self.accounts.get_mut(op_source) {
                            a.balance -= op.amount;
                        }
                        if let Some(a) = self.accounts.get_mut(&dest) {
                            a.balance += op.amount;
                            a.last_modified_ledger = ledger_seq;
                        }
                        records.push(record("payment", None, op_source, &dest, op.amount));
                    }
                    Some(asset) => {
                        if let Err(code) = self.transfer_credit(&asset, op_source, &dest, op.amount)
                        {
                            let r = match code {
                                "op_src_no_trust" => PaymentResult::SrcNoTrust,
                                "op_underfunded" => PaymentResult::Underfunded,
                                "op_no_trust" => PaymentResult::NoTrust,
                                "op_line_full" => PaymentResult::LineFull,
                                "op_no_destination" => PaymentResult::NoDestination,
                                _ => PaymentResult::Malformed,
                            };
                            return fail(code, pay(r));
                        }
                        records.push(record("payment", Some(asset), op_source, &dest, op.amount));
                    }
                }
                ok(pay(PaymentResult::Success))
            }
            OperationBody::PathPaymentStrictReceive(op) => {
                let r =
                    |x| OperationResult::OpInner(OperationResultTr::PathPaymentStrictReceive(x));
                use stellar_xdr::PathPaymentStrictReceiveResult as R;
                if op.dest_amount <= 0 || op.send_max <= 0 {
                    return fail("op_malformed", r(R::Malformed));
                }
                // No order book: only a same-asset payment with an empty path converts.
                if op.send_asset != op.dest_asset || !op.path.is_empty() {
                    return fail("op_too_few_offers", r(R::TooFewOffers));
                }
                if op.dest_amount > op.send_max {
                    return fail("op_over_source_max", r(R::OverSendmax));
                }
                let dest = strkey(&muxed_key(&op.destination));
                if let Err(code) = self.move_asset(&op.send_asset, op_source, &dest, op.dest_amount)
                {
                    let x = match code {
                        "op_src_no_trust" => R::SrcNoTrust,
                        "op_underfunded" => R::Underfunded,
                        "op_no_trust" => R::NoTrust,
                        "op_line_full" => R::LineFull,
                        "op_no_destination" => R::NoDestination,
                        _ => R::Malformed,
                    };
                    return fail(code, r(x));
                }
                let mut rec = record(
                    "path_payment_strict_receive",
                    credit_of(&op.dest_asset),
                    op_source,
                    &dest,
                    op.dest_amount,
                );
                rec.source_amount = op.dest_amount;
                rec.bound = op.send_max;
                records.push(rec);
                ok(r(R::Success(
                    stellar_xdr::PathPaymentStrictReceiveResultSuccess {
                        offers: Default::default(),
                        last: stellar_xdr::SimplePaymentResult {
                            destination: stellar_xdr::AccountId(
                                stellar_xdr::PublicKey::PublicKeyTypeEd25519(stellar_xdr::Uint256(
                                    muxed_key(&op.destination),
                                )),
                            ),
                            asset: op.dest_asset.clone(),
                            amount: op.dest_amount,
                        },
                    },
                )))
            }
            OperationBody::PathPaymentStrictSend(op) => {
                let r = |x| OperationResult::OpInner(OperationResultTr::PathPaymentStrictSend(x));
                use stellar_xdr::PathPaymentStrictSendResult as R;
                if op.send_amount <= 0 || op.dest_min <= 0 {
                    return fail("op_malformed", r(R::Malformed));
                }
                if op.send_asset != op.dest_asset || !op.path.is_empty() {
                    return fail("op_too_few_offers", r(R::TooFewOffers));
                }
                if op.send_amount < op.dest_min {
                    return fail("op_under_dest_min", r(R::UnderDestmin));
                }
                let dest = strkey(&muxed_key(&op.destination));
                if let Err(code) = self.move_asset(&op.send_asset, op_source, &dest, op.send_amount)
                {
                    let x = match code {
                        "op_src_no_trust" => R::SrcNoTrust,
                        "op_underfunded" => R::Underfunded,
                        "op_no_trust" => R::NoTrust,
                        "op_line_full" => R::LineFull,
                        "op_no_destination" => R::NoDestination,
                        _ => R::Malformed,
                    };
                    return fail(code, r(x));
                }
                let mut rec = record(
                    "path_payment_strict_send",
                    credit_of(&op.dest_asset),
                    op_source,
                    &dest,
                    op.send_amount,
                );
                rec.source_amount = op.send_amount;
                rec.bound = op.dest_min;
                records.push(rec);
                ok(r(R::Success(
                    stellar_xdr::PathPaymentStrictSendResultSuccess {
                        offers: Default::default(),
                        last: stellar_xdr::SimplePaymentResult {
                            destination: stellar_xdr::AccountId(
                                stellar_xdr::PublicKey::PublicKeyTypeEd25519(stellar_xdr::Uint256(
                                    muxed_key(&op.destination),
                                )),
                            ),
                            asset: op.dest_asset.clone(),
                            amount: op.send_amount,
                        },
                    },
                )))
            }
            OperationBody::ChangeTrust(op) => {
                let asset = match &op.line {
                    ChangeTrustAsset::CreditAlphanum4(a) => {
                        credit_of(&Asset::CreditAlphanum4(a.clone()))
                    }
                    ChangeTrustAsset::CreditAlphanum12(a) => {
                        credit_of(&Asset::CreditAlphanum12(a.clone()))
                    }
                    _ => None,
                };
                let Some(asset) = asset else {
                    return fail("op_malformed", trust(ChangeTrustResult::Malformed));
                };
                if asset.issuer == op_source {
                    return fail(
                        "op_self_not_allowed",
                        trust(ChangeTrustResult::SelfNotAllowed),
                    );
                }
                if op.limit < 0 {
                    return fail("op_invalid_limit", trust(ChangeTrustResult::InvalidLimit));
                }
                if !self.accounts.contains_key(&asset.issuer) {
                    return fail("op_no_issuer", trust(ChangeTrustResult::NoIssuer));
                }
                let key = asset_key(&asset);
                let existing = self
                    .accounts
                    .get(op_source)
                    .and_then(|a| a.trustlines.get(&key))
                    .cloned();
                match (existing, op.limit) {
                    (None, 0) => fail("op_no_trust", trust(ChangeTrustResult::TrustLineMissing)),
                    (Some((_, line)), 0) => {
                        if line.balance != 0 {
                            return fail(
                                "op_invalid_limit",
                                trust(ChangeTrustResult::InvalidLimit),
                            );
                        }
                        let acct = self.accounts.get_mut(op_source).expect("exists");
                        acct.trustlines.remove(&key);
                        acct.subentries -= 1;
                        if let Some(sp) = line.sponsor {
                            acct.num_sponsored -= 1;
                            if let Some(a) = self.accounts.get_mut(&sp) {
                                a.num_sponsoring -= 1;
                            }
                        }
                        ok(trust(ChangeTrustResult::Success))
                    }
                    (Some((_, line)), limit) => {
                        if limit < line.balance {
                            return fail(
                                "op_invalid_limit",
                                trust(ChangeTrustResult::InvalidLimit),
                            );
                        }
                        if let Some((_, l)) = self
                            .accounts
                            .get_mut(op_source)
                            .and_then(|a| a.trustlines.get_mut(&key))
                        {
                            l.limit = limit;
                        }
                        ok(trust(ChangeTrustResult::Success))
                    }
                    (None, limit) => {
                        let sponsor = sponsoring.get(op_source).cloned();
                        match &sponsor {
                            Some(sp) => {
                                if !self.reserve_ok(sp, 1, 0) {
                                    return fail(
                                        "op_low_reserve",
                                        trust(ChangeTrustResult::LowReserve),
                                    );
                                }
                            }
                            None => {
                                if !self.reserve_ok(op_source, 1, 0) {
                                    return fail(
                                        "op_low_reserve",
                                        trust(ChangeTrustResult::LowReserve),
                                    );
                                }
                            }
                        }
                        let acct = self.accounts.get_mut(op_source).expect("exists");
                        acct.subentries += 1;
                        acct.last_modified_ledger = ledger_seq;
                        if sponsor.is_some() {
                            acct.num_sponsored += 1;
                        }
                        acct.trustlines.insert(
                            key,
                            (
                                asset,
                                Trustline {
                                    balance: 0,
                                    limit,
                                    sponsor: sponsor.clone(),
                                },
                            ),
                        );
                        if let Some(sp) = sponsor
                            && let Some(a) = self.accounts.get_mut(&sp)
                        {
                            a.num_sponsoring += 1;
                        }
                        ok(trust(ChangeTrustResult::Success))
                    }
                }
            }
            OperationBody::BeginSponsoringFutureReserves(op) => {
                let sponsored = strkey(&account_key(&op.sponsored_id));
                let r = |x| {
                    OperationResult::OpInner(OperationResultTr::BeginSponsoringFutureReserves(x))
                };
                if sponsored == op_source {
                    return fail(
                        "op_malformed",
                        r(BeginSponsoringFutureReservesResult::Malformed),
                    );
                }
                if sponsoring.contains_key(&sponsored) {
                    return fail(
                        "op_already_sponsored",
                        r(BeginSponsoringFutureReservesResult::AlreadySponsored),
                    );
                }
                if sponsoring.contains_key(op_source) {
                    return fail(
                        "op_recursive",
                        r(BeginSponsoringFutureReservesResult::Recursive),
                    );
                }
                sponsoring.insert(sponsored, op_source.to_string());
                ok(r(BeginSponsoringFutureReservesResult::Success))
            }
            OperationBody::EndSponsoringFutureReserves => {
                let r =
                    |x| OperationResult::OpInner(OperationResultTr::EndSponsoringFutureReserves(x));
                if sponsoring.remove(op_source).is_none() {
                    return fail(
                        "op_not_sponsored",
                        r(EndSponsoringFutureReservesResult::NotSponsored),
                    );
                }
                ok(r(EndSponsoringFutureReservesResult::Success))
            }
            OperationBody::InvokeHostFunction(op) => crate::trustless::apply_invoke(
                self, op, op_source, toid, hash, now_iso, records, host,
            ),
            _ => fail("op_not_supported", OperationResult::OpNotSupported),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_rolls_back_nested_savepoints_newest_first() {
        let mut m: Journaled<i64> = Journaled::default();
        m.insert("a".into(), 1);
        m.commit();
        let outer = m.mark();
        if let Some(v) = m.get_mut("a") {
            *v = 2;
        }
        m.insert("b".into(), 3);
        let inner = m.mark();
        m.remove("a");
        if let Some(v) = m.get_mut("b") {
            *v = 4;
        }
        m.rollback_to(inner);
        assert_eq!((m.get("a"), m.get("b")), (Some(&2), Some(&3)));
        m.rollback_to(outer);
        assert_eq!((m.get("a"), m.get("b")), (Some(&1), None));
        assert_eq!(serde_json::to_string(&m).unwrap_or_default(), r#"{"a":1}"#);
    }
}

//! OfferHub sandbox: a local, faithful subset of Stellar's Horizon API, of Trustless
//! Work's V1 REST API and of Airtm's Enterprise API v2 ([`airtm`]: payins with a hosted
//! checkout, payouts, user lookup, Svix-signed webhooks) so that OfferHub runs and is
//! tested offline.
//!
//! It depends on no OfferHub crate: envelopes are decoded with `stellar-xdr` and
//! signatures verified with `ed25519-dalek` directly, which makes it an independent
//! check of OfferHub's own Stellar code. Any standard Stellar SDK can talk to it: read
//! the network passphrase from `GET /` (`network_passphrase`).
//!
//! Start it with [`start`] (or `offerhub sandbox`); fund addresses with
//! `POST /_sandbox/fund {address, amount, asset: "USDC"|"XLM"}` or `GET /friendbot?addr=`;
//! create an outside wallet (USDC trustline) to withdraw to with `POST /_sandbox/accounts`;
//! inject faults with `POST /_sandbox/faults` (see [`horizon::Faults`]).

pub mod airtm;
pub mod horizon;
pub mod ledger;
pub mod tamper;
pub mod trustless;
pub mod tw;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};
use stellar_xdr::{
    AccountId, AlphaNum4, Asset, AssetCode4, ChangeTrustAsset, ChangeTrustOp, CreateAccountOp,
    DecoratedSignature, Limits, Memo, MuxedAccount, Operation, OperationBody, PaymentOp,
    Preconditions, PublicKey, SequenceNumber, Signature, SignatureHint, Transaction,
    TransactionEnvelope, TransactionExt, TransactionV1Envelope, Uint256, WriteXdr,
};
use tokio::sync::broadcast;

use crate::horizon::Faults;
use crate::ledger::{CreditAsset, Ledger, PaymentRecord, Rejection, TxRecord, strkey};

/// The sandbox network's passphrase unless configured otherwise.
pub const DEFAULT_PASSPHRASE: &str = "OfferHub Sandbox Network ; November 2026";

/// Options of [`Sandbox::new`].
#[derive(Clone, Debug, Default)]
pub struct SandboxOptions {
    /// Network passphrase (default [`DEFAULT_PASSPHRASE`]).
    pub passphrase: Option<String>,
    /// When set, the ledger is loaded from and saved to this JSON file.
    pub state_file: Option<PathBuf>,
}

/// A running sandbox network.
pub struct Sandbox {
    pub(crate) ledger: Mutex<Ledger>,
    pub(crate) payments_tx: broadcast::Sender<PaymentRecord>,
    pub(crate) drop_streams: broadcast::Sender<()>,
    pub(crate) faults: Mutex<Faults>,
    state_file: Option<PathBuf>,
    root: SigningKey,
    issuer: SigningKey,
    pub(crate) usdc: CreditAsset,
    pub(crate) escrow_host: tw::EscrowHost,
    pub(crate) tw_throttle: Mutex<tw::Throttle>,
    pub(crate) airtm: Mutex<airtm::AirtmSim>,
    /// Sends the Airtm simulator's webhooks.
    pub(crate) webhook_http: reqwest::Client,
}

fn derived_key(passphrase: &str, role: &str) -> SigningKey {
    let seed: [u8; 32] =
        Sha256::digest(format!("offerhub-sandbox:{role}:{passphrase}").as_bytes()).into();
    SigningKey::from_bytes(&seed)
}

fn now() -> (u64, String) {
    let t = chrono::Utc::now();
    (
        u64::try_from(t.timestamp()).unwrap_or(0),
        t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

impl Sandbox {
    /// Creates (or, with a state file that exists, reloads) a sandbox network.
    pub fn new(opts: SandboxOptions) -> std::io::Result<Arc<Sandbox>> {
        let passphrase = opts
            .passphrase
            .unwrap_or_else(|| DEFAULT_PASSPHRASE.to_string());
        let root = derived_key(&passphrase, "root");
        let issuer = derived_key(&passphrase, "usdc-issuer");
        let root_id = strkey(&root.verifying_key().to_bytes());
        let issuer_id = strkey(&issuer.verifying_key().to_bytes());
        let loaded = match &opts.state_file {
            Some(p) if p.is_file() => {
                let bytes = std::fs::read(p)?;
                let l: Ledger = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: {e}", p.display()),
                    )
                })?;
                if l.passphrase != passphrase {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{} belongs to network {:?}", p.display(), l.passphrase),
                    ));
                }
                Some(l)
            }
            _ => None,
        };
        let ledger = loaded.unwrap_or_else(|| {
            let mut l = Ledger::new(&passphrase);
            l.genesis_account(&root_id, 100_000_000_000 * ledger::STROOPS);
            l.genesis_account(&issuer_id, 10_000 * ledger::STROOPS);
            // Trustless Work's fee account, with a USDC trustline, so fees land on chain.
            l.genesis_account(tw::TW_FEE_ADDRESS, 10 * ledger::STROOPS);
            if let Some(a) = l.accounts.get_mut(tw::TW_FEE_ADDRESS) {
                let asset = CreditAsset {
                    code: "USDC".into(),
                    issuer: issuer_id.clone(),
                };
                a.trustlines.insert(
                    format!("USDC:{issuer_id}"),
                    (
                        asset,
                        ledger::Trustline {
                            balance: 0,
                            limit: i64::MAX,
                            sponsor: None,
                        },
                    ),
                );
                a.subentries = 1;
            }
            l
        });
        let (payments_tx, _) = broadcast::channel(4096);
        let (drop_streams, _) = broadcast::channel(4);
        Ok(Arc::new(Sandbox {
            ledger: Mutex::new(ledger),
            payments_tx,
            drop_streams,
            faults: Mutex::new(Faults::default()),
            state_file: opts.state_file,
            root,
            issuer,
            usdc: CreditAsset {
                code: "USDC".into(),
                issuer: issuer_id.clone(),
            },
            escrow_host: tw::EscrowHost {
                passphrase: passphrase.clone(),
                usdc: CreditAsset {
                    code: "USDC".into(),
                    issuer: issuer_id,
                },
            },
            tw_throttle: Mutex::new(tw::Throttle::default()),
            airtm: Mutex::new(airtm::AirtmSim::default()),
            webhook_http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(15))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(std::io::Error::other)?,
        }))
    }

    /// The network passphrase.
    pub fn passphrase(&self) -> String {
        self.ledger.lock().expect("ledger lock").passphrase.clone()
    }

    /// The sandbox USDC asset (code and issuer `G…`).
    pub fn usdc(&self) -> CreditAsset {
        self.usdc.clone()
    }

    /// The root (friendbot) account.
    pub fn root_id(&self) -> String {
        strkey(&self.root.verifying_key().to_bytes())
    }

    fn submit_locked(&self, l: &mut Ledger, b64: &str) -> Result<TxRecord, Rejection> {
        let before = l.payments.len();
        let (unix, iso) = now();
        l.last_trap = None;
        let result = l.submit(b64, unix, &iso, &self.escrow_host);
        let applied = match &result {
            Ok(_) => true,
            Err(r) => r.tx_code == "tx_failed" || r.tx_code == "tx_bad_sponsorship",
        };
        if applied {
            for p in l.payments.iter().skip(before) {
                let _ = self.payments_tx.send(p.clone());
            }
            if let Some(path) = &self.state_file
                && let Ok(bytes) = serde_json::to_vec(&*l)
            {
                let tmp = path.with_extension("tmp");
                if std::fs::write(&tmp, bytes)
                    .and_then(|_| std::fs::rename(&tmp, path))
                    .is_err()
                {
                    tracing::error!(path = %path.display(), "cannot save sandbox state");
                }
            }
        }
        result
    }

    /// Submits a base64 `TransactionEnvelope` (what `POST /transactions` does).
    pub fn submit(&self, b64: &str) -> Result<TxRecord, Rejection> {
        let mut l = self.ledger.lock().expect("ledger lock");
        self.submit_locked(&mut l, b64)
    }

    /// Pays `units` of USDC from the issuer, or XLM from the root account (creating the
    /// account when it does not exist), as a real signed transaction.
    pub fn fund(&self, address: &str, units: i64, usdc: bool) -> Result<TxRecord, Rejection> {
        let mut l = self.ledger.lock().expect("ledger lock");
        let signer = if usdc { &self.issuer } else { &self.root };
        let source_pk = signer.verifying_key().to_bytes();
        let dest = ledger::parse_strkey(address).unwrap_or([0; 32]);
        let body = if usdc {
            OperationBody::Payment(PaymentOp {
                destination: MuxedAccount::Ed25519(Uint256(dest)),
                asset: Asset::CreditAlphanum4(AlphaNum4 {
                    asset_code: AssetCode4(*b"USDC"),
                    issuer: AccountId(PublicKey::PublicKeyTypeEd25519(Uint256(source_pk))),
                }),
                amount: units,
            })
        } else if l.accounts.contains_key(address) {
            OperationBody::Payment(PaymentOp {
                destination: MuxedAccount::Ed25519(Uint256(dest)),
                asset: Asset::Native,
                amount: units,
            })
        } else {
            OperationBody::CreateAccount(CreateAccountOp {
                destination: AccountId(PublicKey::PublicKeyTypeEd25519(Uint256(dest))),
                starting_balance: units,
            })
        };
        self.submit_signed(&mut l, signer, body)
    }

    /// Builds, signs with `signer` (also the source account) and submits a one-operation
    /// transaction, as a client would.
    fn submit_signed(
        &self,
        l: &mut Ledger,
        signer: &SigningKey,
        body: OperationBody,
    ) -> Result<TxRecord, Rejection> {
        let source_pk = signer.verifying_key().to_bytes();
        let seq = l
            .accounts
            .get(&strkey(&source_pk))
            .map(|a| a.seq)
            .unwrap_or(0);
        let tx = Transaction {
            source_account: MuxedAccount::Ed25519(Uint256(source_pk)),
            fee: 100,
            seq_num: SequenceNumber(seq + 1),
            cond: Preconditions::None,
            memo: Memo::None,
            operations: vec![Operation {
                source_account: None,
                body,
            }]
            .try_into()
            .expect("one operation"),
            ext: TransactionExt::V0,
        };
        let hash = tx
            .hash(ledger::network_id(&l.passphrase))
            .expect("hashable");
        let sig = DecoratedSignature {
            hint: SignatureHint(source_pk[28..32].try_into().expect("4 bytes")),
            signature: Signature(
                signer
                    .sign(&hash)
                    .to_bytes()
                    .to_vec()
                    .try_into()
                    .expect("64 bytes"),
            ),
        };
        let env = TransactionEnvelope::Tx(TransactionV1Envelope {
            tx,
            signatures: vec![sig].try_into().expect("one signature"),
        });
        let b64 = env.to_xdr_base64(Limits::none()).expect("encodable");
        self.submit_locked(l, &b64)
    }

    /// Creates an account outside OfferHub — what a user's own wallet (Freighter, Lobstr,
    /// an exchange) would be: funded with `xlm_units` of XLM by the root account, with a
    /// USDC trustline signed by its own (random, not kept) key. Returns its G… address.
    /// It can receive withdrawals; nothing can spend from it.
    pub fn external_account(&self, xlm_units: i64) -> Result<String, Rejection> {
        let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let pk = key.verifying_key().to_bytes();
        let address = strkey(&pk);
        let mut l = self.ledger.lock().expect("ledger lock");
        self.submit_signed(
            &mut l,
            &self.root,
            OperationBody::CreateAccount(CreateAccountOp {
                destination: AccountId(PublicKey::PublicKeyTypeEd25519(Uint256(pk))),
                starting_balance: xlm_units,
            }),
        )?;
        let issuer = self.issuer.verifying_key().to_bytes();
        self.submit_signed(
            &mut l,
            &key,
            OperationBody::ChangeTrust(ChangeTrustOp {
                line: ChangeTrustAsset::CreditAlphanum4(AlphaNum4 {
                    asset_code: AssetCode4(*b"USDC"),
                    issuer: AccountId(PublicKey::PublicKeyTypeEd25519(Uint256(issuer))),
                }),
                limit: i64::MAX,
            }),
        )?;
        Ok(address)
    }

    /// Consumes one "answer with a timeout after applying" fault, if armed.
    pub(crate) fn take_timeout_after_apply(&self) -> bool {
        let mut f = self.faults.lock().expect("faults lock");
        let armed = f.timeout_after_apply > 0;
        if armed {
            f.timeout_after_apply -= 1;
        }
        armed
    }

    /// Consumes one "stale sequence number" fault, if armed.
    pub(crate) fn take_stale_sequence(&self) -> bool {
        let mut f = self.faults.lock().expect("faults lock");
        let armed = f.stale_sequence > 0;
        if armed {
            f.stale_sequence -= 1;
        }
        armed
    }

    /// Consumes the "tamper with the next builder answer" fault, if armed.
    pub(crate) fn take_tamper(&self) -> Option<String> {
        self.faults.lock().expect("faults lock").tamper_xdr.take()
    }

    /// Consumes the `tamperArg` fault if it is armed for a builder answer calling
    /// `function`.
    pub(crate) fn take_tamper_arg(&self, function: &str) -> Option<tamper::TamperArg> {
        let mut f = self.faults.lock().expect("faults lock");
        let matches = f
            .tamper_arg
            .as_ref()
            .is_some_and(|t| t.function.as_deref().is_none_or(|want| want == function));
        if matches { f.tamper_arg.take() } else { None }
    }

    /// Sets the fault injection (as `POST /_sandbox/faults` does).
    pub fn set_faults(&self, faults: horizon::Faults) {
        *self.faults.lock().expect("faults lock") = faults;
    }

    /// The HTTP application.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        horizon::routes()
            .merge(tw::routes())
            .merge(airtm::routes())
            .fallback(not_found)
            .with_state(self.clone())
    }
}

/// Unknown routes answer in the error format of the API their path belongs to:
/// Trustless Work's (NestJS) `{message, error, statusCode}` under its prefixes,
/// Horizon's problem+json `not_found` elsewhere.
async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> axum::response::Response {
    let path = uri.path();
    let tw = ["/escrow/", "/deployer/", "/helper/", "/indexer/"];
    if tw.iter().any(|p| path.starts_with(p)) {
        tw::not_found(&method, path)
    } else {
        horizon::not_found()
    }
}

/// Binds `addr` (use port 0 for an ephemeral port) and serves the sandbox in the
/// background. Returns the bound address.
pub async fn start(sandbox: Arc<Sandbox>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = sandbox.router();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "sandbox server stopped");
        }
    });
    Ok(bound)
}

/// The USDC balance of `account` as the sandbox's Horizon reports it
/// (`GET {base}/accounts/{account}`): Horizon's 7-decimal string, e.g. `"99.7000000"`;
/// `None` when the account does not exist or holds no USDC trustline. For tests and
/// tools that check the chain side of a flow.
pub async fn usdc_balance(base: &str, account: &str) -> reqwest::Result<Option<String>> {
    let r = reqwest::get(format!("{}/accounts/{account}", base.trim_end_matches('/'))).await?;
    if r.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let a: serde_json::Value = r.error_for_status()?.json().await?;
    Ok(a["balances"].as_array().and_then(|bs| {
        bs.iter()
            .find(|b| b["asset_code"] == "USDC")
            .and_then(|b| b["balance"].as_str())
            .map(str::to_string)
    }))
}

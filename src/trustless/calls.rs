//! The one place mapping an escrow saga step to its Trustless Work request
//! ([`EscrowRequest`], docs/PROVIDERS.md, Trustless Work: endpoints) and to what the
//! returned transaction must be ([`Expected`], checked by [`super::verify`]). Both are
//! computed here from OfferHub's records, never from TW's answer.

use serde_json::json;

use super::verify::{Arg, Expected};
use super::wire::{
    ApproveMilestone, ChangeMilestoneStatus, DeployEscrow, DeployMilestone, Dispute, Distribution,
    EscrowRequest, FundEscrow, Human, Percent, ReleaseFunds, ResolveDispute, Roles, Trustline,
};
use crate::domain::escrow::EscrowKind;
use crate::error::{Error, ErrorCode, Result};
use crate::money::Amount;
use crate::services::escrow::StepCall;
use crate::services::sagas::{Action, Party};
use crate::stellar::network::StellarNetwork;
use crate::stellar::tx::CreditAsset;

/// The one milestone of a single-release escrow (its description).
const SINGLE_MILESTONE: &str = "Delivery of the order";
/// Factory functions accepted for deploys.
const DEPLOY_SINGLE: &[&str] = &["tw_new_single_release_escrow"];
const DEPLOY_MULTI: &[&str] = &["tw_new_multi_release_escrow"];
/// The status a seller's "complete" writes on a contract milestone.
const COMPLETED_STATUS: &str = "completed";

/// What every request is built with besides the step: the network, the escrow asset and
/// the limits OfferHub signs within.
#[derive(Clone, Debug)]
pub struct CallTerms {
    pub network: StellarNetwork,
    /// USDC: code and issuer (`G…`).
    pub usdc: CreditAsset,
    pub usdc_issuer: String,
    /// Largest transaction fee OfferHub signs (stroops, resource fee included).
    pub max_fee_stroops: u32,
    /// The TW factory contract (`C…`) deploys must call; `None` = not pinned.
    pub factory_contract: Option<String>,
}

/// A built request and what its transaction must be.
#[derive(Clone, Debug)]
pub struct Call {
    pub request: EscrowRequest,
    pub expected: Expected,
}

/// Everything a step's request is built from: the step call, the terms and the parties'
/// addresses.
struct StepInput<'a> {
    terms: &'a CallTerms,
    c: StepCall<'a>,
    buyer: String,
    seller: String,
    platform: String,
    signer: String,
    kind: EscrowKind,
    multi: bool,
    /// The milestone index of milestone steps (0 for single-release).
    idx: u32,
}

impl<'a> StepInput<'a> {
    fn new(terms: &'a CallTerms, c: StepCall<'a>) -> Self {
        StepInput {
            terms,
            buyer: c.parties.address(Party::Buyer).to_string(),
            seller: c.parties.address(Party::Seller).to_string(),
            platform: c.parties.address(Party::Platform).to_string(),
            signer: c.parties.address(c.step.signer).to_string(),
            kind: c.escrow.kind,
            multi: c.escrow.kind == EscrowKind::MultiRelease,
            idx: c.step.milestone.unwrap_or(0),
            c,
        }
    }

    /// The deployed contract (every step but the deploy needs one).
    fn contract(&self) -> Result<String> {
        self.c
            .escrow
            .contract_id
            .clone()
            .ok_or_else(|| Error::internal("escrow has no contract id yet"))
    }

    /// The milestone index as TW's builders take it (a decimal string).
    fn index(&self) -> String {
        self.idx.to_string()
    }

    /// A request whose transaction must call one of `functions` on the escrow's
    /// contract with `args`, signed by the step's signer.
    fn call(&self, request: EscrowRequest, functions: Vec<&'static str>, args: Vec<Arg>) -> Call {
        Call {
            request,
            expected: Expected {
                source: self.signer.clone(),
                contract: self.c.escrow.contract_id.clone(),
                functions,
                args,
                max_fee: self.terms.max_fee_stroops,
                max_validity_secs: 900,
            },
        }
    }

    /// `(address, amount)` of each share; `None` amounts take `total`.
    fn distributions(&self, total: i64) -> Vec<(String, i64)> {
        self.c
            .step
            .shares
            .iter()
            .map(|s| {
                (
                    self.c.parties.address(s.party).to_string(),
                    s.amount.unwrap_or(total),
                )
            })
            .collect()
    }
}

/// The request of one saga step and what its transaction must be. A single-release
/// resolution needs the escrow's on-chain balance in the call (its shares must equal
/// it).
pub fn call_for(terms: &CallTerms, c: StepCall<'_>) -> Result<Call> {
    let s = StepInput::new(terms, c);
    match c.step.action {
        Action::Deploy => deploy_call(&s),
        Action::Fund => fund_call(&s),
        Action::ResolveDispute => resolve_call(&s),
        Action::ResolveMilestoneDispute => resolve_milestone_call(&s),
        Action::ChangeMilestoneStatus
        | Action::ApproveMilestone
        | Action::ReleaseFunds
        | Action::DisputeEscrow
        | Action::ReleaseMilestoneFunds
        | Action::DisputeMilestone => signer_call(&s),
    }
}

/// The escrow struct the contract must hold as OfferHub deploys it (the deploy's and the
/// funding's argument). Every field is checked, not only the money ones: text as sent,
/// flags false and milestones not approved (the contract refuses other flags at deploy —
/// docs/PROVIDERS.md, Trustless Work: contract rules — but a transaction is never signed on
/// trust), and a milestone status/evidence the deployer left unset.
fn escrow_fields(s: &StepInput<'_>) -> Vec<(&'static str, Arg)> {
    let (order, escrow) = (s.c.order, s.c.escrow);
    let mut role_fields = vec![
        ("approver", Arg::Address(s.buyer.clone())),
        ("service_provider", Arg::Address(s.seller.clone())),
        ("platform_address", Arg::Address(s.platform.clone())),
        ("release_signer", Arg::Address(s.buyer.clone())),
        ("dispute_resolver", Arg::Address(s.platform.clone())),
    ];
    if !s.multi {
        role_fields.push(("receiver", Arg::Address(s.seller.clone())));
    }
    let mut fields = vec![
        ("engagement_id", Arg::Str(order.id.clone())),
        (
            "platform_fee",
            Arg::Int(i128::from(escrow.platform_fee_bps)),
        ),
        ("roles", Arg::Fields(role_fields)),
        (
            "trustline",
            Arg::Fields(vec![(
                "address",
                Arg::Address(s.terms.usdc.contract_id(&s.terms.network)),
            )]),
        ),
        ("title", Arg::Str(order.title.clone())),
        ("description", Arg::Str(description(s))),
    ];
    let unset_status = || Arg::StrIn(vec!["", "pending", "Pending", "PENDING"]);
    let flags_false = |approved: bool| {
        let mut f = vec![
            ("disputed", Arg::Bool(false)),
            ("released", Arg::Bool(false)),
            ("resolved", Arg::Bool(false)),
        ];
        if approved {
            f.push(("approved", Arg::Bool(false)));
        }
        Arg::Fields(f)
    };
    if s.multi {
        let milestones = order
            .milestones
            .iter()
            .map(|m| {
                Arg::Fields(vec![
                    ("amount", Arg::Int(i128::from(m.amount.base_units()))),
                    ("receiver", Arg::Address(s.seller.clone())),
                    ("description", Arg::Str(m.title.clone())),
                    ("status", unset_status()),
                    ("evidence", Arg::Str(String::new())),
                    ("flags", flags_false(true)),
                ])
            })
            .collect();
        fields.push(("milestones", Arg::Items(milestones)));
    } else {
        fields.push(("amount", Arg::Int(i128::from(order.amount.base_units()))));
        fields.push(("flags", flags_false(false)));
        fields.push((
            "milestones",
            Arg::Items(vec![Arg::Fields(vec![
                ("description", Arg::Str(SINGLE_MILESTONE.into())),
                ("status", unset_status()),
                ("evidence", Arg::Str(String::new())),
                ("approved", Arg::Bool(false)),
            ])]),
        ));
    }
    fields
}

/// The escrow's description: the order's, else its title.
fn description(s: &StepInput<'_>) -> String {
    s.c.order
        .description
        .clone()
        .unwrap_or_else(|| s.c.order.title.clone())
}

/// `POST /deployer/{kind}`: the platform deploys through the factory.
fn deploy_call(s: &StepInput<'_>) -> Result<Call> {
    let order = s.c.order;
    let milestones = if s.multi {
        order
            .milestones
            .iter()
            .map(|m| {
                Ok(DeployMilestone {
                    description: m.title.clone(),
                    amount: Some(Human::of(m.amount)?),
                    receiver: Some(s.seller.clone()),
                })
            })
            .collect::<Result<_>>()?
    } else {
        vec![DeployMilestone {
            description: SINGLE_MILESTONE.into(),
            amount: None,
            receiver: None,
        }]
    };
    let body = DeployEscrow {
        signer: s.platform.clone(),
        engagement_id: order.id.clone(),
        title: order.title.clone(),
        description: description(s),
        platform_fee: Percent::from_bps(s.c.escrow.platform_fee_bps)?,
        trustline: Trustline {
            address: s.terms.usdc_issuer.clone(),
            symbol: s.terms.usdc.code.clone(),
        },
        roles: Roles {
            approver: s.buyer.clone(),
            service_provider: s.seller.clone(),
            platform_address: s.platform.clone(),
            release_signer: s.buyer.clone(),
            dispute_resolver: s.platform.clone(),
            receiver: (!s.multi).then(|| s.seller.clone()),
        },
        amount: if s.multi {
            None
        } else {
            Some(Human::of(order.amount)?)
        },
        milestones,
    };
    let functions = if s.multi { DEPLOY_MULTI } else { DEPLOY_SINGLE };
    let args = vec![
        Arg::Address(s.platform.clone()),
        Arg::Fields(escrow_fields(s)),
        Arg::Any,
    ];
    let mut call = s.call(
        EscrowRequest::Deploy(s.kind, Box::new(body)),
        functions.to_vec(),
        args,
    );
    call.expected.contract = s.terms.factory_contract.clone();
    Ok(call)
}

/// `fund-escrow`: the buyer funds exactly the escrow amount.
fn fund_call(s: &StepInput<'_>) -> Result<Call> {
    let amount = s.c.escrow.amount;
    let args = vec![
        Arg::Address(s.buyer.clone()),
        Arg::Fields(escrow_fields(s)),
        Arg::Int(i128::from(amount.base_units())),
    ];
    let body = FundEscrow {
        contract_id: s.contract()?,
        signer: s.buyer.clone(),
        amount: Human::of(amount)?,
    };
    Ok(s.call(EscrowRequest::Fund(s.kind, body), vec!["fund_escrow"], args))
}

/// The calls that move no money by themselves: milestone status, approval, release
/// (the contract pays per its own terms), disputes.
fn signer_call(s: &StepInput<'_>) -> Result<Call> {
    let contract_id = s.contract()?;
    let idx = i128::from(s.idx);
    let (buyer, seller, signer) = (&s.buyer, &s.seller, &s.signer);
    let (request, function, args) = match s.c.step.action {
        Action::ChangeMilestoneStatus => (
            EscrowRequest::ChangeMilestoneStatus(
                s.kind,
                ChangeMilestoneStatus {
                    contract_id,
                    milestone_index: s.index(),
                    new_status: COMPLETED_STATUS.into(),
                    service_provider: seller.clone(),
                },
            ),
            "change_milestone_status",
            vec![
                Arg::Int(idx),
                Arg::Str(COMPLETED_STATUS.into()),
                // No evidence is sent: `None` (or an empty string).
                Arg::StrIn(vec![""]),
                Arg::Address(seller.clone()),
            ],
        ),
        Action::ApproveMilestone => (
            EscrowRequest::ApproveMilestone(
                s.kind,
                ApproveMilestone {
                    contract_id,
                    milestone_index: s.index(),
                    approver: buyer.clone(),
                },
            ),
            "approve_milestone",
            vec![Arg::Int(idx), Arg::Address(buyer.clone())],
        ),
        Action::ReleaseFunds | Action::ReleaseMilestoneFunds => {
            let multi = s.c.step.action == Action::ReleaseMilestoneFunds;
            let request = EscrowRequest::ReleaseFunds(ReleaseFunds {
                contract_id,
                release_signer: buyer.clone(),
                milestone_index: multi.then(|| s.index()),
            });
            if multi {
                let args = vec![Arg::Address(buyer.clone()), Arg::Int(idx)];
                (request, "release_milestone_funds", args)
            } else {
                (request, "release_funds", vec![Arg::Address(buyer.clone())])
            }
        }
        Action::DisputeEscrow | Action::DisputeMilestone => {
            let multi = s.c.step.action == Action::DisputeMilestone;
            let request = EscrowRequest::Dispute(Dispute {
                contract_id,
                signer: signer.clone(),
                milestone_index: multi.then(|| s.index()),
            });
            if multi {
                let args = vec![Arg::Address(signer.clone()), Arg::Int(idx)];
                (request, "dispute_milestone", args)
            } else {
                (
                    request,
                    "dispute_escrow",
                    vec![Arg::Address(signer.clone())],
                )
            }
        }
        other => return Err(Error::internal(format!("{other:?} is not a signer call"))),
    };
    Ok(s.call(request, vec![function], args))
}

/// The request's recipients, amounts in TW's human units.
fn distributions(d: &[(String, i64)]) -> Result<Vec<Distribution>> {
    d.iter()
        .map(|(a, n)| {
            Ok(Distribution {
                address: a.clone(),
                amount: Human::of(Amount::from_base_units(*n))?,
            })
        })
        .collect()
}

/// The shares as the contract's distribution argument.
fn distribution_arg(d: &[(String, i64)]) -> Arg {
    Arg::Distribution(d.iter().map(|(a, n)| (a.clone(), i128::from(*n))).collect())
}

/// `resolve-dispute` (single-release): the shares must equal the contract's on-chain
/// balance.
fn resolve_call(s: &StepInput<'_>) -> Result<Call> {
    let contract_id = s.contract()?;
    let balance =
        s.c.escrow_balance
            .ok_or_else(|| Error::internal("resolution without the escrow's balance"))?
            .base_units();
    let d = s.distributions(balance);
    let sum: i64 = d.iter().map(|(_, a)| a).sum();
    if sum != balance {
        return Err(Error::new(
            ErrorCode::EscrowContractError,
            format!(
                "The shares ({}) do not equal the escrow's on-chain balance ({})",
                Amount::from_base_units(sum),
                Amount::from_base_units(balance)
            ),
        )
        .with_details(json!({ "contractError": "DistributionsMustEqualEscrowBalance" })));
    }
    let request = EscrowRequest::ResolveDispute(ResolveDispute {
        contract_id,
        dispute_resolver: s.platform.clone(),
        milestone_index: None,
        distributions: distributions(&d)?,
    });
    let args = vec![Arg::Address(s.platform.clone()), distribution_arg(&d)];
    Ok(s.call(request, vec!["resolve_dispute"], args))
}

/// `resolve-milestone-dispute`: the shares of one milestone's amount.
fn resolve_milestone_call(s: &StepInput<'_>) -> Result<Call> {
    let amount =
        s.c.order
            .milestones
            .get(usize::try_from(s.idx).unwrap_or(usize::MAX))
            .map(|m| m.amount.base_units())
            .ok_or_else(|| Error::internal("milestone index out of range"))?;
    let d = s.distributions(amount);
    let request = EscrowRequest::ResolveDispute(ResolveDispute {
        contract_id: s.contract()?,
        dispute_resolver: s.platform.clone(),
        milestone_index: Some(s.index()),
        distributions: distributions(&d)?,
    });
    let args = vec![
        Arg::Address(s.platform.clone()),
        Arg::Int(i128::from(s.idx)),
        distribution_arg(&d),
    ];
    Ok(s.call(request, vec!["resolve_milestone_dispute"], args))
}

//! One place mapping a saga step to its Trustless Work request (path and camelCase
//! body) and to what the returned transaction must be ([`crate::trustless::verify`]).

use super::*;

/// The one milestone of a single-release escrow (its description).
pub(super) const SINGLE_MILESTONE: &str = "Delivery of the order";

/// A built request: TW path and body, and what its transaction must be.
pub(super) struct Call {
    pub(super) path: String,
    pub(super) body: Value,
    pub(super) expected: Expected,
}

/// Basis points → the percent number TW expects (`250` → `2.5`), from exact text.
pub(super) fn percent(bps: u32) -> Result<Value> {
    let text = format!("{}.{:02}", bps / 100, bps % 100);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    serde_json::from_str(text).map_err(|e| Error::internal(format!("platform fee {bps} bps: {e}")))
}

/// `[{address, amount}]` of a resolution, amounts as TW's human-unit numbers.
pub(super) fn distribution_json(d: &[(String, i64)]) -> Result<Vec<Value>> {
    d.iter()
        .map(|(a, n)| {
            Ok(json!({ "address": a, "amount": tw::human(Amount::from_base_units(*n))? }))
        })
        .collect()
}

pub(super) async fn escrow_balance(ec: &EscrowContext, contract: &str) -> Result<i64> {
    let b = ec.tw.balances(&[contract.to_string()]).await?;
    b.into_iter()
        .find(|(c, _)| c == contract)
        .map(|(_, a)| a.base_units())
        .ok_or_else(|| {
            Error::new(
                ErrorCode::ProviderError,
                "Trustless Work returned no balance for the escrow",
            )
        })
}

/// Everything a step's request is built from: the order, its escrow, the step and the
/// parties' addresses.
struct StepInput<'a> {
    ec: &'a EscrowContext,
    order: &'a Order,
    escrow: &'a Escrow,
    parties: &'a Parties,
    step: &'a Step,
    buyer: String,
    seller: String,
    platform: String,
    signer: String,
    /// TW's path segment: `single-release` or `multi-release`.
    kind: &'static str,
    multi: bool,
    /// The milestone index of milestone steps (0 for single-release).
    idx: u32,
}

impl<'a> StepInput<'a> {
    fn new(
        ec: &'a EscrowContext,
        order: &'a Order,
        escrow: &'a Escrow,
        parties: &'a Parties,
        step: &'a Step,
    ) -> Self {
        StepInput {
            ec,
            order,
            escrow,
            parties,
            step,
            buyer: parties.address(Party::Buyer).to_string(),
            seller: parties.address(Party::Seller).to_string(),
            platform: parties.address(Party::Platform).to_string(),
            signer: parties.address(step.signer).to_string(),
            kind: escrow.kind.as_str(),
            multi: escrow.kind == EscrowKind::MultiRelease,
            idx: step.milestone.unwrap_or(0),
        }
    }

    /// The deployed contract (every step but the deploy needs one).
    fn contract(&self) -> Result<String> {
        self.escrow
            .contract_id
            .clone()
            .ok_or_else(|| Error::internal("escrow has no contract id yet"))
    }

    /// A request to `path` whose transaction must call one of `functions` on the
    /// escrow's contract with `args`, signed by the step's signer.
    fn call(
        &self,
        path: String,
        body: Value,
        functions: Vec<&'static str>,
        args: Vec<Arg>,
    ) -> Call {
        Call {
            path,
            body,
            expected: Expected {
                source: self.signer.clone(),
                contract: self.escrow.contract_id.clone(),
                functions,
                args,
                max_fee: self.ec.settings.max_fee_stroops,
                max_validity_secs: 900,
            },
        }
    }

    /// `(address, amount)` of each share; `None` amounts take `total`.
    fn distributions(&self, total: i64) -> Vec<(String, i64)> {
        self.step
            .shares
            .iter()
            .map(|s| {
                (
                    self.parties.address(s.party).to_string(),
                    s.amount.unwrap_or(total),
                )
            })
            .collect()
    }
}

/// The request of one saga step and what its transaction must be.
pub(super) async fn call_for(
    ec: &EscrowContext,
    order: &Order,
    escrow: &Escrow,
    parties: &Parties,
    step: &Step,
) -> Result<Call> {
    let s = StepInput::new(ec, order, escrow, parties, step);
    match step.action {
        Action::Deploy => deploy_call(&s),
        Action::Fund => fund_call(&s),
        Action::ResolveDispute => resolve_call(&s).await,
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
    let description = s
        .order
        .description
        .clone()
        .unwrap_or_else(|| s.order.title.clone());
    let mut fields = vec![
        ("engagement_id", Arg::Str(s.order.id.clone())),
        (
            "platform_fee",
            Arg::Int(i128::from(s.escrow.platform_fee_bps)),
        ),
        ("roles", Arg::Fields(role_fields)),
        (
            "trustline",
            Arg::Fields(vec![(
                "address",
                Arg::Address(s.ec.sc.usdc.contract_id(&s.ec.sc.network)),
            )]),
        ),
        ("title", Arg::Str(s.order.title.clone())),
        ("description", Arg::Str(description)),
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
        let milestones = s
            .order
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
        fields.push(("amount", Arg::Int(i128::from(s.order.amount.base_units()))));
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

/// `POST /deployer/{kind}`: the platform deploys through the factory.
fn deploy_call(s: &StepInput<'_>) -> Result<Call> {
    let (order, seller) = (s.order, &s.seller);
    let mut roles = json!({
        "approver": s.buyer, "serviceProvider": seller, "platformAddress": s.platform,
        "releaseSigner": s.buyer, "disputeResolver": s.platform,
    });
    let mut body = json!({
        "signer": s.platform,
        "engagementId": order.id,
        "title": order.title,
        "description": order.description.clone().unwrap_or_else(|| order.title.clone()),
        "platformFee": percent(s.escrow.platform_fee_bps)?,
        "trustline": { "address": s.ec.sc.usdc_issuer, "symbol": s.ec.sc.usdc.code },
    });
    if s.multi {
        body["milestones"] = Value::Array(
            order
                .milestones
                .iter()
                .map(|m| Ok(json!({ "description": m.title, "amount": tw::human(m.amount)?, "receiver": seller })))
                .collect::<Result<_>>()?,
        );
    } else {
        roles["receiver"] = json!(seller);
        body["amount"] = tw::human(order.amount)?;
        body["milestones"] = json!([{ "description": SINGLE_MILESTONE }]);
    }
    body["roles"] = roles;
    let functions = if s.multi {
        DEPLOY_MULTI.to_vec()
    } else {
        DEPLOY_SINGLE.to_vec()
    };
    let args = vec![
        Arg::Address(s.platform.clone()),
        Arg::Fields(escrow_fields(s)),
        Arg::Any,
    ];
    let mut call = s.call(format!("/deployer/{}", s.kind), body, functions, args);
    call.expected.contract = s.ec.settings.factory_contract.clone();
    Ok(call)
}

/// `fund-escrow`: the buyer funds exactly the escrow amount.
fn fund_call(s: &StepInput<'_>) -> Result<Call> {
    let c = s.contract()?;
    let args = vec![
        Arg::Address(s.buyer.clone()),
        Arg::Fields(escrow_fields(s)),
        Arg::Int(i128::from(s.escrow.amount.base_units())),
    ];
    Ok(s.call(
        format!("/escrow/{}/fund-escrow", s.kind),
        json!({ "contractId": c, "signer": s.buyer, "amount": tw::human(s.escrow.amount)? }),
        vec!["fund_escrow"],
        args,
    ))
}

/// The calls that move no money by themselves: milestone status, approval, release
/// (the contract pays per its own terms), disputes.
fn signer_call(s: &StepInput<'_>) -> Result<Call> {
    let c = s.contract()?;
    let (idx, kind) = (s.idx, s.kind);
    let (buyer, seller, signer) = (&s.buyer, &s.seller, &s.signer);
    let (path, body, function, args) = match s.step.action {
        Action::ChangeMilestoneStatus => (
            format!("/escrow/{kind}/change-milestone-status"),
            json!({ "contractId": c, "milestoneIndex": idx.to_string(), "newStatus": COMPLETED_STATUS, "serviceProvider": seller }),
            "change_milestone_status",
            vec![
                Arg::Int(i128::from(idx)),
                Arg::Str(COMPLETED_STATUS.into()),
                // No evidence is sent: `None` (or an empty string).
                Arg::StrIn(vec![""]),
                Arg::Address(seller.clone()),
            ],
        ),
        Action::ApproveMilestone => (
            format!("/escrow/{kind}/approve-milestone"),
            json!({ "contractId": c, "milestoneIndex": idx.to_string(), "approver": buyer }),
            "approve_milestone",
            vec![Arg::Int(i128::from(idx)), Arg::Address(buyer.clone())],
        ),
        Action::ReleaseFunds => (
            "/escrow/single-release/release-funds".into(),
            json!({ "contractId": c, "releaseSigner": buyer }),
            "release_funds",
            vec![Arg::Address(buyer.clone())],
        ),
        Action::DisputeEscrow => (
            "/escrow/single-release/dispute-escrow".into(),
            json!({ "contractId": c, "signer": signer }),
            "dispute_escrow",
            vec![Arg::Address(signer.clone())],
        ),
        Action::ReleaseMilestoneFunds => (
            "/escrow/multi-release/release-milestone-funds".into(),
            json!({ "contractId": c, "releaseSigner": buyer, "milestoneIndex": idx.to_string() }),
            "release_milestone_funds",
            vec![Arg::Address(buyer.clone()), Arg::Int(i128::from(idx))],
        ),
        Action::DisputeMilestone => (
            "/escrow/multi-release/dispute-milestone".into(),
            json!({ "contractId": c, "signer": signer, "milestoneIndex": idx.to_string() }),
            "dispute_milestone",
            vec![Arg::Address(signer.clone()), Arg::Int(i128::from(idx))],
        ),
        other => return Err(Error::internal(format!("{other:?} is not a signer call"))),
    };
    Ok(s.call(path, body, vec![function], args))
}

/// `resolve-dispute` (single-release): the shares must equal the contract's on-chain
/// balance, read from TW now.
async fn resolve_call(s: &StepInput<'_>) -> Result<Call> {
    let c = s.contract()?;
    let balance = escrow_balance(s.ec, &c).await?;
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
    let args = vec![
        Arg::Address(s.platform.clone()),
        Arg::Distribution(d.iter().map(|(a, n)| (a.clone(), i128::from(*n))).collect()),
    ];
    Ok(s.call(
        "/escrow/single-release/resolve-dispute".into(),
        json!({ "contractId": c, "disputeResolver": s.platform, "distributions": distribution_json(&d)? }),
        vec!["resolve_dispute"],
        args,
    ))
}

/// `resolve-milestone-dispute`: the shares of one milestone's amount.
fn resolve_milestone_call(s: &StepInput<'_>) -> Result<Call> {
    let c = s.contract()?;
    let idx = s.idx;
    let amount = s
        .order
        .milestones
        .get(usize::try_from(idx).unwrap_or(usize::MAX))
        .map(|m| m.amount.base_units())
        .ok_or_else(|| Error::internal("milestone index out of range"))?;
    let d = s.distributions(amount);
    let args = vec![
        Arg::Address(s.platform.clone()),
        Arg::Int(i128::from(idx)),
        Arg::Distribution(d.iter().map(|(a, n)| (a.clone(), i128::from(*n))).collect()),
    ];
    Ok(s.call(
        "/escrow/multi-release/resolve-milestone-dispute".into(),
        json!({ "contractId": c, "disputeResolver": s.platform, "milestoneIndex": idx.to_string(), "distributions": distribution_json(&d)? }),
        vec!["resolve_milestone_dispute"],
        args,
    ))
}

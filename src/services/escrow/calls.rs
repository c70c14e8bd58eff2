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

pub(super) async fn call_for(
    ec: &EscrowContext,
    order: &Order,
    escrow: &Escrow,
    parties: &Parties,
    step: &Step,
) -> Result<Call> {
    let buyer = parties.address(Party::Buyer).to_string();
    let seller = parties.address(Party::Seller).to_string();
    let platform = parties.address(Party::Platform).to_string();
    let signer = parties.address(step.signer).to_string();
    let multi = escrow.kind == EscrowKind::MultiRelease;
    let kind = escrow.kind.as_str();
    let contract = escrow.contract_id.clone();
    let need_contract = || {
        contract
            .clone()
            .ok_or_else(|| Error::internal("escrow has no contract id yet"))
    };
    let idx = step.milestone.unwrap_or(0);
    let mut expected = Expected {
        source: signer.clone(),
        contract: contract.clone(),
        functions: Vec::new(),
        args: Vec::new(),
        max_fee: ec.settings.max_fee_stroops,
        max_validity_secs: 900,
    };
    let mut role_fields = vec![
        ("approver", Arg::Address(buyer.clone())),
        ("service_provider", Arg::Address(seller.clone())),
        ("platform_address", Arg::Address(platform.clone())),
        ("release_signer", Arg::Address(buyer.clone())),
        ("dispute_resolver", Arg::Address(platform.clone())),
    ];
    if !multi {
        role_fields.push(("receiver", Arg::Address(seller.clone())));
    }
    let mut escrow_fields = vec![
        ("engagement_id", Arg::Str(order.id.clone())),
        (
            "platform_fee",
            Arg::Int(i128::from(escrow.platform_fee_bps)),
        ),
        ("roles", Arg::Fields(role_fields.clone())),
        (
            "trustline",
            Arg::Fields(vec![(
                "address",
                Arg::Address(ec.sc.usdc.contract_id(&ec.sc.network)),
            )]),
        ),
    ];
    // Every field of the escrow OfferHub deploys is checked, not only the money ones:
    // text as sent, flags false and milestones not approved (the contract refuses
    // other flags at deploy — §B.2 — but a transaction is never signed on trust), and
    // a milestone status/evidence the deployer left unset.
    let title = order.title.clone();
    let description = order
        .description
        .clone()
        .unwrap_or_else(|| order.title.clone());
    escrow_fields.push(("title", Arg::Str(title)));
    escrow_fields.push(("description", Arg::Str(description)));
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
    if multi {
        escrow_fields.push((
            "milestones",
            Arg::Items(
                order
                    .milestones
                    .iter()
                    .map(|m| {
                        Arg::Fields(vec![
                            ("amount", Arg::Int(i128::from(m.amount.base_units()))),
                            ("receiver", Arg::Address(seller.clone())),
                            ("description", Arg::Str(m.title.clone())),
                            ("status", unset_status()),
                            ("evidence", Arg::Str(String::new())),
                            ("flags", flags_false(true)),
                        ])
                    })
                    .collect(),
            ),
        ));
    } else {
        escrow_fields.push(("amount", Arg::Int(i128::from(order.amount.base_units()))));
        escrow_fields.push(("flags", flags_false(false)));
        escrow_fields.push((
            "milestones",
            Arg::Items(vec![Arg::Fields(vec![
                ("description", Arg::Str(SINGLE_MILESTONE.into())),
                ("status", unset_status()),
                ("evidence", Arg::Str(String::new())),
                ("approved", Arg::Bool(false)),
            ])]),
        ));
    }
    let distributions = |shares: &[Share], total: i64| -> Vec<(String, i64)> {
        shares
            .iter()
            .map(|s| {
                (
                    parties.address(s.party).to_string(),
                    s.amount.unwrap_or(total),
                )
            })
            .collect()
    };
    let (path, body) = match step.action {
        Action::Deploy => {
            expected.contract = ec.settings.factory_contract.clone();
            expected.functions = if multi {
                DEPLOY_MULTI.to_vec()
            } else {
                DEPLOY_SINGLE.to_vec()
            };
            expected.args = vec![
                Arg::Address(platform.clone()),
                Arg::Fields(escrow_fields),
                Arg::Any,
            ];
            let mut roles = json!({
                "approver": buyer, "serviceProvider": seller, "platformAddress": platform,
                "releaseSigner": buyer, "disputeResolver": platform,
            });
            let mut body = json!({
                "signer": platform,
                "engagementId": order.id,
                "title": order.title,
                "description": order.description.clone().unwrap_or_else(|| order.title.clone()),
                "platformFee": percent(escrow.platform_fee_bps)?,
                "trustline": { "address": ec.sc.usdc_issuer, "symbol": ec.sc.usdc.code },
            });
            if multi {
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
            (format!("/deployer/{kind}"), body)
        }
        Action::Fund => {
            let c = need_contract()?;
            expected.functions = vec!["fund_escrow"];
            expected.args = vec![
                Arg::Address(buyer.clone()),
                Arg::Fields(escrow_fields),
                Arg::Int(i128::from(escrow.amount.base_units())),
            ];
            (
                format!("/escrow/{kind}/fund-escrow"),
                json!({ "contractId": c, "signer": buyer, "amount": tw::human(escrow.amount)? }),
            )
        }
        Action::ChangeMilestoneStatus => {
            let c = need_contract()?;
            expected.functions = vec!["change_milestone_status"];
            expected.args = vec![
                Arg::Int(i128::from(idx)),
                Arg::Str(COMPLETED_STATUS.into()),
                // No evidence is sent: `None` (or an empty string).
                Arg::StrIn(vec![""]),
                Arg::Address(seller.clone()),
            ];
            (
                format!("/escrow/{kind}/change-milestone-status"),
                json!({ "contractId": c, "milestoneIndex": idx.to_string(), "newStatus": COMPLETED_STATUS, "serviceProvider": seller }),
            )
        }
        Action::ApproveMilestone => {
            let c = need_contract()?;
            expected.functions = vec!["approve_milestone"];
            expected.args = vec![Arg::Int(i128::from(idx)), Arg::Address(buyer.clone())];
            (
                format!("/escrow/{kind}/approve-milestone"),
                json!({ "contractId": c, "milestoneIndex": idx.to_string(), "approver": buyer }),
            )
        }
        Action::ReleaseFunds => {
            let c = need_contract()?;
            expected.functions = vec!["release_funds"];
            expected.args = vec![Arg::Address(buyer.clone())];
            (
                "/escrow/single-release/release-funds".into(),
                json!({ "contractId": c, "releaseSigner": buyer }),
            )
        }
        Action::DisputeEscrow => {
            let c = need_contract()?;
            expected.functions = vec!["dispute_escrow"];
            expected.args = vec![Arg::Address(signer.clone())];
            (
                "/escrow/single-release/dispute-escrow".into(),
                json!({ "contractId": c, "signer": signer }),
            )
        }
        Action::ResolveDispute => {
            let c = need_contract()?;
            let balance = escrow_balance(ec, &c).await?;
            let d = distributions(&step.shares, balance);
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
            expected.functions = vec!["resolve_dispute"];
            expected.args = vec![
                Arg::Address(platform.clone()),
                Arg::Distribution(d.iter().map(|(a, n)| (a.clone(), i128::from(*n))).collect()),
            ];
            (
                "/escrow/single-release/resolve-dispute".into(),
                json!({ "contractId": c, "disputeResolver": platform, "distributions": distribution_json(&d)? }),
            )
        }
        Action::ReleaseMilestoneFunds => {
            let c = need_contract()?;
            expected.functions = vec!["release_milestone_funds"];
            expected.args = vec![Arg::Address(buyer.clone()), Arg::Int(i128::from(idx))];
            (
                "/escrow/multi-release/release-milestone-funds".into(),
                json!({ "contractId": c, "releaseSigner": buyer, "milestoneIndex": idx.to_string() }),
            )
        }
        Action::DisputeMilestone => {
            let c = need_contract()?;
            expected.functions = vec!["dispute_milestone"];
            expected.args = vec![Arg::Address(signer.clone()), Arg::Int(i128::from(idx))];
            (
                "/escrow/multi-release/dispute-milestone".into(),
                json!({ "contractId": c, "signer": signer, "milestoneIndex": idx.to_string() }),
            )
        }
        Action::ResolveMilestoneDispute => {
            let c = need_contract()?;
            let amount = order
                .milestones
                .get(usize::try_from(idx).unwrap_or(usize::MAX))
                .map(|m| m.amount.base_units())
                .ok_or_else(|| Error::internal("milestone index out of range"))?;
            let d = distributions(&step.shares, amount);
            expected.functions = vec!["resolve_milestone_dispute"];
            expected.args = vec![
                Arg::Address(platform.clone()),
                Arg::Int(i128::from(idx)),
                Arg::Distribution(d.iter().map(|(a, n)| (a.clone(), i128::from(*n))).collect()),
            ];
            (
                "/escrow/multi-release/resolve-milestone-dispute".into(),
                json!({ "contractId": c, "disputeResolver": platform, "milestoneIndex": idx.to_string(), "distributions": distribution_json(&d)? }),
            )
        }
    };
    Ok(Call {
        path,
        body,
        expected,
    })
}

//! The plan of steps per operation: pure functions of the order and its escrow.

use super::*;

/// Order milestones that are not released or resolved, with their on-chain index.
pub(super) fn open_milestones(order: &Order) -> Vec<(u32, &orders::Milestone)> {
    order
        .milestones
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.status.is_paid_out())
        .map(|(i, m)| (u32::try_from(i).unwrap_or(u32::MAX), m))
        .collect()
}

/// Plans the on-chain dispute of an order (`openedBy` BUYER or SELLER signs).
pub fn dispute_steps(order: &Order, escrow: &Escrow, opened_by: Party) -> Vec<Step> {
    if escrow.kind == EscrowKind::MultiRelease {
        open_milestones(order)
            .into_iter()
            .filter(|(_, m)| m.status != MilestoneStatus::Disputed)
            .map(|(i, _)| Step::new(Action::DisputeMilestone, opened_by).at(i))
            .collect()
    } else {
        vec![Step::new(Action::DisputeEscrow, opened_by)]
    }
}

/// Plans a dispute resolution: `release` to the seller and the rest to the buyer
/// (gross, base units). Single-release: one `resolve_dispute` over the balance;
/// multi-release: per disputed milestone, the seller's share allocated to milestones
/// in order.
pub fn resolution_steps(order: &Order, escrow: &Escrow, release: i64, refund: i64) -> Vec<Step> {
    let share = |party, amount: i64| Share {
        party,
        amount: Some(amount),
    };
    if escrow.kind != EscrowKind::MultiRelease {
        let shares = match (release, refund) {
            (0, _) => vec![Share {
                party: Party::Buyer,
                amount: None,
            }],
            (_, 0) => vec![Share {
                party: Party::Seller,
                amount: None,
            }],
            (r, f) => vec![share(Party::Seller, r), share(Party::Buyer, f)],
        };
        return vec![Step::new(Action::ResolveDispute, Party::Platform).shares(shares)];
    }
    let mut left = release;
    let mut steps = Vec::new();
    for (i, m) in open_milestones(order) {
        let amount = m.amount.base_units();
        let to_seller = left.min(amount).max(0);
        left -= to_seller;
        let mut shares = Vec::new();
        if to_seller > 0 {
            shares.push(share(Party::Seller, to_seller));
        }
        if amount - to_seller > 0 {
            shares.push(share(Party::Buyer, amount - to_seller));
        }
        steps.push(
            Step::new(Action::ResolveMilestoneDispute, Party::Platform)
                .at(i)
                .shares(shares),
        );
    }
    steps
}

/// Plans a release: single-release, complete (seller) → approve (buyer) → release
/// (buyer); multi-release, the same per open milestone, skipping what is already done.
pub fn release_steps(order: &Order, escrow: &Escrow) -> Vec<Step> {
    if escrow.kind == EscrowKind::MultiRelease {
        let mut s = Vec::new();
        for (i, m) in open_milestones(order) {
            if m.status == MilestoneStatus::Pending {
                s.push(Step::new(Action::ChangeMilestoneStatus, Party::Seller).at(i));
            }
            if matches!(
                m.status,
                MilestoneStatus::Pending | MilestoneStatus::Completed
            ) {
                s.push(Step::new(Action::ApproveMilestone, Party::Buyer).at(i));
            }
            s.push(Step::new(Action::ReleaseMilestoneFunds, Party::Buyer).at(i));
        }
        s
    } else {
        vec![
            Step::new(Action::ChangeMilestoneStatus, Party::Seller).at(0),
            Step::new(Action::ApproveMilestone, Party::Buyer).at(0),
            Step::new(Action::ReleaseFunds, Party::Buyer),
        ]
    }
}

/// Plans a refund: dispute (buyer) and resolve everything to the buyer (platform); per
/// open milestone for multi-release escrows (an already disputed one is only resolved).
pub fn refund_steps(order: &Order, escrow: &Escrow) -> Vec<Step> {
    let all_buyer = vec![Share {
        party: Party::Buyer,
        amount: None,
    }];
    if escrow.kind == EscrowKind::MultiRelease {
        let mut s = Vec::new();
        for (i, m) in open_milestones(order) {
            if m.status != MilestoneStatus::Disputed {
                s.push(Step::new(Action::DisputeMilestone, Party::Buyer).at(i));
            }
            s.push(
                Step::new(Action::ResolveMilestoneDispute, Party::Platform)
                    .at(i)
                    .shares(all_buyer.clone()),
            );
        }
        s
    } else {
        vec![
            Step::new(Action::DisputeEscrow, Party::Buyer),
            Step::new(Action::ResolveDispute, Party::Platform).shares(all_buyer),
        ]
    }
}

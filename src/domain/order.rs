//! The order state machine (docs/ARCHITECTURE.md, State machines):
//!
//! `ORDER_CREATED → FUNDS_RESERVED → ESCROW_CREATING → ESCROW_FUNDING → IN_PROGRESS →
//! {RELEASE_REQUESTED → RELEASED → CLOSED | REFUND_REQUESTED → REFUNDED → CLOSED |
//! DISPUTED → (resolution) → CLOSED}`, and `CLOSED` by cancel before funding
//! (`ORDER_CREATED`, `FUNDS_RESERVED` or an unfunded `ESCROW_FUNDING`).
//! A failed escrow deploy or funding compensates back to `FUNDS_RESERVED`.

use crate::error::{Error, ErrorCode, Result};

text_enum! {
    /// Where an order is.
    pub enum OrderStatus {
        OrderCreated = "ORDER_CREATED",
        FundsReserved = "FUNDS_RESERVED",
        EscrowCreating = "ESCROW_CREATING",
        EscrowFunding = "ESCROW_FUNDING",
        InProgress = "IN_PROGRESS",
        ReleaseRequested = "RELEASE_REQUESTED",
        Released = "RELEASED",
        RefundRequested = "REFUND_REQUESTED",
        Refunded = "REFUNDED",
        Disputed = "DISPUTED",
        Closed = "CLOSED",
    }
}

use OrderStatus::*;

impl OrderStatus {
    /// The states reachable from this one.
    pub fn next(self) -> &'static [OrderStatus] {
        match self {
            OrderCreated => &[FundsReserved, Closed],
            FundsReserved => &[EscrowCreating, Closed],
            EscrowCreating => &[EscrowFunding, FundsReserved],
            EscrowFunding => &[InProgress, FundsReserved, Closed],
            InProgress => &[ReleaseRequested, RefundRequested, Disputed],
            ReleaseRequested => &[Released, InProgress],
            RefundRequested => &[Refunded, InProgress],
            Disputed => &[
                ReleaseRequested,
                RefundRequested,
                Released,
                Refunded,
                Closed,
            ],
            Released | Refunded => &[Closed],
            Closed => &[],
        }
    }
}

text_enum! {
    /// The automatic release clock of an order (`autoReleaseAfter` / `autoReleaseAt`,
    /// [`crate::services::lifecycle`]).
    ///
    /// `PENDING` (waiting for the seller's completion) `→ SCHEDULED` (the clock runs)
    /// `→ RELEASING` (the worker started the release saga) `→ RELEASED | FAILED`; a
    /// dispute stops the clock (`PENDING | SCHEDULED → STOPPED`), a manual release or
    /// refund cancels it (`→ CANCELED`).
    pub enum AutoReleaseStatus {
        Pending = "PENDING",
        Scheduled = "SCHEDULED",
        Releasing = "RELEASING",
        Released = "RELEASED",
        /// The release saga was compensated: a person releases by hand.
        Failed = "FAILED",
        Stopped = "STOPPED",
        Canceled = "CANCELED",
    }
}

impl AutoReleaseStatus {
    /// States in which the clock may still fire.
    pub const ARMED: [AutoReleaseStatus; 2] =
        [AutoReleaseStatus::Pending, AutoReleaseStatus::Scheduled];

    /// The states reachable from this one.
    pub fn next(self) -> &'static [AutoReleaseStatus] {
        use AutoReleaseStatus as A;
        match self {
            A::Pending => &[A::Scheduled, A::Stopped, A::Canceled],
            A::Scheduled => &[A::Releasing, A::Stopped, A::Canceled],
            A::Releasing => &[A::Released, A::Failed],
            A::Released | A::Failed | A::Stopped | A::Canceled => &[],
        }
    }
}

text_enum! {
    /// How a closed order ended (`outcome` of `order.closed`).
    pub enum CloseOutcome {
        Released = "RELEASED",
        Refunded = "REFUNDED",
        /// A dispute resolved with a split.
        Split = "SPLIT",
        /// Cancelled before its escrow was funded.
        Canceled = "CANCELED",
    }
}

/// Checks `from → to`; 409 `INVALID_STATE_TRANSITION` with `currentState`,
/// `targetState` and `allowedStates` (the states from which `to` may be reached by this
/// operation: `sources`).
pub fn transition(from: OrderStatus, to: OrderStatus, sources: &[OrderStatus]) -> Result<()> {
    if sources.contains(&from) && from.next().contains(&to) {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::InvalidStateTransition,
        format!(
            "Order is {} and cannot move to {}",
            from.as_str(),
            to.as_str()
        ),
    )
    .with_details(serde_json::json!({
        "currentState": from.as_str(),
        "targetState": to.as_str(),
        "allowedStates": sources.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_round_trips_and_closed_has_no_successor() {
        for &s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
            assert!(!s.next().contains(&s), "{s:?} loops");
        }
        assert!(Closed.next().is_empty());
    }

    #[test]
    fn cancel_only_before_escrow() {
        let sources = [OrderCreated, FundsReserved];
        assert!(transition(OrderCreated, Closed, &sources).is_ok());
        assert!(transition(FundsReserved, Closed, &sources).is_ok());
        let err = transition(InProgress, Closed, &sources).unwrap_err();
        assert_eq!(err.code.as_str(), "INVALID_STATE_TRANSITION");
        let d = err.details.unwrap();
        assert_eq!(d["currentState"], "IN_PROGRESS");
        assert_eq!(
            d["allowedStates"],
            serde_json::json!(["ORDER_CREATED", "FUNDS_RESERVED"])
        );
    }

    #[test]
    fn every_state_reaches_closed() {
        for &s in OrderStatus::ALL {
            let mut seen = vec![s];
            let mut frontier = vec![s];
            while let Some(x) = frontier.pop() {
                for n in x.next() {
                    if !seen.contains(n) {
                        seen.push(*n);
                        frontier.push(*n);
                    }
                }
            }
            assert!(seen.contains(&Closed), "{s:?} cannot reach CLOSED");
        }
    }
}

//! Webhooks: outbound endpoints and deliveries ([`crate::services::webhooks`]) and
//! inbound provider messages ([`crate::services::inbox`]).
//!
//! Endpoint: `ACTIVE → DISABLED` (failing continuously for `OFFERHUB_WEBHOOK_DISABLE_AFTER_HOURS`)
//! and `ACTIVE | DISABLED → DELETED`. Delivery: `PENDING → SUCCEEDED | FAILED` (retries
//! stay `PENDING`; a replay makes a new delivery). Inbound: `RECEIVED → PROCESSED |
//! IGNORED | FAILED`, and back to `RECEIVED` on an operator's replay.

text_enum! {
    /// Whether an endpoint receives deliveries.
    pub enum EndpointStatus {
        Active = "ACTIVE",
        /// Failing for too long: deliveries wait until it is re-enabled.
        Disabled = "DISABLED",
        Deleted = "DELETED",
    }
}

text_enum! {
    /// Where a delivery of one event to one endpoint is.
    pub enum DeliveryStatus {
        /// Waiting for its (next) attempt.
        Pending = "PENDING",
        Succeeded = "SUCCEEDED",
        /// Every attempt of the retry schedule failed (or its endpoint was deleted).
        Failed = "FAILED",
    }
}

text_enum! {
    /// Where an inbound provider message (Airtm's webhooks) is.
    pub enum InboundStatus {
        /// Stored, to process.
        Received = "RECEIVED",
        Processed = "PROCESSED",
        /// Not ours, or an event type we do not act on.
        Ignored = "IGNORED",
        /// Processing failed `MAX_ATTEMPTS` times.
        Failed = "FAILED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip() {
        for s in EndpointStatus::ALL {
            assert_eq!(EndpointStatus::parse(s.as_str()), Some(*s));
        }
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(*s));
        }
        for s in InboundStatus::ALL {
            assert_eq!(InboundStatus::parse(s.as_str()), Some(*s));
        }
    }
}

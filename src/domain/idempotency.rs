//! Idempotency keys ([`crate::services::idempotency`]):
//! `IN_PROGRESS → COMMITTED → COMPLETED`. `COMMITTED` is set inside the request's own
//! database transaction (so a crash after commit and before the response is stored
//! still replays as "done"); `COMPLETED` stores the response for replays.

text_enum! {
    /// Where a request under an `Idempotency-Key` is.
    pub enum KeyState {
        /// Claimed by a request still running.
        InProgress = "IN_PROGRESS",
        /// The request's effects committed; its response not stored yet.
        Committed = "COMMITTED",
        /// The response is stored and replayed to repeats.
        Completed = "COMPLETED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip() {
        for s in KeyState::ALL {
            assert_eq!(KeyState::parse(s.as_str()), Some(*s));
        }
    }
}

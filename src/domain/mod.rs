//! State machines as pure functions: which transitions exist, nothing about storage.
//! The store applies a transition as a compare-and-set on the current status.

pub mod order;

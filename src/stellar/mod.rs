//! Stellar core: keys and strkeys ([`keys`]), the network a deployment is bound to
//! ([`network`]), transaction envelopes built and signed with `stellar-xdr` ([`tx`]),
//! and the Horizon client ([`horizon`]). See docs/PROVIDERS.md, Stellar and Horizon.

pub mod horizon;
pub mod keys;
pub mod network;
pub mod tx;

//! OfferHub core: money, identifiers, configuration, storage, the ledger and the
//! services that the daemon's HTTP handlers and the operator CLI both call.
//! No HTTP and no CLI code lives here.

pub mod airtm;
pub mod audit;
pub mod budget;
pub mod clock;
pub mod config;
pub mod context;
pub mod domain;
pub mod error;
pub mod events;
#[cfg(feature = "failpoints")]
pub mod failpoints;
pub mod ids;
pub mod keystore;
pub mod ledger;
pub mod metrics;
pub mod money;
pub mod outbound;
pub mod pagination;
pub mod retry;
pub mod sequencer;
pub mod services;
pub mod stellar;
pub mod store;
pub mod trustless;
pub mod vault;

pub use error::{Error, ErrorCode, Result};

/// The OfferHub version (from Cargo).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

//! The HTTP routes under `/api/v1`, one file per resource (the OpenAPI tags): each
//! file holds its handlers with their `#[utoipa::path]`, request bodies and query
//! strings. The router table is [`crate::ROUTES`] (`lib.rs`), the document
//! [`crate::openapi`]. Helpers shared by several resources live here.

pub mod audit;
pub mod disputes;
pub mod escrow;
pub mod events;
pub mod keys;
pub mod orders;
pub mod sagas;
pub mod system;
pub mod topups;
pub mod users;
pub mod wallets;
pub mod webhooks;
pub mod withdrawals;

use std::sync::Arc;

use offerhub::error::{Error, ErrorCode};
use offerhub::ids::{self, IdKind};
use offerhub::services::airtm::AirtmContext;
use offerhub::services::escrow::EscrowContext;
use serde::Deserialize;

use crate::state::AppState;

/// The Airtm context, or 422 `FEATURE_NOT_ENABLED` naming the setting.
fn airtm_ctx(state: &AppState) -> Result<Arc<AirtmContext>, Error> {
    state.airtm.clone().ok_or_else(|| {
        Error::feature_not_enabled(
            "Airtm is not enabled on this deployment (set PAYMENT_PROVIDER=airtm)",
            "PAYMENT_PROVIDER=airtm",
        )
    })
}

/// The escrow context, or 422 `FEATURE_NOT_ENABLED` naming the setting.
fn escrow_ctx(state: &AppState) -> Result<Arc<EscrowContext>, Error> {
    state.escrow.clone().ok_or_else(|| {
        Error::feature_not_enabled(
            "Escrow needs crypto mode with a Stellar network and Trustless Work configured",
            "TRUSTLESS_API_KEY",
        )
    })
}

/// 404 with `code` for a path id that is not shaped like an id of `kind` (nothing is
/// looked up).
fn known_id(kind: IdKind, code: ErrorCode, noun: &str, id: &str) -> Result<(), Error> {
    if ids::is_valid(kind, id) {
        Ok(())
    } else {
        Err(Error::new(code, format!("{noun} {id} does not exist")))
    }
}

/// The body of a POST that takes no fields: empty or `{}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

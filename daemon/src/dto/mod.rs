//! The API's resources: what the routes answer, as JSON (`Serialize`) and as OpenAPI
//! schemas (`utoipa::ToSchema`), one module per resource. Each is built from the core's
//! type (`From<offerhub::…>`), which stays free of API concerns: the core has no
//! `utoipa` dependency and its rows and domain objects may change without changing the
//! API, while a change of the API is a change here.
//!
//! The JSON is the core's own shape, field for field: camelCase names, `null` for an
//! absent optional value unless the field says otherwise, amounts as decimal strings
//! ([`offerhub::money::Amount`]'s `Serialize`, described by [`Amount`]), statuses and
//! kinds as their stored texts (the core's `text_enum!` enums, described by the schemas
//! of [`enums`]).
//!
//! Every response body passes [`Body`]: a route cannot hand a core type to
//! [`crate::api::respond`] by mistake.

pub mod audit;
pub mod disputes;
pub mod enums;
pub mod escrow;
pub mod events;
pub mod keys;
pub mod ledger;
pub mod orders;
pub mod sagas;
pub mod system;
pub mod topups;
pub mod users;
pub mod wallets;
pub mod webhooks;
pub mod withdrawals;

use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{RefOr, schema};

/// A type the API answers with: the resources of this module, lists and optional ones
/// of them, and `serde_json::Value` for bodies assembled by hand.
pub trait Body: Serialize {}

impl Body for serde_json::Value {}
impl<T: Body> Body for Vec<T> {}
impl<T: Body> Body for Option<T> {}

/// Declares each listed type a [`Body`].
macro_rules! bodies {
    ($($t:ty),+ $(,)?) => {
        $(impl $crate::dto::Body for $t {})+
    };
}
pub(crate) use bodies;

/// The schema of [`offerhub::money::Amount`] (a field of that type says
/// `#[schema(value_type = dto::Amount)]`): a decimal string of USDC, never a JSON number.
pub struct Amount;

impl utoipa::PartialSchema for Amount {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^-?[0-9]+(\.[0-9]{1,7})?$"))
            .description(Some(
                "Decimal string of USDC, up to 7 decimals (stored as integer base units of 10^-7)",
            ))
            .examples(["100.00"])
            .into()
    }
}

impl utoipa::ToSchema for Amount {}

/// A string enum of `texts`, described by `doc` (a `text_enum!`'s `DOC`: one line per
/// doc-comment line, each trimmed; no description when empty).
pub fn text_enum(texts: impl IntoIterator<Item = &'static str>, doc: &str) -> RefOr<Schema> {
    let description = doc.lines().map(str::trim).collect::<Vec<_>>().join("\n");
    let description = description.trim();
    schema::ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(texts))
        .description(Some(description.to_string()).filter(|d| !d.is_empty()))
        .into()
}

#[cfg(test)]
mod tests {
    use offerhub::money::Amount;

    /// Amounts keep the core's decimal-string form.
    #[test]
    fn amounts_are_decimal_strings() {
        let a = Amount::parse("12.5").unwrap();
        assert_eq!(
            serde_json::to_value(a).unwrap(),
            serde_json::json!(a.to_string())
        );
        assert!(serde_json::to_value(a).unwrap().is_string());
    }
}

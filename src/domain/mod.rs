//! State machines as pure functions: which states and transitions exist, nothing about
//! storage. The store applies a transition as a compare-and-set on the current status.
//!
//! Every stored status (and kind) is an enum declared with `text_enum!`: stored as TEXT
//! through one `as_str`/`parse` pair (the `sqlx` encoding and decoding use them, so a row
//! written with an unknown value fails to decode instead of being misread), serialised by
//! `serde` as the same text, compared by value. No status string literal lives outside
//! this module; SQL binds `Status::X` as a parameter. Codes that come from a network and
//! must keep values we do not know are open enums with an `Other(text)` variant:
//! Stellar's transaction result codes here ([`transaction::TxResultCode`]); a provider's
//! own statuses next to its client (`airtm::PayinStatus`, `airtm::PayoutStatus`,
//! `airtm::AirtmUserStatus`); the daemon's health statuses in its DTOs.
//!
//! | enum | table.column | module |
//! |------|--------------|--------|
//! | [`order::OrderStatus`] | `orders.status` | [`order`] |
//! | [`order::AutoReleaseStatus`] | `orders.auto_release_status` | [`order`] |
//! | [`saga::SagaStatus`], [`saga::SagaKind`] | `sagas.status`, `sagas.kind` | [`saga`] |
//! | [`escrow::EscrowStatus`], [`escrow::EscrowKind`], [`escrow::MilestoneStatus`] | `escrows`, `milestones` | [`escrow`] |
//! | [`dispute::DisputeStatus`], [`dispute::Decision`] | `disputes` | [`dispute`] |
//! | [`withdrawal::WithdrawalStatus`] | `withdrawals.status` | [`withdrawal`] |
//! | [`topup::TopUpStatus`] | `topups.status` | [`topup`] |
//! | [`wallet::WalletStatus`], [`wallet::WalletKind`] | `wallets` | [`wallet`] |
//! | [`account::UserStatus`], [`account::HoldStatus`] | `users.status`, `holds.status` | [`account`] |
//! | [`webhook::EndpointStatus`], [`webhook::DeliveryStatus`], [`webhook::InboundStatus`] | `webhook_endpoints`, `webhook_deliveries`, `inbound_webhooks` | [`webhook`] |
//! | [`idempotency::KeyState`] | `idempotency_keys.state` | [`idempotency`] |
//! | [`reconcile::CheckStatus`] | (reports, `reconciliation_runs`) | [`reconcile`] |
//! | [`transaction::TxResultCode`] (not stored; open: unknown codes kept) | Horizon's answers | [`transaction`] |

/// Declares a `Copy` enum whose variants are stored and serialised as fixed texts.
///
/// Generates: `ALL` (declaration order), `as_str`, `parse` (exact text, `None` otherwise),
/// `DOC` (the enum's documentation, which the daemon's OpenAPI schema of the enum is
/// described with), `Display`, `serde` (the same texts; an unknown text is a
/// deserialisation error), and `sqlx` `Type`/`Encode`/`Decode` for the `Any` driver
/// (TEXT; decoding an unknown text is an error naming the enum).
/// Only doc comments are accepted as attributes (of the enum and of its variants).
macro_rules! text_enum {
    (
        $(#[doc = $doc:literal])*
        $vis:vis enum $name:ident {
            $( $(#[doc = $vdoc:literal])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        $vis enum $name {
            $( $(#[doc = $vdoc])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The enum's documentation, one line per doc-comment line (each with the
            /// leading space rustdoc keeps): what the API describes the enum with.
            pub const DOC: &'static str = concat!($($doc, "\n",)* "");

            /// The stored and serialised text.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text ),+
                }
            }

            /// The value whose text is exactly `s`.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl sqlx::Type<sqlx::Any> for $name {
            fn type_info() -> sqlx::any::AnyTypeInfo {
                <str as sqlx::Type<sqlx::Any>>::type_info()
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::Any> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer,
            ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'q, sqlx::Any>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Any> for $name {
            fn decode(
                value: <sqlx::Any as sqlx::Database>::ValueRef<'r>,
            ) -> std::result::Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<'r, sqlx::Any>>::decode(value)?;
                $name::parse(text).ok_or_else(|| {
                    format!(concat!("unknown ", stringify!($name), " {:?}"), text).into()
                })
            }
        }
    };
}

pub mod account;
pub mod dispute;
pub mod escrow;
pub mod idempotency;
pub mod order;
pub mod reconcile;
pub mod saga;
pub mod topup;
pub mod transaction;
pub mod wallet;
pub mod webhook;
pub mod withdrawal;

//! The schemas of the core's statuses and kinds (`text_enum!` enums in
//! `offerhub::domain`): each a string enum of the enum's `ALL` texts, described by its
//! documentation (`DOC`), published under the enum's name. Resources keep the core enum
//! as the field's type (its `Serialize` writes the same texts) and point the schema
//! here: `#[schema(value_type = enums::OrderStatus)]`.

/// For each `Name => core::path::Enum`: a schema type `Name` describing `Enum`.
macro_rules! text_enum_schemas {
    ($($name:ident => $core:path),+ $(,)?) => {$(
        #[doc = concat!("The schema of [`", stringify!($core), "`].")]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                super::text_enum(
                    <$core>::ALL.iter().map(|v| v.as_str()),
                    <$core>::DOC,
                )
            }
        }

        impl utoipa::ToSchema for $name {}
    )+

        #[cfg(test)]
        mod tests {
            /// Every schema lists exactly the texts the core serialises.
            #[test]
            fn schemas_list_the_serialised_texts() {
                $(
                    let schema = serde_json::to_value(
                        <super::$name as utoipa::PartialSchema>::schema(),
                    )
                    .unwrap();
                    let texts: Vec<serde_json::Value> = <$core>::ALL
                        .iter()
                        .map(|v| serde_json::to_value(v).unwrap())
                        .collect();
                    assert_eq!(schema["enum"], serde_json::Value::Array(texts), stringify!($name));
                    assert_eq!(
                        <super::$name as utoipa::ToSchema>::name(),
                        stringify!($name),
                    );
                )+
            }
        }
    };
}

text_enum_schemas! {
    AutoReleaseStatus => offerhub::domain::order::AutoReleaseStatus,
    Decision => offerhub::domain::dispute::Decision,
    DeliveryStatus => offerhub::domain::webhook::DeliveryStatus,
    DisputeStatus => offerhub::domain::dispute::DisputeStatus,
    EndpointStatus => offerhub::domain::webhook::EndpointStatus,
    EscrowKind => offerhub::domain::escrow::EscrowKind,
    EscrowStatus => offerhub::domain::escrow::EscrowStatus,
    MilestoneStatus => offerhub::domain::escrow::MilestoneStatus,
    OrderStatus => offerhub::domain::order::OrderStatus,
    SagaKind => offerhub::domain::saga::SagaKind,
    SagaStatus => offerhub::domain::saga::SagaStatus,
    TopUpStatus => offerhub::domain::topup::TopUpStatus,
    UserStatus => offerhub::domain::account::UserStatus,
    WalletKind => offerhub::domain::wallet::WalletKind,
    WalletStatus => offerhub::domain::wallet::WalletStatus,
    WithdrawalStatus => offerhub::domain::withdrawal::WithdrawalStatus,
}

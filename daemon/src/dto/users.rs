//! Users: [`User`], [`AirtmLink`], [`UserType`].

use offerhub::services::users;
use serde::Serialize;
use utoipa::ToSchema;

use super::enums;

/// Role of a user in orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserType {
    Buyer,
    Seller,
    Both,
}

impl From<users::UserType> for UserType {
    fn from(t: users::UserType) -> Self {
        match t {
            users::UserType::Buyer => UserType::Buyer,
            users::UserType::Seller => UserType::Seller,
            users::UserType::Both => UserType::Both,
        }
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub external_user_id: String,
    pub email: Option<String>,
    #[serde(rename = "type")]
    pub user_type: UserType,
    #[schema(value_type = enums::UserStatus)]
    pub status: users::UserStatus,
    /// The linked Airtm account (`POST /users/{id}/airtm/link`), if any.
    pub airtm: Option<AirtmLink>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<users::User> for User {
    fn from(u: users::User) -> Self {
        User {
            id: u.id,
            external_user_id: u.external_user_id,
            email: u.email,
            user_type: u.user_type.into(),
            status: u.status,
            airtm: u.airtm.map(AirtmLink::from),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// A user's Airtm account: Airtm's user id (uuid) and the email payouts go to.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AirtmLink {
    pub airtm_user_id: String,
    pub email: String,
    pub linked_at: String,
}

impl From<users::AirtmLink> for AirtmLink {
    fn from(l: users::AirtmLink) -> Self {
        AirtmLink {
            airtm_user_id: l.airtm_user_id,
            email: l.email,
            linked_at: l.linked_at,
        }
    }
}

super::bodies!(User);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_types_serialise_as_the_core_does() {
        for t in [
            users::UserType::Buyer,
            users::UserType::Seller,
            users::UserType::Both,
        ] {
            assert_eq!(
                serde_json::to_value(UserType::from(t)).unwrap(),
                serde_json::to_value(t).unwrap()
            );
        }
    }
}

//! API keys: [`ApiKey`], [`CreatedApiKey`], [`Scope`], and [`Me`], the calling key.

use offerhub::services::keys;
use serde::Serialize;
use utoipa::ToSchema;

/// What a key may do: `read` (GET), `write` (mutations), `support` (keys, audit,
/// disputes, adjustments). Scopes are independent; a key holds the ones it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Support,
}

impl From<keys::Scope> for Scope {
    fn from(s: keys::Scope) -> Self {
        match s {
            keys::Scope::Read => Scope::Read,
            keys::Scope::Write => Scope::Write,
            keys::Scope::Support => Scope::Support,
        }
    }
}

/// A stored API key (never the secret).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// The first characters of the token, to recognise it (`ohk_live_AbCd…`).
    pub key_hint: String,
    pub created_at: String,
    pub created_by: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<keys::ApiKey> for ApiKey {
    fn from(k: keys::ApiKey) -> Self {
        ApiKey {
            id: k.id,
            name: k.name,
            scopes: k.scopes.into_iter().map(Scope::from).collect(),
            key_hint: k.key_hint,
            created_at: k.created_at,
            created_by: k.created_by,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A newly created API key: the stored key plus `key`, the secret, shown only here.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub stored: ApiKey,
    /// `ohk_live_…` — store it now; it is never shown again.
    pub key: String,
}

impl From<keys::CreatedKey> for CreatedApiKey {
    fn from(c: keys::CreatedKey) -> Self {
        CreatedApiKey {
            key: c.token.expose_secret().to_string(),
            stored: c.key.into(),
        }
    }
}

/// `GET /auth/me`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    pub api_key_id: String,
    pub api_key_name: String,
    #[schema(value_type = Vec<String>, example = json!(["read", "write"]))]
    pub scopes: Vec<Scope>,
}

impl From<&keys::Principal> for Me {
    /// The key a request authenticated with: its id and name (`master` for the master
    /// key) and the scopes it holds (the master key holds them all).
    fn from(p: &keys::Principal) -> Self {
        Me {
            api_key_id: p.id().to_string(),
            api_key_name: p.name().to_string(),
            scopes: p.scopes().into_iter().map(Scope::from).collect(),
        }
    }
}

super::bodies!(ApiKey, CreatedApiKey, Me);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_serialise_as_the_core_does() {
        for s in keys::Scope::ALL {
            assert_eq!(
                serde_json::to_value(Scope::from(s)).unwrap(),
                serde_json::to_value(s).unwrap()
            );
        }
    }
}

//! Who is acting, and on behalf of which request. Every service call takes a
//! [`Context`] so that its audit rows name the actor, the request id and the
//! idempotency key.

use crate::audit::AuditEntry;

/// The kind of actor behind a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActorType {
    /// A request authenticated with an API key (`actor_id` = key id).
    ApiKey,
    /// A request authenticated with `OFFERHUB_MASTER_KEY` (`actor_id` = `master`).
    Master,
    /// The operator CLI (`actor_id` = `operator`).
    Operator,
    /// A background worker (`actor_id` = `system`).
    System,
}

impl ActorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::ApiKey => "api_key",
            ActorType::Master => "master",
            ActorType::Operator => "operator",
            ActorType::System => "system",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub kind: ActorType,
    pub id: String,
}

/// The actor and request a service call runs for.
#[derive(Clone, Debug)]
pub struct Context {
    pub actor: Actor,
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
    /// The idempotency record this request claimed (see `Store::begin_for`).
    pub idempotency_record: Option<String>,
}

impl Context {
    /// The operator CLI.
    pub fn operator() -> Self {
        Context {
            actor: Actor {
                kind: ActorType::Operator,
                id: "operator".into(),
            },
            request_id: None,
            idempotency_key: None,
            idempotency_record: None,
        }
    }

    /// A background worker.
    pub fn system() -> Self {
        Context {
            actor: Actor {
                kind: ActorType::System,
                id: "system".into(),
            },
            request_id: None,
            idempotency_key: None,
            idempotency_record: None,
        }
    }

    /// An audit entry by this actor for this request; add before/after states with
    /// the builder methods of [`AuditEntry`].
    pub fn audit(&self, action: &str, resource_type: &str, resource_id: &str) -> AuditEntry {
        AuditEntry {
            actor: self.actor.clone(),
            action: action.to_string(),
            resource_type: resource_type.to_string(),
            resource_id: resource_id.to_string(),
            before: None,
            after: None,
            request_id: self.request_id.clone(),
            idempotency_key: self.idempotency_key.clone(),
        }
    }
}

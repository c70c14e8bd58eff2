//! System: [`Health`] (`GET /health`) and [`HealthDetailed`] (`GET /health/detailed`)
//! with its [`Dependencies`].

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// A health status: the daemon's (`healthy`, `degraded`, `unhealthy`) or one
/// dependency's (also `unavailable`: not configured, `disabled`: not used in this mode).
/// Serialised as the lowercase text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
    Unavailable,
    Disabled,
}

/// `GET /health`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    #[schema(value_type = String, example = "healthy")]
    pub status: HealthStatus,
    pub version: &'static str,
    pub uptime_seconds: u64,
}

impl Health {
    /// A live daemon of this build ([`offerhub::VERSION`]) that started `uptime` ago
    /// (whole seconds, rounded down).
    pub fn new(uptime: Duration) -> Self {
        Health {
            status: HealthStatus::Healthy,
            version: offerhub::VERSION,
            uptime_seconds: uptime.as_secs(),
        }
    }
}

/// `GET /health/detailed`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HealthDetailed {
    /// `healthy`, `degraded` (Horizon or Trustless Work not `healthy`, or Airtm
    /// `degraded`) or `unhealthy` (503: the database is down).
    #[schema(value_type = String)]
    pub status: HealthStatus,
    pub version: &'static str,
    /// `database`, `stellarHorizon`, `trustlessWork`, `airtm`: each `{status, …}`.
    #[schema(value_type = Value)]
    pub dependencies: Dependencies,
}

/// What one probe found: its `status` and, beside it in the same object, what was
/// probed (`latencyMs` in milliseconds, `url`, `error`, `detail`, …).
#[derive(Clone, Debug, Serialize)]
pub struct Probe {
    pub status: HealthStatus,
    #[serde(flatten)]
    pub found: Map<String, Value>,
}

impl Probe {
    /// A probe's result: `status` and the fields of `found`, a JSON object without a
    /// `status` field (anything else is a bug: debug builds assert, release builds add no
    /// field).
    pub fn new(status: HealthStatus, found: Value) -> Probe {
        debug_assert!(
            found.is_object() && found.get("status").is_none(),
            "{found}"
        );
        let found = match found {
            Value::Object(fields) => fields,
            _ => Map::new(),
        };
        Probe { status, found }
    }
}

/// What `GET /health/detailed` found of each dependency.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependencies {
    /// `{status, backend, latencyMs | error}`.
    pub database: Probe,
    /// `{status, network, url?, networkPassphrase?, latestLedger?, latencyMs? | error | detail}`.
    pub stellar_horizon: Probe,
    /// `{status, detail}` (configured or not; never probed).
    pub trustless_work: Probe,
    /// `{status, detail}`, or in Airtm mode `{status, webhookIntake, treasury}`.
    pub airtm: Probe,
}

impl HealthDetailed {
    /// The summary of `dependencies`: `unhealthy` when the database is not `healthy`,
    /// `degraded` when Horizon or Trustless Work is not `healthy` or Airtm is
    /// `degraded`, else `healthy`.
    pub fn new(dependencies: Dependencies) -> Self {
        let providers_ok = dependencies.stellar_horizon.status == HealthStatus::Healthy
            && dependencies.trustless_work.status == HealthStatus::Healthy
            && dependencies.airtm.status != HealthStatus::Degraded;
        let status = if !Self::database_up(&dependencies) {
            HealthStatus::Unhealthy
        } else if !providers_ok {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };
        HealthDetailed {
            status,
            version: offerhub::VERSION,
            dependencies,
        }
    }

    /// Whether the database answered (else the daemon answers 503).
    pub fn is_database_up(&self) -> bool {
        Self::database_up(&self.dependencies)
    }

    fn database_up(dependencies: &Dependencies) -> bool {
        dependencies.database.status == HealthStatus::Healthy
    }
}

super::bodies!(Health, HealthDetailed);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    use HealthStatus::{Degraded, Disabled, Healthy, Unavailable, Unhealthy};

    fn deps(
        db: HealthStatus,
        horizon: HealthStatus,
        trustless: HealthStatus,
        airtm: HealthStatus,
    ) -> Dependencies {
        let probe = |status| Probe::new(status, json!({}));
        Dependencies {
            database: probe(db),
            stellar_horizon: probe(horizon),
            trustless_work: probe(trustless),
            airtm: probe(airtm),
        }
    }

    #[test]
    fn the_summary_follows_the_database_then_the_providers() {
        let h = HealthDetailed::new(deps(Healthy, Healthy, Healthy, Disabled));
        assert_eq!((h.status, h.is_database_up()), (Healthy, true));
        let h = HealthDetailed::new(deps(Healthy, Healthy, Healthy, Degraded));
        assert_eq!(h.status, Degraded);
        let h = HealthDetailed::new(deps(Healthy, Unavailable, Healthy, Healthy));
        assert_eq!(h.status, Degraded);
        let h = HealthDetailed::new(deps(Unhealthy, Healthy, Healthy, Healthy));
        assert_eq!((h.status, h.is_database_up()), (Unhealthy, false));
        assert_eq!(
            serde_json::to_value(&h).unwrap(),
            json!({
                "status": "unhealthy",
                "version": offerhub::VERSION,
                "dependencies": {
                    "database": {"status": "unhealthy"},
                    "stellarHorizon": {"status": "healthy"},
                    "trustlessWork": {"status": "healthy"},
                    "airtm": {"status": "healthy"},
                },
            })
        );
    }

    #[test]
    fn a_probe_is_one_object_with_its_status() {
        let p = Probe::new(Healthy, json!({"latencyMs": 3, "backend": "sqlite"}));
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"status": "healthy", "latencyMs": 3, "backend": "sqlite"})
        );
    }

    #[test]
    fn health_names_its_fields_in_camel_case() {
        assert_eq!(
            serde_json::to_value(Health::new(Duration::from_millis(61_999))).unwrap(),
            json!({"status": "healthy", "version": offerhub::VERSION, "uptimeSeconds": 61})
        );
    }
}

//! System: [`Health`] (`GET /health`) and [`HealthDetailed`] (`GET /health/detailed`)
//! with its [`Dependencies`].

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// `GET /health`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    #[schema(example = "healthy")]
    pub status: &'static str,
    pub version: &'static str,
    pub uptime_seconds: u64,
}

impl Health {
    /// A live daemon of this build ([`offerhub::VERSION`]) that started `uptime` ago
    /// (whole seconds, rounded down).
    pub fn new(uptime: Duration) -> Self {
        Health {
            status: "healthy",
            version: offerhub::VERSION,
            uptime_seconds: uptime.as_secs(),
        }
    }
}

/// `GET /health/detailed`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HealthDetailed {
    /// `healthy`, `degraded` (a provider is unavailable) or `unhealthy` (503: the
    /// database is down).
    pub status: &'static str,
    pub version: &'static str,
    /// `database`, `stellarHorizon`, `trustlessWork`, `airtm`: each `{status, …}`.
    #[schema(value_type = Value)]
    pub dependencies: Dependencies,
}

/// What `GET /health/detailed` found of each dependency: objects with at least a
/// `status` text (`healthy`, `unhealthy`, `unavailable`, `degraded` or `disabled`) and
/// what was probed (`latencyMs` in milliseconds, `url`, `error`, `detail`, …).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependencies {
    /// `{status, backend, latencyMs | error}`.
    pub database: Value,
    /// `{status, network, url?, networkPassphrase?, latestLedger?, latencyMs? | error | detail}`.
    pub stellar_horizon: Value,
    /// `{status, detail}` (configured or not; never probed).
    pub trustless_work: Value,
    /// `{status, detail}`, or in Airtm mode `{status, webhookIntake, treasury}`.
    pub airtm: Value,
}

impl HealthDetailed {
    /// The summary of `dependencies`: `unhealthy` when the database is not `healthy`,
    /// `degraded` when Horizon or Trustless Work is not `healthy` or Airtm is
    /// `degraded`, else `healthy`.
    pub fn new(dependencies: Dependencies) -> Self {
        let providers_ok = dependencies.stellar_horizon["status"] == "healthy"
            && dependencies.trustless_work["status"] == "healthy"
            && dependencies.airtm["status"] != "degraded";
        let status = if !Self::database_up(&dependencies) {
            "unhealthy"
        } else if !providers_ok {
            "degraded"
        } else {
            "healthy"
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
        dependencies.database["status"] == "healthy"
    }
}

super::bodies!(Health, HealthDetailed);

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deps(db: &str, horizon: &str, trustless: &str, airtm: &str) -> Dependencies {
        Dependencies {
            database: json!({"status": db}),
            stellar_horizon: json!({"status": horizon}),
            trustless_work: json!({"status": trustless}),
            airtm: json!({"status": airtm}),
        }
    }

    #[test]
    fn the_summary_follows_the_database_then_the_providers() {
        let h = HealthDetailed::new(deps("healthy", "healthy", "healthy", "disabled"));
        assert_eq!((h.status, h.is_database_up()), ("healthy", true));
        let h = HealthDetailed::new(deps("healthy", "healthy", "healthy", "degraded"));
        assert_eq!(h.status, "degraded");
        let h = HealthDetailed::new(deps("healthy", "unavailable", "healthy", "healthy"));
        assert_eq!(h.status, "degraded");
        let h = HealthDetailed::new(deps("unhealthy", "healthy", "healthy", "healthy"));
        assert_eq!((h.status, h.is_database_up()), ("unhealthy", false));
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
    fn health_names_its_fields_in_camel_case() {
        assert_eq!(
            serde_json::to_value(Health::new(Duration::from_millis(61_999))).unwrap(),
            json!({"status": "healthy", "version": offerhub::VERSION, "uptimeSeconds": 61})
        );
    }
}

//! `reliability:` — how the frontend copes with failing and overloaded workers: the
//! upstream client and its timeouts, retries and their budget, passive and active health,
//! admission and flow control, stream migration.

use serde::{Deserialize, Serialize};
use switchyard_runtime::client::ClientConfig;
use switchyard_runtime::health::{CanaryConfig, HealthConfig, ProbeConfig, RetryBudgetConfig};
use switchyard_runtime::served_models::ServedModelsConfig;

use super::{invalid, ConfigError};
use crate::admission::OverloadConfig;

/// `reliability:` in the YAML file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReliabilitySection {
    pub upstream: UpstreamConfig,
    /// Retries in flight as a share of requests in flight.
    pub retry_budget: RetryBudgetConfig,
    /// Passive health: ejection after failures, trial requests, degradation.
    pub health: HealthConfig,
    /// Active health: `GET` of each worker's health path.
    pub probe: ProbeConfig,
    /// Idle canary generations (active health beyond `GET /health`).
    pub canary: CanaryConfig,
    /// Periodic `GET /v1/models` check that each worker serves the model it claims.
    pub served_model_check: ServedModelsConfig,
    /// Admission control and load shedding.
    pub overload: OverloadConfig,
    /// Requests wait in priority bands, fairly across tenants, when every instance is full.
    pub flow_control: crate::flow::FlowConfig,
    /// Re-issue a stream that failed mid-way at most this many times (0 = off).
    pub migration_limit: u32,
}

impl ReliabilitySection {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let at = |key: &str| format!("reliability.{key}");
        self.health
            .validate()
            .map_err(|m| invalid(at("health"), m))?;
        self.canary
            .validate()
            .map_err(|m| invalid(at("canary"), m))?;
        self.probe.validate().map_err(|m| invalid(at("probe"), m))?;
        self.served_model_check
            .validate()
            .map_err(|m| invalid(at("served_model_check"), m))?;
        self.retry_budget
            .validate()
            .map_err(|m| invalid(at("retry_budget"), m))?;
        self.overload
            .validate()
            .map_err(|m| invalid(at("overload"), m))?;
        self.flow_control
            .validate()
            .map_err(|m| invalid(at("flow_control"), m))?;
        if self.upstream.first_byte_timeout_ms == 0 {
            return Err(invalid(
                "reliability.upstream.first_byte_timeout",
                "must be greater than 0",
            ));
        }
        if self.upstream.stall_timeout_ms == 0 {
            return Err(invalid(
                "reliability.upstream.stall_timeout",
                "must be greater than 0",
            ));
        }
        Ok(())
    }
}

/// How the frontend talks to workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    #[serde(flatten)]
    pub client: ClientConfig,
    /// Time allowed until the worker's response headers (and, for streams, first event).
    #[serde(
        rename = "first_byte_timeout",
        with = "switchyard_protocol::duration::millis"
    )]
    pub first_byte_timeout_ms: u64,
    /// A stream that sends nothing for this long is failed.
    #[serde(
        rename = "stall_timeout",
        with = "switchyard_protocol::duration::millis"
    )]
    pub stall_timeout_ms: u64,
    /// Extra instances tried when one fails before its first byte.
    pub max_retries: u32,
    /// Largest non-streamed worker response accepted, bytes.
    pub max_response_bytes: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            client: ClientConfig::default(),
            first_byte_timeout_ms: 120_000,
            stall_timeout_ms: 60_000,
            max_retries: 2,
            max_response_bytes: 64 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_part_is_validated_by_key() {
        assert!(ReliabilitySection::default().validate().is_ok());
        type Break = fn(&mut ReliabilitySection);
        let cases: [(&str, Break); 4] = [
            ("reliability.probe", |c| c.probe.path = "health".into()),
            ("reliability.retry_budget", |c| c.retry_budget.percent = 500),
            ("reliability.upstream.first_byte_timeout", |c| {
                c.upstream.first_byte_timeout_ms = 0
            }),
            ("reliability.upstream.stall_timeout", |c| {
                c.upstream.stall_timeout_ms = 0
            }),
        ];
        for (key, break_it) in cases {
            let mut section = ReliabilitySection::default();
            break_it(&mut section);
            let err = section.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn upstream_reads_durations_including_the_flattened_client() {
        let section: ReliabilitySection = serde_yaml::from_str(
            "upstream: { first_byte_timeout: 2m, stall_timeout: 30s, connect_timeout: 1s }\n\
             overload: { panic_policy: route-all }\n",
        )
        .unwrap();
        assert_eq!(section.upstream.first_byte_timeout_ms, 120_000);
        assert_eq!(section.upstream.stall_timeout_ms, 30_000);
        assert_eq!(section.upstream.client.connect_timeout_ms, 1_000);
        assert_eq!(
            section.overload.panic_policy,
            crate::admission::PanicPolicy::RouteAll
        );
        assert!(
            serde_yaml::from_str::<ReliabilitySection>("overload: { panic_policy: yolo }\n")
                .is_err()
        );
        assert!(serde_yaml::from_str::<ReliabilitySection>("upstream: { bogus: 1 }\n").is_err());
    }
}

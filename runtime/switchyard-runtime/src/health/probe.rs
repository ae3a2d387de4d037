//! Active health: a periodic `GET /health` against every instance.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::client::WorkerClient;
use crate::instance::InstanceSpec;
use crate::observe::Outcome;
use crate::registry::Registry;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbeConfig {
    /// Probe period, milliseconds; 0 disables active probing.
    #[serde(rename = "interval", with = "switchyard_protocol::duration::millis")]
    pub interval_ms: u64,
    /// A probe slower than this counts as failed, milliseconds.
    #[serde(rename = "timeout", with = "switchyard_protocol::duration::millis")]
    pub timeout_ms: u64,
    /// Path probed on each worker.
    pub path: String,
    /// Consecutive failed probes that mark an instance unhealthy.
    pub unhealthy_threshold: u32,
    /// Consecutive successful probes that bring it back.
    pub healthy_threshold: u32,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            interval_ms: 5_000,
            timeout_ms: 1_000,
            path: "/health".to_owned(),
            unhealthy_threshold: 1,
            healthy_threshold: 1,
        }
    }
}

impl ProbeConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.interval_ms > 0 && self.timeout_ms == 0 {
            return Err("probe.timeout must be greater than 0".into());
        }
        if !self.path.starts_with('/') {
            return Err(format!(
                "probe.path must start with `/`, got `{}`",
                self.path
            ));
        }
        if self.unhealthy_threshold == 0 || self.healthy_threshold == 0 {
            return Err(
                "probe.unhealthy_threshold and probe.healthy_threshold must be at least 1".into(),
            );
        }
        Ok(())
    }
}

/// Probes every instance of `registry` each interval until the task is aborted.
pub fn spawn_prober(
    registry: Arc<Registry>,
    client: WorkerClient,
    config: ProbeConfig,
) -> Option<JoinHandle<()>> {
    if config.interval_ms == 0 {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(config.interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let instances = registry.all();
            let probes = instances.iter().map(|instance| {
                let client = client.clone();
                let config = &config;
                let registry = &registry;
                async move {
                    let started = std::time::Instant::now();
                    let path = instance.spec.health_path.as_deref().unwrap_or(&config.path);
                    let Some((outcome, error)) =
                        probe_once(&client, &instance.spec, path, config).await
                    else {
                        // Out of local resources: no verdict about the worker either way.
                        return;
                    };
                    if let Some(error) = error {
                        // E.g. a certificate that does not verify: say why on /admin/instances.
                        instance.set_last_error(format!("health probe: {error}"));
                    }
                    let ok = outcome == Outcome::ProbeOk;
                    registry.observations.record(
                        instance.num_id,
                        outcome,
                        started.elapsed().as_secs_f32() * 1000.0,
                    );
                    if !ok && instance.health.is_routable(crate::clock::now_ns()) {
                        tracing::warn!(instance = instance.id(), "health probe failed");
                    }
                    instance.health.record_probe(
                        ok,
                        config.unhealthy_threshold,
                        config.healthy_threshold,
                    );
                }
            });
            futures_util::future::join_all(probes).await;
        }
    }))
}

async fn probe_once(
    client: &WorkerClient,
    spec: &InstanceSpec,
    path: &str,
    config: &ProbeConfig,
) -> Option<(Outcome, Option<String>)> {
    let Ok(uri) = format!("{}{}", spec.url.trim_end_matches('/'), path).parse::<Uri>() else {
        return Some((Outcome::ProbeFailed, None));
    };
    let timeout = Duration::from_millis(config.timeout_ms);
    Some(
        match tokio::time::timeout(timeout, client.get(uri, spec.auth_header())).await {
            Ok(Ok(response)) if response.status().is_success() => (Outcome::ProbeOk, None),
            Ok(Err(e)) if e.is_local_exhaustion() => {
                tracing::warn!(error = %e, "health probe not sent: local resources exhausted");
                return None;
            }
            Ok(Err(e)) => (Outcome::ProbeFailed, Some(e.to_string())),
            Ok(_) => (Outcome::ProbeFailed, None),
            Err(_) => (Outcome::ProbeTimeout, None),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        assert!(ProbeConfig::default().validate().is_ok());
        let off = ProbeConfig {
            interval_ms: 0,
            timeout_ms: 0,
            ..ProbeConfig::default()
        };
        assert!(off.validate().is_ok(), "a disabled probe needs no timeout");
        for (bad, key) in [
            (
                ProbeConfig {
                    timeout_ms: 0,
                    ..ProbeConfig::default()
                },
                "probe.timeout",
            ),
            (
                ProbeConfig {
                    path: "health".into(),
                    ..ProbeConfig::default()
                },
                "probe.path",
            ),
            (
                ProbeConfig {
                    healthy_threshold: 0,
                    ..ProbeConfig::default()
                },
                "probe.healthy_threshold",
            ),
        ] {
            let err = bad.validate().unwrap_err();
            assert!(err.contains(key), "{err}");
        }
    }
}

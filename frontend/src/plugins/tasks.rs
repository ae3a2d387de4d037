//! Background work for plugins: topology delivery, file watching, health policies.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use switchyard_plugin_host::{DecisionOutput, Observation, ObservationKind, PluginKind};
use switchyard_runtime::observe::Outcome;
use switchyard_runtime::Registry;
use tokio::task::JoinHandle;

use super::entry::{FileStamp, PluginSource};
use super::set::PluginSet;

/// Re-delivers the topology to every plugin whenever the instance set changes.
pub fn spawn_topology_watch(set: Arc<PluginSet>, registry: Arc<Registry>) -> JoinHandle<()> {
    let mut changes = registry.subscribe();
    tokio::spawn(async move {
        loop {
            let (s, r) = (Arc::clone(&set), Arc::clone(&registry));
            // on-topology may take milliseconds (Python/JS guests): keep it off the workers.
            let _ = tokio::task::spawn_blocking(move || s.refresh_topology(&r)).await;
            if changes.changed().await.is_err() {
                return;
            }
        }
    })
}

/// Polls plugin files once a second and swaps in a changed one. Polling (mtime + length) is
/// used rather than inotify so it also works on network and overlay filesystems.
pub fn spawn_file_watch(set: Arc<PluginSet>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut attempted: HashMap<String, FileStamp> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            for entry in set.table().entries.iter() {
                let PluginSource::File { path, stamp } = &entry.source else {
                    continue;
                };
                let Some(now) = FileStamp::of(path) else {
                    continue;
                };
                if now == *stamp || attempted.get(entry.name()) == Some(&now) {
                    continue;
                }
                attempted.insert(entry.name().to_owned(), now);
                let bytes = match tokio::fs::read(path).await {
                    Ok(b) => b,
                    Err(error) => {
                        tracing::warn!(plugin = entry.name(), %error, "cannot re-read plugin file");
                        continue;
                    }
                };
                let source = PluginSource::File {
                    path: path.clone(),
                    stamp: now,
                };
                match set.load(entry.config.clone(), bytes, source).await {
                    Ok(_) => {
                        tracing::info!(plugin = entry.name(), path, "plugin file changed: reloaded")
                    }
                    Err(error) => {
                        tracing::error!(plugin = entry.name(), %error, "plugin file changed but does not load; keeping the running version")
                    }
                }
            }
        }
    })
}

/// Feeds probe and request outcomes to health-policy plugins and applies their verdicts.
/// Health policies always fail open: a failing policy's verdicts are dropped, so instances
/// fall back to the built-in health checks.
pub fn spawn_health_policies(
    set: Arc<PluginSet>,
    registry: Arc<Registry>,
    every: Duration,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        let mut had_policies = false;
        loop {
            tick.tick().await;
            let table = set.table();
            let policies: Vec<_> = table
                .entries
                .iter()
                .filter(|e| {
                    e.config.kind == PluginKind::HealthPolicy
                        && e.config.mode == super::config::PluginMode::Active
                })
                .cloned()
                .collect();
            registry.observations.set_enabled(!policies.is_empty());
            if policies.is_empty() {
                if had_policies {
                    // The last policy was removed: its verdicts must not outlive it.
                    registry
                        .all()
                        .iter()
                        .for_each(|i| i.set_policy_verdict(None));
                    had_policies = false;
                }
                continue;
            }
            had_policies = true;
            let all_observations: Vec<Observation> = registry
                .observations
                .drain()
                .into_iter()
                .map(to_host)
                .collect();
            let instances = registry.all();
            for entry in policies {
                // A policy sees, and judges, only the instances of its own models.
                let scope = super::health_scope::scope(&entry.config, &instances);
                let observations: Vec<Observation> = all_observations
                    .iter()
                    .filter(|o| scope.contains(&o.id))
                    .cloned()
                    .collect();
                let outcome = entry.call(|p| p.assess(&observations));
                if let Some(recorder) = &set.recorder {
                    let output = match &outcome {
                        Ok(verdicts) => DecisionOutput::Verdicts(verdicts.clone()),
                        Err(error) => DecisionOutput::Error(error.to_string()),
                    };
                    recorder.health(entry.name(), &observations, output);
                }
                match outcome {
                    Ok(verdicts) => {
                        for v in verdicts.into_iter().filter(|v| scope.contains(&v.id)) {
                            if let Some(instance) = instances.iter().find(|i| i.num_id == v.id) {
                                instance.set_policy_verdict(Some(v.healthy));
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(plugin = entry.name(), %error, "health policy failed; its verdicts are cleared");
                        entry
                            .metrics
                            .fallbacks
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        instances
                            .iter()
                            .filter(|i| scope.contains(&i.num_id))
                            .for_each(|i| i.set_policy_verdict(None));
                    }
                }
            }
        }
    })
}

fn to_host(o: switchyard_runtime::observe::Observation) -> Observation {
    Observation {
        id: o.instance,
        kind: match o.outcome {
            Outcome::ProbeOk => ObservationKind::ProbeOk,
            Outcome::ProbeFailed => ObservationKind::ProbeFailed,
            Outcome::ProbeTimeout => ObservationKind::ProbeTimeout,
            Outcome::RequestOk => ObservationKind::RequestOk,
            Outcome::RequestFailed => ObservationKind::RequestFailed,
            Outcome::RequestTimeout => ObservationKind::RequestTimeout,
        },
        latency_ms: o.latency_ms,
        at_ns: o.at_ns,
    }
}

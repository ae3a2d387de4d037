//! Where the instance set (and, on Kubernetes, the plugin set) comes from: static workers,
//! etcd, or the operator's `WorkerPool`/`RouterPlugin` resources. Every backend sends
//! `DiscoveryEvent`s through one channel into the registry, so fail-static behaviour is the
//! registry's, not each backend's.

use std::sync::Arc;

use switchyard_plugin_host::{PluginKind, PluginLimits};
use switchyard_runtime::{DiscoveryEvent, Registry};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{DiscoveryKind, ServeConfig};
use crate::plugins::{FailurePolicy, PluginConfig, PluginMode, PluginSet, PluginSource};

/// Starts the configured discovery; returns the tasks to abort on shutdown.
pub async fn start(
    config: &ServeConfig,
    registry: &Arc<Registry>,
    plugins: &Arc<PluginSet>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    match config.discovery {
        DiscoveryKind::Static => {
            registry.apply(DiscoveryEvent::Snapshot(config.instance_specs()));
            Ok(Vec::new())
        }
        DiscoveryKind::Etcd => {
            let url = config.etcd.as_deref().unwrap_or_default();
            let mut etcd = switchyard_etcd::EtcdConfig::new(url);
            if let Some(prefix) = &config.etcd_prefix {
                etcd.prefix.clone_from(prefix);
            }
            etcd.validate()?;
            let (tx, rx) = mpsc::unbounded_channel();
            Ok(vec![
                switchyard_etcd::spawn_discovery(etcd, tx),
                apply(registry, rx),
            ])
        }
        DiscoveryKind::Kubernetes => kubernetes(config, registry, plugins).await,
    }
}

/// Applies discovery events to the registry until the backend stops.
fn apply(
    registry: &Arc<Registry>,
    mut rx: mpsc::UnboundedReceiver<DiscoveryEvent>,
) -> JoinHandle<()> {
    let registry = Arc::clone(registry);
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            registry.apply(event);
        }
    })
}

async fn kubernetes(
    config: &ServeConfig,
    registry: &Arc<Registry>,
    plugins: &Arc<PluginSet>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let client = kube::Client::try_default().await.map_err(|e| {
        anyhow::anyhow!("--discovery kubernetes: no usable cluster credentials: {e}")
    })?;
    // `a,b` watches those namespaces (a Role in each suffices); unset or empty, every namespace.
    let scope = switchyard_k8s::WatchScope::parse(
        config.kubernetes_namespace.as_deref().unwrap_or_default(),
    );
    tracing::info!(?scope, "kubernetes discovery");
    let (tx, rx) = mpsc::unbounded_channel();
    let instances = {
        let (client, scope) = (client.clone(), scope.clone());
        tokio::spawn(async move {
            if let Err(error) = switchyard_k8s::discovery::run_discovery(client, scope, tx).await {
                tracing::error!(%error, "kubernetes instance discovery stopped");
            }
        })
    };
    let fetcher = switchyard_k8s::source::SourceFetcher::new(
        client.clone(),
        Arc::new(switchyard_k8s::source::HttpFetcher::new()?),
    );
    let (ptx, prx) = mpsc::unbounded_channel();
    let plugin_watch = tokio::spawn(async move {
        if let Err(error) =
            switchyard_k8s::plugins::run_plugin_discovery(client, scope, fetcher, ptx).await
        {
            tracing::error!(%error, "kubernetes plugin discovery stopped");
        }
    });
    Ok(vec![
        instances,
        apply(registry, rx),
        plugin_watch,
        apply_plugins(plugins, prx),
    ])
}

/// Loads, swaps and removes plugins as validated `RouterPlugin`s change (same atomic swap as
/// the admin API).
fn apply_plugins(
    plugins: &Arc<PluginSet>,
    mut rx: mpsc::UnboundedReceiver<switchyard_k8s::plugins::PluginEvent>,
) -> JoinHandle<()> {
    use switchyard_k8s::plugins::PluginEvent;
    let plugins = Arc::clone(plugins);
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            match event {
                PluginEvent::Upsert(artifact) => {
                    let name = plugin_name(&artifact.namespace, &artifact.name);
                    let bytes = artifact.bytes.to_vec();
                    let config = plugin_config(name.clone(), &artifact);
                    if let Err(error) = plugins.load(config, bytes, PluginSource::Kubernetes).await
                    {
                        tracing::error!(plugin = name, %error, "RouterPlugin could not be loaded; keeping the previous version");
                    }
                }
                PluginEvent::Remove { namespace, name } => {
                    plugins.remove(&plugin_name(&namespace, &name)).await;
                }
                PluginEvent::State(state) => tracing::info!(?state, "RouterPlugin watch"),
            }
        }
    })
}

fn plugin_name(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

/// A `RouterPlugin` as the frontend's plugin settings.
pub fn plugin_config(name: String, a: &switchyard_k8s::plugins::PluginArtifact) -> PluginConfig {
    use switchyard_k8s::routerplugin as crd;
    let defaults = PluginLimits::default();
    PluginConfig {
        name,
        kind: match a.kind {
            crd::PluginKind::Filter => PluginKind::Filter,
            crd::PluginKind::Scorer => PluginKind::Scorer,
            crd::PluginKind::Picker => PluginKind::Picker,
            crd::PluginKind::Health => PluginKind::HealthPolicy,
        },
        path: None,
        weight: a.weight,
        order: a.order,
        config: a.config.clone().unwrap_or_else(|| serde_json::json!({})),
        failure_policy: match a.failure_policy {
            crd::FailurePolicy::FailOpen => FailurePolicy::FailOpen,
            crd::FailurePolicy::FailClosed => FailurePolicy::FailClosed,
        },
        mode: match a.mode {
            crd::PluginMode::Active => PluginMode::Active,
            crd::PluginMode::Shadow => PluginMode::Shadow,
        },
        models: a.applies_to.models.clone(),
        limits: PluginLimits {
            memory_bytes: u64::try_from(a.limits.memory_mib).unwrap_or(64).max(1) << 20,
            decision_budget: std::time::Duration::from_micros(
                u64::try_from(a.limits.decision_budget_micros).unwrap_or(10_000),
            ),
            ..defaults
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_k8s::plugins::PluginArtifact;
    use switchyard_k8s::routerplugin as crd;

    #[test]
    fn a_router_plugin_maps_onto_plugin_settings() {
        let artifact = PluginArtifact {
            namespace: "ns".into(),
            name: "ll".into(),
            kind: crd::PluginKind::Health,
            bytes: bytes::Bytes::from_static(b"\0asm"),
            sha256: "0".repeat(64),
            config: Some(serde_json::json!({"threshold": 2})),
            weight: 2.5,
            order: 3,
            failure_policy: crd::FailurePolicy::FailClosed,
            limits: crd::PluginLimits {
                memory_mib: 32,
                decision_budget_micros: 1500,
            },
            mode: crd::PluginMode::Shadow,
            applies_to: crd::AppliesTo {
                pools: vec![],
                models: vec!["m".into()],
            },
            generation: Some(4),
        };
        let c = plugin_config(plugin_name(&artifact.namespace, &artifact.name), &artifact);
        assert_eq!(c.name, "ns.ll");
        assert_eq!(c.kind, PluginKind::HealthPolicy);
        assert_eq!(c.failure_policy, FailurePolicy::FailClosed);
        assert_eq!(c.mode, PluginMode::Shadow);
        assert_eq!(c.limits.memory_bytes, 32 << 20);
        assert_eq!(
            c.limits.decision_budget,
            std::time::Duration::from_micros(1500)
        );
        assert_eq!(c.models, vec!["m".to_owned()]);
        assert_eq!(c.config["threshold"], 2);
        c.validate().unwrap();
    }
}

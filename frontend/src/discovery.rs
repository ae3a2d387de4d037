//! Where the instance set (and, on Kubernetes, the plugin set) comes from: static workers,
//! etcd, or the operator's `WorkerPool`/`RouterPlugin` resources. Every backend sends
//! `DiscoveryEvent`s through one channel into the registry, so fail-static behaviour is the
//! registry's, not each backend's.

use std::sync::Arc;

use switchyard_runtime::{DiscoveryEvent, Registry};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{DiscoveryKind, ServeConfig};
use crate::plugins::PluginSet;

mod kubernetes;

/// Starts the configured discovery; returns the tasks to abort on shutdown.
pub async fn start(
    config: &ServeConfig,
    registry: &Arc<Registry>,
    plugins: &Arc<PluginSet>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    match config.discovery.kind {
        DiscoveryKind::Static => {
            registry.apply(DiscoveryEvent::Snapshot(config.instance_specs()));
            Ok(Vec::new())
        }
        DiscoveryKind::Etcd => {
            let url = config
                .discovery
                .etcd
                .endpoint
                .as_deref()
                .unwrap_or_default();
            let mut etcd = switchyard_etcd::EtcdConfig::new(url);
            if let Some(prefix) = &config.discovery.etcd.prefix {
                etcd.prefix.clone_from(prefix);
            }
            etcd.auth = config.discovery.etcd.auth.clone();
            etcd.validate()?;
            let (tx, rx) = mpsc::unbounded_channel();
            Ok(vec![
                switchyard_etcd::spawn_discovery(etcd, tx),
                apply(registry, "etcd", rx),
            ])
        }
        DiscoveryKind::Kubernetes => kubernetes::start(config, registry, plugins).await,
    }
}

/// Applies discovery events to the registry until the backend stops; `source` labels the
/// specs it rejects.
fn apply(
    registry: &Arc<Registry>,
    source: &'static str,
    mut rx: mpsc::UnboundedReceiver<DiscoveryEvent>,
) -> JoinHandle<()> {
    let registry = Arc::clone(registry);
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            registry.apply_from(source, event);
        }
    })
}

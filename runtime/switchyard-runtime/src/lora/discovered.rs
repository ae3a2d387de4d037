//! The adapters a discovery source declares right now (etcd adapter keys, Kubernetes
//! `LoraAdapter` resources): replaced as a whole by each `DiscoveryEvent::Adapters`, read
//! lock-free on every request by the [`super::Catalog`].

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::spec::{check_adapter, AdapterSpec};

/// Discovered adapters by name.
#[derive(Debug, Default)]
pub struct Discovered {
    by_name: ArcSwap<HashMap<String, Arc<AdapterSpec>>>,
}

impl Discovered {
    pub fn get(&self, name: &str) -> Option<Arc<AdapterSpec>> {
        self.by_name.load().get(name).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.load().is_empty()
    }

    pub fn all(&self) -> Vec<Arc<AdapterSpec>> {
        self.by_name.load().values().cloned().collect()
    }

    /// Replaces the set. Backends check entries before sending them; this checks again
    /// (whatever the source) and drops, with a log line, an entry that fails or repeats a name.
    pub fn replace(&self, source: &'static str, adapters: Vec<AdapterSpec>) {
        let mut next = HashMap::with_capacity(adapters.len());
        for adapter in adapters {
            if let Err(rejection) = check_adapter(&adapter) {
                tracing::warn!(source, error = %rejection.message, "discovered adapter rejected");
                continue;
            }
            if next.contains_key(&adapter.name) {
                tracing::warn!(source, adapter = %adapter.name, "adapter declared twice; the first stands");
                continue;
            }
            next.insert(adapter.name.clone(), Arc::new(adapter));
        }
        self.by_name.store(Arc::new(next));
    }
}

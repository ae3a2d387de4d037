//! Which RouterPlugins read a given ConfigMap: the mapper that turns a ConfigMap change into
//! re-reconciles, so a component updated in place is re-validated at once instead of at the
//! next resync (10 minutes) or fetch retry (30 s).

use std::sync::Arc;

use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use switchyard_k8s::RouterPlugin;

/// The plugins among `plugins` whose source is ConfigMap `namespace/name` (plugins read
/// ConfigMaps only in their own namespace).
pub fn referencing(
    plugins: &[Arc<RouterPlugin>],
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<RouterPlugin>> {
    plugins
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(namespace))
        .filter(|p| {
            p.spec
                .source
                .config_map
                .as_ref()
                .is_some_and(|cm| cm.name == name)
        })
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{plugin, NS};

    #[test]
    fn only_plugins_naming_the_config_map_in_its_namespace() {
        let reads = plugin("pick");
        let mut elsewhere = plugin("other-ns");
        elsewhere.metadata.namespace = Some("team-b".into());
        let mut from_url = plugin("from-url");
        from_url.spec.source.config_map = None;
        from_url.spec.source.url = Some("https://plugins.example/p.wasm".into());
        let all: Vec<Arc<RouterPlugin>> = [reads, elsewhere, from_url]
            .into_iter()
            .map(Arc::new)
            .collect();
        let found = referencing(&all, NS, "picker-wasm");
        assert_eq!(found, vec![ObjectRef::new("pick").within(NS)]);
        assert!(referencing(&all, NS, "another-cm").is_empty());
    }
}

//! Which model's instances serve a request, and whether it asks for an adapter.

use std::borrow::Cow;
use std::sync::Arc;

use switchyard_runtime::lora::{AdapterSpec, Catalog};
use switchyard_runtime::{Instance, Topology};

/// The adapter `model` names, unless discovery serves a model of that very name (a served
/// model wins: its workers were registered under it on purpose).
pub fn adapter_for(
    topology: &Topology,
    catalog: &Catalog,
    model: &str,
) -> Option<Arc<AdapterSpec>> {
    if catalog.is_empty() || topology.model(model).is_some() {
        return None;
    }
    catalog.get(model)
}

/// The model whose routing settings and instances a request for `model` uses: the base
/// model for an adapter, `model` itself otherwise.
pub fn routing_model<'a>(topology: &Topology, catalog: &Catalog, model: &'a str) -> Cow<'a, str> {
    adapter_for(topology, catalog, model)
        .map_or(Cow::Borrowed(model), |a| Cow::Owned(a.base_model.clone()))
}

/// The instances serving `model`, or those of its base model when it is an adapter.
pub fn instances(
    topology: &Topology,
    catalog: &Catalog,
    model: &str,
) -> Option<Arc<[Arc<Instance>]>> {
    topology
        .model(&routing_model(topology, catalog, model))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_runtime::{InstanceSpec, Registry};

    fn registry(specs: Vec<InstanceSpec>) -> Registry {
        let registry = Registry::default();
        registry.apply(switchyard_runtime::DiscoveryEvent::Snapshot(specs));
        registry
    }

    fn catalog() -> Catalog {
        Catalog::new(&[AdapterSpec {
            name: "sql".into(),
            base_model: "llama".into(),
            source: "/a/sql".into(),
            on_demand: false,
        }])
    }

    #[test]
    fn an_adapter_routes_to_its_base_models_instances() {
        let registry = registry(vec![InstanceSpec::new("w0", "llama", "http://h:1")]);
        let topology = registry.topology();
        let catalog = catalog();
        assert_eq!(routing_model(&topology, &catalog, "sql"), "llama");
        assert_eq!(routing_model(&topology, &catalog, "llama"), "llama");
        let found = instances(&topology, &catalog, "sql").unwrap();
        assert_eq!(found[0].id(), "w0");
        assert!(instances(&topology, &catalog, "other").is_none());
    }

    #[test]
    fn a_served_model_of_the_same_name_wins_over_the_adapter() {
        let registry = registry(vec![
            InstanceSpec::new("w0", "llama", "http://h:1"),
            InstanceSpec::new("w1", "sql", "http://h:2"),
        ]);
        let topology = registry.topology();
        assert!(adapter_for(&topology, &catalog(), "sql").is_none());
        assert_eq!(
            instances(&topology, &catalog(), "sql").unwrap()[0].id(),
            "w1"
        );
    }
}

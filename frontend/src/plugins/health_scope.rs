//! A health-policy plugin's scope: the instances of the models it applies to
//! (`PluginConfig::models`; empty means every model). It sees only their observations and
//! its verdicts land only on them, so a tenant's health policy cannot eject another
//! tenant's workers (on Kubernetes, `models` is the RouterPlugin's namespace-limited scope).

use std::collections::HashSet;
use std::sync::Arc;

use switchyard_runtime::Instance;

use super::config::PluginConfig;

/// The numeric ids of the instances `config` may judge.
pub fn scope(config: &PluginConfig, instances: &[Arc<Instance>]) -> HashSet<u32> {
    instances
        .iter()
        .filter(|i| config.applies_to(&i.spec.model))
        .map(|i| i.num_id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_runtime::InstanceSpec;

    fn instance(id: &str, model: &str) -> Arc<Instance> {
        Arc::new(Instance::new(
            InstanceSpec::new(
                id.to_string(),
                model.to_string(),
                "http://127.0.0.1:1".to_string(),
            ),
            None,
        ))
    }

    #[test]
    fn a_policy_judges_only_instances_of_its_models() {
        let all = vec![instance("a", "mine"), instance("b", "theirs")];
        let mut config =
            super::super::config::parse_plugin_flag("health=p.wasm").expect("plugin flag");
        config.models = vec!["mine".to_string()];
        assert_eq!(scope(&config, &all), HashSet::from([all[0].num_id]));
        config.models.clear();
        assert_eq!(scope(&config, &all).len(), 2, "no models: every instance");
    }
}

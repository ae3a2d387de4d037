//! `plugins:` — the Wasm plugins loaded from files, the host they share, and when a faulting
//! plugin is quarantined. Plugin entries keep their own schema (`failurePolicy` and `limits`
//! are shared with the admin API and the RouterPlugin resource).

use serde::{Deserialize, Serialize};
use switchyard_plugin_host::{HostConfig, QuarantinePolicy};

use super::{invalid, ConfigError};
use crate::plugins::PluginConfig;

/// `plugins:` in the YAML file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginsSection {
    /// Wasm plugins (filters, scorers, pickers, health policies), `--plugin KIND=PATH`.
    pub modules: Vec<PluginConfig>,
    /// The Wasm host shared by every plugin: epoch tick (budget resolution), pooling slots,
    /// largest memory cap a plugin may ask for.
    pub host: HostConfig,
    /// When plugins are quarantined after repeated faults, and for how long.
    pub quarantine: QuarantinePolicy,
}

impl PluginsSection {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.host
            .validate()
            .map_err(|e| invalid("plugins.host", e.to_string()))?;
        self.quarantine
            .validate()
            .map_err(|m| invalid("plugins.quarantine", m))?;
        let mut names = std::collections::HashSet::new();
        for (i, plugin) in self.modules.iter().enumerate() {
            let key = format!("plugins.modules[{i}]");
            plugin.validate().map_err(|m| invalid(&key, m))?;
            if !names.insert(plugin.name.as_str()) {
                return Err(invalid(
                    format!("{key}.name"),
                    format!("duplicate plugin name `{}`", plugin.name),
                ));
            }
            match &plugin.path {
                Some(path) if std::path::Path::new(path).is_file() => {}
                Some(path) => {
                    return Err(invalid(
                        format!("{key}.path"),
                        format!("`{path}` is not a readable file"),
                    ))
                }
                None => {
                    return Err(invalid(
                        format!("{key}.path"),
                        "a configured plugin needs a path",
                    ))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_quarantine_take_snake_case_keys_and_durations() {
        let section: PluginsSection = serde_yaml::from_str(
            "host: { epoch_tick: 2ms, max_instances: 16, max_memory_bytes: 33554432 }\nquarantine: { initial_backoff: 1s, max_backoff: 2m }\n",
        )
        .unwrap();
        section.validate().unwrap();
        assert_eq!(section.host.epoch_tick, std::time::Duration::from_millis(2));
        assert_eq!(section.host.max_instances, 16);
        assert_eq!(
            section.quarantine.max_backoff,
            std::time::Duration::from_secs(120)
        );
        let bad: PluginsSection = serde_yaml::from_str("host: { max_instances: 0 }\n").unwrap();
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("plugins.host") && err.contains("max_instances"),
            "{err}"
        );
        assert!(serde_yaml::from_str::<PluginsSection>("host: { epochTick: 2ms }\n").is_err());
        assert!(serde_yaml::from_str::<PluginsSection>("host: { epoch_tick: 2 }\n").is_err());
    }

    #[test]
    fn modules_need_a_readable_path_and_unique_names() {
        let section: PluginsSection =
            serde_yaml::from_str("modules: [{ kind: scorer, name: a, path: /no/such.wasm }]\n")
                .unwrap();
        let err = section.validate().unwrap_err().to_string();
        assert!(err.contains("plugins.modules[0].path"), "{err}");
    }
}

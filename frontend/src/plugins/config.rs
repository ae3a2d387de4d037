//! How plugins are declared: the `plugins:` list of the YAML config and `--plugin KIND=PATH`.

use serde::{Deserialize, Serialize};
use switchyard_plugin_host::{PluginKind, PluginLimits};

// Shared with the `RouterPlugin` CRD and the admin API (one type, one serialized form):
// `FailOpen` skips the plugin for the request (the native policy decides), `FailClosed` fails
// it with a 503 that names the plugin; `Shadow` plugins run off the request path on the same
// candidates and their disagreements are counted.
pub use switchyard_runtime::plugin_policy::{FailurePolicy, PluginMode};

/// One plugin in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Unique name (admin API, metrics, logs).
    pub name: String,
    /// The role: `filter`, `scorer`, `picker` or `health` (a `router` component can fill any).
    pub kind: PluginKind,
    /// The component file. Watched: a changed file is reloaded and swapped in.
    #[serde(default)]
    pub path: Option<String>,
    /// Weight of a scorer in the weighted sum.
    #[serde(default = "one")]
    pub weight: f64,
    /// Position among plugins of the same kind (lower first).
    #[serde(default)]
    pub order: i32,
    /// JSON passed to the plugin's `configure`.
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    #[serde(default, rename = "failurePolicy", alias = "failure_policy")]
    pub failure_policy: FailurePolicy,
    #[serde(default)]
    pub mode: PluginMode,
    /// Models it applies to; empty means every model.
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub limits: PluginLimits,
}

fn one() -> f64 {
    1.0
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl PluginConfig {
    pub fn applies_to(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }

    /// Checks what can be checked without loading the component.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "name `{}` must be non-empty [A-Za-z0-9._-]",
                self.name
            ));
        }
        if self.kind == PluginKind::Router {
            return Err("kind must be filter, scorer, picker or health (a router component can fill any of them)".into());
        }
        if !(self.weight.is_finite() && (0.0..=1000.0).contains(&self.weight)) {
            return Err(format!("weight {} must be between 0 and 1000", self.weight));
        }
        Ok(())
    }

    pub fn config_json(&self) -> String {
        self.config.to_string()
    }
}

/// Parses `--plugin KIND=PATH`; the name is the file stem.
pub fn parse_plugin_flag(flag: &str) -> Result<PluginConfig, String> {
    let (kind, path) = flag
        .split_once('=')
        .ok_or_else(|| format!("`{flag}` is not KIND=PATH"))?;
    let kind: PluginKind = kind
        .parse()
        .map_err(|e: switchyard_plugin_host::Error| e.to_string())?;
    let name = std::path::Path::new(path)
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| format!("`{path}` has no file name"))?
        .to_owned();
    Ok(PluginConfig {
        name,
        kind,
        path: Some(path.to_owned()),
        weight: 1.0,
        order: 0,
        config: empty_object(),
        failure_policy: FailurePolicy::FailOpen,
        mode: PluginMode::Active,
        models: Vec::new(),
        limits: PluginLimits::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_and_yaml_forms() {
        let p = parse_plugin_flag("picker=/x/round-robin.wasm").unwrap();
        assert_eq!(p.name, "round-robin");
        assert_eq!(p.kind, PluginKind::Picker);
        assert!(parse_plugin_flag("nonsense").is_err());
        assert!(parse_plugin_flag("sorter=/x.wasm").is_err());

        let y: PluginConfig = serde_yaml::from_str(
            "name: ll\nkind: scorer\npath: a.wasm\nweight: 2\nfailurePolicy: FailClosed\nmode: Shadow\nmodels: [m]\nlimits:\n  decisionBudget: 2ms\n",
        )
        .unwrap();
        assert_eq!(y.failure_policy, FailurePolicy::FailClosed);
        assert_eq!(y.mode, PluginMode::Shadow);
        assert!(y.applies_to("m") && !y.applies_to("n"));
        assert!(
            serde_yaml::from_str::<PluginConfig>("name: x\nkind: scorer\nwieght: 2\n").is_err()
        );
    }

    #[test]
    fn validation() {
        let mut p = parse_plugin_flag("scorer=a.wasm").unwrap();
        p.validate().unwrap();
        p.weight = f64::NAN;
        assert!(p.validate().is_err());
        p.weight = 1.0;
        p.kind = PluginKind::Router;
        assert!(p.validate().is_err());
        p.kind = PluginKind::Filter;
        p.name = "bad name".into();
        assert!(p.validate().is_err());
    }
}

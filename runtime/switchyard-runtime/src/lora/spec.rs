//! `adapters:` in the frontend's YAML: one entry per LoRA adapter it routes.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::spec_check::{MAX_MODEL_BYTES, MAX_PATH_BYTES};

/// A LoRA adapter served on top of a base model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterSpec {
    /// The name clients send as `model` (and the name the engine knows it by).
    pub name: String,
    /// The model whose instances serve it.
    pub base_model: String,
    /// What the engine's load API takes as the adapter's location: a path on the worker or
    /// a URI (vLLM's `lora_path`, SGLang's `lora_path`). Never read by the frontend itself.
    pub source: String,
    /// Load the adapter through the engine's API when no routable instance has it.
    #[serde(default)]
    pub on_demand: bool,
}

/// Checks every entry: bounded names, no duplicates, no adapter named after its own base.
/// The message names the offending entry by index.
pub fn validate_adapters(adapters: &[AdapterSpec]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for (i, a) in adapters.iter().enumerate() {
        let at = |what: &str| format!("adapters[{i}].{what}");
        for (key, value, max) in [
            ("name", &a.name, MAX_MODEL_BYTES),
            ("base_model", &a.base_model, MAX_MODEL_BYTES),
            ("source", &a.source, MAX_PATH_BYTES),
        ] {
            if value.trim().is_empty() {
                return Err(format!("{}: must not be empty", at(key)));
            }
            if value.len() > max {
                return Err(format!("{}: longer than {max} bytes", at(key)));
            }
            if value.chars().any(char::is_control) {
                return Err(format!("{}: contains control characters", at(key)));
            }
        }
        // vLLM's metric lists adapters comma-separated: a comma in a name could not be read back.
        if a.name.contains(',') {
            return Err(format!("{}: must not contain ','", at("name")));
        }
        if a.name == a.base_model {
            return Err(format!("{}: must differ from its base_model", at("name")));
        }
        if !seen.insert(a.name.as_str()) {
            return Err(format!("{}: `{}` is listed twice", at("name"), a.name));
        }
    }
    Ok(())
}

/// The configured adapters by name, built once at startup.
#[derive(Debug, Default)]
pub struct Catalog {
    by_name: HashMap<String, Arc<AdapterSpec>>,
}

impl Catalog {
    pub fn new(adapters: &[AdapterSpec]) -> Self {
        Self {
            by_name: adapters
                .iter()
                .map(|a| (a.name.clone(), Arc::new(a.clone())))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<AdapterSpec>> {
        self.by_name.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// Every adapter, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<AdapterSpec>> {
        self.by_name.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, base: &str) -> AdapterSpec {
        AdapterSpec {
            name: name.into(),
            base_model: base.into(),
            source: "/adapters/x".into(),
            on_demand: false,
        }
    }

    #[test]
    fn good_adapters_pass_and_bad_ones_name_the_entry() {
        assert!(validate_adapters(&[spec("sql", "llama"), spec("chat", "llama")]).is_ok());
        let cases = [
            (
                vec![spec("", "llama")],
                "adapters[0].name: must not be empty",
            ),
            (
                vec![spec("a,b", "llama")],
                "adapters[0].name: must not contain ','",
            ),
            (
                vec![spec("llama", "llama")],
                "adapters[0].name: must differ",
            ),
            (
                vec![spec("sql", "llama"), spec("sql", "llama")],
                "adapters[1].name: `sql` is listed twice",
            ),
            (
                vec![spec("sql", &"m".repeat(MAX_MODEL_BYTES + 1))],
                "adapters[0].base_model: longer than",
            ),
        ];
        for (adapters, want) in cases {
            let err = validate_adapters(&adapters).err().unwrap_or_default();
            assert!(err.starts_with(want), "{err} (wanted {want})");
        }
    }

    #[test]
    fn yaml_entry_parses_with_on_demand_optional_and_rejects_unknown_keys() {
        let a: AdapterSpec =
            serde_json::from_str(r#"{"name":"sql","base_model":"llama","source":"/a/sql"}"#)
                .unwrap();
        assert!(!a.on_demand);
        assert!(serde_json::from_str::<AdapterSpec>(
            r#"{"name":"sql","base_model":"llama","source":"/a","path":"x"}"#
        )
        .is_err());
    }
}

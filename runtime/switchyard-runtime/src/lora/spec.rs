//! `adapters:` in the frontend's YAML: one entry per LoRA adapter it routes.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::spec_check::{self, Reason, Rejection, MAX_MODEL_BYTES, MAX_PATH_BYTES};

use super::discovered::Discovered;

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

/// Checks an adapter entry from a discovery source (etcd, Kubernetes): names follow the
/// instance spec's model rule, `source` is bounded and printable. The `source` is opaque: it
/// is only ever sent to the engine's load API, never opened by the frontend.
pub fn check_adapter(a: &AdapterSpec) -> Result<(), Rejection> {
    let bad = |m: String| Rejection::new(Reason::Adapter, m);
    spec_check::check_model(&a.name).map_err(|m| bad(format!("adapter name {m}")))?;
    spec_check::check_model(&a.base_model).map_err(|m| bad(format!("adapter base_model {m}")))?;
    // vLLM's metric lists adapters comma-separated; the model rule already excludes ','.
    if a.name == a.base_model {
        return Err(bad("adapter name must differ from its base_model".into()));
    }
    if a.source.trim().is_empty() {
        return Err(bad("adapter source is empty".into()));
    }
    if a.source.len() > MAX_PATH_BYTES {
        return Err(bad(format!(
            "adapter source is over {MAX_PATH_BYTES} bytes"
        )));
    }
    if a.source.chars().any(char::is_control) {
        return Err(bad("adapter source contains control characters".into()));
    }
    Ok(())
}

/// The adapters by name: the configured ones (fixed at startup) and those a discovery source
/// declares now ([`Discovered`], shared with the registry that applies discovery events). A
/// configured adapter wins over a discovered one of the same name: it is the operator's own.
#[derive(Debug, Default)]
pub struct Catalog {
    by_name: HashMap<String, Arc<AdapterSpec>>,
    discovered: Arc<Discovered>,
}

impl Catalog {
    pub fn new(adapters: &[AdapterSpec]) -> Self {
        Self::with_discovered(adapters, Arc::default())
    }

    /// The configured `adapters` plus whatever `discovered` holds at each lookup.
    pub fn with_discovered(adapters: &[AdapterSpec], discovered: Arc<Discovered>) -> Self {
        Self {
            by_name: adapters
                .iter()
                .map(|a| (a.name.clone(), Arc::new(a.clone())))
                .collect(),
            discovered,
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<AdapterSpec>> {
        match self.by_name.get(name) {
            Some(a) => Some(Arc::clone(a)),
            None => self.discovered.get(name),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty() && self.discovered.is_empty()
    }

    /// Every adapter, in no particular order.
    pub fn all(&self) -> Vec<Arc<AdapterSpec>> {
        let mut out: Vec<Arc<AdapterSpec>> = self.by_name.values().cloned().collect();
        out.extend(
            self.discovered
                .all()
                .into_iter()
                .filter(|a| !self.by_name.contains_key(&a.name)),
        );
        out
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
    fn discovered_entries_follow_the_model_rule_and_bound_the_source() {
        let ok = spec("sql", "org/llama");
        assert!(check_adapter(&ok).is_ok());
        let with = |f: fn(&mut AdapterSpec)| {
            let mut a = ok.clone();
            f(&mut a);
            check_adapter(&a).err().map(|r| (r.reason, r.message))
        };
        for (case, want) in [
            (
                with(|a| a.name = "a b".into()),
                "adapter name has a disallowed",
            ),
            (
                with(|a| a.name = "a,b".into()),
                "adapter name has a disallowed",
            ),
            (
                with(|a| a.base_model = String::new()),
                "adapter base_model is empty",
            ),
            (
                with(|a| a.name = "org/llama".into()),
                "adapter name must differ",
            ),
            (with(|a| a.source = " ".into()), "adapter source is empty"),
            (
                with(|a| a.source = "s3://b/\nx".into()),
                "adapter source contains control",
            ),
            (
                with(|a| a.source = "x".repeat(MAX_PATH_BYTES + 1)),
                "adapter source is over",
            ),
        ] {
            let (reason, message) = case.unwrap_or((Reason::Parse, String::new()));
            assert_eq!(reason, Reason::Adapter, "{message}");
            assert!(message.starts_with(want), "{message} (wanted {want})");
        }
    }

    #[test]
    fn a_configured_adapter_wins_over_a_discovered_one_of_the_same_name() {
        let discovered = Arc::new(Discovered::default());
        let catalog = Catalog::with_discovered(&[spec("sql", "llama")], Arc::clone(&discovered));
        let mut other = spec("sql", "qwen");
        other.source = "s3://elsewhere".into();
        discovered.replace("etcd", vec![other, spec("chat", "qwen")]);
        assert_eq!(
            catalog.get("sql").map(|a| a.base_model.clone()).as_deref(),
            Some("llama")
        );
        assert_eq!(
            catalog.get("chat").map(|a| a.base_model.clone()).as_deref(),
            Some("qwen")
        );
        let mut names: Vec<String> = catalog.all().iter().map(|a| a.name.clone()).collect();
        names.sort();
        assert_eq!(names, ["chat", "sql"]);
        discovered.replace("etcd", Vec::new());
        assert!(
            catalog.get("chat").is_none(),
            "a removed adapter is gone at once"
        );
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

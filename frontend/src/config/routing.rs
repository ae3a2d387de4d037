//! `routing:` — how an instance is chosen: the default policy (per-model overrides live in
//! the top-level `models` map), prefix hashing and the `kv` policy, tokenizers, disaggregated
//! prefill/decode, and the decision recorder.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchyard_runtime::PolicyConfig;

use super::{invalid, ConfigError};

/// `routing:` in the YAML file. The default policy's keys (`policy`, `session_header`, …)
/// sit directly in the section, as they do in each `models` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingSection {
    /// Default routing for every model.
    #[serde(flatten)]
    pub default: PolicyConfig,
    /// Prefix hashing and the `kv` policy (block size, cost weights, temperature).
    pub kv: switchyard_runtime::policy::kv::KvConfig,
    /// A Hugging Face `tokenizer.json`: prefix blocks are then hashed over the prompt's token
    /// ids (what engines and the kv-bridge use) instead of bytes. Applies to every model
    /// without an entry in `tokenizers`. Loaded at startup; only used when routing needs
    /// prefix blocks (the `kv` policy or plugins).
    pub tokenizer: Option<String>,
    /// Per-model tokenizers (`model: path`), overriding `tokenizer`.
    pub tokenizers: BTreeMap<String, String>,
    /// Disaggregated prefill and decode (`docs/disaggregation.md`).
    pub disaggregation: super::DisaggregationConfig,
    /// Write every routing decision's inputs and outputs as JSONL here (for `plugin replay`).
    pub record_decisions: Option<String>,
}

impl RoutingSection {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        validate_policy("routing", &self.default)?;
        self.kv.validate().map_err(|m| invalid("routing.kv", m))?;
        self.disaggregation
            .validate()
            .map_err(|m| invalid("routing.disaggregation", m))
    }
}

/// A policy by the key it was configured under (`routing` or `models.NAME`).
pub(super) fn validate_policy(key: &str, policy: &PolicyConfig) -> Result<(), ConfigError> {
    switchyard_runtime::policy::build(policy)
        .map(|_| ())
        .map_err(|m| invalid(format!("{key}.policy"), m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_keys_sit_beside_the_section_keys() {
        let section: RoutingSection = serde_yaml::from_str(
            "policy: session\nsession_header: x-user\nkv:\n  weights: {overlap_weight: 2}\n  approx_ttl: 2m\ntokenizer: /t.json\n",
        )
        .unwrap();
        section.validate().unwrap();
        assert_eq!(section.default.session_header, "x-user");
        assert_eq!(section.kv.weights.overlap_weight, 2.0);
        assert_eq!(section.kv.approx_ttl_secs, 120);
        let defaults = switchyard_kv::KvCostWeights::default();
        assert_eq!(section.kv.weights.decode_weight, defaults.decode_weight);
    }

    #[test]
    fn unknown_keys_and_policies_are_refused() {
        assert!(serde_yaml::from_str::<RoutingSection>("polcy: p2c\n").is_err());
        let err = serde_yaml::from_str::<RoutingSection>("policy: nope\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown policy `nope`"), "{err}");
        let section: RoutingSection =
            serde_yaml::from_str("policy: session\nsession_fallback: session\n").unwrap();
        let err = section.validate().unwrap_err().to_string();
        assert!(err.contains("routing.policy"), "{err}");
    }
}

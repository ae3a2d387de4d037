//! The `disaggregation:` config section: when a request is split into a prefill and a decode
//! stage, in which engine protocol, and what a failed prefill does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The engine protocol that hands a prompt's KV cache from the prefill to the decode instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PdProtocol {
    /// vLLM's KV connectors (NIXL and others): prefill with `max_tokens: 1` and
    /// `kv_transfer_params.do_remote_decode`, then decode with the `kv_transfer_params` the
    /// prefill answered.
    #[default]
    Vllm,
    /// SGLang's bootstrap rendezvous: both sides get `bootstrap_host`, `bootstrap_port` and a
    /// fresh `bootstrap_room`, at the same time.
    Sglang,
}

impl PdProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vllm => "vllm",
            Self::Sglang => "sglang",
        }
    }
}

/// What a failed prefill stage does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnPrefillFailure {
    /// Serve the whole request on the chosen decode instance (aggregated).
    #[default]
    Fallback,
    /// Try the next-ranked prefill instance (up to `upstream.max_retries` more), then fall
    /// back.
    Retry,
}

/// Per-model settings under `disaggregation.models`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelDisaggregation {
    /// Overrides `disaggregation.pd_protocol` for this model.
    pub pd_protocol: Option<PdProtocol>,
    /// Overrides `disaggregation.min_uncached_tokens` for this model.
    pub min_uncached_tokens: Option<u32>,
}

/// `disaggregation:`. Disaggregation applies to a model as soon as one of its instances has
/// `role: prefill`; these keys tune it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DisaggregationConfig {
    /// Protocol for every model without its own (`models.<m>.pd_protocol`).
    pub pd_protocol: PdProtocol,
    /// Disaggregate only when more prompt tokens than this are not cached on the chosen
    /// decode instance: a short or mostly cached prompt is cheaper to prefill where it
    /// decodes than to hand over.
    pub min_uncached_tokens: u32,
    /// A prefill instance with more requests queued than this is not used; when every one is
    /// over it the request stays aggregated.
    pub max_prefill_queue: u32,
    pub on_prefill_failure: OnPrefillFailure,
    pub models: BTreeMap<String, ModelDisaggregation>,
}

impl Default for DisaggregationConfig {
    fn default() -> Self {
        Self {
            pd_protocol: PdProtocol::Vllm,
            min_uncached_tokens: 512,
            max_prefill_queue: 8,
            on_prefill_failure: OnPrefillFailure::Fallback,
            models: BTreeMap::new(),
        }
    }
}

/// Largest `min_uncached_tokens` / `max_prefill_queue` accepted (a typo guard).
const MAX_THRESHOLD: u32 = 10_000_000;

impl DisaggregationConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.min_uncached_tokens > MAX_THRESHOLD {
            return Err(format!(
                "min_uncached_tokens must be at most {MAX_THRESHOLD}"
            ));
        }
        if self.max_prefill_queue > MAX_THRESHOLD {
            return Err(format!("max_prefill_queue must be at most {MAX_THRESHOLD}"));
        }
        for (model, m) in &self.models {
            if m.min_uncached_tokens.is_some_and(|t| t > MAX_THRESHOLD) {
                return Err(format!(
                    "models.{model}.min_uncached_tokens must be at most {MAX_THRESHOLD}"
                ));
            }
        }
        Ok(())
    }

    pub fn protocol(&self, model: &str) -> PdProtocol {
        self.models
            .get(model)
            .and_then(|m| m.pd_protocol)
            .unwrap_or(self.pd_protocol)
    }

    pub fn min_uncached_tokens(&self, model: &str) -> u32 {
        self.models
            .get(model)
            .and_then(|m| m.min_uncached_tokens)
            .unwrap_or(self.min_uncached_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_sections_keep_defaults_and_models_override() {
        let cfg: DisaggregationConfig = serde_yaml::from_str(
            "min_uncached_tokens: 64\nmodels:\n  big: { pd_protocol: sglang, min_uncached_tokens: 9 }\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.max_prefill_queue, 8);
        assert_eq!(cfg.on_prefill_failure, OnPrefillFailure::Fallback);
        assert_eq!(cfg.protocol("small"), PdProtocol::Vllm);
        assert_eq!(cfg.protocol("big"), PdProtocol::Sglang);
        assert_eq!(cfg.min_uncached_tokens("small"), 64);
        assert_eq!(cfg.min_uncached_tokens("big"), 9);
    }

    #[test]
    fn unknown_keys_and_values_are_named() {
        let err = serde_yaml::from_str::<DisaggregationConfig>("min_uncached: 1\n").unwrap_err();
        assert!(err.to_string().contains("min_uncached"), "{err}");
        let err = serde_yaml::from_str::<DisaggregationConfig>("on_prefill_failure: panic\n")
            .unwrap_err();
        assert!(err.to_string().contains("panic"), "{err}");
        let cfg = DisaggregationConfig {
            max_prefill_queue: u32::MAX,
            ..DisaggregationConfig::default()
        };
        assert!(cfg.validate().unwrap_err().contains("max_prefill_queue"));
    }
}

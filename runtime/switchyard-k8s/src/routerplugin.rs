//! The `RouterPlugin` custom resource: a Wasm routing component on every frontend's data path.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::instances::PoolModels;

/// Desired state of a Wasm routing plugin.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "RouterPlugin",
    plural = "routerplugins",
    shortname = "rp",
    category = "switchyard",
    namespaced,
    status = "RouterPluginStatus",
    derive = "PartialEq",
    doc = "A WebAssembly routing component (filter, scorer, picker or health policy) that the operator validates and every frontend replica loads live.",
    printcolumn = r#"{"name":"Kind","type":"string","jsonPath":".spec.kind"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Validated","type":"string","jsonPath":".status.conditions[?(@.type==\"Validated\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Validated\")].reason","priority":1}"#,
    printcolumn = r#"{"name":"Digest","type":"string","jsonPath":".status.digest","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RouterPluginSpec {
    /// Which plugin world the component implements. Immutable: create a new plugin instead.
    #[x_kube(validation = Rule::new("self == oldSelf").message("kind is immutable; create a new RouterPlugin instead"))]
    pub kind: PluginKind,
    /// Where the component's bytes come from, and their digest.
    pub source: PluginSource,
    /// Plugin configuration, passed as JSON to the component's `configure` export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_object")]
    pub config: Option<serde_json::Value>,
    /// Weight of a scorer's score in the weighted sum (ignored by other kinds).
    #[serde(default = "default_weight")]
    #[x_kube(validation = Rule::new("self >= 0.0 && self <= 100.0").message("weight must be between 0 and 100"))]
    pub weight: f64,
    /// Position in the chain among plugins of the same kind (lower runs first).
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= -1000 && self <= 1000").message("order must be between -1000 and 1000"))]
    pub order: i32,
    /// What the frontend does when the plugin traps, overruns its budget or returns garbage.
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// Resource limits of each plugin instance.
    #[serde(default)]
    pub limits: PluginLimits,
    /// `Active` plugins decide; `Shadow` plugins run and are measured, but never decide.
    #[serde(default)]
    pub mode: PluginMode,
    /// Which pools and models the plugin applies to; empty lists mean all.
    #[serde(default)]
    pub applies_to: AppliesTo,
}

/// The WIT world a component implements.
///
/// Not the plugin host's `PluginKind`: this is the CRD's wire form (`health`, and no `router`,
/// which a RouterPlugin cannot ask for), and this crate stays free of wasmtime. The frontend
/// maps it in `discovery/kubernetes.rs`, the operator's validator back in `validator.rs`.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Filter,
    Scorer,
    Picker,
    Health,
}

/// Source of a component. Exactly one of `configMap` or `url`, always with a `sha256`.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.configMap) != has(self.url)").message("exactly one of source.configMap or source.url must be set"))]
pub struct PluginSource {
    /// A ConfigMap in the plugin's namespace holding the component under `binaryData`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapSource>,
    /// An `https://` (or, inside the cluster, `http://`) URL serving the component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("source.url must be an http:// or https:// URL"))]
    pub url: Option<String>,
    /// Lowercase hex SHA-256 of the component bytes; nothing runs unless it matches.
    #[x_kube(validation = Rule::new("self.matches('^[0-9a-f]{64}$')").message("source.sha256 must be 64 lowercase hex characters"))]
    pub sha256: String,
}

/// A key of a ConfigMap's `binaryData`.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapSource {
    /// ConfigMap name (same namespace as the RouterPlugin).
    #[x_kube(validation = Rule::new("size(self) > 0").message("source.configMap.name must not be empty"))]
    pub name: String,
    /// Key under `binaryData`.
    #[serde(default = "default_key")]
    pub key: String,
}

// The frontend's own types: one definition, the same serialized form in YAML, the admin API
// and the CRD.
pub use switchyard_runtime::plugin_policy::{FailurePolicy, PluginMode};

/// Per-instance limits of a plugin.
///
/// Not the plugin host's `PluginLimits`: Kubernetes users write MiB and microseconds as
/// integers that CEL can range-check; the host's struct holds bytes and `Duration`s plus
/// host-only settings. The frontend converts in `discovery/kubernetes.rs`.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PluginLimits {
    /// Linear memory cap per instance, in MiB.
    #[serde(default = "default_memory_mib", rename = "memoryMiB")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 4096").message("limits.memoryMiB must be between 1 and 4096"))]
    pub memory_mib: i32,
    /// Budget of one decision, in microseconds (enforced with epoch deadlines).
    #[serde(default = "default_budget_micros")]
    #[x_kube(validation = Rule::new("self >= 10 && self <= 1000000").message("limits.decisionBudgetMicros must be between 10 and 1000000"))]
    pub decision_budget_micros: i32,
}

/// Scope of a plugin: the requests for which models it runs on. A frontend routes one model
/// at a time, so pools select models: the plugin applies to the models its pools serve.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AppliesTo {
    /// WorkerPool names in the plugin's namespace; the plugin applies to the models they
    /// serve (while none of them exists, to no model). Empty means every pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<String>,
    /// Model names; empty means every model. With `pools` too, both must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
}

/// Observed state of a `RouterPlugin`.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouterPluginStatus {
    /// `Accepted` (the spec is usable) and `Validated` (the bytes match the digest and the
    /// component exports the world `kind` names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// `sha256:<hex>` of the validated bytes; frontends load only this digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Size of the validated component in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// Worlds the component was found to implement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub worlds: Vec<String>,
    /// `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Free-form details (reserved for per-frontend load reports).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Filter => "filter",
            Self::Scorer => "scorer",
            Self::Picker => "picker",
            Self::Health => "health",
        }
    }
}

impl AppliesTo {
    /// The models a plugin in `namespace` applies to, given the model of every routable pool:
    /// `None` means every model; `Some` lists them, sorted (empty: no model right now).
    ///
    /// Unless `cross_namespace` (the frontend's `kubernetes.cross_namespace_plugins`), a
    /// plugin reaches only models served by pools of its own namespace: a tenant's plugin
    /// must not filter, score or pick for another tenant's traffic.
    pub fn models(
        &self,
        namespace: &str,
        pools: &PoolModels,
        cross_namespace: bool,
    ) -> Option<Vec<String>> {
        if self.pools.is_empty() {
            if cross_namespace {
                return (!self.models.is_empty()).then(|| self.models.clone());
            }
            let mut own: Vec<String> = pools
                .iter()
                .filter(|((ns, _), _)| ns == namespace)
                .map(|(_, model)| model.clone())
                .filter(|model| self.models.is_empty() || self.models.contains(model))
                .collect();
            own.sort();
            own.dedup();
            return Some(own);
        }
        let mut out: Vec<String> = self
            .pools
            .iter()
            .filter_map(|pool| pools.get(&(namespace.to_string(), pool.clone())))
            .filter(|model| self.models.is_empty() || self.models.contains(model))
            .cloned()
            .collect();
        out.sort();
        out.dedup();
        Some(out)
    }
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            memory_mib: default_memory_mib(),
            decision_budget_micros: default_budget_micros(),
        }
    }
}

impl RouterPlugin {
    /// Whether the operator has validated exactly the current spec: `Validated=True` for this
    /// generation and a digest equal to the spec's sha256. Frontends load only such plugins.
    pub fn is_validated(&self) -> bool {
        let Some(status) = &self.status else {
            return false;
        };
        let current = status.observed_generation.is_some()
            && status.observed_generation == self.metadata.generation;
        let digest_ok =
            status.digest.as_deref() == Some(&format!("sha256:{}", self.spec.source.sha256));
        let validated = status
            .conditions
            .iter()
            .any(|c| c.type_ == crate::conditions::VALIDATED && c.status == "True");
        current && digest_ok && validated
    }
}

fn default_weight() -> f64 {
    1.0
}
fn default_key() -> String {
    "plugin.wasm".to_string()
}
fn default_memory_mib() -> i32 {
    64
}
fn default_budget_micros() -> i32 {
    1000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools() -> PoolModels {
        [
            (("a".into(), "llama".into()), "meta/llama".into()),
            (("a".into(), "llama-2".into()), "meta/llama".into()),
            (("a".into(), "qwen".into()), "qwen/qwen".into()),
            (("b".into(), "mistral".into()), "mistral/m".into()),
        ]
        .into()
    }

    fn scope(pools: &[&str], models: &[&str]) -> AppliesTo {
        AppliesTo {
            pools: pools.iter().map(|s| s.to_string()).collect(),
            models: models.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn pools_select_the_models_they_serve_in_the_plugins_namespace() {
        let p = pools();
        assert_eq!(
            scope(&["qwen", "llama", "llama-2"], &[]).models("a", &p, false),
            Some(vec!["meta/llama".to_string(), "qwen/qwen".to_string()])
        );
        assert_eq!(
            scope(&["mistral"], &[]).models("a", &p, false),
            Some(vec![]),
            "another namespace's pool is not this plugin's"
        );
        assert_eq!(
            scope(&["llama", "qwen"], &["qwen/qwen"]).models("a", &p, false),
            Some(vec!["qwen/qwen".to_string()]),
            "pools and models both filter"
        );
        assert_eq!(
            scope(&["gone"], &[]).models("a", &p, false),
            Some(vec![]),
            "a missing pool selects nothing, not everything"
        );
    }

    #[test]
    fn without_cross_namespace_an_empty_scope_is_the_plugins_own_namespace() {
        let p = pools();
        assert_eq!(
            scope(&[], &[]).models("a", &p, false),
            Some(vec!["meta/llama".to_string(), "qwen/qwen".to_string()]),
            "namespace a's models, not b's mistral"
        );
        assert_eq!(
            scope(&[], &["mistral/m", "qwen/qwen"]).models("a", &p, false),
            Some(vec!["qwen/qwen".to_string()]),
            "a listed model of another namespace is dropped"
        );
        assert_eq!(scope(&[], &[]).models("c", &p, false), Some(vec![]));
    }

    #[test]
    fn cross_namespace_plugins_keep_the_cluster_wide_scope() {
        let p = pools();
        assert_eq!(scope(&[], &[]).models("a", &p, true), None, "everything");
        assert_eq!(
            scope(&[], &["x"]).models("a", &p, true),
            Some(vec!["x".to_string()])
        );
    }
}

//! The `LoraAdapter` custom resource: a LoRA adapter of a model served by the WorkerPools of its
//! namespace. The operator keeps it loaded on `minReplicas` ready instances through the
//! engine's adapter API; every frontend routes requests for it (its `metadata.name`) among its
//! base model's instances.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Desired state of a LoRA adapter. Clients request it by the resource's name.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "LoraAdapter",
    plural = "loraadapters",
    shortname = "lora",
    category = "switchyard",
    namespaced,
    status = "LoraAdapterStatus",
    derive = "PartialEq",
    // Clients send the name as `model`; the frontend's model-name rule is at most 256 bytes.
    validation = Rule::new("size(self.metadata.name) <= 253 && self.metadata.name != self.spec.baseModel").message("metadata.name (the adapter's model name) must be at most 253 characters and differ from spec.baseModel"),
    doc = "A LoRA adapter of a model served by WorkerPools in the same namespace: the operator keeps it loaded on at least minReplicas ready instances through the engine's adapter API, and frontends route requests for it (model = the resource's name) to its base model's instances.",
    printcolumn = r#"{"name":"Base","type":"string","jsonPath":".spec.baseModel"}"#,
    printcolumn = r#"{"name":"Min","type":"integer","jsonPath":".spec.minReplicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LoraAdapterSpec {
    /// The model whose WorkerPools (in this namespace) serve the adapter.
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 256 && self.matches('^[-A-Za-z0-9._/:@+]+$')").message("baseModel must be 1-256 characters of [A-Za-z0-9._/:@+-]"))]
    pub base_model: String,
    /// What the engine's load API takes as `lora_path`: a path on the worker or a URI. Opaque
    /// to Switchyard: only ever passed to the engine.
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 1024 && !self.matches('[\\\\x00-\\\\x1f\\\\x7f]')").message("source must be 1-1024 characters without control characters"))]
    pub source: String,
    /// WorkerPool names (this namespace) to load it on; empty means every pool serving
    /// `baseModel`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("size(self) <= 64 && self.all(p, size(p) > 0 && size(p) <= 63)").message("pools: at most 64 WorkerPool names of 1-63 characters"))]
    pub pools: Vec<String>,
    /// Ready instances to keep the adapter loaded on (0: load nowhere, route only where an
    /// engine already has it).
    #[serde(default = "default_min_replicas")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 10000").message("minReplicas must be between 0 and 10000"))]
    pub min_replicas: i32,
}

fn default_min_replicas() -> i32 {
    1
}

/// Observed state of a `LoraAdapter`.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LoraAdapterStatus {
    /// Instances the adapter is loaded on, as `<pool>/<host:port>`, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loaded_on: Vec<String>,
    /// How many of them (ready instances with the adapter loaded).
    #[serde(default)]
    pub ready_replicas: i32,
    /// `Ready`: loaded on at least `minReplicas` instances.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

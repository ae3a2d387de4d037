//! The `WorkerPool` custom resource: a set of identical engine pods serving one model.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, PodSecurityContext, ResourceRequirements, Toleration,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a pool of workers serving one model.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "WorkerPool",
    plural = "workerpools",
    shortname = "wp",
    category = "switchyard",
    namespaced,
    status = "WorkerPoolStatus",
    derive = "PartialEq",
    // The pool's name becomes its Service's name: a DNS-1035 label, or the Deployment is
    // created (and GPUs load the model) while the Service fails to apply.
    validation = Rule::new("size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must be a DNS-1035 label (lowercase letters, digits and '-', starting with a letter, at most 63 characters): it names the pool's Service"),
    doc = "A pool of identical inference-engine pods serving one model; the operator reconciles a Deployment and a headless Service, and the frontend routes to its ready endpoints.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn = r#"{"name":"Model","type":"string","jsonPath":".spec.model"}"#,
    printcolumn = r#"{"name":"Engine","type":"string","jsonPath":".spec.engine"}"#,
    printcolumn = r#"{"name":"Desired","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.kvEvents) || !self.kvEvents.bridge || self.engine == 'vllm'").message("kvEvents.bridge needs engine: vllm (the bridge reads vLLM's ZMQ KV events)"))]
pub struct WorkerPoolSpec {
    /// Model name clients request (the OpenAI `model` field). Immutable: create a new pool to
    /// serve a different model.
    #[x_kube(validation = Rule::new("self == oldSelf").message("model is immutable; create a new WorkerPool instead"))]
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 253").message("model must be 1-253 characters"))]
    pub model: String,
    /// Serving engine; selects defaults (arguments for `mocker`, a shared-memory volume for
    /// `vllm`/`sglang`) and engine-specific health canaries. Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("engine is immutable; create a new WorkerPool instead"))]
    pub engine: EngineKind,
    /// Which OpenAI endpoints the worker serves.
    #[serde(default)]
    pub api: WorkerApiKind,
    /// APIs the engine serves natively besides chat/completions (`responses`, `messages`):
    /// those requests are relayed to it as sent instead of translated onto chat.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b == a))").message("apis must not list an API twice"))]
    #[schemars(length(max = 4))]
    pub apis: Vec<switchyard_runtime::Api>,
    /// Desired number of worker pods (driven by `kubectl scale`, HPA or KEDA through the scale
    /// subresource).
    #[serde(default = "default_replicas")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 10000").message("replicas must be between 0 and 10000"))]
    pub replicas: i32,
    /// Pod template for the engine container.
    pub template: WorkerTemplate,
    /// Container port the engine's OpenAI server listens on.
    #[serde(default = "default_port")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("port must be between 1 and 65535"))]
    pub port: i32,
    /// Health checking of each worker (readiness probe and the frontend's active checks).
    #[serde(default)]
    pub health: HealthCheck,
    /// How the frontend weighs and labels this pool's instances.
    #[serde(default)]
    pub routing: Routing,
    /// KV-cache events for KV-aware routing: `{bridge: true}` runs `switchyard kv-bridge` next
    /// to a vLLM engine (which gets `--kv-events-config` for it), republishing its cache events
    /// on NATS under the instance's discovery id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_events: Option<KvEvents>,
    /// Role in disaggregated serving: `both` (default), `prefill` or `decode`; put on the pods
    /// and every instance as the label `switchyard.dev/role`.
    #[serde(default)]
    pub role: WorkerRole,
    /// The engine's API key, from a Secret in the pool's namespace: the operator gives it to
    /// the engine (vLLM `VLLM_API_KEY`, llama.cpp `LLAMA_API_KEY`, SGLang `--api-key`, the
    /// mocker's `SWITCHYARD_MOCKER_API_KEY`; every engine also gets
    /// `SWITCHYARD_WORKER_API_KEY`), and the frontend sends the key it holds as
    /// `<namespace>.<frontendKey>` (a file of its `worker_api_keys_dir`) to this pool's
    /// instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyRef>,
}

/// Where a pool's API key is: the engine's copy in a Secret of the pool's namespace, and the
/// name of the frontend's copy. The frontend never reads the pool's Secret (it would need read
/// access to Secrets in every watched namespace); the platform team puts the same key in the
/// frontend's key Secret under `frontendKey`.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRef {
    /// Secret in the pool's namespace holding the key.
    #[x_kube(validation = Rule::new("size(self) > 0 && size(self) <= 253").message("apiKey.secretName must be 1-253 characters"))]
    pub secret_name: String,
    /// Key within the Secret (default `api-key`).
    #[serde(default = "default_api_key_key")]
    #[x_kube(validation = Rule::new("self.matches('^[-._a-zA-Z0-9]{1,253}$')").message("apiKey.key must be a Secret key ([-._a-zA-Z0-9])"))]
    pub key: String,
    /// The key's name in the frontend's `worker_api_keys_dir` (default: `secretName`); the
    /// frontend looks it up as `<namespace>.<frontendKey>`, so a pool can only use keys filed
    /// under its own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[-_a-zA-Z0-9][-._a-zA-Z0-9]{0,127}$')").message("apiKey.frontendKey must be 1-128 characters of [-._a-zA-Z0-9], not starting with a dot"))]
    pub frontend_key: Option<String>,
}

fn default_api_key_key() -> String {
    "api-key".to_owned()
}

impl ApiKeyRef {
    /// The name the frontend looks the key up by.
    pub fn frontend_name(&self) -> &str {
        self.frontend_key.as_deref().unwrap_or(&self.secret_name)
    }
}

/// The KV-event bridge sidecar of a pool.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KvEvents {
    /// Run the `kv-bridge` sidecar (vLLM pools only).
    #[serde(default)]
    pub bridge: bool,
    /// NATS server the sidecar publishes to; omitted means the operator's default (the chart's
    /// NATS when `nats.enabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('nats://') || self.startsWith('tls://')").message("kvEvents.natsUrl must be a nats:// or tls:// URL"))]
    pub nats_url: Option<String>,
    /// Image of the sidecar (the `switchyard` image); omitted means the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Tokens per KV block: vLLM's `--block-size` (added when the args lack it), the bridge's,
    /// and it must equal the frontend's `kv.block_size`.
    #[serde(default = "default_block_size")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1024").message("kvEvents.blockSize must be between 1 and 1024"))]
    pub block_size: i32,
    /// Port of vLLM's ZMQ publisher inside the pod.
    #[serde(default = "default_zmq_port")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("kvEvents.zmqPort must be between 1 and 65535"))]
    pub zmq_port: i32,
}

/// Role of a pool's workers in disaggregated (prefill/decode) serving.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WorkerRole {
    /// Prefill and decode (no disaggregation).
    #[default]
    Both,
    Prefill,
    Decode,
}

impl WorkerRole {
    /// The frontend's role enum.
    pub fn to_runtime(self) -> switchyard_runtime::Role {
        match self {
            Self::Both => switchyard_runtime::Role::Both,
            Self::Prefill => switchyard_runtime::Role::Prefill,
            Self::Decode => switchyard_runtime::Role::Decode,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Both => "both",
            Self::Prefill => "prefill",
            Self::Decode => "decode",
        }
    }
}

/// A persistent model cache mounted into the engine (so a restart does not download the model
/// again): exactly one of `persistentVolumeClaim` and `hostPath`.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.persistentVolumeClaim) != has(self.hostPath)").message("modelCache needs exactly one of persistentVolumeClaim and hostPath"))]
pub struct ModelCache {
    /// Name of an existing PersistentVolumeClaim in the pool's namespace (ReadWriteMany to share
    /// it between replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<String>,
    /// A directory on the node (each node keeps its own copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("modelCache.hostPath must be an absolute path"))]
    pub host_path: Option<String>,
    /// Where the cache is mounted in the engine container; `HF_HOME` points there.
    #[serde(default = "default_cache_mount")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("modelCache.mountPath must be an absolute path"))]
    pub mount_path: String,
}

/// Serving engine and OpenAI API surface of a pool: the runtime's own types (one definition,
/// one serialized form).
pub use switchyard_runtime::{Engine as EngineKind, WorkerApi as WorkerApiKind};

/// The engine container and where its pods run.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkerTemplate {
    /// Container image, e.g. `vllm/vllm-openai:v0.8.5`.
    #[x_kube(validation = Rule::new("size(self) > 0").message("image must not be empty"))]
    pub image: String,
    /// Image pull policy (`Always`, `IfNotPresent`, `Never`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Entrypoint override.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments; for `engine: mocker` an empty list defaults to
    /// `mocker --listen 0.0.0.0:<port> --model <model>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// CPU, memory and accelerator requests/limits (e.g. `nvidia.com/gpu: 1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node selector for the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations for the pods (e.g. for GPU taints).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Service account the pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Extra pod labels (the operator's own labels win on conflict).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_labels: BTreeMap<String, String>,
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// Pod-level security context, passed through to the pods (e.g. `runAsNonRoot: true` and
    /// `runAsUser` for images that run as non-root, which with the operator's container
    /// settings meets the `restricted` Pod Security Standard). Unset, pods run as the image's
    /// user: engine images such as `vllm/vllm-openai` run as root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security_context: Option<PodSecurityContext>,
    /// Size of the in-memory `/dev/shm` volume for engines that use it (vllm, sglang, trtllm),
    /// as a Kubernetes quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<String>,
    /// Secrets for pulling the image (besides the ones the chart gives the operator).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Extra pod volumes (e.g. a Secret with a token, a ConfigMap with a chat template).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Where the engine container mounts them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Shortcut for a persistent model cache volume (PVC or hostPath) with `HF_HOME` on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_cache: Option<ModelCache>,
    /// Pod affinity and anti-affinity (e.g. GPU types, spreading replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// RuntimeClass of the pods (e.g. `nvidia`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    /// Extra containers next to the engine (log shippers, auth proxies). The operator gives
    /// each the engine's restricted security settings and no host ports; `engine` and
    /// `kv-bridge` are reserved names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.size() <= 8").message("at most 8 sidecars"))]
    #[x_kube(validation = Rule::new("self.all(s, s.name != 'engine' && s.name != 'kv-bridge')").message("sidecar names `engine` and `kv-bridge` are reserved"))]
    pub sidecars: Vec<Sidecar>,
}

/// One of a pool's own sidecar containers: what runs, never how privileged.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sidecar {
    /// Container name (a DNS label).
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$')").message("sidecar name must be a DNS label"))]
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Container ports (no host ports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<SidecarPort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Mounts of the pod's volumes (`template.volumes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
}

/// A sidecar's container port.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SidecarPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("containerPort must be between 1 and 65535"))]
    pub container_port: i32,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// Health checking of a worker.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// HTTP path answering 200 when the engine is ready.
    #[serde(default = "default_health_path")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("health.path must start with '/'"))]
    pub path: String,
    /// JSON body of the one-token generation the frontend POSTs to an instance that has been
    /// idle for `idleSeconds` (its idle canary); `{model}` inside strings becomes the pool's
    /// model. Omitted means the engine's built-in canary (an OpenAI completion for
    /// vllm/trtllm, SGLang's `/generate`, a chat completion otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::free_object")]
    pub canary: Option<serde_json::Value>,
    /// Path the canary is POSTed to; omitted means the engine's canary path
    /// (`/v1/completions` for vllm/trtllm, `/generate` for sglang, `/v1/chat/completions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("health.canaryPath must start with '/'"))]
    pub canary_path: Option<String>,
    /// Seconds without traffic after which the frontend sends the canary (a frontend whose
    /// `canary.idle_ms` is 0 sends none at all).
    #[serde(default = "default_idle_seconds")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 86400").message("health.idleSeconds must be between 1 and 86400"))]
    pub idle_seconds: i32,
    /// Timeout of one check, in seconds: the kubelet's probes and the frontend's canary.
    #[serde(default = "default_timeout_seconds")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 600").message("health.timeoutSeconds must be between 1 and 600"))]
    pub timeout_seconds: i32,
    /// Seconds the engine may take to start (model download and load) before the pod is
    /// restarted.
    #[serde(default = "default_startup_seconds")]
    #[x_kube(validation = Rule::new("self >= 10 && self <= 86400").message("health.startupSeconds must be between 10 and 86400"))]
    pub startup_seconds: i32,
    /// Path of the liveness probe (HTTP GET, at least 10 s timeout, six failures 20 s apart).
    /// Omitted means a TCP check of the port: a busy engine answers `path` slowly but is not
    /// stuck, and a restart reloads the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("health.livenessPath must start with '/'"))]
    pub liveness_path: Option<String>,
}

/// How the frontend treats this pool's instances.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Routing {
    /// Relative routing weight of each instance.
    #[serde(default = "default_weight")]
    #[x_kube(validation = Rule::new("self >= 0.0 && self <= 1000.0").message("routing.weight must be between 0 and 1000"))]
    pub weight: f64,
    /// Labels attached to every instance (visible to plugins via `on-topology`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Observed state of a `WorkerPool`.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPoolStatus {
    /// Pods the Deployment currently has.
    #[serde(default)]
    pub replicas: i32,
    /// Pods passing their readiness probe.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the pods, for the scale subresource.
    #[serde(default)]
    pub selector: String,
    /// Ready endpoints (`http://ip:port`) from the pool's EndpointSlices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// `Available` and `Progressing`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            path: default_health_path(),
            canary: None,
            canary_path: None,
            idle_seconds: default_idle_seconds(),
            timeout_seconds: default_timeout_seconds(),
            startup_seconds: default_startup_seconds(),
            liveness_path: None,
        }
    }
}

impl Default for Routing {
    fn default() -> Self {
        Self {
            weight: default_weight(),
            labels: BTreeMap::new(),
        }
    }
}

fn default_replicas() -> i32 {
    1
}
fn default_port() -> i32 {
    8000
}
fn default_health_path() -> String {
    "/health".to_string()
}
fn default_idle_seconds() -> i32 {
    30
}
fn default_timeout_seconds() -> i32 {
    5
}
fn default_startup_seconds() -> i32 {
    1800
}
fn default_block_size() -> i32 {
    16
}
fn default_zmq_port() -> i32 {
    5557
}
fn default_cache_mount() -> String {
    "/models".to_string()
}
fn default_weight() -> f64 {
    1.0
}

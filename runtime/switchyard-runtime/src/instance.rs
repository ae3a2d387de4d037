//! What an instance *is* (its spec, as discovery reports it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The serving engine behind an instance; selects engine-specific behaviour such as the
/// canary payload. Also the `WorkerPool` CRD's `engine` (one type, one serialized form).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Vllm,
    Sglang,
    Trtllm,
    /// llama.cpp's `llama-server` (start it with `--metrics` for load signals).
    Llamacpp,
    Mocker,
    #[default]
    Generic,
}

impl Engine {
    /// The serialized name (`vllm`, `sglang`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vllm => "vllm",
            Self::Sglang => "sglang",
            Self::Trtllm => "trtllm",
            Self::Llamacpp => "llamacpp",
            Self::Mocker => "mocker",
            Self::Generic => "generic",
        }
    }
}

/// Which OpenAI endpoints the worker serves. Also the `WorkerPool` CRD's `api`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum WorkerApi {
    /// `/v1/chat/completions` and `/v1/completions` (the worker applies its own chat template).
    #[default]
    Chat,
    /// `/v1/completions` only: the frontend renders chat messages with a chat template.
    Completions,
}

/// One worker instance serving one model at one base URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceSpec {
    /// Stable, unique id (reported in `x-switchyard-instance`).
    pub id: String,
    pub model: String,
    /// Base URL without the `/v1/...` path, e.g. `http://10.0.0.7:8000`.
    pub url: String,
    #[serde(default)]
    pub engine: Engine,
    #[serde(default)]
    pub api: WorkerApi,
    /// The APIs the worker serves natively, by name (empty: the default for `api`); checked
    /// by [`crate::apis::check`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apis: Vec<String>,
    /// Name of the chat template used when `api` is `completions`: a key of the frontend's
    /// `chat_templates` config, never a file path (see [`crate::spec_check`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<String>,
    /// The chat template's source itself (minijinja), for workers that publish their own;
    /// at most [`crate::spec_check::MAX_TEMPLATE_TEXT_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template_text: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Routing weight (default 1.0).
    #[serde(default = "default_weight")]
    pub weight: f32,
    /// This instance's idle-canary settings, preferred over the frontend's `canary` config
    /// (on Kubernetes: from the WorkerPool's `spec.health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryOverride>,
    /// Path the active probe GETs on this instance, preferred over the frontend's
    /// `probe.path` (on Kubernetes: the WorkerPool's `spec.health.path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_path: Option<String>,
    /// Its part in disaggregated serving (`both`, `prefill`, `decode`).
    #[serde(default)]
    pub role: crate::Role,
    /// A prefill worker's SGLang bootstrap port (its `--disaggregation-bootstrap-port`), sent
    /// to both sides of an SGLang-protocol disaggregated request as `bootstrap_port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_port: Option<u16>,
    /// Credentials the worker expects on every call (requests, probes, canaries, scrapes).
    /// Only from the frontend's own configuration: never read from or written to discovery.
    #[serde(skip)]
    pub auth: Option<WorkerAuth>,
    /// The *name* of the worker's API key in the frontend's `worker_api_keys`: how a discovered
    /// worker (etcd, Kubernetes) asks for credentials without ever naming a file or carrying
    /// the key. An unknown name rejects the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_name: Option<String>,
}

/// An `Authorization` header value for a worker started with an API key (vLLM `--api-key`,
/// llama.cpp `--api-key`, SGLang `--api-key`). Its `Debug` never shows the key, and the header
/// is marked sensitive so HTTP/2 never indexes it.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkerAuth(http::HeaderValue);

impl WorkerAuth {
    /// `Bearer KEY`; `None` when the key is empty or not a valid header value.
    pub fn bearer(key: &str) -> Option<Self> {
        let key = key.trim();
        if key.is_empty() {
            return None;
        }
        let mut value = http::HeaderValue::from_str(&format!("Bearer {key}")).ok()?;
        value.set_sensitive(true);
        Some(Self(value))
    }

    pub fn header(&self) -> &http::HeaderValue {
        &self.0
    }
}

impl std::fmt::Debug for WorkerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WorkerAuth(<redacted>)")
    }
}

/// Per-instance overrides of the idle canary; each `None` falls back to the frontend's config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CanaryOverride {
    /// Path the canary is POSTed to (default: the engine's built-in canary path).
    pub path: Option<String>,
    /// JSON body of the canary; `{model}` is replaced by the JSON-escaped model.
    pub body: Option<String>,
    /// Idle time before a canary, milliseconds; 0 turns the canary off for this instance.
    pub idle_ms: Option<u64>,
    /// Timeout of one canary, milliseconds.
    pub timeout_ms: Option<u64>,
}

fn default_weight() -> f32 {
    1.0
}

impl InstanceSpec {
    pub fn new(id: impl Into<String>, model: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            model: model.into(),
            url: url.into(),
            engine: Engine::default(),
            api: WorkerApi::default(),
            apis: Vec::new(),
            chat_template: None,
            chat_template_text: None,
            labels: BTreeMap::new(),
            weight: 1.0,
            canary: None,
            health_path: None,
            role: crate::Role::Both,
            bootstrap_port: None,
            auth: None,
            api_key_name: None,
        }
    }

    /// The `Authorization` header to send this worker, if it needs one.
    pub fn auth_header(&self) -> Option<&http::HeaderValue> {
        self.auth.as_ref().map(WorkerAuth::header)
    }
}

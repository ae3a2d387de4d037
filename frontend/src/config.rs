//! `switchyard serve` configuration: one serde struct with defaults and `validate()`.
//!
//! Precedence: command-line flag > `SWITCHYARD_*` environment variable > YAML file > default.
//! Unknown YAML keys are errors that name the key, so a typo never silently does nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use switchyard_runtime::client::ClientConfig;
use switchyard_runtime::engine_load::ScrapeConfig;
use switchyard_runtime::health::{CanaryConfig, HealthConfig, ProbeConfig, RetryBudgetConfig};
use switchyard_runtime::served_models::ServedModelsConfig;

use crate::admission::OverloadConfig;
use switchyard_plugin_host::{HostConfig, QuarantinePolicy};
use switchyard_runtime::{
    spec_check, ChatTemplate, Engine, InstanceSpec, PolicyConfig, TemplateCatalog, WorkerApi,
    WorkerAuth,
};

use crate::plugins::PluginConfig;

/// The whole frontend configuration (the YAML file's schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// Where instances come from: `static` (the `workers` list), `etcd` or `kubernetes`.
    pub discovery: DiscoveryKind,
    /// Static workers.
    pub workers: Vec<WorkerConfig>,
    /// Chat templates by name, for completions-only workers: `{path: FILE}` or
    /// `{inline: TEXT}`. Discovered workers (etcd, Kubernetes) pick one by name; files are
    /// read only from here, at startup.
    pub chat_templates: BTreeMap<String, TemplateSource>,
    pub etcd: Option<String>,
    /// etcd key prefix of the instances (default `/switchyard/instances/`).
    pub etcd_prefix: Option<String>,
    /// etcd user/password (from a file) and TLS (CA, client certificate).
    pub etcd_auth: switchyard_etcd::EtcdAuth,
    /// Namespace watched by `--discovery kubernetes` (unset or empty: every namespace).
    pub kubernetes_namespace: Option<String>,
    /// Kubernetes tenancy: `model_owners` (`model: namespace`) for `--discovery kubernetes`.
    pub kubernetes: switchyard_k8s::tenancy::TenancyConfig,
    pub nats: Option<String>,
    /// NATS credentials (token, user/password, creds or nkey file) and TLS; secrets are
    /// read from files.
    pub nats_auth: switchyard_nats::NatsAuth,
    /// Default routing for every model.
    pub routing: PolicyConfig,
    /// Per-model routing overrides.
    pub models: BTreeMap<String, PolicyConfig>,
    /// Bearer token for `/admin/*`; the admin API is disabled without one.
    pub admin_token: Option<String>,
    /// The admin API's own listener, token file and the explain token.
    pub admin: crate::admin_listener::AdminConfig,
    /// Wasm plugins (filters, scorers, pickers, health policies).
    pub plugins: Vec<PluginConfig>,
    /// When plugins are quarantined after repeated faults, and for how long.
    pub plugin_quarantine: QuarantinePolicy,
    /// The Wasm host shared by every plugin: epoch tick (budget resolution), pooling slots,
    /// largest memory cap a plugin may ask for.
    pub plugin_host: HostConfig,
    /// Write every routing decision's inputs and outputs as JSONL here (for `plugin replay`).
    pub record_decisions: Option<String>,
    /// Re-issue a stream that failed mid-way at most this many times (0 = off).
    pub migration_limit: u32,
    /// Prefix hashing and the `kv` policy (block size, cost weights, temperature).
    pub kv: switchyard_runtime::policy::kv::KvConfig,
    /// A Hugging Face `tokenizer.json`: prefix blocks are then hashed over the prompt's token
    /// ids (what engines and the kv-bridge use) instead of bytes. Applies to every model
    /// without an entry in `tokenizers`. Loaded at startup; only used when routing needs
    /// prefix blocks (the `kv` policy or plugins).
    pub tokenizer: Option<String>,
    /// Per-model tokenizers (`model: path`), overriding `tokenizer`.
    pub tokenizers: BTreeMap<String, String>,
    pub limits: HttpLimits,
    pub upstream: UpstreamConfig,
    pub health: HealthConfig,
    pub probe: ProbeConfig,
    /// Idle canary generations (active health beyond `GET /health`).
    pub canary: CanaryConfig,
    /// Load figures read from each engine's own metrics endpoint (`docs/engines.md`).
    pub load_scrape: ScrapeConfig,
    pub served_model_check: ServedModelsConfig,
    /// Worker API keys by name, each a file (`docs/engines.md`): what discovered workers'
    /// `api_key_name` refers to.
    pub worker_api_keys: BTreeMap<String, String>,
    /// A directory whose every file is a worker API key named after the file (a mounted Secret).
    pub worker_api_keys_dir: Option<String>,
    /// Retries in flight as a share of requests in flight.
    pub retry_budget: RetryBudgetConfig,
    /// Admission control and load shedding.
    pub overload: OverloadConfig,
    /// API-key tenants with model lists and limits (`docs/tenants.md`); empty = open.
    pub tenants: Vec<crate::tenants::TenantSpec>,
    /// A YAML file with the tenant list, reloaded when it changes (instead of `tenants`).
    pub tenants_file: Option<String>,
    /// Requests wait in priority bands, fairly across tenants, when every instance is full.
    pub flow_control: crate::flow::FlowConfig,
    /// TLS on `listen` (HTTP/1.1 and HTTP/2 by ALPN; certificate reloaded on change).
    pub tls: Option<crate::tls::TlsConfig>,
    /// Disaggregated prefill and decode (`docs/disaggregation.md`).
    pub disaggregation: crate::pipeline::pd::config::DisaggregationConfig,
    /// LoRA adapters routed over their base model's instances (`docs/lora.md`).
    pub adapters: Vec<switchyard_runtime::lora::AdapterSpec>,
    /// Traces: OTLP export (docs/observability.md).
    pub telemetry: crate::telemetry::TelemetryConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryKind {
    #[default]
    Static,
    Etcd,
    Kubernetes,
}

/// One statically configured worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    pub model: String,
    pub url: String,
    /// Defaults to the URL's `host:port`.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub engine: Engine,
    /// `chat` (default) or `completions` (the frontend applies the chat template).
    #[serde(default)]
    pub api: WorkerApi,
    /// APIs served natively besides what `api` implies (`responses`, `messages`); see
    /// docs/api.md. `--worker` spells the list `apis=chat+responses`.
    #[serde(default)]
    pub apis: Vec<switchyard_runtime::Api>,
    #[serde(default)]
    pub chat_template: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default = "one")]
    pub weight: f32,
    /// Path the active probe GETs on this worker (default: `probe.path`).
    #[serde(default)]
    pub health_path: Option<String>,
    /// File holding the API key the worker was started with (vLLM/SGLang/llama.cpp
    /// `--api-key`); sent as `Authorization: Bearer …` on requests, probes, canaries and
    /// scrapes, never logged.
    #[serde(default)]
    pub api_key_file: Option<String>,
    /// `both` (default), `prefill` or `decode` ([disaggregation](../docs/disaggregation.md)).
    #[serde(default)]
    pub role: switchyard_runtime::Role,
    /// A prefill worker's SGLang bootstrap port (`pd_protocol: sglang`).
    #[serde(default)]
    pub bootstrap_port: Option<u16>,
}

impl WorkerConfig {
    /// The worker's credentials, read from `api_key_file`.
    fn auth(&self, key: &str) -> Result<Option<WorkerAuth>, ConfigError> {
        let Some(path) = &self.api_key_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("{key}.api_key_file"), format!("{path}: {e}")))?;
        WorkerAuth::bearer(&text).map(Some).ok_or_else(|| {
            invalid(
                format!("{key}.api_key_file"),
                format!("{path} holds no usable key (empty, or characters a header cannot carry)"),
            )
        })
    }
}

fn one() -> f32 {
    1.0
}

/// Where a configured chat template's source is: exactly one of `path` and `inline`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateSource {
    /// A minijinja file, read at startup.
    pub path: Option<String>,
    /// The template itself.
    pub inline: Option<String>,
}

impl TemplateSource {
    fn compile(&self) -> Result<ChatTemplate, switchyard_runtime::TemplateError> {
        match (&self.path, &self.inline) {
            (Some(path), None) => ChatTemplate::from_file(path),
            (None, Some(text)) => ChatTemplate::from_source(text.clone()),
            _ => Err(switchyard_runtime::TemplateError::Compile(
                "set exactly one of `path` and `inline`".into(),
            )),
        }
    }
}

/// Limits on what clients may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    pub max_body_bytes: usize,
    /// A client must send its request headers within this time, milliseconds.
    pub header_read_timeout_ms: u64,
    /// Bytes of request line + headers accepted per request.
    pub max_header_bytes: usize,
    /// How long shutdown waits for in-flight requests, milliseconds.
    pub shutdown_grace_ms: u64,
    /// The whole request body must arrive within this time, milliseconds.
    pub body_timeout_ms: u64,
    /// A request body that sends nothing for this long is abandoned, milliseconds.
    pub body_idle_timeout_ms: u64,
    /// Header fields accepted per request (more is answered 431).
    pub max_headers: usize,
    /// On shutdown, keep accepting for this long with `/health` answering 503 (so load
    /// balancers stop sending traffic) before the listener closes, milliseconds.
    pub drain_delay_ms: u64,
    /// Request-body bytes held by all requests at once (read, parsed, being sent upstream).
    /// A body is charged before it is read; see `pipeline/body_budget.rs`. At least
    /// `max_body_bytes`, at most 4 GiB − 1.
    pub max_inflight_body_bytes: usize,
    /// How long a body waits for room in `max_inflight_body_bytes` before it is refused
    /// (503 `body_budget_exhausted`), milliseconds.
    pub body_budget_wait_ms: u64,
    /// Open client connections; more are answered 503 and closed. Unset: half of the
    /// process's soft `RLIMIT_NOFILE`.
    pub max_connections: Option<usize>,
    /// Open connections per client IP address; 0 = no per-address cap.
    pub max_connections_per_ip: usize,
    /// Idle time before TCP keepalive probes on client connections, milliseconds; 0 = off.
    pub tcp_keepalive_ms: u64,
    /// A client connection whose writes make no progress for this long (the client stopped
    /// reading) is closed, and its stream ends, milliseconds; 0 = never.
    pub write_timeout_ms: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024 * 1024,
            header_read_timeout_ms: 10_000,
            max_header_bytes: 64 * 1024,
            shutdown_grace_ms: 30_000,
            body_timeout_ms: 60_000,
            body_idle_timeout_ms: 10_000,
            max_headers: 128,
            drain_delay_ms: 0,
            max_inflight_body_bytes: 64 * 1024 * 1024,
            body_budget_wait_ms: 2_000,
            max_connections: None,
            max_connections_per_ip: 0,
            tcp_keepalive_ms: 60_000,
            write_timeout_ms: 30_000,
        }
    }
}

impl HttpLimits {
    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("limits.body_timeout_ms", self.body_timeout_ms),
            ("limits.body_idle_timeout_ms", self.body_idle_timeout_ms),
            ("limits.header_read_timeout_ms", self.header_read_timeout_ms),
        ];
        for (key, ms) in positive {
            if ms == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        // Room for a request line and a handful of headers; smaller refuses every client.
        if self.max_header_bytes < 1024 {
            return Err(invalid("limits.max_header_bytes", "must be at least 1024"));
        }
        if self.max_headers == 0 {
            return Err(invalid("limits.max_headers", "must be at least 1"));
        }
        if self.max_connections == Some(0) {
            return Err(invalid("limits.max_connections", "must be at least 1"));
        }
        // A body the pool could never hold would wait and be refused every time.
        if self.max_inflight_body_bytes < self.max_body_bytes {
            return Err(invalid(
                "limits.max_inflight_body_bytes",
                "must be at least limits.max_body_bytes",
            ));
        }
        if u32::try_from(self.max_inflight_body_bytes).is_err() {
            return Err(invalid(
                "limits.max_inflight_body_bytes",
                "must be below 4 GiB",
            ));
        }
        Ok(())
    }
}

/// How the frontend talks to workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    #[serde(flatten)]
    pub client: ClientConfig,
    /// Time allowed until the worker's response headers (and, for streams, first event).
    pub first_byte_timeout_ms: u64,
    /// A stream that sends nothing for this long is failed, milliseconds.
    pub stall_timeout_ms: u64,
    /// Extra instances tried when one fails before its first byte.
    pub max_retries: u32,
    /// Largest non-streamed worker response accepted, bytes.
    pub max_response_bytes: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            client: ClientConfig::default(),
            first_byte_timeout_ms: 120_000,
            stall_timeout_ms: 60_000,
            max_retries: 2,
            max_response_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8000)),
            discovery: DiscoveryKind::Static,
            workers: Vec::new(),
            chat_templates: BTreeMap::new(),
            etcd: None,
            etcd_prefix: None,
            etcd_auth: Default::default(),
            kubernetes_namespace: None,
            kubernetes: Default::default(),
            nats: None,
            nats_auth: Default::default(),
            routing: PolicyConfig::default(),
            models: BTreeMap::new(),
            admin_token: None,
            admin: Default::default(),
            plugins: Vec::new(),
            plugin_quarantine: QuarantinePolicy::default(),
            plugin_host: HostConfig::default(),
            record_decisions: None,
            migration_limit: 0,
            kv: Default::default(),
            tokenizer: None,
            tokenizers: BTreeMap::new(),
            limits: HttpLimits::default(),
            upstream: UpstreamConfig::default(),
            health: HealthConfig::default(),
            probe: ProbeConfig::default(),
            canary: CanaryConfig::default(),
            load_scrape: ScrapeConfig::default(),
            served_model_check: ServedModelsConfig::default(),
            worker_api_keys: BTreeMap::new(),
            worker_api_keys_dir: None,
            retry_budget: RetryBudgetConfig::default(),
            overload: OverloadConfig::default(),
            tenants: Vec::new(),
            tenants_file: None,
            flow_control: Default::default(),
            tls: None,
            disaggregation: Default::default(),
            adapters: Vec::new(),
            telemetry: Default::default(),
        }
    }
}

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl ServeConfig {
    /// Parses a YAML file.
    pub fn from_yaml_file(path: &str) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    pub fn from_yaml(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    /// Checks everything that can be checked before serving.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.health.validate().map_err(|m| invalid("health", m))?;
        self.canary.validate().map_err(|m| invalid("canary", m))?;
        self.kv.validate().map_err(|m| invalid("kv", m))?;
        self.overload
            .validate()
            .map_err(|m| invalid("overload", m))?;
        self.probe.validate().map_err(|m| invalid("probe", m))?;
        self.load_scrape
            .validate()
            .map_err(|m| invalid("load_scrape", m))?;
        self.served_model_check
            .validate()
            .map_err(|m| invalid("served_model_check", m))?;
        self.retry_budget
            .validate()
            .map_err(|m| invalid("retry_budget", m))?;
        self.limits.validate()?;
        self.disaggregation
            .validate()
            .map_err(|m| invalid("disaggregation", m))?;
        switchyard_runtime::lora::validate_adapters(&self.adapters)
            .map_err(|m| invalid("adapters", m))?;
        self.nats_auth
            .validate()
            .map_err(|m| invalid("nats_auth", m))?;
        self.etcd_auth
            .validate()
            .map_err(|e| invalid("etcd_auth", e.to_string()))?;
        validate_policy("routing", &self.routing)?;
        for (model, policy) in &self.models {
            validate_policy(&format!("models.{model}"), policy)?;
        }
        if self.discovery == DiscoveryKind::Static && self.workers.is_empty() {
            return Err(invalid(
                "workers",
                "static discovery needs at least one worker (--worker MODEL=URL)",
            ));
        }
        if self.discovery == DiscoveryKind::Etcd && self.etcd.is_none() {
            return Err(invalid("etcd", "`--discovery etcd` needs `--etcd URL`"));
        }
        self.plugin_host
            .validate()
            .map_err(|e| invalid("plugin_host", e.to_string()))?;
        if let Some(p) = &self.etcd_prefix {
            if !(p.starts_with('/') && p.ends_with('/')) {
                return Err(invalid(
                    "etcd_prefix",
                    format!("must start and end with '/': {p:?}"),
                ));
            }
        }
        if self.limits.max_body_bytes == 0 {
            return Err(invalid("limits.max_body_bytes", "must be greater than 0"));
        }
        if self.upstream.first_byte_timeout_ms == 0 || self.upstream.stall_timeout_ms == 0 {
            return Err(invalid("upstream", "timeouts must be greater than 0"));
        }
        self.plugin_quarantine
            .validate()
            .map_err(|m| invalid("plugin_quarantine", m))?;
        for (name, source) in &self.chat_templates {
            let key = format!("chat_templates.{name}");
            if !spec_check::is_template_name(name) {
                return Err(invalid(
                    key,
                    "names are [A-Za-z0-9._-], not starting with '.'",
                ));
            }
            source.compile().map_err(|e| invalid(key, e.to_string()))?;
        }
        for (i, worker) in self.workers.iter().enumerate() {
            worker.validate(&format!("workers[{i}]"), &self.chat_templates)?;
        }
        // Static workers pass the same check as discovered ones.
        for (i, spec) in self.instance_specs().iter().enumerate() {
            spec_check::check(spec)
                .map_err(|r| invalid(format!("workers[{i}].{}", r.reason.as_str()), r.message))?;
        }
        let mut names = std::collections::HashSet::new();
        for (i, plugin) in self.plugins.iter().enumerate() {
            let key = format!("plugins[{i}]");
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
        self.flow_control
            .validate()
            .map_err(|m| invalid("flow_control", m))?;
        self.admin
            .validate(self.admin_token.as_deref())
            .map_err(|m| invalid("admin", m))?;
        crate::tenants::Tenants::load(&self.tenants, self.tenants_file.as_deref())
            .map_err(|m| invalid("tenants", m))?;
        if let Some(token) = &self.admin_token {
            if token.len() < 8 {
                return Err(invalid("admin_token", "must be at least 8 characters"));
            }
        }
        Ok(())
    }

    /// Every chat template the frontend knows: `chat_templates`, plus each static worker's
    /// template file under the name [`worker_template_name`]. Reads the files.
    /// The worker API keys discovered specs may name, read from their files.
    pub fn worker_keys(&self) -> Result<BTreeMap<String, WorkerAuth>, ConfigError> {
        crate::worker_keys::load(&self.worker_api_keys, self.worker_api_keys_dir.as_deref())
            .map_err(|m| invalid("worker_api_keys", m))
    }

    pub fn template_catalog(&self) -> Result<TemplateCatalog, ConfigError> {
        let mut catalog = TemplateCatalog::default();
        for (name, source) in &self.chat_templates {
            let template = source
                .compile()
                .map_err(|e| invalid(format!("chat_templates.{name}"), e.to_string()))?;
            catalog.insert(name.clone(), template);
        }
        for (i, worker) in self.workers.iter().enumerate() {
            if let Some(path) = worker.template_path(&self.chat_templates) {
                let template = ChatTemplate::from_file(path)
                    .map_err(|e| invalid(format!("workers[{i}].chat_template"), e.to_string()))?;
                catalog.insert(worker_template_name(i), template);
            }
        }
        Ok(catalog)
    }

    /// Static workers as instance specs with unique ids.
    pub fn instance_specs(&self) -> Vec<InstanceSpec> {
        let mut seen = std::collections::HashSet::new();
        self.workers
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let auth = w.auth(&format!("workers[{i}]")).unwrap_or_else(|e| {
                    // `validate` read it moments ago; if it vanished since, say so (requests
                    // will get the worker's 401) rather than stop the frontend.
                    tracing::warn!(error = %e, "worker credentials unreadable");
                    None
                });
                let mut id = w.id.clone().unwrap_or_else(|| authority(&w.url));
                if !seen.insert(id.clone()) {
                    id = format!("{id}/{}", w.model);
                }
                InstanceSpec {
                    id,
                    model: w.model.clone(),
                    url: w.url.trim_end_matches('/').to_owned(),
                    engine: w.engine,
                    api: w.api,
                    apis: w.apis.iter().map(|a| a.as_str().to_owned()).collect(),
                    chat_template: match w.template_path(&self.chat_templates) {
                        Some(_) => Some(worker_template_name(i)),
                        None => w.chat_template.clone(),
                    },
                    chat_template_text: None,
                    labels: w.labels.clone(),
                    weight: w.weight,
                    canary: None,
                    health_path: w.health_path.clone(),
                    role: w.role,
                    bootstrap_port: w.bootstrap_port,
                    auth,
                    api_key_name: None,
                }
            })
            .collect()
    }

    /// Routing settings for `model`.
    pub fn policy_for(&self, model: &str) -> &PolicyConfig {
        self.models.get(model).unwrap_or(&self.routing)
    }
}

fn validate_policy(key: &str, policy: &PolicyConfig) -> Result<(), ConfigError> {
    switchyard_runtime::policy::build(policy)
        .map(|_| ())
        .map_err(|m| invalid(format!("{key}.policy"), m))
}

/// The catalog name of static worker `i`'s template file.
fn worker_template_name(i: usize) -> String {
    format!("workers.{i}")
}

impl WorkerConfig {
    /// This worker's `chat_template` when it is a file path (the operator's own config may
    /// name files) rather than a key of `chat_templates`.
    fn template_path<'a>(&'a self, named: &BTreeMap<String, TemplateSource>) -> Option<&'a str> {
        self.chat_template
            .as_deref()
            .filter(|t| !named.contains_key(*t))
    }

    fn validate(
        &self,
        key: &str,
        named: &BTreeMap<String, TemplateSource>,
    ) -> Result<(), ConfigError> {
        if self.model.trim().is_empty() {
            return Err(invalid(format!("{key}.model"), "must not be empty"));
        }
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|e| invalid(format!("{key}.url"), format!("`{}`: {e}", self.url)))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(invalid(
                format!("{key}.url"),
                format!("`{}` must be an http:// or https://host:port URL", self.url),
            ));
        }
        if !(self.weight > 0.0 && self.weight.is_finite()) {
            return Err(invalid(
                format!("{key}.weight"),
                "must be a positive number",
            ));
        }
        if let Some(path) = self.template_path(named) {
            ChatTemplate::from_file(path)
                .map_err(|e| invalid(format!("{key}.chat_template"), e.to_string()))?;
        }
        self.auth(key)?;
        if let Some(path) = &self.health_path {
            if !path.starts_with('/') {
                return Err(invalid(
                    format!("{key}.health_path"),
                    format!("`{path}` must start with `/`"),
                ));
            }
        }
        Ok(())
    }
}

fn authority(url: &str) -> String {
    url.parse::<http::Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| url.to_owned())
}

/// Parses a `--worker MODEL=URL[;key=value…]` flag. The options are the YAML worker keys
/// (`id`, `engine`, `api`, `apis` joined by `+`, `weight`, `health_path`, `chat_template`), so a worker that needs
/// one (an engine kind, a probe path) does not force a YAML file on its operator.
pub fn parse_worker_flag(flag: &str) -> Result<WorkerConfig, String> {
    let mut parts = flag.split(';');
    let head = parts.next().unwrap_or_default();
    let (model, url) = head
        .split_once('=')
        .ok_or_else(|| format!("`{flag}` is not MODEL=URL[;key=value…]"))?;
    let mut fields = serde_json::Map::new();
    fields.insert("model".into(), model.into());
    fields.insert("url".into(), url.into());
    for option in parts.filter(|p| !p.is_empty()) {
        let (key, value) = option
            .split_once('=')
            .ok_or_else(|| format!("worker option `{option}` is not key=value"))?;
        let value = match key {
            "weight" => value
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(serde_json::Value::Number)
                .ok_or_else(|| format!("worker option weight=`{value}` is not a number"))?,
            "apis" => value.split('+').map(serde_json::Value::from).collect(),
            "bootstrap_port" => value
                .parse::<u16>()
                .map(serde_json::Value::from)
                .map_err(|_| format!("worker option bootstrap_port=`{value}` is not a port"))?,
            _ => value.into(),
        };
        if fields.insert(key.to_owned(), value).is_some() {
            return Err(format!("worker option `{key}` given twice"));
        }
    }
    serde_json::from_value(serde_json::Value::Object(fields)).map_err(|e| format!("`{flag}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_flags_take_per_worker_options() {
        let w = parse_worker_flag("m=http://h:1").unwrap();
        assert_eq!((w.engine, w.health_path), (Engine::Generic, None));
        let w = parse_worker_flag(
            "m=http://h:1;engine=llamacpp;health_path=/v1/models;weight=2.5;id=w1;api=completions",
        )
        .unwrap();
        assert_eq!(w.engine, Engine::Llamacpp);
        assert_eq!(w.health_path.as_deref(), Some("/v1/models"));
        assert_eq!((w.weight, w.id.as_deref()), (2.5, Some("w1")));
        assert_eq!(w.api, WorkerApi::Completions);
        let w = parse_worker_flag("m=http://h:1;role=prefill;bootstrap_port=8998").unwrap();
        assert_eq!(w.role, switchyard_runtime::Role::Prefill);
        assert_eq!(w.bootstrap_port, Some(8998));
        let w = parse_worker_flag("m=http://h:1;apis=chat+responses+messages").unwrap();
        let native = &w.apis[1..];
        assert_eq!(
            native,
            [
                switchyard_runtime::Api::Responses,
                switchyard_runtime::Api::Messages
            ]
        );
        for (flag, named) in [
            ("m=http://h:1;apis=chat+gemini", "gemini"),
            ("m=http://h:1;role=encode", "encode"),
            ("m=http://h:1;bootstrap_port=70000", "bootstrap_port"),
            ("m=http://h:1;engin=vllm", "engin"),
            ("m=http://h:1;engine=tgi", "tgi"),
            ("m=http://h:1;weight=heavy", "weight"),
            ("m=http://h:1;engine", "engine"),
            ("m=http://h:1;id=a;id=b", "id"),
            ("http://h:1", "MODEL=URL"),
        ] {
            let err = parse_worker_flag(flag).unwrap_err();
            assert!(err.contains(named), "{flag}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = ServeConfig::from_yaml("routing:\n  polcy: p2c\n").unwrap_err();
        assert!(err.contains("polcy"), "{err}");
        let err = ServeConfig::from_yaml("listen: 1.2.3.4:80\nworkerz: []\n").unwrap_err();
        assert!(err.contains("workerz"), "{err}");
    }

    #[test]
    fn full_yaml_parses_and_validates() {
        let cfg = ServeConfig::from_yaml(
            "listen: 127.0.0.1:9000\nrouting:\n  policy: session\n  session_header: x-user\nmodels:\n  big:\n    policy: p2c\nworkers:\n  - model: small\n    url: http://127.0.0.1:8001\n    api: completions\n  - model: big\n    url: http://127.0.0.1:8002\n    weight: 2\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.policy_for("big").policy, "p2c");
        assert_eq!(cfg.policy_for("small").policy, "session");
        let specs = cfg.instance_specs();
        assert_eq!(specs[0].id, "127.0.0.1:8001");
        assert_eq!(specs[0].api, WorkerApi::Completions);
    }

    #[test]
    fn validation_names_the_bad_key() {
        let mut cfg = ServeConfig::default();
        cfg.workers.push(parse_worker_flag("m=ftp://x").unwrap());
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("workers[0].url"), "{err}");

        let mut cfg = ServeConfig::default();
        cfg.workers
            .push(parse_worker_flag("m=http://127.0.0.1:1").unwrap());
        cfg.models.insert(
            "m".into(),
            PolicyConfig {
                policy: "nope".into(),
                ..Default::default()
            },
        );
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("models.m.policy"), "{err}");

        let mut cfg = ServeConfig::default();
        cfg.workers
            .push(parse_worker_flag("m=http://127.0.0.1:1").unwrap());
        cfg.workers[0].chat_template = Some("/no/such/file.jinja".into());
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("workers[0].chat_template"), "{err}");

        assert!(ServeConfig::default()
            .validate()
            .unwrap_err()
            .to_string()
            .contains("workers"));
    }

    #[test]
    fn reliability_settings_are_validated_by_key() {
        let base = || {
            let mut cfg = ServeConfig::default();
            cfg.workers
                .push(parse_worker_flag("m=http://127.0.0.1:1").unwrap());
            cfg
        };
        assert!(base().validate().is_ok());
        type Break = fn(&mut ServeConfig);
        let cases: [(&str, Break); 8] = [
            ("limits.max_inflight_body_bytes", |c| {
                c.limits.max_inflight_body_bytes = c.limits.max_body_bytes - 1
            }),
            ("limits.max_inflight_body_bytes", |c| {
                c.limits.max_inflight_body_bytes = 1 << 32
            }),
            ("limits.max_header_bytes", |c| {
                c.limits.max_header_bytes = 512
            }),
            ("limits.max_headers", |c| c.limits.max_headers = 0),
            ("limits.header_read_timeout_ms", |c| {
                c.limits.header_read_timeout_ms = 0
            }),
            ("limits.body_idle_timeout_ms", |c| {
                c.limits.body_idle_timeout_ms = 0
            }),
            ("probe.path", |c| c.probe.path = "health".into()),
            ("retry_budget.percent", |c| c.retry_budget.percent = 500),
        ];
        for (key, break_it) in cases {
            let mut cfg = base();
            break_it(&mut cfg);
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let cfg = ServeConfig::from_yaml(
            "overload:\n  panic_policy: route-all\nworkers:\n  - model: m\n    url: http://127.0.0.1:1\n",
        )
        .unwrap();
        assert_eq!(
            cfg.overload.panic_policy,
            crate::pipeline::health_filter::PanicPolicy::RouteAll
        );
        assert!(ServeConfig::from_yaml("overload:\n  panic_policy: yolo\n").is_err());
    }

    #[test]
    fn plugin_host_comes_from_yaml_and_is_validated_by_key() {
        let cfg = ServeConfig::from_yaml(
            "workers:\n  - { model: m, url: \"http://127.0.0.1:1\" }\nplugin_host: { epochTick: 2ms, maxInstances: 16, maxMemoryBytes: 33554432 }\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            cfg.plugin_host.epoch_tick,
            std::time::Duration::from_millis(2)
        );
        assert_eq!(cfg.plugin_host.max_instances, 16);
        assert_eq!(cfg.plugin_host.max_memory_bytes, 32 << 20);
        let bad = ServeConfig::from_yaml(
            "workers:\n  - { model: m, url: \"http://127.0.0.1:1\" }\nplugin_host: { maxInstances: 0 }\n",
        )
        .unwrap();
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("plugin_host") && err.contains("maxInstances"),
            "{err}"
        );
        assert!(ServeConfig::from_yaml("plugin_host: { epochtick: 2ms }\n").is_err());
    }

    #[test]
    fn etcd_prefix_and_partial_kv_weights_from_yaml() {
        let cfg = ServeConfig::from_yaml(
            "discovery: etcd\netcd: http://127.0.0.1:2379\netcd_prefix: /blue/\nkv:\n  weights: {overlap_weight: 2}\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.etcd_prefix.as_deref(), Some("/blue/"));
        let defaults = switchyard_kv::KvCostWeights::default();
        assert_eq!(cfg.kv.weights.overlap_weight, 2.0);
        assert_eq!(cfg.kv.weights.decode_weight, defaults.decode_weight);
        let bad = ServeConfig::from_yaml(
            "discovery: etcd\netcd: http://127.0.0.1:2379\netcd_prefix: blue\n",
        )
        .unwrap();
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("etcd_prefix"), "{err}");
    }

    #[test]
    fn duplicate_urls_get_distinct_ids() {
        let mut cfg = ServeConfig::default();
        cfg.workers
            .push(parse_worker_flag("a=http://127.0.0.1:1").unwrap());
        cfg.workers
            .push(parse_worker_flag("b=http://127.0.0.1:1").unwrap());
        let ids: Vec<_> = cfg.instance_specs().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, vec!["127.0.0.1:1", "127.0.0.1:1/b"]);
        assert!(parse_worker_flag("no-equals").is_err());
    }
}

#[cfg(test)]
#[path = "config_templates_tests.rs"]
mod templates_tests;

//! `switchyard serve` configuration: one serde struct per section, each with defaults and
//! `validate()`, under a small top level.
//!
//! Precedence: command-line flag > `SWITCHYARD_*` environment variable > YAML file > default.
//! Unknown YAML keys are errors that name the whole key path, so a typo never silently does
//! nothing. Keys of the flat layout before sections are still read for one release through
//! [`legacy`], each with a deprecation warning.
//!
//! The top level holds the sections and the entity collections (`workers`, `models`,
//! `chat_templates`, `tenants`, `adapters`): a list of things the operator names reads better
//! at the top than nested in a section (docs/configuration.md states the rule).

mod disaggregation;
mod discovery;
mod events;
mod http;
pub mod legacy;
mod plugins;
mod reliability;
mod routing;
mod workers;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchyard_runtime::PolicyConfig;

pub use disaggregation::{DisaggregationConfig, OnPrefillFailure, PdProtocol};
pub use discovery::{DiscoveryKind, DiscoverySection, EtcdSection, KubernetesSection};
pub use events::{EventsSection, NatsSection};
pub use http::{HttpLimits, HttpSection};
pub use plugins::PluginsSection;
pub use reliability::{ReliabilitySection, UpstreamConfig};
pub use routing::RoutingSection;
pub use workers::{parse_worker_flag, TemplateSource, WorkerConfig};

/// The whole frontend configuration (the YAML file's schema).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Listen address, TLS, client limits, the admin API.
    pub http: HttpSection,
    /// Where instances come from.
    pub discovery: DiscoverySection,
    /// NATS events and engine metrics scraping.
    pub events: EventsSection,
    /// The default routing policy, prefix hashing, tokenizers, disaggregation.
    pub routing: RoutingSection,
    /// Wasm plugins, their host and quarantine.
    pub plugins: PluginsSection,
    /// Timeouts, retries, health, admission, flow control, migration.
    pub reliability: ReliabilitySection,
    /// Static workers.
    pub workers: Vec<WorkerConfig>,
    /// Per-model routing overrides (same keys as the policy keys of `routing`).
    pub models: BTreeMap<String, PolicyConfig>,
    /// Chat templates by name, for completions-only workers: `{path: FILE}` or
    /// `{inline: TEXT}`. Discovered workers (etcd, Kubernetes) pick one by name; files are
    /// read only from here, at startup.
    pub chat_templates: BTreeMap<String, TemplateSource>,
    /// API-key tenants with model lists and limits (`docs/tenants.md`); empty = open.
    pub tenants: Vec<crate::tenants::TenantSpec>,
    /// A YAML file with the tenant list, reloaded when it changes (instead of `tenants`).
    pub tenants_file: Option<String>,
    /// LoRA adapters routed over their base model's instances (`docs/lora.md`).
    pub adapters: Vec<switchyard_runtime::lora::AdapterSpec>,
    /// Traces: OTLP export (docs/observability.md).
    pub telemetry: crate::telemetry::TelemetryConfig,
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

    /// Parses YAML text, logging one deprecation warning per old key it uses.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        let (config, deprecated) = Self::from_yaml_reporting(text)?;
        for d in &deprecated {
            tracing::warn!(old = %d.old, new = %d.new, "{d}");
        }
        Ok(config)
    }

    /// Parses YAML text; returns the old keys it used beside the configuration.
    pub fn from_yaml_reporting(text: &str) -> Result<(Self, Vec<legacy::Deprecation>), String> {
        if text.trim().is_empty() {
            return Ok((Self::default(), Vec::new()));
        }
        let mut value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        if value.is_null() {
            return Ok((Self::default(), Vec::new()));
        }
        let deprecated = legacy::rewrite(&mut value)?;
        let config = serde_path_to_error::deserialize(value).map_err(describe)?;
        Ok((config, deprecated))
    }

    /// Checks everything that can be checked before serving.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.http.validate()?;
        self.discovery.validate(self.workers.len())?;
        self.events.validate()?;
        self.routing.validate()?;
        for (model, policy) in &self.models {
            routing::validate_policy(&format!("models.{model}"), policy)?;
        }
        self.plugins.validate()?;
        self.reliability.validate()?;
        switchyard_runtime::lora::validate_adapters(&self.adapters)
            .map_err(|m| invalid("adapters", m))?;
        self.validate_workers()?;
        crate::tenants::Tenants::load(&self.tenants, self.tenants_file.as_deref())
            .map_err(|m| invalid("tenants", m))?;
        Ok(())
    }

    /// Routing settings for `model`.
    pub fn policy_for(&self, model: &str) -> &PolicyConfig {
        self.models.get(model).unwrap_or(&self.routing.default)
    }
}

/// A typed-parse error with the full key path: ``unknown key `reliability.upstream.bogus` ``
/// rather than serde's bare field name.
fn describe(e: serde_path_to_error::Error<serde_yaml::Error>) -> String {
    let path = e.path().to_string();
    let inner = e.into_inner().to_string();
    // The path usually ends at the unknown key itself; inside a flattened struct it may stop
    // at the section.
    let at = |name: &str| match path.as_str() {
        "." | "" => name.to_owned(),
        p if p == name || p.ends_with(&format!(".{name}")) => p.to_owned(),
        p => format!("{p}.{name}"),
    };
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        if let Some((name, tail)) = rest.split_once('`') {
            return format!("unknown key `{}`{tail}", at(name));
        }
    }
    match path.as_str() {
        "." | "" => inner,
        p => format!("`{p}`: {inner}"),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod templates_tests;

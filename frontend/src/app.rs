//! The frontend's shared state, built once from the validated configuration.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use http::HeaderName;
use switchyard_kv::PromptHasher;
use switchyard_runtime::policy::kv::{KvRouter, KvSlot};
use switchyard_runtime::{policy, Policy, PolicyConfig, Registry, WorkerClient};

use switchyard_runtime::health::{RetryBudget, RetryPermit};
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::config::{ConfigError, ServeConfig};
use crate::conn_limits::ConnLimits;
use crate::metrics::Metrics;
use crate::pipeline::body_budget::BodyBudget;
use crate::plugins::PluginSet;

/// How one model is routed.
#[derive(Debug, Clone)]
pub struct ModelRouting {
    pub policy: Arc<dyn Policy>,
    pub session_header: HeaderName,
    /// The model's TTFT target, ms (`ttft_slo_ms`).
    pub ttft_slo_ms: Option<f64>,
}

impl ModelRouting {
    fn build(key: &str, config: &PolicyConfig, kv: &KvSlot) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            key: key.to_owned(),
            message,
        };
        Ok(Self {
            policy: policy::build_with_kv(config, kv).map_err(&invalid)?,
            session_header: HeaderName::try_from(config.session_header.as_str())
                .map_err(|e| invalid(format!("session_header: {e}")))?,
            ttft_slo_ms: config.ttft_slo_ms,
        })
    }
}

#[derive(Debug)]
pub struct App {
    pub config: ServeConfig,
    pub registry: Arc<Registry>,
    pub client: WorkerClient,
    pub metrics: Metrics,
    default_routing: ModelRouting,
    per_model: HashMap<String, ModelRouting>,
    /// Set on shutdown: `/health` turns 503 so load balancers stop sending traffic.
    pub draining: AtomicBool,
    /// Cancelled when the shutdown grace ends: streams still open end with an in-band error
    /// event and `[DONE]` instead of being cut silently.
    pub grace_over: CancellationToken,
    /// Shared by every request: retries in flight are a bounded share of requests.
    pub retry_budget: RetryBudget,
    /// The concurrency limit and its wait queue.
    pub admission: Admission,
    /// Request-body bytes in flight (`limits.max_inflight_body_bytes`).
    pub body_budget: BodyBudget,
    /// Open client connections and their caps.
    pub connections: Arc<ConnLimits>,
    /// Loaded Wasm plugins (empty unless configured).
    pub plugins: Arc<PluginSet>,
    /// Prompt → prefix block hashes, per model (see [`PromptHashers`]).
    pub prompt_hashers: PromptHashers,
    /// API-key tenants and their limits (open when none are configured).
    pub tenants: Arc<crate::tenants::Tenants>,
    /// The waiting room in front of saturated instances.
    pub flow: Arc<crate::flow::FlowControl>,
    /// TLS on the public listener, when configured.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// LoRA adapters: the catalog and on-demand loads (`docs/lora.md`).
    pub lora: crate::lora::Lora,
    /// The `kv` policy's settings and overlap source, shared by this frontend's policies.
    pub kv: KvSlot,
    /// The NATS side while `--nats` runs (`/health`, metrics, replica count).
    pub bus: crate::events::BusSlot,
    /// Writes the access log's lines to stdout off the request path.
    pub access_log: crate::pipeline::access_writer::AccessWriter,
}

/// How each model's prompts are cut into prefix blocks: with the model's tokenizer (config
/// `tokenizers.<model>`, else `tokenizer`) or over bytes. Every tokenizer file is loaded once,
/// at startup, so a bad file stops the frontend instead of silently hashing bytes.
#[derive(Debug)]
pub struct PromptHashers {
    default: PromptHasher,
    per_model: HashMap<String, PromptHasher>,
}

impl PromptHashers {
    pub fn load(config: &ServeConfig) -> Result<Self, ConfigError> {
        let block_size = config.routing.kv.block_size;
        let load = |key: String, path: &str| {
            PromptHasher::load(block_size, Some(path)).map_err(|e| ConfigError::Invalid {
                key,
                message: e.to_string(),
            })
        };
        let default = match &config.routing.tokenizer {
            Some(path) => load("routing.tokenizer".to_owned(), path)?,
            None => PromptHasher::bytes(block_size),
        };
        let per_model = config
            .routing
            .tokenizers
            .iter()
            .map(|(model, path)| {
                Ok((
                    model.clone(),
                    load(format!("routing.tokenizers.{model}"), path)?,
                ))
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self { default, per_model })
    }

    pub fn get(&self, model: &str) -> &PromptHasher {
        self.per_model.get(model).unwrap_or(&self.default)
    }
}

impl App {
    pub fn new(
        config: ServeConfig,
        registry: Arc<Registry>,
        plugins: Arc<PluginSet>,
    ) -> Result<Arc<Self>, ConfigError> {
        let client =
            WorkerClient::try_new(&config.reliability.upstream.client).map_err(|message| {
                ConfigError::Invalid {
                    key: "upstream.tls".into(),
                    message,
                }
            })?;
        Self::with_client(config, registry, plugins, client)
    }

    /// [`Self::new`] with the worker client given: one over a custom transport
    /// ([`WorkerClient::from_transport`]) runs the whole request path without sockets — a
    /// scripted fake worker in unit tests, an embedder's in-process engine.
    pub fn with_client(
        config: ServeConfig,
        registry: Arc<Registry>,
        plugins: Arc<PluginSet>,
        client: WorkerClient,
    ) -> Result<Arc<Self>, ConfigError> {
        let kv = KvSlot::new(KvRouter::approximate(config.routing.kv.clone()));
        let default_routing = ModelRouting::build("routing", &config.routing.default, &kv)?;
        let per_model = config
            .models
            .iter()
            .map(|(model, c)| {
                Ok((
                    model.clone(),
                    ModelRouting::build(&format!("models.{model}"), c, &kv)?,
                ))
            })
            .collect::<Result<_, ConfigError>>()?;
        let prompt_hashers = PromptHashers::load(&config)?;
        let tenants =
            crate::tenants::Tenants::load(&config.tenants, config.tenants_file.as_deref())
                .map_err(|message| ConfigError::Invalid {
                    key: "tenants".into(),
                    message,
                })?;
        let metrics = Metrics::new().map_err(|e| ConfigError::Invalid {
            key: "metrics".into(),
            message: e.to_string(),
        })?;
        let admission = Admission::new(&config.reliability.overload, metrics.shed.clone());
        let app =
            Arc::new(Self {
                tenants: Arc::new(tenants),
                flow: Arc::new(crate::flow::FlowControl::new(
                    &config.reliability.flow_control,
                )),
                tls: match &config.http.tls {
                    Some(tls) => Some(crate::tls::Tls::load(tls).map_err(|message| {
                        ConfigError::Invalid {
                            key: "tls".into(),
                            message,
                        }
                    })?),
                    None => None,
                },
                prompt_hashers,
                lora: crate::lora::Lora::new(&config.adapters, Arc::clone(&registry.adapters)),
                client,
                access_log: crate::pipeline::access_writer::AccessWriter::new(
                    metrics.access_log_dropped.clone(),
                ),
                metrics,
                kv,
                bus: Default::default(),
                registry,
                default_routing,
                per_model,
                draining: AtomicBool::new(false),
                grace_over: CancellationToken::new(),
                retry_budget: RetryBudget::new(config.reliability.retry_budget.clone()),
                admission,
                body_budget: BodyBudget::new(
                    config.http.limits.max_inflight_body_bytes,
                    std::time::Duration::from_millis(config.http.limits.body_budget_wait_ms),
                ),
                connections: Arc::new(ConnLimits::new(&config.http.limits)),
                plugins,
                config,
            });
        crate::metrics::scrape::register(&app).map_err(|e| ConfigError::Invalid {
            key: "metrics".into(),
            message: e.to_string(),
        })?;
        Ok(app)
    }

    /// A retry-budget permit for one more re-issue (a retry or a migration), judged against
    /// the requests in flight now; `None` — counted in
    /// `switchyard_retry_budget_exhausted_total` — when the budget is spent.
    pub fn retry_permit(&self) -> Option<RetryPermit<'_>> {
        let active = u64::try_from(self.metrics.in_flight.get()).unwrap_or(0);
        let permit = self.retry_budget.try_acquire(active);
        if permit.is_none() {
            self.metrics.retry_budget_exhausted.inc();
        }
        permit
    }

    pub fn routing(&self, model: &str) -> &ModelRouting {
        self.per_model.get(model).unwrap_or(&self.default_routing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_keys_parse_and_bad_files_name_key_and_path() {
        let cfg = ServeConfig::from_yaml(
            "routing:\n  tokenizer: /no/such/global.json\n  tokenizers:\n    m: /no/such/m.json\n",
        )
        .unwrap();
        assert_eq!(
            cfg.routing.tokenizer.as_deref(),
            Some("/no/such/global.json")
        );
        let err = PromptHashers::load(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("`routing.tokenizer`") && err.contains("/no/such/global.json"),
            "{err}"
        );

        let cfg = ServeConfig::from_yaml("tokenizers:\n  m: /no/such/m.json\n").unwrap();
        let err = PromptHashers::load(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("routing.tokenizers.m") && err.contains("/no/such/m.json"),
            "{err}"
        );
    }

    #[test]
    fn without_tokenizers_every_model_hashes_bytes() {
        let hashers = PromptHashers::load(&ServeConfig::default()).unwrap();
        assert!(!hashers.get("any").is_tokenized());
        assert_eq!(
            hashers.get("any").block_size(),
            ServeConfig::default().routing.kv.block_size
        );
    }
}

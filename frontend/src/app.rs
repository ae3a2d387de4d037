//! The frontend's shared state, built once from the validated configuration.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use http::HeaderName;
use switchyard_runtime::{policy, Policy, PolicyConfig, Registry, WorkerClient};

use switchyard_runtime::health::RetryBudget;

use crate::admission::Admission;
use crate::config::{ConfigError, ServeConfig};
use crate::metrics::Metrics;
use crate::plugins::PluginSet;

/// How one model is routed.
#[derive(Debug, Clone)]
pub struct ModelRouting {
    pub policy: Arc<dyn Policy>,
    pub session_header: HeaderName,
}

impl ModelRouting {
    fn build(key: &str, config: &PolicyConfig) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            key: key.to_owned(),
            message,
        };
        Ok(Self {
            policy: policy::build(config).map_err(&invalid)?,
            session_header: HeaderName::try_from(config.session_header.as_str())
                .map_err(|e| invalid(format!("session_header: {e}")))?,
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
    /// Shared by every request: retries in flight are a bounded share of requests.
    pub retry_budget: RetryBudget,
    /// The concurrency limit and its wait queue.
    pub admission: Admission,
    /// Loaded Wasm plugins (empty unless configured).
    pub plugins: Arc<PluginSet>,
}

impl App {
    pub fn new(
        config: ServeConfig,
        registry: Arc<Registry>,
        plugins: Arc<PluginSet>,
    ) -> Result<Arc<Self>, ConfigError> {
        let default_routing = ModelRouting::build("routing", &config.routing)?;
        let per_model = config
            .models
            .iter()
            .map(|(model, c)| {
                Ok((
                    model.clone(),
                    ModelRouting::build(&format!("models.{model}"), c)?,
                ))
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(Arc::new(Self {
            client: WorkerClient::new(&config.upstream.client),
            metrics: Metrics::default(),
            registry,
            default_routing,
            per_model,
            draining: AtomicBool::new(false),
            retry_budget: RetryBudget::new(config.retry_budget.clone()),
            admission: Admission::new(&config.overload),
            plugins,
            config,
        }))
    }

    pub fn routing(&self, model: &str) -> &ModelRouting {
        self.per_model.get(model).unwrap_or(&self.default_routing)
    }
}

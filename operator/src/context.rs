//! State shared by every reconcile.

use std::sync::Arc;

use kube::runtime::events::{Recorder, Reporter};
use kube::Client;
use switchyard_k8s::source::{HttpFetcher, SourceFetcher, UrlFetcher};

use crate::backoff::Backoff;
use crate::children::OwnedChildren;
use crate::metrics::Metrics;
use crate::ownership::PoolClaims;
use crate::pod_extras::WorkerDefaults;
use crate::validator::ComponentValidator;
use crate::Result;

/// What reconcilers need: the client, metrics, per-object backoff, the plugin fetcher and the
/// component validator.
pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub backoff: Backoff,
    pub fetcher: SourceFetcher,
    pub validator: Arc<dyn ComponentValidator>,
    /// Settings every worker pod gets (the chart's pull secrets).
    pub worker_defaults: WorkerDefaults,
    /// Every listed WorkerPool and the explicit model owners: who owns which model.
    pub pool_claims: PoolClaims,
    /// The Deployments and Services this operator applied: it writes no others.
    pub children: OwnedChildren,
    /// Publishes Events on the objects it reconciles (one cache, so repeats become a series).
    pub recorder: Recorder,
    /// The engines' adapter API (LoraAdapter reconciles).
    pub lora: crate::lora_engine::LoraEngine,
    /// Worker API keys by `<namespace>.<frontendKey>` file name, for adapter loads on pools
    /// with `apiKey` (`--worker-api-keys-dir`).
    pub worker_keys_dir: Option<std::path::PathBuf>,
}

impl Context {
    /// Production context: HTTPS fetcher and the build's validator.
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        validator: Arc<dyn ComponentValidator>,
    ) -> Result<Self> {
        let urls: Arc<dyn UrlFetcher> = Arc::new(HttpFetcher::new()?);
        Ok(Self::with_parts(client, metrics, validator, urls))
    }

    pub fn with_parts(
        client: Client,
        metrics: Arc<Metrics>,
        validator: Arc<dyn ComponentValidator>,
        urls: Arc<dyn UrlFetcher>,
    ) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter()),
            fetcher: SourceFetcher::new(client.clone(), urls),
            client,
            metrics,
            backoff: Backoff::default(),
            validator,
            worker_defaults: WorkerDefaults::default(),
            pool_claims: PoolClaims::default(),
            children: OwnedChildren::default(),
            lora: Default::default(),
            worker_keys_dir: None,
        }
    }
}

/// Who reports Events: the operator, and its pod when the chart sets `POD_NAME`.
fn reporter() -> Reporter {
    Reporter {
        controller: switchyard_k8s::labels::FIELD_MANAGER.to_string(),
        instance: std::env::var("POD_NAME").ok(),
    }
}

//! LoRA adapters in the request path: a request whose `model` is a configured adapter routes
//! among the instances of the adapter's base model (the body keeps the adapter's name: the
//! engine selects the adapter by it), ranked by residency against load
//! ([`switchyard_runtime::lora::cost`]); `/v1/models` lists each adapter with its `parent`.
//! See `docs/lora.md`.

pub mod engine_api;
pub mod load;
pub mod metrics;
pub mod models;
pub mod route;
pub mod single_flight;

use std::sync::Arc;

use switchyard_runtime::lora::{AdapterSpec, Catalog, Discovered};

pub use route::{adapter_for, routing_model};

/// The frontend's adapter state, one per process.
#[derive(Debug, Default)]
pub struct Lora {
    pub catalog: Catalog,
    /// On-demand loads in flight, one per (instance, adapter).
    pub flights: single_flight::SingleFlight,
    pub metrics: metrics::LoraMetrics,
}

impl Lora {
    /// The `switchyard_lora_*` series, for the scrape-time collector.
    pub fn collect_metrics(&self, s: &mut switchyard_runtime::exposition::Scrape) {
        self.metrics.collect(!self.catalog.is_empty(), s);
    }

    /// The configured `adapters` plus those discovery declares (`registry.adapters`).
    pub fn new(adapters: &[AdapterSpec], discovered: Arc<Discovered>) -> Self {
        Self {
            catalog: Catalog::with_discovered(adapters, discovered),
            flights: Default::default(),
            metrics: Default::default(),
        }
    }
}

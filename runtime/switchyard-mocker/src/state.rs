//! What every request handler shares: the configuration and the simulated engine's state.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use switchyard_kv::{BlockHash, PromptHasher};
use switchyard_runtime::ChatTemplate;
use tokio::sync::watch;

use crate::faults::Faults;
use crate::kv_cache::{Allocation, KvCache};
use crate::metrics::Metrics;
use crate::scheduler::Scheduler;
use crate::{MockerArgs, MockerHooks};

/// The simulated engine behind one listener.
#[derive(Debug)]
pub(crate) struct Shared {
    pub args: MockerArgs,
    pub template: ChatTemplate,
    /// Prompt → block hashes; the frontend uses the same code and configuration.
    pub hasher: PromptHasher,
    pub kv: Mutex<KvCache>,
    pub scheduler: Scheduler,
    pub metrics: Arc<Metrics>,
    pub faults: Faults,
    pub ttft: Duration,
    pub itl: Duration,
    /// `GET /v1/models`, serialized once.
    pub models_json: Bytes,
    /// Becomes true when the mocker shuts down (releases hanging requests).
    pub shutdown: watch::Receiver<bool>,
    /// Disaggregation: this engine's id, KV held for pulls, the client that pulls.
    pub pd: crate::pd::PdState,
    /// Prefill/decode interference (`--prefill-interference`).
    pub gpu: crate::interference::Gpu,
    /// LoRA adapters (`--max-loras`).
    pub lora: crate::lora::Adapters,
    /// Requests received per API route (`switchyard_mocker_route_requests_total`).
    pub routes: crate::native_api::RouteCounts,
    /// The `traceparent` headers received (`GET /debug/traceparents`).
    pub traceparents: crate::trace_log::TraceLog,
    next_id: AtomicU64,
}

impl Shared {
    pub fn new(
        args: MockerArgs,
        hasher: PromptHasher,
        hooks: MockerHooks,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let metrics = hooks.load.metrics.clone();
        metrics
            .kv_blocks_total
            .store(args.kv_blocks as u64, Relaxed);
        let models = crate::model_card::list(vec![crate::model_card::card(&args)]);
        Self {
            template: ChatTemplate::default(),
            hasher,
            kv: Mutex::new(KvCache::new(args.kv_blocks, hooks.kv_events)),
            scheduler: Scheduler::new(args.max_running, metrics.clone()),
            faults: Faults::new(&args),
            ttft: Duration::from_secs_f64(args.ttft_ms / 1000.0),
            itl: Duration::from_secs_f64(args.itl_ms / 1000.0),
            models_json: Bytes::from(serde_json::to_vec(&models).unwrap_or_default()),
            metrics,
            shutdown,
            pd: crate::pd::PdState::new(&args.pd),
            gpu: crate::interference::Gpu::default(),
            lora: crate::lora::Adapters::new(&args.lora),
            routes: crate::native_api::RouteCounts::default(),
            traceparents: Default::default(),
            next_id: AtomicU64::new(1),
            args,
        }
    }

    /// A response id, unique within this mocker.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Relaxed)
    }

    /// Pins `hashes` in the KV cache and updates the KV gauges.
    pub fn kv_allocate(&self, hashes: &[BlockHash]) -> Allocation {
        let mut kv = self.kv.lock();
        let alloc = kv.allocate(hashes);
        self.publish_kv(&kv);
        alloc
    }

    /// Releases a sequence's blocks after storing `extra` (blocks it generated) when given.
    pub fn kv_release(&self, alloc: Allocation, extra: Option<&[BlockHash]>) {
        let mut kv = self.kv.lock();
        if let Some(extra) = extra {
            let generated = kv.allocate(extra);
            kv.release(generated);
        }
        kv.release(alloc);
        self.publish_kv(&kv);
    }

    fn publish_kv(&self, kv: &KvCache) {
        self.metrics
            .kv_blocks_used
            .store(kv.pinned() as u64, Relaxed);
        self.metrics
            .kv_blocks_resident
            .store(kv.resident() as u64, Relaxed);
    }
}

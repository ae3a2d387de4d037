//! `switchyard_lora_*` metrics: on-demand loads by result and evictions.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use switchyard_runtime::exposition::Scrape;

use crate::metrics::names;

#[derive(Debug, Default)]
pub struct LoraMetrics {
    pub loads_ok: AtomicU64,
    pub loads_failed: AtomicU64,
    pub evictions: AtomicU64,
}

impl LoraMetrics {
    /// Nothing when no adapter is configured.
    pub fn collect(&self, configured: bool, s: &mut Scrape) {
        if !configured {
            return;
        }
        s.family(&names::LORA_LOADS)
            .value(&[("result", "ok")], self.loads_ok.load(Relaxed) as f64)
            .value(
                &[("result", "error")],
                self.loads_failed.load(Relaxed) as f64,
            );
        s.family(&names::LORA_EVICTIONS)
            .value(&[], self.evictions.load(Relaxed) as f64);
    }
}

//! `switchyard_lora_*` metrics: on-demand loads by result and evictions.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub const LOADS: &str = "switchyard_lora_loads_total";
pub const EVICTIONS: &str = "switchyard_lora_evictions_total";

#[derive(Debug, Default)]
pub struct LoraMetrics {
    pub loads_ok: AtomicU64,
    pub loads_failed: AtomicU64,
    pub evictions: AtomicU64,
}

impl LoraMetrics {
    /// Renders nothing when no adapter is configured.
    pub fn render(&self, configured: bool, out: &mut String) {
        if !configured {
            return;
        }
        let _ = writeln!(
            out,
            "# HELP {LOADS} On-demand adapter loads through the engines' APIs, by result.\n\
             # TYPE {LOADS} counter\n\
             {LOADS}{{result=\"ok\"}} {}\n{LOADS}{{result=\"error\"}} {}",
            self.loads_ok.load(Relaxed),
            self.loads_failed.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP {EVICTIONS} Idle adapters unloaded to free a slot.\n\
             # TYPE {EVICTIONS} counter\n{EVICTIONS} {}",
            self.evictions.load(Relaxed)
        );
    }
}

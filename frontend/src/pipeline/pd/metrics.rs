//! Disaggregation's metrics: decisions, prefill failures and fallbacks, per-stage time.
//! (Each instance's role is `switchyard_instance_info`, read at scrape time.)

use std::time::Duration;

use prometheus::{Histogram, IntCounter, Registry};

use super::decide::Aggregated;
use crate::metrics::{counter, counter_vec, histogram_vec, names, seconds};

/// Counters and stage histograms, shared by every request; each handle is resolved once.
#[derive(Debug)]
pub struct PdMetrics {
    disaggregated: IntCounter,
    /// By `Aggregated::ALL` order.
    aggregated: Vec<IntCounter>,
    prefill_failures: IntCounter,
    fallbacks: IntCounter,
    /// Request to the prefill instance until its answer (vLLM) or until both sides answered
    /// (SGLang, where the two run at once).
    prefill: Histogram,
    /// Decode request sent (after the prefill, for vLLM) until its first event or response.
    decode: Histogram,
}

impl PdMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let decisions = counter_vec(registry, &names::PD_DECISIONS, &["decision", "reason"])?;
        let stages = histogram_vec(registry, &names::PD_STAGE_SECONDS, &["stage"])?;
        Ok(Self {
            disaggregated: decisions.with_label_values(&["disaggregated", ""]),
            aggregated: Aggregated::ALL
                .iter()
                .map(|why| decisions.with_label_values(&["aggregated", why.as_str()]))
                .collect(),
            prefill_failures: counter(registry, &names::PD_PREFILL_FAILURES)?,
            fallbacks: counter(registry, &names::PD_FALLBACKS)?,
            prefill: stages.with_label_values(&["prefill"]),
            decode: stages.with_label_values(&["decode_first_event"]),
        })
    }

    pub fn disaggregated(&self) {
        self.disaggregated.inc();
    }

    pub fn aggregated(&self, why: Aggregated) {
        let i = Aggregated::ALL.iter().position(|&a| a == why).unwrap_or(0);
        if let Some(c) = self.aggregated.get(i) {
            c.inc();
        }
    }

    pub fn prefill_failed(&self) {
        self.prefill_failures.inc();
    }

    pub fn fell_back(&self) {
        self.fallbacks.inc();
    }

    pub fn observe_prefill(&self, d: Duration) {
        self.prefill.observe(seconds(d));
    }

    pub fn observe_decode(&self, d: Duration) {
        self.decode.observe(seconds(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_decision_is_a_series() {
        let registry = Registry::new();
        let m = PdMetrics::new(&registry).unwrap();
        m.disaggregated();
        m.aggregated(Aggregated::PrefillBusy);
        m.fell_back();
        let out = switchyard_runtime::exposition::encode(&registry);
        assert!(
            out.contains("switchyard_pd_decisions_total{decision=\"disaggregated\",reason=\"\"} 1"),
            "{out}"
        );
        assert!(out.contains(
            "switchyard_pd_decisions_total{decision=\"aggregated\",reason=\"prefill_busy\"} 1"
        ));
        assert!(out.contains(
            "switchyard_pd_decisions_total{decision=\"aggregated\",reason=\"short_prompt\"} 0"
        ));
        assert!(out.contains("switchyard_pd_fallbacks_total 1"));
        assert!(out.contains("switchyard_pd_stage_seconds_count{stage=\"prefill\"} 0"));
        switchyard_runtime::exposition::check(&out).unwrap();
    }
}

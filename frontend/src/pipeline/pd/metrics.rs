//! Disaggregation's metrics: decisions, prefill failures and fallbacks, per-stage time, and
//! each instance's role.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use switchyard_runtime::Registry;

use super::decide::Aggregated;
use crate::metrics::{escape, Histogram};

pub const DECISIONS: &str = "switchyard_pd_decisions_total";
pub const PREFILL_FAILURES: &str = "switchyard_pd_prefill_failures_total";
pub const FALLBACKS: &str = "switchyard_pd_fallbacks_total";
pub const STAGE_SECONDS: &str = "switchyard_pd_stage_seconds";
pub const INSTANCE_INFO: &str = "switchyard_instance_info";

/// Counters and stage histograms, shared by every request.
#[derive(Debug, Default)]
pub struct PdMetrics {
    disaggregated: AtomicU64,
    aggregated: [AtomicU64; Aggregated::ALL.len()],
    prefill_failures: AtomicU64,
    fallbacks: AtomicU64,
    /// Request to the prefill instance until its answer (vLLM) or until both sides answered
    /// (SGLang, where the two run at once).
    prefill: Histogram,
    /// Decode request sent (after the prefill, for vLLM) until its first event or response.
    decode: Histogram,
}

impl PdMetrics {
    pub fn disaggregated(&self) {
        self.disaggregated.fetch_add(1, Relaxed);
    }

    pub fn aggregated(&self, why: Aggregated) {
        let i = Aggregated::ALL.iter().position(|&a| a == why).unwrap_or(0);
        self.aggregated[i].fetch_add(1, Relaxed);
    }

    pub fn prefill_failed(&self) {
        self.prefill_failures.fetch_add(1, Relaxed);
    }

    pub fn fell_back(&self) {
        self.fallbacks.fetch_add(1, Relaxed);
    }

    pub fn observe_prefill(&self, d: Duration) {
        self.prefill.observe(d);
    }

    pub fn observe_decode(&self, d: Duration) {
        self.decode.observe(d);
    }

    /// Appends the series (Prometheus text) to `out`.
    pub fn render(&self, out: &mut String, registry: &Registry) {
        header(out, DECISIONS, "counter", "Disaggregation decisions on long-enough routes, by outcome: disaggregated, or why the request stayed aggregated.");
        let _ = writeln!(
            out,
            "{DECISIONS}{{decision=\"disaggregated\",reason=\"\"}} {}",
            self.disaggregated.load(Relaxed)
        );
        for (why, n) in Aggregated::ALL.iter().zip(&self.aggregated) {
            let _ = writeln!(
                out,
                "{DECISIONS}{{decision=\"aggregated\",reason=\"{}\"}} {}",
                why.as_str(),
                n.load(Relaxed)
            );
        }
        header(
            out,
            PREFILL_FAILURES,
            "counter",
            "Prefill stages that failed (error, timeout, or no usable KV handle).",
        );
        let _ = writeln!(
            out,
            "{PREFILL_FAILURES} {}",
            self.prefill_failures.load(Relaxed)
        );
        header(out, FALLBACKS, "counter", "Disaggregated requests served aggregated on their decode instance after the prefill failed.");
        let _ = writeln!(out, "{FALLBACKS} {}", self.fallbacks.load(Relaxed));
        header(
            out,
            STAGE_SECONDS,
            "histogram",
            "Time of each stage of disaggregated requests.",
        );
        self.prefill.render(out, STAGE_SECONDS, "stage=\"prefill\"");
        self.decode
            .render(out, STAGE_SECONDS, "stage=\"decode_first_event\"");
        header(
            out,
            INSTANCE_INFO,
            "gauge",
            "1 per instance, labelled with its engine and disaggregation role.",
        );
        for i in registry.all() {
            let _ = writeln!(
                out,
                "{INSTANCE_INFO}{{worker=\"{}\",model=\"{}\",role=\"{}\"}} 1",
                escape(i.id()),
                escape(&i.spec.model),
                i.spec.role.as_str()
            );
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_decision_and_role_is_a_series() {
        let m = PdMetrics::default();
        m.disaggregated();
        m.aggregated(Aggregated::PrefillBusy);
        m.fell_back();
        let registry = Registry::new(Default::default());
        let mut out = String::new();
        m.render(&mut out, &registry);
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
    }
}

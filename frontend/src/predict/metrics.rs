//! Metrics of predicted-TTFT routing: what was predicted for the instances that served,
//! how far off it was, each instance's learned rates, and TTFT target misses.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use switchyard_runtime::policy::kv;
use switchyard_runtime::policy::ttft::{Prediction, KNEES};
use switchyard_runtime::Registry;

use crate::metrics::{escape, Histogram};

pub const PREDICTED: &str = "switchyard_predicted_ttft_seconds";
pub const ERROR: &str = "switchyard_ttft_prediction_error_ratio";
pub const RATE: &str = "switchyard_instance_ttft_rate";
pub const SAMPLES: &str = "switchyard_instance_ttft_samples";
pub const SLO_MISSES: &str = "switchyard_ttft_slo_misses_total";

/// Buckets of |predicted − observed| / observed.
const ERROR_BUCKETS: [f64; 12] = [
    0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0,
];
/// Names of the learned rates, in `switchyard_runtime::policy::ttft` feature order; the hinge
/// terms follow as `congestion_ms_over_<knee>`.
const RATE_TERMS: [&str; 4] = [
    "base_ms",
    "prefill_ms_per_block",
    "queue_ms_per_request",
    "decode_ms_per_request",
];

/// A fixed-bucket histogram of ratios.
#[derive(Debug, Default)]
struct Ratios {
    counts: [AtomicU64; ERROR_BUCKETS.len() + 1],
    /// Sum in millionths (a ratio is clamped to 1000 before it is added).
    sum_micros: AtomicU64,
}

impl Ratios {
    fn observe(&self, ratio: f64) {
        let i = ERROR_BUCKETS
            .iter()
            .position(|&b| ratio <= b)
            .unwrap_or(ERROR_BUCKETS.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add((ratio.clamp(0.0, 1000.0) * 1e6) as u64, Relaxed);
    }

    fn render(&self, out: &mut String, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in ERROR_BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Relaxed);
            let _ = writeln!(
                out,
                "{ERROR}_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.counts[ERROR_BUCKETS.len()].load(Relaxed);
        let _ = writeln!(out, "{ERROR}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{ERROR}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{ERROR}_count{{{labels}}} {cumulative}");
    }
}

/// Which TTFT target miss is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissKind {
    /// No candidate was predicted to meet the target (counted at routing).
    Predicted,
    /// The first token came later than the target.
    Observed,
}

#[derive(Debug, Default)]
struct ModelSeries {
    predicted: Histogram,
    /// Error of predictions from learned rates (after warm-up) and from priors.
    error_learned: Ratios,
    error_prior: Ratios,
    missed_predicted: AtomicU64,
    missed_observed: AtomicU64,
}

/// Per-model series; instance gauges are read from the registry at scrape time.
#[derive(Debug, Default)]
pub struct PredictMetrics {
    models: RwLock<HashMap<Arc<str>, Arc<ModelSeries>>>,
}

impl PredictMetrics {
    fn model(&self, model: &str) -> Arc<ModelSeries> {
        if let Some(m) = self.models.read().get(model) {
            return Arc::clone(m);
        }
        Arc::clone(self.models.write().entry(Arc::from(model)).or_default())
    }

    /// A served request's prediction against its observed TTFT.
    pub fn observe(&self, model: &str, p: &Prediction, observed_ms: f64, slo_ms: Option<f64>) {
        let m = self.model(model);
        m.predicted.observe(Duration::from_secs_f64(
            (p.predicted_ms / 1e3).clamp(0.0, 1e6),
        ));
        if observed_ms > 0.0 && observed_ms.is_finite() {
            let ratio = (p.predicted_ms - observed_ms).abs() / observed_ms;
            match p.learned {
                true => m.error_learned.observe(ratio),
                false => m.error_prior.observe(ratio),
            }
        }
        if slo_ms.is_some_and(|slo| observed_ms > slo) {
            m.missed_observed.fetch_add(1, Relaxed);
        }
    }

    pub fn slo_missed(&self, model: &str, kind: MissKind) {
        let m = self.model(model);
        match kind {
            MissKind::Predicted => &m.missed_predicted,
            MissKind::Observed => &m.missed_observed,
        }
        .fetch_add(1, Relaxed);
    }

    /// Appends the series (Prometheus text) to `out`.
    pub fn render(&self, out: &mut String, registry: &Registry) {
        let mut models: Vec<_> = self
            .models
            .read()
            .iter()
            .map(|(k, v)| (Arc::clone(k), Arc::clone(v)))
            .collect();
        models.sort_by(|a, b| a.0.cmp(&b.0));
        header(
            out,
            PREDICTED,
            "histogram",
            "TTFT the kv policy predicted for the instance that served, per model.",
        );
        for (name, m) in &models {
            m.predicted
                .render(out, PREDICTED, &format!("model=\"{}\"", escape(name)));
        }
        header(out, ERROR, "histogram", "|predicted - observed| / observed TTFT, per model; learned=\"true\" once the instance's rates replaced the priors.");
        for (name, m) in &models {
            let model = escape(name);
            m.error_learned
                .render(out, &format!("model=\"{model}\",learned=\"true\""));
            m.error_prior
                .render(out, &format!("model=\"{model}\",learned=\"false\""));
        }
        header(out, SLO_MISSES, "counter", "TTFT target misses: kind=\"predicted\" when no instance was predicted to meet it, \"observed\" when the first token came later.");
        for (name, m) in &models {
            let model = escape(name);
            for (kind, n) in [
                ("predicted", &m.missed_predicted),
                ("observed", &m.missed_observed),
            ] {
                let _ = writeln!(
                    out,
                    "{SLO_MISSES}{{model=\"{model}\",kind=\"{kind}\"}} {}",
                    n.load(Relaxed)
                );
            }
        }
        render_rates(out, registry);
    }
}

fn render_rates(out: &mut String, registry: &Registry) {
    let config = kv::current().config.predict.clone();
    header(out, RATE, "gauge", "Each instance's TTFT rates the kv policy predicts with (learned, or the priors before min_samples).");
    let instances = registry.all();
    let now = switchyard_runtime::clock::now_ns();
    for i in &instances {
        let (rates, _) = i.ttft.rates(&config, now);
        let (worker, model) = (escape(i.id()), escape(&i.spec.model));
        for (term, v) in RATE_TERMS.iter().zip(rates) {
            let _ = writeln!(
                out,
                "{RATE}{{worker=\"{worker}\",model=\"{model}\",term=\"{term}\"}} {v}"
            );
        }
        for (knee, v) in KNEES.iter().zip(&rates[RATE_TERMS.len()..]) {
            let _ = writeln!(
                out,
                "{RATE}{{worker=\"{worker}\",model=\"{model}\",term=\"congestion_ms_over_{knee}\"}} {v}"
            );
        }
    }
    header(
        out,
        SAMPLES,
        "gauge",
        "TTFT observations each instance's rates learned from.",
    );
    for i in &instances {
        let _ = writeln!(
            out,
            "{SAMPLES}{{worker=\"{}\",model=\"{}\"}} {}",
            escape(i.id()),
            escape(&i.spec.model),
            i.ttft.samples()
        );
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_runtime::policy::ttft::Features;

    #[test]
    fn error_and_misses_render_per_model() {
        let m = PredictMetrics::default();
        let p = Prediction {
            instance: 1,
            features: Features::default(),
            predicted_ms: 90.0,
            learned: true,
        };
        m.observe("a\"b", &p, 100.0, Some(95.0));
        m.slo_missed("a\"b", MissKind::Predicted);
        let mut out = String::new();
        m.render(&mut out, &Registry::default());
        assert!(
            out.contains(&format!(
                "{ERROR}_bucket{{model=\"a\\\"b\",learned=\"true\",le=\"0.1\"}} 1"
            )),
            "{out}"
        );
        assert!(out.contains(&format!(
            "{ERROR}_bucket{{model=\"a\\\"b\",learned=\"true\",le=\"0.05\"}} 0"
        )));
        assert!(out.contains(&format!(
            "{SLO_MISSES}{{model=\"a\\\"b\",kind=\"observed\"}} 1"
        )));
        assert!(out.contains(&format!(
            "{SLO_MISSES}{{model=\"a\\\"b\",kind=\"predicted\"}} 1"
        )));
        assert!(out.contains(&format!("{PREDICTED}_count{{model=\"a\\\"b\"}} 1")));
    }
}

//! Metrics of predicted-TTFT routing: what was predicted for the instances that served,
//! how far off it was, and TTFT target misses (registered, moved on the request path, with
//! per-model handles resolved once); each instance's learned rates are read at scrape time
//! ([`collect_rates`]).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, Registry};
use switchyard_runtime::exposition::Scrape;
use switchyard_runtime::policy::ttft::{PredictConfig, Prediction, KNEES};

use crate::metrics::{counter_vec, histogram_vec, names, register};

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

/// Which TTFT target miss is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissKind {
    /// No candidate was predicted to meet the target (counted at routing).
    Predicted,
    /// The first token came later than the target.
    Observed,
}

#[derive(Debug)]
struct ModelSeries {
    predicted: Histogram,
    /// Error of predictions from learned rates (after warm-up) and from priors.
    error_learned: Histogram,
    error_prior: Histogram,
    missed_predicted: IntCounter,
    missed_observed: IntCounter,
}

/// Per-model series of predictions, errors and misses.
#[derive(Debug)]
pub struct PredictMetrics {
    predicted: HistogramVec,
    error: HistogramVec,
    misses: IntCounterVec,
    models: RwLock<HashMap<Arc<str>, Arc<ModelSeries>>>,
}

impl PredictMetrics {
    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            predicted: histogram_vec(registry, &names::PREDICTED_TTFT, &["model"])?,
            error: register(
                registry,
                HistogramVec::new(
                    names::TTFT_PREDICTION_ERROR.histogram_opts(&ERROR_BUCKETS),
                    &["model", "learned"],
                )?,
            )?,
            misses: counter_vec(registry, &names::TTFT_SLO_MISSES, &["model", "kind"])?,
            models: RwLock::default(),
        })
    }

    fn model(&self, model: &str) -> Arc<ModelSeries> {
        if let Some(m) = self.models.read().get(model) {
            return Arc::clone(m);
        }
        let mut models = self.models.write();
        Arc::clone(models.entry(Arc::from(model)).or_insert_with(|| {
            Arc::new(ModelSeries {
                predicted: self.predicted.with_label_values(&[model]),
                error_learned: self.error.with_label_values(&[model, "true"]),
                error_prior: self.error.with_label_values(&[model, "false"]),
                missed_predicted: self.misses.with_label_values(&[model, "predicted"]),
                missed_observed: self.misses.with_label_values(&[model, "observed"]),
            })
        }))
    }

    /// A served request's prediction against its observed TTFT.
    pub fn observe(&self, model: &str, p: &Prediction, observed_ms: f64, slo_ms: Option<f64>) {
        let m = self.model(model);
        m.predicted.observe((p.predicted_ms / 1e3).clamp(0.0, 1e6));
        if observed_ms > 0.0 && observed_ms.is_finite() {
            let ratio = ((p.predicted_ms - observed_ms).abs() / observed_ms).clamp(0.0, 1000.0);
            match p.learned {
                true => m.error_learned.observe(ratio),
                false => m.error_prior.observe(ratio),
            }
        }
        if slo_ms.is_some_and(|slo| observed_ms > slo) {
            m.missed_observed.inc();
        }
    }

    pub fn slo_missed(&self, model: &str, kind: MissKind) {
        let m = self.model(model);
        match kind {
            MissKind::Predicted => m.missed_predicted.inc(),
            MissKind::Observed => m.missed_observed.inc(),
        }
    }
}

/// Each instance's learned TTFT rates and sample count (scrape time).
pub fn collect_rates(
    s: &mut Scrape,
    registry: &switchyard_runtime::Registry,
    config: &PredictConfig,
) {
    let instances = registry.all();
    let now = switchyard_runtime::clock::now_ns();
    let mut rates = s.family(&names::INSTANCE_TTFT_RATE);
    for i in &instances {
        let (values, _) = i.ttft.rates(config, now);
        let knees = KNEES.iter().map(|k| format!("congestion_ms_over_{k}"));
        let terms = RATE_TERMS.iter().map(|t| (*t).to_owned()).chain(knees);
        for (term, v) in terms.zip(values) {
            rates.value(
                &[
                    ("worker", i.id()),
                    ("model", &i.spec.model),
                    ("term", &term),
                ],
                v,
            );
        }
    }
    let mut samples = s.family(&names::INSTANCE_TTFT_SAMPLES);
    for i in &instances {
        samples.value(
            &[("worker", i.id()), ("model", &i.spec.model)],
            i.ttft.samples() as f64,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_runtime::policy::ttft::Features;

    #[test]
    fn error_and_misses_render_per_model() {
        let registry = Registry::new();
        let m = PredictMetrics::new(&registry).unwrap_or_else(|e| panic!("{e}"));
        let p = Prediction {
            instance: 1,
            features: Features::default(),
            predicted_ms: 90.0,
            learned: true,
        };
        m.observe("a\"b", &p, 100.0, Some(95.0));
        m.slo_missed("a\"b", MissKind::Predicted);
        let out = switchyard_runtime::exposition::encode(&registry);
        let error = names::TTFT_PREDICTION_ERROR.name;
        let misses = names::TTFT_SLO_MISSES.name;
        for line in [
            format!("{error}_bucket{{learned=\"true\",model=\"a\\\"b\",le=\"0.1\"}} 1"),
            format!("{error}_bucket{{learned=\"true\",model=\"a\\\"b\",le=\"0.05\"}} 0"),
            format!("{misses}{{kind=\"observed\",model=\"a\\\"b\"}} 1"),
            format!("{misses}{{kind=\"predicted\",model=\"a\\\"b\"}} 1"),
            format!("{}_count{{model=\"a\\\"b\"}} 1", names::PREDICTED_TTFT.name),
        ] {
            assert!(out.contains(&line), "{line} in\n{out}");
        }
    }
}

//! Prometheus metrics under `switchyard_`, on the `prometheus` crate.
//!
//! One [`prometheus::Registry`] per [`App`](crate::app::App) (no process globals, so two
//! frontends in one process keep apart). What the request path moves is a registered
//! `prometheus` metric whose label handles are resolved once per model (see
//! [`ModelMetrics`]) and then touched as plain atomics; what lives elsewhere (per-instance
//! load, connection caps, tenants, plugins, NATS state) is read at scrape time by the
//! collector in [`scrape`]. Names, help and types are the consts in [`names`].

pub mod names;
pub mod scrape;

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry};
use switchyard_runtime::engine_load::ScrapeStats;
use switchyard_runtime::exposition::Family;

/// Label used for requests whose model is unknown, so clients cannot explode cardinality.
pub const UNKNOWN_MODEL: &str = "_unknown";

/// Bucket bounds (seconds) of every latency histogram.
pub const BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Per-model handles, resolved once per model and kept for the process's life (models come
/// from discovery or are `_unknown`, so their number is bounded by the operator, not clients).
#[derive(Debug)]
pub struct ModelMetrics {
    pub ttft: Histogram,
    pub itl: Histogram,
    pub duration: Histogram,
    pub input_tokens: IntCounter,
    pub output_tokens: IntCounter,
    model: Arc<str>,
    family: IntCounterVec,
    /// `requests_total` handles by (route, status): a short list scanned without hashing.
    requests: RwLock<Vec<(&'static str, u16, IntCounter)>>,
}

impl ModelMetrics {
    pub fn count_request(&self, route: &'static str, status: u16) {
        if let Some((_, _, c)) = self
            .requests
            .read()
            .iter()
            .find(|(r, s, _)| *s == status && *r == route)
        {
            c.inc();
            return;
        }
        let status_label = status.to_string();
        let c = self
            .family
            .with_label_values(&[&*self.model, route, &status_label]);
        c.inc();
        let mut requests = self.requests.write();
        if !requests.iter().any(|(r, s, _)| *s == status && *r == route) {
            requests.push((route, status, c));
        }
    }
}

#[derive(Debug)]
pub struct Metrics {
    /// Every family this frontend exposes (what `/metrics` encodes).
    pub registry: Registry,
    models: RwLock<HashMap<Arc<str>, Arc<ModelMetrics>>>,
    requests: IntCounterVec,
    ttft: HistogramVec,
    itl: HistogramVec,
    duration: HistogramVec,
    input_tokens: IntCounterVec,
    output_tokens: IntCounterVec,
    pub in_flight: IntGauge,
    /// Requests waiting in the admission queue (also what bounds it; read at scrape).
    pub queued: AtomicI64,
    pub retries: IntCounter,
    pub cancelled: IntCounter,
    pub stream_errors: IntCounter,
    pub retry_budget_exhausted: IntCounter,
    pub migrations: IntCounter,
    pub stalls: IntCounter,
    pub usage_estimated: IntCounter,
    pub access_log_dropped: IntCounter,
    pub shed: IntCounter,
    pub panic_routed: IntCounter,
    /// How scrapes of engines' metrics endpoints ended (`load_scrape`; read at scrape).
    pub scrapes: Arc<ScrapeStats>,
    /// Disaggregated prefill/decode decisions, fallbacks and stage times.
    pub pd: crate::pipeline::pd::PdMetrics,
    /// Predicted TTFT, its error and TTFT target misses.
    pub predict: crate::predict::PredictMetrics,
}

/// Registers `metric` in `registry` and returns it.
pub fn register<M>(registry: &Registry, metric: M) -> prometheus::Result<M>
where
    M: prometheus::core::Collector + Clone + 'static,
{
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

/// A registered counter without labels.
pub fn counter(registry: &Registry, family: &Family) -> prometheus::Result<IntCounter> {
    register(registry, IntCounter::with_opts(family.opts())?)
}

/// A registered counter family with these labels.
pub fn counter_vec(
    registry: &Registry,
    family: &Family,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    register(registry, IntCounterVec::new(family.opts(), labels)?)
}

/// A registered latency histogram family ([`BUCKETS`]) with these labels.
pub fn histogram_vec(
    registry: &Registry,
    family: &Family,
    labels: &[&str],
) -> prometheus::Result<HistogramVec> {
    register(
        registry,
        HistogramVec::new(family.histogram_opts(&BUCKETS), labels)?,
    )
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let r = &registry;
        Ok(Self {
            requests: counter_vec(r, &names::REQUESTS, &["model", "route", "status"])?,
            ttft: histogram_vec(r, &names::TTFT, &["model"])?,
            itl: histogram_vec(r, &names::ITL, &["model"])?,
            duration: histogram_vec(r, &names::DURATION, &["model"])?,
            input_tokens: counter_vec(r, &names::INPUT_TOKENS, &["model"])?,
            output_tokens: counter_vec(r, &names::OUTPUT_TOKENS, &["model"])?,
            in_flight: register(r, IntGauge::with_opts(names::IN_FLIGHT.opts())?)?,
            queued: AtomicI64::new(0),
            retries: counter(r, &names::RETRIES)?,
            cancelled: counter(r, &names::CANCELLED)?,
            stream_errors: counter(r, &names::STREAM_ERRORS)?,
            retry_budget_exhausted: counter(r, &names::RETRY_BUDGET_EXHAUSTED)?,
            migrations: counter(r, &names::MIGRATIONS)?,
            stalls: counter(r, &names::STALLS)?,
            usage_estimated: counter(r, &names::USAGE_ESTIMATED)?,
            access_log_dropped: counter(r, &names::ACCESS_LOG_DROPPED)?,
            shed: counter(r, &names::SHED)?,
            panic_routed: counter(r, &names::PANIC_ROUTED)?,
            scrapes: Arc::default(),
            pd: crate::pipeline::pd::PdMetrics::new(r)?,
            predict: crate::predict::PredictMetrics::new(r)?,
            models: RwLock::default(),
            registry,
        })
    }

    /// The series of a model known to the registry (callers pass `UNKNOWN_MODEL` otherwise).
    pub fn model(&self, model: &str) -> Arc<ModelMetrics> {
        if let Some(m) = self.models.read().get(model) {
            return Arc::clone(m);
        }
        let mut models = self.models.write();
        if let Some(m) = models.get(model) {
            return Arc::clone(m);
        }
        let labels = [model];
        let m = Arc::new(ModelMetrics {
            ttft: self.ttft.with_label_values(&labels),
            itl: self.itl.with_label_values(&labels),
            duration: self.duration.with_label_values(&labels),
            input_tokens: self.input_tokens.with_label_values(&labels),
            output_tokens: self.output_tokens.with_label_values(&labels),
            model: Arc::from(model),
            family: self.requests.clone(),
            requests: RwLock::default(),
        });
        models.insert(Arc::from(model), Arc::clone(&m));
        m
    }

    /// Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        switchyard_runtime::exposition::encode(&self.registry)
    }
}

/// Seconds, as histograms take them.
pub fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new().unwrap();
        let h = m.model("a");
        for d in [
            Duration::from_micros(500),
            Duration::from_millis(20),
            Duration::from_secs(500),
        ] {
            h.duration.observe(seconds(d));
        }
        let out = m.render();
        let name = names::DURATION.name;
        assert!(
            out.contains(&format!("{name}_bucket{{model=\"a\",le=\"0.001\"}} 1\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{name}_bucket{{model=\"a\",le=\"0.025\"}} 2\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{name}_bucket{{model=\"a\",le=\"+Inf\"}} 3\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("{name}_count{{model=\"a\"}} 3\n")),
            "{out}"
        );
    }

    #[test]
    fn requests_are_counted_by_labels_and_escaped() {
        let m = Metrics::new().unwrap();
        let s = m.model("a\"b");
        s.count_request("chat", 200);
        s.count_request("chat", 200);
        s.count_request("chat", 502);
        assert!(
            Arc::ptr_eq(&s, &m.model("a\"b")),
            "handles are cached per model"
        );
        let out = m.render();
        assert!(
            out.contains(r#"switchyard_requests_total{model="a\"b",route="chat",status="200"} 2"#),
            "{out}"
        );
        assert!(out.contains(r#"status="502"} 1"#), "{out}");
        switchyard_runtime::exposition::check(&out).unwrap();
    }

    #[test]
    fn every_name_is_valid_and_declared_once() {
        let mut seen = std::collections::HashSet::new();
        for f in names::SCRAPED {
            assert!(seen.insert(f.name), "{} declared twice", f.name);
            assert!(f.name.starts_with("switchyard_"), "{}", f.name);
        }
        // Registration validates every registered name; the scraped ones go through the
        // collector's descriptors.
        Metrics::new().unwrap();
        switchyard_runtime::exposition::ScrapeCollector::new(names::SCRAPED, |_| {}).unwrap();
    }
}

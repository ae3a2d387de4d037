//! Reconcile metrics (`switchyard_operator_*`), exported on `/metrics` through the
//! workspace's metrics library (`prometheus`, text format 0.0.4), one registry per operator.

use std::time::Instant;

use prometheus::{exponential_buckets, HistogramOpts, HistogramVec, IntCounterVec, IntGauge};
use prometheus::{Opts, Registry};
use switchyard_runtime::exposition::Family;

/// Metric families: name, help, type.
pub mod names {
    use super::Family;

    pub const RECONCILES: Family = Family::counter(
        "switchyard_operator_reconciles_total",
        "Reconciles started, by controller",
    );
    pub const RECONCILE_ERRORS: Family = Family::counter(
        "switchyard_operator_reconcile_errors_total",
        "Reconciles that failed, by controller and error",
    );
    pub const RECONCILE_DURATION: Family = Family::histogram(
        "switchyard_operator_reconcile_duration_seconds",
        "Reconcile duration in seconds",
    );
    pub const LEADER: Family = Family::gauge(
        "switchyard_operator_leader",
        "1 while this replica holds the leader lease",
    );
    pub const PLUGIN_VALIDATIONS: Family = Family::counter(
        "switchyard_operator_plugin_validations_total",
        "RouterPlugin validation outcomes, by Validated condition reason",
    );
}

/// The operator's metrics and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    /// By `controller`.
    pub reconciles: IntCounterVec,
    /// By `controller`, `error`.
    pub errors: IntCounterVec,
    /// By `controller`.
    pub duration: HistogramVec,
    pub leader: IntGauge,
    /// By `reason`.
    pub plugin_validations: IntCounterVec,
}

/// Observes a reconcile's duration when dropped (so early returns are measured too).
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    controller: &'static str,
    start: Instant,
}

fn register<M>(registry: &Registry, metric: M) -> prometheus::Result<M>
where
    M: prometheus::core::Collector + Clone + 'static,
{
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
}

fn opts(family: &Family) -> Opts {
    family.opts()
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let r = &registry;
        let buckets = exponential_buckets(0.001, 2.0, 16)?;
        let d = &names::RECONCILE_DURATION;
        Ok(Self {
            reconciles: register(
                r,
                IntCounterVec::new(opts(&names::RECONCILES), &["controller"])?,
            )?,
            errors: register(
                r,
                IntCounterVec::new(opts(&names::RECONCILE_ERRORS), &["controller", "error"])?,
            )?,
            duration: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(d.name, d.help).buckets(buckets),
                    &["controller"],
                )?,
            )?,
            leader: register(r, IntGauge::with_opts(opts(&names::LEADER))?)?,
            plugin_validations: register(
                r,
                IntCounterVec::new(opts(&names::PLUGIN_VALIDATIONS), &["reason"])?,
            )?,
            registry,
        })
    }

    /// Counts a reconcile of `controller` and times it until the guard drops.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer<'_> {
        self.reconciles.with_label_values(&[controller]).inc();
        ReconcileTimer {
            metrics: self,
            controller,
            start: Instant::now(),
        }
    }

    pub fn error(&self, controller: &'static str, error: &'static str) {
        self.errors.with_label_values(&[controller, error]).inc();
    }

    pub fn plugin_validated(&self, reason: &str) {
        self.plugin_validations.with_label_values(&[reason]).inc();
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        switchyard_runtime::exposition::encode(&self.registry)
    }
}

impl Default for Metrics {
    /// The names and labels are consts (the `encodes_prefixed_names` test builds them), so
    /// construction cannot fail at run time.
    #[allow(clippy::expect_used)]
    fn default() -> Self {
        Self::new().expect("operator metric names and labels are valid")
    }
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .with_label_values(&[self.controller])
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_prefixed_names() {
        let m = Metrics::new().unwrap();
        drop(m.reconcile("workerpool"));
        m.error("workerpool", "api");
        m.plugin_validated("Compiled");
        m.leader.set(1);
        let text = m.encode();
        assert!(
            text.contains("switchyard_operator_reconciles_total{controller=\"workerpool\"} 1"),
            "{text}"
        );
        assert!(text.contains(
            "switchyard_operator_reconcile_errors_total{controller=\"workerpool\",error=\"api\"} 1"
        ));
        assert!(text.contains(
            "switchyard_operator_reconcile_duration_seconds_count{controller=\"workerpool\"} 1"
        ));
        let families = switchyard_runtime::exposition::check(&text).unwrap();
        assert_eq!(families.len(), 5, "{families:?}");
    }
}

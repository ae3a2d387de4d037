//! Reconcile metrics (`switchyard_operator_*`), exported on `/metrics`.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Metric names (without the `_total` suffix the text encoder adds to counters).
pub mod names {
    pub const RECONCILES: &str = "switchyard_operator_reconciles";
    pub const RECONCILE_ERRORS: &str = "switchyard_operator_reconcile_errors";
    pub const RECONCILE_DURATION: &str = "switchyard_operator_reconcile_duration_seconds";
    pub const LEADER: &str = "switchyard_operator_leader";
    pub const PLUGIN_VALIDATIONS: &str = "switchyard_operator_plugin_validations";
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub controller: &'static str,
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidationLabels {
    pub reason: &'static str,
}

/// The operator's metrics and the registry that encodes them.
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<ControllerLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    pub leader: Gauge,
    pub plugin_validations: Family<ValidationLabels, Counter>,
}

/// Observes a reconcile's duration when dropped (so early returns are measured too).
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    controller: &'static str,
    start: Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration =
            Family::<ControllerLabels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            });
        let leader = Gauge::default();
        let plugin_validations = Family::<ValidationLabels, Counter>::default();
        registry.register(
            names::RECONCILES,
            "Reconciles started, by controller",
            reconciles.clone(),
        );
        registry.register(
            names::RECONCILE_ERRORS,
            "Reconciles that failed, by controller and error",
            errors.clone(),
        );
        registry.register(
            names::RECONCILE_DURATION,
            "Reconcile duration in seconds",
            duration.clone(),
        );
        registry.register(
            names::LEADER,
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        registry.register(
            names::PLUGIN_VALIDATIONS,
            "RouterPlugin validation outcomes, by Validated condition reason",
            plugin_validations.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            duration,
            leader,
            plugin_validations,
        }
    }
}

impl Metrics {
    /// Counts a reconcile of `controller` and times it until the guard drops.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer<'_> {
        self.reconciles
            .get_or_create(&ControllerLabels { controller })
            .inc();
        ReconcileTimer {
            metrics: self,
            controller,
            start: Instant::now(),
        }
    }

    pub fn error(&self, controller: &'static str, error: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels { controller, error })
            .inc();
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .get_or_create(&ControllerLabels {
                controller: self.controller,
            })
            .observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_prefixed_names() {
        let m = Metrics::default();
        drop(m.reconcile("workerpool"));
        m.error("workerpool", "api");
        let text = m.encode().unwrap();
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
    }
}

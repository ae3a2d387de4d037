//! Prometheus metrics under `switchyard_`.
//!
//! Hand-rolled on atomics: the request path touches a few relaxed counters and one short
//! uncontended lock, and rendering happens only on scrape. Metric names are the consts in
//! [`names`]; the Grafana dashboard and docs refer to exactly these.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use switchyard_runtime::clock::now_ns;
use switchyard_runtime::engine_load::ScrapeStats;
use switchyard_runtime::Registry;

use crate::conn_limits::{ConnLimits, Refusal};

/// Metric names (the public contract).
pub mod names {
    pub const REQUESTS: &str = "switchyard_requests_total";
    pub const IN_FLIGHT: &str = "switchyard_requests_in_flight";
    pub const QUEUED: &str = "switchyard_requests_queued";
    pub const TTFT: &str = "switchyard_time_to_first_token_seconds";
    pub const ITL: &str = "switchyard_inter_token_latency_seconds";
    pub const DURATION: &str = "switchyard_request_duration_seconds";
    pub const INPUT_TOKENS: &str = "switchyard_input_tokens_total";
    pub const OUTPUT_TOKENS: &str = "switchyard_output_tokens_total";
    pub const RETRIES: &str = "switchyard_retries_total";
    pub const CANCELLED: &str = "switchyard_requests_cancelled_total";
    pub const STREAM_ERRORS: &str = "switchyard_stream_errors_total";
    pub const RETRY_BUDGET_EXHAUSTED: &str = "switchyard_retry_budget_exhausted_total";
    pub const MIGRATIONS: &str = "switchyard_stream_migrations_total";
    pub const STALLS: &str = "switchyard_stream_stalls_total";
    pub const SHED: &str = "switchyard_requests_shed_total";
    pub const PANIC_ROUTED: &str = "switchyard_panic_routed_total";
    pub const INSTANCE_IN_FLIGHT: &str = "switchyard_instance_in_flight";
    pub const INSTANCE_HEALTHY: &str = "switchyard_instance_healthy";
    pub const INSTANCE_EJECTIONS: &str = "switchyard_instance_ejections";
    pub const DISCOVERY_CONNECTED: &str = "switchyard_discovery_connected";
    pub const BODY_BYTES_IN_FLIGHT: &str = "switchyard_request_body_bytes_in_flight";
    pub const BODY_BUDGET_BYTES: &str = "switchyard_request_body_budget_bytes";
    pub const BODY_BUDGET_REJECTED: &str = "switchyard_request_body_budget_rejected_total";
    pub const CONNECTIONS_OPEN: &str = "switchyard_connections_open";
    pub const CONNECTIONS_MAX: &str = "switchyard_connections_max";
    pub const CONNECTIONS_REFUSED: &str = "switchyard_connections_refused_total";
    pub const WRITE_TIMEOUTS: &str = "switchyard_connection_write_timeouts_total";
    pub const DISCOVERY_REJECTED: &str = "switchyard_discovery_rejected_total";
    pub const INSTANCE_QUEUED: &str = "switchyard_instance_queued";
    pub const INSTANCE_RUNNING: &str = "switchyard_instance_running";
    pub const INSTANCE_KV_USAGE: &str = "switchyard_instance_kv_usage";
    pub const LOAD_SCRAPES: &str = "switchyard_load_scrapes_total";
    pub const LOAD_SCRAPE_MALFORMED: &str = "switchyard_load_scrape_malformed_lines_total";
}

/// Label used for requests whose model is unknown, so clients cannot explode cardinality.
pub const UNKNOWN_MODEL: &str = "_unknown";

const BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// A fixed-bucket histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

/// Per-model series.
#[derive(Debug, Default)]
pub struct ModelMetrics {
    pub ttft: Histogram,
    pub itl: Histogram,
    pub duration: Histogram,
    pub input_tokens: AtomicU64,
    pub output_tokens: AtomicU64,
    /// Requests by (endpoint, status).
    requests: Mutex<HashMap<(&'static str, u16), u64>>,
}

impl ModelMetrics {
    pub fn count_request(&self, endpoint: &'static str, status: u16) {
        *self.requests.lock().entry((endpoint, status)).or_insert(0) += 1;
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    models: RwLock<HashMap<Arc<str>, Arc<ModelMetrics>>>,
    pub in_flight: AtomicI64,
    /// Requests waiting in the admission queue (also what bounds it).
    pub queued: AtomicI64,
    pub retries: AtomicU64,
    pub cancelled: AtomicU64,
    pub stream_errors: AtomicU64,
    pub retry_budget_exhausted: AtomicU64,
    pub migrations: AtomicU64,
    pub stalls: AtomicU64,
    pub shed: AtomicU64,
    pub panic_routed: AtomicU64,
    /// How scrapes of engines' metrics endpoints ended (`load_scrape`).
    pub scrapes: Arc<ScrapeStats>,
    /// Disaggregated prefill/decode decisions, fallbacks and stage times.
    pub pd: crate::pipeline::pd::PdMetrics,
    /// Predicted TTFT, its error, learned rates and TTFT target misses.
    pub predict: crate::predict::PredictMetrics,
}

impl Metrics {
    /// The series of a model known to the registry (callers pass `UNKNOWN_MODEL` otherwise).
    pub fn model(&self, model: &str) -> Arc<ModelMetrics> {
        if let Some(m) = self.models.read().get(model) {
            return Arc::clone(m);
        }
        Arc::clone(self.models.write().entry(Arc::from(model)).or_default())
    }

    /// Prometheus text exposition, including per-instance gauges read from the registry.
    pub fn render(&self, registry: &Registry) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let models: Vec<_> = self
            .models
            .read()
            .iter()
            .map(|(k, v)| (Arc::clone(k), Arc::clone(v)))
            .collect();
        render_requests(&mut out, &models);
        gauge_header(&mut out, names::IN_FLIGHT, "Requests being served.");
        let _ = writeln!(
            out,
            "{} {}",
            names::IN_FLIGHT,
            self.in_flight.load(Ordering::Relaxed)
        );
        gauge_header(
            &mut out,
            names::QUEUED,
            "Requests waiting for an admission slot.",
        );
        let _ = writeln!(
            out,
            "{} {}",
            names::QUEUED,
            self.queued.load(Ordering::Relaxed)
        );
        for (name, help, value) in [
            (
                names::RETRIES,
                "Upstream attempts retried on another instance.",
                &self.retries,
            ),
            (
                names::CANCELLED,
                "Requests whose client went away first.",
                &self.cancelled,
            ),
            (
                names::STREAM_ERRORS,
                "Streams ended by an in-band error event.",
                &self.stream_errors,
            ),
            (
                names::RETRY_BUDGET_EXHAUSTED,
                "Retries not attempted because the retry budget was spent.",
                &self.retry_budget_exhausted,
            ),
            (
                names::MIGRATIONS,
                "Streams re-issued to another instance after failing mid-way.",
                &self.migrations,
            ),
            (
                names::STALLS,
                "Streams that sent nothing for the stall timeout.",
                &self.stalls,
            ),
            (
                names::SHED,
                "Requests shed by admission control or because every instance was full.",
                &self.shed,
            ),
            (
                names::PANIC_ROUTED,
                "Requests routed to unhealthy instances because none was healthy (route-all).",
                &self.panic_routed,
            ),
        ] {
            counter_header(&mut out, name, help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        counter_header(
            &mut out,
            names::LOAD_SCRAPES,
            "Scrapes of engines' own metrics endpoints, by result.",
        );
        for (result, n) in self.scrapes.by_result() {
            let _ = writeln!(out, "{}{{result=\"{result}\"}} {n}", names::LOAD_SCRAPES);
        }
        counter_header(
            &mut out,
            names::LOAD_SCRAPE_MALFORMED,
            "Malformed lines skipped in engines' metrics (the rest of the scrape is used).",
        );
        let _ = writeln!(
            out,
            "{} {}",
            names::LOAD_SCRAPE_MALFORMED,
            self.scrapes.malformed_lines.load(Ordering::Relaxed)
        );
        render_models(&mut out, &models);
        render_instances(&mut out, registry);
        out
    }
}

/// The request-body budget: bytes reserved now, the pool's size, and refusals.
pub fn render_body_budget(out: &mut String, in_use: usize, total: usize, rejected: u64) {
    gauge_header(
        out,
        names::BODY_BYTES_IN_FLIGHT,
        "Request-body bytes reserved by requests being read, parsed or dispatched.",
    );
    let _ = writeln!(out, "{} {in_use}", names::BODY_BYTES_IN_FLIGHT);
    gauge_header(
        out,
        names::BODY_BUDGET_BYTES,
        "The in-flight request-body budget (limits.max_inflight_body_bytes).",
    );
    let _ = writeln!(out, "{} {total}", names::BODY_BUDGET_BYTES);
    counter_header(
        out,
        names::BODY_BUDGET_REJECTED,
        "Requests refused (503 body_budget_exhausted) because the body budget stayed full.",
    );
    let _ = writeln!(out, "{} {rejected}", names::BODY_BUDGET_REJECTED);
}

/// Client connections: open, the cap, refusals by reason, write-progress timeouts.
pub fn render_connections(out: &mut String, connections: &ConnLimits) {
    gauge_header(out, names::CONNECTIONS_OPEN, "Open client connections.");
    let _ = writeln!(out, "{} {}", names::CONNECTIONS_OPEN, connections.open());
    gauge_header(
        out,
        names::CONNECTIONS_MAX,
        "The cap on open client connections (limits.max_connections).",
    );
    let _ = writeln!(out, "{} {}", names::CONNECTIONS_MAX, connections.max());
    counter_header(
        out,
        names::CONNECTIONS_REFUSED,
        "Client connections refused at accept because a connection cap was reached.",
    );
    for reason in [Refusal::MaxConnections, Refusal::MaxConnectionsPerIp] {
        let _ = writeln!(
            out,
            "{}{{reason=\"{}\"}} {}",
            names::CONNECTIONS_REFUSED,
            reason.label(),
            connections.refused(reason)
        );
    }
    counter_header(
        out,
        names::WRITE_TIMEOUTS,
        "Client connections closed because the client read nothing for limits.write_timeout_ms.",
    );
    let _ = writeln!(
        out,
        "{} {}",
        names::WRITE_TIMEOUTS,
        connections.write_timeouts.load(Ordering::Relaxed)
    );
}

type ModelSeries = [(Arc<str>, Arc<ModelMetrics>)];

fn render_requests(out: &mut String, models: &ModelSeries) {
    counter_header(
        out,
        names::REQUESTS,
        "Requests by model, endpoint and status.",
    );
    for (model, m) in models {
        let requests = m.requests.lock().clone();
        for ((endpoint, status), n) in requests {
            let _ = writeln!(
                out,
                "{}{{model=\"{}\",route=\"{endpoint}\",status=\"{status}\"}} {n}",
                names::REQUESTS,
                escape(model)
            );
        }
    }
}

fn render_models(out: &mut String, models: &ModelSeries) {
    for (name, help, pick) in [
        (names::TTFT, "Time to first token.", 0),
        (names::ITL, "Time between streamed tokens.", 1),
        (names::DURATION, "Request duration.", 2),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (model, m) in models {
            let h = [&m.ttft, &m.itl, &m.duration][pick];
            h.render(out, name, &format!("model=\"{}\"", escape(model)));
        }
    }
    for (name, help, pick) in [
        (names::INPUT_TOKENS, "Prompt tokens.", 0),
        (names::OUTPUT_TOKENS, "Generated tokens.", 1),
    ] {
        counter_header(out, name, help);
        for (model, m) in models {
            let v = [&m.input_tokens, &m.output_tokens][pick].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}{{model=\"{}\"}} {v}", escape(model));
        }
    }
}

/// Reads one per-instance figure for a gauge.
type InstanceGauge = fn(&switchyard_runtime::Instance) -> String;

fn render_instances(out: &mut String, registry: &Registry) {
    let now = now_ns();
    let instances = registry.all();
    gauge_header(
        out,
        names::INSTANCE_IN_FLIGHT,
        "In-flight requests per instance.",
    );
    for i in &instances {
        let _ = writeln!(
            out,
            "{}{{worker=\"{}\",model=\"{}\"}} {}",
            names::INSTANCE_IN_FLIGHT,
            escape(i.id()),
            escape(&i.spec.model),
            i.load.in_flight()
        );
    }
    let engine_gauges: [(&str, &str, InstanceGauge); 3] = [
        (
            names::INSTANCE_QUEUED,
            "Requests waiting at the engine, as it last reported (0 when unknown).",
            |i| i.load.queued.load(Ordering::Relaxed).to_string(),
        ),
        (
            names::INSTANCE_RUNNING,
            "Requests the engine last reported generating (0 when unknown).",
            |i| i.load.running.load(Ordering::Relaxed).to_string(),
        ),
        (
            names::INSTANCE_KV_USAGE,
            "KV-cache usage the engine last reported, 0..1 (0 when unknown).",
            |i| i.load.kv_usage().to_string(),
        ),
    ];
    for (name, help, value) in engine_gauges {
        gauge_header(out, name, help);
        for i in &instances {
            let _ = writeln!(
                out,
                "{name}{{worker=\"{}\",model=\"{}\"}} {}",
                escape(i.id()),
                escape(&i.spec.model),
                value(i)
            );
        }
    }
    gauge_header(
        out,
        names::INSTANCE_HEALTHY,
        "1 when the instance is routable.",
    );
    for i in &instances {
        let _ = writeln!(
            out,
            "{}{{worker=\"{}\",model=\"{}\"}} {}",
            names::INSTANCE_HEALTHY,
            escape(i.id()),
            escape(&i.spec.model),
            u8::from(i.routable(now))
        );
    }
    gauge_header(
        out,
        names::INSTANCE_EJECTIONS,
        "Consecutive passive ejections.",
    );
    for i in &instances {
        let _ = writeln!(
            out,
            "{}{{worker=\"{}\"}} {}",
            names::INSTANCE_EJECTIONS,
            escape(i.id()),
            i.health.ejections()
        );
    }
    gauge_header(
        out,
        names::DISCOVERY_CONNECTED,
        "1 while the discovery source is reachable.",
    );
    let _ = writeln!(
        out,
        "{} {}",
        names::DISCOVERY_CONNECTED,
        u8::from(registry.discovery_connected())
    );
    counter_header(
        out,
        names::DISCOVERY_REJECTED,
        "Instance specs skipped as invalid, by source and reason.",
    );
    // Both labels come from fixed sets (the source kinds and `Reason::as_str`).
    for ((source, reason), n) in registry.rejections() {
        let _ = writeln!(
            out,
            "{}{{source=\"{source}\",reason=\"{}\"}} {n}",
            names::DISCOVERY_REJECTED,
            reason.as_str()
        );
    }
}

fn counter_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
}

fn gauge_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// Escapes a label value (backslash, quote, newline).
pub(crate) fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(20));
        h.observe(Duration::from_secs(500));
        let mut out = String::new();
        h.render(&mut out, "x", "m=\"a\"");
        assert!(out.contains("x_bucket{m=\"a\",le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{m=\"a\",le=\"0.025\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{m=\"a\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{m=\"a\"} 3\n"), "{out}");
    }

    #[test]
    fn requests_are_counted_by_labels_and_escaped() {
        let m = Metrics::default();
        let s = m.model("a\"b");
        s.count_request("chat", 200);
        s.count_request("chat", 200);
        s.count_request("chat", 502);
        let out = m.render(&Registry::default());
        assert!(
            out.contains(r#"switchyard_requests_total{model="a\"b",route="chat",status="200"} 2"#),
            "{out}"
        );
        assert!(out.contains(r#"status="502"} 1"#), "{out}");
    }
}

//! Counters and gauges, rendered as Prometheus text on `GET /metrics` and readable in-process
//! through [`LoadProbe`] (what a NATS load publisher sends).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::args::EngineDialect;

/// Metric names, one place so docs, dashboards and tests agree.
pub mod names {
    pub const RUNNING: &str = "switchyard_mocker_running";
    pub const WAITING: &str = "switchyard_mocker_waiting";
    pub const KV_USAGE: &str = "switchyard_mocker_kv_usage";
    pub const KV_BLOCKS_USED: &str = "switchyard_mocker_kv_blocks_used";
    pub const KV_BLOCKS_RESIDENT: &str = "switchyard_mocker_kv_blocks_resident";
    pub const KV_BLOCKS_TOTAL: &str = "switchyard_mocker_kv_blocks_total";
    pub const REQUESTS: &str = "switchyard_mocker_requests_total";
    pub const CANCELLED: &str = "switchyard_mocker_requests_cancelled_total";
    pub const PREFIX_HITS: &str = "switchyard_mocker_prefix_cache_hits_total";
    pub const PREFILL_BLOCKS: &str = "switchyard_mocker_prefill_blocks_total";
    pub const TOKENS: &str = "switchyard_mocker_tokens_generated_total";
}

/// The live numbers of one mocker. Relaxed atomics: each value is independent and exact
/// cross-metric consistency is not worth a lock on the request path.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) running: AtomicU64,
    pub(crate) waiting: AtomicU64,
    pub(crate) kv_blocks_used: AtomicU64,
    pub(crate) kv_blocks_resident: AtomicU64,
    pub(crate) kv_blocks_total: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) prefix_hits: AtomicU64,
    pub(crate) prefill_blocks: AtomicU64,
    pub(crate) tokens: AtomicU64,
}

/// A point-in-time load report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadSnapshot {
    /// Sequences generating now.
    pub running: u64,
    /// Requests queued for a running slot.
    pub waiting: u64,
    /// Fraction of KV blocks pinned by running sequences (0..=1).
    pub kv_usage: f64,
}

/// A cheap, cloneable view of a running mocker's load and counters.
#[derive(Debug, Clone, Default)]
pub struct LoadProbe {
    pub(crate) metrics: Arc<Metrics>,
}

impl LoadProbe {
    pub fn snapshot(&self) -> LoadSnapshot {
        self.metrics.snapshot()
    }

    /// The Prometheus text `/metrics` serves.
    pub fn render(&self) -> String {
        self.metrics.render()
    }
}

impl Metrics {
    pub(crate) fn snapshot(&self) -> LoadSnapshot {
        let total = self.kv_blocks_total.load(Relaxed);
        let used = self.kv_blocks_used.load(Relaxed);
        LoadSnapshot {
            running: self.running.load(Relaxed),
            waiting: self.waiting.load(Relaxed),
            kv_usage: if total == 0 {
                0.0
            } else {
                used as f64 / total as f64
            },
        }
    }

    /// Prometheus text exposition format 0.0.4.
    pub(crate) fn render(&self) -> String {
        use names::*;
        let load = |v: &AtomicU64| v.load(Relaxed);
        let mut out = String::with_capacity(2048);
        let mut put = |name: &str, kind: &str, help: &str, value: String| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        let int = |v: &AtomicU64| load(v).to_string();
        put(
            RUNNING,
            "gauge",
            "Sequences generating now.",
            int(&self.running),
        );
        put(
            WAITING,
            "gauge",
            "Requests waiting for a running slot.",
            int(&self.waiting),
        );
        let usage = self.snapshot().kv_usage.to_string();
        put(
            KV_USAGE,
            "gauge",
            "Fraction of KV blocks pinned by running sequences.",
            usage,
        );
        let used = int(&self.kv_blocks_used);
        put(
            KV_BLOCKS_USED,
            "gauge",
            "KV blocks pinned by running sequences.",
            used,
        );
        let resident = int(&self.kv_blocks_resident);
        put(
            KV_BLOCKS_RESIDENT,
            "gauge",
            "KV blocks resident (pinned or reusable).",
            resident,
        );
        put(
            KV_BLOCKS_TOTAL,
            "gauge",
            "KV cache capacity in blocks.",
            int(&self.kv_blocks_total),
        );
        put(
            REQUESTS,
            "counter",
            "Generation requests received.",
            int(&self.requests),
        );
        let cancelled = int(&self.cancelled);
        put(
            CANCELLED,
            "counter",
            "Requests whose client left before completion.",
            cancelled,
        );
        let hits = int(&self.prefix_hits);
        put(
            PREFIX_HITS,
            "counter",
            "Prompt blocks found in the KV cache.",
            hits,
        );
        let prefill = int(&self.prefill_blocks);
        put(
            PREFILL_BLOCKS,
            "counter",
            "Prompt blocks that had to be computed.",
            prefill,
        );
        put(TOKENS, "counter", "Tokens generated.", int(&self.tokens));
        out
    }
}

impl Metrics {
    /// Appends the load series of `engine` under that engine's own names and labels (from
    /// each engine's docs: vLLM labels by `model_name` and data-parallel `engine`, SGLang by
    /// `model_name`, TRT-LLM by `model_name` and `engine_type`, llama.cpp not at all).
    pub(crate) fn render_dialect(&self, engine: EngineDialect, model: &str, out: &mut String) {
        let snap = self.snapshot();
        let hits = self.prefix_hits.load(Relaxed);
        let queries = hits + self.prefill_blocks.load(Relaxed);
        let hit_rate = if queries == 0 {
            0.0
        } else {
            hits as f64 / queries as f64
        };
        let model = model.replace('\\', "\\\\").replace('"', "\\\"");
        let series: Vec<(&str, &str, String, String)> = match engine {
            EngineDialect::Mocker => return,
            EngineDialect::Vllm => {
                let l = format!("{{engine=\"0\",model_name=\"{model}\"}}");
                vec![
                    (
                        "vllm:num_requests_running",
                        "gauge",
                        l.clone(),
                        snap.running.to_string(),
                    ),
                    (
                        "vllm:num_requests_waiting",
                        "gauge",
                        l.clone(),
                        snap.waiting.to_string(),
                    ),
                    (
                        "vllm:kv_cache_usage_perc",
                        "gauge",
                        l.clone(),
                        snap.kv_usage.to_string(),
                    ),
                    (
                        "vllm:prefix_cache_queries_total",
                        "counter",
                        l.clone(),
                        queries.to_string(),
                    ),
                    (
                        "vllm:prefix_cache_hits_total",
                        "counter",
                        l,
                        hits.to_string(),
                    ),
                ]
            }
            EngineDialect::Sglang => {
                let l = format!("{{model_name=\"{model}\"}}");
                vec![
                    (
                        "sglang:num_running_reqs",
                        "gauge",
                        l.clone(),
                        snap.running.to_string(),
                    ),
                    (
                        "sglang:num_queue_reqs",
                        "gauge",
                        l.clone(),
                        snap.waiting.to_string(),
                    ),
                    (
                        "sglang:token_usage",
                        "gauge",
                        l.clone(),
                        snap.kv_usage.to_string(),
                    ),
                    ("sglang:cache_hit_rate", "gauge", l, hit_rate.to_string()),
                ]
            }
            EngineDialect::Trtllm => {
                let l = format!("{{engine_type=\"trtllm\",model_name=\"{model}\"}}");
                vec![
                    (
                        "trtllm_num_requests_running",
                        "gauge",
                        l.clone(),
                        snap.running.to_string(),
                    ),
                    (
                        "trtllm_num_requests_waiting",
                        "gauge",
                        l.clone(),
                        snap.waiting.to_string(),
                    ),
                    (
                        "trtllm_kv_cache_utilization",
                        "gauge",
                        l.clone(),
                        snap.kv_usage.to_string(),
                    ),
                    ("trtllm_kv_cache_hit_rate", "gauge", l, hit_rate.to_string()),
                ]
            }
            EngineDialect::Llamacpp => vec![
                (
                    "llamacpp:requests_processing",
                    "gauge",
                    String::new(),
                    snap.running.to_string(),
                ),
                (
                    "llamacpp:requests_deferred",
                    "gauge",
                    String::new(),
                    snap.waiting.to_string(),
                ),
                (
                    "llamacpp:kv_cache_usage_ratio",
                    "gauge",
                    String::new(),
                    snap.kv_usage.to_string(),
                ),
            ],
        };
        for (name, kind, labels, value) in series {
            // A counter's family name drops `_total` (as prometheus_client writes it).
            let family = name.strip_suffix("_total").unwrap_or(name);
            let _ = write!(out, "# TYPE {family} {kind}\n{name}{labels} {value}\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_every_metric_with_its_value() {
        let m = Metrics::default();
        m.running.store(3, Relaxed);
        m.kv_blocks_used.store(5, Relaxed);
        m.kv_blocks_total.store(20, Relaxed);
        let text = m.render();
        assert!(text.contains("\nswitchyard_mocker_running 3\n"), "{text}");
        assert!(
            text.contains("\nswitchyard_mocker_kv_usage 0.25\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE switchyard_mocker_requests_cancelled_total counter"));
        assert_eq!(m.snapshot().kv_usage, 0.25);
    }

    #[test]
    fn dialects_use_each_engines_names() {
        let m = Metrics::default();
        m.waiting.store(4, Relaxed);
        let mut out = String::new();
        m.render_dialect(EngineDialect::Vllm, "m\"x", &mut out);
        assert!(
            out.contains("vllm:num_requests_waiting{engine=\"0\",model_name=\"m\\\"x\"} 4\n"),
            "{out}"
        );
        assert!(out.contains("# TYPE vllm:prefix_cache_hits counter\nvllm:prefix_cache_hits_total"));
        for (engine, name) in [
            (EngineDialect::Sglang, "sglang:num_queue_reqs{"),
            (EngineDialect::Trtllm, "trtllm_num_requests_waiting{"),
            (EngineDialect::Llamacpp, "llamacpp:requests_deferred 4"),
        ] {
            let mut out = String::new();
            m.render_dialect(engine, "m", &mut out);
            assert!(out.contains(name), "{out}");
        }
        let mut out = String::new();
        m.render_dialect(EngineDialect::Mocker, "m", &mut out);
        assert!(out.is_empty());
    }
}

//! Counters and gauges, rendered as Prometheus text on `GET /metrics` and readable in-process
//! through [`LoadProbe`] (what a NATS load publisher sends).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use switchyard_runtime::exposition::{Family, Scrape};

use crate::args::EngineDialect;

/// Every family the mocker exposes (its own and each engine dialect's), one place so docs,
/// dashboards and tests agree.
pub mod names {
    use switchyard_runtime::exposition::Family;

    pub const RUNNING: Family =
        Family::gauge("switchyard_mocker_running", "Sequences generating now.");
    pub const WAITING: Family = Family::gauge(
        "switchyard_mocker_waiting",
        "Requests waiting for a running slot.",
    );
    pub const KV_USAGE: Family = Family::gauge(
        "switchyard_mocker_kv_usage",
        "Fraction of KV blocks pinned by running sequences.",
    );
    pub const KV_BLOCKS_USED: Family = Family::gauge(
        "switchyard_mocker_kv_blocks_used",
        "KV blocks pinned by running sequences.",
    );
    pub const KV_BLOCKS_RESIDENT: Family = Family::gauge(
        "switchyard_mocker_kv_blocks_resident",
        "KV blocks resident (pinned or reusable).",
    );
    pub const KV_BLOCKS_TOTAL: Family = Family::gauge(
        "switchyard_mocker_kv_blocks_total",
        "KV cache capacity in blocks.",
    );
    pub const REQUESTS: Family = Family::counter(
        "switchyard_mocker_requests_total",
        "Generation requests received.",
    );
    pub const CANCELLED: Family = Family::counter(
        "switchyard_mocker_requests_cancelled_total",
        "Requests whose client left before completion.",
    );
    pub const PREFIX_HITS: Family = Family::counter(
        "switchyard_mocker_prefix_cache_hits_total",
        "Prompt blocks found in the KV cache.",
    );
    pub const PREFILL_BLOCKS: Family = Family::counter(
        "switchyard_mocker_prefill_blocks_total",
        "Prompt blocks that had to be computed.",
    );
    pub const TOKENS: Family = Family::counter(
        "switchyard_mocker_tokens_generated_total",
        "Tokens generated.",
    );
    pub const LORA_LOADS: Family = Family::counter(
        "switchyard_mocker_lora_loads_total",
        "LoRA adapters loaded into a slot.",
    );
    pub const LORA_SWAPS: Family = Family::counter(
        "switchyard_mocker_lora_swaps_total",
        "LoRA adapters evicted from a slot to make room for another.",
    );
    pub const INFO: Family = Family::gauge(
        "switchyard_mocker_info",
        "1, labelled with the mocker's disaggregation role.",
    );
    pub const REMOTE_PREFILLS: Family = Family::counter(
        "switchyard_mocker_remote_prefills_total",
        "Prefills done for a remote decode instance.",
    );
    pub const KV_HANDED_OVER: Family = Family::counter(
        "switchyard_mocker_kv_handed_over_total",
        "KV pulls this prefill side served.",
    );
    pub const KV_PULLS: Family = Family::counter(
        "switchyard_mocker_kv_pulls_total",
        "KV pulls this decode side completed.",
    );
    pub const KV_PULL_FAILURES: Family = Family::counter(
        "switchyard_mocker_kv_pull_failures_total",
        "KV pulls this decode side attempted that failed (wrong, used or expired handle, unreachable prefill).",
    );
    pub const KV_HELD_BLOCKS: Family = Family::gauge(
        "switchyard_mocker_kv_held_blocks",
        "KV blocks held for decode instances to pull.",
    );

    /// Each engine's own series, under the names and help its docs give.
    pub mod dialect {
        use switchyard_runtime::exposition::Family;

        pub const VLLM_RUNNING: Family = Family::gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
        );
        pub const VLLM_WAITING: Family = Family::gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
        );
        pub const VLLM_KV_USAGE: Family = Family::gauge(
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
        );
        pub const VLLM_PREFIX_QUERIES: Family = Family::counter(
            "vllm:prefix_cache_queries_total",
            "Prefix cache queries, in terms of number of queried tokens.",
        );
        pub const VLLM_PREFIX_HITS: Family = Family::counter(
            "vllm:prefix_cache_hits_total",
            "Prefix cache hits, in terms of number of cached tokens.",
        );
        pub const VLLM_LORA_INFO: Family =
            Family::gauge("vllm:lora_requests_info", "Running stats on lora requests.");
        pub const SGLANG_RUNNING: Family =
            Family::gauge("sglang:num_running_reqs", "The number of running requests.");
        pub const SGLANG_QUEUED: Family = Family::gauge(
            "sglang:num_queue_reqs",
            "The number of requests in the waiting queue.",
        );
        pub const SGLANG_TOKEN_USAGE: Family =
            Family::gauge("sglang:token_usage", "The token usage.");
        pub const SGLANG_CACHE_HIT_RATE: Family =
            Family::gauge("sglang:cache_hit_rate", "The prefix cache hit rate.");
        pub const TRTLLM_RUNNING: Family =
            Family::gauge("trtllm_num_requests_running", "Number of running requests.");
        pub const TRTLLM_WAITING: Family =
            Family::gauge("trtllm_num_requests_waiting", "Number of waiting requests.");
        pub const TRTLLM_KV_UTILIZATION: Family =
            Family::gauge("trtllm_kv_cache_utilization", "KV cache utilization.");
        pub const TRTLLM_KV_HIT_RATE: Family =
            Family::gauge("trtllm_kv_cache_hit_rate", "KV cache hit rate.");
        pub const LLAMACPP_PROCESSING: Family = Family::gauge(
            "llamacpp:requests_processing",
            "Number of requests processing.",
        );
        pub const LLAMACPP_DEFERRED: Family =
            Family::gauge("llamacpp:requests_deferred", "Number of requests deferred.");
        pub const LLAMACPP_KV_USAGE: Family = Family::gauge(
            "llamacpp:kv_cache_usage_ratio",
            "KV-cache usage. 1 means 100 percent usage.",
        );
    }
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

    /// The mocker's own series as Prometheus text (what `/metrics` starts with).
    pub fn render(&self) -> String {
        let mut s = Scrape::default();
        self.metrics.collect(&mut s);
        encode(s)
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

    /// The mocker's own series.
    pub(crate) fn collect(&self, s: &mut Scrape) {
        let load = |v: &AtomicU64| v.load(Relaxed) as f64;
        for (family, value) in [
            (&names::RUNNING, load(&self.running)),
            (&names::WAITING, load(&self.waiting)),
            (&names::KV_USAGE, self.snapshot().kv_usage),
            (&names::KV_BLOCKS_USED, load(&self.kv_blocks_used)),
            (&names::KV_BLOCKS_RESIDENT, load(&self.kv_blocks_resident)),
            (&names::KV_BLOCKS_TOTAL, load(&self.kv_blocks_total)),
            (&names::REQUESTS, load(&self.requests)),
            (&names::CANCELLED, load(&self.cancelled)),
            (&names::PREFIX_HITS, load(&self.prefix_hits)),
            (&names::PREFILL_BLOCKS, load(&self.prefill_blocks)),
            (&names::TOKENS, load(&self.tokens)),
        ] {
            s.family(family).value(&[], value);
        }
    }

    /// The load series of `engine` under that engine's own names and labels (from each
    /// engine's docs: vLLM labels by `model_name` and data-parallel `engine`, SGLang by
    /// `model_name`, TRT-LLM by `model_name` and `engine_type`, llama.cpp not at all).
    pub(crate) fn collect_dialect(&self, engine: EngineDialect, model: &str, s: &mut Scrape) {
        use names::dialect::*;
        let snap = self.snapshot();
        let hits = self.prefix_hits.load(Relaxed);
        let queries = hits + self.prefill_blocks.load(Relaxed);
        let hit_rate = if queries == 0 {
            0.0
        } else {
            hits as f64 / queries as f64
        };
        let (running, waiting) = (snap.running as f64, snap.waiting as f64);
        let (labels, series): (Labels<'_>, Vec<(Family, f64)>) = match engine {
            EngineDialect::Mocker => return,
            EngineDialect::Vllm => (
                &[("engine", "0"), ("model_name", model)],
                vec![
                    (VLLM_RUNNING, running),
                    (VLLM_WAITING, waiting),
                    (VLLM_KV_USAGE, snap.kv_usage),
                    (VLLM_PREFIX_QUERIES, queries as f64),
                    (VLLM_PREFIX_HITS, hits as f64),
                ],
            ),
            EngineDialect::Sglang => (
                &[("model_name", model)],
                vec![
                    (SGLANG_RUNNING, running),
                    (SGLANG_QUEUED, waiting),
                    (SGLANG_TOKEN_USAGE, snap.kv_usage),
                    (SGLANG_CACHE_HIT_RATE, hit_rate),
                ],
            ),
            EngineDialect::Trtllm => (
                &[("engine_type", "trtllm"), ("model_name", model)],
                vec![
                    (TRTLLM_RUNNING, running),
                    (TRTLLM_WAITING, waiting),
                    (TRTLLM_KV_UTILIZATION, snap.kv_usage),
                    (TRTLLM_KV_HIT_RATE, hit_rate),
                ],
            ),
            EngineDialect::Llamacpp => (
                &[],
                vec![
                    (LLAMACPP_PROCESSING, running),
                    (LLAMACPP_DEFERRED, waiting),
                    (LLAMACPP_KV_USAGE, snap.kv_usage),
                ],
            ),
        };
        for (family, value) in series {
            s.family(&family).value(labels, value);
        }
    }
}

/// Label pairs shared by every series of one dialect.
type Labels<'a> = &'a [(&'a str, &'a str)];

/// Encodes collected families as Prometheus text.
pub(crate) fn encode(s: Scrape) -> String {
    switchyard_runtime::exposition::encode_families(&s.into_families())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialect(m: &Metrics, engine: EngineDialect, model: &str) -> String {
        let mut s = Scrape::default();
        m.collect_dialect(engine, model, &mut s);
        encode(s)
    }

    #[test]
    fn render_lists_every_metric_with_its_value() {
        let m = Metrics::default();
        m.running.store(3, Relaxed);
        m.kv_blocks_used.store(5, Relaxed);
        m.kv_blocks_total.store(20, Relaxed);
        let mut s = Scrape::default();
        m.collect(&mut s);
        let text = encode(s);
        assert!(text.contains("\nswitchyard_mocker_running 3\n"), "{text}");
        assert!(
            text.contains("\nswitchyard_mocker_kv_usage 0.25\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE switchyard_mocker_requests_cancelled_total counter"));
        assert_eq!(m.snapshot().kv_usage, 0.25);
        let families = switchyard_runtime::exposition::check(&text).unwrap();
        assert_eq!(families.len(), 11, "{families:?}");
    }

    #[test]
    fn dialects_use_each_engines_names() {
        let m = Metrics::default();
        m.waiting.store(4, Relaxed);
        let out = dialect(&m, EngineDialect::Vllm, "m\"x");
        assert!(
            out.contains("vllm:num_requests_waiting{engine=\"0\",model_name=\"m\\\"x\"} 4\n"),
            "{out}"
        );
        // Text format 0.0.4, as vLLM's Python client writes it: the counter's family keeps `_total`.
        assert!(out
            .contains("# TYPE vllm:prefix_cache_hits_total counter\nvllm:prefix_cache_hits_total"));
        switchyard_runtime::exposition::check(&out).unwrap();
        for (engine, name) in [
            (EngineDialect::Sglang, "sglang:num_queue_reqs{"),
            (EngineDialect::Trtllm, "trtllm_num_requests_waiting{"),
            (EngineDialect::Llamacpp, "llamacpp:requests_deferred 4"),
        ] {
            let out = dialect(&m, engine, "m");
            assert!(out.contains(name), "{out}");
            switchyard_runtime::exposition::check(&out).unwrap();
        }
        assert!(dialect(&m, EngineDialect::Mocker, "m").is_empty());
    }
}

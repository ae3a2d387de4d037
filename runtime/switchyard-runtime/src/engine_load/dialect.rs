//! What each engine calls its load: the metrics path and the series names, per engine kind.
//!
//! The names are the engines' own (their docs and sources), listed newest first where a
//! version renamed them; a series an engine version lacks reads as unknown, never as 0 and
//! never as a failed scrape. Several series of one name (vLLM and SGLang label each
//! data-parallel engine) are combined: counts add up, ratios average.

use crate::instance::Engine;

use super::prom_text::{self, ParseStats};

/// One engine's metric vocabulary.
#[derive(Debug)]
pub struct Dialect {
    /// Path of the Prometheus endpoint on the worker's base URL.
    pub metrics_path: &'static str,
    running: &'static [&'static str],
    waiting: &'static [&'static str],
    /// KV-cache usage as a fraction 0..=1 (vLLM's `_perc` series are fractions too).
    kv_usage: &'static [&'static str],
    /// A prefix-cache hit-rate gauge (0..=1).
    hit_rate: &'static [&'static str],
    /// Prefix-cache (hits, queries) counter pairs; the rate comes from two scrapes.
    hit_counters: &'static [(&'static str, &'static str)],
}

const VLLM: Dialect = Dialect {
    metrics_path: "/metrics",
    running: &["vllm:num_requests_running"],
    waiting: &["vllm:num_requests_waiting"],
    // `kv_cache_usage_perc` since the V1 engine; `gpu_cache_usage_perc` before it.
    kv_usage: &["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
    // V0 exported a gauge; V1 exports counters (renamed from `gpu_prefix_cache_*`).
    hit_rate: &["vllm:gpu_prefix_cache_hit_rate"],
    hit_counters: &[
        (
            "vllm:prefix_cache_hits_total",
            "vllm:prefix_cache_queries_total",
        ),
        (
            "vllm:gpu_prefix_cache_hits_total",
            "vllm:gpu_prefix_cache_queries_total",
        ),
    ],
};

/// SGLang serves these with `--enable-metrics`.
const SGLANG: Dialect = Dialect {
    metrics_path: "/metrics",
    running: &["sglang:num_running_reqs"],
    waiting: &["sglang:num_queue_reqs"],
    kv_usage: &["sglang:token_usage"],
    hit_rate: &["sglang:cache_hit_rate"],
    hit_counters: &[],
};

/// `trtllm-serve` exposes Prometheus text on its own path (its `/metrics` is JSON).
const TRTLLM: Dialect = Dialect {
    metrics_path: "/prometheus/metrics",
    running: &["trtllm_num_requests_running"],
    waiting: &["trtllm_num_requests_waiting"],
    kv_usage: &["trtllm_kv_cache_utilization"],
    hit_rate: &["trtllm_kv_cache_hit_rate"],
    hit_counters: &[],
};

/// `llama-server --metrics`. Newer builds dropped the KV ratio; it then reads as unknown.
const LLAMACPP: Dialect = Dialect {
    metrics_path: "/metrics",
    running: &["llamacpp:requests_processing"],
    waiting: &["llamacpp:requests_deferred"],
    kv_usage: &["llamacpp:kv_cache_usage_ratio"],
    hit_rate: &[],
    hit_counters: &[],
};

/// Switchyard's own mocker (it also publishes the same numbers on NATS).
const MOCKER: Dialect = Dialect {
    metrics_path: "/metrics",
    running: &["switchyard_mocker_running"],
    waiting: &["switchyard_mocker_waiting"],
    kv_usage: &["switchyard_mocker_kv_usage"],
    hit_rate: &[],
    hit_counters: &[],
};

impl Dialect {
    /// The dialect of `engine`; `generic` workers have none and are not scraped.
    pub fn of(engine: Engine) -> Option<&'static Dialect> {
        match engine {
            Engine::Vllm => Some(&VLLM),
            Engine::Sglang => Some(&SGLANG),
            Engine::Trtllm => Some(&TRTLLM),
            Engine::Llamacpp => Some(&LLAMACPP),
            Engine::Mocker => Some(&MOCKER),
            Engine::Generic => None,
        }
    }

    /// Reads one scrape. Each field is `None` when the engine did not export it.
    pub fn read(&self, text: &str) -> (EngineSignals, ParseStats) {
        let mut acc = Accumulators::default();
        let stats = prom_text::parse(text, |s| {
            if !s.value.is_finite() || s.value < 0.0 {
                return;
            }
            if let Some(rank) = position(self.running, s.name) {
                acc.running.add(rank, s.value);
            } else if let Some(rank) = position(self.waiting, s.name) {
                acc.waiting.add(rank, s.value);
            } else if let Some(rank) = position(self.kv_usage, s.name) {
                acc.kv_usage.add(rank, s.value);
            } else if let Some(rank) = position(self.hit_rate, s.name) {
                acc.hit_rate.add(rank, s.value);
            } else {
                for (rank, (hits, queries)) in self.hit_counters.iter().enumerate() {
                    if s.name == *hits {
                        acc.hits.add(rank, s.value);
                    } else if s.name == *queries {
                        acc.queries.add(rank, s.value);
                    }
                }
            }
        });
        let counters = match (acc.hits.best(), acc.queries.best()) {
            (Some((rh, h, _)), Some((rq, q, _))) if rh == rq => Some(PrefixCounters {
                hits: h,
                queries: q,
            }),
            _ => None,
        };
        let signals = EngineSignals {
            running: acc.running.sum(),
            waiting: acc.waiting.sum(),
            kv_usage: acc.kv_usage.mean().map(|u| u.clamp(0.0, 1.0)),
            hit_rate: acc.hit_rate.mean().map(|r| r.clamp(0.0, 1.0)),
            prefix_counters: counters,
        };
        (signals, stats)
    }
}

/// The load signals one scrape yielded.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct EngineSignals {
    pub running: Option<f64>,
    pub waiting: Option<f64>,
    pub kv_usage: Option<f64>,
    /// From a gauge, when the engine has one.
    pub hit_rate: Option<f64>,
    /// Cumulative prefix-cache counters, when the engine has them.
    pub prefix_counters: Option<PrefixCounters>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct PrefixCounters {
    pub hits: f64,
    pub queries: f64,
}

impl PrefixCounters {
    /// Hit rate between two scrapes; `None` without new queries or after a counter reset.
    pub fn rate_since(&self, earlier: &PrefixCounters) -> Option<f64> {
        let queries = self.queries - earlier.queries;
        let hits = self.hits - earlier.hits;
        (queries > 0.0 && hits >= 0.0).then(|| (hits / queries).clamp(0.0, 1.0))
    }
}

fn position(names: &[&str], name: &str) -> Option<usize> {
    names.iter().position(|n| *n == name)
}

/// Values of one signal, by the rank of the name they came from (0 = newest name): if an
/// engine exports both an old and a new name, the new one wins.
#[derive(Debug, Default)]
struct Series {
    /// (rank, sum, count) of the best-ranked name seen so far.
    best: Option<(usize, f64, u32)>,
}

impl Series {
    fn add(&mut self, rank: usize, value: f64) {
        match &mut self.best {
            Some((r, sum, n)) if *r == rank => {
                *sum += value;
                *n += 1;
            }
            Some((r, _, _)) if *r < rank => {}
            _ => self.best = Some((rank, value, 1)),
        }
    }
    fn best(&self) -> Option<(usize, f64, u32)> {
        self.best
    }
    fn sum(&self) -> Option<f64> {
        self.best.map(|(_, sum, _)| sum)
    }
    fn mean(&self) -> Option<f64> {
        self.best.map(|(_, sum, n)| sum / f64::from(n.max(1)))
    }
}

#[derive(Debug, Default)]
struct Accumulators {
    running: Series,
    waiting: Series,
    kv_usage: Series,
    hit_rate: Series,
    hits: Series,
    queries: Series,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// vLLM V1 with two data-parallel engines, as its `/metrics` labels them.
    const VLLM_V1: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama"} 3.0
vllm:num_requests_running{engine="1",model_name="llama"} 1.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="llama"} 7.0
vllm:num_requests_waiting{engine="1",model_name="llama"} 3.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.5
vllm:kv_cache_usage_perc{engine="1",model_name="llama"} 0.25
# TYPE vllm:prefix_cache_queries counter
vllm:prefix_cache_queries_total{engine="0",model_name="llama"} 1000.0
vllm:prefix_cache_queries_total{engine="1",model_name="llama"} 1000.0
# TYPE vllm:prefix_cache_hits counter
vllm:prefix_cache_hits_total{engine="0",model_name="llama"} 600.0
vllm:prefix_cache_hits_total{engine="1",model_name="llama"} 200.0
vllm:lora_requests_info{max_lora="4",running_lora_adapters="",waiting_lora_adapters=""} 1.7e9
"#;

    /// vLLM V0 (0.6/0.7): the older cache names and a hit-rate gauge.
    const VLLM_V0: &str = r#"vllm:num_requests_running{model_name="llama"} 2.0
vllm:num_requests_waiting{model_name="llama"} 0.0
vllm:num_requests_swapped{model_name="llama"} 0.0
vllm:gpu_cache_usage_perc{model_name="llama"} 0.9
vllm:cpu_cache_usage_perc{model_name="llama"} 0.0
vllm:gpu_prefix_cache_hit_rate{model_name="llama"} 0.42
"#;

    #[test]
    fn vllm_v1_sums_counts_and_averages_ratios_across_engines() {
        let (s, stats) = VLLM.read(VLLM_V1);
        assert_eq!(s.running, Some(4.0));
        assert_eq!(s.waiting, Some(10.0));
        assert_eq!(s.kv_usage, Some(0.375));
        assert_eq!(s.hit_rate, None);
        assert_eq!(
            s.prefix_counters,
            Some(PrefixCounters {
                hits: 800.0,
                queries: 2000.0
            })
        );
        assert_eq!(stats.malformed, 0);
    }

    #[test]
    fn vllm_v0_names_still_read() {
        let (s, _) = VLLM.read(VLLM_V0);
        assert_eq!(s.running, Some(2.0));
        assert_eq!(s.waiting, Some(0.0));
        assert_eq!(s.kv_usage, Some(0.9));
        assert_eq!(s.hit_rate, Some(0.42));
    }

    #[test]
    fn the_newer_name_wins_when_both_are_exported() {
        let text = "vllm:gpu_cache_usage_perc 0.9\nvllm:kv_cache_usage_perc 0.1\nvllm:gpu_cache_usage_perc 0.8\n";
        assert_eq!(VLLM.read(text).0.kv_usage, Some(0.1));
    }

    #[test]
    fn sglang_trtllm_and_llamacpp_read_their_own_names() {
        let sglang = "sglang:num_running_reqs{model_name=\"m\",tp_rank=\"0\"} 5\n\
                      sglang:num_queue_reqs{model_name=\"m\",tp_rank=\"0\"} 2\n\
                      sglang:token_usage{model_name=\"m\",tp_rank=\"0\"} 0.31\n\
                      sglang:cache_hit_rate{model_name=\"m\",tp_rank=\"0\"} 0.7\n";
        let (s, _) = SGLANG.read(sglang);
        assert_eq!(
            (s.running, s.waiting, s.kv_usage, s.hit_rate),
            (Some(5.0), Some(2.0), Some(0.31), Some(0.7))
        );
        let trt = "trtllm_num_requests_running{engine_type=\"trtllm\",model_name=\"m\"} 8\n\
                   trtllm_num_requests_waiting{engine_type=\"trtllm\",model_name=\"m\"} 1\n\
                   trtllm_kv_cache_utilization{engine_type=\"trtllm\",model_name=\"m\"} 0.5\n";
        let (s, _) = TRTLLM.read(trt);
        assert_eq!(
            (s.running, s.waiting, s.kv_usage),
            (Some(8.0), Some(1.0), Some(0.5))
        );
        assert_eq!(TRTLLM.metrics_path, "/prometheus/metrics");
        let llama = "# TYPE llamacpp:requests_processing gauge\nllamacpp:requests_processing 1\n\
                     llamacpp:requests_deferred 4\nllamacpp:kv_cache_usage_ratio 0.125\n";
        let (s, _) = LLAMACPP.read(llama);
        assert_eq!(
            (s.running, s.waiting, s.kv_usage),
            (Some(1.0), Some(4.0), Some(0.125))
        );
    }

    #[test]
    fn missing_or_garbage_series_read_as_unknown_not_zero() {
        // An older TRT-LLM with only request histograms, and a worker serving junk.
        let (s, _) = TRTLLM.read("trtllm_request_success_total 3\n");
        assert_eq!(s, EngineSignals::default());
        let (s, stats) = VLLM.read("<html>not metrics</html>\nvllm:num_requests_waiting NaN\n");
        assert_eq!(s.waiting, None);
        assert_eq!(stats.malformed, 1);
        let (s, _) = VLLM.read("vllm:num_requests_waiting -3\nvllm:kv_cache_usage_perc 7\n");
        assert_eq!((s.waiting, s.kv_usage), (None, Some(1.0)));
    }

    #[test]
    fn hit_rate_from_counters_needs_new_queries_and_survives_resets() {
        let a = PrefixCounters {
            hits: 10.0,
            queries: 100.0,
        };
        let b = PrefixCounters {
            hits: 40.0,
            queries: 150.0,
        };
        assert_eq!(b.rate_since(&a), Some(0.6));
        assert_eq!(a.rate_since(&a), None);
        assert_eq!(a.rate_since(&b), None);
    }

    #[test]
    fn generic_workers_have_no_dialect() {
        assert!(Dialect::of(Engine::Generic).is_none());
        assert!(Dialect::of(Engine::Vllm).is_some());
    }
}

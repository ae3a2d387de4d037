//! Load from the engines themselves: each worker's own Prometheus endpoint, read in the
//! engine's dialect ([`dialect`]), feeds its instance's `queued`, `running`, `kv_usage` and
//! prefix-cache hit rate — no NATS needed in front of plain vLLM, SGLang, TRT-LLM or
//! llama.cpp servers.
//!
//! One task ticks every `interval_ms` (jittered by ±10 % so many frontends do not scrape in
//! lockstep) and starts a scrape for every instance that has a dialect, has none in flight,
//! and has no fresh NATS report (NATS snapshots, where a worker publishes them, win). A scrape
//! is bounded in time and bytes; a failure is never a routing error, it only lets the figures
//! age: after `stale_ms` without a good scrape they read as unknown (0) again.

pub mod dialect;
pub mod prom_text;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Limited};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::client::WorkerClient;
use crate::clock;
use crate::live::{EngineReport, Instance, ReportSource};
use crate::registry::Registry;

pub use dialect::{Dialect, EngineSignals, PrefixCounters};

/// `load_scrape:` in the frontend's YAML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrapeConfig {
    /// Scrape period, milliseconds; 0 turns scraping off.
    #[serde(rename = "interval", with = "switchyard_protocol::duration::millis")]
    pub interval_ms: u64,
    /// One scrape slower than this fails, milliseconds.
    #[serde(rename = "timeout", with = "switchyard_protocol::duration::millis")]
    pub timeout_ms: u64,
    /// Figures older than this read as unknown, milliseconds.
    #[serde(rename = "stale", with = "switchyard_protocol::duration::millis")]
    pub stale_ms: u64,
    /// Largest metrics body read, bytes (a worker's answer is untrusted).
    pub max_bytes: usize,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        Self {
            interval_ms: 250,
            timeout_ms: 1_000,
            stale_ms: 2_000,
            max_bytes: 4 << 20,
        }
    }
}

impl ScrapeConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.interval_ms == 0 {
            return Ok(());
        }
        if self.timeout_ms == 0 {
            return Err("load_scrape.timeout must be greater than 0".into());
        }
        if self.stale_ms < self.interval_ms {
            return Err(format!(
                "load_scrape.stale ({}) must be at least load_scrape.interval ({})",
                self.stale_ms, self.interval_ms
            ));
        }
        if self.max_bytes < 1024 {
            return Err("load_scrape.max_bytes must be at least 1024".into());
        }
        Ok(())
    }
}

/// How scrapes ended, for `switchyard_load_scrapes_total{result}`.
#[derive(Debug, Default)]
pub struct ScrapeStats {
    pub ok: AtomicU64,
    /// Connection refused, non-2xx status, unreadable body.
    pub error: AtomicU64,
    pub timeout: AtomicU64,
    /// Body larger than `max_bytes`.
    pub too_large: AtomicU64,
    /// A 2xx answer with none of the dialect's series (wrong port, metrics turned off).
    pub empty: AtomicU64,
    /// Malformed lines skipped across all scrapes.
    pub malformed_lines: AtomicU64,
}

impl ScrapeStats {
    /// `(result label, count)` pairs in a stable order.
    pub fn by_result(&self) -> [(&'static str, u64); 5] {
        [
            ("ok", self.ok.load(Relaxed)),
            ("error", self.error.load(Relaxed)),
            ("timeout", self.timeout.load(Relaxed)),
            ("too_large", self.too_large.load(Relaxed)),
            ("empty", self.empty.load(Relaxed)),
        ]
    }
}

/// Per-instance scrape state, owned by the loop.
#[derive(Debug, Default)]
struct Track {
    busy: Arc<AtomicBool>,
    /// Counters of the previous good scrape and the rate derived from the last two.
    counters: Arc<parking_lot::Mutex<CounterTrack>>,
}

#[derive(Debug, Default)]
struct CounterTrack {
    last: Option<PrefixCounters>,
    rate: Option<f64>,
}

/// Scrapes every instance with a dialect until the task is aborted; `None` when off.
pub fn spawn_scraper(
    registry: Arc<Registry>,
    client: WorkerClient,
    config: ScrapeConfig,
    stats: Arc<ScrapeStats>,
) -> Option<JoinHandle<()>> {
    if config.interval_ms == 0 {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tracks: HashMap<u32, Track> = HashMap::new();
        let stale_ns = config.stale_ms.saturating_mul(1_000_000);
        loop {
            let jitter = rand::thread_rng().gen_range(0.9..1.1);
            tokio::time::sleep(Duration::from_millis(config.interval_ms).mul_f64(jitter)).await;
            let now = clock::now_ns();
            let instances = registry.all();
            tracks.retain(|id, _| instances.iter().any(|i| i.num_id == *id));
            for instance in instances.iter() {
                let (source, age) = instance.load.report(now);
                let stale = age.is_some_and(|a| a.as_nanos() > u128::from(stale_ns));
                if source == ReportSource::Nats && !stale {
                    continue;
                }
                let Some(dialect) = Dialect::of(instance.spec.engine) else {
                    continue;
                };
                if stale {
                    // Scrapes stopped succeeding (or NATS went quiet): unknown, not stale.
                    instance.load.clear_report();
                }
                let track = tracks.entry(instance.num_id).or_default();
                if track.busy.swap(true, Relaxed) {
                    continue;
                }
                let job = Scrape {
                    instance: Arc::clone(instance),
                    dialect,
                    client: client.clone(),
                    config: config.clone(),
                    stats: Arc::clone(&stats),
                    counters: Arc::clone(&track.counters),
                };
                let busy = Arc::clone(&track.busy);
                tokio::spawn(async move {
                    job.run().await;
                    busy.store(false, Relaxed);
                });
            }
        }
    }))
}

struct Scrape {
    instance: Arc<Instance>,
    dialect: &'static Dialect,
    client: WorkerClient,
    config: ScrapeConfig,
    stats: Arc<ScrapeStats>,
    counters: Arc<parking_lot::Mutex<CounterTrack>>,
}

enum Failure {
    Error,
    Timeout,
    TooLarge,
}

impl Scrape {
    async fn run(self) {
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let body = match tokio::time::timeout(timeout, self.fetch()).await {
            Ok(Ok(body)) => body,
            Ok(Err(failure)) => return self.failed(failure),
            Err(_) => return self.failed(Failure::Timeout),
        };
        let text = String::from_utf8_lossy(&body);
        let (signals, parsed) = self.dialect.read(&text);
        if let Some(info) = crate::lora::LoraInfo::read(&text) {
            self.instance.adapters.observe(&info, clock::now_ns());
        }
        self.stats
            .malformed_lines
            .fetch_add(parsed.malformed as u64, Relaxed);
        if signals == EngineSignals::default() {
            self.stats.empty.fetch_add(1, Relaxed);
            tracing::debug!(
                instance = self.instance.id(),
                path = self.dialect.metrics_path,
                "load scrape found none of the engine's series"
            );
            return;
        }
        self.stats.ok.fetch_add(1, Relaxed);
        let hit_rate = signals.hit_rate.or_else(|| {
            let now = signals.prefix_counters?;
            let mut track = self.counters.lock();
            if let Some(rate) = track.last.and_then(|earlier| now.rate_since(&earlier)) {
                track.rate = Some(rate);
            }
            track.last = Some(now);
            track.rate
        });
        let report = EngineReport {
            running: signals.running,
            waiting: signals.waiting,
            kv_usage: signals.kv_usage,
            prefix_hit_rate: hit_rate,
        };
        // A NATS report that arrived while this scrape was in flight wins.
        if self.instance.load.report(clock::now_ns()).0 != ReportSource::Nats {
            self.instance
                .load
                .record_report(ReportSource::Scrape, &report, clock::now_ns());
        }
    }

    async fn fetch(&self) -> Result<Bytes, Failure> {
        let url = format!(
            "{}{}",
            self.instance.spec.url.trim_end_matches('/'),
            self.dialect.metrics_path
        );
        let uri: Uri = url.parse().map_err(|_| Failure::Error)?;
        let response = self
            .client
            .get(uri, self.instance.spec.auth_header())
            .await
            .map_err(|_| Failure::Error)?;
        if !response.status().is_success() {
            return Err(Failure::Error);
        }
        let limited = Limited::new(response.into_body(), self.config.max_bytes);
        match limited.collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Failure::TooLarge),
            Err(_) => Err(Failure::Error),
        }
    }

    fn failed(&self, failure: Failure) {
        let counter = match failure {
            Failure::Error => &self.stats.error,
            Failure::Timeout => &self.stats.timeout,
            Failure::TooLarge => &self.stats.too_large,
        };
        counter.fetch_add(1, Relaxed);
        // The figures are left to age; the loop clears them once they are stale.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        assert!(ScrapeConfig::default().validate().is_ok());
        let off = ScrapeConfig {
            interval_ms: 0,
            timeout_ms: 0,
            ..ScrapeConfig::default()
        };
        assert!(off.validate().is_ok());
        let bad = ScrapeConfig {
            stale_ms: 100,
            ..ScrapeConfig::default()
        };
        let err = bad.validate().err().unwrap_or_default();
        assert!(err.contains("load_scrape.stale"), "{err}");
        let err = ScrapeConfig {
            timeout_ms: 0,
            ..ScrapeConfig::default()
        }
        .validate()
        .err()
        .unwrap_or_default();
        assert!(err.contains("load_scrape.timeout"), "{err}");
    }
}

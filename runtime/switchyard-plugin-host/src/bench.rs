//! `switchyard plugin bench`: per-decision latency at 8, 64 and 512 candidates for every kind
//! the component implements, plus the cost of a fresh instance (from `InstancePre`).
//!
//! Each call is timed on its own (so the figures include ~20-40 ns of `Instant` overhead)
//! and sampling stops after a sample count or a time limit, whichever comes first, so slow
//! Python/JS plugins finish in seconds too.

use std::fmt;
use std::time::{Duration, Instant};

use crate::sample::sample_observations;
use crate::{
    sample_candidates, sample_request, sample_topology, HostConfig, LoadedPlugin, PluginHost,
    PluginKind, PluginLimits, Result, WitVersion,
};

/// Candidate counts measured.
pub const BENCH_SIZES: [usize; 3] = [8, 64, 512];
const WARMUP_CALLS: usize = 200;
const MAX_SAMPLES: usize = 20_000;
const TIME_LIMIT: Duration = Duration::from_millis(500);

/// Latency of one kind at one size.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BenchPoint {
    /// The decision kind.
    pub kind: PluginKind,
    /// Candidates (or observations, for health policies) per call.
    pub candidates: usize,
    /// Calls timed.
    pub samples: usize,
    /// Median latency.
    pub p50: Duration,
    /// 99th-percentile latency.
    pub p99: Duration,
    /// Mean on-CPU time of the calling thread per call (Linux `schedstat`), which unlike the
    /// wall-clock percentiles is not inflated by other processes competing for the CPU.
    pub cpu_per_call: Option<Duration>,
}

/// Outcome of [`bench`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BenchReport {
    /// The WIT package version the component was built against.
    pub wit_version: WitVersion,
    /// Kinds measured.
    pub kinds: Vec<PluginKind>,
    /// One point per kind and size.
    pub points: Vec<BenchPoint>,
    /// Median cost of a fresh instance: instantiate from `InstancePre` + `configure`.
    pub instantiate_p50: Duration,
    /// Compile + first instantiation.
    pub load: Duration,
}

/// Benchmarks `bytes` configured with `config_json`, with the pooling allocator as in serving.
pub fn bench(bytes: &[u8], config_json: &str) -> Result<BenchReport> {
    let host = PluginHost::new(HostConfig::default())?;
    // A generous budget: the bench measures cost, it does not enforce it.
    let limits = PluginLimits {
        decision_budget: Duration::from_secs(1),
        memory_bytes: 256 << 20,
        ..PluginLimits::default()
    };
    let started = Instant::now();
    let plugin = host.load("bench", bytes, limits, config_json)?;
    let load = started.elapsed();
    plugin.on_topology(sample_topology(*BENCH_SIZES.iter().max().unwrap_or(&512)))?;
    let kinds: Vec<PluginKind> = plugin
        .kinds()
        .iter()
        .copied()
        .filter(|k| *k != PluginKind::Router)
        .collect();
    let mut points = Vec::new();
    for &kind in &kinds {
        for &n in &BENCH_SIZES {
            points.push(bench_point(&plugin, kind, n)?);
        }
    }
    let instantiate_p50 = time_instantiation(&plugin)?;
    Ok(BenchReport {
        wit_version: plugin.wit_version(),
        kinds,
        points,
        instantiate_p50,
        load,
    })
}

fn bench_point(plugin: &LoadedPlugin, kind: PluginKind, n: usize) -> Result<BenchPoint> {
    let request = sample_request();
    let candidates = sample_candidates(n);
    let observations = sample_observations(n, n);
    let call = || -> Result<()> {
        match kind {
            PluginKind::Filter => plugin.filter(&request, &candidates).map(drop),
            PluginKind::Scorer => plugin.score(&request, &candidates).map(drop),
            PluginKind::Picker => plugin.pick(&request, &candidates).map(drop),
            PluginKind::HealthPolicy => plugin.assess(&observations).map(drop),
            PluginKind::Router => Ok(()),
        }
    };
    let warm_until = Instant::now() + TIME_LIMIT / 5;
    for _ in 0..WARMUP_CALLS {
        call()?;
        if Instant::now() > warm_until {
            break;
        }
    }
    let mut samples = Vec::with_capacity(MAX_SAMPLES);
    let deadline = Instant::now() + TIME_LIMIT;
    let cpu_before = thread_cpu_time();
    while samples.len() < MAX_SAMPLES && (samples.len() < 20 || Instant::now() < deadline) {
        let t = Instant::now();
        call()?;
        samples.push(t.elapsed());
    }
    let cpu_per_call = match (cpu_before, thread_cpu_time()) {
        (Some(before), Some(after)) => after
            .checked_sub(before)
            .map(|d| d / u32::try_from(samples.len().max(1)).unwrap_or(u32::MAX)),
        _ => None,
    };
    let (p50, p99) = percentiles(&mut samples);
    Ok(BenchPoint {
        kind,
        candidates: n,
        samples: samples.len(),
        p50,
        p99,
        cpu_per_call,
    })
}

fn time_instantiation(plugin: &LoadedPlugin) -> Result<Duration> {
    let mut samples = Vec::new();
    let deadline = Instant::now() + TIME_LIMIT;
    while samples.len() < 200 && (samples.len() < 5 || Instant::now() < deadline) {
        let t = Instant::now();
        plugin.instantiate_fresh()?;
        samples.push(t.elapsed());
    }
    Ok(percentiles(&mut samples).0)
}

/// Time the current thread has spent on a CPU, from `/proc/thread-self/schedstat` (Linux);
/// `None` elsewhere.
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// (p50, p99) of `samples`, nearest-rank.
fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    if samples.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    samples.sort_unstable();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    (at(0.50), at(0.99))
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "WIT switchyard:plugin@{}", self.wit_version)?;
        writeln!(
            f,
            "{:<14} {:>10} {:>12} {:>12} {:>12} {:>8}",
            "kind", "candidates", "p50", "p99", "cpu/call", "samples"
        )?;
        for p in &self.points {
            writeln!(
                f,
                "{:<14} {:>10} {:>12} {:>12} {:>12} {:>8}",
                p.kind.world(),
                p.candidates,
                format!("{:.2?}", p.p50),
                format!("{:.2?}", p.p99),
                p.cpu_per_call
                    .map_or_else(|| "-".to_owned(), |d| format!("{d:.2?}")),
                p.samples
            )?;
        }
        writeln!(
            f,
            "instantiate (InstancePre + configure) p50: {:.2?}",
            self.instantiate_p50
        )?;
        write!(f, "compile + first instance: {:.2?}", self.load)
    }
}

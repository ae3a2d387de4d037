//! One loaded plugin in its role: the component, its settings, its quarantine and counters.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use switchyard_plugin_host::{Error as HostError, LoadedPlugin, Quarantine, QuarantineState};

use super::config::PluginConfig;
use super::recent::RecentDurations;
use crate::metrics::Histogram;

/// Where a plugin's bytes came from (decides whether the file watcher reloads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    File { path: String, stamp: FileStamp },
    Admin,
    Kubernetes,
}

/// Modification time and length: what the watcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub modified_ns: u128,
    pub len: u64,
}

impl FileStamp {
    pub fn of(path: &str) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        let modified_ns = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        Some(Self {
            modified_ns,
            len: meta.len(),
        })
    }
}

/// Versions of one plugin whose call-duration series are kept (the newest ones).
const KEPT_VERSIONS: usize = 4;

/// Characters of the sha256 in the `version` label.
pub const VERSION_LABEL_LEN: usize = 12;

/// Per-plugin-name metrics; they outlive swaps of the plugin's bytes (and go with the name
/// when the plugin is deleted).
#[derive(Debug, Default)]
pub struct PluginMetrics {
    /// Call durations per version (sha256 prefix), oldest first: a swap shows both versions
    /// side by side instead of mixing them in one histogram.
    durations: Mutex<Vec<(String, Arc<Histogram>)>>,
    faults: Mutex<HashMap<&'static str, u64>>,
    pub fallbacks: AtomicU64,
    pub rejections: AtomicU64,
    pub shadow_agreements: AtomicU64,
    pub shadow_disagreements: AtomicU64,
    pub swaps: AtomicU64,
}

impl PluginMetrics {
    pub fn count_fault(&self, reason: &'static str) {
        *self.faults.lock().entry(reason).or_insert(0) += 1;
    }

    pub fn faults(&self) -> HashMap<&'static str, u64> {
        self.faults.lock().clone()
    }

    /// The duration histogram of the version with this sha256 (created on first use).
    pub fn version(&self, sha256: &str) -> Arc<Histogram> {
        let version: String = sha256.chars().take(VERSION_LABEL_LEN).collect();
        let mut durations = self.durations.lock();
        if let Some((_, h)) = durations.iter().find(|(v, _)| *v == version) {
            return Arc::clone(h);
        }
        if durations.len() >= KEPT_VERSIONS {
            durations.remove(0);
        }
        let histogram = Arc::new(Histogram::default());
        durations.push((version, Arc::clone(&histogram)));
        histogram
    }

    pub fn render(&self, out: &mut String, name: &str, quarantined: bool) {
        let label = format!("plugin=\"{name}\"");
        for (version, histogram) in self.durations.lock().iter() {
            histogram.render(
                out,
                "switchyard_plugin_call_duration_seconds",
                &format!("{label},version=\"{version}\""),
            );
        }
        for (reason, n) in self.faults() {
            let _ = writeln!(
                out,
                "switchyard_plugin_faults_total{{{label},reason=\"{reason}\"}} {n}"
            );
        }
        for (metric, value) in [
            ("switchyard_plugin_fallbacks_total", &self.fallbacks),
            ("switchyard_plugin_rejections_total", &self.rejections),
            (
                "switchyard_plugin_shadow_agreements_total",
                &self.shadow_agreements,
            ),
            (
                "switchyard_plugin_shadow_disagreements_total",
                &self.shadow_disagreements,
            ),
            ("switchyard_plugin_swaps_total", &self.swaps),
        ] {
            let _ = writeln!(out, "{metric}{{{label}}} {}", value.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "switchyard_plugin_quarantined{{{label}}} {}",
            u8::from(quarantined)
        );
    }
}

/// Why a plugin produced no usable decision.
#[derive(Debug)]
pub enum PluginFailure {
    /// Skipped: quarantined after repeated faults.
    Quarantined,
    /// The call failed.
    Fault(HostError),
}

impl std::fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Quarantined => f.write_str("quarantined after repeated faults"),
            Self::Fault(e) => write!(f, "{e}"),
        }
    }
}

#[derive(Debug)]
pub struct PluginEntry {
    pub config: PluginConfig,
    pub plugin: LoadedPlugin,
    pub source: PluginSource,
    pub metrics: Arc<PluginMetrics>,
    /// This version's call durations (one of `metrics`' per-version histograms).
    duration: Arc<Histogram>,
    /// This version's recent call durations (p50/p99 for the admin API and the console).
    pub recent: RecentDurations,
    quarantine: Mutex<Quarantine>,
    /// Generation of the last topology delivered to it (see `PluginSet::deliver`).
    pub(super) topology_generation: AtomicU64,
}

impl PluginEntry {
    pub fn new(
        config: PluginConfig,
        plugin: LoadedPlugin,
        source: PluginSource,
        metrics: Arc<PluginMetrics>,
        quarantine: Quarantine,
    ) -> Self {
        let duration = metrics.version(plugin.sha256());
        Self {
            config,
            plugin,
            source,
            metrics,
            duration,
            recent: RecentDurations::default(),
            quarantine: Mutex::new(quarantine),
            topology_generation: AtomicU64::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn quarantine_state(&self) -> QuarantineState {
        self.quarantine.lock().state()
    }

    /// Runs one decision through the quarantine, timing it and counting faults.
    pub fn call<T>(
        &self,
        decide: impl FnOnce(&LoadedPlugin) -> Result<T, HostError>,
    ) -> Result<T, PluginFailure> {
        let now = Instant::now();
        if !self.quarantine.lock().allow(now) {
            return Err(PluginFailure::Quarantined);
        }
        let result = decide(&self.plugin);
        let took = now.elapsed();
        self.duration.observe(took);
        self.recent.record(took);
        match result {
            Ok(value) => {
                let budget = self.plugin.limits().decision_budget;
                if self
                    .quarantine
                    .lock()
                    .record_completed(Instant::now(), took, budget)
                {
                    tracing::warn!(
                        plugin = self.name(),
                        took_ms = took.as_secs_f64() * 1e3,
                        "plugin quarantined: its calls keep running close to their budget"
                    );
                }
                Ok(value)
            }
            Err(error) => {
                self.metrics.count_fault(error.label());
                if self.quarantine.lock().record_fault(Instant::now()) {
                    tracing::warn!(plugin = self.name(), %error, "plugin quarantined");
                }
                Err(PluginFailure::Fault(error))
            }
        }
    }
}

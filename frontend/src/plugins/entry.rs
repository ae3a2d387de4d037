//! One loaded plugin in its role: the component, its settings, its quarantine and counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use switchyard_plugin_host::{Error as HostError, LoadedPlugin, Quarantine, QuarantineState};

use super::config::PluginConfig;
use super::recent::RecentDurations;
use crate::metrics::{names, BUCKETS};
use prometheus::Histogram;
use switchyard_runtime::exposition::{labelled_histogram, Scrape};

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
/// when the plugin is deleted). Read at scrape time by [`PluginMetrics::collect`].
#[derive(Debug, Default)]
pub struct PluginMetrics {
    name: String,
    /// Call durations per version (sha256 prefix), oldest first: a swap shows both versions
    /// side by side instead of mixing them in one histogram. Each histogram carries its
    /// `plugin` and `version` labels, so a call touches no label map.
    durations: Mutex<Vec<(String, Histogram)>>,
    faults: Mutex<HashMap<&'static str, u64>>,
    pub fallbacks: AtomicU64,
    pub rejections: AtomicU64,
    pub shadow_agreements: AtomicU64,
    pub shadow_disagreements: AtomicU64,
    pub swaps: AtomicU64,
}

impl PluginMetrics {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    pub fn count_fault(&self, reason: &'static str) {
        *self.faults.lock().entry(reason).or_insert(0) += 1;
    }

    pub fn faults(&self) -> HashMap<&'static str, u64> {
        self.faults.lock().clone()
    }

    /// The duration histogram of the version with this sha256 (created on first use).
    pub fn version(&self, sha256: &str) -> Option<Histogram> {
        let version: String = sha256.chars().take(VERSION_LABEL_LEN).collect();
        let mut durations = self.durations.lock();
        if let Some((_, h)) = durations.iter().find(|(v, _)| *v == version) {
            return Some(h.clone());
        }
        let histogram = match labelled_histogram(
            &names::PLUGIN_CALL_DURATION,
            &BUCKETS,
            &[("plugin", &self.name), ("version", &version)],
        ) {
            Ok(h) => h,
            Err(e) => {
                // Not reachable with a validated plugin name; the plugin still runs.
                tracing::warn!(plugin = %self.name, error = %e, "no call-duration series");
                return None;
            }
        };
        if durations.len() >= KEPT_VERSIONS {
            durations.remove(0);
        }
        durations.push((version, histogram.clone()));
        Some(histogram)
    }

    /// This plugin's series, for the scrape-time collector.
    pub fn collect(&self, s: &mut Scrape, quarantined: bool) {
        let label = [("plugin", self.name.as_str())];
        for (_, histogram) in self.durations.lock().iter() {
            s.collected(histogram);
        }
        let mut faults = s.family(&names::PLUGIN_FAULTS);
        for (reason, n) in self.faults() {
            faults.value(&[label[0], ("reason", reason)], n as f64);
        }
        for (family, value) in [
            (&names::PLUGIN_FALLBACKS, &self.fallbacks),
            (&names::PLUGIN_REJECTIONS, &self.rejections),
            (&names::PLUGIN_SHADOW_AGREEMENTS, &self.shadow_agreements),
            (
                &names::PLUGIN_SHADOW_DISAGREEMENTS,
                &self.shadow_disagreements,
            ),
            (&names::PLUGIN_SWAPS, &self.swaps),
        ] {
            s.family(family)
                .value(&label, value.load(Ordering::Relaxed) as f64);
        }
        s.family(&names::PLUGIN_QUARANTINED)
            .value(&label, f64::from(u8::from(quarantined)));
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
    duration: Option<Histogram>,
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
        if let Some(h) = &self.duration {
            h.observe(took.as_secs_f64());
        }
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

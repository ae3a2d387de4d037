//! The set of loaded plugins and how it changes: load, swap, remove, topology delivery.
//!
//! The set is an immutable [`PluginTable`] behind an `ArcSwap`. A request takes one snapshot
//! when it reaches the select stage and uses it to the end, so a swap never mixes two versions
//! of a plugin within one request and never fails one in flight: the old `LoadedPlugin` lives
//! until the last request holding it finishes.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::{Mutex, RwLock};
use switchyard_plugin_host::{
    HostConfig, PluginHost, PluginKind, Quarantine, QuarantinePolicy, Topology,
};
use switchyard_runtime::Registry;

use super::config::{PluginConfig, PluginMode};
use super::entry::{PluginEntry, PluginMetrics, PluginSource};
use super::explain::ExplainLog;
use super::record::Recorder;

/// An immutable snapshot of the loaded plugins, ordered by (kind, order, name).
#[derive(Debug, Default)]
pub struct PluginTable {
    pub entries: Vec<Arc<PluginEntry>>,
}

impl PluginTable {
    /// Active plugins of `kind` for `model`, in order.
    pub fn active<'a>(
        &'a self,
        kind: PluginKind,
        model: &'a str,
    ) -> impl Iterator<Item = &'a Arc<PluginEntry>> + 'a {
        self.entries.iter().filter(move |e| {
            e.config.kind == kind
                && e.config.mode == PluginMode::Active
                && e.config.applies_to(model)
        })
    }

    pub fn shadows<'a>(
        &'a self,
        model: &'a str,
    ) -> impl Iterator<Item = &'a Arc<PluginEntry>> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.config.mode == PluginMode::Shadow && e.config.applies_to(model))
    }

    /// Whether any routing plugin (active or shadow, not health) applies to `model`.
    pub fn routes(&self, model: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.config.kind != PluginKind::HealthPolicy && e.config.applies_to(model))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<PluginEntry>> {
        self.entries.iter().find(|e| e.name() == name)
    }
}

/// The topology as plugins see it, with the model index used in requests.
#[derive(Debug)]
pub struct TopologyView {
    pub topology: Topology,
    pub model_index: HashMap<String, u32>,
}

impl Default for TopologyView {
    fn default() -> Self {
        Self {
            topology: Topology {
                generation: 0,
                models: Vec::new(),
                instances: Vec::new(),
            },
            model_index: HashMap::new(),
        }
    }
}

/// Errors loading or swapping a plugin, worded for the admin API and logs.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid plugin settings: {0}")]
    Config(String),
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error(transparent)]
    Host(#[from] switchyard_plugin_host::Error),
    #[error("the component does not implement the `{wanted}` world (it implements: {found})")]
    WrongWorld { wanted: String, found: String },
}

pub struct PluginSet {
    host: Mutex<Option<PluginHost>>,
    host_config: HostConfig,
    quarantine: QuarantinePolicy,
    table: ArcSwap<PluginTable>,
    /// Serializes writers (load/swap/remove) so two swaps cannot lose each other's change.
    write: tokio::sync::Mutex<()>,
    metrics: RwLock<BTreeMap<String, Arc<PluginMetrics>>>,
    topology: RwLock<Arc<TopologyView>>,
    /// Held while a topology is published and delivered, so a plugin installed during a
    /// change can neither miss the new instance set nor be handed an older one after it.
    delivery: Mutex<()>,
    /// Rotates the order in which equal scores are ranked.
    ties: AtomicUsize,
    pub explains: ExplainLog,
    pub recorder: Option<Recorder>,
    /// The latest admin upload of each name (`GET /admin/plugins/{name}/load`).
    pub loads: super::loads::LoadLog,
}

impl std::fmt::Debug for PluginSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginSet")
            .field("plugins", &self.table.load().entries.len())
            .finish_non_exhaustive()
    }
}

impl PluginSet {
    pub fn new(
        host_config: HostConfig,
        quarantine: QuarantinePolicy,
        recorder: Option<Recorder>,
    ) -> Self {
        Self {
            host: Mutex::new(None),
            host_config: HostConfig {
                clock_origin: Some(switchyard_runtime::clock::origin()),
                ..host_config
            },
            quarantine,
            table: ArcSwap::from_pointee(PluginTable::default()),
            write: tokio::sync::Mutex::new(()),
            metrics: RwLock::new(BTreeMap::new()),
            topology: RwLock::new(Arc::new(TopologyView::default())),
            delivery: Mutex::new(()),
            ties: AtomicUsize::new(0),
            explains: ExplainLog::default(),
            recorder,
            loads: super::loads::LoadLog::default(),
        }
    }

    /// A different offset for every decision (see `chain::decide`).
    pub fn next_tie_break(&self) -> usize {
        self.ties.fetch_add(1, Ordering::Relaxed)
    }

    /// The current snapshot (lock-free).
    pub fn table(&self) -> Arc<PluginTable> {
        self.table.load_full()
    }

    pub fn is_empty(&self) -> bool {
        self.table.load().entries.is_empty()
    }

    pub fn topology(&self) -> Arc<TopologyView> {
        Arc::clone(&self.topology.read())
    }

    /// The wasmtime host, created with the first plugin (no engine, no ticker thread, no
    /// memory reservation when no plugin is configured).
    fn host(&self) -> Result<PluginHost, LoadError> {
        let mut host = self.host.lock();
        if let Some(h) = host.as_ref() {
            return Ok(h.clone());
        }
        let created = PluginHost::new(self.host_config.clone())?;
        *host = Some(created.clone());
        Ok(created)
    }

    /// Compiles and configures a plugin (seconds for Python/JS: call from a blocking task),
    /// checks its world, delivers the topology, and swaps it in under its name.
    pub fn load_blocking(
        &self,
        config: PluginConfig,
        bytes: &[u8],
        source: PluginSource,
    ) -> Result<Arc<PluginEntry>, LoadError> {
        config.validate().map_err(LoadError::Config)?;
        let host = self.host()?;
        let plugin = host.load(
            &config.name,
            bytes,
            config.limits.clone(),
            &config.config_json(),
        )?;
        if !plugin.implements(config.kind) {
            return Err(LoadError::WrongWorld {
                wanted: config.kind.world().to_owned(),
                found: plugin
                    .kinds()
                    .iter()
                    .map(|k| k.world())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let view = self.topology();
        plugin.on_topology(view.topology.clone())?;
        let metrics = Arc::clone(
            self.metrics
                .write()
                .entry(config.name.clone())
                .or_insert_with(|| Arc::new(PluginMetrics::new(&config.name))),
        );
        let entry = PluginEntry::new(
            config,
            plugin,
            source,
            metrics,
            Quarantine::new(self.quarantine.clone()),
        );
        entry
            .topology_generation
            .store(view.topology.generation, Ordering::Relaxed);
        Ok(Arc::new(entry))
    }

    /// Loads on a blocking thread, then swaps atomically.
    pub async fn load(
        self: &Arc<Self>,
        config: PluginConfig,
        bytes: Vec<u8>,
        source: PluginSource,
    ) -> Result<Arc<PluginEntry>, LoadError> {
        let set = Arc::clone(self);
        let entry = tokio::task::spawn_blocking(move || set.load_blocking(config, &bytes, source))
            .await
            .map_err(|e| LoadError::Config(format!("loader task failed: {e}")))??;
        self.install(Arc::clone(&entry)).await;
        Ok(entry)
    }

    /// Replaces (or adds) the entry with the same name.
    pub async fn install(&self, entry: Arc<PluginEntry>) {
        let _writer = self.write.lock().await;
        let current = self.table.load_full();
        let replaced = current.get(entry.name()).is_some();
        let mut entries: Vec<Arc<PluginEntry>> = current
            .entries
            .iter()
            .filter(|e| e.name() != entry.name())
            .cloned()
            .collect();
        if replaced {
            entry.metrics.swaps.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(plugin = entry.name(), sha256 = entry.plugin.sha256(), kind = ?entry.config.kind, replaced, "plugin installed");
        entries.push(Arc::clone(&entry));
        entries.sort_by(|a, b| {
            (a.config.kind, a.config.order, a.name()).cmp(&(
                b.config.kind,
                b.config.order,
                b.name(),
            ))
        });
        self.table.store(Arc::new(PluginTable { entries }));
        // Loading takes seconds for Python/JS components: the instance set may have changed
        // since, and the refresh that delivered it did not see this entry yet.
        let _delivery = self.delivery.lock();
        self.deliver(&entry, &self.topology());
    }

    /// Delivers `view` to `entry` unless it already has that generation. Call with
    /// `delivery` held.
    fn deliver(&self, entry: &PluginEntry, view: &TopologyView) {
        let generation = view.topology.generation;
        if entry
            .topology_generation
            .swap(generation, Ordering::Relaxed)
            == generation
        {
            return;
        }
        if let Err(error) = entry.plugin.on_topology(view.topology.clone()) {
            entry.metrics.count_fault(error.label());
            tracing::warn!(plugin = entry.name(), %error, "on-topology failed");
        }
    }

    /// Removes a plugin by name; returns whether it existed.
    pub async fn remove(&self, name: &str) -> bool {
        let _writer = self.write.lock().await;
        let current = self.table.load_full();
        if current.get(name).is_none() {
            return false;
        }
        let entries = current
            .entries
            .iter()
            .filter(|e| e.name() != name)
            .cloned()
            .collect();
        self.table.store(Arc::new(PluginTable { entries }));
        // Its series leave /metrics with it (a re-added plugin of that name starts afresh).
        self.metrics.write().remove(name);
        tracing::info!(plugin = name, "plugin removed");
        true
    }

    /// Rebuilds the plugin-facing topology from the registry and delivers it to every plugin.
    pub fn refresh_topology(&self, registry: &Registry) {
        let view = build_topology(registry);
        if let Some(recorder) = &self.recorder {
            recorder.topology(&view.topology);
        }
        let view = Arc::new(view);
        let _delivery = self.delivery.lock();
        *self.topology.write() = Arc::clone(&view);
        for entry in &self.table.load().entries {
            self.deliver(entry, &view);
        }
    }

    /// Every plugin's series, for the scrape-time collector.
    pub fn collect_metrics(&self, s: &mut switchyard_runtime::exposition::Scrape) {
        let table = self.table.load();
        for (name, metrics) in self.metrics.read().iter() {
            let quarantined = table.get(name).is_some_and(|e| {
                !matches!(
                    e.quarantine_state(),
                    switchyard_plugin_host::QuarantineState::Active
                )
            });
            metrics.collect(s, quarantined);
        }
    }
}

fn build_topology(registry: &Registry) -> TopologyView {
    let snapshot = registry.topology();
    let mut models: Vec<String> = snapshot.models().map(|(m, _)| m.clone()).collect();
    models.sort();
    let model_index: HashMap<String, u32> = models
        .iter()
        .enumerate()
        .map(|(i, m)| (m.clone(), u32::try_from(i).unwrap_or(u32::MAX)))
        .collect();
    let instances = snapshot
        .all()
        .iter()
        .map(|i| switchyard_plugin_host::Instance {
            id: i.num_id,
            name: i.spec.id.clone(),
            model_index: model_index.get(&i.spec.model).copied().unwrap_or(0),
            url: i.spec.url.clone(),
            labels: i
                .spec
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
        .collect();
    TopologyView {
        topology: Topology {
            generation: snapshot.generation,
            models,
            instances,
        },
        model_index,
    }
}

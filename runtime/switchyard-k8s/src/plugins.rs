//! Plugin discovery for the frontend: watches `RouterPlugin`s and, for each one the operator
//! has validated at its current generation, fetches the component, verifies its sha256 and
//! hands it over as a [`PluginEvent`] for the frontend's atomic swap.
//!
//! A plugin whose new spec is not (yet) validated keeps its last loaded version — like a
//! Deployment keeping old pods during a failed rollout — until a validated version appears or
//! the resource is deleted. Failed fetches are retried every [`RETRY_INTERVAL`], and at once
//! when the ConfigMap they read changes (a metadata-only watch, so component bytes are fetched
//! only for plugins that need them).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::core::PartialObjectMeta;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use switchyard_runtime::DiscoveryState;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::{AbortHandle, JoinSet};

use crate::instances::{InstanceIndex, Key};
use crate::routerplugin::{
    AppliesTo, FailurePolicy, PluginKind, PluginLimits, PluginMode, RouterPlugin,
};
use crate::scope::{in_watch, WatchNamespace, WatchScope};
use crate::source::{verify, SourceFetcher, FETCH_TIMEOUT};
use crate::{Error, Result};

/// How often plugins whose fetch failed are tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(30);

/// A verified plugin component and everything the frontend needs to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginArtifact {
    pub namespace: String,
    pub name: String,
    pub kind: PluginKind,
    /// Component bytes; their sha256 equals `sha256`.
    pub bytes: Bytes,
    pub sha256: String,
    /// JSON for the component's `configure` export (`None` = no config).
    pub config: Option<serde_json::Value>,
    pub weight: f64,
    pub order: i32,
    pub failure_policy: FailurePolicy,
    pub limits: PluginLimits,
    pub mode: PluginMode,
    pub applies_to: AppliesTo,
    /// `metadata.generation` of the RouterPlugin this was built from.
    pub generation: Option<i64>,
}

/// A change to the set of plugins the frontend should run.
#[derive(Debug, Clone, PartialEq)]
pub enum PluginEvent {
    /// Load, or atomically replace, the plugin `namespace/name`.
    Upsert(PluginArtifact),
    /// Unload the plugin `namespace/name`.
    Remove { namespace: String, name: String },
    /// The watch on RouterPlugins changed state (loaded plugins keep running while disconnected).
    State(DiscoveryState),
}

/// A fetch that finished: the plugin it was for, and its bytes.
type Fetched = (RouterPlugin, Result<Bytes>);

/// Loaded plugins and the spec each was loaded from, so unchanged specs are not re-fetched.
struct PluginTracker {
    fetcher: SourceFetcher,
    /// Fetches in flight, each on its own task with its own timeout: a plugin whose URL hangs
    /// for the whole [`FETCH_TIMEOUT`] delays no other plugin's load.
    fetches: JoinSet<Fetched>,
    /// The fetch in flight per plugin (a newer spec or a delete aborts it).
    fetching: HashMap<Key, AbortHandle>,
    loaded: HashMap<Key, PluginArtifact>,
    /// Validated plugins whose fetch or verification failed; retried on a timer and whenever
    /// the ConfigMap they name changes.
    failed: HashMap<Key, RouterPlugin>,
    /// Per RouterPlugin watch: its namespace and, during a (re-)list, the keys seen so far.
    lists: Vec<(WatchNamespace, Option<HashSet<Key>>)>,
    connected: bool,
}

/// What the merged watches deliver.
enum Input {
    /// An event of the RouterPlugin watch at this position in [`WatchScope::watches`].
    Plugin(usize, Box<watcher::Event<RouterPlugin>>),
    /// A ConfigMap was created, changed or deleted (metadata only: components are large).
    ConfigMap(Key),
    /// The RouterPlugin watch failed.
    PluginWatchFailed(watcher::Error),
}

/// Watches RouterPlugins in `scope` and sends plugin changes to `tx` until the receiver is
/// dropped.
///
/// Needs `list`/`watch` on `routerplugins.switchyard.dev`, and `get`/`list`/`watch` on
/// ConfigMaps (the watch is metadata-only; it retries a failed load as soon as the ConfigMap
/// it names changes), in every watched namespace.
pub async fn run_plugin_discovery(
    client: Client,
    scope: WatchScope,
    fetcher: SourceFetcher,
    tx: UnboundedSender<PluginEvent>,
) -> Result<()> {
    let mut inputs = Vec::new();
    for (i, api) in scope.apis::<RouterPlugin>(&client).into_iter().enumerate() {
        inputs.push(
            watcher(api, watcher::Config::default())
                .default_backoff()
                .map(move |e| match e {
                    Ok(event) => Input::Plugin(i, Box::new(event)),
                    Err(err) => Input::PluginWatchFailed(err),
                })
                .boxed(),
        );
    }
    for api in scope.apis::<PartialObjectMeta<ConfigMap>>(&client) {
        inputs.push(
            watcher(api, watcher::Config::default())
                .default_backoff()
                .touched_objects()
                .filter_map(|e| async move {
                    match e {
                        Ok(cm) => Some(Input::ConfigMap(InstanceIndex::key_of(&cm))),
                        Err(err) => {
                            tracing::warn!(error = %err, "ConfigMap watch failed; failed plugin loads are retried on a timer");
                            None
                        }
                    }
                })
                .boxed(),
        );
    }
    let mut inputs = stream::select_all(inputs);
    let mut tracker = PluginTracker {
        fetcher,
        fetches: JoinSet::new(),
        fetching: HashMap::new(),
        loaded: HashMap::new(),
        failed: HashMap::new(),
        lists: scope.watches().into_iter().map(|ns| (ns, None)).collect(),
        connected: false,
    };
    // The first retry is one interval away (`interval` would fire at once and mask how fast a
    // ConfigMap change is picked up).
    let first = tokio::time::Instant::now() + RETRY_INTERVAL;
    let mut retry = tokio::time::interval_at(first, RETRY_INTERVAL);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let out = tokio::select! {
            next = inputs.next() => match next {
                None => return Ok(()),
                Some(Input::Plugin(i, event)) => tracker.apply(i, *event),
                Some(Input::ConfigMap(key)) => tracker.config_map_changed(&key),
                Some(Input::PluginWatchFailed(err)) => {
                    tracing::warn!(error = %err, "RouterPlugin watch failed; loaded plugins keep running");
                    tracker.disconnected()
                }
            },
            Some(done) = tracker.fetches.join_next(), if !tracker.fetches.is_empty() => {
                match done {
                    Ok((plugin, bytes)) => tracker.fetched(plugin, bytes).into_iter().collect(),
                    // Aborted (superseded or deleted): nothing to load.
                    Err(_) => Vec::new(),
                }
            }
            _ = retry.tick() => tracker.retry_failed(),
        };
        for event in out {
            if tx.send(event).is_err() {
                return Ok(());
            }
        }
    }
}

impl PluginTracker {
    fn apply(&mut self, watch: usize, event: watcher::Event<RouterPlugin>) -> Vec<PluginEvent> {
        let mut out = Vec::new();
        if !self.connected {
            self.connected = true;
            out.push(PluginEvent::State(DiscoveryState::Connected));
        }
        match event {
            watcher::Event::Init => {
                if let Some(list) = self.lists.get_mut(watch) {
                    list.1 = Some(HashSet::new());
                }
            }
            watcher::Event::InitApply(p) => {
                if let Some(list) = self.lists.get_mut(watch) {
                    list.1
                        .get_or_insert_default()
                        .insert(InstanceIndex::key_of(&p));
                }
                out.extend(self.observe(p));
            }
            watcher::Event::InitDone => {
                let Some((namespace, seen)) = self.lists.get_mut(watch) else {
                    return out;
                };
                let present = seen.take().unwrap_or_default();
                // Only this watch's namespace: another namespace's plugins are not in its list.
                let stale = |k: &Key| in_watch(namespace, k) && !present.contains(k);
                let gone: Vec<Key> = self.loaded.keys().filter(|k| stale(k)).cloned().collect();
                self.failed.retain(|k, _| !stale(k));
                self.fetching.retain(|k, fetch| {
                    let keep = !stale(k);
                    if !keep {
                        fetch.abort();
                    }
                    keep
                });
                for key in gone {
                    out.extend(self.remove(key));
                }
            }
            watcher::Event::Apply(p) => out.extend(self.observe(p)),
            watcher::Event::Delete(p) => {
                let key = InstanceIndex::key_of(&p);
                self.failed.remove(&key);
                out.extend(self.remove(key));
            }
        }
        out
    }

    /// Retries the failed plugins whose source is the ConfigMap `key`: its new bytes may be the
    /// ones their validated digest names.
    fn config_map_changed(&mut self, key: &Key) -> Vec<PluginEvent> {
        let waiting: Vec<Key> = self
            .failed
            .iter()
            .filter(|(k, p)| {
                k.0 == key.0
                    && p.spec
                        .source
                        .config_map
                        .as_ref()
                        .is_some_and(|c| c.name == key.1)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for k in waiting {
            if let Some(plugin) = self.failed.remove(&k) {
                out.extend(self.observe(plugin));
            }
        }
        out
    }

    /// Loads `plugin` if it is validated and differs from what is loaded: at once when only
    /// its settings changed (same bytes), otherwise by starting its fetch ([`Self::fetched`]
    /// finishes the load).
    fn observe(&mut self, plugin: RouterPlugin) -> Option<PluginEvent> {
        let key = InstanceIndex::key_of(&plugin);
        if !plugin.is_validated() {
            return None;
        }
        if let Some(current) = self.loaded.get(&key) {
            if same_spec(current, &plugin) {
                self.failed.remove(&key);
                self.cancel_fetch(&key);
                return None;
            }
        }
        // Same digest: the bytes are already here (only config, weight, mode… changed).
        let reuse = self
            .loaded
            .get(&key)
            .filter(|c| c.sha256 == plugin.spec.source.sha256)
            .map(|c| c.bytes.clone());
        if let Some(bytes) = reuse {
            self.cancel_fetch(&key);
            return self.finish_load(plugin, Ok(bytes));
        }
        // A newer spec replaces a fetch still running for an older one.
        self.cancel_fetch(&key);
        let fetcher = self.fetcher.clone();
        let handle = self.fetches.spawn(async move {
            let bytes = match tokio::time::timeout(FETCH_TIMEOUT, fetcher.fetch(&plugin)).await {
                Ok(result) => result,
                Err(_) => Err(Error::Fetch {
                    url: String::new(),
                    message: format!("timed out after {}s", FETCH_TIMEOUT.as_secs()),
                }),
            };
            (plugin, bytes)
        });
        self.fetching.insert(key, handle);
        None
    }

    /// A fetch finished: load the plugin, or keep it for a retry.
    fn fetched(&mut self, plugin: RouterPlugin, bytes: Result<Bytes>) -> Option<PluginEvent> {
        self.fetching.remove(&InstanceIndex::key_of(&plugin));
        self.finish_load(plugin, bytes)
    }

    fn finish_load(&mut self, plugin: RouterPlugin, bytes: Result<Bytes>) -> Option<PluginEvent> {
        let key = InstanceIndex::key_of(&plugin);
        match bytes.and_then(|bytes| artifact(&plugin, bytes)) {
            Ok(artifact) => {
                self.failed.remove(&key);
                self.loaded.insert(key, artifact.clone());
                Some(PluginEvent::Upsert(artifact))
            }
            Err(err) => {
                tracing::warn!(plugin = %plugin.name_any(), error = %err, "cannot load validated plugin; will retry");
                self.failed.insert(key, plugin);
                None
            }
        }
    }

    fn cancel_fetch(&mut self, key: &Key) {
        if let Some(handle) = self.fetching.remove(key) {
            handle.abort();
        }
    }

    fn remove(&mut self, key: Key) -> Option<PluginEvent> {
        self.cancel_fetch(&key);
        self.loaded.remove(&key).map(|_| PluginEvent::Remove {
            namespace: key.0,
            name: key.1,
        })
    }

    fn retry_failed(&mut self) -> Vec<PluginEvent> {
        let pending: Vec<RouterPlugin> = self.failed.drain().map(|(_, p)| p).collect();
        let mut out = Vec::new();
        for plugin in pending {
            out.extend(self.observe(plugin));
        }
        out
    }

    fn disconnected(&mut self) -> Vec<PluginEvent> {
        if self.connected {
            self.connected = false;
            vec![PluginEvent::State(DiscoveryState::Disconnected)]
        } else {
            Vec::new()
        }
    }
}

/// `plugin` loaded from `bytes`, once they match its validated digest.
fn artifact(plugin: &RouterPlugin, bytes: Bytes) -> Result<PluginArtifact> {
    let sha256 = verify(&bytes, &plugin.spec.source.sha256)?;
    let spec = &plugin.spec;
    Ok(PluginArtifact {
        namespace: plugin.namespace().unwrap_or_default(),
        name: plugin.name_any(),
        kind: spec.kind,
        bytes,
        sha256,
        config: spec.config.clone(),
        weight: spec.weight,
        order: spec.order,
        failure_policy: spec.failure_policy,
        limits: spec.limits.clone(),
        mode: spec.mode,
        applies_to: spec.applies_to.clone(),
        generation: plugin.metadata.generation,
    })
}

/// Whether `plugin` describes exactly what `loaded` already runs.
fn same_spec(loaded: &PluginArtifact, plugin: &RouterPlugin) -> bool {
    let spec = &plugin.spec;
    loaded.sha256 == spec.source.sha256
        && loaded.config == spec.config
        && loaded.weight == spec.weight
        && loaded.order == spec.order
        && loaded.failure_policy == spec.failure_policy
        && loaded.limits == spec.limits
        && loaded.mode == spec.mode
        && loaded.applies_to == spec.applies_to
}

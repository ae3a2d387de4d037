//! The instance registry: the set of instances a frontend routes over, grouped by model.
//!
//! Reads (every request) are a lock-free `ArcSwap` load of an immutable [`Topology`]; writes
//! (discovery events, rare) rebuild the topology under a mutex. An instance whose spec did not
//! change keeps its `Arc<Instance>` across rebuilds, so its load and health counters survive.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::live::Instance;
use crate::observe::ObservationLog;
use crate::{ChatTemplate, DiscoveryEvent, DiscoveryState, InstanceSpec, WorkerApi};

/// An immutable snapshot of the instance set.
#[derive(Debug, Default)]
pub struct Topology {
    /// Increases with every change; plugins are told about topology by generation.
    pub generation: u64,
    by_model: HashMap<String, Arc<[Arc<Instance>]>>,
    all: Vec<Arc<Instance>>,
}

impl Topology {
    /// All instances serving `model`, or `None` if the model is unknown.
    pub fn model(&self, model: &str) -> Option<&Arc<[Arc<Instance>]>> {
        self.by_model.get(model)
    }

    pub fn all(&self) -> &[Arc<Instance>] {
        &self.all
    }

    pub fn models(&self) -> impl Iterator<Item = (&String, &Arc<[Arc<Instance>]>)> {
        self.by_model.iter()
    }
}

/// Loads a chat template for a completions-only instance.
pub type TemplateLoader =
    Box<dyn Fn(&InstanceSpec) -> Result<Option<Arc<ChatTemplate>>, String> + Send + Sync>;

pub struct Registry {
    current: ArcSwap<Topology>,
    instances: Mutex<BTreeMap<String, Arc<Instance>>>,
    changes: watch::Sender<u64>,
    connected: AtomicBool,
    load_template: TemplateLoader,
    /// Probe and request outcomes, buffered for health-policy plugins.
    pub observations: ObservationLog,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("generation", &self.current.load().generation)
            .finish_non_exhaustive()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new(Box::new(default_template_loader))
    }
}

/// Completions-only instances get their configured template file, or the built-in default.
pub fn default_template_loader(spec: &InstanceSpec) -> Result<Option<Arc<ChatTemplate>>, String> {
    if spec.api != WorkerApi::Completions {
        return Ok(None);
    }
    let template = match &spec.chat_template {
        Some(path) => ChatTemplate::from_file(path).map_err(|e| e.to_string())?,
        None => ChatTemplate::default(),
    };
    Ok(Some(Arc::new(template)))
}

impl Registry {
    pub fn new(load_template: TemplateLoader) -> Self {
        Self {
            current: ArcSwap::from_pointee(Topology::default()),
            instances: Mutex::new(BTreeMap::new()),
            changes: watch::channel(0).0,
            connected: AtomicBool::new(true),
            load_template,
            observations: ObservationLog::default(),
        }
    }

    /// The current snapshot (lock-free).
    pub fn topology(&self) -> arc_swap::Guard<Arc<Topology>> {
        self.current.load()
    }

    pub fn all(&self) -> Vec<Arc<Instance>> {
        self.current.load().all.clone()
    }

    /// Notified with the new generation after every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Whether the discovery source is reachable (false = serving the last known set).
    pub fn discovery_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn apply(&self, event: DiscoveryEvent) {
        let mut instances = self.instances.lock();
        match event {
            DiscoveryEvent::Snapshot(specs) => {
                let mut next = BTreeMap::new();
                for spec in specs {
                    if let Some(instance) = self.reuse_or_build(&instances, spec) {
                        next.insert(instance.spec.id.clone(), instance);
                    }
                }
                *instances = next;
                self.connected.store(true, Ordering::Relaxed);
            }
            DiscoveryEvent::Upsert(spec) => {
                let id = spec.id.clone();
                match self.reuse_or_build(&instances, *spec) {
                    Some(instance) => instances.insert(id, instance),
                    None => instances.remove(&id),
                };
            }
            DiscoveryEvent::Remove { id } => {
                instances.remove(&id);
            }
            DiscoveryEvent::State(state) => {
                self.connected
                    .store(state == DiscoveryState::Connected, Ordering::Relaxed);
                return;
            }
        }
        self.publish(&instances);
    }

    fn reuse_or_build(
        &self,
        existing: &BTreeMap<String, Arc<Instance>>,
        spec: InstanceSpec,
    ) -> Option<Arc<Instance>> {
        if let Some(old) = existing.get(&spec.id) {
            if old.spec == spec {
                return Some(Arc::clone(old));
            }
        }
        match (self.load_template)(&spec) {
            Ok(template) => Some(Arc::new(Instance::new(spec, template))),
            Err(error) => {
                tracing::error!(instance = %spec.id, %error, "instance skipped: bad chat template");
                None
            }
        }
    }

    fn publish(&self, instances: &BTreeMap<String, Arc<Instance>>) {
        let mut grouped: HashMap<String, Vec<Arc<Instance>>> = HashMap::new();
        for instance in instances.values() {
            grouped
                .entry(instance.spec.model.clone())
                .or_default()
                .push(Arc::clone(instance));
        }
        let generation = self.current.load().generation + 1;
        let topology = Topology {
            generation,
            by_model: grouped.into_iter().map(|(m, v)| (m, v.into())).collect(),
            all: instances.values().cloned().collect(),
        };
        self.current.store(Arc::new(topology));
        self.changes.send_replace(generation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, model: &str) -> InstanceSpec {
        InstanceSpec::new(id, model, format!("http://127.0.0.1:1/{id}"))
    }

    #[test]
    fn snapshot_upsert_remove() {
        let r = Registry::default();
        r.apply(DiscoveryEvent::Snapshot(vec![
            spec("a", "m"),
            spec("b", "m"),
            spec("c", "n"),
        ]));
        assert_eq!(r.topology().model("m").map(|v| v.len()), Some(2));
        r.apply(DiscoveryEvent::Remove { id: "a".into() });
        assert_eq!(r.topology().model("m").map(|v| v.len()), Some(1));
        r.apply(DiscoveryEvent::Upsert(Box::new(spec("d", "n"))));
        assert_eq!(r.topology().model("n").map(|v| v.len()), Some(2));
        assert!(r.topology().model("x").is_none());
        assert_eq!(r.topology().generation, 3);
    }

    #[test]
    fn unchanged_instances_keep_their_counters() {
        let r = Registry::default();
        r.apply(DiscoveryEvent::Snapshot(vec![spec("a", "m")]));
        let before = Arc::clone(&r.topology().all()[0]);
        let _guard = before.start_request();
        r.apply(DiscoveryEvent::Snapshot(vec![
            spec("a", "m"),
            spec("b", "m"),
        ]));
        let after = r.topology().model("m").unwrap()[0].clone();
        assert!(Arc::ptr_eq(&before, &after));
        assert_eq!(after.load.in_flight(), 1);
    }

    #[test]
    fn disconnected_state_keeps_the_last_set() {
        let r = Registry::default();
        r.apply(DiscoveryEvent::Snapshot(vec![spec("a", "m")]));
        r.apply(DiscoveryEvent::State(DiscoveryState::Disconnected));
        assert!(!r.discovery_connected());
        assert_eq!(r.topology().all().len(), 1);
    }

    #[test]
    fn a_bad_template_skips_only_that_instance() {
        let r = Registry::default();
        let mut bad = spec("bad", "m");
        bad.api = WorkerApi::Completions;
        bad.chat_template = Some("/nonexistent/template.jinja".into());
        r.apply(DiscoveryEvent::Snapshot(vec![bad, spec("ok", "m")]));
        let ids: Vec<_> = r.all().iter().map(|i| i.id().to_owned()).collect();
        assert_eq!(ids, vec!["ok"]);
    }
}

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

use crate::declared::Declared;
use crate::live::Instance;
use crate::observe::ObservationLog;
use crate::spec_check::{self, Reason};
use crate::{DiscoveryEvent, DiscoveryState, InstanceSpec, TemplateCatalog, WorkerAuth};

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

/// Counts of rejected specs by (source, reason), for `switchyard_discovery_rejected_total`.
pub type RejectionCounts = BTreeMap<(&'static str, Reason), u64>;

pub struct Registry {
    current: ArcSwap<Topology>,
    instances: Mutex<BTreeMap<String, Arc<Instance>>>,
    changes: watch::Sender<u64>,
    connected: AtomicBool,
    /// Chat templates by name (from the operator's config); resolving one does no I/O.
    templates: TemplateCatalog,
    /// Worker API keys by name (`worker_api_keys`, read at start-up): what a discovered spec's
    /// `api_key_name` resolves to.
    worker_keys: BTreeMap<String, WorkerAuth>,
    rejected: Mutex<RejectionCounts>,
    /// Probe and request outcomes, buffered for health-policy plugins.
    pub observations: ObservationLog,
    /// Whether discovery has listed once, and the models it declares without instances.
    pub declared: Declared,
    /// The LoRA adapters discovery declares (shared with the frontend's adapter catalog).
    pub adapters: Arc<crate::lora::Discovered>,
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
        Self::new(TemplateCatalog::default())
    }
}

/// The `source` label of specs applied with [`Registry::apply`] (the operator's own config).
pub const STATIC_SOURCE: &str = "static";

impl Registry {
    pub fn new(templates: TemplateCatalog) -> Self {
        Self {
            current: ArcSwap::from_pointee(Topology::default()),
            instances: Mutex::new(BTreeMap::new()),
            changes: watch::channel(0).0,
            connected: AtomicBool::new(true),
            templates,
            worker_keys: BTreeMap::new(),
            rejected: Mutex::new(BTreeMap::new()),
            observations: ObservationLog::default(),
            declared: Declared::default(),
            adapters: Arc::default(),
        }
    }

    /// The worker API keys discovered specs may name (`api_key_name`).
    pub fn with_worker_keys(mut self, keys: BTreeMap<String, WorkerAuth>) -> Self {
        self.worker_keys = keys;
        self
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

    /// Specs rejected so far, by source and reason.
    pub fn rejections(&self) -> RejectionCounts {
        self.rejected.lock().clone()
    }

    /// Counts a spec that `source` could not use (the backend has logged why).
    pub fn count_rejection(&self, source: &'static str, reason: Reason) {
        *self.rejected.lock().entry((source, reason)).or_default() += 1;
    }

    /// Applies an event from the operator's static config.
    pub fn apply(&self, event: DiscoveryEvent) {
        self.apply_from(STATIC_SOURCE, event);
    }

    /// Applies an event from a discovery source. Every spec is checked
    /// ([`crate::spec_check::check`]) and its template resolved *before* the registry lock is
    /// taken; a bad spec is logged, counted under `source`, and skipped, and the rest of a
    /// snapshot still applies. An upsert that fails removes the instance it names: its
    /// registration no longer describes a worker that can be routed to.
    pub fn apply_from(&self, source: &'static str, event: DiscoveryEvent) {
        match event {
            DiscoveryEvent::Snapshot(specs) => {
                let built: Vec<Arc<Instance>> = specs
                    .into_iter()
                    .filter_map(|spec| self.admit(source, spec))
                    .collect();
                let mut instances = self.instances.lock();
                let mut next = BTreeMap::new();
                for instance in built {
                    let kept = Self::keep_unchanged(&instances, instance);
                    next.insert(kept.spec.id.clone(), kept);
                }
                *instances = next;
                self.connected.store(true, Ordering::Relaxed);
                self.publish(&instances);
                self.declared.mark_listed();
            }
            DiscoveryEvent::Upsert(spec) => {
                let id = spec.id.clone();
                let built = self.admit(source, *spec);
                let mut instances = self.instances.lock();
                match built {
                    Some(instance) => {
                        let kept = Self::keep_unchanged(&instances, instance);
                        instances.insert(id, kept);
                    }
                    None => {
                        instances.remove(&id);
                    }
                }
                self.publish(&instances);
            }
            DiscoveryEvent::Remove { id } => {
                let mut instances = self.instances.lock();
                instances.remove(&id);
                self.publish(&instances);
            }
            DiscoveryEvent::Rejected(reason) => self.count_rejection(source, reason),
            DiscoveryEvent::Models(models) => self.declared.replace(source, models),
            DiscoveryEvent::Adapters(adapters) => self.adapters.replace(source, adapters),
            DiscoveryEvent::State(state) => {
                self.connected
                    .store(state == DiscoveryState::Connected, Ordering::Relaxed);
            }
        }
    }

    /// A checked spec with its template, or `None` (logged and counted).
    fn admit(&self, source: &'static str, mut spec: InstanceSpec) -> Option<Arc<Instance>> {
        let admitted = spec_check::check(&spec)
            .and_then(|()| self.resolve_key(&mut spec))
            .and_then(|()| self.templates.resolve(&spec));
        match admitted {
            Ok(template) => Some(Arc::new(Instance::new(spec, template))),
            Err(rejection) => {
                // The id is logged only once it is known to be printable and bounded.
                let id = if rejection.reason == Reason::Id {
                    "<invalid>"
                } else {
                    spec.id.as_str()
                };
                tracing::warn!(source, instance = %id, reason = rejection.reason.as_str(), error = %rejection.message, "instance spec rejected");
                self.count_rejection(source, rejection.reason);
                None
            }
        }
    }

    /// Fills `auth` from the named key. A spec naming no key keeps the `auth` its source set
    /// (only the frontend's own config can).
    fn resolve_key(&self, spec: &mut InstanceSpec) -> Result<(), spec_check::Rejection> {
        let Some(name) = &spec.api_key_name else {
            return Ok(());
        };
        match self.worker_keys.get(name) {
            Some(key) => {
                spec.auth = Some(key.clone());
                Ok(())
            }
            None => Err(spec_check::Rejection::new(
                Reason::ApiKey,
                format!("no worker API key named `{name}` in the frontend's `worker_api_keys`"),
            )),
        }
    }

    /// An instance whose spec did not change keeps its `Arc` (and so its load and health).
    fn keep_unchanged(
        existing: &BTreeMap<String, Arc<Instance>>,
        built: Arc<Instance>,
    ) -> Arc<Instance> {
        match existing.get(&built.spec.id) {
            Some(old) if old.spec == built.spec => Arc::clone(old),
            _ => built,
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
    use crate::WorkerApi;

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
    fn the_first_snapshot_marks_discovery_listed() {
        let r = Registry::default();
        r.apply_from("kubernetes", DiscoveryEvent::Models(vec!["m".into()]));
        assert!(!r.declared.listed(), "declared models alone are not a list");
        assert!(r.declared.declares("m"));
        r.apply_from("kubernetes", DiscoveryEvent::Snapshot(Vec::new()));
        assert!(
            r.declared.listed(),
            "an empty snapshot is still a complete list"
        );
    }

    #[test]
    fn disconnected_state_keeps_the_last_set() {
        let r = Registry::default();
        r.apply(DiscoveryEvent::Snapshot(vec![spec("a", "m")]));
        r.apply(DiscoveryEvent::State(DiscoveryState::Disconnected));
        assert!(!r.discovery_connected());
        assert_eq!(r.topology().all().len(), 1);
    }

    fn ids(r: &Registry) -> Vec<String> {
        r.all().iter().map(|i| i.id().to_owned()).collect()
    }

    #[test]
    fn a_template_path_from_discovery_is_rejected_and_counted() {
        let r = Registry::default();
        let mut bad = spec("bad", "m");
        bad.api = WorkerApi::Completions;
        bad.chat_template = Some("/proc/self/environ".into());
        r.apply_from("etcd", DiscoveryEvent::Snapshot(vec![bad, spec("ok", "m")]));
        assert_eq!(ids(&r), vec!["ok"]);
        assert_eq!(
            r.rejections().get(&("etcd", Reason::ChatTemplate)),
            Some(&1)
        );
    }

    #[test]
    fn a_named_worker_key_is_resolved_and_an_unknown_name_rejected() {
        let key = WorkerAuth::bearer("s3cret").unwrap_or_else(|| panic!("a key"));
        let r = Registry::default()
            .with_worker_keys(BTreeMap::from([("llama".to_owned(), key.clone())]));
        let mut keyed = spec("keyed", "m");
        keyed.api_key_name = Some("llama".into());
        let mut unknown = spec("unknown", "m");
        unknown.api_key_name = Some("nope".into());
        r.apply_from("etcd", DiscoveryEvent::Snapshot(vec![keyed, unknown]));
        assert_eq!(ids(&r), vec!["keyed"]);
        assert_eq!(r.all()[0].spec.auth_header(), Some(key.header()));
        assert_eq!(r.rejections().get(&("etcd", Reason::ApiKey)), Some(&1));
    }

    #[test]
    fn an_unknown_template_name_skips_only_that_instance() {
        let r = Registry::default();
        let mut bad = spec("bad", "m");
        bad.api = WorkerApi::Completions;
        bad.chat_template = Some("nonexistent".into());
        r.apply(DiscoveryEvent::Snapshot(vec![bad, spec("ok", "m")]));
        assert_eq!(ids(&r), vec!["ok"]);
        assert_eq!(
            r.rejections().get(&(STATIC_SOURCE, Reason::ChatTemplate)),
            Some(&1)
        );
    }

    #[test]
    fn bad_specs_beside_good_ones_in_one_snapshot() {
        let r = Registry::default();
        let mut ftp = spec("ftp", "m");
        ftp.url = "ftp://h/".into();
        let mut nan = spec("nan", "m");
        nan.weight = f32::NAN;
        let newline = spec("x\ny", "m");
        r.apply_from(
            "kubernetes",
            DiscoveryEvent::Snapshot(vec![ftp, spec("a", "m"), nan, newline, spec("b", "n")]),
        );
        assert_eq!(ids(&r), vec!["a", "b"]);
        let counts = r.rejections();
        assert_eq!(counts.get(&("kubernetes", Reason::Url)), Some(&1));
        assert_eq!(counts.get(&("kubernetes", Reason::Weight)), Some(&1));
        assert_eq!(counts.get(&("kubernetes", Reason::Id)), Some(&1));
    }

    #[test]
    fn a_bad_upsert_removes_what_that_id_registered_before() {
        let r = Registry::default();
        r.apply_from(
            "etcd",
            DiscoveryEvent::Snapshot(vec![spec("a", "m"), spec("b", "m")]),
        );
        let mut bad = spec("a", "m");
        bad.url = "file:///etc/passwd".into();
        r.apply_from("etcd", DiscoveryEvent::Upsert(Box::new(bad)));
        assert_eq!(ids(&r), vec!["b"]);
        r.apply_from("etcd", DiscoveryEvent::Rejected(Reason::Parse));
        let counts = r.rejections();
        assert_eq!(counts.get(&("etcd", Reason::Url)), Some(&1));
        assert_eq!(counts.get(&("etcd", Reason::Parse)), Some(&1));
    }
}

//! Kubernetes instance discovery for the frontend (`--discovery kubernetes`): watches
//! `WorkerPool`s and the EndpointSlices of their Services — in a list of namespaces or in all
//! of them — and reports ready instances as [`DiscoveryEvent`]s.
//!
//! The first complete picture (every watch listed) goes out as one `Snapshot`; after that only
//! `Upsert`/`Remove` differences. When a watch fails, `State(Disconnected)` is sent once and the
//! frontend keeps serving the last known set while the watcher retries with backoff; the next
//! successful event sends `State(Connected)`.

use std::collections::{BTreeMap, HashMap};

use futures_util::{stream, StreamExt};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use switchyard_runtime::{DiscoveryEvent, DiscoveryState, InstanceSpec};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use crate::instances::{diff, InstanceIndex, Key, PoolModels};
use crate::labels;
use crate::ownership::ModelOwners;
use crate::scope::{in_watch, WatchNamespace, WatchScope};
use crate::workerpool::{WorkerPool, WorkerPoolSpec};
use crate::Result;

/// An event of one watch; `usize` is the watch's position in [`WatchScope::watches`].
enum Update {
    Pool(usize, Box<watcher::Event<WorkerPool>>),
    Slice(usize, Box<watcher::Event<EndpointSlice>>),
}

/// The initial list of one watch: buffered between `Init` and `InitDone`, so a re-list
/// replaces that watch's objects at once (and never another namespace's).
pub(crate) struct Listing<T> {
    namespace: WatchNamespace,
    buf: Option<HashMap<Key, T>>,
    pub(crate) listed: bool,
}

/// Tracks the initial lists of every watch and what was last reported.
struct Tracker {
    index: InstanceIndex,
    /// Every listed pool with its creation time; mirrored into `index` after each event.
    pool_objects: HashMap<Key, (WorkerPoolSpec, Option<Timestamp>)>,
    pools: Vec<Listing<(WorkerPoolSpec, Option<Timestamp>)>>,
    slices: Vec<Listing<EndpointSlice>>,
    reported: Option<BTreeMap<String, InstanceSpec>>,
    /// The pools' models as last reported (`DiscoveryEvent::Models`).
    reported_models: Option<Vec<String>>,
    connected: bool,
}

/// Watches WorkerPools and their EndpointSlices in `scope` and sends instance changes to `tx`
/// until the receiver is dropped. Once everything is listed, `pools` holds the model of every
/// WorkerPool (for `RouterPlugin.spec.appliesTo.pools`) and is updated when that changes.
///
/// A pool whose model belongs to another namespace ([`crate::ownership`]; `model_owners`
/// lists explicit owners) is not reported.
///
/// Needs `list`/`watch` on `workerpools.switchyard.dev` and `endpointslices.discovery.k8s.io`
/// in every watched namespace.
pub async fn run_discovery(
    client: Client,
    scope: WatchScope,
    model_owners: ModelOwners,
    tx: UnboundedSender<DiscoveryEvent>,
    pools: watch::Sender<PoolModels>,
) -> Result<()> {
    let mut watches = Vec::new();
    for (i, pools) in scope.apis::<WorkerPool>(&client).into_iter().enumerate() {
        watches.push(
            watcher(pools, watcher::Config::default())
                .default_backoff()
                .map(move |e| e.map(|event| Update::Pool(i, Box::new(event))))
                .boxed(),
        );
    }
    // The EndpointSlice controller copies the Service's labels onto its slices, so the pool
    // label narrows the watch to Switchyard's slices.
    for (i, slices) in scope.apis::<EndpointSlice>(&client).into_iter().enumerate() {
        watches.push(
            watcher(slices, watcher::Config::default().labels(labels::POOL))
                .default_backoff()
                .map(move |e| e.map(|event| Update::Slice(i, Box::new(event))))
                .boxed(),
        );
    }
    let mut updates = stream::select_all(watches);
    let mut tracker = Tracker::new(&scope, model_owners);
    while let Some(update) = updates.next().await {
        let events = match update {
            Ok(update) => tracker.apply(update),
            Err(err) => {
                tracing::warn!(error = %err, "kubernetes discovery watch failed; serving the last known instances");
                tracker.disconnected()
            }
        };
        for event in events {
            if tx.send(event).is_err() {
                return Ok(());
            }
        }
        if tracker.reported.is_some() {
            let now = tracker.index.pool_models();
            pools.send_if_modified(|models| {
                let changed = *models != now;
                if changed {
                    *models = now;
                }
                changed
            });
        }
    }
    Ok(())
}

/// The event with each object turned into `(key, value)`.
pub(crate) fn keyed<K, T>(
    event: watcher::Event<K>,
    f: impl Fn(K) -> (Key, T),
) -> watcher::Event<(Key, T)> {
    match event {
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(f(o)),
        watcher::Event::InitDone => watcher::Event::InitDone,
        watcher::Event::Apply(o) => watcher::Event::Apply(f(o)),
        watcher::Event::Delete(o) => watcher::Event::Delete(f(o)),
    }
}

impl<T> Listing<T> {
    pub(crate) fn new(namespace: WatchNamespace) -> Self {
        Self {
            namespace,
            buf: None,
            listed: false,
        }
    }

    /// Feeds one event; `live` is the index's map for this kind of object.
    pub(crate) fn apply(&mut self, event: watcher::Event<(Key, T)>, live: &mut HashMap<Key, T>) {
        match event {
            watcher::Event::Init => self.buf = Some(HashMap::new()),
            watcher::Event::InitApply((k, v)) => {
                self.buf.get_or_insert_default().insert(k, v);
            }
            watcher::Event::InitDone => {
                let listed = self.buf.take().unwrap_or_default();
                live.retain(|k, _| !in_watch(&self.namespace, k));
                live.extend(listed);
                self.listed = true;
            }
            watcher::Event::Apply((k, v)) => {
                live.insert(k, v);
            }
            watcher::Event::Delete((k, _)) => {
                live.remove(&k);
            }
        }
    }
}

impl Tracker {
    fn new(scope: &WatchScope, model_owners: ModelOwners) -> Self {
        Self {
            index: InstanceIndex {
                model_owners,
                ..InstanceIndex::default()
            },
            pool_objects: HashMap::new(),
            pools: scope.watches().into_iter().map(Listing::new).collect(),
            slices: scope.watches().into_iter().map(Listing::new).collect(),
            reported: None,
            reported_models: None,
            connected: false,
        }
    }

    fn apply(&mut self, update: Update) -> Vec<DiscoveryEvent> {
        match update {
            Update::Pool(i, event) => {
                let event = keyed(*event, |p| {
                    let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
                    (InstanceIndex::key_of(&p), (p.spec, created))
                });
                if let Some(listing) = self.pools.get_mut(i) {
                    listing.apply(event, &mut self.pool_objects);
                }
                self.index.pools = self
                    .pool_objects
                    .iter()
                    .map(|(k, (spec, _))| (k.clone(), spec.clone()))
                    .collect();
                self.index.created = self
                    .pool_objects
                    .iter()
                    .filter_map(|(k, (_, created))| Some((k.clone(), (*created)?)))
                    .collect();
            }
            Update::Slice(i, event) => {
                let event = keyed(*event, |s| (InstanceIndex::key_of(&s), s));
                if let Some(listing) = self.slices.get_mut(i) {
                    listing.apply(event, &mut self.index.slices);
                }
            }
        }
        let listed = self.pools.iter().all(|l| l.listed) && self.slices.iter().all(|l| l.listed);
        let mut events = Vec::new();
        if !listed {
            return events;
        }
        if !self.connected {
            self.connected = true;
            events.push(DiscoveryEvent::State(DiscoveryState::Connected));
        }
        // Models before instances: a new pool's model is declared before its instances, so a
        // request in between is a 503 `model_unavailable`, never a 404.
        let models = self.declared_models();
        if self.reported_models.as_ref() != Some(&models) {
            events.push(DiscoveryEvent::Models(models.clone()));
            self.reported_models = Some(models);
        }
        let now = self.index.instances();
        match &self.reported {
            None => events.push(DiscoveryEvent::Snapshot(now.values().cloned().collect())),
            Some(before) => events.extend(diff(before, &now)),
        }
        self.reported = Some(now);
        events
    }

    /// Every routable pool's model, sorted and deduplicated.
    fn declared_models(&self) -> Vec<String> {
        let mut models: Vec<String> = self.index.pool_models().into_values().collect();
        models.sort();
        models.dedup();
        models
    }

    fn disconnected(&mut self) -> Vec<DiscoveryEvent> {
        if self.connected {
            self.connected = false;
            vec![DiscoveryEvent::State(DiscoveryState::Disconnected)]
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool(ns: &str) -> WorkerPool {
        serde_json::from_value(
            json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "WorkerPool",
            "metadata": {"name": "llama", "namespace": ns},
            "spec": {"model": format!("m-{ns}"), "replicas": 1, "template": {"image": "i"}}}),
        )
        .expect("pool")
    }

    fn slice(ns: &str, ip: &str) -> EndpointSlice {
        serde_json::from_value(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "llama-x", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": "llama", "switchyard.dev/pool": "llama"}},
            "addressType": "IPv4", "endpoints": [{"addresses": [ip]}], "ports": [{"name": "http", "port": 8000}]}))
        .expect("slice")
    }

    fn list(tracker: &mut Tracker, i: usize, ns: &str, ip: Option<&str>) -> Vec<DiscoveryEvent> {
        let mut out = Vec::new();
        for e in [
            watcher::Event::Init,
            watcher::Event::InitApply(pool(ns)),
            watcher::Event::InitDone,
        ] {
            out.extend(tracker.apply(Update::Pool(i, Box::new(e))));
        }
        out.extend(tracker.apply(Update::Slice(i, Box::new(watcher::Event::Init))));
        if let Some(ip) = ip {
            let e = watcher::Event::InitApply(slice(ns, ip));
            out.extend(tracker.apply(Update::Slice(i, Box::new(e))));
        }
        out.extend(tracker.apply(Update::Slice(i, Box::new(watcher::Event::InitDone))));
        out
    }

    #[test]
    fn a_namespace_list_reports_once_every_namespace_is_listed() {
        let mut tracker = Tracker::new(&WatchScope::parse("a,b"), ModelOwners::new());
        assert!(
            list(&mut tracker, 0, "a", Some("10.0.0.1")).is_empty(),
            "b not listed yet"
        );
        let events = list(&mut tracker, 1, "b", Some("10.0.0.2"));
        let [DiscoveryEvent::State(DiscoveryState::Connected), DiscoveryEvent::Models(models), DiscoveryEvent::Snapshot(all)] =
            events.as_slice()
        else {
            panic!("expected Connected + Models + Snapshot, got {events:?}")
        };
        assert_eq!(models, &["m-a".to_string(), "m-b".to_string()]);
        let ids: Vec<&str> = all.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["a/llama/10.0.0.1", "b/llama/10.0.0.2"]);
    }

    /// A pool named `llama` in `ns` serving `model`, created at `secs`.
    fn claim(ns: &str, model: &str, secs: u32) -> WorkerPool {
        let created = format!("2026-01-01T00:00:{secs:02}Z");
        serde_json::from_value(
            json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "WorkerPool",
            "metadata": {"name": "llama", "namespace": ns, "creationTimestamp": created},
            "spec": {"model": model, "replicas": 1, "template": {"image": "i"}}}),
        )
        .expect("pool")
    }

    /// Lists namespace `ns` (watch `i`) with `pool` and one ready slice at `ip`.
    fn list_pool(
        tracker: &mut Tracker,
        i: usize,
        pool: WorkerPool,
        ip: &str,
    ) -> Vec<DiscoveryEvent> {
        let ns = pool.metadata.namespace.clone().unwrap_or_default();
        let mut out = Vec::new();
        for e in [
            watcher::Event::Init,
            watcher::Event::InitApply(pool),
            watcher::Event::InitDone,
        ] {
            out.extend(tracker.apply(Update::Pool(i, Box::new(e))));
        }
        for e in [
            watcher::Event::Init,
            watcher::Event::InitApply(slice(&ns, ip)),
            watcher::Event::InitDone,
        ] {
            out.extend(tracker.apply(Update::Slice(i, Box::new(e))));
        }
        out
    }

    fn snapshot_ids(events: &[DiscoveryEvent]) -> Vec<String> {
        events
            .iter()
            .find_map(|e| match e {
                DiscoveryEvent::Snapshot(all) => Some(all.iter().map(|i| i.id.clone()).collect()),
                _ => None,
            })
            .expect("a snapshot")
    }

    #[test]
    fn a_later_pool_naming_another_namespaces_model_gets_no_traffic() {
        // Watches are in namespace order: 0 is `intruder`, 1 is `victim`.
        let mut tracker = Tracker::new(&WatchScope::parse("victim,intruder"), ModelOwners::new());
        list_pool(&mut tracker, 1, claim("victim", "shared", 10), "10.0.0.1");
        let events = list_pool(&mut tracker, 0, claim("intruder", "shared", 20), "10.0.0.2");
        assert_eq!(snapshot_ids(&events), ["victim/llama/10.0.0.1"]);
        assert_eq!(
            tracker
                .index
                .pool_models()
                .keys()
                .cloned()
                .collect::<Vec<_>>(),
            [("victim".to_string(), "llama".to_string())]
        );
        // The owner's pool goes away: the model passes to the next claim.
        let gone = tracker.apply(Update::Pool(
            1,
            Box::new(watcher::Event::Delete(claim("victim", "shared", 10))),
        ));
        assert!(gone.contains(&DiscoveryEvent::Remove {
            id: "victim/llama/10.0.0.1".into()
        }));
        assert!(gone
            .iter()
            .any(|e| matches!(e, DiscoveryEvent::Upsert(i) if i.id == "intruder/llama/10.0.0.2")));
    }

    #[test]
    fn the_allow_list_gives_a_model_to_its_namespace_whatever_the_claim_order() {
        let owners = ModelOwners::from([("shared".to_string(), "victim".to_string())]);
        let mut tracker = Tracker::new(&WatchScope::parse("intruder,victim"), owners);
        list_pool(&mut tracker, 0, claim("intruder", "shared", 1), "10.0.0.2");
        let events = list_pool(&mut tracker, 1, claim("victim", "shared", 50), "10.0.0.1");
        assert_eq!(snapshot_ids(&events), ["victim/llama/10.0.0.1"]);
    }

    #[test]
    fn relisting_one_namespace_keeps_the_others() {
        let mut tracker = Tracker::new(&WatchScope::parse("a,b"), ModelOwners::new());
        list(&mut tracker, 0, "a", Some("10.0.0.1"));
        list(&mut tracker, 1, "b", Some("10.0.0.2"));
        // Namespace a's watch re-lists (e.g. after a 410 Gone) and its slice is gone.
        let events = list(&mut tracker, 0, "a", None);
        assert_eq!(
            events,
            vec![DiscoveryEvent::Remove {
                id: "a/llama/10.0.0.1".into()
            }]
        );
    }
}

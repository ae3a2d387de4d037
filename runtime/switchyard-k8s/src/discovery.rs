//! Kubernetes instance discovery for the frontend (`--discovery kubernetes`): watches
//! `WorkerPool`s and the EndpointSlices of their Services and reports ready instances as
//! [`DiscoveryEvent`]s.
//!
//! The first complete picture (both watches listed) goes out as one `Snapshot`; after that only
//! `Upsert`/`Remove` differences. When a watch fails, `State(Disconnected)` is sent once and the
//! frontend keeps serving the last known set while the watcher retries with backoff; the next
//! successful event sends `State(Connected)`.

use std::collections::{BTreeMap, HashMap};

use futures_util::{stream, StreamExt};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use switchyard_runtime::{DiscoveryEvent, DiscoveryState, InstanceSpec};
use tokio::sync::mpsc::UnboundedSender;

use crate::instances::{diff, InstanceIndex, Key};
use crate::labels;
use crate::workerpool::WorkerPool;
use crate::Result;

enum Update {
    Pool(Box<watcher::Event<WorkerPool>>),
    Slice(Box<watcher::Event<EndpointSlice>>),
}

/// Tracks initial lists (buffers between `Init` and `InitDone`) and what was last reported.
#[derive(Default)]
struct Tracker {
    index: InstanceIndex,
    pool_buf: Option<HashMap<Key, WorkerPool>>,
    slice_buf: Option<HashMap<Key, EndpointSlice>>,
    pools_listed: bool,
    slices_listed: bool,
    reported: Option<BTreeMap<String, InstanceSpec>>,
    connected: bool,
}

/// Watches WorkerPools and their EndpointSlices in `namespace` (or every namespace when
/// `None`) and sends instance changes to `tx` until the receiver is dropped.
///
/// Needs `list`/`watch` on `workerpools.switchyard.dev` and `endpointslices.discovery.k8s.io`.
pub async fn run_discovery(
    client: Client,
    namespace: Option<String>,
    tx: UnboundedSender<DiscoveryEvent>,
) -> Result<()> {
    let (pools, slices): (Api<WorkerPool>, Api<EndpointSlice>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let pool_events = watcher(pools, watcher::Config::default())
        .default_backoff()
        .map(|e| e.map(|event| Update::Pool(Box::new(event))))
        .boxed();
    // The EndpointSlice controller copies the Service's labels onto its slices, so the pool
    // label narrows the watch to Switchyard's slices.
    let slice_events = watcher(slices, watcher::Config::default().labels(labels::POOL))
        .default_backoff()
        .map(|e| e.map(|event| Update::Slice(Box::new(event))))
        .boxed();
    let mut updates = stream::select(pool_events, slice_events);
    let mut tracker = Tracker::default();
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
    }
    Ok(())
}

impl Tracker {
    fn apply(&mut self, update: Update) -> Vec<DiscoveryEvent> {
        match update {
            Update::Pool(event) => match *event {
                watcher::Event::Init => self.pool_buf = Some(HashMap::new()),
                watcher::Event::InitApply(p) => {
                    self.pool_buf
                        .get_or_insert_default()
                        .insert(InstanceIndex::key_of(&p), p);
                }
                watcher::Event::InitDone => {
                    let listed = self.pool_buf.take().unwrap_or_default();
                    self.index.pools = listed.into_iter().map(|(k, p)| (k, p.spec)).collect();
                    self.pools_listed = true;
                }
                watcher::Event::Apply(p) => self.index.upsert_pool(p),
                watcher::Event::Delete(p) => {
                    self.index.pools.remove(&InstanceIndex::key_of(&p));
                }
            },
            Update::Slice(event) => match *event {
                watcher::Event::Init => self.slice_buf = Some(HashMap::new()),
                watcher::Event::InitApply(s) => {
                    self.slice_buf
                        .get_or_insert_default()
                        .insert(InstanceIndex::key_of(&s), s);
                }
                watcher::Event::InitDone => {
                    self.index.slices = self.slice_buf.take().unwrap_or_default();
                    self.slices_listed = true;
                }
                watcher::Event::Apply(s) => self.index.upsert_slice(s),
                watcher::Event::Delete(s) => {
                    self.index.slices.remove(&InstanceIndex::key_of(&s));
                }
            },
        }
        let mut events = Vec::new();
        if !self.connected && self.pools_listed && self.slices_listed {
            self.connected = true;
            events.push(DiscoveryEvent::State(DiscoveryState::Connected));
        }
        if !(self.pools_listed && self.slices_listed) {
            return events;
        }
        let now = self.index.instances();
        match &self.reported {
            None => events.push(DiscoveryEvent::Snapshot(now.values().cloned().collect())),
            Some(before) => events.extend(diff(before, &now)),
        }
        self.reported = Some(now);
        events
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

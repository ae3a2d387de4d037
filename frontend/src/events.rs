//! The frontend's side of NATS (`--nats`, `docs/events.md`) and the `kv` policy's overlap
//! source.
//!
//! [`start`] always installs the `kv` policy's router in the app's slot (`App::kv`): the
//! approximate index without `--nats`, the event-driven index with it, and keeps the source in
//! step with discovery (an instance that leaves is forgotten at once). With `--nats` it also
//! puts the NATS side in the app's [`BusSlot`] (for `/health`, metrics and the replica count)
//! and runs
//!
//! - the [`Subscriber`]: KV events into a shared index, worker load snapshots into each
//!   instance's `Load.queued` / `Load.kv_usage_ppm` (matched by instance id); it only keeps
//!   state for the ids discovery lists (others get a grace period);
//! - [`ReplicaSync`]: this frontend's per-instance in-flight counts out, the sum of its peers'
//!   into `Load.peer_in_flight` (which `total_in_flight()` adds for load-aware policies).
//!
//! Nothing here is on the request path except one atomic read of the router. Losing NATS
//! never fails a request: the index answers "nothing cached" while disconnected, load numbers
//! from workers expire, and routing continues on local load. The state shows on `/health`
//! (`events`) and as `switchyard_event_bus_*` / `switchyard_kv_*` metrics.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use switchyard_kv::{BlockHash, Overlap, SharedKvIndex};
use switchyard_nats::{ReplicaSync, ReplicaSyncConfig, Subscriber, SubscriberConfig};
use switchyard_runtime::policy::kv::{KvConfig, KvOverlap, KvRouter, KvSlot};
use switchyard_runtime::{EngineReport, Registry, ReportSource};
use tokio::task::JoinHandle;

use switchyard_runtime::exposition::Scrape;

use crate::app::App;
use crate::metrics::names;

/// How often worker load and peer counts are copied into the instances.
const SYNC_PERIOD: Duration = Duration::from_millis(100);

/// The event-driven overlap source: the subscriber's index, silent while NATS is down.
#[derive(Debug, Clone)]
struct EventOverlap {
    subscriber: Arc<Subscriber>,
}

impl KvOverlap for EventOverlap {
    fn overlap(&self, blocks: &[BlockHash]) -> Overlap {
        if self.subscriber.connected() {
            self.subscriber.index().overlap(blocks)
        } else {
            // Stale cache contents would steer traffic at instances that may have evicted
            // them; route on load until events flow again (the reconnect resyncs the index).
            Overlap::default()
        }
    }
    fn kind(&self) -> &'static str {
        "events"
    }
}

/// The NATS side, for `/health` and `/metrics`.
#[derive(Clone)]
struct Bus {
    subscriber: Arc<Subscriber>,
    replica: Arc<ReplicaSync>,
    /// Tenant usage between replicas (`tenants::replicas`).
    usage: Arc<switchyard_nats::usage::UsageExchange>,
    shared: Option<Arc<crate::kv_shared::SharedOverlap>>,
}

/// Where an app finds its NATS side: set while its frontend runs with `--nats`, cleared when
/// its [`Events`] stop. One per app, so two frontends in one process keep apart.
#[derive(Clone, Default)]
pub struct BusSlot(Arc<RwLock<Option<Bus>>>);

impl std::fmt::Debug for BusSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BusSlot")
            .field(&self.0.read().is_some())
            .finish()
    }
}

/// The running event wiring. [`Events::shutdown`] stops it and tells peer frontends to drop
/// this one's counts at once; dropping it stops the tasks too (peers then expire the counts
/// after their TTL).
pub struct Events {
    bus: Option<Bus>,
    kv: KvConfig,
    kv_slot: KvSlot,
    bus_slot: BusSlot,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("nats", &self.bus.is_some())
            .finish_non_exhaustive()
    }
}

impl Events {
    /// Graceful stop: after this, peers no longer count this frontend's in-flight requests.
    pub async fn shutdown(mut self) {
        let bus = self.stop();
        if let Some(bus) = bus {
            bus.replica.shutdown().await;
            bus.usage.goodbye().await;
        }
    }

    /// Stops every task, releases the NATS side (the `kv` router goes back to an approximate
    /// index, which holds no connection) and returns it for a goodbye.
    fn stop(&mut self) -> Option<Bus> {
        self.tasks.iter().for_each(JoinHandle::abort);
        let bus = self.bus.take()?;
        bus.subscriber.stop();
        bus.replica.stop();
        bus.usage.stop();
        bus.shared.iter().for_each(|s| s.stop());
        *self.bus_slot.0.write() = None;
        self.kv_slot.install(KvRouter::approximate(self.kv.clone()));
        Some(bus)
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Installs the `kv` router in `app.kv` and, with `events.nats.url`, starts the subscriber and
/// replica sync and puts them in `app.bus`. NATS being down at start-up is not an error: the
/// client keeps connecting in the background.
pub async fn start(app: &App) -> anyhow::Result<Events> {
    let (registry, config) = (&app.registry, &app.config);
    let Some(url) = config.events.nats.url.as_deref() else {
        let router = KvRouter::approximate(config.routing.kv.clone());
        let source = Arc::clone(&router.source);
        app.kv.install(router);
        return Ok(Events {
            bus: None,
            kv: config.routing.kv.clone(),
            kv_slot: app.kv.clone(),
            bus_slot: app.bus.clone(),
            tasks: vec![tokio::spawn(follow_discovery(
                Arc::clone(registry),
                source,
                None,
            ))],
        });
    };
    let frontend_id = format!(
        "{}-{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "frontend".into()),
        config.http.listen,
        std::process::id()
    );
    let known: switchyard_nats::usage::Known = {
        let tenants = Arc::clone(&app.tenants);
        Arc::new(move |id| tenants.current().is_some_and(|s| s.by_id(id).is_some()))
    };
    let bus = connect_bus(
        registry,
        url,
        &frontend_id,
        &config.routing.kv,
        &config.events.nats.auth,
        known,
    )
    .await?;
    let source: Arc<dyn KvOverlap> = match &bus.shared {
        Some(shared) => Arc::clone(shared) as Arc<dyn KvOverlap>,
        None => Arc::new(EventOverlap {
            subscriber: Arc::clone(&bus.subscriber),
        }),
    };
    app.kv.install(KvRouter {
        config: config.routing.kv.clone(),
        source: Arc::clone(&source),
    });
    *app.bus.0.write() = Some(bus.clone());
    let tasks = vec![
        tokio::spawn(follow_discovery(
            Arc::clone(registry),
            source,
            Some(Arc::clone(&bus.subscriber)),
        )),
        tokio::spawn(sync_loop(Arc::clone(registry), bus.clone())),
    ];
    tracing::info!(url = %switchyard_nats::redact_url(url), frontend = %frontend_id, "NATS events: KV index, worker load, replica sync");
    Ok(Events {
        bus: Some(bus),
        kv: config.routing.kv.clone(),
        kv_slot: app.kv.clone(),
        bus_slot: app.bus.clone(),
        tasks,
    })
}

async fn connect_bus(
    registry: &Arc<Registry>,
    url: &str,
    frontend_id: &str,
    kv_config: &KvConfig,
    auth: &switchyard_nats::NatsAuth,
    known: switchyard_nats::usage::Known,
) -> anyhow::Result<Bus> {
    let conn = switchyard_nats::connect_with(url, frontend_id, auth)
        .await
        .map_err(|e| anyhow::anyhow!("--nats {}: {e}", switchyard_nats::redact_url(url)))?;
    let index = SharedKvIndex::with_max_blocks_per_instance(kv_config.max_blocks_per_instance);
    let subscriber = Subscriber::start(&conn, index, SubscriberConfig::default())
        .await
        .map_err(|e| anyhow::anyhow!("NATS subscriber: {e}"))?;
    let local: switchyard_nats::replica::LocalCounts = {
        let registry = Arc::clone(registry);
        Arc::new(move || {
            registry
                .all()
                .iter()
                .filter(|i| i.load.in_flight() > 0)
                .map(|i| (i.id().to_owned(), i.load.in_flight()))
                .collect()
        })
    };
    let replica = ReplicaSync::start(&conn, frontend_id, local, ReplicaSyncConfig::default())
        .await
        .map_err(|e| anyhow::anyhow!("NATS replica sync: {e}"))?;
    let usage = switchyard_nats::usage::UsageExchange::start(&conn, frontend_id, known)
        .await
        .map_err(|e| anyhow::anyhow!("NATS tenant usage: {e}"))?;
    let subscriber = Arc::new(subscriber);
    let shared = match kv_config.share_decisions {
        true => Some(
            crate::kv_shared::start(&conn, frontend_id, registry, kv_config, subscriber.clone())
                .await?,
        ),
        false => None,
    };
    Ok(Bus {
        subscriber,
        replica: Arc::new(replica),
        usage: Arc::new(usage),
        shared,
    })
}

/// Keeps the overlap source and the subscriber in step with discovery: an instance that
/// leaves is forgotten at once, and the subscriber only keeps state for listed ids.
async fn follow_discovery(
    registry: Arc<Registry>,
    source: Arc<dyn KvOverlap>,
    subscriber: Option<Arc<Subscriber>>,
) {
    let mut changes = registry.subscribe();
    let mut known: HashSet<String> = HashSet::new();
    loop {
        let present: HashSet<String> = registry.all().iter().map(|i| i.id().to_owned()).collect();
        for gone in known.difference(&present) {
            source.forget(gone);
        }
        if let Some(subscriber) = &subscriber {
            subscriber.set_members(present.clone());
        }
        known = present;
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Copies worker load and peers' in-flight counts into the live instances, and tells peers
/// about local changes.
async fn sync_loop(registry: Arc<Registry>, bus: Bus) {
    let mut tick = tokio::time::interval(SYNC_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_local: HashMap<String, u32> = HashMap::new();
    loop {
        tick.tick().await;
        let instances = registry.all();
        let mut local = HashMap::with_capacity(instances.len());
        for i in &instances {
            let now = switchyard_runtime::clock::now_ns();
            match bus.subscriber.load(i.id()) {
                // A worker's own snapshots win over scraping its metrics endpoint.
                Some(load) => {
                    let report = EngineReport {
                        running: Some(f64::from(load.running)),
                        waiting: Some(f64::from(load.waiting)),
                        kv_usage: Some(f64::from(load.kv_usage)),
                        prefix_hit_rate: None,
                    };
                    i.load.record_report(ReportSource::Nats, &report, now);
                }
                // Expired: unknown again (the scraper, if the engine has a dialect, takes over).
                None if i.load.report(now).0 == ReportSource::Nats => i.load.clear_report(),
                None => {}
            }
            i.load
                .peer_in_flight
                .store(bus.replica.remote_in_flight(i.id()), Relaxed);
            local.insert(i.id().to_owned(), i.load.in_flight());
        }
        if local != last_local {
            bus.replica.notify();
            last_local = local;
        }
    }
}

impl BusSlot {
    fn running(&self) -> Option<Bus> {
        self.0.read().clone()
    }

    /// Frontend replicas known to be running: this one plus its live NATS peers (1 without
    /// `--nats`). Tenant limits are shared out by it.
    pub fn replicas(&self) -> usize {
        self.running().map_or(1, |bus| bus.replica.peers() + 1)
    }

    /// The tenant usage exchange, while NATS runs.
    pub fn usage(&self) -> Option<Arc<switchyard_nats::usage::UsageExchange>> {
        self.running().map(|bus| bus.usage)
    }

    /// `/health` details: `null` without `--nats`.
    pub fn health_details(&self) -> serde_json::Value {
        let Some(bus) = self.running() else {
            return serde_json::Value::Null;
        };
        let stats = bus.subscriber.stats();
        let connected = bus.subscriber.connected();
        serde_json::json!({
            "connected": connected,
            "routing": if connected { "kv+load" } else { "load-only" },
            "peers": bus.replica.peers(),
            "gaps": stats.gaps,
            "dumps_applied": stats.dumps_applied,
            "indexed_blocks": bus.subscriber.index().len(),
            "shared_decisions": bus.shared.as_ref().map(|s| s.health()),
        })
    }

    /// The event-bus series, for the scrape-time collector (nothing without `--nats`).
    pub fn collect_metrics(&self, s: &mut Scrape) {
        let Some(bus) = self.running() else {
            return;
        };
        let stats = bus.subscriber.stats();
        let index = bus.subscriber.index();
        for (family, v) in [
            (
                &names::EVENT_BUS_CONNECTED,
                u64::from(bus.subscriber.connected()),
            ),
            (&names::EVENT_BUS_PEERS, bus.replica.peers() as u64),
            (&names::KV_INDEX_BLOCKS, index.len() as u64),
            (&names::KV_EVENT_MESSAGES, stats.applied),
            (&names::KV_EVENT_GAPS, stats.gaps),
            (&names::KV_EVENT_IGNORED, stats.ignored),
            (&names::KV_DUMPS_REQUESTED, stats.dumps_requested),
            (&names::KV_DUMPS_APPLIED, stats.dumps_applied),
            (&names::KV_DUMPS_FAILED, stats.dumps_failed),
            (&names::KV_INDEX_EVICTED, index.evicted()),
        ] {
            s.family(family).value(&[], v as f64);
        }
        bus.shared
            .iter()
            .for_each(|shared| shared.collect_metrics(s));
        let mut rejected = s.family(&names::EVENT_MESSAGES_REJECTED);
        for (reason, v) in stats.rejected {
            rejected.value(&[("reason", reason)], v as f64);
        }
        for (reason, v) in bus.usage.stats().rejected() {
            rejected.value(&[("reason", &format!("usage_{reason}"))], v as f64);
        }
    }
}

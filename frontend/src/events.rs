//! The frontend's side of NATS (`--nats`, `docs/events.md`) and the `kv` policy's overlap
//! source.
//!
//! [`start`] always installs the `kv` policy's router (`switchyard_runtime::policy::kv`): the
//! approximate index without `--nats`, the event-driven index with it. With `--nats` it also
//! runs
//!
//! - the [`Subscriber`]: KV events into a shared index, worker load snapshots into each
//!   instance's `Load.queued` / `Load.kv_usage_ppm` (matched by instance id);
//! - [`ReplicaSync`]: this frontend's per-instance in-flight counts out, the sum of its peers'
//!   into `Load.peer_in_flight` (which `total_in_flight()` adds for load-aware policies).
//!
//! Nothing here is on the request path except one atomic read of the router. Losing NATS
//! never fails a request: the index answers "nothing cached" while disconnected, load numbers
//! from workers expire, and routing continues on local load. The state shows on `/health`
//! (`events`) and as `switchyard_event_bus_connected`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use switchyard_kv::{BlockHash, Overlap, SharedKvIndex};
use switchyard_nats::{ReplicaSync, ReplicaSyncConfig, Subscriber, SubscriberConfig};
use switchyard_runtime::policy::kv::{self, KvOverlap, KvRouter};
use switchyard_runtime::Registry;
use tokio::task::JoinHandle;

use crate::config::ServeConfig;

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

/// Running NATS wiring; dropping it stops everything.
pub struct Events {
    pub subscriber: Arc<Subscriber>,
    pub replica: Arc<ReplicaSync>,
    task: JoinHandle<()>,
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("subscriber", &self.subscriber)
            .field("replica", &self.replica)
            .finish()
    }
}

impl Events {
    pub fn connected(&self) -> bool {
        self.subscriber.connected()
    }
}

/// The running instance, for `/health` and `/metrics` (one frontend per process).
static RUNNING: OnceLock<(Arc<Subscriber>, Arc<ReplicaSync>)> = OnceLock::new();

/// Installs the `kv` router and, with `config.nats`, starts the subscriber and replica sync.
/// NATS being down at start-up is not an error: the client keeps connecting in the background.
pub async fn start(
    registry: &Arc<Registry>,
    config: &ServeConfig,
) -> anyhow::Result<Option<Events>> {
    let Some(url) = config.nats.as_deref() else {
        kv::install(KvRouter::approximate(config.kv.clone()));
        return Ok(None);
    };
    let frontend_id = format!(
        "{}-{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "frontend".into()),
        config.listen,
        std::process::id()
    );
    let conn = switchyard_nats::connect(url, &frontend_id)
        .await
        .map_err(|e| anyhow::anyhow!("--nats {url}: {e}"))?;
    let subscriber = Arc::new(
        Subscriber::start(&conn, SharedKvIndex::new(), SubscriberConfig::default())
            .await
            .map_err(|e| anyhow::anyhow!("NATS subscriber: {e}"))?,
    );
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
    let replica = Arc::new(
        ReplicaSync::start(
            &conn,
            frontend_id.clone(),
            local,
            ReplicaSyncConfig::default(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("NATS replica sync: {e}"))?,
    );
    kv::install(KvRouter {
        config: config.kv.clone(),
        source: Arc::new(EventOverlap {
            subscriber: Arc::clone(&subscriber),
        }),
    });
    let _ = RUNNING.set((Arc::clone(&subscriber), Arc::clone(&replica)));
    let task = tokio::spawn(sync_loop(
        Arc::clone(registry),
        Arc::clone(&subscriber),
        Arc::clone(&replica),
    ));
    tracing::info!(%url, frontend = %frontend_id, "NATS events: KV index, worker load, replica sync");
    Ok(Some(Events {
        subscriber,
        replica,
        task,
    }))
}

/// Copies worker load and peers' in-flight counts into the live instances, tells peers about
/// local changes, and forgets instances that left discovery.
async fn sync_loop(
    registry: Arc<Registry>,
    subscriber: Arc<Subscriber>,
    replica: Arc<ReplicaSync>,
) {
    let mut tick = tokio::time::interval(SYNC_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_local: HashMap<String, u32> = HashMap::new();
    let mut known: HashSet<String> = HashSet::new();
    loop {
        tick.tick().await;
        let instances = registry.all();
        let mut local = HashMap::with_capacity(instances.len());
        let mut present = HashSet::with_capacity(instances.len());
        for i in &instances {
            let load = subscriber.load(i.id()).unwrap_or_default();
            i.load.queued.store(load.waiting, Relaxed);
            let ppm = (f64::from(load.kv_usage.clamp(0.0, 1.0)) * 1e6) as u32;
            i.load.kv_usage_ppm.store(ppm, Relaxed);
            i.load
                .peer_in_flight
                .store(replica.remote_in_flight(i.id()), Relaxed);
            local.insert(i.id().to_owned(), i.load.in_flight());
            present.insert(i.id().to_owned());
        }
        if local != last_local {
            replica.notify();
            last_local = local;
        }
        for gone in known.difference(&present) {
            subscriber.forget(gone);
        }
        known = present;
    }
}

/// `/health` details: `null` without `--nats`.
pub fn health_details() -> serde_json::Value {
    match RUNNING.get() {
        None => serde_json::Value::Null,
        Some((sub, replica)) => {
            let stats = sub.stats();
            serde_json::json!({
                "connected": sub.connected(),
                "routing": if sub.connected() { "kv+load" } else { "load-only" },
                "peers": replica.peers(),
                "gaps": stats.gaps,
                "dumps_applied": stats.dumps_applied,
            })
        }
    }
}

/// Prometheus lines for the event bus (nothing without `--nats`).
pub fn render_metrics(out: &mut String) {
    let Some((sub, replica)) = RUNNING.get() else {
        return;
    };
    let stats = sub.stats();
    let _ = writeln!(
        out,
        "# HELP switchyard_event_bus_connected 1 while the NATS connection is up.\n# TYPE switchyard_event_bus_connected gauge\nswitchyard_event_bus_connected {}",
        u8::from(sub.connected())
    );
    let _ = writeln!(
        out,
        "# HELP switchyard_event_bus_peers Live peer frontends (replica sync).\n# TYPE switchyard_event_bus_peers gauge\nswitchyard_event_bus_peers {}",
        replica.peers()
    );
    for (name, help, v) in [
        (
            "switchyard_kv_event_messages_total",
            "KV event messages applied.",
            stats.applied,
        ),
        (
            "switchyard_kv_event_gaps_total",
            "Sequence gaps and epoch changes detected.",
            stats.gaps,
        ),
        (
            "switchyard_kv_dumps_applied_total",
            "Full dumps applied (resyncs).",
            stats.dumps_applied,
        ),
        (
            "switchyard_kv_dumps_failed_total",
            "Dump requests that failed.",
            stats.dumps_failed,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
}

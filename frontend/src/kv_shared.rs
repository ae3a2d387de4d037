//! The `kv` policy's overlap source with `--nats` and `kv.share_decisions` (the default):
//! worker KV events where an instance publishes them, and an approximate index that learns
//! from every frontend's routing decisions ([`switchyard_nats::decisions`]) for the rest.
//!
//! Why both: engines without KV events (no `kv-bridge`, a generic OpenAI server) used to get
//! load-only routing as soon as the frontend ran with `--nats`, and behind two frontends
//! without NATS each replica's approximate index saw only half the decisions (hit rate 0.43
//! instead of 0.82 in docs/benchmarks.md round 3). Here an instance the event index has blocks
//! for answers from its events (exact, including evictions); any other instance answers from
//! the shared decisions. While NATS is down the event index is not trusted (stale contents)
//! and the local decisions still answer.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use switchyard_kv::{BlockHash, Overlap, SharedApproxIndex};
use switchyard_nats::decisions::{DecisionShare, DecisionShareConfig, Sink};
use switchyard_nats::{NatsConnection, Subscriber};
use switchyard_runtime::exposition::Scrape;
use switchyard_runtime::policy::kv::{KvConfig, KvOverlap, MAX_APPROX_TTL_SECS};
use switchyard_runtime::Registry;

use crate::metrics::names;

/// Events where an instance publishes them, shared decisions elsewhere (see the module docs).
#[derive(Debug)]
pub struct SharedOverlap {
    subscriber: Arc<Subscriber>,
    approx: SharedApproxIndex,
    share: Arc<DecisionShare>,
}

impl KvOverlap for SharedOverlap {
    fn overlap(&self, blocks: &[BlockHash]) -> Overlap {
        let approx = self.approx.overlap(blocks);
        if !self.subscriber.connected() {
            return approx;
        }
        let index = self.subscriber.index();
        let events = index.overlap(blocks);
        if approx.is_empty() {
            return events;
        }
        let predicted = approx
            .iter()
            .filter(|&(id, _)| events.get(id) == 0 && index.instance_blocks(id) == 0);
        events.iter().chain(predicted).collect()
    }
    fn routed(&self, instance: &str, blocks: &[BlockHash]) {
        self.approx.record(instance, blocks);
        self.share.share(instance, blocks);
    }
    fn forget(&self, instance: &str) {
        self.approx.remove_instance(instance);
    }
    fn kind(&self) -> &'static str {
        "events+decisions"
    }
}

/// Starts the decision exchange on `conn`; peers' decisions about instances `registry` lists
/// go into the returned source's approximate index.
pub async fn start(
    conn: &NatsConnection,
    frontend_id: &str,
    registry: &Arc<Registry>,
    kv: &KvConfig,
    subscriber: Arc<Subscriber>,
) -> anyhow::Result<Arc<SharedOverlap>> {
    let ttl = Duration::from_secs(kv.approx_ttl_secs.clamp(1, MAX_APPROX_TTL_SECS));
    let approx = SharedApproxIndex::new(ttl);
    let sink = Sink {
        known: {
            let registry = Arc::clone(registry);
            Box::new(move |id| registry.all().iter().any(|i| i.id() == id))
        },
        apply: {
            let approx = approx.clone();
            Box::new(move |id, blocks| approx.record(id, blocks))
        },
    };
    let share = DecisionShare::start(conn, frontend_id, sink, DecisionShareConfig::default())
        .await
        .map_err(|e| anyhow::anyhow!("NATS decision sharing: {e}"))?;
    Ok(Arc::new(SharedOverlap {
        subscriber,
        approx,
        share: Arc::new(share),
    }))
}

impl SharedOverlap {
    pub fn stop(&self) {
        self.share.stop();
    }

    /// `/health` `events.shared_decisions`.
    pub fn health(&self) -> serde_json::Value {
        let s = self.share.stats();
        let rejected: serde_json::Map<String, serde_json::Value> = s
            .rejected
            .snapshot()
            .iter()
            .map(|(reason, n)| ((*reason).to_owned(), (*n).into()))
            .collect();
        serde_json::json!({
            "published": s.published.load(Relaxed),
            "dropped": s.dropped.load(Relaxed),
            "applied": s.applied.load(Relaxed),
            "unknown_instance": s.unknown_instance.load(Relaxed),
            "rejected": rejected,
        })
    }

    /// `switchyard_kv_shared_decisions_total{outcome}`.
    pub fn collect_metrics(&self, s: &mut Scrape) {
        let st = self.share.stats();
        let mut family = s.family(&names::KV_SHARED_DECISIONS);
        for (outcome, v) in [
            ("published", st.published.load(Relaxed)),
            ("dropped", st.dropped.load(Relaxed)),
            ("applied", st.applied.load(Relaxed)),
            ("unknown_instance", st.unknown_instance.load(Relaxed)),
        ] {
            family.value(&[("outcome", outcome)], v as f64);
        }
        for (reason, v) in st.rejected.snapshot() {
            family.value(&[("outcome", &format!("rejected_{reason}"))], v as f64);
        }
    }
}

//! Replica sync: frontends share their in-flight requests per instance so that several
//! frontends balance as one.
//!
//! Each frontend publishes its own counts on `switchyard.replica.<frontend>` periodically and
//! soon after they change, with a TTL; it sums every *other* live frontend's counts into a
//! table that the load-aware policies add to their local in-flight numbers. A frontend that
//! dies simply stops publishing and its counts expire; one that shuts down cleanly publishes
//! an empty set with TTL 0 first.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use parking_lot::RwLock;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::wire::ReplicaMessage;
use crate::{subjects, NatsConnection, Result};

/// The local frontend's in-flight count per instance.
pub type LocalCounts = Arc<dyn Fn() -> Vec<(String, u32)> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct ReplicaSyncConfig {
    /// Publish at least this often.
    pub interval: Duration,
    /// After a change, publish no sooner than this since the last publish (coalesces bursts).
    pub min_gap: Duration,
    /// How long peers keep our counts without a newer message (a few intervals).
    pub ttl: Duration,
}

impl Default for ReplicaSyncConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(500),
            min_gap: Duration::from_millis(20),
            ttl: Duration::from_secs(2),
        }
    }
}

#[derive(Default)]
struct Table {
    peers: HashMap<String, (HashMap<String, u32>, Instant)>,
    /// Sum over live peers, kept up to date so lookups are one hash probe.
    sums: HashMap<String, u32>,
}

impl Table {
    fn set_peer(&mut self, frontend: String, counts: HashMap<String, u32>, expires: Instant) {
        self.peers.insert(frontend, (counts, expires));
        self.recompute();
    }

    fn expire(&mut self, now: Instant) -> bool {
        let before = self.peers.len();
        self.peers.retain(|_, (_, exp)| *exp > now);
        let changed = self.peers.len() != before;
        if changed {
            self.recompute();
        }
        changed
    }

    fn recompute(&mut self) {
        self.sums.clear();
        for (counts, _) in self.peers.values() {
            for (inst, n) in counts {
                // Peers' numbers: a bogus huge count must not overflow (debug builds panic).
                let sum = self.sums.entry(inst.clone()).or_default();
                *sum = sum.saturating_add(*n);
            }
        }
    }

    /// Takes one peer message (not our own). TTL 0 means "forget me now"; any other TTL is
    /// capped at [`MAX_PEER_TTL`] so a peer cannot pin its counts (or overflow the deadline).
    fn on_message(&mut self, m: ReplicaMessage, now: Instant) {
        if m.ttl_ms == 0 {
            if self.peers.contains_key(&m.frontend) {
                tracing::info!(frontend = %m.frontend, "replica peer left (goodbye)");
            }
            self.peers.remove(&m.frontend);
            self.recompute();
        } else {
            let ttl = Duration::from_millis(m.ttl_ms).min(MAX_PEER_TTL);
            let mut counts: HashMap<String, u32> = HashMap::new();
            for (inst, n) in m.in_flight.into_iter().filter(|(_, n)| *n > 0) {
                // A repeated instance adds up rather than the last one winning.
                let c = counts.entry(inst).or_default();
                *c = c.saturating_add(n);
            }
            self.set_peer(m.frontend, counts, now + ttl);
        }
        self.expire(now);
    }
}

/// The longest a peer's counts are kept without a newer message, whatever TTL it asks for.
pub const MAX_PEER_TTL: Duration = Duration::from_secs(60);

/// Handle to a running replica sync. Dropping it stops publishing (peers expire us after
/// the TTL); [`shutdown`](Self::shutdown) tells them at once.
pub struct ReplicaSync {
    frontend_id: String,
    conn: NatsConnection,
    table: Arc<RwLock<Table>>,
    changed: Arc<Notify>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for ReplicaSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaSync")
            .field("frontend_id", &self.frontend_id)
            .field("peers", &self.peers())
            .finish()
    }
}

impl ReplicaSync {
    pub async fn start(
        conn: &NatsConnection,
        frontend_id: impl Into<String>,
        local: LocalCounts,
        cfg: ReplicaSyncConfig,
    ) -> Result<Self> {
        let frontend_id = frontend_id.into();
        let sub = conn
            .client
            .subscribe(subjects::all(subjects::REPLICA))
            .await?;
        conn.settle().await;
        let table = Arc::new(RwLock::new(Table::default()));
        let changed = Arc::new(Notify::new());
        let task = tokio::spawn(run(
            conn.clone(),
            frontend_id.clone(),
            local,
            cfg,
            table.clone(),
            changed.clone(),
            sub,
        ));
        Ok(Self {
            frontend_id,
            conn: conn.clone(),
            table,
            changed,
            task,
        })
    }

    /// In-flight requests other frontends have on `instance`.
    pub fn remote_in_flight(&self, instance: &str) -> u32 {
        self.table.read().sums.get(instance).copied().unwrap_or(0)
    }

    /// Live peer frontends (not counting this one).
    pub fn peers(&self) -> usize {
        self.table.read().peers.len()
    }

    /// Call when local counts change; the next publish comes within `min_gap`.
    pub fn notify(&self) {
        self.changed.notify_one();
    }

    /// Stops publishing; peers expire this frontend's counts after the TTL.
    pub fn stop(&self) {
        self.task.abort();
    }

    /// Stops and tells peers to drop this frontend's counts now (the frontend calls it on a
    /// graceful shutdown, after its in-flight requests have drained).
    pub async fn shutdown(&self) {
        self.stop();
        let bye = ReplicaMessage {
            frontend: self.frontend_id.clone(),
            ttl_ms: 0,
            in_flight: Vec::new(),
        };
        // Without a connection nobody would hear it; peers expire us after the TTL instead.
        // Bounded either way: a shutdown must not hang on the bus.
        if let (true, Ok(p)) = (self.conn.is_connected(), serde_json::to_vec(&bye)) {
            let subject = subjects::replica(&self.frontend_id);
            let send = async {
                if self.conn.client.publish(subject, p.into()).await.is_ok() {
                    let _ = self.conn.client.flush().await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), send).await;
        }
    }
}

impl Drop for ReplicaSync {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    conn: NatsConnection,
    me: String,
    local: LocalCounts,
    cfg: ReplicaSyncConfig,
    table: Arc<RwLock<Table>>,
    changed: Arc<Notify>,
    mut sub: async_nats::Subscriber,
) {
    let subject = subjects::replica(&me);
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                table.write().expire(Instant::now());
                publish(&conn, &subject, &me, &local, cfg.ttl).await;
            }
            _ = changed.notified() => {
                tokio::time::sleep(cfg.min_gap).await;
                publish(&conn, &subject, &me, &local, cfg.ttl).await;
                tick.reset();
            }
            Some(msg) = sub.next() => {
                let Ok(m) = serde_json::from_slice::<ReplicaMessage>(&msg.payload) else {
                    tracing::debug!(subject = %msg.subject, "bad replica message");
                    continue;
                };
                if m.frontend == me {
                    continue;
                }
                table.write().on_message(m, Instant::now());
            }
        }
    }
}

async fn publish(
    conn: &NatsConnection,
    subject: &str,
    me: &str,
    local: &LocalCounts,
    ttl: Duration,
) {
    if !conn.is_connected() {
        return;
    }
    let msg = ReplicaMessage {
        frontend: me.to_string(),
        ttl_ms: ttl.as_millis() as u64,
        in_flight: local().into_iter().filter(|(_, n)| *n > 0).collect(),
    };
    let Ok(payload) = serde_json::to_vec(&msg) else {
        return;
    };
    let send = conn.client.publish(subject.to_string(), payload.into());
    if tokio::time::timeout(Duration::from_secs(1), send)
        .await
        .is_err()
    {
        tracing::debug!("replica publish timed out");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(frontend: &str, ttl_ms: u64, in_flight: &[(&str, u32)]) -> ReplicaMessage {
        ReplicaMessage {
            frontend: frontend.into(),
            ttl_ms,
            in_flight: in_flight.iter().map(|(i, n)| ((*i).into(), *n)).collect(),
        }
    }

    #[test]
    fn peer_counts_saturate_instead_of_overflowing() {
        let now = Instant::now();
        let mut t = Table::default();
        t.on_message(msg("a", 1000, &[("w1", u32::MAX), ("w2", 1)]), now);
        t.on_message(msg("b", 1000, &[("w1", u32::MAX), ("w1", 7)]), now);
        t.on_message(msg("c", 1000, &[("w1", 1)]), now);
        assert_eq!(t.sums.get("w1"), Some(&u32::MAX));
        assert_eq!(t.sums.get("w2"), Some(&1));
        t.on_message(msg("a", 0, &[]), now);
        t.on_message(msg("b", 0, &[]), now);
        assert_eq!(t.sums.get("w1"), Some(&1), "goodbyes drop a peer at once");
    }

    #[test]
    fn huge_ttls_are_capped_not_overflowed() {
        let now = Instant::now();
        let mut t = Table::default();
        t.on_message(msg("a", u64::MAX, &[("w1", 2)]), now);
        assert_eq!(t.sums.get("w1"), Some(&2));
        assert!(!t.expire(now + MAX_PEER_TTL - Duration::from_millis(1)));
        assert!(t.expire(now + MAX_PEER_TTL), "a capped TTL still expires");
        assert!(t.sums.is_empty());
    }
}

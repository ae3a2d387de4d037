//! Tenant usage exchange: frontend replicas tell each other how much each tenant asked of
//! them in the last window, so each can take a fair share of the tenant's limit instead of
//! the static `limit / replicas` split (the folding itself lives in the frontend).
//!
//! Each frontend publishes on `switchyard.usage.<frontend>` every window (a few hundred ms)
//! a [`UsageMessage`]: per tenant *id* (never a key) the requests and tokens asked for in
//! the window, only for tenants with activity. A report is also sent when nothing happened:
//! it says "every tenant is idle here", which is what lets a busy peer take the whole limit.
//!
//! Everything received is untrusted: payloads over [`MAX_MESSAGE_BYTES`], with more than
//! [`MAX_TENANTS`] entries or ids over [`MAX_ID_BYTES`], from more than [`MAX_PEERS`]
//! frontends, or not the JSON shape are dropped and counted; TTLs are capped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::{subjects, NatsConnection, Result};

/// Largest payload read; a 1,000-tenant report is about 50 KiB.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Most tenant entries in one message; a publisher with more active tenants sends the
/// busiest ones.
pub const MAX_TENANTS: usize = 2048;
/// Longest tenant or frontend id accepted.
pub const MAX_ID_BYTES: usize = 256;
/// Most peer frontends remembered at once; reports from more are dropped.
pub const MAX_PEERS: usize = 64;
/// The longest a report is kept without a newer one, whatever TTL it asks for.
pub const MAX_TTL: Duration = Duration::from_secs(10);

/// `switchyard.usage.<frontend>`: what each tenant asked of one frontend in one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageMessage {
    pub frontend: String,
    /// The window the counts cover, milliseconds.
    pub window_ms: u64,
    /// Forget this report if no newer one arrives within this many milliseconds; 0 = the
    /// frontend is leaving.
    pub ttl_ms: u64,
    /// Tenants absent were idle in the window.
    pub tenants: Vec<TenantUsage>,
}

/// One tenant's demand in a window: requests attempted (admitted or refused) and tokens
/// asked for (`max_tokens` reservations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantUsage {
    pub id: String,
    pub requests: u64,
    pub tokens: u64,
}

/// A live peer's latest report, as rates.
#[derive(Debug, Clone)]
pub struct PeerReport {
    pub frontend: String,
    /// Tenant id → (requests per second, tokens per second).
    pub rates: Arc<HashMap<String, (f64, f64)>>,
}

/// Messages dropped, by reason (for a metric).
#[derive(Debug, Default)]
pub struct UsageStats {
    pub received: AtomicU64,
    pub oversize: AtomicU64,
    pub malformed: AtomicU64,
    pub too_many_peers: AtomicU64,
    /// Tenant entries naming an id this frontend does not know (dropped on receipt).
    pub unknown_tenants: AtomicU64,
}

impl UsageStats {
    /// `(reason, count)` for every drop reason.
    pub fn rejected(&self) -> [(&'static str, u64); 4] {
        [
            ("oversize", self.oversize.load(Relaxed)),
            ("malformed", self.malformed.load(Relaxed)),
            ("too_many_peers", self.too_many_peers.load(Relaxed)),
            ("unknown_tenant", self.unknown_tenants.load(Relaxed)),
        ]
    }
}

#[derive(Debug, Default)]
struct Table {
    peers: HashMap<String, (PeerReport, Instant)>,
}

impl Table {
    /// Takes one checked message from a peer (not ourselves).
    fn on_message(&mut self, m: UsageMessage, now: Instant, stats: &UsageStats, known: &Known) {
        self.peers.retain(|_, (_, expires)| *expires > now);
        if m.ttl_ms == 0 {
            self.peers.remove(&m.frontend);
            return;
        }
        if !self.peers.contains_key(&m.frontend) && self.peers.len() >= MAX_PEERS {
            stats.too_many_peers.fetch_add(1, Relaxed);
            return;
        }
        // A window under 10 ms would turn a handful of requests into a huge rate.
        let window = Duration::from_millis(m.window_ms.clamp(10, 60_000)).as_secs_f64();
        let mut rates: HashMap<String, (f64, f64)> = HashMap::with_capacity(m.tenants.len());
        for t in m.tenants {
            if !known(&t.id) {
                stats.unknown_tenants.fetch_add(1, Relaxed);
                continue;
            }
            let r = rates.entry(t.id).or_default();
            r.0 += t.requests as f64 / window;
            r.1 += t.tokens as f64 / window;
        }
        let ttl = Duration::from_millis(m.ttl_ms).min(MAX_TTL);
        let report = PeerReport {
            frontend: m.frontend.clone(),
            rates: Arc::new(rates),
        };
        self.peers.insert(m.frontend, (report, now + ttl));
    }

    fn fresh(&mut self, now: Instant) -> Vec<PeerReport> {
        self.peers.retain(|_, (_, expires)| *expires > now);
        self.peers.values().map(|(r, _)| r.clone()).collect()
    }
}

/// Whether a tenant id is configured here; entries for other ids are dropped and counted.
pub type Known = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Checks a payload's size and shape before it touches the table.
fn parse(payload: &[u8], stats: &UsageStats) -> Option<UsageMessage> {
    if payload.len() > MAX_MESSAGE_BYTES {
        stats.oversize.fetch_add(1, Relaxed);
        return None;
    }
    let ok = serde_json::from_slice::<UsageMessage>(payload)
        .ok()
        .filter(|m| {
            m.frontend.len() <= MAX_ID_BYTES
                && m.tenants.len() <= MAX_TENANTS
                && m.tenants.iter().all(|t| t.id.len() <= MAX_ID_BYTES)
        });
    if ok.is_none() {
        stats.malformed.fetch_add(1, Relaxed);
    }
    ok
}

/// The running exchange: a subscription keeping peers' latest reports, and a publisher the
/// frontend calls once per window.
pub struct UsageExchange {
    me: String,
    conn: NatsConnection,
    table: Arc<RwLock<Table>>,
    stats: Arc<UsageStats>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for UsageExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageExchange")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl UsageExchange {
    pub async fn start(conn: &NatsConnection, me: impl Into<String>, known: Known) -> Result<Self> {
        let me = me.into();
        let mut sub = conn
            .client
            .subscribe(subjects::all(subjects::USAGE))
            .await?;
        conn.settle().await;
        let table = Arc::new(RwLock::new(Table::default()));
        let stats = Arc::new(UsageStats::default());
        let task = {
            let (table, stats, me) = (table.clone(), stats.clone(), me.clone());
            tokio::spawn(async move {
                while let Some(msg) = sub.next().await {
                    stats.received.fetch_add(1, Relaxed);
                    let Some(m) = parse(&msg.payload, &stats) else {
                        continue;
                    };
                    if m.frontend != me {
                        table.write().on_message(m, Instant::now(), &stats, &known);
                    }
                }
            })
        };
        Ok(Self {
            me,
            conn: conn.clone(),
            table,
            stats,
            task,
        })
    }

    /// Publishes this frontend's window (the busiest [`MAX_TENANTS`] tenants when there are
    /// more). Bounded in time; a lost report only makes peers fall back sooner.
    pub async fn publish(&self, window: Duration, ttl: Duration, mut tenants: Vec<TenantUsage>) {
        if tenants.len() > MAX_TENANTS {
            tenants.sort_unstable_by_key(|t| std::cmp::Reverse(t.requests));
            tenants.truncate(MAX_TENANTS);
        }
        let msg = UsageMessage {
            frontend: self.me.clone(),
            window_ms: window.as_millis().try_into().unwrap_or(u64::MAX),
            ttl_ms: ttl.as_millis().try_into().unwrap_or(u64::MAX).max(1),
            tenants,
        };
        self.send(&msg).await;
    }

    /// Tells peers to drop this frontend's report now (graceful shutdown).
    pub async fn goodbye(&self) {
        self.task.abort();
        let msg = UsageMessage {
            frontend: self.me.clone(),
            window_ms: 0,
            ttl_ms: 0,
            tenants: Vec::new(),
        };
        self.send(&msg).await;
    }

    async fn send(&self, msg: &UsageMessage) {
        if !self.conn.is_connected() {
            return;
        }
        let Ok(payload) = serde_json::to_vec(msg) else {
            return;
        };
        let send = self
            .conn
            .client
            .publish(subjects::usage(&self.me), payload.into());
        if tokio::time::timeout(Duration::from_secs(1), send)
            .await
            .is_err()
        {
            tracing::debug!("tenant usage publish timed out");
        }
    }

    /// Peers whose latest report is still fresh.
    pub fn fresh_peers(&self) -> Vec<PeerReport> {
        self.table.write().fresh(Instant::now())
    }

    pub fn stats(&self) -> &UsageStats {
        &self.stats
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for UsageExchange {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(frontend: &str, ttl_ms: u64, tenants: &[(&str, u64, u64)]) -> UsageMessage {
        UsageMessage {
            frontend: frontend.into(),
            window_ms: 500,
            ttl_ms,
            tenants: tenants
                .iter()
                .map(|(id, requests, tokens)| TenantUsage {
                    id: (*id).into(),
                    requests: *requests,
                    tokens: *tokens,
                })
                .collect(),
        }
    }

    fn all() -> Known {
        Arc::new(|_| true)
    }

    #[test]
    fn unknown_tenant_ids_are_dropped_and_counted() {
        let (now, stats) = (Instant::now(), UsageStats::default());
        let mut t = Table::default();
        let known: Known = Arc::new(|id| id == "a");
        t.on_message(
            msg("b", 1000, &[("a", 1, 0), ("zz", 9, 9)]),
            now,
            &stats,
            &known,
        );
        let peers = t.fresh(now);
        assert_eq!(peers[0].rates.len(), 1);
        assert_eq!(stats.unknown_tenants.load(Relaxed), 1);
    }

    #[test]
    fn reports_become_rates_and_expire() {
        let (now, stats) = (Instant::now(), UsageStats::default());
        let mut t = Table::default();
        t.on_message(
            msg("b", 1000, &[("a", 5, 100), ("a", 1, 0)]),
            now,
            &stats,
            &all(),
        );
        let peers = t.fresh(now);
        assert_eq!(peers.len(), 1);
        assert_eq!(
            peers[0].rates["a"],
            (12.0, 200.0),
            "per second, repeats add"
        );
        assert!(t.fresh(now + Duration::from_millis(1000)).is_empty());
        t.on_message(msg("b", u64::MAX, &[]), now, &stats, &all());
        assert_eq!(t.fresh(now + MAX_TTL - Duration::from_millis(1)).len(), 1);
        assert!(t.fresh(now + MAX_TTL).is_empty(), "TTL capped");
        t.on_message(msg("b", 1000, &[]), now, &stats, &all());
        t.on_message(msg("b", 0, &[]), now, &stats, &all());
        assert!(t.fresh(now).is_empty(), "a goodbye drops the peer at once");
    }

    #[test]
    fn untrusted_payloads_are_bounded() {
        let stats = UsageStats::default();
        assert!(parse(&vec![b' '; MAX_MESSAGE_BYTES + 1], &stats).is_none());
        assert!(parse(b"{\"frontend\":1}", &stats).is_none());
        let long = "x".repeat(MAX_ID_BYTES + 1);
        let m = serde_json::to_vec(&msg("b", 1, &[(&long, 1, 1)])).unwrap();
        assert!(parse(&m, &stats).is_none());
        let m = serde_json::to_vec(&msg("b", 1, &[("a", 1, 1)])).unwrap();
        assert!(parse(&m, &stats).is_some());
        assert_eq!(stats.malformed.load(Relaxed), 2);
        assert_eq!(stats.oversize.load(Relaxed), 1);

        let now = Instant::now();
        let mut t = Table::default();
        for i in 0..=MAX_PEERS {
            t.on_message(msg(&format!("p{i}"), 1000, &[]), now, &stats, &all());
        }
        assert_eq!(t.fresh(now).len(), MAX_PEERS);
        assert_eq!(stats.too_many_peers.load(Relaxed), 1);
    }

    #[test]
    fn the_schema_is_stable() {
        assert_eq!(
            serde_json::to_string(&msg("fe-1", 1500, &[("team-a", 3, 40)])).unwrap(),
            r#"{"frontend":"fe-1","window_ms":500,"ttl_ms":1500,"tenants":[{"id":"team-a","requests":3,"tokens":40}]}"#
        );
    }
}

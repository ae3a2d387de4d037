//! Replica-shared routing decisions: frontends tell each other where they sent which prompt.
//!
//! Without KV events a frontend predicts cache contents from its own routing decisions (the
//! approximate index). Behind two or more frontends each one sees only its share of the
//! decisions, so the same prefix lands on different instances and the hit rate collapses
//! (0.43 vs 0.82 with one frontend, docs/benchmarks.md round 3). With NATS every frontend
//! publishes its decisions — instance id and the prompt's leading block hashes — batched on
//! `switchyard.decisions.<frontend>`, and applies every other frontend's to its own index, so
//! all of them learn the same placement.
//!
//! Everything received is untrusted: payloads over [`MAX_MESSAGE_BYTES`] are not decoded, the
//! subject must be the sender's own, a message may carry at most [`MAX_DECISIONS`] decisions
//! and [`MAX_BLOCKS`] hashes in total, and decisions naming an instance the receiver's
//! discovery does not list are skipped. Each outcome is counted ([`DecisionStats`]).
//! Publishing never waits on the request path: decisions go through a bounded queue, and a
//! full queue drops (and counts) the decision.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use switchyard_kv::BlockHash;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::inbound::{Reject, RejectCounters, MAX_ID_BYTES};
use crate::{subjects, NatsConnection, Result};

/// Most decisions one message carries (sender batches) and accepts (receiver).
pub const MAX_DECISIONS: usize = 256;
/// Most block hashes one message carries in total.
pub const MAX_BLOCKS: usize = 32_768;
/// Leading blocks of a prompt that are shared (the overlap that matters is at the front).
pub const MAX_BLOCKS_PER_DECISION: usize = 4_096;
/// Largest payload decoded: 32k hashes of up to 20 digits fit with room to spare, and it is
/// under nats-server's default `max_payload` of 1 MiB.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// `switchyard.decisions.<frontend>`: a batch of one frontend's routing decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionsMessage {
    pub frontend: String,
    pub decisions: Vec<Decision>,
}

/// "`instance` was chosen for a prompt starting with `blocks`."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub instance: String,
    pub blocks: Vec<BlockHash>,
}

/// Decodes and checks a message received on `subject` (see the module docs).
pub fn check(subject: &str, payload: &[u8]) -> std::result::Result<DecisionsMessage, Reject> {
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(Reject::TooLarge);
    }
    let m: DecisionsMessage = serde_json::from_slice(payload).map_err(|_| Reject::Parse)?;
    let bad_id =
        |id: &str| id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control);
    if bad_id(&m.frontend) || m.decisions.iter().any(|d| bad_id(&d.instance)) {
        return Err(Reject::Instance);
    }
    let token = subject
        .strip_prefix(subjects::DECISIONS)
        .and_then(|rest| rest.strip_prefix('.'));
    if token != Some(subjects::token(&m.frontend).as_str()) {
        return Err(Reject::Subject);
    }
    let blocks = m
        .decisions
        .iter()
        .map(|d| d.blocks.len())
        .fold(0, usize::saturating_add);
    if m.decisions.len() > MAX_DECISIONS || blocks > MAX_BLOCKS {
        return Err(Reject::Value);
    }
    Ok(m)
}

/// Counters of the exchange (for `/health` and `/metrics`).
#[derive(Debug, Default)]
pub struct DecisionStats {
    /// Decisions this frontend published.
    pub published: AtomicU64,
    /// Decisions dropped before publishing (queue full, or NATS down).
    pub dropped: AtomicU64,
    /// Peers' decisions applied to the local index.
    pub applied: AtomicU64,
    /// Peers' decisions naming an instance local discovery does not list.
    pub unknown_instance: AtomicU64,
    /// Peers' messages rejected, by reason.
    pub rejected: RejectCounters,
}

/// What the exchange does with a peer's decision: `known(id)` says whether discovery lists
/// the instance, `apply(id, blocks)` records it in the index.
pub struct Sink {
    pub known: Box<dyn Fn(&str) -> bool + Send + Sync>,
    pub apply: ApplyFn,
}

/// Records a peer's decision (instance id, leading block hashes) in the local index.
pub type ApplyFn = Box<dyn Fn(&str, &[BlockHash]) + Send + Sync>;

/// Tuning of the publisher.
#[derive(Debug, Clone)]
pub struct DecisionShareConfig {
    /// A batch is published at most this long after its first decision.
    pub flush_after: Duration,
    /// Decisions waiting to be published; beyond it they are dropped.
    pub queue: usize,
}

impl Default for DecisionShareConfig {
    fn default() -> Self {
        Self {
            // The next turn of a conversation follows a whole response later (tens of ms at
            // least), so a few ms of batching costs nothing in placement.
            flush_after: Duration::from_millis(5),
            queue: 4_096,
        }
    }
}

/// A running exchange. Dropping it stops both directions.
pub struct DecisionShare {
    tx: mpsc::Sender<Decision>,
    stats: Arc<DecisionStats>,
    tasks: [JoinHandle<()>; 2],
}

impl std::fmt::Debug for DecisionShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionShare").finish_non_exhaustive()
    }
}

impl DecisionShare {
    pub async fn start(
        conn: &NatsConnection,
        frontend_id: impl Into<String>,
        sink: Sink,
        cfg: DecisionShareConfig,
    ) -> Result<Self> {
        let me = frontend_id.into();
        let sub = conn
            .client
            .subscribe(subjects::all(subjects::DECISIONS))
            .await?;
        conn.settle().await;
        let stats = Arc::new(DecisionStats::default());
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let tasks = [
            tokio::spawn(publish_loop(
                conn.clone(),
                me.clone(),
                rx,
                cfg,
                stats.clone(),
            )),
            tokio::spawn(receive_loop(me, sub, sink, stats.clone())),
        ];
        Ok(Self { tx, stats, tasks })
    }

    /// Queues a decision for the peers; never waits (a full queue drops it).
    pub fn share(&self, instance: &str, blocks: &[BlockHash]) {
        let blocks = &blocks[..blocks.len().min(MAX_BLOCKS_PER_DECISION)];
        let d = Decision {
            instance: instance.to_owned(),
            blocks: blocks.to_vec(),
        };
        if self.tx.try_send(d).is_err() {
            self.stats.dropped.fetch_add(1, Relaxed);
        }
    }

    pub fn stats(&self) -> &DecisionStats {
        &self.stats
    }

    pub fn stop(&self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

impl Drop for DecisionShare {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Batches queued decisions into messages within the size limits.
fn batches(pending: Vec<Decision>) -> Vec<Vec<Decision>> {
    let mut out = Vec::new();
    let (mut batch, mut blocks) = (Vec::new(), 0usize);
    for d in pending {
        if !batch.is_empty()
            && (batch.len() == MAX_DECISIONS || blocks + d.blocks.len() > MAX_BLOCKS)
        {
            out.push(std::mem::take(&mut batch));
            blocks = 0;
        }
        blocks += d.blocks.len();
        batch.push(d);
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

async fn publish_loop(
    conn: NatsConnection,
    me: String,
    mut rx: mpsc::Receiver<Decision>,
    cfg: DecisionShareConfig,
    stats: Arc<DecisionStats>,
) {
    let subject = subjects::decisions(&me);
    while let Some(first) = rx.recv().await {
        let mut pending = vec![first];
        let deadline = tokio::time::Instant::now() + cfg.flush_after;
        while pending.len() < MAX_DECISIONS {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(d)) => pending.push(d),
                Ok(None) | Err(_) => break,
            }
        }
        for decisions in batches(pending) {
            let n = decisions.len() as u64;
            if !conn.is_connected() {
                stats.dropped.fetch_add(n, Relaxed);
                continue;
            }
            let msg = DecisionsMessage {
                frontend: me.clone(),
                decisions,
            };
            let Ok(payload) = serde_json::to_vec(&msg) else {
                continue;
            };
            let send = conn.client.publish(subject.clone(), payload.into());
            match tokio::time::timeout(Duration::from_secs(1), send).await {
                Ok(Ok(())) => stats.published.fetch_add(n, Relaxed),
                _ => stats.dropped.fetch_add(n, Relaxed),
            };
        }
    }
}

async fn receive_loop(
    me: String,
    mut sub: async_nats::Subscriber,
    sink: Sink,
    stats: Arc<DecisionStats>,
) {
    while let Some(msg) = sub.next().await {
        let m = match check(msg.subject.as_str(), &msg.payload) {
            Ok(m) => m,
            Err(reason) => {
                stats.rejected.count(reason);
                continue;
            }
        };
        if m.frontend == me {
            continue;
        }
        apply(m, &sink, &stats);
    }
}

/// Applies a checked peer message: decisions for unknown instances are skipped and counted.
fn apply(m: DecisionsMessage, sink: &Sink, stats: &DecisionStats) {
    for d in m.decisions {
        if d.blocks.is_empty() {
            continue;
        }
        if (sink.known)(&d.instance) {
            (sink.apply)(&d.instance, &d.blocks);
            stats.applied.fetch_add(1, Relaxed);
        } else {
            stats.unknown_instance.fetch_add(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use parking_lot::Mutex;

    use super::*;

    fn d(instance: &str, blocks: &[BlockHash]) -> Decision {
        Decision {
            instance: instance.into(),
            blocks: blocks.to_vec(),
        }
    }

    #[test]
    fn a_good_message_passes_and_the_schema_is_stable() {
        let m = DecisionsMessage {
            frontend: "fe.1".into(),
            decisions: vec![d("w1", &[1, 2])],
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"frontend":"fe.1","decisions":[{"instance":"w1","blocks":[1,2]}]}"#
        );
        assert_eq!(check("switchyard.decisions.fe%2E1", json.as_bytes()), Ok(m));
    }

    #[test]
    fn bad_messages_are_rejected_by_reason() {
        let subject = "switchyard.decisions.fe";
        let ok = |json: &str| check(subject, json.as_bytes());
        assert_eq!(ok("{").unwrap_err(), Reject::Parse);
        assert_eq!(
            ok(r#"{"frontend":"fe","decisions":[],"extra":1}"#).unwrap_err(),
            Reject::Parse
        );
        assert_eq!(
            ok(r#"{"frontend":"other","decisions":[]}"#).unwrap_err(),
            Reject::Subject,
            "a frontend speaks only on its own subject"
        );
        assert_eq!(
            ok(r#"{"frontend":"fe","decisions":[{"instance":"","blocks":[1]}]}"#).unwrap_err(),
            Reject::Instance
        );
        let many = vec![d("w", &[1]); MAX_DECISIONS + 1];
        let json = serde_json::to_string(&DecisionsMessage {
            frontend: "fe".into(),
            decisions: many,
        })
        .unwrap();
        assert_eq!(ok(&json).unwrap_err(), Reject::Value);
        let long: Vec<BlockHash> = (0..=MAX_BLOCKS as u64).collect();
        let json = serde_json::to_string(&DecisionsMessage {
            frontend: "fe".into(),
            decisions: vec![d("w", &long)],
        })
        .unwrap();
        assert_eq!(ok(&json).unwrap_err(), Reject::Value);
        let big = vec![b' '; MAX_MESSAGE_BYTES + 1];
        assert_eq!(check(subject, &big).unwrap_err(), Reject::TooLarge);
    }

    #[test]
    fn unknown_instances_are_skipped_and_counted() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink {
            known: Box::new(|id| id == "w1"),
            apply: {
                let seen = seen.clone();
                Box::new(move |id, blocks| seen.lock().push((id.to_owned(), blocks.len())))
            },
        };
        let stats = DecisionStats::default();
        let m = DecisionsMessage {
            frontend: "fe".into(),
            decisions: vec![d("w1", &[1, 2, 3]), d("ghost", &[4]), d("w1", &[])],
        };
        apply(m, &sink, &stats);
        assert_eq!(*seen.lock(), vec![("w1".to_owned(), 3)]);
        assert_eq!(stats.applied.load(Relaxed), 1);
        assert_eq!(stats.unknown_instance.load(Relaxed), 1);
    }

    #[test]
    fn batches_respect_both_limits() {
        let small: Vec<Decision> = (0..MAX_DECISIONS + 3).map(|_| d("w", &[1])).collect();
        let b = batches(small);
        assert_eq!(
            b.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![MAX_DECISIONS, 3]
        );
        let big = vec![
            d("w", &vec![7; MAX_BLOCKS_PER_DECISION]);
            MAX_BLOCKS / MAX_BLOCKS_PER_DECISION + 1
        ];
        let b = batches(big);
        assert!(b
            .iter()
            .all(|m| m.iter().map(|d| d.blocks.len()).sum::<usize>() <= MAX_BLOCKS));
        assert_eq!(b.len(), 2);
    }
}

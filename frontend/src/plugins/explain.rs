//! Decision explanations: the candidates, what each stage made of them, and the pick.
//! Recorded only for requests that ask (`x-switchyard-explain: <admin token>`) or while the
//! routing console watches the decision feed (`GET /admin/decisions/stream`); kept in a
//! bounded ring, served by `GET /admin/explain/{request_id}`, and sent to every watcher.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

const CAPACITY: usize = 512;

#[derive(Debug, Clone, Serialize)]
pub struct ExplainedCandidate {
    pub id: u32,
    pub instance: String,
    pub in_flight: u32,
    pub queued: u32,
    pub kv_usage: f32,
    pub cached_prefix_blocks: u32,
    pub weight: f32,
    /// The instance's latency averages as plugins saw them (0: nothing measured yet).
    pub ttft_ewma_ms: f32,
    pub itl_ewma_ms: f32,
    /// `healthy`, `degraded` or `unhealthy`, as plugins saw it.
    pub health: &'static str,
    /// The `kv` policy's predicted time to first token (predictive mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_ttft_ms: Option<f64>,
}

/// What one plugin (or the native policy) decided.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stage {
    pub plugin: String,
    pub kind: &'static str,
    /// The exact component that decided (absent for native policies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<Vec<(String, f64)>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranked: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failure policy replaced this stage with the native policy.
    pub fell_back: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub request_id: String,
    pub model: String,
    /// The caller's tenant id (never its key), when tenants are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub candidates: Vec<ExplainedCandidate>,
    pub stages: Vec<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_scores: Option<Vec<(String, f64)>>,
    /// Instances in the order they would be tried.
    pub pick: Vec<String>,
}

/// Explanations a slow watcher may fall behind by before it skips some.
const FEED_CAPACITY: usize = 256;

#[derive(Debug)]
pub struct ExplainLog {
    ring: Mutex<VecDeque<Arc<Explanation>>>,
    feed: tokio::sync::broadcast::Sender<Arc<Explanation>>,
    /// Open feed subscriptions: while any, every decision is explained. An atomic rather
    /// than the channel's receiver count, which takes a lock, because every request reads it.
    watchers: Arc<AtomicUsize>,
}

impl Default for ExplainLog {
    fn default() -> Self {
        Self {
            ring: Mutex::default(),
            feed: tokio::sync::broadcast::channel(FEED_CAPACITY).0,
            watchers: Arc::default(),
        }
    }
}

/// A subscription to the decision feed; dropping it stops the explaining (when it was the
/// last one).
#[derive(Debug)]
pub struct Watch {
    pub decisions: tokio::sync::broadcast::Receiver<Arc<Explanation>>,
    watchers: Arc<AtomicUsize>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ExplainLog {
    pub fn push(&self, explanation: Explanation) {
        let explanation = Arc::new(explanation);
        if self.watched() {
            // No receiver is not an error: the last watcher may have just left.
            let _ = self.feed.send(Arc::clone(&explanation));
        }
        let mut ring = self.ring.lock();
        if ring.len() >= CAPACITY {
            ring.pop_front();
        }
        ring.push_back(explanation);
    }

    /// Whether someone watches the feed, so every decision should be explained.
    pub fn watched(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    pub fn watch(&self) -> Watch {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Watch {
            decisions: self.feed.subscribe(),
            watchers: Arc::clone(&self.watchers),
        }
    }

    /// The newest explanations, newest last (what a console shows before its feed starts).
    pub fn latest(&self, n: usize) -> Vec<Arc<Explanation>> {
        let ring = self.ring.lock();
        ring.iter()
            .skip(ring.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    pub fn get(&self, request_id: &str) -> Option<Arc<Explanation>> {
        self.ring
            .lock()
            .iter()
            .rev()
            .find(|e| e.request_id == request_id)
            .cloned()
    }
}

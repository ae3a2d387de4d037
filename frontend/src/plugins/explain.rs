//! Decision explanations: the candidates, what each stage made of them, and the pick.
//! Recorded only for requests that ask (`x-switchyard-explain: <admin token>`), kept in a
//! bounded ring, served by `GET /admin/explain/{request_id}`.

use std::collections::VecDeque;
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
    pub candidates: Vec<ExplainedCandidate>,
    pub stages: Vec<Stage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_scores: Option<Vec<(String, f64)>>,
    /// Instances in the order they would be tried.
    pub pick: Vec<String>,
}

#[derive(Debug, Default)]
pub struct ExplainLog {
    ring: Mutex<VecDeque<Arc<Explanation>>>,
}

impl ExplainLog {
    pub fn push(&self, explanation: Explanation) {
        let mut ring = self.ring.lock();
        if ring.len() >= CAPACITY {
            ring.pop_front();
        }
        ring.push_back(Arc::new(explanation));
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

//! A live instance: its spec plus the counters routing reads on every request.
//!
//! Everything a policy looks at per request is an atomic here, so selection never takes a lock.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Source of [`Instance::num_id`].
static NEXT_NUM_ID: AtomicU32 = AtomicU32::new(1);
use std::sync::Arc;

use parking_lot::Mutex;

use crate::health::HealthState;
use crate::{ChatTemplate, InstanceSpec};

/// One routable instance.
#[derive(Debug)]
pub struct Instance {
    pub spec: InstanceSpec,
    /// Process-unique numeric id (never reused): what plugins see as `instance-id`.
    pub num_id: u32,
    /// Hash of the id, precomputed for consistent hashing.
    pub id_hash: u64,
    pub load: Load,
    pub health: HealthState,
    /// Compiled chat template for completions-only workers.
    pub template: Option<Arc<ChatTemplate>>,
    last_error: Mutex<Option<String>>,
    /// A health-policy plugin's verdict: 0 = none, 1 = healthy, 2 = unhealthy.
    policy_verdict: AtomicU8,
}

/// Load counters. `in_flight` is what this frontend has outstanding; `remote_*` fields are
/// filled by event sources (worker load snapshots, peer frontends) when configured.
#[derive(Debug, Default)]
pub struct Load {
    in_flight: AtomicU32,
    /// Requests queued at the worker (from its load reports).
    pub queued: AtomicU32,
    /// KV-cache usage in parts per million (from worker load reports).
    pub kv_usage_ppm: AtomicU32,
    /// In-flight requests other frontend replicas report for this instance.
    pub peer_in_flight: AtomicU32,
    /// EWMA of time to first token, microseconds.
    pub ttft_ewma_us: AtomicU64,
    /// EWMA of inter-token latency, microseconds.
    pub itl_ewma_us: AtomicU64,
}

impl Load {
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Local plus peer in-flight: what load-aware policies compare.
    pub fn total_in_flight(&self) -> u32 {
        self.in_flight()
            .saturating_add(self.peer_in_flight.load(Ordering::Relaxed))
    }

    pub fn kv_usage(&self) -> f32 {
        self.kv_usage_ppm.load(Ordering::Relaxed) as f32 / 1_000_000.0
    }

    /// Folds a new sample into an EWMA (alpha = 1/8; integer math, racy updates are fine:
    /// a lost sample only delays convergence).
    pub fn observe(ewma: &AtomicU64, sample_us: u64) {
        let old = ewma.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample_us
        } else {
            old - old / 8 + sample_us / 8
        };
        ewma.store(new, Ordering::Relaxed);
    }
}

/// Decrements the instance's in-flight count when dropped, however the request ends.
#[derive(Debug)]
pub struct InFlightGuard {
    instance: Arc<Instance>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.instance.load.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Instance {
    pub fn new(spec: InstanceSpec, template: Option<Arc<ChatTemplate>>) -> Self {
        let id_hash = xxhash_rust::xxh3::xxh3_64(spec.id.as_bytes());
        Self {
            spec,
            num_id: NEXT_NUM_ID.fetch_add(1, Ordering::Relaxed),
            id_hash,
            load: Load::default(),
            health: HealthState::default(),
            template,
            last_error: Mutex::new(None),
            policy_verdict: AtomicU8::new(0),
        }
    }

    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// Counts a request against this instance until the guard drops.
    pub fn start_request(self: &Arc<Self>) -> InFlightGuard {
        self.load.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlightGuard {
            instance: Arc::clone(self),
        }
    }

    pub fn set_last_error(&self, error: String) {
        *self.last_error.lock() = Some(error);
    }

    /// Records (or clears) a health-policy plugin's verdict.
    pub fn set_policy_verdict(&self, healthy: Option<bool>) {
        let v = match healthy {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        };
        self.policy_verdict.store(v, Ordering::Relaxed);
    }

    /// True when a health-policy plugin declared the instance unhealthy.
    pub fn policy_says_unhealthy(&self) -> bool {
        self.policy_verdict.load(Ordering::Relaxed) == 2
    }

    /// The one routability predicate, used by the health filter, dispatch, migration,
    /// `/v1/models`, `/health` and the metrics alike: the breaker lets a request through
    /// (healthy, degraded, or half-open with its trial slot free), the active checks pass, and
    /// no health-policy plugin declared the instance unhealthy. Deciding this in one place is
    /// the point: a second, weaker copy let streams migrate onto instances a plugin had taken
    /// out and kept their models listed.
    pub fn routable(&self, now_ns: u64) -> bool {
        self.health.is_routable(now_ns) && !self.policy_says_unhealthy()
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }
}

//! Overload protection: admission control (a concurrency limit with a bounded wait queue) and
//! load shedding when every candidate instance is full.
//!
//! A shed request gets 503 — or, if it is marked low priority (`x-switchyard-priority: low`
//! by default), the configured status (429) — with `Retry-After` and an OpenAI error body.
//! Low-priority requests never wait in the queue: under pressure they go first.
//!
//! Admission is the one owner of shedding's bookkeeping: every shed it decides — the
//! concurrency limit at the door, the capacity check before dispatch or a migration — is
//! counted here, in `switchyard_requests_shed_total`, and nowhere else.
//!
//! Everything here is off by default (no concurrency limit, no capacity thresholds): the
//! right numbers depend on the workers behind the frontend, so they are set per deployment.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use prometheus::IntCounter;
use serde::{Deserialize, Serialize};
use switchyard_runtime::Instance;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OverloadConfig {
    /// Generation requests served at once; 0 = unlimited (no admission control).
    pub max_concurrent: usize,
    /// Requests that may wait for a slot once `max_concurrent` are running.
    pub max_queue: usize,
    /// How long a queued request waits for a slot before it is shed, milliseconds.
    #[serde(
        rename = "queue_timeout",
        with = "switchyard_protocol::duration::millis"
    )]
    pub queue_timeout_ms: u64,
    /// An instance with this many of our requests in flight is full; 0 = no limit.
    pub max_in_flight_per_instance: u32,
    /// An instance reporting KV-cache usage at or above this (0..=1) is full; 0 = no limit.
    pub max_kv_usage: f32,
    /// Request header that marks priority.
    pub priority_header: String,
    /// Value of `priority_header` that marks a request low priority.
    pub low_priority_value: String,
    /// Status for shedding a low-priority request (503 for everything else).
    pub low_priority_status: u16,
    /// `Retry-After` sent with a shed request, seconds.
    pub retry_after_s: u64,
    /// When every instance of a model is unhealthy: `fail-fast` (503) or `route-all`.
    pub panic_policy: PanicPolicy,
}

impl Default for OverloadConfig {
    fn default() -> Self {
        Self {
            max_concurrent: 0,
            max_queue: 0,
            queue_timeout_ms: 1_000,
            max_in_flight_per_instance: 0,
            max_kv_usage: 0.0,
            priority_header: "x-switchyard-priority".to_owned(),
            low_priority_value: "low".to_owned(),
            low_priority_status: 429,
            retry_after_s: 1,
            panic_policy: PanicPolicy::FailFast,
        }
    }
}

impl OverloadConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.max_kv_usage) {
            return Err("overload.max_kv_usage must be between 0 and 1".into());
        }
        if !matches!(self.low_priority_status, 429 | 503) {
            return Err("overload.low_priority_status must be 429 or 503".into());
        }
        if http::HeaderName::try_from(self.priority_header.as_str()).is_err() {
            return Err("overload.priority_header is not a valid header name".into());
        }
        Ok(())
    }

    fn is_low_priority(&self, headers: &HeaderMap) -> bool {
        headers.get(self.priority_header.as_str()).is_some_and(|v| {
            v.as_bytes()
                .eq_ignore_ascii_case(self.low_priority_value.as_bytes())
        })
    }

    /// The error for a request shed under load: 429 when it is low priority, else 503.
    pub fn shed(&self, headers: &HeaderMap, message: &str) -> ApiError {
        let status = if self.is_low_priority(headers) {
            self.low_priority_status
        } else {
            503
        };
        ApiError::overloaded(
            status,
            message,
            Duration::from_secs(self.retry_after_s.max(1)),
        )
    }
}

/// What to do when no instance of a model is healthy (`overload.panic_policy`; the pipeline's
/// health filter applies it). Defined beside the rest of the overload settings, below both
/// the configuration and the pipeline, so that neither depends on the other for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PanicPolicy {
    /// 503 with `Retry-After`.
    #[default]
    FailFast,
    /// Route to every instance, healthy or not.
    RouteAll,
}

/// The frontend-wide concurrency limit and the capacity check, with the shed counter.
#[derive(Debug)]
pub struct Admission {
    config: OverloadConfig,
    slots: Option<Arc<Semaphore>>,
    /// `switchyard_requests_shed_total`.
    shed: IntCounter,
}

impl Admission {
    pub fn new(config: &OverloadConfig, shed: IntCounter) -> Self {
        Self {
            slots: (config.max_concurrent > 0)
                .then(|| Arc::new(Semaphore::new(config.max_concurrent))),
            config: config.clone(),
            shed,
        }
    }

    /// Admits a request, waiting in the bounded queue if all slots are taken. The permit is
    /// held until the response (stream included) is finished. `None` when unlimited.
    /// `queued` is the frontend's queue-length gauge; it is also what bounds the queue.
    pub async fn admit(
        &self,
        headers: &HeaderMap,
        queued: &AtomicI64,
    ) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        self.admit_slot(headers, queued)
            .await
            .inspect_err(|_| self.shed.inc())
    }

    /// Sheds the request (counted) when every candidate is over its in-flight or KV-usage
    /// threshold ([`has_room`]). Costs nothing when no threshold is configured.
    pub fn check_capacity(
        &self,
        headers: &HeaderMap,
        routable: &[&Arc<Instance>],
    ) -> Result<(), ApiError> {
        check_capacity(&self.config, headers, routable).inspect_err(|_| self.shed.inc())
    }

    async fn admit_slot(
        &self,
        headers: &HeaderMap,
        queued: &AtomicI64,
    ) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        let Some(slots) = &self.slots else {
            return Ok(None);
        };
        if let Ok(permit) = Arc::clone(slots).try_acquire_owned() {
            return Ok(Some(permit));
        }
        let full = "The server is at its concurrency limit; retry later.";
        if self.config.is_low_priority(headers) {
            return Err(self.config.shed(headers, full));
        }
        let overflow =
            "The server is at its concurrency limit and its wait queue is full; retry later.";
        let max_queue = i64::try_from(self.config.max_queue).unwrap_or(i64::MAX);
        if queued.fetch_add(1, Ordering::AcqRel) >= max_queue {
            queued.fetch_sub(1, Ordering::AcqRel);
            return Err(self.config.shed(headers, overflow));
        }
        // Decremented on every exit, including the request being dropped while it waits.
        let _in_queue = QueueGuard(queued);
        let waited = tokio::time::timeout(
            Duration::from_millis(self.config.queue_timeout_ms),
            Arc::clone(slots).acquire_owned(),
        )
        .await;
        match waited {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => Err(self.config.shed(
                headers,
                &format!(
                    "The server is at its concurrency limit and no slot freed up within {} ms; retry later.",
                    self.config.queue_timeout_ms
                ),
            )),
        }
    }
}

struct QueueGuard<'a>(&'a AtomicI64);

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether some candidate is under the in-flight and KV-usage thresholds (always true when
/// none is configured). [`check_capacity`] sheds on it.
pub fn has_room(config: &OverloadConfig, routable: &[&Arc<Instance>]) -> bool {
    has_room_beyond(config, routable, 0)
}

/// Whether the candidates under the KV-usage threshold have more free in-flight slots (up to
/// `max_in_flight_per_instance` each) than `reserved` requests already let through will take.
/// An instance without an in-flight threshold has room for any number. Flow control waits on it.
pub fn has_room_beyond(
    config: &OverloadConfig,
    routable: &[&Arc<Instance>],
    reserved: usize,
) -> bool {
    let cap = config.max_in_flight_per_instance;
    let kv = config.max_kv_usage;
    if cap == 0 && kv <= 0.0 {
        return true;
    }
    let mut free = 0usize;
    for i in routable {
        if kv > 0.0 && i.load.kv_usage() >= kv {
            continue;
        }
        if cap == 0 {
            return true;
        }
        free += cap.saturating_sub(i.load.in_flight()) as usize;
        if free > reserved {
            return true;
        }
    }
    false
}

/// The shed error when every candidate is over its in-flight or KV-usage threshold.
fn check_capacity(
    config: &OverloadConfig,
    headers: &HeaderMap,
    routable: &[&Arc<Instance>],
) -> Result<(), ApiError> {
    if has_room(config, routable) {
        Ok(())
    } else {
        Err(config.shed(
            headers,
            "Every instance of the model is at capacity; retry later.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use switchyard_runtime::InstanceSpec;

    fn counter() -> IntCounter {
        IntCounter::new("shed", "shed").unwrap()
    }

    fn low() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "x-switchyard-priority",
            http::HeaderValue::from_static("low"),
        );
        h
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_is_bounded_and_times_out() {
        let admission = Admission::new(
            &OverloadConfig {
                max_concurrent: 1,
                max_queue: 1,
                queue_timeout_ms: 100,
                ..OverloadConfig::default()
            },
            counter(),
        );
        let q = AtomicI64::new(0);
        let held = admission.admit(&HeaderMap::new(), &q).await.unwrap();
        assert!(held.is_some());
        // A low-priority request is shed at once, with 429.
        let e = admission.admit(&low(), &q).await.unwrap_err();
        assert_eq!(e.status, 429);
        assert!(e.retry_after.is_some());
        // One may queue; it times out with 503 because the slot is never freed.
        let none = HeaderMap::new();
        let queued = admission.admit(&none, &q);
        tokio::pin!(queued);
        assert!(queued.as_mut().now_or_never().is_none());
        assert_eq!(
            q.load(Ordering::Relaxed),
            1,
            "the gauge shows the waiting request"
        );
        let e = admission.admit(&HeaderMap::new(), &q).await.unwrap_err();
        assert_eq!(e.status, 503, "the queue holds one");
        assert_eq!(queued.await.unwrap_err().status, 503);
        assert_eq!(q.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_queued_request_gets_the_freed_slot() {
        let admission = Admission::new(
            &OverloadConfig {
                max_concurrent: 1,
                max_queue: 4,
                ..OverloadConfig::default()
            },
            counter(),
        );
        let q = AtomicI64::new(0);
        let held = admission.admit(&HeaderMap::new(), &q).await.unwrap();
        let none = HeaderMap::new();
        let queued = admission.admit(&none, &q);
        tokio::pin!(queued);
        assert!(queued.as_mut().now_or_never().is_none());
        drop(held);
        assert!(queued.await.unwrap().is_some());
        assert_eq!(q.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_dropped_while_queued_leaves_the_queue() {
        let admission = Admission::new(
            &OverloadConfig {
                max_concurrent: 1,
                max_queue: 1,
                ..OverloadConfig::default()
            },
            counter(),
        );
        let q = AtomicI64::new(0);
        let _held = admission.admit(&HeaderMap::new(), &q).await.unwrap();
        let none = HeaderMap::new();
        let mut queued = Box::pin(admission.admit(&none, &q));
        assert!(queued.as_mut().now_or_never().is_none());
        assert_eq!(q.load(Ordering::Relaxed), 1);
        drop(queued);
        assert_eq!(
            q.load(Ordering::Relaxed),
            0,
            "a client that left frees its place"
        );
    }

    #[test]
    fn kv_usage_at_the_threshold_is_full() {
        let config = OverloadConfig {
            max_kv_usage: 0.8,
            ..OverloadConfig::default()
        };
        let a = Arc::new(Instance::new(InstanceSpec::new("a", "m", "http://a"), None));
        a.load.kv_usage_ppm.store(790_000, Ordering::Relaxed);
        assert!(check_capacity(&config, &HeaderMap::new(), &[&a]).is_ok());
        a.load.kv_usage_ppm.store(800_000, Ordering::Relaxed);
        assert_eq!(
            check_capacity(&config, &HeaderMap::new(), &[&a])
                .unwrap_err()
                .status,
            503
        );
    }

    #[test]
    fn full_instances_are_shed_and_free_ones_are_not() {
        let config = OverloadConfig {
            max_in_flight_per_instance: 1,
            ..OverloadConfig::default()
        };
        let a = Arc::new(Instance::new(InstanceSpec::new("a", "m", "http://a"), None));
        let b = Arc::new(Instance::new(InstanceSpec::new("b", "m", "http://b"), None));
        let _busy = a.start_request();
        assert!(check_capacity(&config, &HeaderMap::new(), &[&a, &b]).is_ok());
        let _busy_b = b.start_request();
        let e = check_capacity(&config, &HeaderMap::new(), &[&a, &b]).unwrap_err();
        assert_eq!(e.status, 503);
        assert_eq!(
            check_capacity(&config, &low(), &[&a, &b])
                .unwrap_err()
                .status,
            429
        );
        assert!(check_capacity(&OverloadConfig::default(), &HeaderMap::new(), &[&a]).is_ok());
    }

    #[tokio::test]
    async fn admission_counts_every_shed_it_decides() {
        let shed = counter();
        let admission = Admission::new(
            &OverloadConfig {
                max_concurrent: 1,
                max_in_flight_per_instance: 1,
                ..OverloadConfig::default()
            },
            shed.clone(),
        );
        let q = AtomicI64::new(0);
        let _held = admission.admit(&HeaderMap::new(), &q).await.unwrap();
        assert_eq!(shed.get(), 0, "an admitted request is not shed");
        assert!(admission.admit(&low(), &q).await.is_err());
        assert_eq!(shed.get(), 1, "the concurrency limit's shed is counted");
        let a = Arc::new(Instance::new(InstanceSpec::new("a", "m", "http://a"), None));
        assert!(admission.check_capacity(&HeaderMap::new(), &[&a]).is_ok());
        let _busy = a.start_request();
        assert!(admission.check_capacity(&HeaderMap::new(), &[&a]).is_err());
        assert_eq!(shed.get(), 2, "the capacity check's shed is counted");
    }
}

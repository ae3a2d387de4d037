//! A live instance: its spec plus the counters routing reads on every request.
//!
//! Everything a policy looks at per request is an atomic here, so selection never takes a lock.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

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
    /// LoRA adapters resident on this instance.
    pub adapters: crate::lora::Residency,
    /// Compiled chat template for completions-only workers.
    pub template: Option<Arc<ChatTemplate>>,
    last_error: Mutex<Option<String>>,
    /// A health-policy plugin's verdict: 0 = none, 1 = healthy, 2 = unhealthy.
    policy_verdict: AtomicU8,
    /// The engine's `/v1/models` lists other models and not this one ([`crate::served_models`]):
    /// the flag is what routing reads, the list is for `/admin/instances`.
    misnamed: AtomicBool,
    served_ids: Mutex<Option<Vec<String>>>,
    /// The engine's own `/v1/models` card for the model ([`crate::served_models`]).
    engine_card: Mutex<Option<Arc<switchyard_protocol::ModelCard>>>,
    /// Learned TTFT rates (the `kv` policy's predictive cost); dropped with the instance.
    pub ttft: crate::policy::ttft::TtftLearner,
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
    /// Requests the engine reports generating (0 when unknown).
    pub running: AtomicU32,
    /// The engine's prefix-cache hit rate in parts per million (0 when unknown).
    pub prefix_hit_ppm: AtomicU32,
    /// The engine's running + waiting at its last report, and this frontend's `in_flight`
    /// at that moment: between reports, [`Load::outstanding`] moves the engine's figure by
    /// what this frontend sent or finished since.
    engine_outstanding: AtomicU32,
    in_flight_at_report: AtomicU32,
    /// Who reported the engine figures last ([`ReportSource`]) and when ([`crate::clock`] ns).
    report_source: AtomicU8,
    reported_at_ns: AtomicU64,
    /// Most requests the engine ran in a report that also showed a queue: its batch size.
    saturated_running: AtomicU32,
}

/// Where an instance's engine-side load figures (`queued`, `running`, `kv_usage`) come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ReportSource {
    /// Nobody reports: the figures read 0 (unknown).
    None = 0,
    /// The frontend scrapes the engine's own metrics endpoint.
    Scrape = 1,
    /// The worker publishes load snapshots on NATS (these win over scrapes).
    Nats = 2,
}

impl ReportSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Scrape => "scrape",
            Self::Nats => "nats",
        }
    }
}

/// One engine load report; `None` fields were not reported and keep reading 0.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct EngineReport {
    pub running: Option<f64>,
    pub waiting: Option<f64>,
    /// Fraction 0..=1.
    pub kv_usage: Option<f64>,
    /// Fraction 0..=1.
    pub prefix_hit_rate: Option<f64>,
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

    /// Requests outstanding at the engine as best known: the engine's last report of running
    /// plus waiting (which includes other clients' requests), moved by this frontend's sends
    /// and completions since, and never less than what this frontend and its peers have in
    /// flight. Without a report it is [`Load::total_in_flight`].
    pub fn outstanding(&self) -> u32 {
        let local = self.total_in_flight();
        let engine = self.engine_outstanding.load(Ordering::Relaxed);
        if engine == 0 {
            return local;
        }
        let now = i64::from(self.in_flight());
        let then = i64::from(self.in_flight_at_report.load(Ordering::Relaxed));
        let adjusted = (i64::from(engine) + now - then).clamp(0, i64::from(u32::MAX));
        local.max(u32::try_from(adjusted).unwrap_or(u32::MAX))
    }

    /// Stores an engine's load report. The figures are clamped: they come from the worker.
    pub fn record_report(&self, source: ReportSource, report: &EngineReport, now_ns: u64) {
        let count = |v: Option<f64>| v.map_or(0, |v| v.clamp(0.0, f64::from(u32::MAX)) as u32);
        let ppm = |v: Option<f64>| v.map_or(0, |v| (v.clamp(0.0, 1.0) * 1e6) as u32);
        let running = count(report.running);
        let waiting = count(report.waiting);
        self.running.store(running, Ordering::Relaxed);
        self.queued.store(waiting, Ordering::Relaxed);
        self.kv_usage_ppm
            .store(ppm(report.kv_usage), Ordering::Relaxed);
        self.prefix_hit_ppm
            .store(ppm(report.prefix_hit_rate), Ordering::Relaxed);
        self.engine_outstanding
            .store(running.saturating_add(waiting), Ordering::Relaxed);
        if waiting > 0 {
            self.saturated_running.fetch_max(running, Ordering::Relaxed);
        }
        self.in_flight_at_report
            .store(self.in_flight(), Ordering::Relaxed);
        self.reported_at_ns.store(now_ns, Ordering::Relaxed);
        self.report_source.store(source as u8, Ordering::Relaxed);
    }

    /// The engine's batch size as seen in its reports (the most it ran while requests
    /// waited); 0 until it has reported a queue.
    pub fn saturated_running(&self) -> u32 {
        self.saturated_running.load(Ordering::Relaxed)
    }

    /// Forgets the engine figures (a stale report reads as unknown, not as the last value).
    pub fn clear_report(&self) {
        self.record_report(ReportSource::None, &EngineReport::default(), 0);
    }

    /// Who reported last and how long ago (`None` without a report).
    pub fn report(&self, now_ns: u64) -> (ReportSource, Option<std::time::Duration>) {
        let source = match self.report_source.load(Ordering::Relaxed) {
            1 => ReportSource::Scrape,
            2 => ReportSource::Nats,
            _ => return (ReportSource::None, None),
        };
        let at = self.reported_at_ns.load(Ordering::Relaxed);
        let age = std::time::Duration::from_nanos(now_ns.saturating_sub(at));
        (source, Some(age))
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
            adapters: Default::default(),
            template,
            last_error: Mutex::new(None),
            policy_verdict: AtomicU8::new(0),
            misnamed: AtomicBool::new(false),
            served_ids: Mutex::new(None),
            engine_card: Mutex::new(None),
            ttft: Default::default(),
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
    /// An engine serving another model name is not routable either: every request would come
    /// back as its 404.
    pub fn routable(&self, now_ns: u64) -> bool {
        self.health.is_routable(now_ns)
            && !self.policy_says_unhealthy()
            && !self.misnamed.load(Ordering::Relaxed)
    }

    /// Records the served-model check's verdict: `Some(ids)` when the engine lists `ids` and
    /// not this instance's model, `None` when it serves the model.
    pub fn set_served_mismatch(&self, listed: Option<Vec<String>>) {
        self.misnamed.store(listed.is_some(), Ordering::Relaxed);
        *self.served_ids.lock() = listed;
    }

    /// Keeps the engine's card for the model (`None` leaves the last one: a later list that
    /// lost it is no reason to invent one).
    pub fn set_engine_card(&self, card: Option<switchyard_protocol::ModelCard>) {
        if let Some(card) = card {
            *self.engine_card.lock() = Some(Arc::new(card));
        }
    }

    /// The engine's card for the model, once the served-model check has read one.
    pub fn engine_card(&self) -> Option<Arc<switchyard_protocol::ModelCard>> {
        self.engine_card.lock().clone()
    }

    /// What the engine serves instead of this instance's model, when it does not serve it.
    pub fn served_mismatch(&self) -> Option<Vec<String>> {
        self.served_ids.lock().clone()
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InstanceSpec;

    fn instance() -> Arc<Instance> {
        Arc::new(Instance::new(InstanceSpec::new("a", "m", "http://a"), None))
    }

    #[test]
    fn outstanding_follows_local_sends_between_engine_reports() {
        let i = instance();
        let _before = i.start_request();
        assert_eq!(i.load.outstanding(), 1, "no report: local in-flight");
        let report = EngineReport {
            running: Some(5.0),
            waiting: Some(3.0),
            ..EngineReport::default()
        };
        i.load.record_report(ReportSource::Scrape, &report, 10);
        assert_eq!(i.load.outstanding(), 8);
        assert_eq!(i.load.queued.load(Ordering::Relaxed), 3);
        let sent: Vec<_> = (0..2).map(|_| i.start_request()).collect();
        assert_eq!(i.load.outstanding(), 10, "two sent since the report");
        drop(sent);
        drop(_before);
        assert_eq!(i.load.outstanding(), 7, "one finished since the report");
        assert_eq!(
            i.load.report(1_000_000_010),
            (
                ReportSource::Scrape,
                Some(std::time::Duration::from_secs(1))
            )
        );
        i.load.clear_report();
        assert_eq!(i.load.outstanding(), 0);
        assert_eq!(i.load.report(20), (ReportSource::None, None));
    }

    #[test]
    fn reported_figures_are_clamped() {
        let i = instance();
        let report = EngineReport {
            running: Some(1e300),
            waiting: Some(-4.0),
            kv_usage: Some(3.0),
            prefix_hit_rate: Some(f64::NAN),
        };
        i.load.record_report(ReportSource::Nats, &report, 1);
        assert_eq!(i.load.running.load(Ordering::Relaxed), u32::MAX);
        assert_eq!(i.load.queued.load(Ordering::Relaxed), 0);
        assert_eq!(i.load.kv_usage(), 1.0);
        assert_eq!(i.load.prefix_hit_ppm.load(Ordering::Relaxed), 0);
        assert_eq!(i.load.outstanding(), u32::MAX);
    }
}

//! Per-instance health state (lock-free): passive outlier ejection with a circuit breaker,
//! the degraded mark, and the verdicts of the active checks (probe, canary).
//!
//! The breaker's states map onto [`HealthStatus`]: closed = `Healthy`/`Degraded`, open =
//! `Ejected`, half-open = `HalfOpen`. When an ejection expires exactly one trial request is
//! let through ([`HealthState::try_claim`]); its success closes the breaker, its failure opens
//! it again for a longer ejection.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Passive-health settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Consecutive failures caused by the instance (connection errors, 5xx another instance
    /// did not reproduce, timeouts, broken streams), each from a different request, that eject
    /// it. More than one, so that no single request can eject an instance.
    pub failure_threshold: u32,
    /// First ejection length, milliseconds; doubles with each consecutive ejection.
    #[serde(rename = "eject_base", with = "switchyard_protocol::duration::millis")]
    pub eject_base_ms: u64,
    /// Longest ejection, milliseconds.
    #[serde(rename = "eject_max", with = "switchyard_protocol::duration::millis")]
    pub eject_max_ms: u64,
    /// At most this percentage of a model's instances is passively ejected at once (at least
    /// one may always be), so a correlated failure cannot take the whole pool out. 100 = no
    /// cap: an all-failing pool is fully ejected and fails fast.
    pub max_ejected_percent: u32,
    /// A half-open trial that never reports back frees the trial slot after this long, ms.
    #[serde(
        rename = "trial_timeout",
        with = "switchyard_protocol::duration::millis"
    )]
    pub trial_timeout_ms: u64,
    /// How long a stalled instance stays `degraded` (routed to only when no healthy instance
    /// is left), milliseconds.
    #[serde(rename = "degraded", with = "switchyard_protocol::duration::millis")]
    pub degraded_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 3,
            eject_base_ms: 1_000,
            eject_max_ms: 30_000,
            max_ejected_percent: 50,
            trial_timeout_ms: 10_000,
            degraded_ms: 30_000,
        }
    }
}

impl HealthConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.failure_threshold == 0 {
            return Err("health.failure_threshold must be at least 1".into());
        }
        if self.eject_base_ms == 0 || self.eject_max_ms < self.eject_base_ms {
            return Err("health.eject_base must be > 0 and <= health.eject_max".into());
        }
        if self.max_ejected_percent > 100 {
            return Err("health.max_ejected_percent must be between 0 and 100".into());
        }
        if self.trial_timeout_ms == 0 {
            return Err("health.trial_timeout must be greater than 0".into());
        }
        Ok(())
    }

    fn ejection(&self, ejections: u32) -> Duration {
        let factor = 1u64 << ejections.saturating_sub(1).min(30);
        Duration::from_millis(
            self.eject_base_ms
                .saturating_mul(factor)
                .min(self.eject_max_ms),
        )
    }
}

/// What `/admin/instances` and the metrics report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Healthy,
    /// Serving, but it stalled recently: used only when no healthy instance is left.
    Degraded,
    /// Passively ejected until a deadline (breaker open).
    Ejected,
    /// The ejection expired: one trial request decides (breaker half-open).
    HalfOpen,
    /// The active `GET /health` probe failed.
    ProbeFailed,
    /// The idle canary generation failed.
    CanaryFailed,
}

/// The verdict of one active check with hysteresis: `unhealthy` consecutive failures mark it
/// failed, `healthy` consecutive successes bring it back.
#[derive(Debug)]
struct ActiveCheck {
    ok: AtomicBool,
    failures: AtomicU32,
    successes: AtomicU32,
}

impl Default for ActiveCheck {
    fn default() -> Self {
        Self {
            ok: AtomicBool::new(true),
            failures: AtomicU32::new(0),
            successes: AtomicU32::new(0),
        }
    }
}

impl ActiveCheck {
    /// Records one check; returns the verdict after it.
    fn record(&self, ok: bool, unhealthy: u32, healthy: u32) -> bool {
        if ok {
            self.failures.store(0, Ordering::Relaxed);
            let n = self.successes.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= healthy.max(1) {
                self.ok.store(true, Ordering::Relaxed);
            }
        } else {
            self.successes.store(0, Ordering::Relaxed);
            let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= unhealthy.max(1) {
                self.ok.store(false, Ordering::Relaxed);
            }
        }
        self.ok.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct HealthState {
    probe: ActiveCheck,
    canary: ActiveCheck,
    ejected_until_ns: AtomicU64,
    consecutive_failures: AtomicU32,
    ejections: AtomicU32,
    /// The request (a non-zero key) whose failure was counted last: a request failing here
    /// again (a continuation after a retry) is not a second, independent failure.
    last_failed_request: AtomicU64,
    /// Set by an ejection, cleared by a success: once the ejection expires, the breaker is
    /// half-open.
    half_open: AtomicBool,
    /// While `now` is before this, a half-open trial is in flight.
    trial_until_ns: AtomicU64,
    degraded_until_ns: AtomicU64,
    /// When a request last finished its attempt here (the canary's idleness clock).
    last_used_ns: AtomicU64,
}

impl HealthState {
    pub fn status(&self, now_ns: u64) -> HealthStatus {
        if !self.probe.ok.load(Ordering::Relaxed) {
            HealthStatus::ProbeFailed
        } else if !self.canary.ok.load(Ordering::Relaxed) {
            HealthStatus::CanaryFailed
        } else if now_ns < self.ejected_until_ns.load(Ordering::Relaxed) {
            HealthStatus::Ejected
        } else if self.half_open.load(Ordering::Relaxed) {
            HealthStatus::HalfOpen
        } else if now_ns < self.degraded_until_ns.load(Ordering::Relaxed) {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        }
    }

    /// May be offered a request: healthy, degraded, or half-open with the trial slot free.
    pub fn is_routable(&self, now_ns: u64) -> bool {
        match self.status(now_ns) {
            HealthStatus::Healthy | HealthStatus::Degraded => true,
            HealthStatus::HalfOpen => now_ns >= self.trial_until_ns.load(Ordering::Relaxed),
            _ => false,
        }
    }

    /// Claims the right to send one request now. Always true for a closed breaker; for a
    /// half-open one only the first caller wins (the trial), until it reports back or
    /// `trial_timeout_ms` passes.
    pub fn try_claim(&self, now_ns: u64, config: &HealthConfig) -> bool {
        match self.status(now_ns) {
            HealthStatus::Healthy | HealthStatus::Degraded => true,
            HealthStatus::HalfOpen => {
                let until = self.trial_until_ns.load(Ordering::Relaxed);
                if now_ns < until {
                    return false;
                }
                let deadline =
                    now_ns.saturating_add(config.trial_timeout_ms.saturating_mul(1_000_000));
                self.trial_until_ns
                    .compare_exchange(until, deadline, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            }
            _ => false,
        }
    }

    /// The instance answered: closes the breaker. Stores only what changed, so the common
    /// path (already healthy) writes one word.
    pub fn record_success(&self, now_ns: u64) {
        self.last_used_ns.store(now_ns, Ordering::Relaxed);
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
        if self.ejections.load(Ordering::Relaxed) != 0 {
            self.ejections.store(0, Ordering::Relaxed);
        }
        if self.last_failed_request.load(Ordering::Relaxed) != 0 {
            self.last_failed_request.store(0, Ordering::Relaxed);
        }
        if self.half_open.load(Ordering::Relaxed) {
            self.half_open.store(false, Ordering::Relaxed);
            self.trial_until_ns.store(0, Ordering::Relaxed);
        }
    }

    /// Records a failure; returns true if it ejected the instance. `may_eject` is false when
    /// the pool's max ejected fraction is reached (the failure still counts). A failure while
    /// half-open (the trial, or a request that raced it) re-opens the breaker at once.
    pub fn record_failure(&self, now_ns: u64, config: &HealthConfig, may_eject: bool) -> bool {
        self.record_request_failure(now_ns, config, may_eject, 0)
    }

    /// [`Self::record_failure`] for the request with key `request` (non-zero; 0 = unknown,
    /// always counted). Consecutive failures count only from distinct requests: a request
    /// that fails here twice in a row counts once.
    pub fn record_request_failure(
        &self,
        now_ns: u64,
        config: &HealthConfig,
        may_eject: bool,
        request: u64,
    ) -> bool {
        self.last_used_ns.store(now_ns, Ordering::Relaxed);
        if request != 0 && self.last_failed_request.swap(request, Ordering::Relaxed) == request {
            return false;
        }
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        let reopen = self.half_open.load(Ordering::Relaxed);
        if !reopen && (failures < config.failure_threshold || !may_eject) {
            return false;
        }
        self.consecutive_failures.store(0, Ordering::Relaxed);
        let ejections = self.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let until = now_ns.saturating_add(
            u64::try_from(config.ejection(ejections).as_nanos()).unwrap_or(u64::MAX),
        );
        self.ejected_until_ns.fetch_max(until, Ordering::Relaxed);
        self.half_open.store(true, Ordering::Relaxed);
        self.trial_until_ns.store(0, Ordering::Relaxed);
        true
    }

    /// Counts toward the max ejected fraction: ejected, or half-open (not yet proven).
    pub fn is_passively_ejected(&self, now_ns: u64) -> bool {
        now_ns < self.ejected_until_ns.load(Ordering::Relaxed)
            || self.half_open.load(Ordering::Relaxed)
    }

    /// Marks the instance degraded (it stalled a stream) for `degraded_ms`.
    pub fn mark_degraded(&self, now_ns: u64, config: &HealthConfig) {
        let until = now_ns.saturating_add(config.degraded_ms.saturating_mul(1_000_000));
        self.degraded_until_ns.fetch_max(until, Ordering::Relaxed);
    }

    /// Sets the probe verdict directly (thresholds of one in both directions).
    pub fn set_probe_ok(&self, ok: bool) {
        self.probe.record(ok, 1, 1);
    }

    /// Records one `GET /health` probe; returns the verdict after it.
    pub fn record_probe(&self, ok: bool, unhealthy: u32, healthy: u32) -> bool {
        self.probe.record(ok, unhealthy, healthy)
    }

    /// Records one canary generation; returns the verdict after it.
    pub fn record_canary(&self, ok: bool, unhealthy: u32, healthy: u32) -> bool {
        self.canary.record(ok, unhealthy, healthy)
    }

    pub fn canary_ok(&self) -> bool {
        self.canary.ok.load(Ordering::Relaxed)
    }

    /// Nanoseconds since a request last finished an attempt here (or since start).
    pub fn idle_ns(&self, now_ns: u64) -> u64 {
        now_ns.saturating_sub(self.last_used_ns.load(Ordering::Relaxed))
    }

    /// Resets the idleness clock (the canary counts as traffic).
    pub fn touch(&self, now_ns: u64) {
        self.last_used_ns.store(now_ns, Ordering::Relaxed);
    }

    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

//! Per-instance passive health state (lock-free).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Passive-ejection settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Consecutive failures (connection errors, 5xx) that eject an instance.
    pub failure_threshold: u32,
    /// First ejection length, milliseconds; doubles with each consecutive ejection.
    pub eject_base_ms: u64,
    /// Longest ejection, milliseconds.
    pub eject_max_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 1,
            eject_base_ms: 1_000,
            eject_max_ms: 30_000,
        }
    }
}

impl HealthConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.failure_threshold == 0 {
            return Err("health.failure_threshold must be at least 1".into());
        }
        if self.eject_base_ms == 0 || self.eject_max_ms < self.eject_base_ms {
            return Err("health.eject_base_ms must be > 0 and <= health.eject_max_ms".into());
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
    /// Passively ejected until a deadline.
    Ejected,
    /// The active probe failed.
    ProbeFailed,
}

#[derive(Debug)]
pub struct HealthState {
    probe_ok: AtomicBool,
    ejected_until_ns: AtomicU64,
    consecutive_failures: AtomicU32,
    ejections: AtomicU32,
}

impl Default for HealthState {
    fn default() -> Self {
        Self {
            probe_ok: AtomicBool::new(true),
            ejected_until_ns: AtomicU64::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
        }
    }
}

impl HealthState {
    pub fn status(&self, now_ns: u64) -> HealthStatus {
        if !self.probe_ok.load(Ordering::Relaxed) {
            HealthStatus::ProbeFailed
        } else if now_ns < self.ejected_until_ns.load(Ordering::Relaxed) {
            HealthStatus::Ejected
        } else {
            HealthStatus::Healthy
        }
    }

    pub fn is_routable(&self, now_ns: u64) -> bool {
        self.status(now_ns) == HealthStatus::Healthy
    }

    pub fn record_success(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.ejections.store(0, Ordering::Relaxed);
    }

    /// Records a failure; returns true if it ejected the instance.
    pub fn record_failure(&self, now_ns: u64, config: &HealthConfig) -> bool {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < config.failure_threshold {
            return false;
        }
        self.consecutive_failures.store(0, Ordering::Relaxed);
        let ejections = self.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let until = now_ns.saturating_add(
            u64::try_from(config.ejection(ejections).as_nanos()).unwrap_or(u64::MAX),
        );
        self.ejected_until_ns.fetch_max(until, Ordering::Relaxed);
        true
    }

    pub fn set_probe_ok(&self, ok: bool) {
        self.probe_ok.store(ok, Ordering::Relaxed);
    }

    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn ejection_grows_exponentially_and_is_capped() {
        let cfg = HealthConfig {
            failure_threshold: 1,
            eject_base_ms: 100,
            eject_max_ms: 350,
        };
        let h = HealthState::default();
        assert!(h.record_failure(0, &cfg));
        assert!(!h.is_routable(99 * MS));
        assert!(h.is_routable(100 * MS));
        assert!(h.record_failure(100 * MS, &cfg)); // 2nd: 200 ms
        assert!(!h.is_routable(299 * MS));
        assert!(h.is_routable(300 * MS));
        h.record_failure(300 * MS, &cfg); // 3rd: 400 ms capped to 350
        assert!(!h.is_routable(649 * MS));
        assert!(h.is_routable(650 * MS));
    }

    #[test]
    fn success_resets_the_ejection_count() {
        let cfg = HealthConfig {
            eject_base_ms: 100,
            ..HealthConfig::default()
        };
        let h = HealthState::default();
        h.record_failure(0, &cfg);
        h.record_failure(100 * MS, &cfg);
        h.record_success();
        assert_eq!(h.ejections(), 0);
        h.record_failure(1000 * MS, &cfg);
        assert!(h.is_routable(1100 * MS), "back to the base ejection length");
    }

    #[test]
    fn threshold_counts_consecutive_failures() {
        let cfg = HealthConfig {
            failure_threshold: 3,
            ..HealthConfig::default()
        };
        let h = HealthState::default();
        assert!(!h.record_failure(0, &cfg));
        assert!(!h.record_failure(0, &cfg));
        h.record_success();
        assert!(!h.record_failure(0, &cfg));
        assert!(!h.record_failure(0, &cfg));
        assert!(h.record_failure(0, &cfg));
        assert_eq!(h.status(1), HealthStatus::Ejected);
    }

    #[test]
    fn failed_probe_overrides() {
        let h = HealthState::default();
        h.set_probe_ok(false);
        assert_eq!(h.status(0), HealthStatus::ProbeFailed);
        h.set_probe_ok(true);
        assert!(h.is_routable(0));
    }
}

//! The quarantine state machine: a plugin that faults `fault_threshold` times in a row is
//! quarantined (not called; the caller applies its failure policy) for a backoff that
//! doubles with each consecutive quarantine, up to `max_backoff`. When the backoff expires
//! one trial call is let through (probation): success reinstates the plugin and resets the
//! backoff; a fault quarantines it again for twice as long.
//!
//! Time is passed in (`now`), never read, so the frontend drives it with its clock and tests
//! with made-up instants. Not thread-safe by itself: keep it behind a mutex per plugin.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::limits::duration_str;

/// When to quarantine and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct QuarantinePolicy {
    /// Consecutive faults that trigger a quarantine.
    pub fault_threshold: u32,
    /// First quarantine duration.
    #[serde(with = "duration_str")]
    pub initial_backoff: Duration,
    /// Longest quarantine duration.
    #[serde(with = "duration_str")]
    pub max_backoff: Duration,
}

impl Default for QuarantinePolicy {
    fn default() -> Self {
        Self {
            fault_threshold: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// Where the plugin stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuarantineState {
    /// Called normally.
    Active,
    /// Not called until `until`.
    Quarantined {
        /// When the trial call becomes allowed.
        until: Instant,
        /// How many quarantines in a row (1 for the first).
        strikes: u32,
    },
    /// Backoff expired; one trial call decides what happens next.
    Probation {
        /// Whether the trial call has been handed out and not reported yet.
        trial_in_flight: bool,
        /// Quarantines in a row so far.
        strikes: u32,
    },
}

/// Per-plugin fault tracker. See the module docs.
#[derive(Debug, Clone)]
pub struct Quarantine {
    policy: QuarantinePolicy,
    consecutive_faults: u32,
    state: QuarantineState,
}

impl Quarantine {
    /// Starts `Active` with no faults.
    pub fn new(policy: QuarantinePolicy) -> Self {
        Self {
            policy,
            consecutive_faults: 0,
            state: QuarantineState::Active,
        }
    }

    /// Current state.
    pub fn state(&self) -> QuarantineState {
        self.state
    }

    /// Asks whether the plugin may be called now. In probation, exactly one caller gets
    /// `true` until it reports back with [`Self::record_success`] or [`Self::record_fault`].
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            QuarantineState::Active => true,
            QuarantineState::Quarantined { until, strikes } => {
                if now >= until {
                    self.state = QuarantineState::Probation {
                        trial_in_flight: true,
                        strikes,
                    };
                    true
                } else {
                    false
                }
            }
            QuarantineState::Probation {
                trial_in_flight: true,
                ..
            } => false,
            QuarantineState::Probation {
                trial_in_flight: false,
                strikes,
            } => {
                self.state = QuarantineState::Probation {
                    trial_in_flight: true,
                    strikes,
                };
                true
            }
        }
    }

    /// Reports a successful call: clears the fault streak and ends any probation.
    pub fn record_success(&mut self) {
        self.consecutive_faults = 0;
        if matches!(self.state, QuarantineState::Probation { .. }) {
            self.state = QuarantineState::Active;
        }
    }

    /// Reports a plugin fault. Returns `true` when this fault (re)quarantined the plugin.
    pub fn record_fault(&mut self, now: Instant) -> bool {
        self.consecutive_faults = self.consecutive_faults.saturating_add(1);
        match self.state {
            QuarantineState::Active
                if self.consecutive_faults >= self.policy.fault_threshold.max(1) =>
            {
                self.quarantine(now, 1);
                true
            }
            QuarantineState::Probation { strikes, .. } => {
                self.quarantine(now, strikes.saturating_add(1));
                true
            }
            // Already quarantined (a call that started before) or below the threshold.
            _ => false,
        }
    }

    /// Backoff for the `strikes`-th consecutive quarantine: initial * 2^(strikes-1), capped.
    pub fn backoff(&self, strikes: u32) -> Duration {
        let doublings = strikes.saturating_sub(1).min(32);
        self.policy
            .initial_backoff
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.policy.max_backoff)
    }

    fn quarantine(&mut self, now: Instant, strikes: u32) {
        let until = now + self.backoff(strikes);
        self.state = QuarantineState::Quarantined { until, strikes };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> QuarantinePolicy {
        QuarantinePolicy {
            fault_threshold: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
        }
    }

    #[test]
    fn quarantines_after_threshold_consecutive_faults_only() {
        let t0 = Instant::now();
        let mut q = Quarantine::new(policy());
        assert!(!q.record_fault(t0));
        assert!(!q.record_fault(t0));
        q.record_success(); // breaks the streak
        assert!(!q.record_fault(t0));
        assert!(!q.record_fault(t0));
        assert!(q.allow(t0));
        assert!(q.record_fault(t0), "third fault in a row quarantines");
        assert_eq!(
            q.state(),
            QuarantineState::Quarantined {
                until: t0 + Duration::from_secs(1),
                strikes: 1
            }
        );
        assert!(!q.allow(t0 + Duration::from_millis(999)));
    }

    #[test]
    fn probation_lets_one_trial_through_and_success_reinstates() {
        let t0 = Instant::now();
        let mut q = Quarantine::new(policy());
        for _ in 0..3 {
            q.record_fault(t0);
        }
        let later = t0 + Duration::from_secs(1);
        assert!(q.allow(later), "backoff expired: trial allowed");
        assert!(!q.allow(later), "only one trial at a time");
        q.record_success();
        assert_eq!(q.state(), QuarantineState::Active);
        assert!(q.allow(later));
    }

    #[test]
    fn failed_trials_double_the_backoff_up_to_the_cap() {
        let mut now = Instant::now();
        let mut q = Quarantine::new(policy());
        for _ in 0..3 {
            q.record_fault(now);
        }
        let mut expected = [1u64, 2, 4, 5, 5].into_iter().map(Duration::from_secs);
        let mut backoff = expected.next().unwrap();
        for next in expected {
            now += backoff;
            assert!(q.allow(now));
            assert!(q.record_fault(now), "a failed trial re-quarantines at once");
            match q.state() {
                QuarantineState::Quarantined { until, .. } => assert_eq!(until, now + next),
                other => panic!("expected quarantine, got {other:?}"),
            }
            backoff = next;
        }
        // Recovery resets the backoff: the next quarantine starts from the initial one again.
        now += backoff;
        assert!(q.allow(now));
        q.record_success();
        for _ in 0..3 {
            q.record_fault(now);
        }
        assert_eq!(
            q.state(),
            QuarantineState::Quarantined {
                until: now + Duration::from_secs(1),
                strikes: 1
            }
        );
    }

    #[test]
    fn faults_from_calls_already_in_flight_do_not_extend_a_quarantine() {
        let t0 = Instant::now();
        let mut q = Quarantine::new(policy());
        for _ in 0..3 {
            q.record_fault(t0);
        }
        let before = q.state();
        assert!(!q.record_fault(t0 + Duration::from_millis(10)));
        assert_eq!(q.state(), before);
    }
}

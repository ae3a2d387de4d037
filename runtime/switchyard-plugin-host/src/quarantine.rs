//! The quarantine state machine: a plugin that faults `fault_threshold` times in a row, or
//! whose bad calls reach `fault_rate` of its last `window` calls, is quarantined (not called;
//! the caller applies its failure policy) for a backoff that doubles with each consecutive
//! quarantine, up to `max_backoff`. A bad call is a fault or an *overrun*: a call that
//! succeeded but used more than `slow_fraction` of its decision budget. The rate catches what
//! a streak cannot: a plugin failing 4 calls in 5, or spinning to 99 % of its budget, never
//! faults five times in a row but costs every request it touches. When the backoff expires
//! one trial call is let through (probation): success reinstates the plugin and resets the
//! backoff; a fault quarantines it again for twice as long.
//!
//! Time is passed in (`now`), never read, so the frontend drives it with its clock and tests
//! with made-up instants. Not thread-safe by itself: keep it behind a mutex per plugin.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// When to quarantine and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuarantinePolicy {
    /// Consecutive faults that trigger a quarantine.
    pub fault_threshold: u32,
    /// First quarantine duration.
    #[serde(with = "switchyard_protocol::duration::serde_str")]
    pub initial_backoff: Duration,
    /// Longest quarantine duration.
    #[serde(with = "switchyard_protocol::duration::serde_str")]
    pub max_backoff: Duration,
    /// Fraction of bad calls (faults and overruns) among the last `window` that quarantines.
    pub fault_rate: f64,
    /// Calls the rate is measured over (1–64); no rate verdict before that many calls.
    pub window: u32,
    /// A successful call slower than this fraction of its decision budget is an overrun.
    pub slow_fraction: f64,
}

/// Longest rate window: the history is one bit per call in a `u64`.
pub const MAX_WINDOW: u32 = 64;

impl QuarantinePolicy {
    /// Why the policy is unusable, if it is.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_WINDOW).contains(&self.window) {
            return Err(format!("window must be 1–{MAX_WINDOW} calls"));
        }
        if !(self.fault_rate > 0.0 && self.fault_rate <= 1.0) {
            return Err("fault_rate must be in (0, 1]".into());
        }
        if !(self.slow_fraction > 0.0 && self.slow_fraction <= 1.0) {
            return Err("slow_fraction must be in (0, 1]".into());
        }
        if self.initial_backoff > self.max_backoff {
            return Err("initial_backoff must not exceed max_backoff".into());
        }
        Ok(())
    }
}

impl Default for QuarantinePolicy {
    fn default() -> Self {
        Self {
            fault_threshold: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            fault_rate: 0.5,
            window: 20,
            slow_fraction: 0.9,
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
    /// One bit per call since the last quarantine or reinstatement, newest in bit 0: 1 = bad.
    history: u64,
    /// Calls recorded in `history` (saturates at the window).
    calls: u32,
    state: QuarantineState,
}

impl Quarantine {
    /// Starts `Active` with no faults.
    pub fn new(policy: QuarantinePolicy) -> Self {
        Self {
            policy,
            consecutive_faults: 0,
            history: 0,
            calls: 0,
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
            self.reinstate();
        } else {
            self.push(false);
        }
    }

    /// Reports a successful call that took `took` of a `budget`: an overrun (slower than
    /// `slow_fraction` of it) counts against the fault rate, but does not extend a fault
    /// streak nor fail a probation trial (its answer was used). Returns `true` when it
    /// quarantined the plugin.
    pub fn record_completed(&mut self, now: Instant, took: Duration, budget: Duration) -> bool {
        if took.as_secs_f64() <= budget.as_secs_f64() * self.policy.slow_fraction
            || matches!(self.state, QuarantineState::Probation { .. })
        {
            self.record_success();
            return false;
        }
        self.consecutive_faults = 0;
        self.push(true);
        if matches!(self.state, QuarantineState::Active) && self.rate_exceeded() {
            self.quarantine(now, 1);
            return true;
        }
        false
    }

    /// Reports a plugin fault. Returns `true` when this fault (re)quarantined the plugin.
    pub fn record_fault(&mut self, now: Instant) -> bool {
        self.consecutive_faults = self.consecutive_faults.saturating_add(1);
        if matches!(self.state, QuarantineState::Active) {
            self.push(true);
        }
        match self.state {
            QuarantineState::Active
                if self.consecutive_faults >= self.policy.fault_threshold.max(1)
                    || self.rate_exceeded() =>
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
        self.history = 0;
        self.calls = 0;
    }

    fn reinstate(&mut self) {
        self.state = QuarantineState::Active;
        self.history = 0;
        self.calls = 0;
    }

    fn window(&self) -> u32 {
        self.policy.window.clamp(1, MAX_WINDOW)
    }

    fn push(&mut self, bad: bool) {
        self.history = (self.history << 1) | u64::from(bad);
        self.calls = self.calls.saturating_add(1).min(self.window());
    }

    /// Whether the last `window` calls (all of them recorded) hold `fault_rate` bad ones.
    fn rate_exceeded(&self) -> bool {
        let window = self.window();
        if self.calls < window {
            return false;
        }
        let mask = if window == 64 {
            u64::MAX
        } else {
            (1u64 << window) - 1
        };
        let bad = (self.history & mask).count_ones();
        f64::from(bad) >= self.policy.fault_rate * f64::from(window)
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
            ..QuarantinePolicy::default()
        }
    }

    const BUDGET: Duration = Duration::from_millis(10);

    #[test]
    fn four_faults_in_five_calls_quarantine_without_a_streak() {
        let t0 = Instant::now();
        let mut q = Quarantine::new(QuarantinePolicy::default());
        let mut quarantined_at = None;
        for call in 0..40 {
            assert!(q.allow(t0), "call {call} refused before any quarantine");
            // Every fifth call succeeds, so the streak never passes 4 (< threshold 5).
            let hit = if call % 5 == 4 {
                q.record_success();
                false
            } else {
                q.record_fault(t0)
            };
            if hit {
                quarantined_at = Some(call);
                break;
            }
        }
        // Window 20 at rate 0.5: the rate is judged on faults once 20 calls are recorded; the
        // 20th (index 19) succeeded, so the fault at index 20 sees 16 bad calls of the last 20.
        assert_eq!(quarantined_at, Some(20));
        assert!(matches!(q.state(), QuarantineState::Quarantined { .. }));
    }

    #[test]
    fn calls_spinning_near_the_budget_quarantine() {
        let t0 = Instant::now();
        let mut q = Quarantine::new(QuarantinePolicy::default());
        let slow = BUDGET.mul_f64(0.99);
        let quarantined = (0..20)
            .map(|_| q.record_completed(t0, slow, BUDGET))
            .collect::<Vec<_>>();
        assert_eq!(quarantined.iter().filter(|&&q| q).count(), 1);
        assert_eq!(
            quarantined.last(),
            Some(&true),
            "after a full window of overruns"
        );
    }

    #[test]
    fn a_healthy_mix_is_never_quarantined() {
        let t0 = Instant::now();
        let mut q = Quarantine::new(QuarantinePolicy::default());
        for call in 0..1000 {
            // One fault and one overrun in every ten calls: 20 %, under the 50 % rate.
            let hit = match call % 10 {
                0 => q.record_fault(t0),
                1 => q.record_completed(t0, BUDGET, BUDGET),
                _ => q.record_completed(t0, BUDGET / 4, BUDGET),
            };
            assert!(!hit, "call {call}");
        }
        assert_eq!(q.state(), QuarantineState::Active);
    }

    #[test]
    fn policies_are_validated() {
        assert!(QuarantinePolicy::default().validate().is_ok());
        for bad in [
            QuarantinePolicy {
                window: 0,
                ..Default::default()
            },
            QuarantinePolicy {
                window: 65,
                ..Default::default()
            },
            QuarantinePolicy {
                fault_rate: 0.0,
                ..Default::default()
            },
            QuarantinePolicy {
                fault_rate: f64::NAN,
                ..Default::default()
            },
            QuarantinePolicy {
                slow_fraction: 1.5,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
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

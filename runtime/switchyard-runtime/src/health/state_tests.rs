use super::*;

const MS: u64 = 1_000_000;

/// One failure ejects (the default needs three), to test the breaker on its own.
fn cfg(base: u64, max: u64) -> HealthConfig {
    HealthConfig {
        failure_threshold: 1,
        eject_base_ms: base,
        eject_max_ms: max,
        ..HealthConfig::default()
    }
}

#[test]
fn ejection_grows_exponentially_and_is_capped() {
    let cfg = cfg(100, 350);
    let h = HealthState::default();
    assert!(h.record_failure(0, &cfg, true));
    assert!(!h.is_routable(99 * MS));
    assert!(h.is_routable(100 * MS));
    assert!(h.record_failure(100 * MS, &cfg, true)); // 2nd: 200 ms
    assert!(!h.is_routable(299 * MS));
    assert!(h.is_routable(300 * MS));
    h.record_failure(300 * MS, &cfg, true); // 3rd: 400 ms capped to 350
    assert!(!h.is_routable(649 * MS));
    assert!(h.is_routable(650 * MS));
}

#[test]
fn success_resets_the_ejection_count() {
    let cfg = cfg(100, 30_000);
    let h = HealthState::default();
    h.record_failure(0, &cfg, true);
    h.record_failure(100 * MS, &cfg, true);
    h.record_success(300 * MS);
    assert_eq!(h.ejections(), 0);
    assert_eq!(h.status(300 * MS), HealthStatus::Healthy);
    h.record_failure(1000 * MS, &cfg, true);
    assert!(h.is_routable(1100 * MS), "back to the base ejection length");
}

#[test]
fn threshold_counts_consecutive_failures() {
    let cfg = HealthConfig {
        failure_threshold: 3,
        ..HealthConfig::default()
    };
    let h = HealthState::default();
    assert!(!h.record_failure(0, &cfg, true));
    assert!(!h.record_failure(0, &cfg, true));
    h.record_success(0);
    assert!(!h.record_failure(0, &cfg, true));
    assert!(!h.record_failure(0, &cfg, true));
    assert!(h.record_failure(0, &cfg, true));
    assert_eq!(h.status(1), HealthStatus::Ejected);
}

#[test]
fn a_capped_pool_counts_the_failure_but_does_not_eject() {
    let h = HealthState::default();
    let cfg = cfg(1_000, 1_000);
    assert!(!h.record_failure(0, &cfg, false));
    assert_eq!(h.status(1), HealthStatus::Healthy);
    // Once ejection is allowed again, the next failure ejects.
    assert!(h.record_failure(2, &cfg, true));
}

#[test]
fn the_defaults_need_three_failures_and_cap_ejection_at_half_the_pool() {
    let defaults = HealthConfig::default();
    assert_eq!(
        (defaults.failure_threshold, defaults.max_ejected_percent),
        (3, 50)
    );
    let h = HealthState::default();
    assert!(!h.record_failure(0, &defaults, true));
    assert!(!h.record_failure(0, &defaults, true));
    assert!(h.record_failure(0, &defaults, true));
}

#[test]
fn only_failures_of_distinct_requests_add_up() {
    let cfg = HealthConfig {
        failure_threshold: 2,
        ..HealthConfig::default()
    };
    let h = HealthState::default();
    // The same request failing here again (a retry or a continuation) counts once.
    assert!(!h.record_request_failure(0, &cfg, true, 7));
    assert!(!h.record_request_failure(0, &cfg, true, 7));
    assert!(!h.record_request_failure(0, &cfg, true, 7));
    assert_eq!(h.status(1), HealthStatus::Healthy);
    assert!(h.record_request_failure(0, &cfg, true, 8));
    assert_eq!(h.status(1), HealthStatus::Ejected);
    // A success forgets the last failed request.
    let h = HealthState::default();
    assert!(!h.record_request_failure(0, &cfg, true, 7));
    h.record_success(0);
    assert!(!h.record_request_failure(0, &cfg, true, 7));
    assert!(h.record_request_failure(0, &cfg, true, 9));
}

#[test]
fn half_open_lets_exactly_one_trial_through() {
    let cfg = cfg(100, 1_000);
    let h = HealthState::default();
    h.record_failure(0, &cfg, true);
    assert!(!h.try_claim(50 * MS, &cfg), "open: nothing passes");
    assert_eq!(h.status(100 * MS), HealthStatus::HalfOpen);
    assert!(h.try_claim(100 * MS, &cfg), "the trial");
    assert!(
        !h.try_claim(101 * MS, &cfg),
        "a second request while the trial runs"
    );
    assert!(!h.is_routable(101 * MS));
    h.record_success(120 * MS);
    assert_eq!(h.status(120 * MS), HealthStatus::Healthy);
    assert!(h.try_claim(121 * MS, &cfg) && h.try_claim(121 * MS, &cfg));
}

#[test]
fn a_failed_trial_reopens_with_a_longer_ejection() {
    let cfg = cfg(100, 1_000);
    let h = HealthState::default();
    h.record_failure(0, &cfg, true);
    assert!(h.try_claim(100 * MS, &cfg));
    // The threshold does not apply to a trial, nor does the ejected-fraction cap.
    assert!(h.record_failure(110 * MS, &cfg, false));
    assert_eq!(h.status(309 * MS), HealthStatus::Ejected, "200 ms now");
    assert_eq!(h.status(310 * MS), HealthStatus::HalfOpen);
}

#[test]
fn a_trial_that_never_reports_frees_the_slot_after_the_timeout() {
    let cfg = HealthConfig {
        trial_timeout_ms: 50,
        ..cfg(100, 1_000)
    };
    let h = HealthState::default();
    h.record_failure(0, &cfg, true);
    assert!(h.try_claim(100 * MS, &cfg));
    assert!(!h.try_claim(149 * MS, &cfg));
    assert!(h.try_claim(150 * MS, &cfg));
}

#[test]
fn degraded_is_routable_and_expires() {
    let cfg = HealthConfig {
        degraded_ms: 10,
        ..HealthConfig::default()
    };
    let h = HealthState::default();
    h.mark_degraded(0, &cfg);
    assert_eq!(h.status(5 * MS), HealthStatus::Degraded);
    assert!(h.is_routable(5 * MS));
    assert_eq!(h.status(10 * MS), HealthStatus::Healthy);
}

#[test]
fn active_checks_use_thresholds_both_ways() {
    let h = HealthState::default();
    assert!(
        h.record_canary(false, 2, 3),
        "one failure is below the threshold"
    );
    assert!(!h.record_canary(false, 2, 3));
    assert_eq!(h.status(0), HealthStatus::CanaryFailed);
    assert!(!h.record_canary(true, 2, 3));
    assert!(!h.record_canary(true, 2, 3));
    assert!(h.record_canary(true, 2, 3), "third success brings it back");
    h.set_probe_ok(false);
    assert_eq!(h.status(0), HealthStatus::ProbeFailed);
    h.set_probe_ok(true);
    assert!(h.is_routable(0));
}

#[test]
fn idleness_is_measured_from_the_last_outcome() {
    let h = HealthState::default();
    h.record_success(5 * MS);
    assert_eq!(h.idle_ns(8 * MS), 3 * MS);
    h.touch(10 * MS);
    assert_eq!(h.idle_ns(10 * MS), 0);
}

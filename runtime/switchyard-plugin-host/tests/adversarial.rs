//! The adversarial plugins in plugins/rust/testing each end in the right typed error, within
//! their limits, and never take the host down with them.
#![allow(clippy::unwrap_used)] // Test helpers outside #[test] fns may unwrap too.

mod common;

use std::time::{Duration, Instant};

use common::{candidate, host, load, load_with, request};
use switchyard_plugin_host::{Error, PluginLimits};

fn three() -> [switchyard_plugin_host::Candidate; 3] {
    [candidate(0, 0, 0), candidate(1, 0, 0), candidate(2, 0, 0)]
}

#[test]
fn infinite_loop_is_stopped_by_the_epoch_deadline() {
    let budget = Duration::from_millis(20);
    let limits = PluginLimits {
        decision_budget: budget,
        ..PluginLimits::default()
    };
    let plugin = load_with(&host(), "testing-infinite-loop", "{}", limits);
    for _ in 0..2 {
        let started = Instant::now();
        let outcome = plugin.pick(&request(1), &three());
        let took = started.elapsed();
        assert!(
            matches!(outcome, Err(Error::Timeout { budget: b }) if b == budget),
            "{outcome:?}"
        );
        assert!(took >= budget, "stopped before its budget: {took:?}");
        assert!(
            took < Duration::from_millis(500),
            "deadline not enforced promptly: {took:?}"
        );
    }
    let stats = plugin.stats();
    assert_eq!((stats.faults, stats.discarded), (2, 2), "{stats:?}");
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    let limits = PluginLimits {
        memory_bytes: 16 << 20,
        ..common::relaxed_limits()
    };
    let plugin = load_with(&host(), "testing-memory-bomb", "{}", limits);
    let outcome = plugin.score(&request(1), &three());
    assert!(
        matches!(outcome, Err(Error::MemoryLimit { limit_bytes }) if limit_bytes == 16 << 20),
        "{outcome:?}"
    );
    assert!(outcome.unwrap_err().is_plugin_fault());
}

#[test]
fn deep_recursion_is_a_stack_overflow_trap() {
    let plugin = load(&host(), "testing-deep-recursion", "{}");
    let outcome = plugin.score(&request(1), &three());
    assert!(
        matches!(&outcome, Err(Error::Trap(m)) if m.contains("call stack exhausted")),
        "{outcome:?}"
    );
}

#[test]
fn wrong_length_output_is_rejected_and_the_instance_kept() {
    let plugin = load(&host(), "testing-wrong-length", "{}");
    let outcome = plugin.score(&request(1), &three());
    assert!(
        matches!(&outcome, Err(Error::InvalidOutput(m)) if m.contains("4 scores for 3")),
        "{outcome:?}"
    );
    // Returning garbage is not a trap: the instance stays usable and is not thrown away.
    assert_eq!(plugin.stats().discarded, 0);
    assert_eq!(plugin.stats().faults, 1);
}

#[test]
fn nan_scores_are_rejected() {
    let plugin = load(&host(), "testing-nan-scores", "{}");
    let outcome = plugin.score(&request(1), &three());
    assert!(
        matches!(&outcome, Err(Error::InvalidOutput(m)) if m.contains("non-finite")),
        "{outcome:?}"
    );
}

#[test]
fn a_trapped_instance_is_replaced_and_the_next_call_works() {
    let plugin = load(&host(), "testing-trap", "{}");
    assert_eq!(plugin.pick(&request(1), &three()).unwrap(), vec![0, 1, 2]);
    let outcome = plugin.pick(&request(13), &three());
    assert!(matches!(&outcome, Err(Error::Trap(_))), "{outcome:?}");
    assert_eq!(
        plugin.idle_instances(),
        0,
        "the trapped instance was not returned to the pool"
    );
    assert_eq!(plugin.pick(&request(1), &three()).unwrap(), vec![0, 1, 2]);
    let stats = plugin.stats();
    assert_eq!(
        (stats.instantiations, stats.discarded, stats.faults),
        (2, 1, 1),
        "{stats:?}"
    );
}

//! Ranking for an adapter request: residency as a cost term beside load.
//!
//! ```text
//! cost(instance) = outstanding / weight + (adapter resident ? 0 : MISS_COST)
//! ```
//!
//! `outstanding` is the load term the `least-loaded` and `p2c` policies use (the engine's
//! running + waiting at its last report, moved by this frontend's own traffic since). A miss
//! costs as much as [`MISS_COST`] queued requests — the adapter must be loaded or swapped
//! into a slot first — so a resident instance wins among equals, but one with a queue
//! longer than that loses to an idle instance that can load the adapter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::live::Instance;

/// The cost of a non-resident adapter, in queued-request equivalents.
pub const MISS_COST: f32 = 4.0;

/// Rotates the scan start so that ties spread across instances.
static ROTATE: AtomicUsize = AtomicUsize::new(0);

/// The cost of sending a request for `adapter` to `instance`.
pub fn cost(instance: &Instance, adapter: &str) -> f32 {
    let weight = if instance.spec.weight > 0.0 {
        instance.spec.weight
    } else {
        1.0
    };
    let load = instance.load.outstanding() as f32 / weight;
    if instance.adapters.is_resident(adapter) {
        load
    } else {
        load + MISS_COST
    }
}

/// Indices into `candidates`, cheapest first, at most `want` (at least 1 when non-empty).
pub fn rank(adapter: &str, candidates: &[&Arc<Instance>], want: usize) -> Vec<usize> {
    let n = candidates.len();
    if n == 0 {
        return Vec::new();
    }
    let start = ROTATE.fetch_add(1, Ordering::Relaxed) % n;
    let mut scored: Vec<(f32, usize)> = (0..n)
        .map(|k| (start + k) % n)
        .map(|i| (cost(candidates[i], adapter), i))
        .collect();
    // Stable: among equal costs the rotated scan order stands.
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    scored.truncate(want.clamp(1, n));
    scored.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{EngineReport, ReportSource};
    use crate::policy::testing::{instances, refs};

    fn queue(instance: &Instance, waiting: f64) {
        let report = EngineReport {
            running: Some(0.0),
            waiting: Some(waiting),
            ..EngineReport::default()
        };
        instance
            .load
            .record_report(ReportSource::Scrape, &report, 1);
    }

    #[test]
    fn the_resident_instance_wins_among_equals() {
        let inst = instances(3);
        inst[2].adapters.touch("sql", 1);
        for _ in 0..5 {
            assert_eq!(rank("sql", &refs(&inst), 3)[0], 2);
        }
        assert_eq!(cost(&inst[2], "sql") + MISS_COST, cost(&inst[0], "sql"));
    }

    #[test]
    fn a_resident_instance_with_a_long_queue_loses_to_an_idle_one() {
        let inst = instances(2);
        inst[0].adapters.touch("sql", 1);
        queue(&inst[0], 10.0);
        assert_eq!(rank("sql", &refs(&inst), 2), vec![1, 0]);
        // A short queue does not outweigh the miss.
        queue(&inst[0], 2.0);
        assert_eq!(rank("sql", &refs(&inst), 2), vec![0, 1]);
    }
}

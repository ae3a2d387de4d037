//! The durations of a plugin version's most recent calls, for the p50/p99 that
//! `GET /admin/plugins` and the console show. The Prometheus histogram's buckets start at
//! 1 ms, far above a typical decision (~1 µs), so it cannot give these.
//!
//! A fixed ring of atomics: recording is one `fetch_add` and one store, no lock; a reader may
//! see a slot mid-update, which only moves a percentile by one sample.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

const SLOTS: usize = 1024;

#[derive(Debug)]
pub struct RecentDurations {
    /// Nanoseconds, saturated at `u32::MAX` (4.3 s, beyond any decision budget).
    slots: Box<[AtomicU32]>,
    next: AtomicUsize,
}

impl Default for RecentDurations {
    fn default() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
            next: AtomicUsize::new(0),
        }
    }
}

impl RecentDurations {
    pub fn record(&self, d: Duration) {
        let ns = u32::try_from(d.as_nanos()).unwrap_or(u32::MAX);
        let slot = self.next.fetch_add(1, Relaxed) % SLOTS;
        self.slots[slot].store(ns, Relaxed);
    }

    /// `(p50, p99)` in microseconds over the recent calls; `None` before the first.
    pub fn percentiles_us(&self) -> Option<(f64, f64)> {
        let filled = self.next.load(Relaxed).min(SLOTS);
        if filled == 0 {
            return None;
        }
        let mut ns: Vec<u32> = self.slots[..filled]
            .iter()
            .map(|s| s.load(Relaxed))
            .collect();
        ns.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * filled as f64).ceil() as usize).clamp(1, filled) - 1;
            f64::from(ns[rank]) / 1000.0
        };
        Some((at(0.50), at(0.99)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_the_recent_calls() {
        let r = RecentDurations::default();
        assert_eq!(r.percentiles_us(), None);
        for us in 1..=100 {
            r.record(Duration::from_micros(us));
        }
        assert_eq!(r.percentiles_us(), Some((50.0, 99.0)));
        // Only the newest SLOTS calls count.
        for _ in 0..SLOTS {
            r.record(Duration::from_micros(7));
        }
        assert_eq!(r.percentiles_us(), Some((7.0, 7.0)));
    }
}

//! Capped exponential backoff per object for the controllers' error policy.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// First retry delay after a failed reconcile.
pub const BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const CAP: Duration = Duration::from_secs(300);
/// An entry not failed again for this long is dropped: a failing object is retried (and
/// fails again) within [`CAP`], so a quiet entry belongs to an object that was deleted — the
/// controller never reconciles a deleted object without a finalizer, so nothing else would
/// remove it.
pub const STALE: Duration = Duration::from_secs(2 * 300);

/// Consecutive failures per object key; a success resets the key.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Backoff {
    /// Records a failure of `key` and returns how long to wait before retrying:
    /// 1 s, 2 s, 4 s, … capped at 300 s.
    pub fn failed(&self, key: &str) -> Duration {
        let now = Instant::now();
        let mut failures = self.failures.lock();
        failures.retain(|_, (_, at)| now.duration_since(*at) < STALE);
        let (n, at) = failures.entry(key.to_string()).or_insert((0, now));
        *n = n.saturating_add(1);
        *at = now;
        delay(*n)
    }

    /// Forgets the failures of `key` after a successful reconcile or when it is deleted.
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().remove(key);
    }

    /// Consecutive failures recorded for `key`.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures.lock().get(key).map_or(0, |(n, _)| *n)
    }

    /// Number of keys with recorded failures.
    pub fn len(&self) -> usize {
        self.failures.lock().len()
    }

    /// Whether no key has recorded failures.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Delay after `n` consecutive failures (n ≥ 1).
pub fn delay(n: u32) -> Duration {
    let exp = n.saturating_sub(1).min(20);
    BASE.saturating_mul(1u32 << exp).min(CAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps_and_resets() {
        let b = Backoff::default();
        let delays: Vec<u64> = (0..11).map(|_| b.failed("ns/a").as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.failed("ns/b"), BASE, "keys are independent");
        b.succeeded("ns/a");
        assert_eq!(b.failed("ns/a"), BASE);
        assert_eq!(delay(u32::MAX), CAP);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_of_objects_no_longer_failing_are_dropped() {
        let b = Backoff::default();
        b.failed("gone");
        // A live object keeps failing at the capped delay; the deleted one never comes back.
        for _ in 0..3 {
            tokio::time::sleep(CAP).await;
            b.failed("live");
        }
        assert_eq!(
            b.failures("gone"),
            0,
            "dropped after {STALE:?} without a failure"
        );
        assert_eq!(b.failures("live"), 3, "a key failing every CAP is kept");
        assert_eq!(b.len(), 1);
    }
}

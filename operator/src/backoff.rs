//! Capped exponential backoff per object for the controllers' error policy.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;

/// First retry delay after a failed reconcile.
pub const BASE: Duration = Duration::from_secs(1);
/// Longest retry delay.
pub const CAP: Duration = Duration::from_secs(300);

/// Consecutive failures per object key; a success resets the key.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Records a failure of `key` and returns how long to wait before retrying:
    /// 1 s, 2 s, 4 s, … capped at 300 s.
    pub fn failed(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock();
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        delay(*n)
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().remove(key);
    }

    /// Consecutive failures recorded for `key`.
    pub fn failures(&self, key: &str) -> u32 {
        self.failures.lock().get(key).copied().unwrap_or(0)
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
}

//! Prefill/decode interference on one simulated GPU (`--prefill-interference`): prefills take
//! the GPU one at a time, and no running sequence completes a token while one computes — a
//! forward pass without chunked prefill. A long prompt therefore shows up in every other
//! sequence's inter-token latency, which is what disaggregated serving removes.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Gpu {
    /// When the last reserved prefill finishes.
    busy_until: Mutex<Instant>,
}

impl Default for Gpu {
    fn default() -> Self {
        Self {
            busy_until: Mutex::new(Instant::now()),
        }
    }
}

impl Gpu {
    /// Reserves `compute` of GPU time for a prefill, after the ones already reserved; returns
    /// when it is done.
    pub fn reserve_prefill(&self, compute: Duration) -> Instant {
        let mut busy = self.busy_until.lock();
        let start = (*busy).max(Instant::now());
        *busy = start + compute;
        *busy
    }

    /// Until when a decode step has to wait for prefills (in the past when none runs).
    pub fn busy_until(&self) -> Instant {
        *self.busy_until.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn prefills_queue_behind_each_other_and_hold_up_decode_steps() {
        let ms = Duration::from_millis(1);
        let gpu = Gpu::default();
        let t0 = Instant::now();
        assert_eq!(gpu.reserve_prefill(30 * ms), t0 + 30 * ms);
        assert_eq!(gpu.reserve_prefill(10 * ms), t0 + 40 * ms, "second waits");
        assert_eq!(gpu.busy_until(), t0 + 40 * ms);
        tokio::time::sleep(100 * ms).await;
        assert!(gpu.busy_until() < Instant::now(), "idle again");
        assert_eq!(gpu.reserve_prefill(5 * ms), Instant::now() + 5 * ms);
    }
}

//! A token bucket over tokio's clock (so tests run in paused time): it holds up to
//! `capacity`, refills at `per_second`, and may go below zero when a settlement charges
//! more than was reserved — that debt is repaid by refill before anything else passes.

use std::time::Duration;

use tokio::time::Instant;

/// The smallest share a replica enforces.
pub const MIN_SHARE: f64 = 0.001;

#[derive(Debug)]
pub struct Bucket {
    capacity: f64,
    per_second: f64,
    /// This replica's share of the configured capacity and rate (`1 / replicas`).
    share: f64,
    level: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(capacity: f64, per_second: f64, now: Instant) -> Self {
        Self {
            capacity,
            per_second,
            share: 1.0,
            level: capacity,
            at: now,
        }
    }

    /// The capacity this replica enforces.
    pub fn capacity(&self) -> f64 {
        self.capacity * self.share
    }

    fn rate(&self) -> f64 {
        self.per_second * self.share
    }

    /// Enforces `share` of the configured capacity and rate from now on (several replicas
    /// each take a share). A smaller share clamps the level to the new capacity; a larger
    /// one only lets it refill further and faster. Tokens are never handed out by a share
    /// change, because the peer whose share shrinks may not have heard yet: the replicas
    /// together hold at most a little over one bucket even while shares move.
    pub fn set_share(&mut self, share: f64, now: Instant) {
        self.refill(now);
        // Never zero: waits are divided by the rate.
        self.share = share.clamp(MIN_SHARE, 1.0);
        self.level = self.level.min(self.capacity());
    }

    pub fn share(&self) -> f64 {
        self.share
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + elapsed * self.rate()).min(self.capacity());
        self.at = now;
    }

    /// Takes `n` (capped at the capacity, so a request larger than the bucket passes when it
    /// is full rather than never), or says how long until it could.
    pub fn try_take(&mut self, n: f64, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        let n = n.min(self.capacity());
        if self.level >= n {
            self.level -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((n - self.level) / self.rate()))
        }
    }

    /// Adds `delta` (negative: charges more; may leave the bucket in debt).
    pub fn adjust(&mut self, delta: f64, now: Instant) {
        self.refill(now);
        self.level = (self.level + delta).min(self.capacity());
    }

    /// Whole units available now.
    pub fn remaining(&mut self, now: Instant) -> u64 {
        self.refill(now);
        self.level.max(0.0).floor() as u64
    }

    /// Time until the bucket is full again.
    pub fn until_full(&mut self, now: Instant) -> Duration {
        self.refill(now);
        Duration::from_secs_f64(((self.capacity() - self.level) / self.rate()).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refills_at_its_rate_up_to_capacity() {
        let start = Instant::now();
        let mut b = Bucket::new(2.0, 1.0, start);
        assert!(b.try_take(1.0, start).is_ok());
        assert!(b.try_take(1.0, start).is_ok());
        let wait = b.try_take(1.0, start).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(
            b.try_take(1.0, Instant::now()).unwrap_err(),
            Duration::from_millis(500)
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.remaining(Instant::now()), 2, "capped at capacity");
    }

    #[tokio::test(start_paused = true)]
    async fn oversized_takes_pass_when_full_and_debt_blocks_until_repaid() {
        let now = Instant::now();
        let mut b = Bucket::new(100.0, 10.0, now);
        assert!(b.try_take(500.0, now).is_ok(), "capped at capacity");
        assert_eq!(b.remaining(now), 0);
        // Settlement: the request really used 150, 50 more than it reserved.
        b.adjust(-50.0, now);
        assert_eq!(
            b.try_take(1.0, now).unwrap_err(),
            Duration::from_millis(5_100)
        );
        assert_eq!(b.until_full(now), Duration::from_secs(15));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.remaining(Instant::now()), 0, "still repaying the debt");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.remaining(Instant::now()), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_larger_share_refills_further_and_faster_but_hands_out_nothing() {
        let now = Instant::now();
        let mut b = Bucket::new(40.0, 4.0, now);
        b.set_share(0.5, now);
        assert_eq!((b.capacity(), b.remaining(now)), (20.0, 20));
        b.set_share(1.0, now);
        assert_eq!((b.capacity(), b.remaining(now)), (40.0, 20));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(b.remaining(Instant::now()), 24, "the whole rate");
        b.set_share(0.0, Instant::now());
        assert_eq!(b.share(), MIN_SHARE, "never zero");
    }
}

//! One tenant's limits at run time: a request-rate bucket, a tokens-per-minute bucket that
//! is charged `max_tokens` up front and settled from the engine's usage, and a concurrency
//! count. Kept across reloads while the tenant's limits are unchanged, so editing another
//! tenant's entry does not hand everyone a fresh burst.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::bucket::Bucket;
use super::config::TenantLimits;

/// Which limit refused a request (the OpenAI error `type` and a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Requests,
    Tokens,
    Concurrency,
}

impl Limit {
    pub fn label(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Tokens => "tokens",
            Self::Concurrency => "concurrency",
        }
    }
}

/// A refused request: which limit, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refusal {
    pub limit: Limit,
    pub retry_after: Duration,
}

/// One dimension of the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub limit: u64,
    pub remaining: u64,
    pub reset: Duration,
}

#[derive(Debug)]
pub struct Limiter {
    limits: TenantLimits,
    requests: Option<Mutex<Bucket>>,
    tokens: Option<Mutex<Bucket>>,
    in_flight: AtomicU32,
    /// Frontend replicas sharing the limits; each enforces `1 / replicas` of them.
    replicas: AtomicU32,
    /// Demand since the usage exchange last looked: requests attempted (refused ones too,
    /// so a replica held to a small share is seen to want more) and tokens asked for.
    asked_requests: AtomicU64,
    asked_tokens: AtomicU64,
}

/// How long a client is told to wait when only concurrency refused it: a slot frees when
/// one of its own requests ends, which the frontend cannot predict.
const CONCURRENCY_RETRY: Duration = Duration::from_secs(1);

impl Limiter {
    pub fn new(limits: &TenantLimits, now: Instant) -> Self {
        let requests = limits
            .requests_per_second
            .zip(limits.burst_or_default())
            .map(|(rate, burst)| Mutex::new(Bucket::new(burst, rate, now)));
        let tokens = limits.tokens_per_minute.map(|tpm| {
            let tpm = tpm as f64;
            Mutex::new(Bucket::new(tpm, tpm / 60.0, now))
        });
        Self {
            limits: limits.clone(),
            requests,
            tokens,
            in_flight: AtomicU32::new(0),
            replicas: AtomicU32::new(1),
            asked_requests: AtomicU64::new(0),
            asked_tokens: AtomicU64::new(0),
        }
    }

    /// Shares the limits among `replicas` frontends: each enforces `limit / replicas` (the
    /// concurrency share rounded up, so every replica admits at least one request).
    pub fn set_replicas(&self, replicas: u32, now: Instant) {
        self.set_replica_count(replicas);
        let share = 1.0 / f64::from(replicas.max(1));
        self.set_shares(share, share, now);
    }

    /// The replica count the concurrency limit is split by.
    pub fn set_replica_count(&self, replicas: u32) {
        self.replicas.store(replicas.max(1), Ordering::Release);
    }

    /// Sets the share of the request-rate and token buckets this replica enforces (the
    /// usage exchange's fair shares); the concurrency split stays `1 / replicas`.
    pub fn set_shares(&self, requests: f64, tokens: f64, now: Instant) {
        if let Some(b) = &self.requests {
            b.lock().set_share(requests, now);
        }
        if let Some(b) = &self.tokens {
            b.lock().set_share(tokens, now);
        }
    }

    /// The shares enforced now: (requests, tokens); `None` for a limit not configured.
    pub fn shares(&self) -> (Option<f64>, Option<f64>) {
        let share = |b: &Option<Mutex<Bucket>>| b.as_ref().map(|b| b.lock().share());
        (share(&self.requests), share(&self.tokens))
    }

    /// Demand since the last call: (requests attempted, tokens asked for).
    pub fn take_demand(&self) -> (u64, u64) {
        (
            self.asked_requests.swap(0, Ordering::Relaxed),
            self.asked_tokens.swap(0, Ordering::Relaxed),
        )
    }

    fn max_concurrency(&self) -> Option<u32> {
        let replicas = self.replicas.load(Ordering::Relaxed).max(1);
        self.limits.max_concurrency.map(|m| m.div_ceil(replicas))
    }

    pub fn limits(&self) -> &TenantLimits {
        &self.limits
    }

    /// Admits one request against concurrency, then the request rate. On success the
    /// caller holds a concurrency slot until [`Self::release`].
    pub fn admit(&self, now: Instant) -> Result<(), Refusal> {
        self.asked_requests.fetch_add(1, Ordering::Relaxed);
        let running = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if self.max_concurrency().is_some_and(|max| running >= max) {
            self.release();
            return Err(Refusal {
                limit: Limit::Concurrency,
                retry_after: CONCURRENCY_RETRY,
            });
        }
        if let Some(bucket) = &self.requests {
            if let Err(retry_after) = bucket.lock().try_take(1.0, now) {
                self.release();
                return Err(Refusal {
                    limit: Limit::Requests,
                    retry_after,
                });
            }
        }
        Ok(())
    }

    pub fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Reserves `n` tokens; returns what was actually reserved (capped at the bucket size),
    /// 0 when tokens are not limited.
    pub fn reserve(&self, n: u64, now: Instant) -> Result<u64, Refusal> {
        let Some(bucket) = &self.tokens else {
            return Ok(0);
        };
        self.asked_tokens.fetch_add(n, Ordering::Relaxed);
        let mut bucket = bucket.lock();
        let n = (n as f64).min(bucket.capacity());
        bucket.try_take(n, now).map_err(|retry_after| Refusal {
            limit: Limit::Tokens,
            retry_after,
        })?;
        Ok(n as u64)
    }

    /// Replaces a reservation by what was used: returns the difference to the bucket, or
    /// charges it (possibly into debt).
    pub fn settle(&self, reserved: u64, used: u64, now: Instant) {
        if let Some(bucket) = &self.tokens {
            bucket.lock().adjust(reserved as f64 - used as f64, now);
        }
    }

    pub fn requests_window(&self, now: Instant) -> Option<Window> {
        let mut b = self.requests.as_ref()?.lock();
        Some(Window {
            limit: b.capacity() as u64,
            remaining: b.remaining(now),
            reset: b.until_full(now),
        })
    }

    pub fn tokens_window(&self, now: Instant) -> Option<Window> {
        let mut b = self.tokens.as_ref()?.lock();
        Some(Window {
            limit: b.capacity() as u64,
            remaining: b.remaining(now),
            reset: b.until_full(now),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(yaml: &str) -> TenantLimits {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn request_rate_allows_the_burst_then_refills() {
        let now = Instant::now();
        let l = Limiter::new(&limits("{requests_per_second: 2, burst: 3}"), now);
        for _ in 0..3 {
            l.admit(now).unwrap();
            l.release();
        }
        let refusal = l.admit(now).unwrap_err();
        assert_eq!(refusal.limit, Limit::Requests);
        assert_eq!(refusal.retry_after, Duration::from_millis(500));
        assert_eq!(l.in_flight(), 0, "a refused request holds no slot");
        let w = l.requests_window(now).unwrap();
        assert_eq!((w.limit, w.remaining), (3, 0));
        assert_eq!(w.reset, Duration::from_millis(1_500));
        tokio::time::advance(Duration::from_millis(500)).await;
        l.admit(Instant::now()).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_counts_requests_until_released() {
        let now = Instant::now();
        let l = Limiter::new(&limits("{max_concurrency: 2}"), now);
        l.admit(now).unwrap();
        l.admit(now).unwrap();
        assert_eq!(l.admit(now).unwrap_err().limit, Limit::Concurrency);
        l.release();
        l.admit(now).unwrap();
        assert_eq!(l.in_flight(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_are_reserved_then_settled_from_usage() {
        let now = Instant::now();
        let l = Limiter::new(&limits("{tokens_per_minute: 600}"), now);
        // Reserve max_tokens 400; the engine reports 100 used: 300 come back.
        let reserved = l.reserve(400, now).unwrap();
        assert_eq!(reserved, 400);
        assert_eq!(l.tokens_window(now).unwrap().remaining, 200);
        l.settle(reserved, 100, now);
        assert_eq!(l.tokens_window(now).unwrap().remaining, 500);
        // A request that uses more than it reserved leaves the bucket in debt.
        let reserved = l.reserve(0, now).unwrap();
        l.settle(reserved, 700, now);
        let refusal = l.reserve(10, now).unwrap_err();
        assert_eq!(refusal.limit, Limit::Tokens);
        // 200 of debt + 10 at 10 tokens/s.
        assert_eq!(refusal.retry_after, Duration::from_secs(21));
        tokio::time::advance(Duration::from_secs(21)).await;
        assert_eq!(l.reserve(10, Instant::now()).unwrap(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn replicas_each_enforce_their_share() {
        let now = Instant::now();
        let l = Limiter::new(
            &limits(
                "{requests_per_second: 10, burst: 10, tokens_per_minute: 600, max_concurrency: 3}",
            ),
            now,
        );
        l.set_replicas(2, now);
        let w = l.requests_window(now).unwrap();
        assert_eq!((w.limit, w.remaining), (5, 5));
        assert_eq!(l.tokens_window(now).unwrap().limit, 300);
        for _ in 0..2 {
            l.admit(now).unwrap();
        }
        assert_eq!(
            l.admit(now).unwrap_err().limit,
            Limit::Concurrency,
            "3 / 2 rounds up to 2"
        );
        l.release();
        l.release();
        for _ in 0..3 {
            l.admit(now).unwrap();
            l.release();
        }
        let refusal = l.admit(now).unwrap_err();
        assert_eq!(refusal.limit, Limit::Requests);
        assert_eq!(
            refusal.retry_after,
            Duration::from_millis(200),
            "5 a second here"
        );
        // A peer leaves: the whole limit again.
        l.set_replicas(1, now);
        assert_eq!(l.requests_window(now).unwrap().limit, 10);
    }

    #[test]
    fn unlimited_tenants_never_refuse() {
        let now = Instant::now();
        let l = Limiter::new(&TenantLimits::default(), now);
        for _ in 0..1000 {
            l.admit(now).unwrap();
        }
        assert_eq!(l.reserve(1 << 40, now).unwrap(), 0);
        assert!(l.requests_window(now).is_none() && l.tokens_window(now).is_none());
    }
}

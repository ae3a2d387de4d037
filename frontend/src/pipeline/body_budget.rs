//! The in-flight request-body budget: one frontend-wide pool of bytes
//! (`limits.max_inflight_body_bytes`) that every request body is charged against *before*
//! it is read, so N concurrent large bodies cannot take N × `max_body_bytes` of memory.
//!
//! A body with a `Content-Length` reserves its whole length up front; a chunked body reserves
//! as its chunks arrive (doubling, like the buffer it fills). When the pool is empty the
//! request waits up to `limits.body_budget_wait_ms` and is then refused with 503
//! `body_budget_exhausted` — its body is drained, never kept (see `parse.rs`). The reservation travels with the parsed
//! request and is returned when the request is dropped (after dispatch hands it on), so it
//! covers the raw bytes, the parsed form and the body sent upstream.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// The pool. Semaphore permits are bytes (config validation keeps it within `u32`).
#[derive(Debug)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
    wait: Duration,
    /// Requests refused because the pool stayed empty for `wait`.
    pub rejected: AtomicU64,
}

/// Bytes held for one request body; returned to the pool on drop.
#[derive(Debug, Default)]
pub struct BodyReservation {
    permit: Option<OwnedSemaphorePermit>,
}

impl BodyBudget {
    pub fn new(total: usize, wait: Duration) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS))),
            total,
            wait,
            rejected: AtomicU64::new(0),
        }
    }

    /// The pool's size, bytes.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes currently reserved by request bodies.
    pub fn in_use(&self) -> usize {
        self.total.saturating_sub(self.bytes.available_permits())
    }

    /// Grows `reservation` to hold at least `bytes`, waiting up to the configured time for
    /// the pool to have room.
    pub async fn reserve(
        &self,
        reservation: &mut BodyReservation,
        bytes: usize,
    ) -> Result<(), ApiError> {
        let held = reservation.bytes();
        if bytes <= held {
            return Ok(());
        }
        let Ok(more) = u32::try_from(bytes - held) else {
            return Err(self.refuse());
        };
        if more as usize > self.total {
            // Could never be satisfied; config validation keeps max_body_bytes <= total.
            return Err(self.refuse());
        }
        let permit = match Arc::clone(&self.bytes).try_acquire_many_owned(more) {
            Ok(permit) => permit,
            Err(_) => {
                match tokio::time::timeout(
                    self.wait,
                    Arc::clone(&self.bytes).acquire_many_owned(more),
                )
                .await
                {
                    Ok(Ok(permit)) => permit,
                    _ => return Err(self.refuse()),
                }
            }
        };
        match &mut reservation.permit {
            Some(held) => held.merge(permit),
            None => reservation.permit = Some(permit),
        }
        Ok(())
    }

    fn refuse(&self) -> ApiError {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        ApiError::body_budget_exhausted(self.wait)
    }
}

impl BodyReservation {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reservations_are_held_until_dropped_and_a_full_pool_refuses_after_the_wait() {
        let budget = BodyBudget::new(100, Duration::from_millis(50));
        let mut first = BodyReservation::default();
        budget.reserve(&mut first, 60).await.unwrap();
        assert_eq!((first.bytes(), budget.in_use()), (60, 60));

        let mut second = BodyReservation::default();
        let err = budget.reserve(&mut second, 60).await.unwrap_err();
        assert_eq!((err.status, err.code), (503, Some("body_budget_exhausted")));
        assert_eq!(budget.rejected.load(Ordering::Relaxed), 1);
        assert_eq!(second.bytes(), 0);

        drop(first);
        assert_eq!(budget.in_use(), 0);
        budget.reserve(&mut second, 60).await.unwrap();
        assert_eq!(budget.in_use(), 60);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_request_gets_the_bytes_another_one_returns() {
        let budget = Arc::new(BodyBudget::new(100, Duration::from_secs(5)));
        let mut first = BodyReservation::default();
        budget.reserve(&mut first, 100).await.unwrap();
        let waiter = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move {
                let mut r = BodyReservation::default();
                budget.reserve(&mut r, 40).await.map(|()| r.bytes())
            })
        };
        tokio::task::yield_now().await;
        drop(first);
        assert_eq!(waiter.await.unwrap().unwrap(), 40);
    }

    #[tokio::test]
    async fn a_reservation_grows_in_steps_and_returns_everything_at_once() {
        let budget = BodyBudget::new(100, Duration::from_millis(1));
        let mut r = BodyReservation::default();
        for step in [10, 30, 30, 80] {
            budget.reserve(&mut r, step).await.unwrap();
        }
        assert_eq!((r.bytes(), budget.in_use()), (80, 80));
        assert!(budget.reserve(&mut r, 101).await.is_err());
        drop(r);
        assert_eq!(budget.in_use(), 0);
    }
}

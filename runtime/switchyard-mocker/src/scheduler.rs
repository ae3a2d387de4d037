//! At most `--max-running` sequences generate at once; the rest wait in FIFO order (tokio's
//! semaphore is fair), as an engine's batch scheduler would hold them.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// Hands out running slots.
#[derive(Debug)]
pub struct Scheduler {
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

/// A running slot; dropping it frees the slot (also when the request is cancelled).
#[derive(Debug)]
pub struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
    metrics: Arc<Metrics>,
}

/// Counts a request as waiting for as long as it is queued, cancelled or not.
struct Waiting<'a>(&'a Metrics);

impl Scheduler {
    pub fn new(max_running: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_running.max(1))),
            metrics,
        }
    }

    /// Waits for a running slot. Uncontended, this is one atomic operation and no await.
    pub async fn admit(&self) -> Slot {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                let _waiting = Waiting::new(&self.metrics);
                // The semaphore is never closed; if it were, running unbounded beats failing.
                self.slots.clone().acquire_owned().await.ok()
            }
        };
        self.metrics.running.fetch_add(1, Relaxed);
        Slot {
            _permit: permit,
            metrics: self.metrics.clone(),
        }
    }
}

impl<'a> Waiting<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        metrics.waiting.fetch_add(1, Relaxed);
        Self(metrics)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Relaxed);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.running.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    #[tokio::test]
    async fn extra_requests_wait_in_fifo_order_and_leaving_the_queue_is_counted() {
        let metrics = Arc::new(Metrics::default());
        let sched = Scheduler::new(1, metrics.clone());
        let first = sched.admit().await;
        let mut second = Box::pin(sched.admit());
        let mut third = Box::pin(sched.admit());
        assert!((&mut second).now_or_never().is_none());
        assert!((&mut third).now_or_never().is_none());
        assert_eq!(metrics.snapshot().waiting, 2);
        drop(first);
        let second = (&mut second)
            .now_or_never()
            .expect("the oldest waiter goes first");
        assert!((&mut third).now_or_never().is_none());
        drop(third); // the client went away while queued
        assert_eq!(
            (metrics.snapshot().running, metrics.snapshot().waiting),
            (1, 0)
        );
        drop(second);
        assert_eq!(metrics.snapshot().running, 0);
    }
}

//! Health observations: what happened to an instance (probe or request outcome), buffered for
//! health-policy plugins. Recording is a relaxed load when nobody listens, so the request
//! path pays nothing unless a health-policy plugin is loaded.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::clock::now_ns;

/// Most observations kept between two drains; older ones are dropped first.
const CAPACITY: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    ProbeOk,
    ProbeFailed,
    ProbeTimeout,
    RequestOk,
    RequestFailed,
    RequestTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// `Instance::num_id`.
    pub instance: u32,
    pub outcome: Outcome,
    pub latency_ms: f32,
    pub at_ns: u64,
}

/// A bounded buffer of observations, enabled on demand.
#[derive(Debug, Default)]
pub struct ObservationLog {
    enabled: AtomicBool,
    buffer: Mutex<Vec<Observation>>,
}

impl ObservationLog {
    /// Start (or stop) buffering.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
        if !on {
            self.buffer.lock().clear();
        }
    }

    pub fn record(&self, instance: u32, outcome: Outcome, latency_ms: f32) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let mut buffer = self.buffer.lock();
        if buffer.len() >= CAPACITY {
            buffer.remove(0);
        }
        buffer.push(Observation {
            instance,
            outcome,
            latency_ms,
            at_ns: now_ns(),
        });
    }

    /// Everything recorded since the previous drain.
    pub fn drain(&self) -> Vec<Observation> {
        std::mem::take(&mut *self.buffer.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_when_enabled_and_drains() {
        let log = ObservationLog::default();
        log.record(1, Outcome::RequestOk, 1.0);
        assert!(log.drain().is_empty());
        log.set_enabled(true);
        log.record(1, Outcome::RequestFailed, 2.0);
        log.record(2, Outcome::ProbeOk, 0.5);
        let drained = log.drain();
        assert_eq!(drained.len(), 2);
        assert_eq!(drained[0].outcome, Outcome::RequestFailed);
        assert!(log.drain().is_empty());
    }
}

//! The approximate KV index: a prediction of cache contents when workers publish no events.
//!
//! Each routing decision says "instance X is about to prefill these blocks", so X will most
//! likely hold them for a while. The approximate index records exactly that and forgets it after
//! a TTL, standing in for the eviction it cannot see. It answers the same overlap query as the
//! event-driven [`KvIndex`], so the `kv` policy does not care which one it reads.
//!
//! Time is passed in (`*_at` methods) so tests need no sleeping; the plain methods use
//! `Instant::now()`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::index::{KvIndex, Overlap, Slot};
use crate::BlockHash;

/// Default TTL: long enough for a multi-turn conversation's next turn, short enough that an
/// evicted prefix is not chased for minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(120);

/// Routing decisions → predicted cache contents, expiring after a TTL.
#[derive(Debug)]
pub struct ApproxIndex {
    index: KvIndex,
    ttl: Duration,
    /// The latest expiry of each (instance, block); re-recording a block extends it.
    expiry: HashMap<(Slot, BlockHash), Instant>,
    /// Expiries in recording order (monotone, since the TTL is fixed). Entries superseded by
    /// a later recording are skipped when popped.
    queue: VecDeque<(Instant, Slot, BlockHash)>,
}

impl ApproxIndex {
    pub fn new(ttl: Duration) -> Self {
        Self {
            index: KvIndex::new(),
            ttl,
            expiry: HashMap::new(),
            queue: VecDeque::new(),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Records that `instance` was chosen for a prompt with these blocks.
    pub fn record(&mut self, instance: &str, blocks: &[BlockHash]) {
        self.record_at(instance, blocks, Instant::now());
    }

    pub fn record_at(&mut self, instance: &str, blocks: &[BlockHash], now: Instant) {
        self.expire(now);
        let Some(slot) = self.index.slot_for(instance) else {
            return;
        };
        let until = now + self.ttl;
        for &b in blocks {
            self.index.insert_slot(slot, b);
            self.expiry.insert((slot, b), until);
            self.queue.push_back((until, slot, b));
        }
    }

    /// Per-instance predicted leading cached blocks of `prompt`.
    pub fn overlap(&mut self, prompt: &[BlockHash]) -> Overlap {
        self.overlap_at(prompt, Instant::now())
    }

    pub fn overlap_at(&mut self, prompt: &[BlockHash], now: Instant) -> Overlap {
        self.expire(now);
        self.index.overlap(prompt)
    }

    /// Forgets `instance` (it left discovery).
    pub fn remove_instance(&mut self, instance: &str) {
        // Queue entries of the old slot become stale: `expiry` no longer has them, and a slot
        // reused by a new instance gets fresh expiries that the stale entries cannot match.
        if let Some(slot) = self.index.slot_of(instance) {
            self.expiry.retain(|(s, _), _| *s != slot);
        }
        self.index.remove_instance(instance);
    }

    /// Predicted blocks currently held (distinct).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(at, slot, block)) = self.queue.front() {
            if at > now {
                break;
            }
            self.queue.pop_front();
            // Only the latest recording of a block decides; older queue entries are stale.
            if self.expiry.get(&(slot, block)) == Some(&at) {
                self.expiry.remove(&(slot, block));
                self.index.remove_slot(slot, block);
            }
        }
    }
}

/// A cloneable, thread-safe handle to one [`ApproxIndex`]. A mutex rather than a read-write
/// lock: queries expire entries, so every access writes.
#[derive(Debug, Clone)]
pub struct SharedApproxIndex {
    inner: Arc<Mutex<ApproxIndex>>,
}

impl SharedApproxIndex {
    pub fn new(ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Mutex::new(ApproxIndex::new(ttl))),
        }
    }

    pub fn record(&self, instance: &str, blocks: &[BlockHash]) {
        self.inner.lock().record(instance, blocks);
    }

    pub fn overlap(&self, prompt: &[BlockHash]) -> Overlap {
        self.inner.lock().overlap(prompt)
    }

    pub fn remove_instance(&self, instance: &str) {
        self.inner.lock().remove_instance(instance);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    #[test]
    fn records_answer_overlap_until_the_ttl() {
        let t0 = Instant::now();
        let mut idx = ApproxIndex::new(TTL);
        idx.record_at("a", &[1, 2, 3], t0);
        assert_eq!(idx.overlap_at(&[1, 2, 9], t0).get("a"), 2);
        assert_eq!(idx.overlap_at(&[1, 2, 3], t0 + TTL / 2).get("a"), 3);
        assert!(idx.overlap_at(&[1, 2, 3], t0 + TTL).is_empty());
        assert!(idx.is_empty());
    }

    #[test]
    fn re_recording_extends_the_ttl() {
        let t0 = Instant::now();
        let mut idx = ApproxIndex::new(TTL);
        idx.record_at("a", &[1, 2], t0);
        idx.record_at("a", &[1], t0 + Duration::from_secs(8));
        let later = t0 + Duration::from_secs(12);
        // Block 1 was refreshed; block 2 was not, so only one leading block remains.
        assert_eq!(idx.overlap_at(&[1, 2], later).get("a"), 1);
        assert!(idx
            .overlap_at(&[1], t0 + Duration::from_secs(18))
            .is_empty());
    }

    #[test]
    fn instances_are_tracked_separately_and_can_be_removed() {
        let t0 = Instant::now();
        let mut idx = ApproxIndex::new(TTL);
        idx.record_at("a", &[1, 2], t0);
        idx.record_at("b", &[1], t0);
        idx.remove_instance("a");
        let o = idx.overlap_at(&[1, 2], t0);
        assert_eq!((o.get("a"), o.get("b")), (0, 1));
        // A new instance reusing a's slot must not be expired by a's stale queue entries.
        idx.record_at("c", &[5], t0 + Duration::from_secs(5));
        assert_eq!(
            idx.overlap_at(&[5], t0 + Duration::from_secs(11)).get("c"),
            1
        );
    }
}

//! A paged KV cache with prefix reuse, as vLLM and SGLang keep one, reduced to bookkeeping.
//!
//! Blocks are keyed by their chained prefix hash ([`switchyard_kv::BlockHasher`]), the same
//! rule the frontend's router uses, so a router that predicts "this instance holds 7 of my
//! blocks" is right about the mocker. Blocks referenced by running sequences are pinned;
//! unreferenced blocks stay resident (reusable) until space is needed, then the least
//! recently used one is evicted. Every store and eviction is reported as a [`KvEvent`].

use std::collections::{BTreeMap, HashMap};

use switchyard_kv::{BlockHash, KvEvent};
use tokio::sync::mpsc::UnboundedSender;

/// The blocks a sequence holds, from [`KvCache::allocate`].
#[derive(Debug, Default)]
pub struct Allocation {
    /// Leading prompt blocks that were already resident (prefix cache hits).
    pub cached: usize,
    /// Full blocks in the prompt.
    pub total: usize,
    /// Blocks this allocation references; give them back with [`KvCache::release`].
    pinned: Vec<BlockHash>,
}

impl Allocation {
    /// Prompt blocks that must be computed (drives time to first token).
    pub fn uncached(&self) -> usize {
        self.total - self.cached
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    refs: u32,
    /// Position in `lru` while `refs == 0`.
    last_use: u64,
}

/// The cache. Not thread-safe by itself: the server keeps it behind a mutex.
#[derive(Debug)]
pub struct KvCache {
    capacity: usize,
    entries: HashMap<BlockHash, Entry>,
    /// Unreferenced resident blocks, oldest use first: the eviction order.
    lru: BTreeMap<u64, BlockHash>,
    clock: u64,
    pinned_blocks: usize,
    /// Evictions not yet reported (batched per allocation).
    removed: Vec<BlockHash>,
    events: Option<UnboundedSender<KvEvent>>,
}

impl KvCache {
    /// An empty cache of `capacity` blocks; events go to `events` when given.
    pub fn new(capacity: usize, events: Option<UnboundedSender<KvEvent>>) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            lru: BTreeMap::new(),
            clock: 0,
            pinned_blocks: 0,
            removed: Vec::new(),
            events,
        }
    }

    /// Blocks referenced by at least one sequence.
    pub fn pinned(&self) -> usize {
        self.pinned_blocks
    }

    /// Resident blocks, pinned or reusable.
    pub fn resident(&self) -> usize {
        self.entries.len()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Pins the blocks of `hashes` (a chained prefix), storing the missing ones. Stops storing
    /// at the first block that finds no space even after eviction: later blocks of a chain
    /// are useless without it, and the sequence simply computes them uncached.
    pub fn allocate(&mut self, hashes: &[BlockHash]) -> Allocation {
        let mut alloc = Allocation {
            total: hashes.len(),
            pinned: Vec::with_capacity(hashes.len()),
            ..Allocation::default()
        };
        let mut leading = true;
        let mut stored_from: Option<usize> = None;
        for (i, &hash) in hashes.iter().enumerate() {
            if self.pin_existing(hash) {
                alloc.cached += usize::from(leading);
                self.flush_stored(hashes, &mut stored_from, i);
            } else {
                leading = false;
                if !self.make_room() {
                    break;
                }
                self.entries.insert(
                    hash,
                    Entry {
                        refs: 1,
                        last_use: 0,
                    },
                );
                self.pinned_blocks += 1;
                stored_from.get_or_insert(i);
            }
            alloc.pinned.push(hash);
        }
        self.flush_stored(hashes, &mut stored_from, alloc.pinned.len());
        self.flush_removed();
        alloc
    }

    /// Drops a sequence's references. Blocks are made evictable tail first, so a chain is
    /// evicted from its end and never leaves an orphaned suffix behind.
    pub fn release(&mut self, alloc: Allocation) {
        for hash in alloc.pinned.into_iter().rev() {
            let Some(entry) = self.entries.get_mut(&hash) else {
                continue;
            };
            entry.refs = entry.refs.saturating_sub(1);
            if entry.refs == 0 {
                self.clock += 1;
                entry.last_use = self.clock;
                self.lru.insert(self.clock, hash);
                self.pinned_blocks -= 1;
            }
        }
    }

    /// True and pinned when `hash` is resident.
    fn pin_existing(&mut self, hash: BlockHash) -> bool {
        let Some(entry) = self.entries.get_mut(&hash) else {
            return false;
        };
        if entry.refs == 0 {
            self.lru.remove(&entry.last_use);
            self.pinned_blocks += 1;
        }
        entry.refs += 1;
        true
    }

    /// Ensures one free slot, evicting the least recently used unpinned block if needed.
    fn make_room(&mut self) -> bool {
        if self.entries.len() < self.capacity {
            return true;
        }
        let Some((_, victim)) = self.lru.pop_first() else {
            return false;
        };
        self.entries.remove(&victim);
        self.removed.push(victim);
        true
    }

    /// Reports the run of newly stored blocks `hashes[start..end]` (if any), after the
    /// evictions that made room for it.
    fn flush_stored(&mut self, hashes: &[BlockHash], start: &mut Option<usize>, end: usize) {
        let Some(start) = start.take() else {
            return;
        };
        self.flush_removed();
        let parent = start.checked_sub(1).map(|p| hashes[p]);
        self.emit(KvEvent::Stored {
            parent,
            blocks: hashes[start..end].to_vec(),
        });
    }

    fn flush_removed(&mut self) {
        if !self.removed.is_empty() {
            let blocks = std::mem::take(&mut self.removed);
            self.emit(KvEvent::Removed { blocks });
        }
    }

    fn emit(&self, event: KvEvent) {
        if let Some(tx) = &self.events {
            // A receiver that went away just stops listening; the cache keeps working.
            let _ = tx.send(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    use super::*;

    fn drain(rx: &mut UnboundedReceiver<KvEvent>) -> Vec<KvEvent> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn a_shared_prefix_is_reused_and_reported_once() {
        let (tx, mut rx) = unbounded_channel();
        let mut kv = KvCache::new(8, Some(tx));
        let a = kv.allocate(&[1, 2, 3]);
        assert_eq!((a.cached, a.uncached()), (0, 3));
        let stored = KvEvent::Stored {
            parent: None,
            blocks: vec![1, 2, 3],
        };
        assert_eq!(drain(&mut rx), vec![stored]);
        kv.release(a);
        let b = kv.allocate(&[1, 2, 4, 5]);
        assert_eq!((b.cached, b.uncached()), (2, 2));
        let stored = KvEvent::Stored {
            parent: Some(2),
            blocks: vec![4, 5],
        };
        assert_eq!(drain(&mut rx), vec![stored]);
        assert_eq!((kv.resident(), kv.pinned()), (5, 4));
    }

    #[test]
    fn the_least_recently_used_unpinned_block_is_evicted_first() {
        let (tx, mut rx) = unbounded_channel();
        let mut kv = KvCache::new(4, Some(tx));
        let old = kv.allocate(&[10, 11]);
        kv.release(old);
        let recent = kv.allocate(&[20, 21]);
        kv.release(recent);
        drain(&mut rx);
        // Full; 10/11 were used longest ago, and a chain is evicted tail first.
        let c = kv.allocate(&[30]);
        assert_eq!(drain(&mut rx)[0], KvEvent::Removed { blocks: vec![11] });
        let d = kv.allocate(&[20, 21, 31]);
        assert_eq!(d.cached, 2, "recently used blocks survived");
        assert_eq!(drain(&mut rx)[0], KvEvent::Removed { blocks: vec![10] });
        kv.release(c);
        kv.release(d);
    }

    #[test]
    fn pinned_blocks_are_never_evicted() {
        let mut kv = KvCache::new(2, None);
        let running = kv.allocate(&[1, 2]);
        let other = kv.allocate(&[7, 8]);
        assert_eq!(
            (other.cached, other.pinned.len()),
            (0, 0),
            "no space: computed uncached"
        );
        let again = kv.allocate(&[1, 2]);
        assert_eq!(again.cached, 2);
        kv.release(running);
        kv.release(again);
        kv.release(other);
        assert_eq!((kv.pinned(), kv.resident()), (0, 2));
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let mut kv = KvCache::new(0, None);
        let a = kv.allocate(&[1, 2]);
        assert_eq!((a.cached, a.uncached(), kv.resident()), (0, 2, 0));
        kv.release(a);
    }
}

//! What one instance holds: how many blocks, and the order they were stored in.
//!
//! Membership itself lives in the index's block map (a block's holders), so there is no
//! per-instance hash set to update on every event: an event costs one map access per block.
//! The store-order log serves the per-instance cap (evict the oldest) and `Cleared` /
//! instance removal (visit only this instance's blocks). It keeps stale entries for blocks
//! since removed or re-stored; they are skipped when met and compacted away once they
//! outnumber the live ones.

use std::collections::{HashSet, VecDeque};

use foldhash::fast::RandomState;

use crate::BlockHash;

/// Stale log entries tolerated beyond the live count before a compaction.
const SLACK: usize = 64;

#[derive(Debug, Default)]
pub(crate) struct Held {
    count: usize,
    log: VecDeque<BlockHash>,
}

impl Held {
    /// Blocks held.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// A new block is held (the caller checked it was not already).
    pub(crate) fn stored(&mut self, block: BlockHash) {
        self.count += 1;
        self.log.push_back(block);
    }

    /// A held block was removed; its log entry goes stale.
    pub(crate) fn removed(&mut self) {
        self.count = self.count.saturating_sub(1);
    }

    /// The oldest log entry (possibly stale: the caller checks it is still held).
    pub(crate) fn pop_oldest(&mut self) -> Option<BlockHash> {
        self.log.pop_front()
    }

    /// Drops stale entries once the log is more than twice the live count, keeping each live
    /// block's latest entry, so the log stays within `2 × count + SLACK` whatever a publisher
    /// sends (a block stored and removed in a loop would otherwise grow it forever).
    pub(crate) fn compact_if_stale(&mut self, holds: impl Fn(BlockHash) -> bool) {
        if self.log.len() <= 2 * self.count + SLACK {
            return;
        }
        let mut seen: HashSet<BlockHash, RandomState> =
            HashSet::with_capacity_and_hasher(self.count, RandomState::default());
        let mut kept: VecDeque<BlockHash> = VecDeque::with_capacity(self.count);
        for &b in self.log.iter().rev() {
            if holds(b) && seen.insert(b) {
                kept.push_front(b);
            }
        }
        self.log = kept;
    }

    /// Empties the record, returning the log (every block held is in it, plus stale ones).
    pub(crate) fn take(&mut self) -> VecDeque<BlockHash> {
        self.count = 0;
        std::mem::take(&mut self.log)
    }

    #[cfg(test)]
    pub(crate) fn log_len(&self) -> usize {
        self.log.len()
    }
}

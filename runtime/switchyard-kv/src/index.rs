//! The KV index: which instances hold which prefix blocks, and how many leading blocks of a
//! prompt each instance already has cached.
//!
//! Block hashes are chained ([`crate::hash`]): one hash names a whole prefix. So the index does
//! not need a radix tree keyed by parent; a flat map `block hash → holders` is enough, and the
//! overlap query walks the prompt's chain left to right while intersecting holder sets. The walk
//! stops as soon as no instance is left, so a query costs `O(matched blocks × holders)`, never
//! the size of the index.
//!
//! Instance ids are interned into small integer slots so a block entry stores a few `u32`s
//! rather than strings; at 1M blocks that is the difference between ~40 and ~100+ bytes a block.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use foldhash::fast::RandomState;

use parking_lot::RwLock;

use crate::{BlockHash, KvEvent};

/// Interned instance id; an index into [`KvIndex::names`].
pub(crate) type Slot = u32;

/// The instances holding one block. Under KV-aware routing most blocks live on exactly one
/// instance, so that case is stored inline without a heap allocation.
#[derive(Debug, Clone)]
enum Holders {
    One(Slot),
    /// Sorted, at least two slots.
    Many(Vec<Slot>),
}

impl Holders {
    fn contains(&self, slot: Slot) -> bool {
        match self {
            Holders::One(s) => *s == slot,
            Holders::Many(v) => v.binary_search(&slot).is_ok(),
        }
    }

    /// Adds `slot`; returns whether it was new.
    fn insert(&mut self, slot: Slot) -> bool {
        match self {
            Holders::One(s) if *s == slot => false,
            Holders::One(s) => {
                let mut v = vec![*s, slot];
                v.sort_unstable();
                *self = Holders::Many(v);
                true
            }
            Holders::Many(v) => match v.binary_search(&slot) {
                Ok(_) => false,
                Err(at) => {
                    v.insert(at, slot);
                    true
                }
            },
        }
    }

    /// Removes `slot`; returns `true` when no holder is left (the entry should be dropped).
    fn remove(&mut self, slot: Slot) -> bool {
        match self {
            Holders::One(s) => *s == slot,
            Holders::Many(v) => {
                if let Ok(at) = v.binary_search(&slot) {
                    v.remove(at);
                }
                match v.as_slice() {
                    [] => true,
                    [only] => {
                        *self = Holders::One(*only);
                        false
                    }
                    _ => false,
                }
            }
        }
    }

    fn for_each(&self, mut f: impl FnMut(Slot)) {
        match self {
            Holders::One(s) => f(*s),
            Holders::Many(v) => v.iter().copied().for_each(f),
        }
    }
}

/// Per-instance leading cached blocks for one prompt: the answer to an overlap query.
/// Instances not present hold zero blocks of the prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlap {
    scores: HashMap<Arc<str>, usize>,
}

impl Overlap {
    /// Leading blocks of the prompt cached on `instance` (0 if none).
    pub fn get(&self, instance: &str) -> usize {
        self.scores.get(instance).copied().unwrap_or(0)
    }

    /// Instances with at least one leading block cached.
    pub fn iter(&self) -> impl Iterator<Item = (&str, usize)> {
        self.scores.iter().map(|(k, v)| (&**k, *v))
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The longest overlap across instances (0 when none).
    pub fn max(&self) -> usize {
        self.scores.values().copied().max().unwrap_or(0)
    }

    pub(crate) fn insert(&mut self, instance: Arc<str>, blocks: usize) {
        self.scores.insert(instance, blocks);
    }
}

/// Default [`KvIndex::set_max_blocks_per_instance`]: far above what one GPU's cache holds
/// (an 80 GB H100 serving an 8B model keeps ~30k blocks of 16 tokens), yet it caps what a
/// publisher that never sends `removed` (or lies) can make one frontend remember.
pub const DEFAULT_MAX_BLOCKS_PER_INSTANCE: usize = 1 << 20;

/// Block-hash chains → instances. Not synchronised; see [`SharedKvIndex`] for the shared handle.
#[derive(Debug)]
pub struct KvIndex {
    blocks: HashMap<BlockHash, Holders, RandomState>,
    /// What each slot holds, so `Cleared` and instance removal don't scan the whole map.
    held: Vec<HashSet<BlockHash, RandomState>>,
    /// Per slot, blocks in the order they were stored (with stale entries for blocks since
    /// removed, skipped and compacted lazily): the oldest go first when a slot is over the cap.
    order: Vec<VecDeque<BlockHash>>,
    max_per_instance: usize,
    evicted: u64,
    names: Vec<Option<Arc<str>>>,
    slots: HashMap<Arc<str>, Slot>,
    free: Vec<Slot>,
}

impl Default for KvIndex {
    fn default() -> Self {
        Self {
            blocks: HashMap::default(),
            held: Vec::new(),
            order: Vec::new(),
            max_per_instance: DEFAULT_MAX_BLOCKS_PER_INSTANCE,
            evicted: 0,
            names: Vec::new(),
            slots: HashMap::new(),
            free: Vec::new(),
        }
    }
}

impl KvIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// An index with room for `blocks` distinct blocks without rehashing.
    pub fn with_capacity(blocks: usize) -> Self {
        Self {
            blocks: HashMap::with_capacity_and_hasher(blocks, RandomState::default()),
            ..Self::default()
        }
    }

    /// At most `max` blocks are remembered per instance; storing more evicts that instance's
    /// oldest blocks (never another instance's). At least 1.
    pub fn set_max_blocks_per_instance(&mut self, max: usize) {
        self.max_per_instance = max.max(1);
    }

    /// Blocks evicted by the per-instance cap so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Applies one event reported by `instance`.
    pub fn apply(&mut self, instance: &str, event: &KvEvent) {
        match event {
            // The parent is implied by the chained hashes; it only matters to engines whose
            // hashes are not chained, which the bridge re-hashes before they get here.
            KvEvent::Stored { blocks, .. } => {
                let slot = self.slot_for(instance);
                for &b in blocks {
                    self.insert_slot(slot, b);
                }
            }
            KvEvent::Removed { blocks } => {
                if let Some(&slot) = self.slots.get(instance) {
                    for &b in blocks {
                        self.remove_slot(slot, b);
                    }
                }
            }
            KvEvent::Cleared => self.clear_instance(instance),
        }
    }

    /// Replaces everything `instance` holds with `blocks` (a resync from a full dump).
    pub fn reset_instance(&mut self, instance: &str, blocks: impl IntoIterator<Item = BlockHash>) {
        self.clear_instance(instance);
        let slot = self.slot_for(instance);
        for b in blocks {
            self.insert_slot(slot, b);
        }
    }

    /// Forgets `instance` entirely (it left discovery).
    pub fn remove_instance(&mut self, instance: &str) {
        let Some(slot) = self.slots.remove(instance) else {
            return;
        };
        self.drop_blocks_of(slot);
        self.names[slot as usize] = None;
        self.free.push(slot);
    }

    /// For each instance, how many leading blocks of `prompt` (a chain from
    /// [`crate::BlockHasher`]) it holds.
    pub fn overlap(&self, prompt: &[BlockHash]) -> Overlap {
        let mut out = Overlap::default();
        let Some(first) = prompt.first().and_then(|h| self.blocks.get(h)) else {
            return out;
        };
        let mut active: Vec<Slot> = Vec::new();
        first.for_each(|s| active.push(s));
        let mut depth = 1;
        for hash in &prompt[1..] {
            let Some(holders) = self.blocks.get(hash) else {
                break;
            };
            // Instances that miss this block stop at `depth`; the rest go on.
            active.retain(|&s| {
                let keep = holders.contains(s);
                if !keep {
                    self.record(&mut out, s, depth);
                }
                keep
            });
            if active.is_empty() {
                return out;
            }
            depth += 1;
        }
        for s in active {
            self.record(&mut out, s, depth);
        }
        out
    }

    /// Distinct blocks held by anyone.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Blocks held by `instance`.
    pub fn instance_blocks(&self, instance: &str) -> usize {
        self.slots
            .get(instance)
            .map_or(0, |&s| self.held[s as usize].len())
    }

    /// Instances the index knows about.
    pub fn instances(&self) -> impl Iterator<Item = &str> {
        self.slots.keys().map(|k| &**k)
    }

    fn record(&self, out: &mut Overlap, slot: Slot, depth: usize) {
        if let Some(Some(name)) = self.names.get(slot as usize) {
            out.insert(name.clone(), depth);
        }
    }

    fn clear_instance(&mut self, instance: &str) {
        if let Some(&slot) = self.slots.get(instance) {
            self.drop_blocks_of(slot);
        }
    }

    fn drop_blocks_of(&mut self, slot: Slot) {
        self.order[slot as usize] = VecDeque::new();
        let held = std::mem::take(&mut self.held[slot as usize]);
        for b in held {
            self.unlink(slot, b);
        }
    }

    pub(crate) fn slot_of(&self, instance: &str) -> Option<Slot> {
        self.slots.get(instance).copied()
    }

    pub(crate) fn slot_for(&mut self, instance: &str) -> Slot {
        if let Some(&s) = self.slots.get(instance) {
            return s;
        }
        let name: Arc<str> = Arc::from(instance);
        let slot = match self.free.pop() {
            Some(s) => {
                self.names[s as usize] = Some(name.clone());
                s
            }
            None => {
                self.names.push(Some(name.clone()));
                self.held.push(HashSet::default());
                self.order.push(VecDeque::new());
                (self.names.len() - 1) as Slot
            }
        };
        self.slots.insert(name, slot);
        slot
    }

    pub(crate) fn insert_slot(&mut self, slot: Slot, block: BlockHash) {
        let i = slot as usize;
        if !self.held[i].insert(block) {
            return;
        }
        match self.blocks.get_mut(&block) {
            Some(h) => {
                h.insert(slot);
            }
            None => {
                self.blocks.insert(block, Holders::One(slot));
            }
        }
        self.order[i].push_back(block);
        while self.held[i].len() > self.max_per_instance {
            let Some(oldest) = self.order[i].pop_front() else {
                break;
            };
            if self.held[i].remove(&oldest) {
                self.unlink(slot, oldest);
                self.evicted += 1;
            }
        }
        // Removed blocks leave stale entries behind; keep the queue within 2× what is held.
        if self.order[i].len() > 2 * self.held[i].len() + 64 {
            let held = &self.held[i];
            self.order[i].retain(|b| held.contains(b));
        }
    }

    pub(crate) fn remove_slot(&mut self, slot: Slot, block: BlockHash) {
        if self.held[slot as usize].remove(&block) {
            self.unlink(slot, block);
        }
    }

    /// Removes `slot` from the block's holders without touching `held`.
    fn unlink(&mut self, slot: Slot, block: BlockHash) {
        if let Some(h) = self.blocks.get_mut(&block) {
            if h.remove(slot) {
                self.blocks.remove(&block);
            }
        }
    }
}

/// A cloneable, thread-safe handle to one [`KvIndex`]: the event subscriber writes through it,
/// the routing policy reads through it. Reads (one per request) vastly outnumber writes per
/// lock acquisition, hence a read-write lock.
#[derive(Debug, Clone, Default)]
pub struct SharedKvIndex {
    inner: Arc<RwLock<KvIndex>>,
}

impl SharedKvIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(blocks: usize) -> Self {
        Self {
            inner: Arc::new(RwLock::new(KvIndex::with_capacity(blocks))),
        }
    }

    /// An index remembering at most `max` blocks per instance (see
    /// [`KvIndex::set_max_blocks_per_instance`]).
    pub fn with_max_blocks_per_instance(max: usize) -> Self {
        let index = Self::default();
        index.inner.write().set_max_blocks_per_instance(max);
        index
    }

    /// Blocks evicted by the per-instance cap so far.
    pub fn evicted(&self) -> u64 {
        self.inner.read().evicted()
    }

    pub fn apply(&self, instance: &str, event: &KvEvent) {
        self.inner.write().apply(instance, event);
    }

    pub fn reset_instance(&self, instance: &str, blocks: impl IntoIterator<Item = BlockHash>) {
        self.inner.write().reset_instance(instance, blocks);
    }

    pub fn remove_instance(&self, instance: &str) {
        self.inner.write().remove_instance(instance);
    }

    pub fn overlap(&self, prompt: &[BlockHash]) -> Overlap {
        self.inner.read().overlap(prompt)
    }

    pub fn len(&self) -> usize {
        self.inner.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.read().is_empty()
    }

    pub fn instance_blocks(&self, instance: &str) -> usize {
        self.inner.read().instance_blocks(instance)
    }

    /// Runs `f` with a read lock held, for callers that need several queries to agree.
    pub fn read<R>(&self, f: impl FnOnce(&KvIndex) -> R) -> R {
        f(&self.inner.read())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(blocks: &[BlockHash]) -> KvEvent {
        KvEvent::Stored {
            parent: None,
            blocks: blocks.to_vec(),
        }
    }

    #[test]
    fn overlap_counts_leading_blocks_per_instance() {
        let mut idx = KvIndex::new();
        idx.apply("a", &stored(&[1, 2, 3]));
        idx.apply("b", &stored(&[1, 2]));
        idx.apply("c", &stored(&[9]));
        let o = idx.overlap(&[1, 2, 3, 4]);
        assert_eq!(o.get("a"), 3);
        assert_eq!(o.get("b"), 2);
        assert_eq!(o.get("c"), 0);
        assert_eq!(o.max(), 3);
    }

    #[test]
    fn a_hole_in_the_chain_ends_the_match() {
        let mut idx = KvIndex::new();
        idx.apply("a", &stored(&[1, 3]));
        assert_eq!(idx.overlap(&[1, 2, 3]).get("a"), 1);
        assert!(idx.overlap(&[2, 3]).is_empty());
    }

    #[test]
    fn removed_and_cleared_blocks_stop_matching() {
        let mut idx = KvIndex::new();
        idx.apply("a", &stored(&[1, 2, 3]));
        idx.apply("b", &stored(&[1, 2, 3]));
        idx.apply("a", &KvEvent::Removed { blocks: vec![2] });
        assert_eq!(idx.overlap(&[1, 2, 3]).get("a"), 1);
        assert_eq!(idx.overlap(&[1, 2, 3]).get("b"), 3);
        idx.apply("b", &KvEvent::Cleared);
        assert_eq!(idx.overlap(&[1, 2, 3]).get("b"), 0);
        assert_eq!(idx.len(), 2, "a still holds blocks 1 and 3");
    }

    #[test]
    fn removing_an_instance_frees_its_blocks_and_slot() {
        let mut idx = KvIndex::new();
        idx.apply("a", &stored(&[1, 2]));
        idx.apply("b", &stored(&[1]));
        idx.remove_instance("a");
        assert_eq!(idx.len(), 1);
        assert_eq!(idx.instance_blocks("a"), 0);
        idx.apply("c", &stored(&[1, 2]));
        let o = idx.overlap(&[1, 2]);
        assert_eq!((o.get("a"), o.get("b"), o.get("c")), (0, 1, 2));
    }

    #[test]
    fn reset_replaces_an_instances_blocks() {
        let mut idx = KvIndex::new();
        idx.apply("a", &stored(&[1, 2, 3]));
        idx.reset_instance("a", [7, 8]);
        assert_eq!(idx.overlap(&[1]).get("a"), 0);
        assert_eq!(idx.overlap(&[7, 8]).get("a"), 2);
        assert_eq!(idx.instance_blocks("a"), 2);
    }

    #[test]
    fn duplicate_stores_and_unknown_removals_are_harmless() {
        let mut idx = KvIndex::new();
        idx.apply("a", &stored(&[1, 2]));
        idx.apply("a", &stored(&[1, 2]));
        idx.apply("a", &KvEvent::Removed { blocks: vec![5] });
        idx.apply("zz", &KvEvent::Removed { blocks: vec![1] });
        idx.apply("zz", &KvEvent::Cleared);
        assert_eq!(idx.instance_blocks("a"), 2);
        assert_eq!(idx.overlap(&[1, 2]).get("a"), 2);
    }

    #[test]
    fn works_with_real_block_hashes() {
        let h = crate::BlockHasher::new(4);
        let shared: Vec<u32> = (0..16).collect();
        let mut longer = shared.clone();
        longer.extend(100..108);
        let mut idx = KvIndex::new();
        idx.apply("a", &stored(&h.hash_tokens(&longer)));
        assert_eq!(idx.overlap(&h.hash_tokens(&shared)).get("a"), 4);
        assert_eq!(idx.overlap(&h.hash_tokens(&longer)).get("a"), 6);
    }

    #[test]
    fn shared_handle_sees_writes() {
        let idx = SharedKvIndex::new();
        let reader = idx.clone();
        idx.apply("a", &stored(&[1]));
        assert_eq!(reader.overlap(&[1]).get("a"), 1);
        idx.remove_instance("a");
        assert!(reader.is_empty());
    }

    #[test]
    fn the_per_instance_cap_evicts_that_instances_oldest_blocks_only() {
        let mut idx = KvIndex::new();
        idx.set_max_blocks_per_instance(3);
        let stored = |blocks: Vec<BlockHash>| KvEvent::Stored {
            parent: None,
            blocks,
        };
        idx.apply("other", &stored(vec![1, 2]));
        idx.apply("flood", &stored(vec![1, 2, 3]));
        idx.apply("flood", &KvEvent::Removed { blocks: vec![2] });
        idx.apply("flood", &stored(vec![4, 5]));
        // flood held 1, 3 then stored 4, 5: its oldest (1) went; 3, 4, 5 stay.
        assert_eq!(idx.instance_blocks("flood"), 3);
        assert_eq!(idx.evicted(), 1);
        assert_eq!(idx.overlap(&[3]).get("flood"), 1);
        assert_eq!(idx.overlap(&[1]).get("flood"), 0);
        // The other instance's copy of block 1 is untouched.
        assert_eq!(idx.overlap(&[1, 2]).get("other"), 2);
        // A flood of distinct blocks stays bounded, stale queue entries included.
        for i in 0..10_000u64 {
            idx.apply("flood", &stored(vec![100 + i]));
            idx.apply(
                "flood",
                &KvEvent::Removed {
                    blocks: vec![100 + i],
                },
            );
            idx.apply("flood", &stored(vec![1_000_000 + i]));
        }
        assert_eq!(idx.instance_blocks("flood"), 3);
        assert!(idx.order[idx.slot_of("flood").unwrap() as usize].len() <= 2 * 3 + 64 + 1);
        assert_eq!(idx.instance_blocks("other"), 2);
    }
}

//! The KV index: which instances hold which prefix blocks, and how many leading blocks of a
//! prompt each instance already has cached.
//!
//! Block hashes are chained ([`crate::hash`]): one hash names a whole prefix. So the index does
//! not need a radix tree keyed by parent; a flat map `block hash → holders` is enough, and the
//! overlap query walks the prompt's chain left to right while intersecting holder sets. The walk
//! stops as soon as no instance is left, so a query costs `O(matched blocks × holders)`, never
//! the size of the index.
//!
//! At millions of blocks the map is far larger than the CPU caches and every fresh block is a
//! cache miss, so the layout is chosen for misses, not instructions:
//! - one map access per block and event: membership is the block's holder set, not a second
//!   per-instance set ([`held`] only counts and keeps the store order);
//! - a 16-byte map entry: the holder is one inline `u32` slot, lists live beside the map
//!   ([`holders`]);
//! - batches of independent lookups ([`LOOKAHEAD`]) before acting on them, so the CPU overlaps
//!   their misses instead of waiting for one after another.
//!
//! Instance ids are interned into small integer slots so a block entry stores a `u32` rather
//! than a string. Measured bytes per block and events per second: `docs/benchmarks.md`.

mod held;
mod holders;

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;
use parking_lot::RwLock;

use crate::{BlockHash, KvEvent};
use held::Held;
pub(crate) use holders::Slot;
use holders::{Arena, Holder, Removed, MAX_SLOTS};

/// Lookups issued before acting on any of them. Eight independent misses in flight is about
/// what one core sustains; more only adds wasted lookups past the end of a match.
const LOOKAHEAD: usize = 8;

/// Per-instance leading cached blocks for one prompt: the answer to an overlap query.
/// Instances not present hold zero blocks of the prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlap {
    scores: HashMap<Arc<str>, usize, RandomState>,
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

/// An answer assembled from `(instance, blocks)` pairs, e.g. by a source that blends two
/// indexes. Zero counts are left out, as the indexes do.
impl<'a> FromIterator<(&'a str, usize)> for Overlap {
    fn from_iter<I: IntoIterator<Item = (&'a str, usize)>>(iter: I) -> Self {
        let mut o = Overlap::default();
        for (instance, blocks) in iter.into_iter().filter(|(_, b)| *b > 0) {
            o.insert(Arc::from(instance), blocks);
        }
        o
    }
}

/// Default [`KvIndex::set_max_blocks_per_instance`]: far above what one GPU's cache holds
/// (an 80 GB H100 serving an 8B model keeps ~30k blocks of 16 tokens), yet it caps what a
/// publisher that never sends `removed` (or lies) can make one frontend remember.
pub const DEFAULT_MAX_BLOCKS_PER_INSTANCE: usize = 1 << 20;

/// Block-hash chains → instances. Not synchronised; see [`SharedKvIndex`] for the shared handle.
#[derive(Debug)]
pub struct KvIndex {
    blocks: HashMap<BlockHash, Holder, RandomState>,
    holders: Arena,
    /// Per slot: how many blocks it holds and in which order they came.
    held: Vec<Held>,
    max_per_instance: usize,
    evicted: u64,
    names: Vec<Option<Arc<str>>>,
    slots: HashMap<Arc<str>, Slot, RandomState>,
    free: Vec<Slot>,
    /// The instance of the previous event and its slot: a publisher's message carries a run
    /// of events of one instance, and hashing its name once per event was a third of `apply`.
    last: Option<(Arc<str>, Slot)>,
}

impl Default for KvIndex {
    fn default() -> Self {
        Self {
            blocks: HashMap::default(),
            holders: Arena::default(),
            held: Vec::new(),
            max_per_instance: DEFAULT_MAX_BLOCKS_PER_INSTANCE,
            evicted: 0,
            names: Vec::new(),
            slots: HashMap::default(),
            free: Vec::new(),
            last: None,
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
    /// oldest blocks (never another instance's). At least 1. "Oldest" is by first store: a
    /// block removed and stored again keeps its first place until the log is compacted.
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
                if let Some(slot) = self.slot_for(instance) {
                    self.insert_blocks(slot, blocks);
                }
            }
            KvEvent::Removed { blocks } => {
                if let Some(slot) = self.slot_of(instance) {
                    self.remove_blocks(slot, blocks);
                }
            }
            KvEvent::Cleared => self.clear_instance(instance),
        }
    }

    /// Applies a run of events reported by `instance` (one published message), resolving
    /// the instance once rather than per event.
    pub fn apply_all(&mut self, instance: &str, events: &[KvEvent]) {
        let mut slot = self.slot_of(instance);
        for event in events {
            match event {
                KvEvent::Stored { blocks, .. } => {
                    if slot.is_none() {
                        slot = self.slot_for(instance);
                    }
                    if let Some(s) = slot {
                        self.insert_blocks(s, blocks);
                    }
                }
                KvEvent::Removed { blocks } => {
                    if let Some(s) = slot {
                        self.remove_blocks(s, blocks);
                    }
                }
                KvEvent::Cleared => {
                    if let Some(s) = slot {
                        self.drop_blocks_of(s);
                    }
                }
            }
        }
    }

    /// Replaces everything `instance` holds with `blocks` (a resync from a full dump).
    pub fn reset_instance(&mut self, instance: &str, blocks: impl IntoIterator<Item = BlockHash>) {
        self.clear_instance(instance);
        if let Some(slot) = self.slot_for(instance) {
            for b in blocks {
                self.insert_slot(slot, b);
            }
        }
    }

    /// Forgets `instance` entirely (it left discovery).
    pub fn remove_instance(&mut self, instance: &str) {
        let Some(slot) = self.slots.remove(instance) else {
            return;
        };
        self.last = None;
        self.drop_blocks_of(slot);
        self.names[slot as usize] = None;
        self.free.push(slot);
    }

    /// For each instance, how many leading blocks of `prompt` (a chain from
    /// [`crate::BlockHasher`]) it holds.
    pub fn overlap(&self, prompt: &[BlockHash]) -> Overlap {
        let mut out = Overlap::default();
        // Ascending (holder lists are sorted and `retain` keeps the order), for `contains_all`.
        let mut active: Vec<Slot> = Vec::new();
        let mut depth = 0;
        for chunk in prompt.chunks(LOOKAHEAD) {
            // Independent lookups first: their cache misses overlap.
            let mut found = [None; LOOKAHEAD];
            for (f, hash) in found.iter_mut().zip(chunk) {
                *f = self.blocks.get(hash).copied();
            }
            for f in &found[..chunk.len()] {
                let Some(holders) = *f else {
                    self.record_all(&mut out, &active, depth);
                    return out;
                };
                if depth == 0 {
                    self.holders.for_each(holders, |s| active.push(s));
                } else if !self.holders.contains_all(holders, &active) {
                    // Instances that miss this block stop at `depth`; the rest go on. (Checked
                    // first: along a cached prefix nobody drops out at most blocks.)
                    active.retain(|&s| {
                        let keep = self.holders.contains(holders, s);
                        if !keep {
                            self.record(&mut out, s, depth);
                        }
                        keep
                    });
                    if active.is_empty() {
                        return out;
                    }
                }
                depth += 1;
            }
        }
        self.record_all(&mut out, &active, depth);
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
            .map_or(0, |&s| self.held[s as usize].count())
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

    fn record_all(&self, out: &mut Overlap, slots: &[Slot], depth: usize) {
        for &s in slots {
            self.record(out, s, depth);
        }
    }

    fn clear_instance(&mut self, instance: &str) {
        if let Some(slot) = self.slot_of(instance) {
            self.drop_blocks_of(slot);
        }
    }

    fn drop_blocks_of(&mut self, slot: Slot) {
        // Stale and duplicate log entries are harmless here: unlinking a block the slot
        // no longer holds does nothing.
        for b in self.held[slot as usize].take() {
            self.unlink(slot, b);
        }
    }

    pub(crate) fn slot_of(&mut self, instance: &str) -> Option<Slot> {
        if let Some((name, slot)) = &self.last {
            if **name == *instance {
                return Some(*slot);
            }
        }
        let (name, &slot) = self.slots.get_key_value(instance)?;
        self.last = Some((name.clone(), slot));
        Some(slot)
    }

    /// The slot of `instance`, interned on first sight. `None` only once 2^31 slots are in
    /// use, which memory runs out long before.
    pub(crate) fn slot_for(&mut self, instance: &str) -> Option<Slot> {
        if let Some(s) = self.slot_of(instance) {
            return Some(s);
        }
        let name: Arc<str> = Arc::from(instance);
        let slot = match self.free.pop() {
            Some(s) => {
                self.names[s as usize] = Some(name.clone());
                s
            }
            None if self.names.len() < MAX_SLOTS => {
                self.names.push(Some(name.clone()));
                self.held.push(Held::default());
                (self.names.len() - 1) as Slot
            }
            None => return None,
        };
        self.slots.insert(name, slot);
        Some(slot)
    }

    /// Stores a run of blocks, looking each chunk up before inserting it so the misses of
    /// fresh blocks overlap; the inserts then find their buckets in cache.
    fn insert_blocks(&mut self, slot: Slot, blocks: &[BlockHash]) {
        for chunk in blocks.chunks(LOOKAHEAD) {
            self.touch(chunk);
            for &b in chunk {
                self.insert_slot(slot, b);
            }
        }
    }

    fn remove_blocks(&mut self, slot: Slot, blocks: &[BlockHash]) {
        for chunk in blocks.chunks(LOOKAHEAD) {
            self.touch(chunk);
            for &b in chunk {
                self.remove_slot(slot, b);
            }
        }
    }

    /// Reads the map at each hash, only for the side effect of bringing its buckets into cache.
    fn touch(&self, chunk: &[BlockHash]) {
        if chunk.len() > 1 {
            for b in chunk {
                std::hint::black_box(self.blocks.get(b));
            }
        }
    }

    pub(crate) fn insert_slot(&mut self, slot: Slot, block: BlockHash) {
        let new = match self.blocks.entry(block) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Holder::one(slot));
                true
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                self.holders.insert(o.get_mut(), slot)
            }
        };
        if !new {
            return;
        }
        let i = slot as usize;
        self.held[i].stored(block);
        while self.held[i].count() > self.max_per_instance {
            let Some(oldest) = self.held[i].pop_oldest() else {
                break;
            };
            if self.unlink(slot, oldest) {
                self.held[i].removed();
                self.evicted += 1;
            }
        }
        let (blocks, holders) = (&self.blocks, &self.holders);
        self.held[i]
            .compact_if_stale(|b| blocks.get(&b).is_some_and(|h| holders.contains(*h, slot)));
    }

    pub(crate) fn remove_slot(&mut self, slot: Slot, block: BlockHash) {
        if self.unlink(slot, block) {
            self.held[slot as usize].removed();
        }
    }

    /// Removes `slot` from the block's holders (dropping the entry when it was the last);
    /// returns whether the slot held the block. The caller keeps `held` in step.
    fn unlink(&mut self, slot: Slot, block: BlockHash) -> bool {
        // `get_mut`, not `entry`: std's `entry` reserves room for an insert even when the key
        // is absent, so removals of unknown blocks could grow a full table.
        let Some(h) = self.blocks.get_mut(&block) else {
            return false;
        };
        match self.holders.remove(h, slot) {
            Removed::NotHeld => false,
            Removed::Kept => true,
            Removed::Empty => {
                // The second lookup finds the bucket still in cache.
                self.blocks.remove(&block);
                true
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

    /// Applies a run of one instance's events (a published message's) under one lock.
    pub fn apply_all(&self, instance: &str, events: &[KvEvent]) {
        self.inner.write().apply_all(instance, events);
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
mod model_tests;
#[cfg(test)]
mod tests;

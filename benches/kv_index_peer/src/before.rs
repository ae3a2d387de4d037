//! Switchyard's KV index as it was before the fleet-scale rework (commit 263e219), kept
//! here only as the "before" column of the comparison. Not used by Switchyard.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use foldhash::fast::RandomState;

use switchyard_kv::{BlockHash, KvEvent};

/// Interned instance id; an index into [`KvIndex::names`].
type Slot = u32;

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

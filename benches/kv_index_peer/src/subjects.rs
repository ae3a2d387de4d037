//! The indexes under test behind one small trait, so every one gets the same events.
//!
//! Events are converted to each index's own type before the clock starts ([`Subject::stored`]
//! / [`Subject::removed`]); [`Subject::apply`] consumes one; [`Subject::settle`] waits until
//! everything applied is visible (a no-op for inline indexes, a flush for thread pools).

use dynamo_kv_router::protocols::{
    ExternalSequenceBlockHash, KvCacheEvent, KvCacheEventData, KvCacheRemoveData, KvCacheStoreData,
    KvCacheStoredBlockData, LocalBlockHash, RouterEvent, WorkerWithDpRank,
};
use dynamo_kv_router::{
    ConcurrentRadixTreeCompressed, PositionalIndexer, RadixTree, SyncIndexer, ThreadPoolIndexer,
};
use rustc_hash::FxHashMap;
use switchyard_kv::{KvEvent, KvIndex};

use crate::stream::Seq;

pub trait Subject {
    type Event;
    fn stored(&mut self, seq: &Seq, from: usize, to: usize) -> Self::Event;
    fn removed(&mut self, seq: &Seq, from: usize, to: usize) -> Self::Event;
    fn apply(&mut self, event: Self::Event);
    fn settle(&mut self) {}
    /// Leading blocks of `prompt` cached on `instance`.
    fn overlap(&self, prompt: &[(u64, u64)], instance: usize) -> usize;
}

/// Instance names as Switchyard sees them (discovery ids).
fn name(instance: usize) -> String {
    format!("worker-{instance:05}")
}

pub struct Ours {
    index: KvIndex,
    names: Vec<String>,
}

impl Ours {
    pub fn new(instances: usize, capacity: usize) -> Self {
        Self {
            index: KvIndex::with_capacity(capacity),
            names: (0..instances).map(name).collect(),
        }
    }
}

impl Subject for Ours {
    type Event = (usize, KvEvent);
    fn stored(&mut self, seq: &Seq, from: usize, to: usize) -> Self::Event {
        let blocks = seq.blocks[from..to].iter().map(|b| b.0).collect();
        let parent = from.checked_sub(1).map(|p| seq.blocks[p].0);
        (seq.instance, KvEvent::Stored { parent, blocks })
    }
    fn removed(&mut self, seq: &Seq, from: usize, to: usize) -> Self::Event {
        let blocks = seq.blocks[from..to].iter().map(|b| b.0).collect();
        (seq.instance, KvEvent::Removed { blocks })
    }
    fn apply(&mut self, (instance, event): Self::Event) {
        self.index.apply(&self.names[instance], &event);
    }
    fn overlap(&self, prompt: &[(u64, u64)], instance: usize) -> usize {
        let hashes: Vec<u64> = prompt.iter().map(|b| b.0).collect();
        self.index.overlap(&hashes).get(&self.names[instance])
    }
}

/// Switchyard's index before the rework (see `before.rs`), fed exactly like [`Ours`].
pub struct Before {
    index: crate::before::KvIndex,
    names: Vec<String>,
}

impl Before {
    pub fn new(instances: usize, capacity: usize) -> Self {
        Self {
            index: crate::before::KvIndex::with_capacity(capacity),
            names: (0..instances).map(name).collect(),
        }
    }
}

impl Subject for Before {
    type Event = (usize, KvEvent);
    fn stored(&mut self, seq: &Seq, from: usize, to: usize) -> Self::Event {
        let blocks = seq.blocks[from..to].iter().map(|b| b.0).collect();
        let parent = from.checked_sub(1).map(|p| seq.blocks[p].0);
        (seq.instance, KvEvent::Stored { parent, blocks })
    }
    fn removed(&mut self, seq: &Seq, from: usize, to: usize) -> Self::Event {
        let blocks = seq.blocks[from..to].iter().map(|b| b.0).collect();
        (seq.instance, KvEvent::Removed { blocks })
    }
    fn apply(&mut self, (instance, event): Self::Event) {
        self.index.apply(&self.names[instance], &event);
    }
    fn overlap(&self, prompt: &[(u64, u64)], instance: usize) -> usize {
        let hashes: Vec<u64> = prompt.iter().map(|b| b.0).collect();
        self.index.overlap(&hashes).get(&self.names[instance])
    }
}

/// Dynamo's event for a block range of `seq`.
fn dynamo_stored(seq: &Seq, from: usize, to: usize, id: u64) -> RouterEvent {
    let blocks = seq.blocks[from..to]
        .iter()
        .map(|&(local, ext)| KvCacheStoredBlockData {
            block_hash: ExternalSequenceBlockHash(ext),
            tokens_hash: LocalBlockHash(local),
            mm_extra_info: None,
        })
        .collect();
    let data = KvCacheEventData::Stored(KvCacheStoreData {
        parent_hash: from
            .checked_sub(1)
            .map(|p| ExternalSequenceBlockHash(seq.blocks[p].1)),
        start_position: None,
        blocks,
    });
    router_event(seq.instance, data, id)
}

fn dynamo_removed(seq: &Seq, from: usize, to: usize, id: u64) -> RouterEvent {
    let block_hashes = seq.blocks[from..to]
        .iter()
        .map(|&(_, ext)| ExternalSequenceBlockHash(ext))
        .collect();
    router_event(
        seq.instance,
        KvCacheEventData::Removed(KvCacheRemoveData { block_hashes }),
        id,
    )
}

fn router_event(instance: usize, data: KvCacheEventData, id: u64) -> RouterEvent {
    RouterEvent::new(
        instance as u64,
        KvCacheEvent {
            event_id: id,
            data,
            dp_rank: 0,
        },
    )
}

fn locals(prompt: &[(u64, u64)]) -> Vec<LocalBlockHash> {
    prompt.iter().map(|b| LocalBlockHash(b.0)).collect()
}

fn score(scores: &dynamo_kv_router::OverlapScores, instance: usize) -> usize {
    scores
        .scores
        .get(&WorkerWithDpRank::new(instance as u64, 0))
        .copied()
        .unwrap_or(0) as usize
}

/// `RadixTree`: single-threaded, `&mut` apply.
#[derive(Default)]
pub struct DynRadix {
    tree: RadixTree,
    id: u64,
}

impl Subject for DynRadix {
    type Event = RouterEvent;
    fn stored(&mut self, seq: &Seq, from: usize, to: usize) -> RouterEvent {
        self.id += 1;
        dynamo_stored(seq, from, to, self.id)
    }
    fn removed(&mut self, seq: &Seq, from: usize, to: usize) -> RouterEvent {
        self.id += 1;
        dynamo_removed(seq, from, to, self.id)
    }
    fn apply(&mut self, event: RouterEvent) {
        let _ = self.tree.apply_event(event);
    }
    fn overlap(&self, prompt: &[(u64, u64)], instance: usize) -> usize {
        score(&self.tree.find_matches(locals(prompt), false), instance)
    }
}

/// `PositionalIndexer` applied inline on the caller's thread, with the per-worker block map
/// its thread-pool workers would keep.
pub struct DynPositional {
    index: PositionalIndexer,
    worker_blocks: FxHashMap<WorkerWithDpRank, dynamo_kv_router::nested_map::LevelIndex>,
    id: u64,
}

impl DynPositional {
    pub fn new(jump: usize) -> Self {
        Self {
            index: PositionalIndexer::new(jump),
            worker_blocks: FxHashMap::default(),
            id: 0,
        }
    }
}

impl Subject for DynPositional {
    type Event = RouterEvent;
    fn stored(&mut self, seq: &Seq, from: usize, to: usize) -> RouterEvent {
        self.id += 1;
        dynamo_stored(seq, from, to, self.id)
    }
    fn removed(&mut self, seq: &Seq, from: usize, to: usize) -> RouterEvent {
        self.id += 1;
        dynamo_removed(seq, from, to, self.id)
    }
    fn apply(&mut self, event: RouterEvent) {
        let _ = self.index.apply_event(&mut self.worker_blocks, event, None);
    }
    fn overlap(&self, prompt: &[(u64, u64)], instance: usize) -> usize {
        score(&self.index.find_matches(&locals(prompt), false), instance)
    }
}

/// `ThreadPoolIndexer` over a `SyncIndexer`: events go to `threads` OS threads (sticky per
/// worker), queries run inline on the caller's thread.
pub struct DynPool<T: SyncIndexer> {
    pool: ThreadPoolIndexer<T>,
    rt: tokio::runtime::Runtime,
    id: u64,
}

impl<T: SyncIndexer> DynPool<T> {
    pub fn new(backend: T, threads: usize) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
        Self {
            pool: ThreadPoolIndexer::new(backend, threads, 16),
            rt,
            id: 0,
        }
    }
}

pub fn crtc(threads: usize) -> DynPool<ConcurrentRadixTreeCompressed> {
    DynPool::new(ConcurrentRadixTreeCompressed::new(), threads)
}

pub fn positional_pool(jump: usize, threads: usize) -> DynPool<PositionalIndexer> {
    DynPool::new(PositionalIndexer::new(jump), threads)
}

impl<T: SyncIndexer> Subject for DynPool<T> {
    type Event = RouterEvent;
    fn stored(&mut self, seq: &Seq, from: usize, to: usize) -> RouterEvent {
        self.id += 1;
        dynamo_stored(seq, from, to, self.id)
    }
    fn removed(&mut self, seq: &Seq, from: usize, to: usize) -> RouterEvent {
        self.id += 1;
        dynamo_removed(seq, from, to, self.id)
    }
    fn apply(&mut self, event: RouterEvent) {
        if let Err(e) = self.pool.enqueue_event(event) {
            panic!("enqueue: {e}");
        }
    }
    fn settle(&mut self) {
        if let Err(e) = self.rt.block_on(self.pool.flush_and_wait()) {
            panic!("flush: {e}");
        }
    }
    fn overlap(&self, prompt: &[(u64, u64)], instance: usize) -> usize {
        score(
            &self.pool.backend().find_matches(&locals(prompt), false),
            instance,
        )
    }
}

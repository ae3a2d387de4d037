//! KV index hot paths at 10k / 100k / 1M blocks:
//! - `apply`: a steady-state churn step — one `Stored` of a fresh 16-block sequence and one
//!   `Removed` of the oldest stored sequence, as an LRU cache reports them. Two events, 32
//!   blocks; the throughput line is blocks/s (events/s = blocks/s ÷ 16). Hashing, instance
//!   names and event construction happen outside the timed loop (`iter_custom`).
//! - `ingest_json`: the frontend's real ingest path for the same churn step: two NATS payloads
//!   (JSON, the `KvEventsMessage` shape) decoded and applied through the shared index's write
//!   lock, as the subscriber does.
//! - `overlap`: one query for a 64-block prompt whose first 48 blocks are cached on one
//!   instance and the first 16 on others — the per-request cost on the routing path.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use switchyard_kv::{BlockHash, BlockHasher, KvEvent, KvIndex, SharedKvIndex};

const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
const INSTANCES: usize = 16;
const SEQ_BLOCKS: usize = 16;

/// The NATS payload's shape (`switchyard_nats::wire::KvEventsMessage`; that crate is not a
/// dependency here, and serde does the same work for an identical struct).
#[derive(Serialize, Deserialize)]
struct KvEventsMessage {
    instance: String,
    epoch: u64,
    seq: u64,
    events: Vec<KvEvent>,
}

fn names() -> Vec<String> {
    (0..INSTANCES).map(|i| format!("inst-{i}")).collect()
}

/// A sequence's block chain: distinct token ids per sequence number.
fn chain(hasher: &BlockHasher, seq: u64, blocks: usize) -> Vec<BlockHash> {
    let bs = hasher.block_size();
    let tokens: Vec<u32> = (0..(blocks * bs) as u64)
        .map(|t| (seq.wrapping_mul(0x9E37_79B9) ^ t) as u32)
        .collect();
    hasher.hash_tokens(&tokens)
}

/// Stored sequences, oldest first, for eviction: (instance slot, its `Removed` event).
type Fifo = VecDeque<(usize, KvEvent)>;

/// The churn state of one index size: the index, what it holds, the next sequence number.
struct Churn {
    hasher: BlockHasher,
    names: Vec<String>,
    fifo: Fifo,
    next: u64,
}

impl Churn {
    /// An index holding `size` blocks spread round-robin across instances.
    fn populate(size: usize, mut apply: impl FnMut(&str, &KvEvent)) -> Self {
        let mut c = Self {
            hasher: BlockHasher::new(4),
            names: names(),
            fifo: VecDeque::new(),
            next: 0,
        };
        for _ in 0..size / SEQ_BLOCKS {
            let (inst, stored, removed) = c.fresh();
            apply(&c.names[inst], &stored);
            c.fifo.push_back((inst, removed));
        }
        c
    }

    /// The next sequence's instance and its `Stored` and `Removed` events.
    fn fresh(&mut self) -> (usize, KvEvent, KvEvent) {
        let blocks = chain(&self.hasher, self.next, SEQ_BLOCKS);
        let inst = self.next as usize % INSTANCES;
        self.next += 1;
        let removed = KvEvent::Removed {
            blocks: blocks.clone(),
        };
        (
            inst,
            KvEvent::Stored {
                parent: None,
                blocks,
            },
            removed,
        )
    }

    /// `iters` churn steps prepared ahead: (instance, stored, removed) per step.
    fn prepare(&mut self, iters: u64) -> Vec<(usize, KvEvent, KvEvent)> {
        (0..iters).map(|_| self.fresh()).collect()
    }
}

fn bench_apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("kv_index/apply");
    group.throughput(Throughput::Elements((2 * SEQ_BLOCKS) as u64));
    for size in SIZES {
        let mut idx = KvIndex::with_capacity(size);
        let mut churn = Churn::populate(size, |i, e| idx.apply(i, e));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter_custom(|iters| {
                let steps = churn.prepare(iters);
                // Evicted events are dropped after the clock stops.
                let mut evicted = Vec::with_capacity(steps.len());
                let start = Instant::now();
                for (inst, stored, removed) in steps {
                    idx.apply(&churn.names[inst], &stored);
                    churn.fifo.push_back((inst, removed));
                    if let Some((old_inst, old)) = churn.fifo.pop_front() {
                        idx.apply(&churn.names[old_inst], &old);
                        evicted.push((stored, old));
                    }
                }
                let elapsed = start.elapsed();
                drop(black_box(evicted));
                elapsed
            })
        });
    }
    group.finish();
}

fn payload(instance: &str, seq: u64, event: KvEvent) -> Vec<u8> {
    let msg = KvEventsMessage {
        instance: instance.to_owned(),
        epoch: 6_412_298_417,
        seq,
        events: vec![event],
    };
    serde_json::to_vec(&msg).unwrap_or_default()
}

fn bench_ingest_json(c: &mut Criterion) {
    let mut group = c.benchmark_group("kv_index/ingest_json");
    group.throughput(Throughput::Elements((2 * SEQ_BLOCKS) as u64));
    for size in SIZES {
        let idx = SharedKvIndex::with_capacity(size);
        let mut churn = Churn::populate(size, |i, e| idx.apply(i, e));
        // The payloads of the sequences in the index, for their eviction.
        let mut pending: VecDeque<Vec<u8>> = churn
            .fifo
            .drain(..)
            .map(|(inst, removed)| payload(&churn.names[inst], 0, removed))
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter_custom(|iters| {
                let steps: Vec<(Vec<u8>, Vec<u8>)> = churn
                    .prepare(iters)
                    .into_iter()
                    .map(|(inst, stored, removed)| {
                        let name = &churn.names[inst];
                        (payload(name, 0, stored), payload(name, 0, removed))
                    })
                    .collect();
                let mut done = Vec::with_capacity(steps.len());
                let start = Instant::now();
                for (stored, removed) in steps {
                    ingest(&idx, &stored);
                    pending.push_back(removed);
                    if let Some(old) = pending.pop_front() {
                        ingest(&idx, &old);
                        done.push((stored, old));
                    }
                }
                let elapsed = start.elapsed();
                drop(black_box(done));
                elapsed
            })
        });
    }
    group.finish();
}

/// What the subscriber does per message: decode, then apply every event under the lock.
fn ingest(idx: &SharedKvIndex, payload: &[u8]) {
    if let Ok(m) = serde_json::from_slice::<KvEventsMessage>(payload) {
        for e in &m.events {
            idx.apply(&m.instance, e);
        }
    }
}

fn bench_overlap(c: &mut Criterion) {
    let hasher = BlockHasher::new(4);
    let mut group = c.benchmark_group("kv_index/overlap_64_blocks");
    for size in SIZES {
        let mut idx = KvIndex::with_capacity(size);
        Churn::populate(size, |i, e| idx.apply(i, e));
        let prompt = chain(&hasher, 1 << 50, 64);
        idx.apply(
            "hot",
            &KvEvent::Stored {
                parent: None,
                blocks: prompt[..48].to_vec(),
            },
        );
        for i in 0..4 {
            let inst = format!("warm-{i}");
            idx.apply(
                &inst,
                &KvEvent::Stored {
                    parent: None,
                    blocks: prompt[..16].to_vec(),
                },
            );
        }
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| black_box(idx.overlap(black_box(&prompt))))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Shorter than the defaults: the 1M-block fixtures are slow to build and the machine is
    // shared; the estimates are still tight at this sample size.
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_apply, bench_ingest_json, bench_overlap
}
criterion_main!(benches);

//! KV index hot paths at 10k / 100k / 1M blocks:
//! - `apply`: a steady-state churn step (one `Stored` of a 16-block sequence and one `Removed`
//!   of the oldest 16 blocks, as an LRU cache would report), throughput in blocks;
//! - `overlap`: one query for a 64-block prompt whose first 48 blocks are cached on one
//!   instance and the first 16 on others — the per-request cost on the routing path.

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use switchyard_kv::{BlockHash, BlockHasher, KvEvent, KvIndex};

const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];
const INSTANCES: usize = 16;
const SEQ_BLOCKS: usize = 16;

/// A sequence's block chain: distinct token ids per sequence number.
fn chain(hasher: &BlockHasher, seq: u64, blocks: usize) -> Vec<BlockHash> {
    let bs = hasher.block_size();
    let tokens: Vec<u32> = (0..(blocks * bs) as u64)
        .map(|t| (seq.wrapping_mul(0x9E37_79B9) ^ t) as u32)
        .collect();
    hasher.hash_tokens(&tokens)
}

/// An index holding `size` blocks spread round-robin across instances, plus the FIFO of
/// stored sequences for eviction.
fn populated(size: usize) -> (KvIndex, VecDeque<(String, Vec<BlockHash>)>, u64) {
    let hasher = BlockHasher::new(4);
    let mut idx = KvIndex::with_capacity(size);
    let mut fifo = VecDeque::new();
    let mut seq = 0u64;
    while idx.len() < size {
        let inst = format!("inst-{}", seq as usize % INSTANCES);
        let blocks = chain(&hasher, seq, SEQ_BLOCKS);
        idx.apply(
            &inst,
            &KvEvent::Stored {
                parent: None,
                blocks: blocks.clone(),
            },
        );
        fifo.push_back((inst, blocks));
        seq += 1;
    }
    (idx, fifo, seq)
}

fn bench_apply(c: &mut Criterion) {
    let hasher = BlockHasher::new(4);
    let mut group = c.benchmark_group("kv_index/apply");
    group.throughput(Throughput::Elements((2 * SEQ_BLOCKS) as u64));
    for size in SIZES {
        let (mut idx, mut fifo, mut seq) = populated(size);
        // Pre-hash a ring of fresh sequences so hashing is not measured.
        let fresh: Vec<Vec<BlockHash>> = (0..1024)
            .map(|i| chain(&hasher, 1 << 40 | i, SEQ_BLOCKS))
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                let blocks = fresh[seq as usize % fresh.len()].clone();
                let inst = format!("inst-{}", seq as usize % INSTANCES);
                idx.apply(
                    &inst,
                    &KvEvent::Stored {
                        parent: None,
                        blocks: blocks.clone(),
                    },
                );
                fifo.push_back((inst, blocks));
                if let Some((old_inst, old)) = fifo.pop_front() {
                    idx.apply(&old_inst, &KvEvent::Removed { blocks: old });
                }
                seq += 1;
            })
        });
    }
    group.finish();
}

fn bench_overlap(c: &mut Criterion) {
    let hasher = BlockHasher::new(4);
    let mut group = c.benchmark_group("kv_index/overlap_64_blocks");
    for size in SIZES {
        let (mut idx, _, _) = populated(size);
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
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_apply, bench_overlap
}
criterion_main!(benches);

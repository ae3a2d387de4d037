//! Switchyard's index with two threads, as the frontend runs it: this thread applies the
//! churn through `SharedKvIndex` (the NATS subscriber's path, write lock per message), while a
//! second thread asks overlap queries of random resident prefixes the whole time (routing,
//! read lock). Reports the writer's rate per core of its own CPU time and the reader's CPU
//! per query under those writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use switchyard_kv::{KvEvent, SharedKvIndex};

use crate::stream::{Generator, Shape};
use crate::{rss, Opts, SEQ_BLOCKS};

/// CPU time of the calling thread in ns (`/proc/thread-self/schedstat`, first field).
fn thread_cpu_ns() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn events(gen: &Generator, id: u64, shape: Shape, stored: bool) -> (usize, Vec<KvEvent>) {
    let seq = gen.seq(id);
    let ranges = if stored {
        shape.store_ranges(seq.blocks.len())
    } else {
        shape.remove_ranges(seq.blocks.len())
    };
    let evs = ranges
        .into_iter()
        .map(|(a, b)| {
            let blocks = seq.blocks[a..b].iter().map(|x| x.0).collect();
            if stored {
                KvEvent::Stored {
                    parent: a.checked_sub(1).map(|p| seq.blocks[p].0),
                    blocks,
                }
            } else {
                KvEvent::Removed { blocks }
            }
        })
        .collect();
    (seq.instance, evs)
}

pub(crate) fn run(o: &Opts, size: usize, shape: Shape) {
    let gen = Generator {
        instances: o.instances,
        seq_blocks: SEQ_BLOCKS,
        salt: 0x5eed,
    };
    let names: Vec<String> = (0..o.instances).map(|i| format!("worker-{i:05}")).collect();
    let index = SharedKvIndex::with_capacity(size);
    let resident = (size / SEQ_BLOCKS) as u64;
    let before = rss();
    for id in 0..resident {
        let (inst, evs) = events(&gen, id, shape, true);
        index.apply_all(&names[inst], &evs);
    }
    let bytes_per_block = (rss() - before) / size as f64;

    let stop = Arc::new(AtomicBool::new(false));
    // Prompts prepared ahead (resident now or evicted during the churn, half each).
    let mut x = 0x9876_5432u64;
    let prompts: Vec<Vec<u64>> = (0..o.queries.max(1))
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let id = (x >> 33) % (2 * resident.max(1));
            gen.seq(id).blocks.iter().map(|b| b.0).collect()
        })
        .collect();
    let reader = {
        let (index, stop) = (index.clone(), stop.clone());
        std::thread::spawn(move || {
            let (cpu, mut n) = (thread_cpu_ns(), 0usize);
            while !stop.load(Ordering::Relaxed) {
                std::hint::black_box(index.overlap(&prompts[n % prompts.len()]));
                n += 1;
            }
            (thread_cpu_ns() - cpu) / n.max(1) as f64
        })
    };

    let (mut oldest, mut next) = (0u64, resident);
    let mut rounds = Vec::new();
    for _ in 0..o.rounds {
        let mut batch = Vec::with_capacity(2 * o.steps);
        for _ in 0..o.steps {
            batch.push(events(&gen, next, shape, true));
            batch.push(events(&gen, oldest, shape, false));
            next += 1;
            oldest += 1;
        }
        let (start, cpu) = (Instant::now(), thread_cpu_ns());
        for (inst, evs) in batch {
            index.apply_all(&names[inst], &evs);
        }
        let steps = o.steps as f64;
        rounds.push((
            (thread_cpu_ns() - cpu) / steps,
            start.elapsed().as_nanos() as f64 / steps,
        ));
    }
    stop.store(true, Ordering::Relaxed);
    let query_ns = reader.join().unwrap_or(f64::NAN);
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (step_ns, wall_ns) = rounds[rounds.len() / 2];
    let events =
        (shape.store_ranges(SEQ_BLOCKS).len() + shape.remove_ranges(SEQ_BLOCKS).len()) as f64;
    let per_sec = 1e9 / step_ns;
    println!(
        "| ours-2 (writer + concurrent reader) | {size} | {} | {bytes_per_block:.0} | {:.2} | {:.2} | {:.2} M | {:.1} M | – | {:.3} |",
        shape.name(),
        step_ns / 1e3,
        wall_ns / 1e3,
        events * per_sec / 1e6,
        2.0 * SEQ_BLOCKS as f64 * per_sec / 1e6,
        query_ns / 1e3,
    );
}

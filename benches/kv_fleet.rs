//! A simulated fleet feeding one frontend's KV index: N workers (no processes, no sockets),
//! each with a FIFO-evicting cache of B blocks, serve requests routed by the real `kv` policy
//! over the event-driven index; every store and eviction comes back as a KV event, applied
//! the way the NATS subscriber applies it. Measures the frontend's side only — event ingest
//! (`SharedKvIndex::apply`) and routing (`Policy::rank` over all N candidates, overlap query
//! included) — with the workers' own bookkeeping outside the timers.
//!
//! The trace: prompts open with one of 256 shared system prompts (32 blocks, Zipf-like
//! popularity), then 16–64 blocks of their own; each request then decodes 4 blocks, reported
//! one block per event as engines do. The caches are first filled with synthetic sequences so
//! the run starts in steady state (every store evicts).
//!
//! The simulation runs once to produce the trace (requests and the events they cause, in
//! order); a second, fresh index and policy then replay it with nothing but frontend work in
//! the loop, timed in CPU time of the thread (`/proc/thread-self/schedstat`), so the figure
//! holds on a busy machine. Per-request wall timers split it into ingest and routing.
//!
//! `cargo bench -p switchyard-benches --bench kv_fleet -- --workers 1000 --blocks-per-worker 100000 --requests 20000`
//! (defaults: 1000 workers, 10 000 blocks each, 20 000 requests).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use switchyard_benches::instances;
use switchyard_kv::{BlockHash, KvEvent, Overlap, SharedKvIndex};
use switchyard_runtime::policy::kv::{self, KvConfig, KvOverlap, KvRouter};
use switchyard_runtime::policy::{build_with_kv, Policy};
use switchyard_runtime::{PolicyConfig, RouteContext};

/// The index as the `kv` policy's overlap source (what `--nats` installs).
#[derive(Debug)]
struct Events(SharedKvIndex);

impl KvOverlap for Events {
    fn overlap(&self, blocks: &[BlockHash]) -> Overlap {
        self.0.overlap(blocks)
    }
    fn kind(&self) -> &'static str {
        "events"
    }
}

struct Args {
    workers: usize,
    blocks_per_worker: usize,
    requests: usize,
}

fn args() -> Args {
    let mut a = Args {
        workers: 1000,
        blocks_per_worker: 10_000,
        requests: 20_000,
    };
    let argv: Vec<String> = std::env::args().collect();
    for w in argv.windows(2) {
        let n = w[1].parse().ok();
        match (w[0].as_str(), n) {
            ("--workers", Some(n)) => a.workers = n,
            ("--blocks-per-worker", Some(n)) => a.blocks_per_worker = n,
            ("--requests", Some(n)) => a.requests = n,
            _ => {}
        }
    }
    a
}

fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// `len` chained hashes continuing from `parent`, salted by `salt`.
fn chain(parent: u64, salt: u64, len: usize) -> Vec<BlockHash> {
    let mut h = parent;
    (0..len as u64)
        .map(|i| {
            h = mix(h ^ mix(salt.wrapping_add(i)));
            h
        })
        .collect()
}

/// One simulated worker: what it stores, oldest first (FIFO eviction).
struct Worker {
    fifo: VecDeque<BlockHash>,
}

/// One request of the trace: where it went, its prompt, and the events it caused.
struct Step {
    worker: usize,
    prompt: Vec<BlockHash>,
    events: Vec<KvEvent>,
}

/// A fresh index installed as the `kv` policy's source, and the policy.
fn frontend(a: &Args) -> (SharedKvIndex, Arc<dyn Policy>) {
    let index = SharedKvIndex::with_capacity(a.workers * a.blocks_per_worker);
    let slot = kv::KvSlot::new(KvRouter {
        config: KvConfig::default(),
        source: Arc::new(Events(index.clone())),
    });
    let policy = build_with_kv(
        &PolicyConfig {
            policy: switchyard_runtime::policy::PolicyName::Kv,
            ..PolicyConfig::default()
        },
        &slot,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (index, policy)
}

/// Fills every cache with private 64-block sequences: the steady state the trace starts in.
fn fill(a: &Args, index: &SharedKvIndex, names: &[String], workers: &mut [Worker]) {
    for (w, worker) in workers.iter_mut().enumerate() {
        for s in 0..a.blocks_per_worker / 64 {
            let blocks = chain(0, ((w as u64) << 32) | s as u64, 64);
            index.apply_all(
                &names[w],
                &store(worker, a.blocks_per_worker, None, &blocks),
            );
        }
    }
}

fn new_workers(a: &Args) -> Vec<Worker> {
    (0..a.workers)
        .map(|_| Worker {
            fifo: VecDeque::with_capacity(a.blocks_per_worker + 128),
        })
        .collect()
}

/// CPU time of this thread in ns (`/proc/thread-self/schedstat`, first field).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Stores `blocks` on worker `w` and evicts past `cap`: the events the worker would publish.
fn store(worker: &mut Worker, cap: usize, parent: Option<u64>, blocks: &[u64]) -> Vec<KvEvent> {
    let mut out = vec![KvEvent::Stored {
        parent,
        blocks: blocks.to_vec(),
    }];
    worker.fifo.extend(blocks);
    let mut evicted = Vec::new();
    while worker.fifo.len() > cap {
        if let Some(b) = worker.fifo.pop_front() {
            evicted.push(b);
        }
    }
    // Engines report evictions one block at a time.
    out.extend(
        evicted
            .into_iter()
            .map(|b| KvEvent::Removed { blocks: vec![b] }),
    );
    out
}

/// Runs the fleet with the real policy and returns the trace (and the cache hit rate).
fn simulate(
    a: &Args,
    refs: &[&Arc<switchyard_runtime::Instance>],
    names: &[String],
) -> (Vec<Step>, f64) {
    let (index, policy) = frontend(a);
    let mut workers = new_workers(a);
    fill(a, &index, names, &mut workers);
    let mut rng = SmallRng::seed_from_u64(7);
    let systems: Vec<Vec<u64>> = (0..256).map(|s| chain(0, 1 << 60 | s, 32)).collect();
    let (mut hits, mut prompt_blocks) = (0u64, 0u64);
    let mut trace = Vec::with_capacity(a.requests);
    for r in 0..a.requests as u64 {
        // Zipf-like: low system-prompt numbers are far more popular.
        let sys = &systems[(rng.gen::<f64>().powi(3) * 256.0) as usize % 256];
        let mut prompt = sys.clone();
        let own = rng.gen_range(16..=64);
        prompt.extend(chain(*sys.last().unwrap_or(&0), 1 << 61 | r, own));
        let ctx = RouteContext {
            block_hashes: &prompt,
            want: 1,
            ..RouteContext::default()
        };
        let w = policy.rank(&ctx, refs).first().copied().unwrap_or(0);
        // The worker prefills what it lacks (the leading run it holds is reused) and decodes.
        let cached = index.overlap(&prompt).get(&names[w]);
        hits += cached as u64;
        prompt_blocks += prompt.len() as u64;
        let parent = cached.checked_sub(1).map(|i| prompt[i]);
        let mut events = store(
            &mut workers[w],
            a.blocks_per_worker,
            parent,
            &prompt[cached..],
        );
        let mut last = *prompt.last().unwrap_or(&0);
        for d in chain(last, 1 << 62 | r, 4) {
            events.extend(store(
                &mut workers[w],
                a.blocks_per_worker,
                Some(last),
                &[d],
            ));
            last = d;
        }
        index.apply_all(&names[w], &events);
        trace.push(Step {
            worker: w,
            prompt,
            events,
        });
    }
    (trace, hits as f64 / prompt_blocks.max(1) as f64)
}

fn main() {
    let a = args();
    let inst = instances(a.workers);
    let refs: Vec<_> = inst.iter().collect();
    let names: Vec<String> = inst.iter().map(|i| i.id().to_owned()).collect();
    let (trace, hit_rate) = simulate(&a, &refs, &names);

    // The replay: a fresh frontend in the same starting state, then only frontend work.
    let (index, policy) = frontend(&a);
    let fill_start = Instant::now();
    fill(&a, &index, &names, &mut new_workers(&a));
    let (fill_time, filled) = (fill_start.elapsed(), index.len());
    let (mut ingest, mut route) = (Duration::ZERO, Duration::ZERO);
    let (mut events, mut blocks) = (0u64, 0u64);
    let cpu = cpu_ns();
    let wall = Instant::now();
    for step in &trace {
        let t0 = Instant::now();
        let ctx = RouteContext {
            block_hashes: &step.prompt,
            want: 1,
            ..RouteContext::default()
        };
        std::hint::black_box(policy.rank(&ctx, &refs));
        let t1 = Instant::now();
        index.apply_all(&names[step.worker], &step.events);
        ingest += t1.elapsed();
        route += t1 - t0;
    }
    let (cpu, wall) = ((cpu_ns() - cpu) as f64, wall.elapsed().as_nanos() as f64);
    for step in &trace {
        events += step.events.len() as u64;
        blocks += step
            .events
            .iter()
            .map(|e| match e {
                KvEvent::Stored { blocks, .. } | KvEvent::Removed { blocks } => blocks.len(),
                KvEvent::Cleared => 0,
            } as u64)
            .sum::<u64>();
    }

    let n = a.requests as f64;
    // Split the CPU time in the proportion of the wall timers.
    let ingest_share = ingest.as_secs_f64() / (ingest + route).as_secs_f64().max(1e-12);
    let (ingest_cpu, route_cpu) = (cpu * ingest_share, cpu * (1.0 - ingest_share));
    println!(
        "fleet: {} workers x {} blocks; index {} blocks after fill ({:.1} s)",
        a.workers,
        a.blocks_per_worker,
        filled,
        fill_time.as_secs_f64()
    );
    println!(
        "trace: {} requests, hit rate {:.3}, {:.1} events ({:.1} blocks) per request",
        a.requests,
        hit_rate,
        events as f64 / n,
        blocks as f64 / n
    );
    println!(
        "replay: {:.1} µs CPU per request ({:.1} µs wall): {:.0} requests/s per core",
        cpu / n / 1e3,
        wall / n / 1e3,
        n / cpu * 1e9
    );
    println!(
        "ingest: {:.0} ns CPU per event, {:.2} M events/s, {:.1} M blocks/s per core",
        ingest_cpu / events as f64,
        events as f64 / ingest_cpu * 1e3,
        blocks as f64 / ingest_cpu * 1e3
    );
    println!(
        "routing: {:.1} µs CPU per request over {} candidates (overlap query + kv cost + pick)",
        route_cpu / n / 1e3,
        a.workers
    );
}

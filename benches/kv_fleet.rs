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
use switchyard_runtime::policy::{build, Policy};
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

/// The frontend side of the run: the index, the policy, and the time spent in each.
struct Frontend {
    index: SharedKvIndex,
    policy: Arc<dyn Policy>,
    names: Vec<String>,
    ingest: Duration,
    events: u64,
    blocks: u64,
    route: Duration,
}

impl Frontend {
    fn ingest(&mut self, worker: usize, events: &[KvEvent]) {
        let start = Instant::now();
        for e in events {
            self.index.apply(&self.names[worker], e);
        }
        self.ingest += start.elapsed();
        self.events += events.len() as u64;
        self.blocks += events
            .iter()
            .map(|e| match e {
                KvEvent::Stored { blocks, .. } | KvEvent::Removed { blocks } => blocks.len(),
                KvEvent::Cleared => 0,
            } as u64)
            .sum::<u64>();
    }
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

fn main() {
    let a = args();
    let inst = instances(a.workers);
    let refs: Vec<_> = inst.iter().collect();
    let index = SharedKvIndex::with_capacity(a.workers * a.blocks_per_worker);
    kv::install(KvRouter {
        config: KvConfig::default(),
        source: Arc::new(Events(index.clone())),
    });
    let policy = build(&PolicyConfig {
        policy: "kv".to_owned(),
        ..PolicyConfig::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let mut fe = Frontend {
        index,
        policy,
        names: inst.iter().map(|i| i.id().to_owned()).collect(),
        ingest: Duration::ZERO,
        events: 0,
        blocks: 0,
        route: Duration::ZERO,
    };
    let mut workers: Vec<Worker> = (0..a.workers)
        .map(|_| Worker {
            fifo: VecDeque::with_capacity(a.blocks_per_worker + 128),
        })
        .collect();

    // Fill every cache with private 64-block sequences (not timed).
    let fill = Instant::now();
    for (w, worker) in workers.iter_mut().enumerate() {
        for s in 0..a.blocks_per_worker / 64 {
            let blocks = chain(0, ((w as u64) << 32) | s as u64, 64);
            let events = store(worker, a.blocks_per_worker, None, &blocks);
            fe.ingest(w, &events);
        }
    }
    let filled = (fill.elapsed(), fe.index.len());
    fe.ingest = Duration::ZERO;
    fe.events = 0;
    fe.blocks = 0;

    let mut rng = SmallRng::seed_from_u64(7);
    let systems: Vec<Vec<u64>> = (0..256).map(|s| chain(0, 1 << 60 | s, 32)).collect();
    let mut hits = 0u64;
    let mut prompt_blocks = 0u64;
    for r in 0..a.requests as u64 {
        // Zipf-like: low system-prompt numbers are far more popular.
        let sys = &systems[(rng.gen::<f64>().powi(3) * 256.0) as usize % 256];
        let own = rng.gen_range(16..=64);
        let mut prompt = sys.clone();
        let tail = chain(*sys.last().unwrap_or(&0), 1 << 61 | r, own);
        prompt.extend(&tail);

        let start = Instant::now();
        let ranked = fe.policy.rank(
            &RouteContext {
                session_key: None,
                block_hashes: &prompt,
                want: 1,
            },
            &refs,
        );
        fe.route += start.elapsed();
        let w = ranked.first().copied().unwrap_or(0);

        // The worker prefills what it lacks (the leading run it holds is reused) and decodes.
        let cached = fe.index.overlap(&prompt).get(&fe.names[w]);
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
        fe.ingest(w, &events);
    }

    let n = a.requests as f64;
    let ingest_ns = fe.ingest.as_nanos() as f64;
    let route_ns = fe.route.as_nanos() as f64;
    println!(
        "fleet: {} workers x {} blocks; index {} blocks after fill ({:.1} s)",
        a.workers,
        a.blocks_per_worker,
        filled.1,
        filled.0.as_secs_f64()
    );
    println!(
        "requests {}: hit rate {:.3}, {:.1} events ({:.1} blocks) per request",
        a.requests,
        hits as f64 / prompt_blocks as f64,
        fe.events as f64 / n,
        fe.blocks as f64 / n
    );
    println!(
        "ingest: {:.0} ns/event, {:.2} M events/s, {:.2} M blocks/s on one core",
        ingest_ns / fe.events as f64,
        fe.events as f64 / ingest_ns * 1e3,
        fe.blocks as f64 / ingest_ns * 1e3
    );
    println!(
        "routing: {:.1} µs/request over {} candidates (overlap query + kv cost + pick)",
        route_ns / n / 1e3,
        a.workers
    );
    println!(
        "frontend CPU per request (ingest + routing): {:.1} µs -> {:.0} requests/s per core",
        (ingest_ns + route_ns) / n / 1e3,
        n / (ingest_ns + route_ns) * 1e9
    );
}

//! Switchyard's KV index against Dynamo's (`dynamo-kv-router`) on one event stream.
//!
//! For each (index, size, event shape) a child process (so memory is measured alone):
//! 1. stores `size` blocks as 16-block sequences on `instances` instances round-robin and
//!    reports the resident-memory growth per block;
//! 2. times churn steps — store a fresh sequence, evict the oldest — with events converted
//!    to the index's own type before the clock starts (median of rounds). Time is CPU time
//!    of all the process's threads (a thread-pool index's workers included), so rates are
//!    per core and hold on a busy machine; wall time is reported beside it;
//! 3. times overlap queries: `hot` (one 64-block prompt, 48 blocks cached on one instance and
//!    16 on four others, asked again and again) and `random` (a random resident sequence plus
//!    16 uncached blocks: each query walks cold memory), checking every answer once.
//!
//! `cargo run --release -- --help` for the options; results go to stdout as a markdown table.

mod before;
mod shared;
mod stream;
mod subjects;

use std::process::Command;
use std::time::Instant;

use stream::{Generator, Shape};
use subjects::Subject;

pub(crate) const SEQ_BLOCKS: usize = 16;
const HELP: &str = "kv-index-peer [--sizes 10000,100000,1000000,10000000] \
[--subjects before,ours,ours-2,radix,positional,crtc-1,crtc-2,positional-pool-2] [--shapes batched,single] \
[--instances 16] [--steps 20000] [--rounds 3] [--queries 100000]";

#[derive(Debug, Clone)]
pub(crate) struct Opts {
    pub(crate) sizes: Vec<usize>,
    pub(crate) subjects: Vec<String>,
    pub(crate) shapes: Vec<String>,
    pub(crate) instances: usize,
    pub(crate) steps: usize,
    pub(crate) rounds: usize,
    pub(crate) queries: usize,
}

fn list(v: &str) -> Vec<String> {
    v.split(',').map(str::to_owned).collect()
}

fn parse(args: &[String]) -> Result<(Opts, Option<(String, usize, String)>), String> {
    let mut o = Opts {
        sizes: vec![10_000, 100_000, 1_000_000, 10_000_000],
        subjects: list("before,ours,ours-2,radix,positional,crtc-1,crtc-2,positional-pool-2"),
        shapes: list("batched,single"),
        instances: 16,
        steps: 20_000,
        rounds: 3,
        queries: 100_000,
    };
    let mut one = None;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        let num = |v: String| v.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--sizes" => {
                o.sizes = list(&val()?)
                    .into_iter()
                    .map(num)
                    .collect::<Result<_, _>>()?
            }
            "--subjects" => o.subjects = list(&val()?),
            "--shapes" => o.shapes = list(&val()?),
            "--instances" => o.instances = num(val()?)?,
            "--steps" => o.steps = num(val()?)?,
            "--rounds" => o.rounds = num(val()?)?,
            "--queries" => o.queries = num(val()?)?,
            "--one" => {
                let s = val()?;
                let n = num(val()?)?;
                one = Some((s, n, val()?));
            }
            "-h" | "--help" => return Err(HELP.to_owned()),
            other => return Err(format!("unknown argument {other}\n{HELP}")),
        }
    }
    Ok((o, one))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (opts, one) = match parse(&args) {
        Ok(v) => v,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    if let Some((subject, size, shape)) = one {
        child(&opts, &subject, size, &shape);
        return;
    }
    println!("| index | blocks | shape | bytes/block | step CPU (µs) | step wall (µs) | events/s per core | blocks/s per core | hot query (µs CPU) | random query (µs CPU) |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current exe: {e}"));
    for &size in &opts.sizes {
        for shape in &opts.shapes {
            for subject in &opts.subjects {
                let out = Command::new(&exe)
                    .args(&args)
                    .args(["--one", subject, &size.to_string(), shape])
                    .output()
                    .unwrap_or_else(|e| panic!("spawn: {e}"));
                let line = String::from_utf8_lossy(&out.stdout);
                if out.status.success() {
                    print!("{line}");
                } else {
                    println!(
                        "| {subject} | {size} | {shape} | failed: {} |",
                        String::from_utf8_lossy(&out.stderr)
                            .lines()
                            .last()
                            .unwrap_or("")
                    );
                }
            }
        }
    }
}

fn child(o: &Opts, subject: &str, size: usize, shape: &str) {
    let shape = match shape {
        "batched" => Shape::Batched,
        "single" => Shape::Single,
        s => panic!("unknown shape {s}"),
    };
    let m = match subject {
        "ours" => run(o, subjects::Ours::new(o.instances + 5, size), size, shape),
        "ours-2" => return shared::run(o, size, shape),
        "before" => run(o, subjects::Before::new(o.instances + 5, size), size, shape),
        "radix" => run(o, subjects::DynRadix::default(), size, shape),
        "positional" => run(o, subjects::DynPositional::new(32), size, shape),
        "crtc-1" => run(o, subjects::crtc(1), size, shape),
        "crtc-2" => run(o, subjects::crtc(2), size, shape),
        "positional-pool-1" => run(o, subjects::positional_pool(32, 1), size, shape),
        "positional-pool-2" => run(o, subjects::positional_pool(32, 2), size, shape),
        s => panic!("unknown subject {s}"),
    };
    let events =
        (shape.store_ranges(SEQ_BLOCKS).len() + shape.remove_ranges(SEQ_BLOCKS).len()) as f64;
    let per_sec = 1e9 / m.step_ns;
    println!(
        "| {subject} | {size} | {} | {:.0} | {:.2} | {:.2} | {:.2} M | {:.1} M | {:.3} | {:.3} |",
        shape.name(),
        m.bytes_per_block,
        m.step_ns / 1e3,
        m.step_wall_ns / 1e3,
        events * per_sec / 1e6,
        2.0 * SEQ_BLOCKS as f64 * per_sec / 1e6,
        m.hot_ns / 1e3,
        m.random_ns / 1e3,
    );
}

struct Measured {
    bytes_per_block: f64,
    /// CPU (all threads) per churn step; and wall time.
    step_ns: f64,
    step_wall_ns: f64,
    hot_ns: f64,
    random_ns: f64,
}

/// CPU time of every thread of this process, in ns (`/proc/self/task/*/schedstat`, first
/// field). Rates are per core-second of CPU, so a busy shared machine (or an index's idle
/// worker threads) does not blur them the way wall time does.
fn cpu_ns() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum()
}

/// Resident set size in bytes (Linux `/proc/self/statm`, second field, in pages).
pub(crate) fn rss() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0
}

fn store<S: Subject>(s: &mut S, seq: &stream::Seq, shape: Shape, out: &mut Vec<S::Event>) {
    for (a, b) in shape.store_ranges(seq.blocks.len()) {
        out.push(s.stored(seq, a, b));
    }
}

fn remove<S: Subject>(s: &mut S, seq: &stream::Seq, shape: Shape, out: &mut Vec<S::Event>) {
    for (a, b) in shape.remove_ranges(seq.blocks.len()) {
        out.push(s.removed(seq, a, b));
    }
}

fn run<S: Subject>(o: &Opts, mut s: S, size: usize, shape: Shape) -> Measured {
    let gen = Generator {
        instances: o.instances,
        seq_blocks: SEQ_BLOCKS,
        salt: 0x5eed,
    };
    let resident = (size / SEQ_BLOCKS) as u64;
    let before = rss();
    let mut batch = Vec::new();
    for id in 0..resident {
        store(&mut s, &gen.seq(id), shape, &mut batch);
        for e in batch.drain(..) {
            s.apply(e);
        }
    }
    s.settle();
    let bytes_per_block = (rss() - before) / size as f64;

    // Churn: the oldest resident sequence is `oldest`, the next fresh one `next`.
    let (mut oldest, mut next) = (0u64, resident);
    let mut rounds = Vec::new();
    for _ in 0..o.rounds {
        let mut events = Vec::with_capacity(o.steps * 32);
        for _ in 0..o.steps {
            store(&mut s, &gen.seq(next), shape, &mut events);
            remove(&mut s, &gen.seq(oldest), shape, &mut events);
            next += 1;
            oldest += 1;
        }
        let (start, cpu) = (Instant::now(), cpu_ns());
        for e in events {
            s.apply(e);
        }
        s.settle();
        let steps = o.steps as f64;
        rounds.push((
            (cpu_ns() - cpu) / steps,
            start.elapsed().as_nanos() as f64 / steps,
        ));
    }
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (step_ns, step_wall_ns) = rounds[rounds.len() / 2];

    // Hot prompt: 48 blocks on instance `instances`, 16 on the four after it.
    let hot = Generator {
        instances: o.instances + 5,
        ..gen
    };
    let prompt = hot.chain(u64::MAX, 64);
    let mut events = Vec::new();
    let hot_seq = stream::Seq {
        instance: o.instances,
        blocks: prompt[..48].to_vec(),
    };
    events.push(s.stored(&hot_seq, 0, 48));
    for w in 1..=4 {
        let warm = stream::Seq {
            instance: o.instances + w,
            blocks: prompt[..16].to_vec(),
        };
        events.push(s.stored(&warm, 0, 16));
    }
    for e in events {
        s.apply(e);
    }
    s.settle();
    assert_eq!(s.overlap(&prompt, o.instances), 48, "hot overlap");
    let cpu = cpu_ns();
    for _ in 0..o.queries {
        std::hint::black_box(s.overlap(std::hint::black_box(&prompt), o.instances));
    }
    let hot_ns = (cpu_ns() - cpu) / o.queries as f64;

    // Random resident prefixes, each followed by 16 blocks nobody holds; each asked once, so
    // the walk meets cold memory as a fleet's varied prompts do.
    let mut x = 0x1234_5678u64;
    let distinct = o.queries.min(resident as usize).max(1);
    let prompts: Vec<(usize, Vec<(u64, u64)>)> = (0..distinct)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let id = oldest + (x >> 33) % (next - oldest);
            let seq = gen.seq(id);
            let mut blocks = seq.blocks.clone();
            blocks.extend(gen.chain(u64::MAX - 1 - id, 16));
            (seq.instance, blocks)
        })
        .collect();
    for (inst, p) in prompts.iter().take(64) {
        assert_eq!(s.overlap(p, *inst), SEQ_BLOCKS, "random overlap");
    }
    let cpu = cpu_ns();
    for i in 0..o.queries {
        let (inst, p) = &prompts[i % prompts.len()];
        std::hint::black_box(s.overlap(std::hint::black_box(p), *inst));
    }
    let random_ns = (cpu_ns() - cpu) / o.queries as f64;
    Measured {
        bytes_per_block,
        step_ns,
        step_wall_ns,
        hot_ns,
        random_ns,
    }
}

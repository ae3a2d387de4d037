//! Adversarial test plugin: a picker that uses WASI to print, sleep or read the clocks, as a
//! plugin author debugging a policy might. Configured with one word:
//!
//! - `print`: writes a line to stdout and stderr on every `pick`, then ranks in input order;
//! - `sleep`: sleeps for 1 s in `pick` (a blocking `wasi:io/poll` wait; long enough that the
//!   timer cannot have run out by the time the host polls it, even on a loaded machine);
//! - `clock`: ranks in input order, rotated by the WASI wall clock's nanoseconds;
//! - `random`: ranks in input order, rotated by WASI randomness (std's hash-map keys).
//!
//! `clock` and `random` replay identically only if the host pins WASI's clocks and seeds its
//! random numbers.
//!
//! Exists only for the tests; see README.md. Never deploy it.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use exports::switchyard::plugin::lifecycle::{Guest as Lifecycle, Topology};
use exports::switchyard::plugin::picking::{Candidate, Guest as Export, Request};

wit_bindgen::generate!({ path: "../../../../wit", world: "switchyard:plugin/picker" });

#[derive(Clone, Copy)]
enum Mode {
    Print,
    Sleep,
    Clock,
    Random,
}

thread_local! {
    static MODE: Cell<Mode> = const { Cell::new(Mode::Print) };
}

struct Plugin;

impl Lifecycle for Plugin {
    fn configure(config: String) -> Result<(), String> {
        let mode = match config.trim().trim_matches('"') {
            "print" | "" | "{}" => Mode::Print,
            "sleep" => Mode::Sleep,
            "clock" => Mode::Clock,
            "random" => Mode::Random,
            other => return Err(format!("unknown mode {other:?}: print | sleep | clock | random")),
        };
        MODE.with(|m| m.set(mode));
        Ok(())
    }

    fn on_topology(_topology: Topology) {}
}

export!(Plugin);

impl Export for Plugin {
    fn pick(_request: Request, candidates: Vec<Candidate>) -> Vec<u32> {
        let n = candidates.len() as u32;
        let mut rotate = 0;
        match MODE.with(Cell::get) {
            Mode::Print => {
                println!("testing-blocking: picking among {n}");
                eprintln!("testing-blocking: (stderr) picking among {n}");
            }
            Mode::Sleep => std::thread::sleep(Duration::from_secs(1)),
            Mode::Clock => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                rotate = nanos % n.max(1);
            }
            Mode::Random => {
                let random = RandomState::new().hash_one(0u8);
                rotate = (random % u64::from(n.max(1))) as u32;
            }
        }
        (0..n).map(|i| (i + rotate) % n.max(1)).collect()
    }
}

//! Adversarial test plugin: recurses without bound in `score`; the host must report the stack overflow as a trap.
//! Exists only for switchyard-plugin-host's tests; see README.md. Never deploy it.

use exports::switchyard::plugin::lifecycle::{Guest as Lifecycle, Topology};
use exports::switchyard::plugin::scoring::{Candidate, Guest as Export, Request};

wit_bindgen::generate!({ path: "../../../../wit", world: "switchyard:plugin/scorer" });

struct Plugin;

impl Lifecycle for Plugin {
    fn configure(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn on_topology(_topology: Topology) {}
}

export!(Plugin);

#[inline(never)]
#[allow(unconditional_recursion)] // The point of this plugin.
fn descend(depth: u64) -> u64 {
    // The frame holds data that depends on `depth`, so it cannot become a loop.
    let frame = std::hint::black_box([depth; 16]);
    descend(frame[(depth % 16) as usize].wrapping_add(1)).wrapping_add(frame[0])
}

impl Export for Plugin {
    fn score(_request: Request, candidates: Vec<Candidate>) -> Vec<f64> {
        let depth = descend(std::hint::black_box(0));
        vec![depth as f64; candidates.len()]
    }
}

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
    // Values only (no address taken), so every frame lives on the engine's native wasm stack
    // rather than the shadow stack in linear memory: the host's stack limit must catch it.
    // `rotate_left` + `^` keeps LLVM from turning the recursion into a loop.
    descend(depth.wrapping_add(1)).rotate_left((depth % 63) as u32) ^ depth
}

impl Export for Plugin {
    fn score(_request: Request, candidates: Vec<Candidate>) -> Vec<f64> {
        let depth = descend(std::hint::black_box(0));
        vec![depth as f64; candidates.len()]
    }
}

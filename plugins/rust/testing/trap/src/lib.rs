//! Adversarial test plugin: panics (a Wasm trap) when `request.prompt-blocks == 13`, otherwise ranks candidates in input order; the host must discard the trapped instance and use a fresh one next time.
//! Exists only for switchyard-plugin-host's tests; see README.md. Never deploy it.

use exports::switchyard::plugin::lifecycle::{Guest as Lifecycle, Topology};
use exports::switchyard::plugin::picking::{Candidate, Guest as Export, Request};

wit_bindgen::generate!({ path: "../../../../wit", world: "switchyard:plugin/picker" });

struct Plugin;

impl Lifecycle for Plugin {
    fn configure(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn on_topology(_topology: Topology) {}
}

export!(Plugin);

/// The trigger value, so tests can choose between a trap and a normal answer.
const TRAP_ON_PROMPT_BLOCKS: u32 = 13;

impl Export for Plugin {
    fn pick(request: Request, candidates: Vec<Candidate>) -> Vec<u32> {
        if request.prompt_blocks == TRAP_ON_PROMPT_BLOCKS {
            panic!("testing-trap: asked to trap");
        }
        (0..candidates.len() as u32).collect()
    }
}

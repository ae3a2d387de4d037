//! Adversarial test plugin: spins forever in `pick`; the host's epoch deadline must stop it.
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

impl Export for Plugin {
    fn pick(_request: Request, _candidates: Vec<Candidate>) -> Vec<u32> {
        let mut spins = 0u64;
        loop {
            // black_box keeps the optimiser from proving the loop useless.
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }
}

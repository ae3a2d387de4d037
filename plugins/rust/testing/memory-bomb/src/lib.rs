//! Adversarial test plugin: allocates and touches memory in `score` until the allocator fails; the host's memory cap must stop it.
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

impl Export for Plugin {
    fn score(_request: Request, candidates: Vec<Candidate>) -> Vec<f64> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // 1 MiB at a time, written so the pages are really used.
            hoard.push(vec![std::hint::black_box(1u8); 1 << 20]);
            if std::hint::black_box(hoard.len()) == usize::MAX {
                return vec![0.0; candidates.len()];
            }
        }
    }
}

//! Adversarial test plugin: returns NaN for every candidate; the host must reject non-finite scores.
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
        vec![f64::NAN; candidates.len()]
    }
}

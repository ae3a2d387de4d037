//! Test plugin: implements the combined `router` world with trivial, well-formed answers, so
//! the host's tests can check `detect_kinds` reports every kind plus `Router`, and that one
//! component can serve every stage. See README.md. Never deploy it.

use exports::switchyard::plugin::filtering::Guest as Filtering;
use exports::switchyard::plugin::health_assessment::{Guest as Assessment, Observation, Verdict};
use exports::switchyard::plugin::lifecycle::{Guest as Lifecycle, Topology};
use exports::switchyard::plugin::picking::Guest as Picking;
use exports::switchyard::plugin::scoring::{Candidate, Guest as Scoring, Request};
use switchyard::plugin::host;

wit_bindgen::generate!({ path: "../../../../wit", world: "switchyard:plugin/router" });

struct Plugin;

impl Lifecycle for Plugin {
    fn configure(_config: String) -> Result<(), String> {
        host::log(host::LogLevel::Debug, "all-kinds configured");
        Ok(())
    }

    fn on_topology(_topology: Topology) {}
}

impl Filtering for Plugin {
    /// Keeps every candidate at an even position.
    fn filter(_request: Request, candidates: Vec<Candidate>) -> Vec<u32> {
        (0..candidates.len() as u32)
            .filter(|i| i % 2 == 0)
            .collect()
    }
}

impl Scoring for Plugin {
    /// The candidate's position, so the last one scores highest.
    fn score(_request: Request, candidates: Vec<Candidate>) -> Vec<f64> {
        (0..candidates.len()).map(|i| i as f64).collect()
    }
}

impl Picking for Plugin {
    /// Reverse order.
    fn pick(_request: Request, candidates: Vec<Candidate>) -> Vec<u32> {
        (0..candidates.len() as u32).rev().collect()
    }
}

impl Assessment for Plugin {
    /// Healthy unless the last observation of an instance is a failure; uses the clock and
    /// random imports so replay determinism covers them.
    fn assess(observations: Vec<Observation>) -> Vec<Verdict> {
        let _ = (host::monotonic_now(), host::random());
        let mut verdicts: Vec<Verdict> = Vec::new();
        for o in observations {
            use switchyard::plugin::types::ObservationKind as K;
            let healthy = matches!(o.kind, K::ProbeOk | K::RequestOk);
            match verdicts.iter_mut().find(|v| v.id == o.id) {
                Some(v) => v.healthy = healthy,
                None => verdicts.push(Verdict { id: o.id, healthy }),
            }
        }
        verdicts
    }
}

export!(Plugin);

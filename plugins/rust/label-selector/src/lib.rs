//! `label-selector` filter: keeps only the instances whose labels match a selector, e.g. a GPU
//! type, a zone or a canary pool. Labels arrive once per topology change (`on-topology`) and are
//! cached here as the sorted ids of the matching instances, so each decision is a binary search
//! per candidate.

use std::cell::RefCell;
use std::collections::BTreeMap;

use exports::switchyard::plugin::filtering::{Candidate, Guest as Filtering, Request};
use exports::switchyard::plugin::lifecycle::{Guest as Lifecycle, Topology};

wit_bindgen::generate!({ path: "../../../wit", world: "switchyard:plugin/filter" });

#[derive(Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// Every key must be present with exactly this value (an empty selector keeps everything).
    #[serde(rename = "match")]
    selector: BTreeMap<String, String>,
    /// When no candidate matches, keep them all instead of filtering every one out.
    fallback_to_all: bool,
}

#[derive(Default)]
struct State {
    config: Config,
    /// Ids of the instances in the last topology whose labels match, sorted (a binary search
    /// per candidate is cheaper in Wasm than hashing).
    matching: Vec<u32>,
    /// The last topology's labels, kept so a new configuration can be applied to it.
    labels: Vec<(u32, BTreeMap<String, String>)>,
}

impl State {
    fn recompute(&mut self) {
        let selector = &self.config.selector;
        self.matching = self
            .labels
            .iter()
            .filter(|(_, labels)| selector.iter().all(|(k, v)| labels.get(k) == Some(v)))
            .map(|(id, _)| *id)
            .collect();
        self.matching.sort_unstable();
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

struct LabelSelector;

impl Lifecycle for LabelSelector {
    fn configure(config: String) -> Result<(), String> {
        let parsed: Config =
            serde_json::from_str(&config).map_err(|e| format!("label-selector config: {e}"))?;
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            s.config = parsed;
            s.recompute();
        });
        Ok(())
    }

    fn on_topology(topology: Topology) {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            s.labels = topology
                .instances
                .into_iter()
                .map(|i| (i.id, i.labels.into_iter().collect()))
                .collect();
            s.recompute();
        });
    }
}

impl Filtering for LabelSelector {
    fn filter(_request: Request, candidates: Vec<Candidate>) -> Vec<u32> {
        STATE.with(|s| {
            let s = s.borrow();
            let kept: Vec<u32> = (0..candidates.len() as u32)
                .filter(|&i| s.matching.binary_search(&candidates[i as usize].id).is_ok())
                .collect();
            if kept.is_empty() && s.config.fallback_to_all {
                (0..candidates.len() as u32).collect()
            } else {
                kept
            }
        })
    }
}

export!(LabelSelector);

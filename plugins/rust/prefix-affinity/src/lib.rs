//! `prefix-affinity` scorer: prefers the instance that already caches the longest prefix of
//! the prompt, so its prefill is cheaper, minus a load penalty so one hot instance does not
//! take everything.
//!
//! score = cached-prefix-blocks / max(prompt-blocks, 1) - load_weight * in-flight / (1 + max in-flight)

use std::cell::Cell;

use exports::switchyard::plugin::lifecycle::{Guest as Lifecycle, Topology};
use exports::switchyard::plugin::scoring::{Candidate, Guest as Scoring, Request};

wit_bindgen::generate!({ path: "../../../wit", world: "switchyard:plugin/scorer" });

#[derive(Clone, Copy, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// How much load counts against cache overlap (0 = pure affinity).
    load_weight: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self { load_weight: 0.5 }
    }
}

thread_local! {
    static CONFIG: Cell<Config> = Cell::new(Config::default());
}

struct PrefixAffinity;

impl Lifecycle for PrefixAffinity {
    fn configure(config: String) -> Result<(), String> {
        let parsed: Config =
            serde_json::from_str(&config).map_err(|e| format!("prefix-affinity config: {e}"))?;
        if !parsed.load_weight.is_finite() || parsed.load_weight < 0.0 {
            return Err("prefix-affinity config: load_weight must be finite and >= 0".into());
        }
        CONFIG.with(|c| c.set(parsed));
        Ok(())
    }

    fn on_topology(_topology: Topology) {}
}

impl Scoring for PrefixAffinity {
    fn score(request: Request, candidates: Vec<Candidate>) -> Vec<f64> {
        let cfg = CONFIG.with(Cell::get);
        let blocks = f64::from(request.prompt_blocks.max(1));
        let max_in_flight = candidates.iter().map(|c| c.in_flight).max().unwrap_or(0);
        let load_scale = 1.0 + f64::from(max_in_flight);
        candidates
            .iter()
            .map(|c| {
                let overlap = (f64::from(c.cached_prefix_blocks) / blocks).min(1.0);
                overlap - cfg.load_weight * f64::from(c.in_flight) / load_scale
            })
            .collect()
    }
}

export!(PrefixAffinity);

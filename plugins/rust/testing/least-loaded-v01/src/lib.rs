//! `least-loaded` as it was built against `switchyard:plugin@0.1.0` (candidates as a list of
//! records), kept so the host can show a 0.1.0 component still loads and decides as the 0.2.0
//! `least-loaded` does, and so `switchyard plugin bench` can compare the two. Test-only.
//!
//! score = -(in_flight_weight * in-flight + queued_weight * queued + kv_usage_weight * kv-usage),
//! divided by the instance's routing weight so heavier instances take proportionally more load.

use std::cell::Cell;

use exports::switchyard::plugin::lifecycle::{Guest as Lifecycle, Topology};
use exports::switchyard::plugin::scoring::{Candidate, Guest as Scoring, Request};

wit_bindgen::generate!({ path: "../../../../wit", world: "switchyard:plugin/scorer" });

/// Coefficients of the load formula; see the README.
#[derive(Clone, Copy, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    in_flight_weight: f64,
    queued_weight: f64,
    kv_usage_weight: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            in_flight_weight: 1.0,
            queued_weight: 1.0,
            kv_usage_weight: 4.0,
        }
    }
}

thread_local! {
    // Wasm instances are single-threaded; thread_local is just a safe global.
    static CONFIG: Cell<Config> = Cell::new(Config::default());
}

struct LeastLoaded;

impl Lifecycle for LeastLoaded {
    fn configure(config: String) -> Result<(), String> {
        let parsed: Config =
            serde_json::from_str(&config).map_err(|e| format!("least-loaded config: {e}"))?;
        let all = [
            parsed.in_flight_weight,
            parsed.queued_weight,
            parsed.kv_usage_weight,
        ];
        if all.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err("least-loaded config: weights must be finite and >= 0".into());
        }
        CONFIG.with(|c| c.set(parsed));
        Ok(())
    }

    fn on_topology(_topology: Topology) {}
}

impl Scoring for LeastLoaded {
    fn score(_request: Request, candidates: Vec<Candidate>) -> Vec<f64> {
        let cfg = CONFIG.with(Cell::get);
        candidates
            .iter()
            .map(|c| {
                let load = cfg.in_flight_weight * f64::from(c.in_flight)
                    + cfg.queued_weight * f64::from(c.queued)
                    + cfg.kv_usage_weight * f64::from(c.kv_usage);
                // A zero or negative weight would divide by zero: treat it as "barely wanted".
                let weight = f64::from(c.weight).max(1e-3);
                -load / weight
            })
            .collect()
    }
}

export!(LeastLoaded);

//! `least-loaded` scorer: prefers the instance with the least work on it.
//!
//! score = -(in_flight_weight * in-flight + queued_weight * queued + kv_usage_weight * kv-usage),
//! divided by the instance's routing weight so heavier instances take proportionally more load.
//!
//! Built against `switchyard:plugin@0.2.0` with the `switchyard-plugin` helper: the formula
//! reads four columns of the frame directly, with no per-candidate record to unpack.

use std::cell::Cell;

use switchyard_plugin::{Frame, Request};

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

fn configure(config: &str) -> Result<(), String> {
    let parsed: Config =
        serde_json::from_str(config).map_err(|e| format!("least-loaded config: {e}"))?;
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

fn score(_request: &Request, frame: &Frame<'_>) -> Vec<f64> {
    let cfg = CONFIG.with(Cell::get);
    frame
        .in_flight
        .iter()
        .zip(frame.queued)
        .zip(frame.kv_usage)
        .zip(frame.weight)
        .map(|(((&in_flight, &queued), &kv_usage), &weight)| {
            let load = cfg.in_flight_weight * f64::from(in_flight)
                + cfg.queued_weight * f64::from(queued)
                + cfg.kv_usage_weight * f64::from(kv_usage);
            // A zero or negative weight would divide by zero: treat it as "barely wanted".
            -load / f64::from(weight).max(1e-3)
        })
        .collect()
}

switchyard_plugin::register!(wit: "../../../wit/v0.2", scorer: score, configure: configure);

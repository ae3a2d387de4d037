//! `round-robin` picker: ranks candidates starting one position further on each call, so
//! consecutive requests go to consecutive candidates. Unhealthy candidates go last.
//!
//! The counter lives in the plugin instance; the host keeps one instance per worker slot, so
//! rotation is per slot (documented in docs/plugins.md), which still spreads load evenly.

use std::cell::Cell;

use exports::switchyard::plugin::lifecycle::{Guest as Lifecycle, Topology};
use exports::switchyard::plugin::picking::{Candidate, Guest as Picking, Request};
use switchyard::plugin::types::Health;

wit_bindgen::generate!({ path: "../../../wit", world: "switchyard:plugin/picker" });

thread_local! {
    static NEXT: Cell<u32> = const { Cell::new(0) };
}

struct RoundRobin;

impl Lifecycle for RoundRobin {
    fn configure(config: String) -> Result<(), String> {
        // No options; refuse anything but an empty object so typos are not silently ignored.
        let trimmed: String = config.chars().filter(|c| !c.is_whitespace()).collect();
        if trimmed == "{}" || trimmed == "null" || trimmed.is_empty() {
            Ok(())
        } else {
            Err("round-robin takes no configuration (expected {})".into())
        }
    }

    fn on_topology(_topology: Topology) {}
}

impl Picking for RoundRobin {
    fn pick(_request: Request, candidates: Vec<Candidate>) -> Vec<u32> {
        let n = u32::try_from(candidates.len()).unwrap_or(u32::MAX);
        if n == 0 {
            return Vec::new();
        }
        let start = NEXT.with(|c| {
            let v = c.get();
            c.set(v.wrapping_add(1));
            v % n
        });
        let rotated = (0..n).map(|i| (start + i) % n);
        let (mut ranked, unhealthy): (Vec<u32>, Vec<u32>) =
            rotated.partition(|&i| candidates[i as usize].health != Health::Unhealthy);
        ranked.extend(unhealthy);
        ranked
    }
}

export!(RoundRobin);

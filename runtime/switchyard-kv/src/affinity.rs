//! Queue-aware affinity: the `kv` policy's default cost in `weights` mode.
//!
//! The plain weighted cost ([`crate::cost`]) charges load continuously, so a prefix holder
//! with two requests more than its neighbours already loses a full cache hit. Measured against
//! sglang-router and smg (docs/benchmarks.md, round 3) that spreads load very evenly (max/min
//! 1.1) and pays for it in hit rate. The peers keep pure prefix affinity until a balance
//! threshold trips. The plain cost does better only when hot prefixes really queue (Zipf).
//!
//! This cost keeps affinity while the holder has *room* and charges load steeply once the
//! request would *queue* there:
//!
//! ```text
//! room_i   = max(capacity_i, min_j load_j + 1 + slack)     // requests it runs without queueing
//! excess_i = max(0, load_i + 1 − room_i)                   // how deep this request would queue
//! cost_i   = overlap_weight × (B − cached_i)               // prefill still to do
//!          + B × (load_weight × load_i + queue_weight × excess_i)
//! ```
//!
//! `load_i` is the instance's outstanding requests (engine-reported running + waiting, moved
//! by this frontend's sends since; never less than the in-flight requests) divided by its
//! weight. `capacity_i` is the engine's batch size (configured, or learned from its reports:
//! the most it ran while others waited). The `slack` term gives room relative to the
//! least-loaded candidate, so when every instance is busy the ones near the minimum still
//! count as having room. `load_weight` is small: it only breaks ties toward the less loaded
//! instance (fresh prompts spread, equal candidates rotate), and a full cache hit outweighs it
//! until `1 / load_weight` requests. `queue_weight` is large: a request that would wait behind
//! another costs as much as redoing `queue_weight` × its whole prefill, so a hot prefix spills
//! to a second instance, which then holds it too.

use serde::{Deserialize, Serialize};

/// `kv.affinity`: the queue-aware affinity cost. Serde form is the policy's config; a partial
/// map keeps the other defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AffinityConfig {
    /// Use this cost in `weights` mode (false: the plain weighted cost of [`crate::cost`]).
    pub enabled: bool,
    /// Requests an instance runs at once without queueing. 0 = learn it from the engine's
    /// load reports (the most it ran while requests waited); until then only `slack` counts.
    pub capacity: u32,
    /// Requests above the least-loaded candidate that still count as room.
    pub slack: f64,
    /// While some candidate with a known capacity is below it, room is that capacity alone
    /// (the `slack` then only applies to instances of unknown capacity, or when every
    /// instance queues). Lets a large `slack` keep affinity where nothing queues without
    /// delaying the spill of a hot prefix whose holder is full.
    pub capacity_first: bool,
    /// Cost per outstanding request within room, in units of the prompt's blocks.
    pub load_weight: f64,
    /// Cost per request this one would queue behind, in units of the prompt's blocks.
    pub queue_weight: f64,
}

impl Default for AffinityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            capacity: 0,
            slack: 4.0,
            capacity_first: false,
            load_weight: 0.05,
            queue_weight: 1.0,
        }
    }
}

/// Largest `kv.affinity.capacity` (far above any engine's batch size).
pub const MAX_CAPACITY: u32 = 1 << 20;

impl AffinityConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.capacity > MAX_CAPACITY {
            return Err(format!(
                "affinity.capacity must be at most {MAX_CAPACITY}, got {}",
                self.capacity
            ));
        }
        for (name, v) in [
            ("slack", self.slack),
            ("load_weight", self.load_weight),
            ("queue_weight", self.queue_weight),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!(
                    "affinity.{name} must be a finite number >= 0, got {v}"
                ));
            }
        }
        Ok(())
    }
}

/// What the affinity cost needs to know about one candidate.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AffinityCandidate {
    /// Leading blocks of this request the instance already caches.
    pub overlap_blocks: u32,
    /// Outstanding requests on the instance (already divided by its weight).
    pub load: f64,
    /// Requests it runs without queueing (0 = unknown).
    pub capacity: f64,
}

/// Costs of all candidates, in order (lower is better). See the module docs.
pub fn costs(
    request_blocks: u32,
    cands: &[AffinityCandidate],
    overlap_weight: f64,
    cfg: &AffinityConfig,
) -> Vec<f64> {
    let load = |c: &AffinityCandidate| {
        if c.load.is_finite() {
            c.load.max(0.0)
        } else {
            0.0
        }
    };
    let min_load = cands.iter().map(load).fold(f64::INFINITY, f64::min);
    let relative_room = if min_load.is_finite() {
        min_load + 1.0 + cfg.slack
    } else {
        0.0
    };
    let capacity = |c: &AffinityCandidate| {
        if c.capacity.is_finite() {
            c.capacity.max(0.0)
        } else {
            0.0
        }
    };
    let some_below_capacity = cands
        .iter()
        .any(|c| capacity(c) > 0.0 && load(c) + 1.0 <= capacity(c));
    let size = f64::from(request_blocks.max(1));
    cands
        .iter()
        .map(|c| {
            let l = load(c);
            let capacity = capacity(c);
            let room = if cfg.capacity_first && capacity > 0.0 && some_below_capacity {
                capacity
            } else {
                capacity.max(relative_room)
            };
            let excess = (l + 1.0 - room).max(0.0);
            let uncached = f64::from(request_blocks.saturating_sub(c.overlap_blocks));
            overlap_weight * uncached + size * (cfg.load_weight * l + cfg.queue_weight * excess)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(overlap: u32, load: f64, capacity: f64) -> AffinityCandidate {
        AffinityCandidate {
            overlap_blocks: overlap,
            load,
            capacity,
        }
    }

    fn best(c: &[f64]) -> usize {
        (0..c.len())
            .min_by(|&a, &b| c[a].total_cmp(&c[b]))
            .unwrap_or(0)
    }

    #[test]
    fn a_holder_with_room_keeps_the_prefix_even_when_busier() {
        let cfg = AffinityConfig::default();
        // Holder runs 6 of its 8 slots; the others are idle. The plain cost (decode 0.25)
        // would move the prefix at 5 in flight.
        let c = costs(
            64,
            &[cand(0, 0.0, 8.0), cand(64, 6.0, 8.0), cand(0, 0.0, 8.0)],
            1.0,
            &cfg,
        );
        assert_eq!(best(&c), 1, "{c:?}");
        // Capacity unknown: within the slack of the least loaded, it still keeps it.
        let c = costs(64, &[cand(0, 1.0, 0.0), cand(64, 4.0, 0.0)], 1.0, &cfg);
        assert_eq!(best(&c), 1, "{c:?}");
    }

    #[test]
    fn a_queueing_holder_spills() {
        let cfg = AffinityConfig::default();
        // Holder is full (8 of 8) and another has room: this request would queue, so it goes
        // elsewhere, paying its prefill.
        let c = costs(64, &[cand(0, 3.0, 8.0), cand(64, 9.0, 8.0)], 1.0, &cfg);
        assert_eq!(best(&c), 0, "{c:?}");
        // Capacity unknown: beyond the slack of the least loaded it spills too.
        let c = costs(64, &[cand(0, 0.0, 0.0), cand(64, 7.0, 0.0)], 1.0, &cfg);
        assert_eq!(best(&c), 0, "{c:?}");
        // When everybody queues, room is relative: the holder near the minimum keeps it.
        let c = costs(64, &[cand(0, 12.0, 8.0), cand(64, 13.0, 8.0)], 1.0, &cfg);
        assert_eq!(best(&c), 1, "{c:?}");
    }

    #[test]
    fn capacity_first_spills_at_capacity_whatever_the_slack() {
        let cfg = AffinityConfig {
            slack: 8.0,
            capacity_first: true,
            ..Default::default()
        };
        // Holder full (8 of 8), another at 5: the slack (5 + 1 + 8) would keep it; capacity
        // first spills it.
        let c = costs(64, &[cand(0, 5.0, 8.0), cand(64, 8.0, 8.0)], 1.0, &cfg);
        assert_eq!(best(&c), 0, "{c:?}");
        let lenient = AffinityConfig {
            capacity_first: false,
            ..cfg
        };
        let c = costs(64, &[cand(0, 5.0, 8.0), cand(64, 8.0, 8.0)], 1.0, &lenient);
        assert_eq!(best(&c), 1, "{c:?}");
        // Capacity unknown: the slack still decides.
        let c = costs(64, &[cand(0, 0.0, 0.0), cand(64, 7.0, 0.0)], 1.0, &cfg);
        assert_eq!(best(&c), 1, "{c:?}");
        // Everybody full: relative room again, the holder near the minimum keeps it.
        let c = costs(64, &[cand(0, 9.0, 8.0), cand(64, 10.0, 8.0)], 1.0, &cfg);
        assert_eq!(best(&c), 1, "{c:?}");
    }

    #[test]
    fn fresh_prompts_go_to_the_least_loaded_and_equal_ones_tie() {
        let cfg = AffinityConfig::default();
        let c = costs(
            10,
            &[cand(0, 2.0, 8.0), cand(0, 1.0, 8.0), cand(0, 3.0, 8.0)],
            1.0,
            &cfg,
        );
        assert_eq!(best(&c), 1);
        let c = costs(10, &[cand(0, 2.0, 8.0), cand(0, 2.0, 8.0)], 1.0, &cfg);
        assert_eq!(c[0], c[1]);
    }

    #[test]
    fn odd_inputs_give_finite_costs() {
        let cfg = AffinityConfig::default();
        assert!(costs(5, &[], 1.0, &cfg).is_empty());
        let c = costs(
            5,
            &[cand(9, f64::NAN, f64::INFINITY), cand(0, -3.0, -1.0)],
            1.0,
            &cfg,
        );
        assert!(c.iter().all(|x| x.is_finite() && *x >= 0.0), "{c:?}");
    }

    #[test]
    fn config_validates_and_partial_maps_keep_defaults() {
        assert!(AffinityConfig::default().validate().is_ok());
        for bad in [
            r#"{"slack": -1}"#,
            r#"{"queue_weight": -0.5}"#,
            r#"{"capacity": 4294967295}"#,
        ] {
            let c: AffinityConfig = serde_json::from_str(bad).unwrap();
            assert!(c.validate().is_err(), "{bad}");
        }
        let c: AffinityConfig = serde_json::from_str(r#"{"slack": 2}"#).unwrap();
        assert_eq!(
            c,
            AffinityConfig {
                slack: 2.0,
                ..Default::default()
            }
        );
        assert!(serde_json::from_str::<AffinityConfig>(r#"{"slak": 2}"#).is_err());
    }
}

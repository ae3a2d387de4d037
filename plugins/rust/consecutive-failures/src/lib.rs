//! `consecutive-failures` health policy: an instance becomes unhealthy after `threshold`
//! failures in a row (failed or timed-out probes and requests) and healthy again after
//! `recovery` successes in a row.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use exports::switchyard::plugin::health_assessment::{Guest as Assessment, Observation, Verdict};
use exports::switchyard::plugin::lifecycle::{Guest as Lifecycle, Topology};
use switchyard::plugin::types::ObservationKind;

wit_bindgen::generate!({ path: "../../../wit", world: "switchyard:plugin/health-policy" });

#[derive(Clone, Copy, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    threshold: u32,
    recovery: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            threshold: 3,
            recovery: 1,
        }
    }
}

#[derive(Default)]
struct Streak {
    failures: u32,
    successes: u32,
    unhealthy: bool,
}

#[derive(Default)]
struct State {
    config: Config,
    instances: BTreeMap<u32, Streak>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

struct ConsecutiveFailures;

impl Lifecycle for ConsecutiveFailures {
    fn configure(config: String) -> Result<(), String> {
        let parsed: Config = serde_json::from_str(&config)
            .map_err(|e| format!("consecutive-failures config: {e}"))?;
        if parsed.threshold == 0 || parsed.recovery == 0 {
            return Err("consecutive-failures config: threshold and recovery must be >= 1".into());
        }
        STATE.with(|s| s.borrow_mut().config = parsed);
        Ok(())
    }

    fn on_topology(topology: Topology) {
        // Forget instances that left, so a returning id starts from a clean streak.
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let live: BTreeSet<u32> = topology.instances.iter().map(|i| i.id).collect();
            s.instances.retain(|id, _| live.contains(id));
        });
    }
}

impl Assessment for ConsecutiveFailures {
    fn assess(observations: Vec<Observation>) -> Vec<Verdict> {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let config = s.config;
            // A set, not a Vec: hundreds of observations per call must stay linear-ish.
            let mut touched = BTreeSet::new();
            for o in &observations {
                let streak = s.instances.entry(o.id).or_default();
                let ok = matches!(
                    o.kind,
                    ObservationKind::ProbeOk | ObservationKind::RequestOk
                );
                if ok {
                    streak.successes = streak.successes.saturating_add(1);
                    streak.failures = 0;
                    if streak.unhealthy && streak.successes >= config.recovery {
                        streak.unhealthy = false;
                    }
                } else {
                    streak.failures = streak.failures.saturating_add(1);
                    streak.successes = 0;
                    if streak.failures >= config.threshold {
                        streak.unhealthy = true;
                    }
                }
                touched.insert(o.id);
            }
            touched
                .into_iter()
                .map(|id| Verdict {
                    id,
                    healthy: !s.instances.get(&id).is_some_and(|st| st.unhealthy),
                })
                .collect()
        })
    }
}

export!(ConsecutiveFailures);

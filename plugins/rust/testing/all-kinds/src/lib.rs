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

thread_local! {
    /// With the configuration `echo=FIELD`, `score` returns that field of every candidate, so
    /// the host's tests can check each field arrives intact.
    static ECHO: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn field(c: &Candidate, name: &str) -> Option<f64> {
    use switchyard::plugin::types::Health;
    Some(match name {
        "id" => f64::from(c.id),
        "in-flight" => f64::from(c.in_flight),
        "queued" => f64::from(c.queued),
        "kv-usage" => f64::from(c.kv_usage),
        "cached-prefix-blocks" => f64::from(c.cached_prefix_blocks),
        "ttft-ewma-ms" => f64::from(c.ttft_ewma_ms),
        "itl-ewma-ms" => f64::from(c.itl_ewma_ms),
        "health" => match c.health {
            Health::Healthy => 0.0,
            Health::Degraded => 1.0,
            Health::Unhealthy => 2.0,
        },
        "weight" => f64::from(c.weight),
        _ => return None,
    })
}

impl Lifecycle for Plugin {
    fn configure(config: String) -> Result<(), String> {
        host::log(host::LogLevel::Debug, "all-kinds configured");
        // Raw (`echo=F`) or as a JSON string (`"echo=F"`), as the frontend passes a YAML string.
        let echo = config
            .trim()
            .trim_matches('"')
            .strip_prefix("echo=")
            .map(str::to_owned);
        ECHO.with(|e| *e.borrow_mut() = echo);
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
    /// The candidate's position, so the last one scores highest (or, configured with
    /// `echo=FIELD`, that field of each candidate; NaN for an unknown field).
    fn score(_request: Request, candidates: Vec<Candidate>) -> Vec<f64> {
        ECHO.with(|e| match e.borrow().as_deref() {
            Some(name) => candidates
                .iter()
                .map(|c| field(c, name).unwrap_or(f64::NAN))
                .collect(),
            None => (0..candidates.len()).map(|i| i as f64).collect(),
        })
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

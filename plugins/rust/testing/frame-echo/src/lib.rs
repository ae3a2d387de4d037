//! Test plugin: the `router` world of `switchyard:plugin@0.2.0` with raw wit-bindgen bindings
//! (not the helper crate, so the host's tests check the host alone). Configured
//! `echo=COLUMN`, `score` returns that frame column as scores; `echo=request.FIELD` returns
//! that request field for every candidate. See ../README.md. Never deploy it.

use exports::switchyard::plugin::filtering::Guest as Filtering;
use exports::switchyard::plugin::health_assessment::{Guest as Assessment, Observation, Verdict};
use exports::switchyard::plugin::lifecycle::{Guest as Lifecycle, Topology};
use exports::switchyard::plugin::picking::Guest as Picking;
use exports::switchyard::plugin::scoring::{Frame, Guest as Scoring, Request};

wit_bindgen::generate!({ path: "../../../../wit/v0.2", world: "switchyard:plugin/router" });

struct Plugin;

thread_local! {
    static ECHO: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn column(f: &Frame, name: &str) -> Option<Vec<f64>> {
    fn conv<T: Copy + Into<f64>>(v: &[T]) -> Vec<f64> {
        v.iter().map(|&x| x.into()).collect()
    }
    Some(match name {
        "id" => conv(&f.id),
        "in-flight" => conv(&f.in_flight),
        "running" => conv(&f.running),
        "queued" => conv(&f.queued),
        "kv-usage" => conv(&f.kv_usage),
        "cached-prefix-blocks" => conv(&f.cached_prefix_blocks),
        "ttft-ewma-ms" => conv(&f.ttft_ewma_ms),
        "itl-ewma-ms" => conv(&f.itl_ewma_ms),
        "health" => conv(&f.health),
        "weight" => conv(&f.weight),
        "adapter-resident" => conv(&f.adapter_resident),
        _ => return None,
    })
}

fn request_field(r: &Request, name: &str) -> Option<f64> {
    use switchyard::plugin::types::{Priority, Stage};
    Some(match name {
        "model-index" => f64::from(r.model_index),
        "prompt-blocks" => f64::from(r.prompt_blocks),
        "prompt-tokens" => f64::from(r.prompt_tokens),
        "max-tokens" => f64::from(r.max_tokens),
        "session-hash" => r.session_hash.map_or(-1.0, |h| h as f64),
        "prefix-hash" => r.prefix_hash as f64,
        "streaming" => f64::from(u8::from(r.streaming)),
        "stage" => match r.stage {
            Stage::Both => 0.0,
            Stage::Prefill => 1.0,
            Stage::Decode => 2.0,
        },
        "priority" => match r.priority {
            Priority::Low => 0.0,
            Priority::Normal => 1.0,
            Priority::High => 2.0,
        },
        "tenant-weight" => f64::from(r.tenant_weight),
        "deadline-ms" => f64::from(r.deadline_ms),
        _ => return None,
    })
}

impl Lifecycle for Plugin {
    fn configure(config: String) -> Result<(), String> {
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
    fn filter(_request: Request, candidates: Frame) -> Vec<u32> {
        (0..candidates.id.len() as u32)
            .filter(|i| i % 2 == 0)
            .collect()
    }
}

impl Scoring for Plugin {
    /// The echoed column or request field (NaN for an unknown name), else the position.
    fn score(request: Request, candidates: Frame) -> Vec<f64> {
        let n = candidates.id.len();
        ECHO.with(|e| match e.borrow().as_deref() {
            Some(name) => match name.strip_prefix("request.") {
                Some(field) => vec![request_field(&request, field).unwrap_or(f64::NAN); n],
                None => column(&candidates, name).unwrap_or_else(|| vec![f64::NAN; n]),
            },
            None => (0..n).map(|i| i as f64).collect(),
        })
    }
}

impl Picking for Plugin {
    /// Reverse order.
    fn pick(_request: Request, candidates: Frame) -> Vec<u32> {
        (0..candidates.id.len() as u32).rev().collect()
    }
}

impl Assessment for Plugin {
    /// Healthy unless the last observation of an instance is a failure.
    fn assess(observations: Vec<Observation>) -> Vec<Verdict> {
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

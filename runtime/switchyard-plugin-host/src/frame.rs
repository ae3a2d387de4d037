//! Builds the 0.2 `frame` (one column per candidate field) from the host's candidates.
//!
//! The frame is kept in the plugin instance and refilled on every call (`clear` +
//! `extend`), so after the first call building it allocates nothing on the host; the
//! columns are then lowered into the guest as bulk copies.
#![forbid(unsafe_code)]

use crate::bindings_v02::types::{self, Frame};
use crate::{Candidate, Health, Priority, Request, Stage};

/// `frame.health` values, as documented in the WIT.
pub(crate) fn health_code(health: Health) -> u8 {
    match health {
        Health::Healthy => 0,
        Health::Degraded => 1,
        Health::Unhealthy => 2,
    }
}

/// An empty frame whose columns are reused across calls.
pub(crate) fn empty() -> Frame {
    Frame {
        id: Vec::new(),
        in_flight: Vec::new(),
        running: Vec::new(),
        queued: Vec::new(),
        kv_usage: Vec::new(),
        cached_prefix_blocks: Vec::new(),
        ttft_ewma_ms: Vec::new(),
        itl_ewma_ms: Vec::new(),
        health: Vec::new(),
        weight: Vec::new(),
        adapter_resident: Vec::new(),
    }
}

/// Refills `frame` with `candidates`, column by column.
pub(crate) fn fill(frame: &mut Frame, candidates: &[Candidate]) {
    fn column<T>(dst: &mut Vec<T>, candidates: &[Candidate], f: impl Fn(&Candidate) -> T) {
        dst.clear();
        dst.extend(candidates.iter().map(f));
    }
    column(&mut frame.id, candidates, |c| c.id);
    column(&mut frame.in_flight, candidates, |c| c.in_flight);
    column(&mut frame.running, candidates, |c| c.running);
    column(&mut frame.queued, candidates, |c| c.queued);
    column(&mut frame.kv_usage, candidates, |c| c.kv_usage);
    column(&mut frame.cached_prefix_blocks, candidates, |c| {
        c.cached_prefix_blocks
    });
    column(&mut frame.ttft_ewma_ms, candidates, |c| c.ttft_ewma_ms);
    column(&mut frame.itl_ewma_ms, candidates, |c| c.itl_ewma_ms);
    column(&mut frame.health, candidates, |c| health_code(c.health));
    column(&mut frame.weight, candidates, |c| c.weight);
    column(&mut frame.adapter_resident, candidates, |c| {
        u8::from(c.adapter_resident)
    });
}

/// The 0.2 `request` record.
pub(crate) fn request(r: &Request) -> types::Request {
    types::Request {
        model_index: r.model_index,
        prompt_blocks: r.prompt_blocks,
        prompt_tokens: r.prompt_tokens,
        max_tokens: r.max_tokens,
        session_hash: r.session_hash,
        prefix_hash: r.prefix_hash,
        streaming: r.streaming,
        stage: match r.stage {
            Stage::Both => types::Stage::Both,
            Stage::Prefill => types::Stage::Prefill,
            Stage::Decode => types::Stage::Decode,
        },
        priority: match r.priority {
            Priority::Low => types::Priority::Low,
            Priority::Normal => types::Priority::Normal,
            Priority::High => types::Priority::High,
        },
        tenant_weight: r.tenant_weight,
        deadline_ms: r.deadline_ms,
    }
}

/// The 0.2 `topology` record (strings cloned: this runs once per topology change).
pub(crate) fn topology(t: &crate::Topology) -> types::Topology {
    types::Topology {
        generation: t.generation,
        models: t.models.clone(),
        instances: t
            .instances
            .iter()
            .map(|i| types::Instance {
                id: i.id,
                name: i.name.clone(),
                model_index: i.model_index,
                url: i.url.clone(),
                labels: i.labels.clone(),
            })
            .collect(),
    }
}

/// The 0.2 `observation` records.
pub(crate) fn observations(o: &[crate::Observation]) -> Vec<types::Observation> {
    use crate::ObservationKind as K;
    use types::ObservationKind as W;
    o.iter()
        .map(|o| types::Observation {
            id: o.id,
            kind: match o.kind {
                K::ProbeOk => W::ProbeOk,
                K::ProbeFailed => W::ProbeFailed,
                K::ProbeTimeout => W::ProbeTimeout,
                K::RequestOk => W::RequestOk,
                K::RequestFailed => W::RequestFailed,
                K::RequestTimeout => W::RequestTimeout,
            },
            latency_ms: o.latency_ms,
            at_ns: o.at_ns,
        })
        .collect()
}

/// The host's verdicts from the 0.2 ones.
pub(crate) fn verdicts(v: Vec<types::Verdict>) -> Vec<crate::Verdict> {
    v.into_iter()
        .map(|v| crate::Verdict {
            id: v.id,
            healthy: v.healthy,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample_candidates;

    #[test]
    fn a_0_2_plugin_frame_has_one_entry_per_candidate_in_every_column() {
        let mut cands = sample_candidates(5);
        cands[3].running = 7;
        cands[3].adapter_resident = true;
        cands[4].health = Health::Unhealthy;
        let mut frame = empty();
        fill(&mut frame, &sample_candidates(9)); // a longer earlier call: reuse must truncate
        fill(&mut frame, &cands);
        assert_eq!(frame.id, [0, 1, 2, 3, 4]);
        let running: Vec<u32> = cands.iter().map(|c| c.running).collect();
        assert_eq!(frame.running, running);
        assert_eq!(frame.running[3], 7);
        let resident: Vec<u8> = cands.iter().map(|c| u8::from(c.adapter_resident)).collect();
        assert_eq!(frame.adapter_resident, resident);
        assert_eq!(frame.adapter_resident[3], 1);
        assert_eq!(frame.health[4], 2);
        let in_flight: Vec<u32> = cands.iter().map(|c| c.in_flight).collect();
        assert_eq!(frame.in_flight, in_flight);
        let kv: Vec<f32> = cands.iter().map(|c| c.kv_usage).collect();
        assert_eq!(frame.kv_usage, kv);
        for len in [
            frame.queued.len(),
            frame.cached_prefix_blocks.len(),
            frame.ttft_ewma_ms.len(),
            frame.itl_ewma_ms.len(),
            frame.weight.len(),
        ] {
            assert_eq!(len, 5);
        }
    }
}

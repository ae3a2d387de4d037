//! Deterministic sample inputs for `check`, `bench` and tests: the same `n` always gives the
//! same candidates, so results are comparable between runs and machines.

use crate::{
    Candidate, Health, Instance, Observation, ObservationKind, Priority, Request, Stage, Topology,
};

/// A typical chat request: 8 prompt blocks, a session, streaming, a normal-band tenant with a
/// 30 s deadline.
pub fn sample_request() -> Request {
    Request {
        model_index: 0,
        prompt_blocks: 8,
        prompt_tokens: 1000,
        max_tokens: 256,
        session_hash: Some(0x5eed_cafe),
        prefix_hash: 0xabcd_ef01_2345_6789,
        streaming: true,
        stage: Stage::Both,
        priority: Priority::Normal,
        tenant_weight: 1,
        deadline_ms: 30_000,
    }
}

/// `n` candidates with varied load, cache overlap and latency; ids `0..n`.
pub fn sample_candidates(n: usize) -> Vec<Candidate> {
    (0..n)
        .map(|i| {
            let x = mix(i as u64);
            Candidate {
                id: u32::try_from(i).unwrap_or(u32::MAX),
                in_flight: (x % 17) as u32,
                queued: ((x >> 8) % 4) as u32,
                kv_usage: ((x >> 16) % 100) as f32 / 100.0,
                cached_prefix_blocks: ((x >> 24) % 9) as u32,
                ttft_ewma_ms: 20.0 + ((x >> 32) % 200) as f32,
                itl_ewma_ms: 5.0 + ((x >> 40) % 30) as f32,
                health: if i % 11 == 10 {
                    Health::Degraded
                } else {
                    Health::Healthy
                },
                weight: 1.0,
                running: ((x >> 48) % 8) as u32,
                adapter_resident: i % 3 == 0,
            }
        })
        .collect()
}

/// The candidates `switchyard plugin check` runs a plugin on: one per edge case, so every
/// branch of a typical filter or scorer runs (ids `0..8`, matching [`sample_topology`]):
///
/// | id | case |
/// |---|---|
/// | 0 | idle: zero load, nothing cached, no latency measured yet |
/// | 1 | saturated KV cache (usage 1.0) with a queue |
/// | 2 | unhealthy |
/// | 3 | degraded |
/// | 4, 5 | identical (a tie) |
/// | 6 | the longest cached prefix |
/// | 7 | heavily loaded, slow, weight 2 |
pub fn check_candidates() -> Vec<Candidate> {
    let base = Candidate {
        id: 0,
        in_flight: 0,
        queued: 0,
        kv_usage: 0.0,
        cached_prefix_blocks: 0,
        ttft_ewma_ms: 0.0,
        itl_ewma_ms: 0.0,
        health: Health::Healthy,
        weight: 1.0,
        running: 0,
        adapter_resident: false,
    };
    let typical = Candidate {
        in_flight: 3,
        queued: 0,
        kv_usage: 0.4,
        cached_prefix_blocks: 2,
        ttft_ewma_ms: 80.0,
        itl_ewma_ms: 12.0,
        ..base
    };
    vec![
        base,
        Candidate {
            id: 1,
            in_flight: 12,
            queued: 6,
            kv_usage: 1.0,
            ..typical
        },
        Candidate {
            id: 2,
            health: Health::Unhealthy,
            ..typical
        },
        Candidate {
            id: 3,
            health: Health::Degraded,
            ..typical
        },
        Candidate { id: 4, ..typical },
        Candidate { id: 5, ..typical },
        Candidate {
            id: 6,
            cached_prefix_blocks: 8,
            ..typical
        },
        Candidate {
            id: 7,
            in_flight: 40,
            queued: 10,
            kv_usage: 0.9,
            ttft_ewma_ms: 900.0,
            itl_ewma_ms: 60.0,
            weight: 2.0,
            ..typical
        },
    ]
}

/// What each of [`check_candidates`] stands for, by position.
pub const CHECK_CASES: [&str; 8] = [
    "idle",
    "KV saturated",
    "unhealthy",
    "degraded",
    "tie",
    "tie",
    "longest prefix",
    "overloaded",
];

/// A topology with `n` instances (ids `0..n`) of one model.
pub fn sample_topology(n: usize) -> Topology {
    Topology {
        generation: 1,
        models: vec!["sample-model".to_owned()],
        instances: (0..n)
            .map(|i| Instance {
                id: u32::try_from(i).unwrap_or(u32::MAX),
                name: format!("worker-{i}"),
                model_index: 0,
                url: format!("http://10.0.0.{}:8000", i % 250 + 1),
                labels: vec![("zone".to_owned(), format!("z{}", i % 3))],
            })
            .collect(),
    }
}

/// `n` observations spread over the instances of [`sample_topology`]`(instances)`.
pub(crate) fn sample_observations(n: usize, instances: usize) -> Vec<Observation> {
    (0..n)
        .map(|i| {
            let x = mix(i as u64 + 7);
            Observation {
                id: u32::try_from(i % instances.max(1)).unwrap_or(0),
                kind: match x % 6 {
                    0 => ObservationKind::ProbeOk,
                    1 => ObservationKind::ProbeFailed,
                    2 => ObservationKind::ProbeTimeout,
                    3 => ObservationKind::RequestOk,
                    4 => ObservationKind::RequestFailed,
                    _ => ObservationKind::RequestTimeout,
                },
                latency_ms: ((x >> 8) % 500) as f32,
                at_ns: i as u64 * 1_000_000,
            }
        })
        .collect()
}

/// splitmix64: a cheap, well-mixed deterministic hash.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

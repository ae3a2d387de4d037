//! Feeds the `kv` policy's queue-aware affinity cost ([`switchyard_kv::affinity`]) from live
//! instances: what each candidate has outstanding and how many requests it runs at once.

use std::sync::Arc;

use switchyard_kv::affinity::{self, AffinityCandidate, AffinityConfig};

use crate::live::Instance;

/// Affinity costs of `candidates`, given each one's cached leading blocks (`cached`, in order).
pub fn costs(
    request_blocks: u32,
    candidates: &[&Arc<Instance>],
    cached: &[u32],
    overlap_weight: f64,
    cfg: &AffinityConfig,
) -> Vec<f64> {
    let cands: Vec<AffinityCandidate> = candidates
        .iter()
        .zip(cached)
        .map(|(i, &overlap_blocks)| candidate(i, overlap_blocks, cfg))
        .collect();
    affinity::costs(request_blocks, &cands, overlap_weight, cfg)
}

fn candidate(i: &Instance, overlap_blocks: u32, cfg: &AffinityConfig) -> AffinityCandidate {
    let weight = if i.spec.weight > 0.0 {
        f64::from(i.spec.weight)
    } else {
        1.0
    };
    // Engine-reported running + waiting moved by our own sends since the report; without
    // reports, what this frontend and its peers have in flight.
    let load = f64::from(i.load.outstanding()) / weight;
    // A configured batch size wins; else the most the engine ran while requests waited.
    let capacity = match cfg.capacity {
        0 => i.load.saturated_running(),
        n => n,
    };
    AffinityCandidate {
        overlap_blocks,
        load,
        capacity: f64::from(capacity) / weight,
    }
}

#[cfg(test)]
mod tests {
    use switchyard_kv::BlockHash;

    use super::*;
    use crate::live::{EngineReport, ReportSource};
    use crate::policy::kv::{Kv, KvConfig, KvRouter, KvSlot};
    use crate::policy::{testing, Policy, RouteContext};

    #[test]
    fn load_is_outstanding_and_capacity_is_learned_from_reports() {
        let inst = testing::instances(2);
        let _g: Vec<_> = (0..3).map(|_| inst[0].start_request()).collect();
        let cfg = AffinityConfig::default();
        let c = candidate(&inst[0], 5, &cfg);
        assert_eq!((c.overlap_blocks, c.load, c.capacity), (5, 3.0, 0.0));
        // The engine reports 8 running and 2 waiting: its batch size is 8, its load 10.
        let report = EngineReport {
            running: Some(8.0),
            waiting: Some(2.0),
            ..Default::default()
        };
        inst[1].load.record_report(ReportSource::Scrape, &report, 1);
        let c = candidate(&inst[1], 0, &cfg);
        assert_eq!((c.load, c.capacity), (10.0, 8.0));
        let fixed = AffinityConfig { capacity: 4, ..cfg };
        assert_eq!(candidate(&inst[1], 0, &fixed).capacity, 4.0);
    }

    /// Through the policy: a `kv` policy on the approximate index, with `i1` holding `blocks`.
    fn kv_with_holder(blocks: &[BlockHash], affinity: bool) -> Kv {
        let mut config = KvConfig::default();
        config.affinity.enabled = affinity;
        let router = KvRouter::approximate(config);
        router.source.routed("i1", blocks);
        Kv::new(KvSlot::new(router))
    }

    #[test]
    fn a_holder_with_room_keeps_the_prefix_where_the_plain_cost_spread_it() {
        let inst = testing::instances(3);
        let c = testing::refs(&inst);
        let blocks: Vec<BlockHash> = (1..=16).collect();
        let ctx = RouteContext {
            block_hashes: &blocks,
            want: 1,
            ..Default::default()
        };
        // The holder runs 4 requests of its batch of 8 (learned from a report that showed a
        // queue); the others are idle.
        let report = EngineReport {
            running: Some(8.0),
            waiting: Some(1.0),
            ..Default::default()
        };
        inst[1].load.record_report(ReportSource::Scrape, &report, 1);
        // A later report that went stale: the learned batch size stays, the load is ours.
        inst[1].load.clear_report();
        let _busy: Vec<_> = (0..4).map(|_| inst[1].start_request()).collect();
        for _ in 0..10 {
            assert_eq!(kv_with_holder(&blocks, true).rank(&ctx, &c)[0], 1);
        }
        // The plain cost (decode 0.25 × 4 × 16 = 16 = the whole hit) lets it go half the time.
        let plain = kv_with_holder(&blocks, false);
        assert!((0..40).any(|_| plain.rank(&ctx, &c)[0] != 1));
    }

    #[test]
    fn a_queueing_holder_spills_and_the_spill_target_then_holds_it() {
        let inst = testing::instances(3);
        let c = testing::refs(&inst);
        let blocks: Vec<BlockHash> = (1..=16).collect();
        let ctx = RouteContext {
            block_hashes: &blocks,
            want: 1,
            ..Default::default()
        };
        let kv = kv_with_holder(&blocks, true);
        // 8 running at the holder, nobody else busy, no capacity known: beyond the slack.
        let _busy: Vec<_> = (0..8).map(|_| inst[1].start_request()).collect();
        let spill = kv.rank(&ctx, &c)[0];
        assert_ne!(spill, 1);
        // The spill target now holds the prefix too and has room: it keeps getting it.
        let _g = c[spill].start_request();
        assert_eq!(kv.rank(&ctx, &c)[0], spill);
    }

    #[test]
    fn equal_candidates_rotate_as_requests_start() {
        let inst = testing::instances(4);
        let c = testing::refs(&inst);
        let kv = Kv::new(KvSlot::default());
        let mut guards = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..4u64 {
            let fresh: Vec<BlockHash> = (100 * (n + 1)..100 * (n + 1) + 8).collect();
            let ctx = RouteContext {
                block_hashes: &fresh,
                want: 1,
                ..Default::default()
            };
            let pick = kv.rank(&ctx, &c)[0];
            seen.insert(pick);
            guards.push(c[pick].start_request());
        }
        assert_eq!(
            seen.len(),
            4,
            "four fresh prompts, four idle instances: {seen:?}"
        );
    }
}

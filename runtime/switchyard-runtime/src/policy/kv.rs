//! The `kv` policy: KV-cache-aware routing.
//!
//! In `kv.mode: predictive` (opt-in) each candidate's cost is its *predicted time to first
//! token* from rates learned per instance ([`super::ttft`]): queue wait, prefill of the
//! prompt's uncached blocks and decode interference, in milliseconds. With a TTFT target the
//! cheapest instance predicted to meet it wins ([`super::ttft::choice`]).
//!
//! In `kv.mode: weights` (the default) each candidate gets, by default, the queue-aware
//! affinity cost of `switchyard_kv::affinity` (`kv.affinity`): a prefix holder keeps the prompt
//! while it has room (below its batch size, or within a slack of the least-loaded candidate)
//! and load is charged steeply only once the request would queue there. With
//! `kv.affinity.enabled: false` it is the plain weighted cost of `switchyard_kv::cost`
//! (lower is better):
//!
//! ```text
//! cost = overlap_weight × (prompt_blocks − cached_blocks)   // prefill still to do
//!      + prefill_weight × queued × prompt_blocks            // prefill queued ahead of it
//!      + decode_weight  × in_flight × prompt_blocks         // decode work it shares the GPU with
//! ```
//!
//! `cached_blocks` comes from a [`KvOverlap`] source, `queued` from the worker's load reports
//! (`Load::queued`) and `in_flight` is this frontend's plus its peers' (`total_in_flight`),
//! divided by the instance weight. Requests are assumed to be about the size of this one, so
//! every term is in KV blocks. With the default weights (1, 1, 0.25) a full cache hit is worth
//! four extra concurrent requests. `temperature` 0 picks the cheapest (ties at random);
//! above 0 it samples from a softmax over normalised costs (see `switchyard_kv::cost`).
//!
//! # Where the overlap comes from
//!
//! The policy reads its frontend's [`KvRouter`] from a [`KvSlot`] ([`KvSlot::install`]
//! replaces it; [`KvSlot::current`] reads it, one atomic load). Each frontend owns one slot,
//! shared by all its `kv` policies, so two frontends in one process keep their own. By
//! default that is an *approximate* index: every decision is recorded as "this instance now
//! holds these blocks" for a TTL. A frontend started with `--nats` installs the event-driven
//! index instead (it answers "nothing cached" while NATS is down, so routing degrades to load
//! only).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use switchyard_kv::{
    cost, AffinityConfig, BlockHash, KvCandidate, KvCostWeights, Overlap, SharedApproxIndex,
};

use super::ttft::{self, Decision, Features, PredictConfig, Prediction};
use super::{Policy, RouteContext};
use crate::live::Instance;

/// Answers "how many leading blocks of this prompt does each instance hold".
pub trait KvOverlap: Send + Sync + std::fmt::Debug {
    fn overlap(&self, blocks: &[BlockHash]) -> Overlap;
    /// The policy routed a prompt with these blocks to `instance` (approximate sources learn
    /// from it; event-driven ones wait for the worker's events).
    fn routed(&self, _instance: &str, _blocks: &[BlockHash]) {}
    /// `instance` left discovery: drop whatever is known or predicted about it.
    fn forget(&self, _instance: &str) {}
    /// Short name for logs and `/health` (`approximate`, `events`).
    fn kind(&self) -> &'static str;
}

/// The approximate source: the frontend's own decisions, forgotten after a TTL.
#[derive(Debug, Clone)]
pub struct ApproxOverlap(pub SharedApproxIndex);

impl KvOverlap for ApproxOverlap {
    fn overlap(&self, blocks: &[BlockHash]) -> Overlap {
        self.0.overlap(blocks)
    }
    fn routed(&self, instance: &str, blocks: &[BlockHash]) {
        self.0.record(instance, blocks);
    }
    fn forget(&self, instance: &str) {
        self.0.remove_instance(instance);
    }
    fn kind(&self) -> &'static str {
        "approximate"
    }
}

/// Upper bound of `kv.block_size`: engines use 16–128; far larger values only make the
/// hashing buffers absurd.
pub const MAX_BLOCK_SIZE: usize = 4096;
/// Upper bound of `kv.approx_ttl_secs` (one day).
pub const MAX_APPROX_TTL_SECS: u64 = 86_400;
/// Upper bound of `kv.max_blocks_per_instance` (2^26 blocks: a few GiB of index).
pub const MAX_BLOCKS_PER_INSTANCE: usize = 1 << 26;

/// The `kv:` section of the frontend configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KvConfig {
    /// Tokens per KV block (one token ≈ 4 prompt bytes without a tokenizer). Must equal the
    /// workers' block size (the mocker's `--block-size`, default 16).
    pub block_size: usize,
    /// 0 = always the cheapest; > 0 = softmax sampling over normalised costs.
    pub temperature: f64,
    /// `predictive` (default): rank by predicted TTFT ([`ttft`]); `weights`: by the
    /// weighted cost below.
    pub mode: KvMode,
    /// Priors and learning of the predictive mode.
    pub predict: PredictConfig,
    /// Weights of the cost terms (`weights` mode; with a TTFT target, also what "cheapest"
    /// means among the instances predicted to meet it).
    pub weights: KvCostWeights,
    /// Queue-aware affinity (`weights` mode's default cost; `switchyard_kv::affinity`).
    pub affinity: AffinityConfig,
    /// With `--nats`: share routing decisions with the other frontends, and predict the
    /// caches of instances that publish no KV events from everyone's decisions.
    pub share_decisions: bool,
    /// How long the approximate index (no `--nats`) assumes a routed prefix stays cached.
    #[serde(rename = "approx_ttl", with = "switchyard_protocol::duration::secs")]
    pub approx_ttl_secs: u64,
    /// Most blocks the event-driven index (`--nats`) remembers per instance; storing more
    /// evicts that instance's oldest. Bounds what one publisher can make a frontend hold.
    pub max_blocks_per_instance: usize,
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            block_size: 16,
            temperature: 0.0,
            mode: KvMode::default(),
            predict: PredictConfig::default(),
            // One source of truth: `KvCostWeights::default()` is also what a partial
            // `weights:` map falls back to.
            weights: KvCostWeights::default(),
            affinity: AffinityConfig::default(),
            share_decisions: true,
            approx_ttl_secs: switchyard_kv::approx::DEFAULT_TTL.as_secs(),
            max_blocks_per_instance: switchyard_kv::index::DEFAULT_MAX_BLOCKS_PER_INSTANCE,
        }
    }
}

impl KvConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_BLOCK_SIZE).contains(&self.block_size) {
            return Err(format!(
                "block_size must be between 1 and {MAX_BLOCK_SIZE} tokens, got {}",
                self.block_size
            ));
        }
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(format!(
                "temperature must be a finite number >= 0, got {}",
                self.temperature
            ));
        }
        // A day is far beyond any cache residency, and keeps `now + ttl` from overflowing.
        if !(1..=MAX_APPROX_TTL_SECS).contains(&self.approx_ttl_secs) {
            return Err(format!(
                "approx_ttl_secs must be between 1 and {MAX_APPROX_TTL_SECS}, got {}",
                self.approx_ttl_secs
            ));
        }
        if !(1..=MAX_BLOCKS_PER_INSTANCE).contains(&self.max_blocks_per_instance) {
            return Err(format!(
                "max_blocks_per_instance must be between 1 and {MAX_BLOCKS_PER_INSTANCE}, got {}",
                self.max_blocks_per_instance
            ));
        }
        self.predict.validate()?;
        self.affinity.validate()?;
        self.weights.validate()
    }
}

/// How the `kv` policy compares candidates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvMode {
    /// Predicted time to first token from learned per-instance rates. Opt-in: measured
    /// against `weights` it is not better yet (docs/routing.md), so it is not the default.
    Predictive,
    /// The weighted cost of `switchyard_kv::cost`.
    #[default]
    Weights,
}

/// What the `kv` policy reads per decision: settings plus the overlap source.
#[derive(Debug, Clone)]
pub struct KvRouter {
    pub config: KvConfig,
    pub source: Arc<dyn KvOverlap>,
}

impl KvRouter {
    /// The approximate index with `config`'s TTL.
    pub fn approximate(config: KvConfig) -> Self {
        let ttl = Duration::from_secs(config.approx_ttl_secs.clamp(1, MAX_APPROX_TTL_SECS));
        Self {
            config,
            source: Arc::new(ApproxOverlap(SharedApproxIndex::new(ttl))),
        }
    }
}

/// Where a frontend's `kv` policies read their router: one per frontend, cloned into each.
#[derive(Debug, Clone)]
pub struct KvSlot(Arc<ArcSwap<KvRouter>>);

impl Default for KvSlot {
    fn default() -> Self {
        Self::new(KvRouter::approximate(KvConfig::default()))
    }
}

impl KvSlot {
    pub fn new(router: KvRouter) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(router)))
    }

    /// Replaces the router (at start-up: settings, and the event-driven source when `--nats`
    /// is on; back to approximate when NATS stops).
    pub fn install(&self, router: KvRouter) {
        self.0.store(Arc::new(router));
    }

    pub fn current(&self) -> Arc<KvRouter> {
        self.0.load_full()
    }
}

/// KV-cache-aware policy; see the module docs.
#[derive(Debug, Default)]
pub struct Kv {
    slot: KvSlot,
}

impl Kv {
    /// A policy reading `slot` (its frontend's).
    pub fn new(slot: KvSlot) -> Self {
        Self { slot }
    }
}

impl Policy for Kv {
    fn name(&self) -> &'static str {
        "kv"
    }

    fn rank(&self, ctx: &RouteContext<'_>, candidates: &[&Arc<Instance>]) -> Vec<usize> {
        if candidates.is_empty() {
            return Vec::new();
        }
        let router = self.slot.current();
        let blocks = ctx.block_hashes;
        let overlap = (!blocks.is_empty()).then(|| router.source.overlap(blocks));
        let request_blocks = u32::try_from(blocks.len()).unwrap_or(u32::MAX);
        let cached = |i: &Instance| {
            let c = overlap.as_ref().map_or(0, |o| o.get(i.id()));
            u32::try_from(c).unwrap_or(u32::MAX).min(request_blocks)
        };
        // Load terms scale with the request so they compare with the overlap credit.
        let size = f64::from(request_blocks.max(1));
        let cands: Vec<KvCandidate> = candidates
            .iter()
            .map(|i| {
                let weight = if i.spec.weight > 0.0 {
                    f64::from(i.spec.weight)
                } else {
                    1.0
                };
                let queued = f64::from(i.load.queued.load(std::sync::atomic::Ordering::Relaxed));
                let in_flight = f64::from(i.load.total_in_flight());
                KvCandidate {
                    overlap_blocks: cached(i),
                    prefill_load: queued * size / weight,
                    decode_load: in_flight * size / weight,
                }
            })
            .collect();
        let costs = cost::costs(request_blocks, &cands, &router.config.weights);
        let mut rng = rand::thread_rng();
        let mut order = match router.config.mode {
            KvMode::Weights if router.config.affinity.enabled => {
                let cached: Vec<u32> = cands.iter().map(|c| c.overlap_blocks).collect();
                let costs = super::kv_affinity::costs(
                    request_blocks,
                    candidates,
                    &cached,
                    router.config.weights.overlap_weight,
                    &router.config.affinity,
                );
                cost::rank(&costs, router.config.temperature, &mut rng)
            }
            KvMode::Weights => cost::rank(&costs, router.config.temperature, &mut rng),
            KvMode::Predictive => {
                let predict = &router.config.predict;
                let now = crate::clock::now_ns();
                let predictions: Vec<Prediction> = candidates
                    .iter()
                    .zip(&cands)
                    .map(|(i, c)| {
                        let uncached = request_blocks - c.overlap_blocks;
                        let features = Features::of(i, uncached, predict);
                        let (rates, learned) = i.ttft.rates(predict, now);
                        Prediction {
                            instance: i.num_id,
                            features,
                            predicted_ms: ttft::predict(&rates, &features),
                            learned,
                        }
                    })
                    .collect();
                let ms: Vec<f64> = predictions.iter().map(|p| p.predicted_ms).collect();
                let (order, slo) = ttft::rank_predicted(
                    &ms,
                    &costs,
                    ctx.ttft_slo_ms,
                    router.config.temperature,
                    &mut rng,
                );
                if let Some(slot) = ctx.decision {
                    slot.put(Decision {
                        predictions,
                        slo_ms: ctx.ttft_slo_ms,
                        slo,
                    });
                }
                order
            }
        };
        order.truncate(ctx.want.max(1));
        if let (Some(&first), false) = (order.first(), blocks.is_empty()) {
            router.source.routed(candidates[first].id(), blocks);
        }
        order
    }
}

/// Leading cached blocks of `blocks` on each of `candidates` (for plugins' candidate records).
pub fn cached_blocks(
    slot: &KvSlot,
    blocks: &[BlockHash],
    candidates: &[&Arc<Instance>],
) -> Vec<u32> {
    if blocks.is_empty() {
        return vec![0; candidates.len()];
    }
    let overlap = slot.current().source.overlap(blocks);
    candidates
        .iter()
        .map(|i| u32::try_from(overlap.get(i.id())).unwrap_or(u32::MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing;

    #[derive(Debug)]
    struct Fixed(&'static str, usize);
    impl KvOverlap for Fixed {
        fn overlap(&self, blocks: &[BlockHash]) -> Overlap {
            // Build an Overlap through the public index API: `self.0` holds `self.1` blocks.
            let mut index = switchyard_kv::KvIndex::new();
            index.apply(
                self.0,
                &switchyard_kv::KvEvent::Stored {
                    parent: None,
                    blocks: blocks[..self.1.min(blocks.len())].to_vec(),
                },
            );
            index.overlap(blocks)
        }
        fn kind(&self) -> &'static str {
            "fixed"
        }
    }

    #[test]
    fn overlap_wins_until_load_outweighs_it_and_approx_learns_decisions() {
        weights_mode_cases();
        predictive_cases();
    }

    /// Predictive mode: a learned slow instance loses a long uncached prompt to a fast one,
    /// cached blocks still win, every candidate's prediction reaches the decision slot, and a
    /// target prefers the cheapest instance predicted to meet it.
    fn predictive_cases() {
        let inst = testing::instances(3);
        let c = testing::refs(&inst);
        let cfg = PredictConfig::default();
        // i0 prefills at 4 ms a block, i1 and i2 at 2 ms.
        for (i, rate) in [(0, 4.0), (1, 2.0), (2, 2.0)] {
            for n in 0..40 {
                let f = Features {
                    blocks: f64::from(1 + n % 50),
                    ..Features::default()
                };
                inst[i].ttft.observe(&f, 3.0 + rate * f.blocks, &cfg);
            }
        }
        let blocks: Vec<BlockHash> = (1..=40).collect();
        let slot = ttft::DecisionSlot::default();
        let ctx = RouteContext {
            block_hashes: &blocks,
            want: 3,
            decision: Some(&slot),
            ..Default::default()
        };
        // i0 holds 30 of the 40 blocks: 10 × 4 ms beats 40 × 2 ms.
        let predictive = KvConfig {
            mode: KvMode::Predictive,
            ..KvConfig::default()
        };
        let kv_slot = KvSlot::default();
        let kv = Kv::new(kv_slot.clone());
        kv_slot.install(KvRouter {
            config: predictive.clone(),
            source: Arc::new(Fixed("i0", 30)),
        });
        assert_eq!(
            kv.rank(&ctx, &c)[0],
            0,
            "the cache wins on the slow instance"
        );
        let d = slot.take().expect("a decision");
        assert_eq!(d.predictions.len(), 3);
        assert!(d.predictions.iter().all(|p| p.learned));
        let p0 = d.for_instance(inst[0].num_id).unwrap();
        assert_eq!(p0.features.blocks, 10.0);
        assert!((p0.predicted_ms - 43.0).abs() < 5.0, "{p0:?}");
        // Nothing cached anywhere: the slow instance is never first.
        kv_slot.install(KvRouter::approximate(predictive.clone()));
        for n in 0..20u64 {
            let fresh: Vec<BlockHash> = (1000 * (n + 1)..1000 * (n + 1) + 40).collect();
            let ctx = RouteContext {
                block_hashes: &fresh,
                want: 1,
                ..Default::default()
            };
            assert_ne!(
                kv.rank(&ctx, &c)[0],
                0,
                "a long uncached prompt avoids the slow one"
            );
        }
        // A 100 ms target: every instance meets it for 10 uncached blocks on i0; the weights
        // cost makes the cache holder the cheapest, and the outcome is "met".
        kv_slot.install(KvRouter {
            config: predictive.clone(),
            source: Arc::new(Fixed("i0", 30)),
        });
        let ctx = RouteContext {
            ttft_slo_ms: Some(100.0),
            ..ctx
        };
        assert_eq!(kv.rank(&ctx, &c)[0], 0);
        assert_eq!(slot.take().unwrap().slo, Some(ttft::SloOutcome::Met));
        let ctx = RouteContext {
            ttft_slo_ms: Some(1.0),
            ..ctx
        };
        kv.rank(&ctx, &c);
        assert_eq!(slot.take().unwrap().slo, Some(ttft::SloOutcome::Missed));
    }

    fn weights_mode_cases() {
        let inst = testing::instances(3);
        let c = testing::refs(&inst);
        let blocks: Vec<BlockHash> = (1..=8).collect();
        let ctx = RouteContext {
            block_hashes: &blocks,
            want: 3,
            ..Default::default()
        };
        let weights = KvConfig {
            mode: KvMode::Weights,
            ..KvConfig::default()
        };
        let slot = KvSlot::new(KvRouter {
            config: weights.clone(),
            source: Arc::new(Fixed("i1", 8)),
        });
        let kv = Kv::new(slot.clone());
        for _ in 0..20 {
            let r = kv.rank(&ctx, &c);
            assert_eq!(r[0], 1, "the instance holding the prefix ranks first");
            assert_eq!(r.len(), 3);
        }
        // 8 cached blocks = 8 × overlap_weight; 5 in flight × 8 blocks × 0.25 = 10 > 8.
        let guards: Vec<_> = (0..5).map(|_| inst[1].start_request()).collect();
        assert_ne!(
            kv.rank(&ctx, &c)[0],
            1,
            "a loaded holder loses to an idle one"
        );
        drop(guards);
        assert_eq!(cached_blocks(&slot, &blocks, &c), vec![0, 8, 0]);

        // Approximate: the first decision is recorded, so the same prefix follows it.
        slot.install(KvRouter::approximate(weights.clone()));
        let first = kv.rank(&ctx, &c)[0];
        for _ in 0..10 {
            assert_eq!(kv.rank(&ctx, &c)[0], first);
        }
    }

    #[test]
    fn two_slots_are_independent() {
        let (a, b) = (KvSlot::default(), KvSlot::default());
        a.install(KvRouter {
            config: KvConfig::default(),
            source: Arc::new(Fixed("i1", 8)),
        });
        assert_eq!(a.current().source.kind(), "fixed");
        assert_eq!(b.current().source.kind(), "approximate");
    }

    #[test]
    fn the_approximate_source_forgets_an_instance_that_left() {
        let src = ApproxOverlap(SharedApproxIndex::new(Duration::from_secs(60)));
        let blocks: Vec<BlockHash> = (1..=4).collect();
        src.routed("a", &blocks);
        src.routed("b", &blocks[..2]);
        src.forget("a");
        let o = src.overlap(&blocks);
        assert_eq!((o.get("a"), o.get("b")), (0, 2));
    }

    #[test]
    fn partial_config_keeps_the_documented_defaults() {
        let d = KvConfig::default();
        assert_eq!(
            (
                d.weights.overlap_weight,
                d.weights.prefill_weight,
                d.weights.decode_weight
            ),
            (1.0, 1.0, 0.25),
            "the defaults docs/routing.md documents"
        );
        let c: KvConfig = serde_json::from_str(r#"{"weights": {"overlap_weight": 2}}"#).unwrap();
        assert_eq!(c.weights.overlap_weight, 2.0);
        assert_eq!(c.weights.prefill_weight, d.weights.prefill_weight);
        assert_eq!(c.weights.decode_weight, d.weights.decode_weight);
        assert_eq!((c.block_size, c.temperature), (d.block_size, d.temperature));
        assert_eq!(c.approx_ttl_secs, d.approx_ttl_secs);
        let c: KvConfig = serde_json::from_str(r#"{"temperature": 0.5}"#).unwrap();
        assert_eq!(c.weights, d.weights);
    }

    #[test]
    fn config_validation() {
        assert!(KvConfig::default().validate().is_ok());
        let bad = KvConfig {
            temperature: f64::NAN,
            ..KvConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = KvConfig {
            block_size: 0,
            ..KvConfig::default()
        };
        assert!(bad.validate().is_err());
        for ttl in [0, MAX_APPROX_TTL_SECS + 1, u64::MAX] {
            let bad = KvConfig {
                approx_ttl_secs: ttl,
                ..KvConfig::default()
            };
            assert!(bad.validate().is_err(), "approx_ttl_secs {ttl}");
        }
    }
}

//! The `kv` routing policy's cost and its temperature-controlled selection, as pure functions.
//!
//! # The cost
//!
//! For a request of `request_blocks` prompt blocks and a candidate instance:
//!
//! ```text
//! cost = overlap_weight × (request_blocks − overlap_blocks)   // prefill this request still needs
//!      + prefill_weight × prefill_load                        // prefill queued ahead of it
//!      + decode_weight  × decode_load                         // decode work it will share with
//! ```
//!
//! all in units of KV blocks, lower is better. The first term is the *overlap credit*: every
//! block the instance already caches is prefill it does not have to do. The second is the
//! time-to-first-token this request waits behind; the third slows every token it generates.
//! This is the shape of Dynamo's KV router cost; the weights trade cache reuse (raise
//! `overlap_weight`) against load balance (raise the others).
//!
//! # Selection
//!
//! `temperature = 0` picks the cheapest candidate (ties broken at random so equal instances
//! share load). `temperature > 0` samples from `softmax(−normalised_cost / temperature)`, where
//! costs are normalised to `[0, 1]` across the candidates so the temperature means the same
//! thing whatever the load. [`rank`] returns a full ranking (sampling without replacement via
//! the Gumbel-max trick), so a dispatcher can fall back to the next-ranked instance.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// What the `kv` cost needs to know about one candidate. Numbers only: this is also what a
/// Wasm scorer sees.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KvCandidate {
    /// Leading blocks of this request the instance already caches.
    pub overlap_blocks: u32,
    /// Prefill work queued on the instance, in blocks (e.g. waiting requests × their
    /// uncached prompt blocks, or in-flight prefill estimates).
    pub prefill_load: f64,
    /// Decode work on the instance, in blocks (e.g. running sequences' KV blocks, or
    /// `kv_usage × kv_capacity`).
    pub decode_load: f64,
}

/// Weights of the three cost terms. Serde form is the policy's config (`kv.weights`); a
/// partial map keeps the other defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KvCostWeights {
    pub overlap_weight: f64,
    pub prefill_weight: f64,
    pub decode_weight: f64,
}

/// The defaults, here and nowhere else (the `kv` policy's config uses them too). With the
/// policy's load terms (`queued × prompt_blocks`, `in_flight × prompt_blocks`), decode 0.25
/// makes a full cache hit worth four extra concurrent requests on the holder, while a queued
/// request weighs as much as redoing the whole prefill.
impl Default for KvCostWeights {
    fn default() -> Self {
        Self {
            overlap_weight: 1.0,
            prefill_weight: 1.0,
            decode_weight: 0.25,
        }
    }
}

impl KvCostWeights {
    /// Weights must be finite and non-negative; otherwise the cost stops meaning "worse".
    pub fn validate(&self) -> Result<(), String> {
        for (name, w) in [
            ("overlap_weight", self.overlap_weight),
            ("prefill_weight", self.prefill_weight),
            ("decode_weight", self.decode_weight),
        ] {
            if !w.is_finite() || w < 0.0 {
                return Err(format!("{name} must be a finite number >= 0, got {w}"));
            }
        }
        Ok(())
    }
}

/// The documented `kv` cost of one candidate (lower is better).
pub fn cost(request_blocks: u32, c: &KvCandidate, w: &KvCostWeights) -> f64 {
    let uncached = request_blocks.saturating_sub(c.overlap_blocks) as f64;
    w.overlap_weight * uncached
        + w.prefill_weight * c.prefill_load.max(0.0)
        + w.decode_weight * c.decode_load.max(0.0)
}

/// Costs of all candidates, in order.
pub fn costs(request_blocks: u32, cands: &[KvCandidate], w: &KvCostWeights) -> Vec<f64> {
    cands.iter().map(|c| cost(request_blocks, c, w)).collect()
}

/// Picks one index into `costs` (None if empty). See the module docs for the temperature.
pub fn select(costs: &[f64], temperature: f64, rng: &mut impl Rng) -> Option<usize> {
    if costs.is_empty() {
        return None;
    }
    if temperature > 0.0 && temperature.is_finite() {
        return rank(costs, temperature, rng).first().copied();
    }
    let finite = sanitise(costs);
    let min = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let ties: Vec<usize> = (0..finite.len()).filter(|&i| finite[i] == min).collect();
    Some(ties[rng.gen_range(0..ties.len())])
}

/// All indices of `costs`, best first. At temperature 0 this is ascending cost (ties in random
/// order); above 0, each position is a softmax draw among the candidates not yet ranked.
pub fn rank(costs: &[f64], temperature: f64, rng: &mut impl Rng) -> Vec<usize> {
    let finite = sanitise(costs);
    let keys: Vec<f64> = if temperature > 0.0 && temperature.is_finite() {
        let norm = normalise(&finite);
        // Gumbel-max: argmax(logit + Gumbel noise) is a softmax sample, and sorting by the same
        // keys samples without replacement.
        norm.iter()
            .map(|n| -n / temperature + gumbel(rng))
            .collect()
    } else {
        // Ties are broken by the random secondary key below.
        finite.iter().map(|c| -c).collect()
    };
    let tiebreak: Vec<u32> = (0..keys.len()).map(|_| rng.gen()).collect();
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| {
        keys[b]
            .total_cmp(&keys[a])
            .then(tiebreak[a].cmp(&tiebreak[b]))
    });
    order
}

/// Softmax probabilities that `select` uses at `temperature > 0` (for explanations and tests).
pub fn probabilities(costs: &[f64], temperature: f64) -> Vec<f64> {
    let norm = normalise(&sanitise(costs));
    let logits: Vec<f64> = norm.iter().map(|n| -n / temperature).collect();
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// NaN or −∞ would corrupt comparisons; treat non-finite costs as the worst finite cost + 1.
fn sanitise(costs: &[f64]) -> Vec<f64> {
    let worst = costs
        .iter()
        .copied()
        .filter(|c| c.is_finite())
        .fold(0.0_f64, f64::max);
    costs
        .iter()
        .map(|&c| if c.is_finite() { c } else { worst + 1.0 })
        .collect()
}

/// Maps costs to `[0, 1]` (all zeros when they are equal).
fn normalise(costs: &[f64]) -> Vec<f64> {
    let min = costs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = costs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = max - min;
    if span <= 0.0 || !span.is_finite() {
        return vec![0.0; costs.len()];
    }
    costs.iter().map(|c| (c - min) / span).collect()
}

fn gumbel(rng: &mut impl Rng) -> f64 {
    // gen::<f64>() is in [0, 1); keep away from 0 so ln stays finite.
    let u: f64 = rng.gen::<f64>().max(f64::MIN_POSITIVE);
    -(-u.ln()).ln()
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use super::*;

    fn cand(overlap: u32, prefill: f64, decode: f64) -> KvCandidate {
        KvCandidate {
            overlap_blocks: overlap,
            prefill_load: prefill,
            decode_load: decode,
        }
    }

    #[test]
    fn cost_is_uncached_prefill_plus_weighted_load() {
        let w = KvCostWeights {
            overlap_weight: 2.0,
            prefill_weight: 0.5,
            decode_weight: 0.25,
        };
        // 10 blocks, 4 cached: 6 uncached × 2 + 8 × 0.5 + 4 × 0.25.
        assert_eq!(cost(10, &cand(4, 8.0, 4.0), &w), 12.0 + 4.0 + 1.0);
        // Overlap longer than the request (shouldn't happen) gives no negative prefill.
        assert_eq!(cost(3, &cand(5, 0.0, 0.0), &w), 0.0);
    }

    #[test]
    fn overlap_wins_until_load_outweighs_it() {
        let w = KvCostWeights::default();
        let mut rng = SmallRng::seed_from_u64(1);
        let cached_idle = cand(8, 0.0, 2.0);
        let cold_idle = cand(0, 0.0, 2.0);
        let c = costs(10, &[cold_idle, cached_idle], &w);
        assert_eq!(select(&c, 0.0, &mut rng), Some(1));
        let cached_busy = cand(8, 20.0, 2.0);
        let c = costs(10, &[cold_idle, cached_busy], &w);
        assert_eq!(select(&c, 0.0, &mut rng), Some(0));
    }

    #[test]
    fn zero_temperature_is_argmin_with_random_ties() {
        let mut rng = SmallRng::seed_from_u64(7);
        assert_eq!(select(&[], 0.0, &mut rng), None);
        assert_eq!(select(&[3.0, 1.0, 2.0], 0.0, &mut rng), Some(1));
        let mut seen = [0; 3];
        for _ in 0..300 {
            seen[select(&[1.0, 5.0, 1.0], 0.0, &mut rng).unwrap()] += 1;
        }
        assert_eq!(seen[1], 0);
        assert!(seen[0] > 50 && seen[2] > 50, "ties split: {seen:?}");
    }

    #[test]
    fn positive_temperature_samples_the_softmax() {
        let c = [0.0, 10.0];
        let p = probabilities(&c, 1.0);
        let expected = 1.0 / (1.0 + (-1.0f64).exp());
        assert!((p[0] - expected).abs() < 1e-12);
        let mut rng = SmallRng::seed_from_u64(42);
        let n = 20_000;
        let zeros = (0..n)
            .filter(|_| select(&c, 1.0, &mut rng) == Some(0))
            .count();
        let freq = zeros as f64 / n as f64;
        assert!((freq - expected).abs() < 0.02, "freq {freq} vs {expected}");
    }

    #[test]
    fn temperature_is_scale_free() {
        assert_eq!(
            probabilities(&[0.0, 1.0], 0.5),
            probabilities(&[0.0, 1000.0], 0.5)
        );
        let p = probabilities(&[3.0, 3.0, 3.0], 0.1);
        assert!(p.iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-12));
    }

    #[test]
    fn rank_orders_every_candidate_once() {
        let mut rng = SmallRng::seed_from_u64(3);
        assert_eq!(rank(&[5.0, 1.0, 3.0], 0.0, &mut rng), vec![1, 2, 0]);
        let mut r = rank(&[5.0, 1.0, 3.0, 2.0], 2.0, &mut rng);
        r.sort();
        assert_eq!(r, vec![0, 1, 2, 3]);
    }

    #[test]
    fn non_finite_costs_rank_last() {
        let mut rng = SmallRng::seed_from_u64(9);
        let c = [f64::NAN, 2.0, f64::INFINITY, 1.0];
        let r = rank(&c, 0.0, &mut rng);
        assert_eq!(&r[..2], &[3, 1]);
        assert_eq!(select(&c, 0.0, &mut rng), Some(3));
        assert!(probabilities(&c, 1.0).iter().all(|p| p.is_finite()));
    }

    #[test]
    fn weights_validate() {
        assert!(KvCostWeights::default().validate().is_ok());
        let bad = KvCostWeights {
            decode_weight: -1.0,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_partial_weights_map_keeps_the_other_defaults() {
        let d = KvCostWeights::default();
        let w: KvCostWeights = serde_json::from_str(r#"{"overlap_weight": 3}"#).unwrap();
        assert_eq!(
            w,
            KvCostWeights {
                overlap_weight: 3.0,
                ..d
            }
        );
        let w: KvCostWeights = serde_json::from_str(r#"{"decode_weight": 2}"#).unwrap();
        assert_eq!(
            (w.overlap_weight, w.prefill_weight),
            (d.overlap_weight, d.prefill_weight)
        );
        assert!(serde_json::from_str::<KvCostWeights>(r#"{"decode": 2}"#).is_err());
    }
}

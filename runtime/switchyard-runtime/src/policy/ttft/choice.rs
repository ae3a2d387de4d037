//! The choice among predicted TTFTs, with or without a TTFT target (SLO).
//!
//! Without a target the fastest predicted instance wins (through `switchyard_kv::cost::rank`,
//! so `kv.temperature` keeps its meaning). With one, every instance predicted to meet it is
//! good enough, and among those the *cheapest* wins — the lowest documented `kv` cost
//! (uncached prefill plus load), i.e. the one that keeps caches and spare capacity for
//! requests that need them; the others follow, fastest first. When none is predicted to
//! meet the target, the ranking is by predicted TTFT and the outcome says so.

use rand::Rng;
use switchyard_kv::cost;

/// With a target: whether any candidate was predicted to meet it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SloOutcome {
    Met,
    Missed,
}

/// All indices, best first. `predicted` (ms) and `cheap` (the weights cost) are per
/// candidate.
pub fn rank_predicted(
    predicted: &[f64],
    cheap: &[f64],
    slo_ms: Option<f64>,
    temperature: f64,
    rng: &mut impl Rng,
) -> (Vec<usize>, Option<SloOutcome>) {
    let Some(slo) = slo_ms else {
        return (cost::rank(predicted, temperature, rng), None);
    };
    let meets = |i: usize| predicted[i] <= slo;
    let good: Vec<usize> = (0..predicted.len()).filter(|&i| meets(i)).collect();
    if good.is_empty() {
        return (
            cost::rank(predicted, temperature, rng),
            Some(SloOutcome::Missed),
        );
    }
    let good_costs: Vec<f64> = good.iter().map(|&i| cheap[i]).collect();
    let mut order: Vec<usize> = cost::rank(&good_costs, temperature, rng)
        .into_iter()
        .map(|k| good[k])
        .collect();
    let rest: Vec<usize> = (0..predicted.len()).filter(|&i| !meets(i)).collect();
    let rest_ms: Vec<f64> = rest.iter().map(|&i| predicted[i]).collect();
    order.extend(cost::rank(&rest_ms, 0.0, rng).into_iter().map(|k| rest[k]));
    (order, Some(SloOutcome::Met))
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn without_a_target_the_fastest_wins() {
        let mut rng = SmallRng::seed_from_u64(1);
        let (r, slo) = rank_predicted(&[90.0, 30.0, 60.0], &[0.0, 9.0, 5.0], None, 0.0, &mut rng);
        assert_eq!((r, slo), (vec![1, 2, 0], None));
    }

    #[test]
    fn with_a_target_the_cheapest_that_meets_it_wins() {
        let mut rng = SmallRng::seed_from_u64(2);
        // 1 and 2 meet 70 ms; 2 is cheaper (keeps the cache of 1 for others); 0 misses.
        let (r, slo) = rank_predicted(
            &[90.0, 30.0, 60.0],
            &[0.0, 9.0, 5.0],
            Some(70.0),
            0.0,
            &mut rng,
        );
        assert_eq!((r, slo), (vec![2, 1, 0], Some(SloOutcome::Met)));
    }

    #[test]
    fn when_none_meets_the_target_the_fastest_wins_and_the_miss_is_reported() {
        let mut rng = SmallRng::seed_from_u64(3);
        let (r, slo) = rank_predicted(
            &[90.0, 30.0, 60.0],
            &[0.0, 9.0, 5.0],
            Some(10.0),
            0.0,
            &mut rng,
        );
        assert_eq!((r, slo), (vec![1, 2, 0], Some(SloOutcome::Missed)));
    }
}

//! How much of a tenant's limit this replica enforces, from every replica's demand in the
//! last window (the usage exchange, `docs/tenants.md#replicas`).
//!
//! The limit is divided max-min fairly over the replicas' demands (a replica asking for
//! less than an equal split gets what it asks; the rest is shared by the others), and what
//! nobody asks for goes evenly to the replicas that asked for anything — so a tenant whose
//! traffic all lands on one replica gets the whole limit there — or, with no demand
//! anywhere, evenly to all (`1 / replicas`, the static split). Every replica runs the same
//! sum on the same reports, so the shares add up to one; the only excess is the floor, a
//! small share an idle replica keeps so its first requests are not refused while its
//! demand travels to the others.

use super::limiter::Limiter;

/// What an idle replica keeps, as a fraction of the limit divided by the replica count:
/// together at most 10 % over the limit.
pub const FLOOR: f64 = 0.1;

/// This replica's share (0..=1] of a limit of `limit` per second, given its own demand and
/// each live peer's, in the same unit.
pub fn fair_share(limit: f64, mine: f64, peers: &[f64]) -> f64 {
    let n = (peers.len() + 1) as f64;
    let clean = |d: f64| if d.is_finite() && d > 0.0 { d } else { 0.0 };
    let mine = clean(mine);
    if !(limit.is_finite() && limit > 0.0) {
        return 1.0 / n;
    }
    let mut all: Vec<f64> = peers.iter().map(|d| clean(*d)).chain([mine]).collect();
    all.sort_unstable_by(f64::total_cmp);
    // The water level: the most any one replica is given before leftovers.
    let mut left = limit;
    let mut water = f64::INFINITY;
    for (k, d) in all.iter().enumerate() {
        let even = left / (all.len() - k) as f64;
        if *d >= even {
            water = even;
            break;
        }
        left -= d;
    }
    let given: f64 = all.iter().map(|d| d.min(water)).sum();
    let leftover = (limit - given).max(0.0);
    let active = all.iter().filter(|d| **d > 0.0).count() as f64;
    let extra = match (active > 0.0, mine > 0.0) {
        (false, _) => leftover / n,
        (true, true) => leftover / active,
        (true, false) => 0.0,
    };
    ((mine.min(water) + extra) / limit).clamp(FLOOR / n, 1.0)
}

/// One tenant's demand rates in this window: (requests/s, tokens/s).
pub type Rates = (f64, f64);

/// Applies the fair shares of one tenant's request and token limits to its limiter.
pub fn apply(limiter: &Limiter, mine: Rates, peers: &[Rates], now: tokio::time::Instant) {
    let limits = limiter.limits();
    let of = |limit: Option<f64>, pick: fn(&Rates) -> f64| -> f64 {
        let peer: Vec<f64> = peers.iter().map(pick).collect();
        limit.map_or(1.0, |limit| fair_share(limit, pick(&mine), &peer))
    };
    let requests = of(limits.requests_per_second, |r| r.0);
    let tokens = of(limits.tokens_per_minute.map(|t| t as f64 / 60.0), |r| r.1);
    limiter.set_shares(requests, tokens, now);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn with_no_demand_anywhere_each_replica_holds_an_even_split() {
        assert!(close(fair_share(10.0, 0.0, &[0.0]), 0.5));
        assert!(close(fair_share(10.0, 0.0, &[0.0, 0.0, 0.0]), 0.25));
        assert!(close(fair_share(10.0, 0.0, &[]), 1.0));
    }

    #[test]
    fn a_busy_replica_with_idle_peers_takes_the_whole_limit() {
        assert!(close(fair_share(10.0, 50.0, &[0.0]), 1.0));
        // The idle peer's own view: only the floor.
        assert!(close(fair_share(10.0, 0.0, &[50.0]), FLOOR / 2.0));
    }

    #[test]
    fn a_modest_replica_gets_its_demand_and_the_flooder_the_rest() {
        // Limit 10: one replica asks 2/s, the other floods.
        assert!(close(fair_share(10.0, 2.0, &[1000.0]), 0.2));
        assert!(close(fair_share(10.0, 1000.0, &[2.0]), 0.8));
        // Two floods: half each.
        assert!(close(fair_share(10.0, 30.0, &[20.0]), 0.5));
    }

    #[test]
    fn a_modest_replica_alone_gets_the_whole_limit_too() {
        assert!(close(fair_share(10.0, 1.0, &[0.0]), 1.0));
        // 1 + 3 asked, 6 left over: 3 more each.
        assert!(close(fair_share(10.0, 1.0, &[3.0, 0.0]), 0.4));
    }

    #[test]
    fn replicas_reading_the_same_reports_share_out_exactly_the_limit() {
        let cases: [&[f64]; 5] = [
            &[1.0, 2.0, 3.0],
            &[0.0, 5.0, 100.0],
            &[4.0, 4.0, 4.0, 4.0],
            &[0.5, 0.5],
            &[9.0, 0.0, 0.0, 30.0],
        ];
        for demands in cases {
            let sum: f64 = (0..demands.len())
                .map(|i| {
                    let mut peers = demands.to_vec();
                    let mine = peers.remove(i);
                    fair_share(10.0, mine, &peers)
                })
                .sum();
            let floors = demands.iter().filter(|d| **d == 0.0).count() as f64;
            assert!(
                sum <= 1.0 + floors * FLOOR / demands.len() as f64 + 1e-9 && sum >= 1.0 - 1e-9,
                "{demands:?}: {sum}"
            );
        }
    }

    #[test]
    fn nonsense_rates_from_peers_count_as_idle() {
        assert!(close(fair_share(10.0, 50.0, &[f64::NAN, -3.0]), 1.0));
        assert!(close(fair_share(10.0, 5.0, &[f64::INFINITY]), 1.0));
    }

    #[tokio::test(start_paused = true)]
    async fn apply_moves_both_buckets_and_keeps_unlimited_ones_untouched() {
        let now = tokio::time::Instant::now();
        let limits =
            serde_yaml::from_str("{requests_per_second: 10, burst: 20, tokens_per_minute: 600}")
                .unwrap();
        let l = Limiter::new(&limits, now);
        l.set_replicas(2, now);
        // Busy here on requests, idle on tokens; the peer asks nothing.
        apply(&l, (40.0, 0.0), &[(0.0, 0.0)], now);
        assert_eq!(l.shares(), (Some(1.0), Some(0.5)));
        assert_eq!(l.requests_window(now).unwrap().limit, 20);
        let unlimited = Limiter::new(&Default::default(), now);
        apply(&unlimited, (40.0, 0.0), &[(0.0, 0.0)], now);
        assert_eq!(unlimited.shares(), (None, None));
    }
}

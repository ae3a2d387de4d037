//! Per-instance online learning of the TTFT rates: recursive least squares with a forgetting
//! factor, started at the configured priors.
//!
//! Why RLS: four rates, one observation per streamed request, and the features move
//! together (a busy instance is also a slow one), so a per-term EWMA would blame the wrong
//! term. RLS solves the joint least-squares problem incrementally in O(16) per sample and
//! fixed memory; starting it at the priors with a finite covariance makes it a ridge
//! regression towards them, so rates the traffic never excites (say, queueing on an idle
//! pool) stay at their prior instead of drifting.
//!
//! Robustness: a sample's residual is clamped to the running median absolute residual, which
//! makes the fit close to a median regression (the residuals are skewed: a prefix the index
//! believed cached but the engine evicted costs far more than a mispredicted one saves, and a
//! mean fit biased every prediction upwards); an outlier moves the rates by a bounded step, the
//! published rates are non-negative, and the covariance's trace is capped at its initial value so the
//! forgetting factor cannot wind it up while a feature stays constant.
//!
//! Exploration: an instance whose rates say "slow" gets no traffic, so nothing would ever
//! correct them. Once an instance has had no observation for [`STALE_AFTER`], its rates are
//! blended back towards the priors (half-way every [`STALE_HALF_LIFE`]), so a wrongly
//! condemned instance is tried again and a truly slow one is re-measured now and then.
//!
//! Reads are lock-free: the current rates are published as atomics after every update, so the
//! policy's hot path does four relaxed loads per candidate; only learning takes the mutex,
//! once per observed first token, never across an await.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

use super::{Features, PredictConfig, MAX_OBSERVED_MS, RATES};

/// Residuals beyond this many median absolute residuals are clamped.
const CLAMP: f64 = 1.0;
/// Learned rates older than this start to decay towards the priors.
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(10);
/// Half-life of that decay.
pub const STALE_HALF_LIFE: std::time::Duration = std::time::Duration::from_secs(20);

/// The learned rates of one instance (lives in [`crate::Instance`], so it is forgotten with
/// the instance).
#[derive(Debug, Default)]
pub struct TtftLearner {
    rates: [AtomicU64; RATES],
    samples: AtomicU32,
    /// [`crate::clock::now_ns`] of the last observation.
    last_ns: AtomicU64,
    state: Mutex<Option<Rls>>,
}

#[derive(Debug, Clone)]
struct Rls {
    theta: [f64; RATES],
    p: [[f64; RATES]; RATES],
    max_trace: f64,
    /// Median absolute residual (tracked), ms: the clamp's scale.
    scale: f64,
}

impl TtftLearner {
    /// The rates to predict with at `now_ns`: learned once `min_samples` arrived, else the
    /// priors; stale learned rates lean back towards the priors. Returns whether they are
    /// learned.
    pub fn rates(&self, config: &PredictConfig, now_ns: u64) -> ([f64; RATES], bool) {
        let prior = config.prior();
        if self.samples.load(Relaxed) < config.min_samples.max(1) {
            return (prior, false);
        }
        let age = now_ns.saturating_sub(self.last_ns.load(Relaxed)) as f64;
        let stale = age - STALE_AFTER.as_nanos() as f64;
        let keep = if stale > 0.0 {
            0.5f64.powf(stale / STALE_HALF_LIFE.as_nanos() as f64)
        } else {
            1.0
        };
        let mut r = [0.0; RATES];
        for ((r, a), p) in r.iter_mut().zip(&self.rates).zip(prior) {
            *r = p + (f64::from_bits(a.load(Relaxed)) - p) * keep;
        }
        (r, true)
    }

    /// Observations learned so far.
    pub fn samples(&self) -> u32 {
        self.samples.load(Relaxed)
    }

    /// Learns from one request: sent with `features`, its first token came after
    /// `observed_ms`. Non-finite, negative or absurd samples are ignored.
    pub fn observe(&self, features: &Features, observed_ms: f64, config: &PredictConfig) {
        if !observed_ms.is_finite() || !(0.0..=MAX_OBSERVED_MS).contains(&observed_ms) {
            return;
        }
        let x = features.vector();
        if x.iter().any(|v| !v.is_finite()) {
            return;
        }
        let mut state = self.state.lock();
        let rls = state.get_or_insert_with(|| Rls::new(config));
        rls.update(&x, observed_ms, config.forgetting.clamp(0.9, 1.0));
        for (a, t) in self.rates.iter().zip(rls.theta) {
            a.store(t.max(0.0).to_bits(), Relaxed);
        }
        drop(state);
        self.last_ns.store(crate::clock::now_ns(), Relaxed);
        self.samples.fetch_add(1, Relaxed);
    }
}

impl Rls {
    fn new(config: &PredictConfig) -> Self {
        let prior = config.prior();
        // Prior standard deviation: four times the prior, with a floor so a zero prior can
        // still learn (1 ms for the per-block and per-outstanding terms, 10 ms for the others).
        let mut floor = [10.0; RATES];
        floor[1] = 1.0;
        floor[3] = 1.0;
        let mut p = [[0.0; RATES]; RATES];
        for i in 0..RATES {
            let sd = 4.0 * prior[i].max(floor[i]);
            p[i][i] = sd * sd;
        }
        let max_trace = (0..RATES).map(|i| p[i][i]).sum();
        Self {
            theta: prior,
            p,
            max_trace,
            scale: 0.0,
        }
    }

    fn update(&mut self, x: &[f64; RATES], y: f64, lambda: f64) {
        let predicted: f64 = self.theta.iter().zip(x).map(|(t, x)| t * x).sum();
        let residual = y - predicted;
        // The scale starts at half the prior's prediction, so even the first sample (a cold
        // connection, a queue at start-up) moves the rates by a bounded step.
        if self.scale <= 0.0 {
            self.scale = (0.5 * predicted.abs()).max(1.0);
        }
        let bound = CLAMP * self.scale;
        let e = residual.clamp(-bound, bound);
        // The scale tracks the *median* absolute residual (a stochastic quantile step), so the
        // minority of samples the features misdescribe — a prefix the KV index believed cached
        // but the engine had evicted — cannot widen the clamp, while a shift that affects most
        // samples (a queue forming) does within a few dozen.
        self.scale = if residual.abs() > self.scale {
            self.scale * 1.1
        } else {
            (self.scale / 1.1).max(0.1)
        };

        let mut px = [0.0; RATES];
        for (i, v) in px.iter_mut().enumerate() {
            *v = (0..RATES).map(|j| self.p[i][j] * x[j]).sum();
        }
        let denom = lambda + x.iter().zip(&px).map(|(a, b)| a * b).sum::<f64>();
        if !denom.is_finite() || denom <= 0.0 {
            return;
        }
        // The fit itself stays unconstrained (projecting it would bias every later step);
        // only the published rates are kept non-negative.
        for (t, k) in self.theta.iter_mut().zip(&px) {
            *t += k / denom * e;
        }
        for (row, pi) in self.p.iter_mut().zip(&px) {
            for (v, pj) in row.iter_mut().zip(&px) {
                *v = (*v - pi * pj / denom) / lambda;
            }
        }
        let trace: f64 = (0..RATES).map(|i| self.p[i][i]).sum();
        if !trace.is_finite() || trace <= 0.0 {
            // Numerically lost: start over from the current rates.
            let theta = self.theta;
            *self = Self {
                theta,
                scale: self.scale,
                ..Self::new(&PredictConfig::default())
            };
        } else if trace > self.max_trace {
            let k = self.max_trace / trace;
            self.p.iter_mut().flatten().for_each(|v| *v *= k);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::policy::ttft::predict;

    fn f(blocks: f64, waiting: f64, outstanding: f64) -> Features {
        Features {
            blocks,
            waiting,
            outstanding,
        }
    }

    /// Rates with the four named terms and no hinge.
    fn r4(named: [f64; 4]) -> [f64; RATES] {
        let mut r = [0.0; RATES];
        r[..4].copy_from_slice(&named);
        r
    }

    /// Drives a learner with TTFT = truth · x (+ noise) on random features.
    fn learn(truth: [f64; RATES], n: usize, noise: f64, seed: u64) -> TtftLearner {
        let learner = TtftLearner::default();
        let cfg = PredictConfig::default();
        let mut rng = SmallRng::seed_from_u64(seed);
        for _ in 0..n {
            let x = f(
                f64::from(rng.gen_range(1..60)),
                f64::from(rng.gen_range(0..3)),
                f64::from(rng.gen_range(0..10)),
            );
            let y = predict(&truth, &x) * (1.0 + noise * (rng.gen::<f64>() - 0.5));
            learner.observe(&x, y, &cfg);
        }
        learner
    }

    #[test]
    fn priors_until_min_samples_then_learned_rates() {
        let cfg = PredictConfig::default();
        let learner = TtftLearner::default();
        assert_eq!(
            learner.rates(&cfg, crate::clock::now_ns()),
            (cfg.prior(), false)
        );
        for _ in 0..cfg.min_samples - 1 {
            learner.observe(&f(10.0, 0.0, 0.0), 45.0, &cfg);
        }
        assert!(
            !learner.rates(&cfg, crate::clock::now_ns()).1,
            "one sample short: still the priors"
        );
        learner.observe(&f(10.0, 0.0, 0.0), 45.0, &cfg);
        assert!(learner.rates(&cfg, crate::clock::now_ns()).1);
    }

    #[test]
    fn learns_a_prefill_rate_four_times_the_prior() {
        let truth = r4([3.0, 4.0, 20.0, 0.2]);
        let learner = learn(truth, 400, 0.1, 1);
        let (r, learned) = learner.rates(&PredictConfig::default(), crate::clock::now_ns());
        assert!(learned);
        assert!((r[1] - 4.0).abs() < 0.3, "prefill rate {r:?}");
        let x = f(40.0, 1.0, 3.0);
        let err = (predict(&r, &x) - predict(&truth, &x)).abs() / predict(&truth, &x);
        assert!(err < 0.1, "relative error {err} with {r:?}");
    }

    #[test]
    fn two_instances_learn_apart_and_outliers_move_rates_a_bounded_step() {
        let fast = learn(r4([2.0, 2.0, 20.0, 0.0]), 200, 0.05, 2);
        let slow = learn(r4([2.0, 4.0, 20.0, 0.0]), 200, 0.05, 3);
        let cfg = PredictConfig::default();
        let x = f(48.0, 0.0, 1.0);
        let (rf, rs) = (
            fast.rates(&cfg, crate::clock::now_ns()).0,
            slow.rates(&cfg, crate::clock::now_ns()).0,
        );
        assert!(
            predict(&rf, &x) * 1.5 < predict(&rs, &x),
            "{rf:?} vs {rs:?}"
        );
        // A single absurd sample (100× the truth) barely moves the fast instance's estimate.
        let before = predict(&rf, &x);
        fast.observe(&x, before * 100.0, &cfg);
        let after = predict(&fast.rates(&cfg, crate::clock::now_ns()).0, &x);
        assert!(after < before * 1.5, "{before} -> {after}");
    }

    #[test]
    fn stale_rates_lean_back_towards_the_priors() {
        let cfg = PredictConfig::default();
        let learner = learn(r4([2.0, 6.0, 20.0, 0.0]), 100, 0.0, 4);
        let now = crate::clock::now_ns();
        let fresh = learner.rates(&cfg, now).0[1];
        assert!((fresh - 6.0).abs() < 0.5, "{fresh}");
        let later = now + (STALE_AFTER + STALE_HALF_LIFE).as_nanos() as u64;
        let half = learner.rates(&cfg, later).0[1];
        let expected = cfg.prefill_ms_per_block + (fresh - cfg.prefill_ms_per_block) / 2.0;
        assert!((half - expected).abs() < 0.01, "{half} vs {expected}");
    }

    #[test]
    fn a_hidden_queue_is_learned_as_congestion() {
        // Flat at 2 ms a block until 8 outstanding, then 20 ms per request beyond.
        let cfg = PredictConfig::default();
        let learner = TtftLearner::default();
        let mut rng = SmallRng::seed_from_u64(5);
        let truth = |x: &Features| 2.0 * x.blocks + 20.0 * (x.outstanding - 7.0).max(0.0);
        for _ in 0..600 {
            let x = f(
                f64::from(rng.gen_range(1..40)),
                0.0,
                f64::from(rng.gen_range(0..12)),
            );
            learner.observe(&x, truth(&x), &cfg);
        }
        let (r, _) = learner.rates(&cfg, crate::clock::now_ns());
        let at = |out: f64| predict(&r, &f(10.0, 0.0, out));
        assert!(at(2.0) < 40.0, "light load stays cheap: {r:?}");
        assert!(
            at(11.0) > 2.0 * at(2.0),
            "a crowded instance is predicted slow: {r:?}"
        );
    }

    #[test]
    fn garbage_samples_are_ignored() {
        let cfg = PredictConfig::default();
        let learner = TtftLearner::default();
        for bad in [f64::NAN, f64::INFINITY, -1.0, MAX_OBSERVED_MS * 2.0] {
            learner.observe(&f(1.0, 0.0, 0.0), bad, &cfg);
        }
        learner.observe(&f(f64::NAN, 0.0, 0.0), 10.0, &cfg);
        assert_eq!(learner.samples(), 0);
    }

    #[test]
    fn a_constant_feature_does_not_wind_the_covariance_up() {
        let cfg = PredictConfig::default();
        let learner = TtftLearner::default();
        // 5 000 identical idle samples: waiting and outstanding never move.
        for _ in 0..5_000 {
            learner.observe(&f(10.0, 0.0, 0.0), 25.0, &cfg);
        }
        let (r, _) = learner.rates(&cfg, crate::clock::now_ns());
        assert!(r.iter().all(|v| v.is_finite() && *v >= 0.0), "{r:?}");
        assert!((predict(&r, &f(10.0, 0.0, 0.0)) - 25.0).abs() < 1.0);
        let state = learner.state.lock();
        let rls = state.as_ref().unwrap();
        let trace: f64 = (0..RATES).map(|i| rls.p[i][i]).sum();
        assert!(trace <= rls.max_trace * 1.000_001);
    }
}

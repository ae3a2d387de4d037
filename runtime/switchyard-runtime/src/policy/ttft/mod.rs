//! Predicted time to first token: the `kv` policy's default cost (`kv.mode: predictive`).
//!
//! For each candidate instance the policy predicts, in milliseconds,
//!
//! ```text
//! ttft = base + prefill × max(1, uncached_blocks) + queue × waiting + decode × outstanding
//!      + Σₖ congestionₖ × max(0, outstanding + 1 − k)        for k in KNEES (4, 8, …, 256)
//! ```
//!
//! where `uncached_blocks` is the prompt's blocks the instance does not cache (from the KV
//! index), `waiting` the requests expected ahead of this one in the engine's queue, and
//! `outstanding` the requests the engine already holds (running sequences slow a prefill
//! that shares the GPU with them). The hinge terms are for engines whose queue the frontend
//! cannot see (no load reports): their TTFT is flat until the batch is full and then grows with
//! every request beyond it. The batch size is unknown, so there is one hinge per power of two
//! from 4 to 256 and the fit finds which one carries the queue (their priors are 0). The rates are learned per instance, online, from the
//! TTFT this frontend observes ([`learner`]); until an instance has `min_samples`
//! observations its rates are the configured priors. A model of this shape fits engines we
//! did not write, because every input is either the frontend's own knowledge (overlap,
//! in-flight) or the engine's standard load report (running, waiting).

pub mod choice;
pub mod learner;

use serde::{Deserialize, Serialize};

use crate::live::Instance;

pub use choice::{rank_predicted, SloOutcome};
pub use learner::TtftLearner;

/// Number of learned rates (and features, with the constant 1 for the base).
pub const RATES: usize = 4 + KNEES.len();
/// Outstanding-request counts where a hidden queue may start (one hinge term each).
pub const KNEES: [u32; 7] = [4, 8, 16, 32, 64, 128, 256];
/// Largest observed TTFT a sample may carry (ten minutes): beyond it the sample is dropped.
pub const MAX_OBSERVED_MS: f64 = 600_000.0;
/// Largest accepted `ttft_slo_ms` (config or header): ten minutes.
pub const MAX_SLO_MS: f64 = 600_000.0;

/// `kv.predict`: priors and learning settings of the predictive cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PredictConfig {
    /// Prior: fixed time of every request (network, tokenising, the first decode step), ms.
    pub base_ms: f64,
    /// Prior: prefill time per uncached KV block, ms.
    pub prefill_ms_per_block: f64,
    /// Prior: wait per request queued ahead at the engine, ms.
    pub queue_ms_per_request: f64,
    /// Prior: slow-down per request the engine already holds, ms.
    pub decode_ms_per_request: f64,
    /// Observations an instance needs before its learned rates replace the priors.
    pub min_samples: u32,
    /// Recursive least squares forgetting factor (0.9–1): 0.99 weighs the last ~100 samples.
    pub forgetting: f64,
    /// The engine's batch size (requests it runs at once) when it never reported a queue;
    /// 0 = unknown (then only the engine's reported queue counts as waiting).
    pub concurrency: u32,
}

impl Default for PredictConfig {
    fn default() -> Self {
        Self {
            base_ms: 5.0,
            prefill_ms_per_block: 1.0,
            queue_ms_per_request: 50.0,
            decode_ms_per_request: 0.5,
            min_samples: 8,
            forgetting: 0.99,
            concurrency: 0,
        }
    }
}

impl PredictConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("base_ms", self.base_ms),
            ("prefill_ms_per_block", self.prefill_ms_per_block),
            ("queue_ms_per_request", self.queue_ms_per_request),
            ("decode_ms_per_request", self.decode_ms_per_request),
        ] {
            if !v.is_finite() || !(0.0..=MAX_OBSERVED_MS).contains(&v) {
                return Err(format!(
                    "predict.{name} must be between 0 and {MAX_OBSERVED_MS}, got {v}"
                ));
            }
        }
        if !(0.9..=1.0).contains(&self.forgetting) {
            return Err(format!(
                "predict.forgetting must be between 0.9 and 1, got {}",
                self.forgetting
            ));
        }
        if self.min_samples > 1_000_000 {
            return Err(format!(
                "predict.min_samples must be at most 1000000, got {}",
                self.min_samples
            ));
        }
        Ok(())
    }

    /// The prior rates, in feature order (the hinge terms' priors are 0).
    pub fn prior(&self) -> [f64; RATES] {
        let mut p = [0.0; RATES];
        p[..4].copy_from_slice(&[
            self.base_ms,
            self.prefill_ms_per_block,
            self.queue_ms_per_request,
            self.decode_ms_per_request,
        ]);
        p
    }
}

/// What the prediction of one candidate is made of, captured at dispatch time so the TTFT
/// observed later is learned against the load the request actually met.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Features {
    /// Prompt blocks the instance must compute, at least 1 (the tail block and first decode
    /// step are always paid).
    pub blocks: f64,
    /// Requests expected ahead of this one in the engine's queue.
    pub waiting: f64,
    /// Requests the engine holds (running and waiting) before this one.
    pub outstanding: f64,
}

impl Features {
    /// The features of sending a prompt with `uncached` blocks to `instance` now.
    pub fn of(instance: &Instance, uncached: u32, config: &PredictConfig) -> Self {
        let load = &instance.load;
        let outstanding = f64::from(load.outstanding());
        let reported = f64::from(load.queued.load(std::sync::atomic::Ordering::Relaxed));
        // The batch size: what the engine ran when it last had to queue, else the configured
        // one. Beyond it, every outstanding request is one more ahead of this one.
        let batch = match load.saturated_running() {
            0 => config.concurrency,
            n => n,
        };
        let excess = if batch > 0 {
            (outstanding + 1.0 - f64::from(batch)).max(0.0)
        } else {
            0.0
        };
        Self {
            blocks: f64::from(uncached.max(1)),
            waiting: reported.max(excess),
            outstanding,
        }
    }

    /// The regression vector (constant first).
    pub fn vector(&self) -> [f64; RATES] {
        let mut x = [0.0; RATES];
        x[..4].copy_from_slice(&[1.0, self.blocks, self.waiting, self.outstanding]);
        for (x, k) in x[4..].iter_mut().zip(KNEES) {
            *x = (self.outstanding + 1.0 - f64::from(k)).max(0.0);
        }
        x
    }
}

/// Predicted TTFT in ms for `features` under `rates`.
pub fn predict(rates: &[f64; RATES], features: &Features) -> f64 {
    let x = features.vector();
    rates
        .iter()
        .zip(x)
        .map(|(r, x)| r * x)
        .sum::<f64>()
        .max(0.0)
}

/// One candidate's prediction, as the policy made it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Prediction {
    /// `Instance::num_id`.
    pub instance: u32,
    pub features: Features,
    pub predicted_ms: f64,
    /// Whether the instance's own learned rates were used (false: the priors).
    pub learned: bool,
}

/// What the `kv` policy decided for one request, handed to dispatch so the observed TTFT
/// can be compared with (and taught to) the prediction of the instance that served it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// One entry per candidate, in candidate order.
    pub predictions: Vec<Prediction>,
    /// The TTFT target the decision was made against.
    pub slo_ms: Option<f64>,
    /// With a target: whether any candidate was predicted to meet it.
    pub slo: Option<SloOutcome>,
}

impl Decision {
    pub fn for_instance(&self, num_id: u32) -> Option<&Prediction> {
        self.predictions.iter().find(|p| p.instance == num_id)
    }
}

/// Where a policy leaves its [`Decision`] (one per request; a mutex because the request
/// future must be `Sync`, uncontended in practice).
#[derive(Debug, Default)]
pub struct DecisionSlot(parking_lot::Mutex<Option<Decision>>);

impl DecisionSlot {
    pub fn put(&self, decision: Decision) {
        *self.0.lock() = Some(decision);
    }

    pub fn take(&self) -> Option<Decision> {
        self.0.lock().take()
    }

    /// A copy of the decision (for explanations), leaving it in place.
    pub fn peek(&self) -> Option<Decision> {
        self.0.lock().clone()
    }

    /// The decision's SLO outcome, when it had a target.
    pub fn peek_slo(&self) -> Option<SloOutcome> {
        self.0.lock().as_ref().and_then(|d| d.slo)
    }

    /// The prediction made for the instance `num_id`, with the decision's target.
    pub fn prediction_for(&self, num_id: u32) -> Option<(Prediction, Option<f64>)> {
        let guard = self.0.lock();
        let d = guard.as_ref()?;
        Some((*d.for_instance(num_id)?, d.slo_ms))
    }
}

/// Validates a TTFT target (config or header), in ms.
pub fn check_slo_ms(v: f64) -> Result<f64, String> {
    if v.is_finite() && v > 0.0 && v <= MAX_SLO_MS {
        Ok(v)
    } else {
        Err(format!(
            "a TTFT target must be a number of milliseconds in (0, {MAX_SLO_MS}], got {v}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EngineReport, InstanceSpec, ReportSource};

    #[test]
    fn features_count_the_queue_beyond_the_engine_batch() {
        let i = Instance::new(InstanceSpec::new("a", "m", "http://a"), None);
        let cfg = PredictConfig::default();
        let f = Features::of(&i, 0, &cfg);
        assert_eq!((f.blocks, f.waiting, f.outstanding), (1.0, 0.0, 0.0));
        // The engine runs 2 and queues 1: its batch is 2, so with 3 outstanding this request
        // would wait behind 3 + 1 − 2 = 2.
        let report = EngineReport {
            running: Some(2.0),
            waiting: Some(1.0),
            ..EngineReport::default()
        };
        i.load.record_report(ReportSource::Scrape, &report, 1);
        let f = Features::of(&i, 7, &cfg);
        assert_eq!((f.blocks, f.waiting, f.outstanding), (7.0, 2.0, 3.0));
    }

    #[test]
    fn prediction_is_the_dot_product_and_never_negative() {
        let f = Features {
            blocks: 10.0,
            waiting: 2.0,
            outstanding: 4.0,
        };
        let mut r = [0.0; RATES];
        r[..5].copy_from_slice(&[5.0, 2.0, 10.0, 0.5, 3.0]);
        // The first hinge (4) sees this request as the fifth: 4 + 1 − 4 = 1 beyond it.
        assert_eq!(predict(&r, &f), 5.0 + 20.0 + 20.0 + 2.0 + 3.0);
        assert_eq!(predict(&[-100.0; RATES], &f), 0.0);
    }

    #[test]
    fn config_validation_and_slo_bounds() {
        assert!(PredictConfig::default().validate().is_ok());
        for bad in [
            PredictConfig {
                prefill_ms_per_block: f64::NAN,
                ..PredictConfig::default()
            },
            PredictConfig {
                base_ms: -1.0,
                ..PredictConfig::default()
            },
            PredictConfig {
                forgetting: 0.5,
                ..PredictConfig::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert_eq!(check_slo_ms(250.0), Ok(250.0));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_SLO_MS * 2.0] {
            assert!(check_slo_ms(bad).is_err(), "{bad}");
        }
    }
}

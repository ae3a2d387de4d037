//! The frontend's side of predicted-TTFT routing (the `kv` policy's predictive mode,
//! `switchyard_runtime::policy::ttft`): the TTFT target a request is routed against, the
//! observation that teaches each instance's rates when its first token arrives, and the
//! metrics of predictions, their error and SLO misses.

pub mod metrics;
pub mod slo;

use std::time::Duration;

use switchyard_runtime::policy::ttft::{DecisionSlot, SloOutcome};
use switchyard_runtime::Instance;

use crate::app::App;

pub use metrics::PredictMetrics;

/// Right after ranking: counts a target no candidate was predicted to meet.
pub fn after_rank(app: &App, model: &str, slot: &DecisionSlot) {
    let missed = slot
        .peek_slo()
        .is_some_and(|outcome| outcome == SloOutcome::Missed);
    if missed {
        app.metrics
            .predict
            .slo_missed(model, metrics::MissKind::Predicted);
    }
}

/// The first token from `instance` arrived `elapsed` after the request was sent: teach the
/// instance's rates with the features the decision saw, and record the prediction's error.
/// Requests the `kv` policy did not predict for (other policies, plugins) teach nothing.
pub fn first_token(
    app: &App,
    model: &str,
    instance: &Instance,
    slot: &DecisionSlot,
    elapsed: Duration,
) {
    let Some((prediction, slo_ms)) = slot.prediction_for(instance.num_id) else {
        return;
    };
    let observed_ms = elapsed.as_secs_f64() * 1e3;
    tracing::debug!(
        instance = instance.id(),
        predicted_ms = prediction.predicted_ms,
        observed_ms,
        blocks = prediction.features.blocks,
        waiting = prediction.features.waiting,
        outstanding = prediction.features.outstanding,
        learned = prediction.learned,
        "ttft observed"
    );
    instance.ttft.observe(
        &prediction.features,
        observed_ms,
        &app.kv.current().config.predict,
    );
    app.metrics
        .predict
        .observe(model, &prediction, observed_ms, slo_ms);
}

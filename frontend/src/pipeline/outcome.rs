//! Passive-health bookkeeping: what a classified failure does to the instance it happened on.
//!
//! Only failures whose class names a health outcome ([`super::failure`]) touch the instance:
//! its breaker, the observations health-policy plugins read, and the `last_error` the admin
//! API shows. Consecutive failures count only from distinct requests (keyed by
//! [`request_key`]), so a request retried or continued on the same instance counts once.

use switchyard_runtime::clock::now_ns;
use switchyard_runtime::health::ejection_allowed;
use switchyard_runtime::Instance;

use super::failure::{Cause, Failure};
use crate::app::App;

/// The key that tells requests apart in the health counters (never 0, which means unknown).
pub fn request_key(request_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(request_id.as_bytes()) | 1
}

/// A stream that failed after its first event (chat relay or native relay): a stall also
/// degrades the instance and counts in `stalls`; then the failure is blamed as any other.
pub fn stream_failed(
    app: &App,
    instance: &Instance,
    cause: Cause,
    detail: String,
    request: u64,
) -> Failure {
    if matches!(cause, Cause::Stalled(_)) {
        instance
            .health
            .mark_degraded(now_ns(), &app.config.reliability.health);
        app.metrics.stalls.inc();
    }
    let failure = Failure::new(cause, instance.id(), detail);
    blame(app, instance, &failure, request);
    failure
}

/// Counts `failure` against `instance` if the instance caused it, ejecting it once it reaches
/// the threshold, unless the model's pool is at its max ejected fraction (the pool is looked
/// up only on this, the failure, path). Returns whether the instance was blamed.
pub fn blame(app: &App, instance: &Instance, failure: &Failure, request: u64) -> bool {
    let Some(outcome) = failure.class().health else {
        return false;
    };
    app.registry
        .observations
        .record(instance.num_id, outcome, 0.0);
    let now = now_ns();
    let may_eject = app
        .registry
        .topology()
        .model(&instance.spec.model)
        .is_none_or(|pool| ejection_allowed(pool, now, &app.config.reliability.health));
    if instance.health.record_request_failure(
        now,
        &app.config.reliability.health,
        may_eject,
        request,
    ) {
        tracing::warn!(
            instance = instance.id(),
            ejections = instance.health.ejections(),
            "instance ejected"
        );
    }
    instance.set_last_error(failure.message());
    true
}

//! Stage 6 — dispatch: send the request to the best-ranked instance; if it fails before the
//! first byte reaches the client, try the next-ranked one (bounded by the ranking length,
//! i.e. `1 + max_retries`, and by the retry budget). Whether a failure is retried and whom it
//! blames is decided by its class ([`super::failure`]): a failure before the worker produced
//! anything (unreachable, no first token in time, a broken first event) is retried; a 5xx or
//! first-event error is retried once to find out whose it is — reproduced by a second instance
//! it is the request's (returned, nobody blamed), otherwise the first instance's; a response
//! the worker already produced (truncated, too large, stalled) is not re-run elsewhere. A 4xx
//! is the request's fault and goes straight back to the client.
//!
//! "Before the first byte" includes the first SSE event of a stream: the client's response
//! starts only once a worker has produced something, so a worker that accepts a stream and
//! dies before its first token — or sends an in-band error event as its first — costs a
//! retry, not a failed request.

use std::sync::Arc;
use std::time::Instant;

use switchyard_runtime::clock::now_ns;
use switchyard_runtime::health::{HealthConfig, RetryPermit};
use switchyard_runtime::Instance;

use super::failure::{Cause, Failure, Retry};
use super::health_filter::Routable;
use super::outcome;
use super::parse::ParsedRequest;
use super::preprocess::Prepared;
use super::tracker::Tracker;
use super::upstream::{send, Upstream};
use crate::app::App;
use crate::error::ApiError;

/// Why an attempt produced no answer to relay.
#[derive(Debug)]
enum AttemptError {
    /// The request cannot be sent to this instance at all (e.g. it cannot be rendered for
    /// it): answered as is, nobody blamed.
    Request(ApiError),
    /// The exchange with the instance failed.
    Failed(Failure),
}

/// The outcome of asking to send one more attempt to an instance.
#[derive(Debug)]
enum Claim<'a> {
    /// Go: the trial slot (if half-open) is ours, and the retry permit (for a retry) is held.
    Go(Option<RetryPermit<'a>>),
    /// The instance may not be tried now (breaker open, trial taken): try the next one.
    Skip,
    /// A retry was due but the budget is spent: stop.
    BudgetSpent,
}

/// Claims what one attempt needs, in an order that never strands a claim: the retry permit
/// first, the half-open trial slot last, so a budget refusal leaves the slot for another
/// request instead of blocking the instance for `trial_timeout_ms`. In panic mode
/// (`route-all`) breakers are not consulted.
fn claim<'a>(
    instance: &Instance,
    retry: bool,
    panic: bool,
    retry_permit: impl FnOnce() -> Option<RetryPermit<'a>>,
    health: &HealthConfig,
) -> Claim<'a> {
    let now = now_ns();
    if !panic && !instance.routable(now) {
        return Claim::Skip;
    }
    let permit = if retry {
        match retry_permit() {
            Some(permit) => Some(permit),
            None => return Claim::BudgetSpent,
        }
    } else {
        None
    };
    if panic || instance.health.try_claim(now, health) {
        Claim::Go(permit)
    } else {
        Claim::Skip
    }
}

/// Tries the ranked instances in order. An instance whose breaker is half-open is tried only
/// if this request wins its trial slot; every attempt after the first needs a permit from the
/// retry budget, so an all-failing pool answers fast instead of multiplying its load.
pub async fn dispatch(
    app: &Arc<App>,
    request: &ParsedRequest,
    prepared: &Prepared,
    routable: &Routable<'_>,
    ranked: &[usize],
    request_id: &str,
    tracker: &Tracker,
) -> Result<Upstream, ApiError> {
    let candidates = &routable.instances;
    // With flow control on, its gate ([`crate::flow::admit`]) already waited for room: shedding
    // here would answer 503 to a request that waited its turn, whenever another admission
    // (a new arrival, or a waiter the ticker woke) took the same slot between the gate and
    // this point. The gate's check is the capacity decision then; admissions racing in the
    // same instant may briefly exceed `max_in_flight_per_instance`, as concurrent arrivals can
    // without flow control.
    if !app.flow.enabled() {
        app.admission.check_capacity(&request.headers, candidates)?;
    }
    if routable.panic {
        app.metrics.panic_routed.inc();
    }
    let key = outcome::request_key(request_id);
    let mut last: Option<Failure> = None;
    // A 5xx (or first-event error) not yet pinned on its instance: the next attempt decides.
    let mut suspect: Option<(&Arc<Instance>, Failure)> = None;
    let mut attempts = 0u32;
    let mut _permit = None;
    for &index in ranked {
        let Some(&instance) = candidates.get(index) else {
            continue;
        };
        let retry = attempts > 0;
        match claim(
            instance,
            retry,
            routable.panic,
            || app.retry_permit(),
            &app.config.reliability.health,
        ) {
            Claim::Skip => continue,
            Claim::BudgetSpent => {
                tracing::warn!(
                    request_id,
                    instance = instance.id(),
                    "retry budget exhausted: not retrying"
                );
                break;
            }
            Claim::Go(None) => {}
            Claim::Go(permit) => {
                _permit = permit;
                tracker.count_retry();
            }
        }
        attempts += 1;
        let failure =
            match attempt_once(app, request, prepared, instance, request_id, tracker).await {
                Ok(upstream) => {
                    if let Some((first, failure)) = suspect.take() {
                        // Another instance served the request: the first one's failure was its own.
                        outcome::blame(app, first, &failure, key);
                    }
                    return Ok(upstream);
                }
                Err(AttemptError::Request(error)) => return Err(error),
                Err(AttemptError::Failed(failure)) => failure,
            };
        let class = failure.class();
        tracing::warn!(
            request_id,
            instance = instance.id(),
            cause = class.label,
            detail = %failure.detail,
            attempts,
            "upstream attempt failed"
        );
        match class.retry {
            Retry::Confirm if suspect.is_some() => {
                // Two instances failed the same request the same way: the request is at
                // fault, not them. Stop here and blame no one.
                tracing::warn!(
                    request_id,
                    "the request failed the same way on two instances: not retried, no instance blamed"
                );
                return Err(reproduced(instance, failure).to_api_error());
            }
            Retry::Confirm => suspect = Some((instance, failure.clone())),
            Retry::Yes => {
                outcome::blame(app, instance, &failure, key);
            }
            Retry::No => {
                outcome::blame(app, instance, &failure, key);
                return Err(failure.to_api_error());
            }
        }
        last = Some(failure);
    }
    // A suspect that no other instance could confirm or clear stays unblamed: one request
    // alone never counts against an instance by a failure it may have caused itself.
    Err(last.map_or_else(
        || ApiError::unavailable("No instance could be tried."),
        |failure| failure.to_api_error(),
    ))
}

/// The request's own fault, shown by a second instance failing it as the first did.
fn reproduced(instance: &Instance, failure: Failure) -> Failure {
    let status = match failure.cause {
        Cause::ServerError(status) => status,
        _ => 0,
    };
    Failure::new(Cause::Reproduced(status), instance.id(), failure.detail)
}

async fn attempt_once(
    app: &Arc<App>,
    request: &ParsedRequest,
    prepared: &Prepared,
    instance: &Arc<Instance>,
    request_id: &str,
    tracker: &Tracker,
) -> Result<Upstream, AttemptError> {
    let upstream = prepared
        .upstream_request(request, instance)
        .map_err(AttemptError::Request)?;
    // Disaggregation speaks chat/completions only: a native attempt goes to the decode
    // instance alone.
    let plan = upstream
        .native
        .is_none()
        .then(|| super::pd::plan(app, request, prepared, instance, &upstream))
        .flatten();
    if let Some(plan) = plan {
        return super::pd::run(app, plan, request, instance, upstream, request_id, tracker)
            .await
            .map_err(AttemptError::Failed);
    }
    let started = Instant::now();
    let sent = crate::telemetry::traced!(
        crate::telemetry::spans::attempt(instance.id()),
        send(
            app,
            instance,
            upstream,
            request.is_stream(),
            request_id,
            Some(tracker),
        )
    );
    if let Ok(Upstream::Stream(_)) = &sent {
        // A stream's first event is its TTFT: what the `kv` policy's predictions learn from.
        let elapsed = started.elapsed();
        crate::predict::first_token(app, request.model(), instance, &prepared.decision, elapsed);
    }
    sent.map_err(AttemptError::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use switchyard_runtime::health::{RetryBudget, RetryBudgetConfig};
    use switchyard_runtime::InstanceSpec;

    fn half_open() -> Instance {
        let i = Instance::new(InstanceSpec::new("i", "m", "http://i"), None);
        let config = HealthConfig {
            failure_threshold: 1,
            eject_base_ms: 1,
            eject_max_ms: 1,
            ..HealthConfig::default()
        };
        i.health.record_failure(now_ns(), &config, true);
        // Let the 1 ms ejection expire: the breaker is then half-open.
        std::thread::sleep(Duration::from_millis(2));
        i
    }

    fn spent_budget() -> RetryBudget {
        RetryBudget::new(RetryBudgetConfig {
            percent: 0,
            min_concurrent: 0,
        })
    }

    #[test]
    fn a_retry_refused_by_the_budget_leaves_the_trial_slot_free() {
        let instance = half_open();
        let health = HealthConfig::default();
        let budget = spent_budget();
        assert!(matches!(
            claim(&instance, true, false, || budget.try_acquire(10), &health),
            Claim::BudgetSpent
        ));
        assert!(
            instance.health.try_claim(now_ns(), &health),
            "the refused retry must not have taken the half-open trial"
        );
    }

    #[test]
    fn a_first_attempt_needs_no_permit_and_takes_the_trial_once() {
        let instance = half_open();
        let health = HealthConfig::default();
        let budget = spent_budget();
        assert!(matches!(
            claim(&instance, false, false, || budget.try_acquire(10), &health),
            Claim::Go(None)
        ));
        assert!(matches!(
            claim(&instance, false, false, || budget.try_acquire(10), &health),
            Claim::Skip
        ));
    }

    #[test]
    fn a_retry_gets_a_permit_and_panic_mode_ignores_breakers() {
        let health = HealthConfig {
            failure_threshold: 1,
            ..HealthConfig::default()
        };
        let budget = RetryBudget::new(RetryBudgetConfig::default());
        let healthy = Instance::new(InstanceSpec::new("h", "m", "http://h"), None);
        assert!(matches!(
            claim(&healthy, true, false, || budget.try_acquire(10), &health),
            Claim::Go(Some(_))
        ));
        let ejected = Instance::new(InstanceSpec::new("e", "m", "http://e"), None);
        ejected.health.record_failure(now_ns(), &health, true);
        assert!(matches!(
            claim(&ejected, false, false, || budget.try_acquire(10), &health),
            Claim::Skip
        ));
        assert!(matches!(
            claim(&ejected, false, true, || budget.try_acquire(10), &health),
            Claim::Go(None)
        ));
    }
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod socket_free;

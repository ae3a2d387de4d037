//! Stage 6 — dispatch: send the request to the best-ranked instance; if it fails before the
//! first byte reaches the client, try the next-ranked one (bounded by the ranking length,
//! i.e. `1 + max_retries`, and by the retry budget). Only failures of the instance are
//! retried (connect errors, timeouts, 5xx, broken streams); a 4xx is the request's fault and
//! goes straight back to the client.
//!
//! "Before the first byte" includes the first SSE event of a stream: the client's response
//! starts only once a worker has produced something, so a worker that accepts a stream and
//! dies before its first token — or sends an in-band error event as its first — costs a
//! retry, not a failed request.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use switchyard_protocol::sse::{Event, Framer};
use switchyard_runtime::clock::now_ns;
use switchyard_runtime::health::{ejection_allowed, HealthConfig, RetryPermit};
use switchyard_runtime::observe::Outcome;
use switchyard_runtime::{InFlightGuard, Instance};

use super::health_filter::Routable;
use super::inband;
use super::parse::ParsedRequest;
use super::preprocess::{Prepared, UpstreamRequest};
use super::tracker::Tracker;
use super::Endpoint;
use crate::admission;
use crate::app::App;
use crate::config::UpstreamConfig;
use crate::error::ApiError;

/// What the chosen worker answered, ready to relay.
pub enum Upstream {
    /// A whole (non-streamed) response, or a worker's 4xx passed through.
    Complete {
        instance: Arc<Instance>,
        guard: InFlightGuard,
        status: StatusCode,
        body: Bytes,
        translated: bool,
    },
    /// A stream whose first event has arrived.
    Stream(StreamStart),
}

pub struct StreamStart {
    pub instance: Arc<Instance>,
    pub guard: InFlightGuard,
    pub body: Incoming,
    pub framer: Framer,
    pub first: Event,
    pub translated: bool,
}

/// A failed attempt: where it failed and whether another instance may be tried.
#[derive(Debug)]
struct AttemptError {
    error: ApiError,
    /// The instance is at fault (connect error, timeout, 5xx): retry elsewhere, count against
    /// its health. Otherwise the request itself is at fault and retrying cannot help.
    retryable: bool,
}

impl AttemptError {
    fn upstream(error: ApiError) -> Self {
        Self {
            error,
            retryable: true,
        }
    }
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
    if !panic && !instance.health.is_routable(now) {
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
    admission::check_capacity(&app.config.overload, &request.headers, candidates).inspect_err(
        |_| {
            app.metrics.shed.fetch_add(1, Ordering::Relaxed);
        },
    )?;
    if routable.panic {
        app.metrics.panic_routed.fetch_add(1, Ordering::Relaxed);
    }
    let mut last_error = None;
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
            &app.config.health,
        ) {
            Claim::Skip => continue,
            Claim::BudgetSpent => {
                tracing::warn!(
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
        match attempt_once(app, request, prepared, instance, request_id, tracker).await {
            Ok(upstream) => return Ok(upstream),
            Err(AttemptError {
                error,
                retryable: false,
            }) => return Err(error),
            Err(AttemptError { error, .. }) => {
                tracing::warn!(instance = instance.id(), %error, attempts, "upstream attempt failed");
                record_instance_failure(app, instance, &error);
                last_error = Some(error);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| ApiError::unavailable("No instance could be tried.")))
}

/// Counts a failure against `instance`'s health, ejecting it unless the model's pool is at
/// its max ejected fraction (the pool is looked up only on this, the failure, path).
pub(crate) fn record_instance_failure(app: &App, instance: &Instance, error: &ApiError) {
    let outcome = if error.status == 504 {
        Outcome::RequestTimeout
    } else {
        Outcome::RequestFailed
    };
    app.registry
        .observations
        .record(instance.num_id, outcome, 0.0);
    let now = now_ns();
    let may_eject = app
        .registry
        .topology()
        .model(&instance.spec.model)
        .is_none_or(|pool| ejection_allowed(pool, now, &app.config.health));
    if instance
        .health
        .record_failure(now, &app.config.health, may_eject)
    {
        tracing::warn!(
            instance = instance.id(),
            ejections = instance.health.ejections(),
            "instance ejected"
        );
    }
    instance.set_last_error(error.message.clone());
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
        .map_err(|error| AttemptError {
            error,
            retryable: false,
        })?;
    send(
        app,
        instance,
        upstream,
        request.is_stream(),
        request_id,
        Some(tracker),
    )
    .await
}

/// Sends a continuation of a broken stream (a completions request) to `instance` and waits
/// for its first event.
pub(crate) async fn resume_stream(
    app: &Arc<App>,
    instance: &Arc<Instance>,
    body: Bytes,
    request_id: &str,
) -> Result<StreamStart, ApiError> {
    let upstream = UpstreamRequest {
        endpoint: Endpoint::Completions,
        body,
        translated: false,
    };
    match send(app, instance, upstream, true, request_id, None).await {
        Ok(Upstream::Stream(start)) => Ok(start),
        Ok(Upstream::Complete { status, .. }) => Err(ApiError::bad_gateway(format!(
            "instance {} refused the continuation with {status}",
            instance.id()
        ))),
        Err(AttemptError { error, .. }) => Err(error),
    }
}

/// One HTTP exchange with `instance`: a whole response, or a stream up to its first event.
async fn send(
    app: &Arc<App>,
    instance: &Arc<Instance>,
    upstream: UpstreamRequest,
    stream: bool,
    request_id: &str,
    tracker: Option<&Tracker>,
) -> Result<Upstream, AttemptError> {
    let guard = instance.start_request();
    let uri: Uri = format!("{}{}", instance.spec.url, upstream.endpoint.path())
        .parse()
        .map_err(|e| {
            AttemptError::upstream(ApiError::bad_gateway(format!(
                "instance {} has an invalid URL: {e}",
                instance.id()
            )))
        })?;
    let limits = &app.config.upstream;
    let started = Instant::now();
    let response = tokio::time::timeout(
        Duration::from_millis(limits.first_byte_timeout_ms),
        app.client
            .post_json(uri, upstream.body, request_id, instance.spec.auth_header()),
    )
    .await
    .map_err(|_| {
        AttemptError::upstream(ApiError::gateway_timeout(format!(
            "instance {} did not answer within {} ms",
            instance.id(),
            limits.first_byte_timeout_ms
        )))
    })?
    .map_err(|e| {
        AttemptError::upstream(ApiError::bad_gateway(format!(
            "instance {} is unreachable: {e}",
            instance.id()
        )))
    })?;

    let status = response.status();
    let body = response.into_body();
    if status.is_server_error() {
        let detail = read_error_detail(body).await;
        return Err(AttemptError::upstream(ApiError::bad_gateway(format!(
            "instance {} returned {status}: {detail}",
            instance.id()
        ))));
    }
    if status.is_success() && stream {
        let deadline = started + Duration::from_millis(limits.first_byte_timeout_ms);
        let (body, framer, first) = first_event(body, deadline, instance).await?;
        instance.health.record_success(now_ns());
        observe_ok(app, instance, started);
        if let Some(tracker) = tracker {
            tracker.observe_ttft(tracker.started().map_or(started, |s| s).elapsed());
        }
        return Ok(Upstream::Stream(StreamStart {
            instance: Arc::clone(instance),
            guard,
            body,
            framer,
            first,
            translated: upstream.translated,
        }));
    }
    let bytes = read_whole(body, instance, limits).await?;
    instance.health.record_success(now_ns());
    Ok(Upstream::Complete {
        instance: Arc::clone(instance),
        guard,
        status,
        body: bytes,
        translated: upstream.translated && status.is_success(),
    })
}

fn observe_ok(app: &App, instance: &Instance, started: Instant) {
    let latency_ms = started.elapsed().as_secs_f32() * 1000.0;
    app.registry
        .observations
        .record(instance.num_id, Outcome::RequestOk, latency_ms);
}

async fn read_whole(
    body: Incoming,
    instance: &Instance,
    limits: &UpstreamConfig,
) -> Result<Bytes, AttemptError> {
    let stall = Duration::from_millis(limits.stall_timeout_ms);
    Ok(tokio::time::timeout(
        stall,
        Limited::new(body, limits.max_response_bytes).collect(),
    )
    .await
    .map_err(|_| {
        AttemptError::upstream(ApiError::gateway_timeout(format!(
            "instance {} stalled while sending its response",
            instance.id()
        )))
    })?
    .map_err(|e| {
        AttemptError::upstream(ApiError::bad_gateway(format!(
            "instance {} failed while sending its response: {e}",
            instance.id()
        )))
    })?
    .to_bytes())
}

/// Reads until the first whole SSE event, so a worker that fails before producing anything
/// can still be retried on another instance.
async fn first_event(
    mut body: Incoming,
    deadline: Instant,
    instance: &Instance,
) -> Result<(Incoming, Framer, Event), AttemptError> {
    let mut framer = Framer::default();
    loop {
        match framer.next_event() {
            Ok(Some(event)) => match inband::classify(&event.data) {
                // A request fault is passed on: the relay ends the stream with it.
                Some(error) if !error.request_fault => {
                    return Err(AttemptError::upstream(ApiError::bad_gateway(format!(
                        "instance {} sent an error event before its first token: {}",
                        instance.id(),
                        error.message
                    ))))
                }
                _ => return Ok((body, framer, event)),
            },
            Ok(None) => {}
            Err(e) => {
                return Err(AttemptError::upstream(ApiError::bad_gateway(format!(
                    "instance {} sent a malformed stream: {e}",
                    instance.id()
                ))))
            }
        }
        let frame = tokio::time::timeout_at(deadline.into(), body.frame())
            .await
            .map_err(|_| {
                AttemptError::upstream(ApiError::gateway_timeout(format!(
                    "instance {} sent no token in time",
                    instance.id()
                )))
            })?;
        match frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    framer.push(data);
                }
            }
            Some(Err(e)) => {
                return Err(AttemptError::upstream(ApiError::bad_gateway(format!(
                    "instance {} failed before its first token: {e}",
                    instance.id()
                ))))
            }
            None => {
                return Err(AttemptError::upstream(ApiError::bad_gateway(format!(
                    "instance {} closed the stream before its first token",
                    instance.id()
                ))))
            }
        }
    }
}

/// A short, bounded excerpt of a worker's error body for the client's message and the logs.
async fn read_error_detail(body: Incoming) -> String {
    let read = tokio::time::timeout(
        Duration::from_secs(2),
        Limited::new(body, 16 * 1024).collect(),
    )
    .await;
    let Ok(Ok(collected)) = read else {
        return "no error detail".to_owned();
    };
    let bytes = collected.to_bytes();
    if let Ok(body) = serde_json::from_slice::<switchyard_protocol::ErrorBody>(&bytes) {
        return body.error.message;
    }
    String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_runtime::health::{RetryBudget, RetryBudgetConfig};
    use switchyard_runtime::InstanceSpec;

    fn half_open() -> Instance {
        let i = Instance::new(InstanceSpec::new("i", "m", "http://i"), None);
        let config = HealthConfig {
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
        let health = HealthConfig::default();
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

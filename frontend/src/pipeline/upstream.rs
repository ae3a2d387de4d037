//! The exchange with one worker, shared by dispatch (an attempt) and migration (a
//! continuation): send the request, then read a whole response — checked to be one whole JSON
//! object, its usage read on the way — or a stream up to its first whole SSE event. Nothing
//! here decides whom to try next or whom to blame; it says what happened ([`Failure`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use switchyard_protocol::sse::{Event, Framer};
use switchyard_protocol::Usage;
use switchyard_runtime::client::{ClientError, WorkerBody};
use switchyard_runtime::clock::now_ns;
use switchyard_runtime::observe::Outcome;
use switchyard_runtime::{InFlightGuard, Instance};
use tracing::Instrument as _;

use super::failure::{Cause, Failure};
use super::inband;
use super::preprocess::UpstreamRequest;
use super::tracker::Tracker;
use crate::app::App;
use crate::config::UpstreamConfig;

/// What the chosen worker answered, ready to relay.
pub enum Upstream {
    /// A whole (non-streamed) response, or a worker's 4xx passed through.
    Complete {
        instance: Arc<Instance>,
        guard: InFlightGuard,
        status: StatusCode,
        body: Bytes,
        /// The usage a successful body reports (read while checking it is whole JSON).
        usage: Option<Usage>,
        translated: bool,
        /// The body is in this agent API's shape (a native attempt), success or error.
        native: Option<switchyard_runtime::Api>,
    },
    /// A stream whose first event has arrived.
    Stream(StreamStart),
}

/// `B` is the worker's response body: [`WorkerBody`] from the worker client (hyper's in the
/// product, a scripted one in tests); a relay under test may use any body.
pub struct StreamStart<B = WorkerBody> {
    pub instance: Arc<Instance>,
    pub guard: InFlightGuard,
    pub body: B,
    pub framer: Framer,
    pub first: Event,
    pub translated: bool,
    /// The engine's `content-type` when it is an event stream's (vLLM adds `charset=utf-8`):
    /// relayed as the engine sent it.
    pub content_type: Option<http::HeaderValue>,
    /// A native agent-API stream ([`super::native_relay`]).
    pub native: Option<switchyard_runtime::Api>,
}

/// Sends a continuation of a broken stream (chat or completions, [`super::migrate`]) to
/// `instance` and waits for its first event: a whole answer means the worker refused it.
pub(crate) async fn resume(
    app: &Arc<App>,
    instance: &Arc<Instance>,
    upstream: UpstreamRequest,
    request_id: &str,
) -> Result<StreamStart, Failure> {
    match send(app, instance, upstream, true, request_id, None)
        .instrument(crate::telemetry::spans::attempt(instance.id()))
        .await?
    {
        Upstream::Stream(start) => Ok(start),
        Upstream::Complete { status, .. } => Err(Failure::new(
            Cause::ContinuationRefused(status.as_u16()),
            instance.id(),
            format!("continuation answered {status}"),
        )),
    }
}

/// One HTTP exchange with `instance`: a whole response, or a stream up to its first event.
pub(crate) async fn send(
    app: &Arc<App>,
    instance: &Arc<Instance>,
    upstream: UpstreamRequest,
    stream: bool,
    request_id: &str,
    tracker: Option<&Tracker>,
) -> Result<Upstream, Failure> {
    let guard = instance.start_request();
    if let Some(tracker) = tracker {
        tracker.slot_taken();
    }
    let fail = |cause, detail: String| Failure::new(cause, instance.id(), detail);
    let uri: Uri = format!("{}{}", instance.spec.url, super::native::path(&upstream))
        .parse()
        .map_err(|e| fail(Cause::InvalidUrl, format!("{e}")))?;
    let limits = &app.config.reliability.upstream;
    let started = Instant::now();
    let response = tokio::time::timeout(
        Duration::from_millis(limits.first_byte_timeout_ms),
        app.client.post_json_with(
            uri,
            upstream.body,
            request_id,
            instance.spec.auth_header(),
            upstream
                .forward
                .into_iter()
                .chain(crate::telemetry::worker_headers()),
        ),
    )
    .await
    .map_err(|_| {
        let ms = limits.first_byte_timeout_ms;
        // A stream's head comes with its first token; a whole response's only after the
        // generation, whose length the client chose.
        let cause = if stream {
            Cause::FirstByteTimeout(ms)
        } else {
            Cause::ResponseTimeout(ms)
        };
        fail(cause, format!("no response within {ms} ms"))
    })?
    .map_err(|e| match &e {
        ClientError::Request(_) => fail(Cause::InvalidUrl, e.to_string()),
        ClientError::Connect(_) | ClientError::Transport(_) => {
            fail(Cause::of_connect_error(&e), e.to_string())
        }
    })?;

    let status = response.status();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .filter(|v| v.as_bytes().starts_with(b"text/event-stream"))
        .cloned();
    let body = response.into_body();
    if status.is_server_error() {
        let detail = read_error_detail(body).await;
        return Err(fail(Cause::ServerError(status.as_u16()), detail));
    }
    if status.is_success() && stream {
        let deadline = started + Duration::from_millis(limits.first_byte_timeout_ms);
        let (body, framer, first) =
            first_event(body, deadline, instance, limits.first_byte_timeout_ms).await?;
        instance.health.record_success(now_ns());
        observe_ok(app, instance, started);
        super::latency::first_token(instance, started.elapsed());
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
            content_type,
            native: upstream.native,
        }));
    }
    let bytes = read_whole(body, instance, limits).await?;
    let usage = match (status.is_success(), upstream.native) {
        (true, None) => whole_json(&bytes, instance)?,
        (true, Some(_)) => {
            whole_json(&bytes, instance)?;
            super::native_events::whole_usage(&bytes)
        }
        (false, _) => None,
    };
    instance.health.record_success(now_ns());
    if status.is_success() {
        super::latency::whole_response(
            instance,
            started.elapsed(),
            usage.as_ref().map(|u| u.completion_tokens),
        );
    }
    Ok(Upstream::Complete {
        instance: Arc::clone(instance),
        guard,
        status,
        body: bytes,
        usage,
        translated: upstream.translated && status.is_success(),
        native: upstream.native,
    })
}

#[derive(Deserialize)]
struct UsageProbe {
    #[serde(default, deserialize_with = "lenient_usage")]
    usage: Option<Usage>,
}

/// A `usage` the frontend cannot read is not counted, but does not fail the response.
fn lenient_usage<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Usage>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(Usage::deserialize(value).ok())
}

/// Checks that a successful body is one whole JSON object — a body cut short by a closed
/// connection (no `content-length`, no chunked framing) looks complete to HTTP — and reads
/// its usage on the way.
fn whole_json(body: &[u8], instance: &Instance) -> Result<Option<Usage>, Failure> {
    match serde_json::from_slice::<UsageProbe>(body) {
        Ok(probe) => Ok(probe.usage),
        Err(e) => {
            let cause = if e.is_eof() {
                Cause::Truncated
            } else {
                Cause::Malformed
            };
            Err(Failure::new(cause, instance.id(), e.to_string()))
        }
    }
}

fn observe_ok(app: &App, instance: &Instance, started: Instant) {
    let latency_ms = started.elapsed().as_secs_f32() * 1000.0;
    app.registry
        .observations
        .record(instance.num_id, Outcome::RequestOk, latency_ms);
}

async fn read_whole(
    body: WorkerBody,
    instance: &Instance,
    limits: &UpstreamConfig,
) -> Result<Bytes, Failure> {
    let stall = Duration::from_millis(limits.stall_timeout_ms);
    Ok(tokio::time::timeout(
        stall,
        Limited::new(body, limits.max_response_bytes).collect(),
    )
    .await
    .map_err(|_| {
        Failure::new(
            Cause::Stalled(limits.stall_timeout_ms),
            instance.id(),
            "stalled while sending its response",
        )
    })?
    .map_err(|e| {
        // The limit is the client's choice of output length meeting ours; anything else is
        // the body breaking off (connection closed early, length mismatch).
        let cause = if e.downcast_ref::<LengthLimitError>().is_some() {
            Cause::ResponseTooLarge(limits.max_response_bytes)
        } else {
            Cause::Truncated
        };
        Failure::new(cause, instance.id(), e.to_string())
    })?
    .to_bytes())
}

/// Reads until the first whole SSE event, so a worker that fails before producing anything
/// can still be retried on another instance.
async fn first_event(
    mut body: WorkerBody,
    deadline: Instant,
    instance: &Instance,
    timeout_ms: u64,
) -> Result<(WorkerBody, Framer, Event), Failure> {
    let fail = |cause, detail: String| Failure::new(cause, instance.id(), detail);
    let mut framer = Framer::default();
    loop {
        match framer.next_event() {
            Ok(Some(event)) => match inband::classify(&event.data) {
                // A request fault is passed on: the relay ends the stream with it.
                Some(error) if !error.request_fault => {
                    return Err(fail(Cause::ErrorEvent, error.message))
                }
                _ => return Ok((body, framer, event)),
            },
            Ok(None) => {}
            Err(e) => return Err(fail(Cause::MalformedStream, e.to_string())),
        }
        let frame = tokio::time::timeout_at(deadline.into(), body.frame())
            .await
            .map_err(|_| {
                fail(
                    Cause::FirstByteTimeout(timeout_ms),
                    "no first event in time".to_owned(),
                )
            })?;
        match frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    framer.push(data);
                }
            }
            Some(Err(e)) => return Err(fail(Cause::NoFirstEvent, e.to_string())),
            None => return Err(fail(Cause::NoFirstEvent, "end of stream".to_owned())),
        }
    }
}

/// A short, bounded excerpt of a worker's error body for the logs (never the client).
async fn read_error_detail(body: WorkerBody) -> String {
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

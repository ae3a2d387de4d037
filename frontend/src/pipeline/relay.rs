//! Stage 7 — relay: stream the worker's answer back as it arrives.
//!
//! Streams are re-framed into whole SSE events (never half an event), translated back to the
//! chat shape for completions-only workers, and always end with `data: [DONE]`. If the worker
//! fails, stalls or closes early, the stream is migrated to another instance when migration
//! is on ([`super::migrate`]); otherwise — or when migration is impossible — the client gets
//! an in-band `data: {"error":…}` event before `[DONE]`, never a silent EOF. A worker's own
//! in-band error event is such a failure too ([`super::inband`]). A stall — no *data event*
//! for the stall timeout; SSE comments and keep-alives do not count — also marks the instance
//! degraded. Dropping the body (client gone) drops the upstream response, which closes the
//! worker connection and so cancels generation there.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body::Frame;
use hyper::body::Incoming;
use serde::de::IgnoredAny;
use serde::Deserialize;
use switchyard_protocol::sse::{encode_data, encode_done, Event, Framer};
use switchyard_protocol::{ErrorBody, Usage};
use switchyard_runtime::clock::now_ns;
use switchyard_runtime::{InFlightGuard, Instance};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::dispatch::{StreamStart, Upstream};
use super::failure::{Cause, Failure};
use super::inband;
use super::migrate::{Migration, Resume, Step};
use super::outcome;
use super::parse::ParsedRequest;
use super::tracker::Tracker;
use super::upstream_pull::{pull, Pulled, StallClock};
use crate::app::App;
use crate::body::Body;
use crate::error::ApiError;
use crate::http_edge::{error_response, INSTANCE_HEADER};
use crate::translate::{self, ChunkTranslator};

/// What the relay keeps besides the upstream answer: the admission slot (held until the
/// stream ends) and the request id (for a continuation's `x-request-id`).
pub struct RelayContext<'a> {
    pub permit: Option<OwnedSemaphorePermit>,
    pub request_id: &'a str,
}

/// nginx's per-response switch for proxy buffering; engines set it on streams too.
const ACCEL_BUFFERING: &str = "x-accel-buffering";

/// Builds the client response for what the worker answered.
pub fn respond(
    app: &Arc<App>,
    request: &ParsedRequest,
    upstream: Upstream,
    mut tracker: Tracker,
    context: RelayContext<'_>,
) -> Response<Body> {
    match upstream {
        Upstream::Stream(start) => {
            tracker.set_instance(start.instance.id());
            let instance = HeaderValue::from_str(start.instance.id()).ok();
            let content_type = start
                .content_type
                .clone()
                .unwrap_or(HeaderValue::from_static("text/event-stream"));
            let native = start.native;
            let body = match native {
                Some(api) => Body::Native(Box::new(super::native_relay::NativeRelay::new(
                    app,
                    api,
                    start,
                    tracker,
                    context.permit,
                    context.request_id,
                ))),
                None => Body::Relay(Box::new(RelayBody::new(
                    app, start, tracker, request, context,
                ))),
            };
            let mut response = Response::new(body);
            if native.is_some() {
                response
                    .extensions_mut()
                    .insert(super::native::NativeAnswer);
            }
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, content_type);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            // A reverse proxy in front (nginx, an ingress) must not buffer a token stream.
            headers.insert(ACCEL_BUFFERING, HeaderValue::from_static("no"));
            if let Some(id) = instance {
                headers.insert(INSTANCE_HEADER, id);
            }
            response
        }
        Upstream::Complete {
            instance,
            guard,
            status,
            body,
            usage,
            translated,
            native,
        } => {
            if !status.is_success() && !is_json_object(&body) {
                tracker.set_instance(instance.id());
                tracker.finish_with(status.as_u16());
                drop(guard);
                let mut response =
                    error_response(&ApiError::worker_refusal(status.as_u16(), &body));
                if let Ok(id) = HeaderValue::from_str(instance.id()) {
                    response.headers_mut().insert(INSTANCE_HEADER, id);
                }
                return response;
            }
            let body = if translated {
                match translate::completion_to_chat(&body) {
                    Ok(body) => body,
                    Err(detail) => {
                        let failure = Failure::new(Cause::Malformed, instance.id(), detail);
                        tracing::warn!(request_id = context.request_id, %failure, "untranslatable response");
                        let error = failure.to_api_error();
                        tracker.finish_with(error.status);
                        return error_response(&error);
                    }
                }
            } else {
                body
            };
            tracker.set_instance(instance.id());
            if let Some(usage) = usage {
                tracker.record_usage(&usage);
            }
            tracker.finish_with(status.as_u16());
            drop(guard);
            let mut response = Response::new(Body::full(body));
            *response.status_mut() = status;
            if native.is_some() {
                response
                    .extensions_mut()
                    .insert(super::native::NativeAnswer);
            }
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Ok(id) = HeaderValue::from_str(instance.id()) {
                headers.insert(INSTANCE_HEADER, id);
            }
            response
        }
    }
}

/// Whether a chunk carries generated text (content, completion text, reasoning, tool-call
/// arguments), judged from the bytes: the opening `{"role":"assistant","content":""}` chunk
/// and a closing `"delta":{}` chunk do not. Only used when the engine reports no usage.
fn carries_text(data: &[u8]) -> bool {
    use switchyard_protocol::json_key::{ARGUMENTS, CONTENT, REASONING_CONTENT, TEXT};
    [&CONTENT, &TEXT, &REASONING_CONTENT, &ARGUMENTS]
        .iter()
        .any(|key| key.string_value_at(data).is_some_and(|v| !v.is_empty()))
}

/// Whether a worker's body is a JSON object (an error body of any engine's shape); anything
/// else is not relayed as `application/json`.
fn is_json_object(body: &[u8]) -> bool {
    body.trim_ascii_start().first() == Some(&b'{')
        && serde_json::from_slice::<IgnoredAny>(body).is_ok()
}

#[derive(Deserialize)]
struct UsageProbe {
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
}

/// `data` with its `usage` replaced (a spliced stream reports the whole stream's usage).
fn with_usage(data: Bytes, usage: &Usage) -> Bytes {
    let Ok(mut chunk) = serde_json::from_slice::<serde_json::Value>(&data) else {
        return data;
    };
    match (chunk.as_object_mut(), serde_json::to_value(usage)) {
        (Some(object), Ok(usage)) => {
            object.insert("usage".to_owned(), usage);
            serde_json::to_vec(&chunk).map(Bytes::from).unwrap_or(data)
        }
        _ => data,
    }
}

/// A live SSE relay from one worker (or, after migration, a succession of workers) to one
/// client.
pub struct RelayBody {
    /// `None` between a failure and the continuation's start.
    upstream: Option<Incoming>,
    framer: Framer,
    out: VecDeque<Bytes>,
    translator: Option<ChunkTranslator>,
    client_wants_usage: bool,
    tracker: Tracker,
    app: Arc<App>,
    instance: Arc<Instance>,
    _guard: Option<InFlightGuard>,
    _admission: Option<OwnedSemaphorePermit>,
    /// When the last data event arrived, and the stall timer ([`StallClock`]).
    stall: StallClock,
    /// When the last upstream frame arrived (also the arrival time of its events).
    frame_at: Instant,
    /// When the last event was relayed (inter-token latency; not reset by a splice).
    last_event: Instant,
    tokens: u32,
    /// Events that carried no generated text (the opening role chunk, the closing
    /// finish-reason chunk): subtracted from `tokens` when the engine reports no usage.
    empty_events: u32,
    usage: Option<Usage>,
    finished: bool,
    migration: Option<Box<Migration>>,
    /// Migration is on but this request cannot be continued exactly: why (for the error).
    not_migrated: Option<&'static str>,
    resuming: Option<Resume>,
    /// Tells this request apart in the instances' failure counts ([`outcome::request_key`]).
    request_key: u64,
    /// Resolves when the shutdown grace ends (armed at the first wait).
    grace_over: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

impl RelayBody {
    fn new(
        app: &Arc<App>,
        start: StreamStart,
        tracker: Tracker,
        request: &ParsedRequest,
        context: RelayContext<'_>,
    ) -> Self {
        let stall = Duration::from_millis(app.config.reliability.upstream.stall_timeout_ms);
        let first = start.first;
        let now = Instant::now();
        let (migration, not_migrated) = match Migration::new(app, request, context.request_id) {
            Ok(migration) => (Some(migration), None),
            Err(why) => (None, why),
        };
        let mut relay = Self {
            upstream: Some(start.body),
            framer: start.framer,
            out: VecDeque::with_capacity(4),
            translator: start.translated.then(ChunkTranslator::default),
            client_wants_usage: request.include_usage(),
            tracker,
            app: Arc::clone(app),
            instance: start.instance,
            _guard: Some(start.guard),
            _admission: context.permit,
            stall: StallClock::new(stall, now),
            frame_at: now,
            last_event: now,
            tokens: 0,
            empty_events: 0,
            usage: None,
            finished: false,
            migration,
            not_migrated,
            resuming: None,
            request_key: outcome::request_key(context.request_id),
            grace_over: None,
        };
        relay.on_event(first);
        relay
    }

    fn on_event(&mut self, event: Event) {
        let now = self.frame_at;
        self.stall.data(now);
        if event.is_done() {
            self.out.push_back(encode_done());
            self.finish();
            return;
        }
        if let Some(error) = inband::classify(&event.data) {
            return self.upstream_error(&event, error);
        }
        if self.tokens > 0 {
            self.tracker.observe_itl(now - self.last_event);
            super::latency::inter_token(&self.instance, now - self.last_event);
        }
        self.last_event = now;
        let migrated = self.migration.as_ref().is_some_and(|m| m.migrated());
        // Forwarded unchanged, an event can go out in the bytes it arrived in.
        let raw = if self.translator.is_none() && !migrated {
            event.raw
        } else {
            None
        };
        let data = match &mut self.translator {
            Some(t) => match t.translate(&event.data) {
                Ok(data) => data,
                Err(detail) => return self.upstream_failed(Cause::Malformed, detail),
            },
            None => event.data,
        };
        let data = match &self.migration {
            Some(m) if migrated => m.restamp(data),
            _ => data,
        };
        // A spliced stream's content chunk with usage (`continuous_usage_stats`) shows the
        // whole stream's count; `sent` keeps the worker's own, which the next migration reads.
        let mut adjusted = None;
        if switchyard_protocol::json_key::USAGE.in_bytes(&data) {
            if let Ok(probe) = serde_json::from_slice::<UsageProbe>(&data) {
                let usage_only = probe.choices.as_ref().is_some_and(Vec::is_empty);
                let reported = probe.usage.is_some();
                if let Some(usage) = probe.usage {
                    self.usage = Some(match &self.migration {
                        Some(m) if m.migrated() => m.adjust_usage(usage),
                        _ => usage,
                    });
                }
                if usage_only {
                    if self.client_wants_usage {
                        let data = match (&self.migration, &self.usage) {
                            (Some(m), Some(usage)) if m.migrated() => with_usage(data, usage),
                            _ => data,
                        };
                        self.out.push_back(encode_data(&data));
                    }
                    return;
                }
                if let (true, true, Some(usage)) = (migrated, reported, &self.usage) {
                    adjusted = Some(with_usage(data.clone(), usage));
                }
            }
        }
        self.tokens += 1;
        // One key search for a content chunk (the common case).
        if !carries_text(&data) {
            self.empty_events += 1;
        }
        if let Some(migration) = &mut self.migration {
            migration.record_sent(&data);
        }
        let data = adjusted.unwrap_or(data);
        self.out
            .push_back(raw.unwrap_or_else(|| encode_data(&data)));
    }

    /// The worker sent an in-band error event. If it blamed the request, the client gets that
    /// event and the stream ends (as a 4xx would be passed through); otherwise the instance
    /// failed.
    fn upstream_error(&mut self, event: &Event, error: inband::InbandError) {
        if !error.request_fault {
            return self.upstream_failed(Cause::MidStreamError, error.message);
        }
        self.upstream = None;
        self._guard = None;
        self.end_with_error(event.encoded());
    }

    /// The worker failed (broken connection, early close, malformed stream, error event,
    /// stall): count it against the instance, then migrate the stream or end it with an
    /// in-band error. The worker's own words (`detail`) go to the log only.
    fn upstream_failed(&mut self, cause: Cause, detail: String) {
        if matches!(cause, Cause::Stalled(_)) {
            self.instance
                .health
                .mark_degraded(now_ns(), &self.app.config.reliability.health);
            self.app.metrics.stalls.inc();
        }
        let failure = Failure::new(cause, self.instance.id(), detail);
        outcome::blame(&self.app, &self.instance, &failure, self.request_key);
        tracing::warn!(%failure, "stream failed mid-way");
        let message = failure.message();
        let message = message.trim_end_matches('.');
        // Dropping the response closes the connection, which cancels a stalled generation.
        self.upstream = None;
        self._guard = None;
        let Some(migration) = &mut self.migration else {
            return match self.not_migrated {
                Some(why) => self.fail(&format!("{message}; not migrated: the request uses {why}")),
                None => self.fail(message),
            };
        };
        match migration.step(&self.app, &self.instance) {
            Step::Finish => {
                self.out.push_back(encode_done());
                self.finish();
            }
            Step::Exhausted => {
                self.out.push_back(encode_data(&migration.finish_chunk()));
                let usage = migration.usage_so_far();
                if self.client_wants_usage {
                    self.out
                        .push_back(encode_data(&migration.usage_chunk(&usage)));
                }
                self.usage = Some(usage);
                self.out.push_back(encode_done());
                self.finish();
            }
            Step::Resume(resume) => {
                self.app.metrics.migrations.inc();
                self.tracker.count_migration();
                self.resuming = Some(resume);
            }
            Step::GiveUp(reason) => self.fail(&format!("{message}; {reason}")),
        }
    }

    /// Splices the continuation in: completion chunks for a chat client are translated
    /// (without a second role delta); a chat worker's own chunks lose their role delta when
    /// restamped.
    fn resumed(&mut self, start: StreamStart) {
        self.instance = start.instance;
        self._guard = Some(start.guard);
        self.upstream = Some(start.body);
        self.framer = start.framer;
        self.translator = start.translated.then(ChunkTranslator::continuing);
        self.reset_stall_timer();
        self.on_event(start.first);
    }

    /// Ends the stream with an in-band error event and `[DONE]`.
    fn fail(&mut self, message: &str) {
        let body = ErrorBody::new(
            format!("The stream failed: {message}"),
            "upstream_error",
            None,
            Some("stream_interrupted".to_owned()),
        );
        self.end_with_error(encode_data(body.to_json().as_bytes()));
    }

    /// True once the shutdown grace period is over; until then, registers for its end.
    fn poll_grace_over(&mut self, cx: &mut Context<'_>) -> bool {
        let app = &self.app;
        let wait = self
            .grace_over
            .get_or_insert_with(|| Box::pin(app.grace_over.clone().cancelled_owned()));
        wait.as_mut().poll(cx).is_ready()
    }

    /// The frontend is going away with this stream still open: end it in-band rather than
    /// by a silent EOF, so the client knows it is incomplete.
    fn shut_down(&mut self) {
        self.resuming = None;
        self.upstream = None;
        self._guard = None;
        let body = ErrorBody::new(
            "The frontend shut down before this stream finished (its shutdown grace period \
             ended); retry the request."
                .to_owned(),
            "service_unavailable",
            None,
            Some("shutting_down".to_owned()),
        );
        self.end_with_error(encode_data(body.to_json().as_bytes()));
    }

    /// Ends the stream with an encoded error event and `[DONE]`.
    fn end_with_error(&mut self, error_event: Bytes) {
        self.out.push_back(error_event);
        self.out.push_back(encode_done());
        self.tracker.count_stream_error();
        self.finish();
    }

    fn finish(&mut self) {
        self.finished = true;
        let usage = match self.usage {
            Some(usage) => usage,
            None => {
                // The engine ignored `include_usage` (llama-cpp-python does): count what was
                // generated, not the role and finish chunks around it, and say it is a count.
                self.app.metrics.usage_estimated.inc();
                Usage::new(0, self.tokens.saturating_sub(self.empty_events))
            }
        };
        self.tracker.record_usage(&usage);
        self.tracker.complete();
    }

    fn reset_stall_timer(&mut self) {
        self.frame_at = Instant::now();
        self.stall.restart(self.frame_at);
    }

    fn poll_upstream(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(upstream) = self.upstream.as_mut() else {
            // Not reachable: a failure either resumes or finishes. End cleanly regardless.
            self.fail("no upstream");
            return Poll::Ready(());
        };
        match pull(upstream, &mut self.framer, &mut self.stall, cx, "[DONE]") {
            Pulled::Frame => {
                self.frame_at = Instant::now();
                Poll::Ready(())
            }
            Pulled::Failed(cause, detail) => {
                self.upstream_failed(cause, detail);
                Poll::Ready(())
            }
            Pulled::Pending => Poll::Pending,
        }
    }

    fn poll_resume(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(resume) = self.resuming.as_mut() else {
            return Poll::Ready(());
        };
        let outcome = match resume.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(outcome) => outcome,
        };
        self.resuming = None;
        match outcome {
            Ok(start) => self.resumed(start),
            Err(message) => self.fail(&message),
        }
        Poll::Ready(())
    }
}

impl http_body::Body for RelayBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            if let Some(bytes) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            if this.resuming.is_some() {
                if this.poll_resume(cx).is_pending() {
                    if this.poll_grace_over(cx) {
                        this.shut_down();
                        continue;
                    }
                    return Poll::Pending;
                }
                continue;
            }
            match this.framer.next_event() {
                Ok(Some(event)) => {
                    this.on_event(event);
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    this.upstream_failed(Cause::Malformed, e.to_string());
                    continue;
                }
            }
            if this.poll_upstream(cx).is_pending() {
                if this.poll_grace_over(cx) {
                    this.shut_down();
                    continue;
                }
                return Poll::Pending;
            }
        }
    }
}

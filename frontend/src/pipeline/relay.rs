//! Stage 7 — relay: stream the worker's answer back as it arrives.
//!
//! Streams are re-framed into whole SSE events (never half an event), translated back to the
//! chat shape for completions-only workers, and always end with `data: [DONE]`. If the worker
//! fails, stalls or closes early, the client gets an in-band `data: {"error":…}` event before
//! `[DONE]` — never a silent EOF. Dropping the body (client gone) drops the upstream
//! response, which closes the worker connection and so cancels generation there.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body::{Body as _, Frame};
use hyper::body::Incoming;
use serde::de::IgnoredAny;
use serde::Deserialize;
use switchyard_protocol::sse::{encode_data, encode_done, Event, Framer};
use switchyard_protocol::{ErrorBody, Usage};
use switchyard_runtime::clock::now_ns;
use switchyard_runtime::{InFlightGuard, Instance};
use tokio::time::Sleep;

use super::dispatch::{StreamStart, Upstream};
use super::parse::ParsedRequest;
use super::tracker::Tracker;
use crate::app::App;
use crate::body::Body;
use crate::error::ApiError;
use crate::http_edge::{error_response, INSTANCE_HEADER};
use crate::translate::{self, ChunkTranslator};

/// Builds the client response for what the worker answered.
pub fn respond(
    app: &Arc<App>,
    request: &ParsedRequest,
    upstream: Upstream,
    mut tracker: Tracker,
) -> Response<Body> {
    match upstream {
        Upstream::Stream(start) => {
            let instance = HeaderValue::from_str(start.instance.id()).ok();
            let relay = RelayBody::new(app, start, tracker, request.include_usage());
            let mut response = Response::new(Body::Relay(Box::new(relay)));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
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
            translated,
        } => {
            let body = if translated {
                match translate::completion_to_chat(&body) {
                    Ok(body) => body,
                    Err(message) => {
                        let error = ApiError::bad_gateway(message);
                        tracker.finish_with(error.status);
                        return error_response(&error);
                    }
                }
            } else {
                body
            };
            if status.is_success() {
                if let Some(usage) = probe_usage(&body) {
                    tracker.record_usage(&usage);
                }
            }
            tracker.finish_with(status.as_u16());
            drop(guard);
            let mut response = Response::new(Body::full(body));
            *response.status_mut() = status;
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

#[derive(Deserialize)]
struct UsageProbe {
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
}

fn probe_usage(body: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<UsageProbe>(body).ok()?.usage
}

/// A live SSE relay from one worker to one client.
pub struct RelayBody {
    upstream: Incoming,
    framer: Framer,
    out: VecDeque<Bytes>,
    translator: Option<ChunkTranslator>,
    client_wants_usage: bool,
    tracker: Tracker,
    app: Arc<App>,
    instance: Arc<Instance>,
    _guard: InFlightGuard,
    stall: Duration,
    stall_timer: Pin<Box<Sleep>>,
    last_event: Instant,
    tokens: u32,
    usage: Option<Usage>,
    finished: bool,
}

impl RelayBody {
    fn new(app: &Arc<App>, start: StreamStart, tracker: Tracker, client_wants_usage: bool) -> Self {
        let stall = Duration::from_millis(app.config.upstream.stall_timeout_ms);
        let mut relay = Self {
            upstream: start.body,
            framer: start.framer,
            out: VecDeque::with_capacity(4),
            translator: start.translated.then(ChunkTranslator::default),
            client_wants_usage,
            tracker,
            app: Arc::clone(app),
            instance: start.instance,
            _guard: start.guard,
            stall,
            stall_timer: Box::pin(tokio::time::sleep(stall)),
            last_event: Instant::now(),
            tokens: 0,
            usage: None,
            finished: false,
        };
        relay.on_event(start.first);
        relay
    }

    fn on_event(&mut self, event: Event) {
        if event.is_done() {
            self.out.push_back(encode_done());
            self.finish();
            return;
        }
        let now = Instant::now();
        if self.tokens > 0 {
            self.tracker.observe_itl(now - self.last_event);
        }
        self.last_event = now;
        let data = match &mut self.translator {
            Some(t) => match t.translate(&event.data) {
                Ok(data) => data,
                Err(message) => return self.fail(&message),
            },
            None => event.data,
        };
        if memchr::memmem::find(&data, b"\"usage\"").is_some() {
            if let Ok(probe) = serde_json::from_slice::<UsageProbe>(&data) {
                let usage_only = probe.choices.as_ref().is_some_and(Vec::is_empty);
                if probe.usage.is_some() {
                    self.usage = probe.usage;
                }
                if usage_only {
                    if self.client_wants_usage {
                        self.out.push_back(encode_data(&data));
                    }
                    return;
                }
            }
        }
        self.tokens += 1;
        self.out.push_back(encode_data(&data));
    }

    /// Ends the stream with an in-band error event and `[DONE]`.
    fn fail(&mut self, message: &str) {
        let body = ErrorBody::new(
            format!(
                "The stream from instance {} failed: {message}",
                self.instance.id()
            ),
            "upstream_error",
            None,
            Some("stream_interrupted".to_owned()),
        );
        self.out.push_back(encode_data(body.to_json().as_bytes()));
        self.out.push_back(encode_done());
        self.tracker.count_stream_error();
        self.instance
            .health
            .record_failure(now_ns(), &self.app.config.health);
        self.instance.set_last_error(message.to_owned());
        tracing::warn!(
            instance = self.instance.id(),
            message,
            "stream failed mid-way"
        );
        self.finish();
    }

    fn finish(&mut self) {
        self.finished = true;
        let usage = self.usage.unwrap_or_else(|| Usage::new(0, self.tokens));
        self.tracker.record_usage(&usage);
        self.tracker.complete();
    }

    fn poll_upstream(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match Pin::new(&mut self.upstream).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.framer.push(data);
                }
                let deadline = tokio::time::Instant::now() + self.stall;
                self.stall_timer.as_mut().reset(deadline);
                Poll::Ready(())
            }
            Poll::Ready(Some(Err(e))) => {
                self.fail(&format!("connection error: {e}"));
                Poll::Ready(())
            }
            Poll::Ready(None) => {
                self.fail("the worker closed the stream before it finished");
                Poll::Ready(())
            }
            Poll::Pending => {
                if self.stall_timer.as_mut().poll(cx).is_ready() {
                    let ms = self.stall.as_millis();
                    self.fail(&format!("no data for {ms} ms (stalled)"));
                    return Poll::Ready(());
                }
                Poll::Pending
            }
        }
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
            match this.framer.next_event() {
                Ok(Some(event)) => {
                    this.on_event(event);
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    this.fail(&e.to_string());
                    continue;
                }
            }
            if this.poll_upstream(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

//! Relay of a native agent-API stream (Responses or Messages events from a worker that
//! serves the API itself), with the chat relay's guarantees where they carry over: whole
//! events only, the stall timeout, health blame, the admission slot held to the end, the
//! shutdown grace, usage from the worker's own events, and never a silent EOF — a worker
//! that breaks off, stalls or sends garbage before the API's terminal event gets the stream
//! ended with that API's failure event (`response.failed` / Anthropic `error`).
//!
//! Not migrated: splicing a continuation into a native stream exactly would need the
//! continuation in the same API with the same item ids, sequence numbers and content
//! indices, which no engine offers. A broken native stream therefore ends with the
//! failure event even when `migration_limit` is set (docs/api.md).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use switchyard_protocol::sse::{Event, Framer};
use switchyard_runtime::{Api, InFlightGuard, Instance, WorkerBody};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::failure::Cause;
use super::native_events::{NativeEvents, Seen};
use super::outcome;
use super::tracker::Tracker;
use super::upstream::StreamStart;
use super::upstream_pull::{pull, Pulled, StallClock};
use crate::app::App;

/// `B` is the worker's response body ([`WorkerBody`] in the product; tests script one).
pub struct NativeRelay<B = WorkerBody> {
    upstream: Option<B>,
    framer: Framer,
    out: VecDeque<Bytes>,
    events: NativeEvents,
    tracker: Tracker,
    app: Arc<App>,
    instance: Arc<Instance>,
    _guard: Option<InFlightGuard>,
    _admission: Option<OwnedSemaphorePermit>,
    /// When the last data event arrived, and the stall timer ([`StallClock`]).
    stall: StallClock,
    last_delta: Option<Instant>,
    deltas: u32,
    finished: bool,
    request_key: u64,
    grace_over: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

impl<B> NativeRelay<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    pub fn new(
        app: &Arc<App>,
        api: Api,
        start: StreamStart<B>,
        tracker: Tracker,
        permit: Option<OwnedSemaphorePermit>,
        request_id: &str,
    ) -> Self {
        let stall = Duration::from_millis(app.config.reliability.upstream.stall_timeout_ms);
        let now = Instant::now();
        let mut relay = Self {
            upstream: Some(start.body),
            framer: start.framer,
            out: VecDeque::with_capacity(4),
            events: NativeEvents::new(api),
            tracker,
            app: Arc::clone(app),
            instance: start.instance,
            _guard: Some(start.guard),
            _admission: permit,
            stall: StallClock::new(stall, now),
            last_delta: None,
            deltas: 0,
            finished: false,
            request_key: outcome::request_key(request_id),
            grace_over: None,
        };
        relay.on_event(start.first);
        relay
    }

    fn on_event(&mut self, event: Event) {
        let now = Instant::now();
        self.stall.data(now);
        if event.is_done() {
            // Neither API ends with `[DONE]`; a worker that sends one before the terminal
            // event has cut its answer short.
            return self.upstream_failed(Cause::BrokenStream, "[DONE] before the end".into());
        }
        let (name, seen) = match self.events.observe(&event.data) {
            Ok(observed) => observed,
            Err(detail) => return self.upstream_failed(Cause::Malformed, detail),
        };
        self.out.push_back(NativeEvents::encode(&name, &event.data));
        match seen {
            Seen::Delta => {
                if let Some(last) = self.last_delta {
                    self.tracker.observe_itl(now - last);
                    super::latency::inter_token(&self.instance, now - last);
                }
                self.last_delta = Some(now);
                self.deltas += 1;
            }
            Seen::Other => {}
            Seen::Terminal => {
                self.upstream = None;
                self._guard = None;
                self.finish();
            }
            Seen::Failed(message) => {
                // The worker's own failure event has reached the client: blame, then end.
                let _ = self.blame(Cause::MidStreamError, message);
                self.tracker.count_stream_error();
                self.finish();
            }
        }
    }

    /// Blames the instance; returns the public message for the failure.
    fn blame(&mut self, cause: Cause, detail: String) -> String {
        let failure =
            outcome::stream_failed(&self.app, &self.instance, cause, detail, self.request_key);
        tracing::warn!(%failure, "native stream failed mid-way");
        // Dropping the response closes the connection, which cancels the generation.
        self.upstream = None;
        self._guard = None;
        failure.message()
    }

    /// The worker failed before the terminal event: blame it and end the stream with the
    /// API's failure event (the worker's own words go to the log only).
    fn upstream_failed(&mut self, cause: Cause, detail: String) {
        let message = self.blame(cause, detail);
        let message = format!(
            "The stream failed: {}; not migrated: native {} streams cannot be continued exactly",
            message.trim_end_matches('.'),
            self.events.api().as_str()
        );
        self.end_with_failure(&message);
    }

    fn end_with_failure(&mut self, message: &str) {
        let event = self.events.failure(message);
        self.out.push_back(event);
        self.tracker.count_stream_error();
        self.finish();
    }

    fn finish(&mut self) {
        self.finished = true;
        let usage = self
            .events
            .usage()
            .unwrap_or_else(|| switchyard_protocol::Usage::new(0, self.deltas));
        self.tracker.record_usage(&usage);
        self.tracker.complete();
    }

    fn poll_grace_over(&mut self, cx: &mut Context<'_>) -> bool {
        let app = &self.app;
        let wait = self
            .grace_over
            .get_or_insert_with(|| Box::pin(app.grace_over.clone().cancelled_owned()));
        wait.as_mut().poll(cx).is_ready()
    }

    fn shut_down(&mut self) {
        self.upstream = None;
        self._guard = None;
        self.end_with_failure(
            "The frontend shut down before this stream finished (its shutdown grace period \
             ended); retry the request.",
        );
    }

    fn poll_upstream(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(upstream) = self.upstream.as_mut() else {
            self.end_with_failure("The stream failed: no upstream");
            return Poll::Ready(());
        };
        match pull(upstream, &mut self.framer, &mut self.stall, cx, "the end") {
            Pulled::Frame => Poll::Ready(()),
            Pulled::Failed(cause, detail) => {
                self.upstream_failed(cause, detail);
                Poll::Ready(())
            }
            Pulled::Pending => Poll::Pending,
        }
    }
}

impl<B> http_body::Body for NativeRelay<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
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

#[cfg(test)]
#[path = "native_relay_tests.rs"]
mod tests;

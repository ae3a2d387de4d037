//! The relay as a state machine. A relay is in one [`Phase`] — streaming a worker's events,
//! resuming on another instance after a failure, or finished — and each poll turns what it
//! saw into one [`Input`] that [`RelayBody::step`] handles; only [`RelayBody::enter`] changes
//! the phase:
//!
//! ```text
//!             first event
//!   (start) ─────────────► Streaming ──[DONE] / request-fault error / no migration──► Finished
//!                            │   ▲                                                  ▲
//!         worker failed,     │   │ continuation's first event                       │
//!         migration allowed  ▼   │                                                  │
//!                           Resuming ──────── no continuation / shutdown ───────────┘
//! ```
//!
//! Whatever a transition emits (events, the in-band error, `[DONE]`) is queued in `out`,
//! which drains before the phase is looked at again: a finished relay still sends its last
//! events. The body is generic over the worker's response body so that tests drive it with
//! in-memory bodies.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use switchyard_protocol::sse::{encode_data, encode_done, Event, Framer};
use switchyard_protocol::ErrorBody;
use switchyard_runtime::{InFlightGuard, Instance, WorkerBody};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::usage::{Spliced, UsageCount};
use crate::app::App;
use crate::pipeline::failure::Cause;
use crate::pipeline::inband;
use crate::pipeline::migrate::{Connect, Migration, Resume, Step};
use crate::pipeline::outcome;
use crate::pipeline::tracker::Tracker;
use crate::pipeline::upstream::StreamStart;
use crate::pipeline::upstream_pull::{pull, Pulled, StallClock};
use crate::translate::ChunkTranslator;

/// Where the relay is.
enum Phase<B> {
    /// Relaying a worker's events. Holding `upstream` holds its connection (dropping it
    /// cancels the generation there); `_guard` holds the instance's in-flight count.
    Streaming { upstream: B, _guard: InFlightGuard },
    /// The worker failed mid-stream; a continuation is being set up on another instance.
    Resuming(Resume<B>),
    /// Nothing more comes from a worker: what is queued goes out, then the body ends.
    Finished,
}

/// What one poll saw.
enum Input<B> {
    /// A frame from the worker went into the framer: its events are next.
    Frame,
    /// A whole event from the worker.
    Event(Event),
    /// The worker failed: broken connection, early close, stall, malformed stream.
    Failed(Cause, String),
    /// The continuation is ready, or why none could be had.
    Resumed(Result<StreamStart<B>, String>),
    /// Nothing yet.
    Pending,
}

/// A transition: what [`RelayBody::enter`] moves to.
enum Next<B> {
    /// Relay this worker's stream (the first, or a continuation spliced in).
    Stream(StreamStart<B>),
    /// Wait for this continuation.
    Resume(Resume<B>),
    /// Settle the usage and end after what is queued.
    Finish,
}

/// A live SSE relay from one worker (or, after migration, a succession of workers) to one
/// client.
pub struct RelayBody<B = WorkerBody> {
    phase: Phase<B>,
    framer: Framer,
    out: VecDeque<Bytes>,
    translator: Option<ChunkTranslator>,
    usage: UsageCount,
    tracker: Tracker,
    app: Arc<App>,
    /// The instance streaming now (or that streamed last).
    instance: Arc<Instance>,
    _admission: Option<OwnedSemaphorePermit>,
    /// When the last data event arrived, and the stall timer ([`StallClock`]).
    stall: StallClock,
    /// When the last upstream frame arrived (also the arrival time of its events).
    frame_at: Instant,
    /// When the last event was relayed (inter-token latency; not reset by a splice).
    last_event: Instant,
    migration: Option<Box<Migration>>,
    /// Migration is on but this request cannot be continued exactly: why (for the error).
    not_migrated: Option<&'static str>,
    /// Sets up a continuation ([`crate::pipeline::migrate::connect`] unless under test).
    connect: Connect<B>,
    /// Tells this request apart in the instances' failure counts ([`outcome::request_key`]).
    request_key: u64,
    /// Resolves when the shutdown grace ends (armed at the first wait).
    grace_over: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
}

/// What a relay needs besides the worker's stream.
pub(crate) struct RelayParts<B> {
    pub tracker: Tracker,
    pub admission: Option<OwnedSemaphorePermit>,
    pub client_wants_usage: bool,
    /// `Ok`: migration state; `Err(why)`: not migrated, and why when it is on.
    pub migration: Result<Box<Migration>, Option<&'static str>>,
    pub connect: Connect<B>,
    pub request_key: u64,
}

impl<B> RelayBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    /// The relay of a worker's stream whose first event has arrived.
    pub(crate) fn new(app: &Arc<App>, start: StreamStart<B>, parts: RelayParts<B>) -> Self {
        let stall = Duration::from_millis(app.config.reliability.upstream.stall_timeout_ms);
        let now = Instant::now();
        let (migration, not_migrated) = match parts.migration {
            Ok(migration) => (Some(migration), None),
            Err(why) => (None, why),
        };
        let mut relay = Self {
            phase: Phase::Finished,
            framer: Framer::default(),
            out: VecDeque::with_capacity(4),
            translator: None,
            usage: UsageCount::new(parts.client_wants_usage),
            tracker: parts.tracker,
            app: Arc::clone(app),
            instance: Arc::clone(&start.instance),
            _admission: parts.admission,
            stall: StallClock::new(stall, now),
            frame_at: now,
            last_event: now,
            migration,
            not_migrated,
            connect: parts.connect,
            request_key: parts.request_key,
            grace_over: None,
        };
        relay.enter(Next::Stream(start));
        relay
    }

    /// The one place the phase changes.
    fn enter(&mut self, next: Next<B>) {
        match next {
            Next::Stream(start) => {
                // A continuation's completion chunks for a chat client are translated
                // without a second role delta.
                let continuing = self.migration.as_ref().is_some_and(|m| m.migrated());
                self.instance = start.instance;
                self.framer = start.framer;
                self.translator = match (start.translated, continuing) {
                    (false, _) => None,
                    (true, false) => Some(ChunkTranslator::default()),
                    (true, true) => Some(ChunkTranslator::continuing()),
                };
                self.phase = Phase::Streaming {
                    upstream: start.body,
                    _guard: start.guard,
                };
                self.frame_at = Instant::now();
                self.stall.restart(self.frame_at);
                self.on_event(start.first);
            }
            Next::Resume(resume) => {
                self.app.metrics.migrations.inc();
                self.tracker.count_migration();
                // Dropping the failed worker's response closes its connection.
                self.phase = Phase::Resuming(resume);
            }
            Next::Finish => {
                self.phase = Phase::Finished;
                let (usage, reported) = self.usage.total();
                if !reported {
                    self.app.metrics.usage_estimated.inc();
                }
                self.tracker.record_usage(&usage);
                self.tracker.complete();
            }
        }
    }

    /// Handles what a poll saw; `Pending` when there is nothing to do until woken.
    fn step(&mut self, input: Input<B>) -> Poll<()> {
        match input {
            Input::Frame => {}
            Input::Event(event) => self.on_event(event),
            Input::Failed(cause, detail) => self.upstream_failed(cause, detail),
            Input::Resumed(Ok(start)) => self.enter(Next::Stream(start)),
            Input::Resumed(Err(message)) => self.fail(&message),
            Input::Pending => return Poll::Pending,
        }
        Poll::Ready(())
    }

    fn on_event(&mut self, event: Event) {
        let now = self.frame_at;
        self.stall.data(now);
        if event.is_done() {
            self.out.push_back(encode_done());
            return self.enter(Next::Finish);
        }
        if let Some(error) = inband::classify(&event.data) {
            return self.upstream_error(&event, error);
        }
        if self.usage.tokens() > 0 {
            self.tracker.observe_itl(now - self.last_event);
            crate::pipeline::latency::inter_token(&self.instance, now - self.last_event);
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
        // A spliced stream's content chunk with usage shows the whole stream's count;
        // migration keeps the worker's own, which the next migration reads.
        let (data, adjusted) = match self.usage.splice(data, self.migration.as_deref()) {
            Spliced::Plain(data) => (data, None),
            Spliced::UsageOnly(send) => {
                if let Some(data) = send {
                    self.out.push_back(encode_data(&data));
                }
                return;
            }
            Spliced::Content { data, send } => (data, send),
        };
        self.usage.content(&data);
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
        self.end_with_error(event.encoded());
    }

    /// The worker failed (broken connection, early close, malformed stream, error event,
    /// stall): count it against the instance, then migrate the stream or end it with an
    /// in-band error. The worker's own words (`detail`) go to the log only.
    fn upstream_failed(&mut self, cause: Cause, detail: String) {
        let failure =
            outcome::stream_failed(&self.app, &self.instance, cause, detail, self.request_key);
        tracing::warn!(%failure, "stream failed mid-way");
        let message = failure.message();
        let message = message.trim_end_matches('.');
        let Some(migration) = &mut self.migration else {
            return match self.not_migrated {
                Some(why) => self.fail(&format!("{message}; not migrated: the request uses {why}")),
                None => self.fail(message),
            };
        };
        match migration.step(&self.instance) {
            Step::Finish => {
                self.out.push_back(encode_done());
                self.enter(Next::Finish);
            }
            Step::Exhausted => {
                self.out.push_back(encode_data(&migration.finish_chunk()));
                let usage = migration.usage_so_far();
                if self.usage.client_wants_usage() {
                    self.out
                        .push_back(encode_data(&migration.usage_chunk(&usage)));
                }
                self.usage.set(usage);
                self.out.push_back(encode_done());
                self.enter(Next::Finish);
            }
            Step::Resume(cont) => {
                let resume = (self.connect)(Arc::clone(&self.app), cont);
                self.enter(Next::Resume(resume));
            }
            Step::GiveUp(reason) => self.fail(&format!("{message}; {reason}")),
        }
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
        self.enter(Next::Finish);
    }

    /// Polls what the current phase waits on; `None` when the relay has finished.
    fn poll_input(&mut self, cx: &mut Context<'_>) -> Option<Input<B>> {
        Some(match &mut self.phase {
            Phase::Finished => return None,
            Phase::Resuming(resume) => match resume.as_mut().poll(cx) {
                Poll::Ready(resumed) => Input::Resumed(resumed),
                Poll::Pending => Input::Pending,
            },
            Phase::Streaming { upstream, .. } => match self.framer.next_event() {
                Ok(Some(event)) => Input::Event(event),
                Err(e) => Input::Failed(Cause::Malformed, e.to_string()),
                Ok(None) => match pull(upstream, &mut self.framer, &mut self.stall, cx, "[DONE]") {
                    Pulled::Frame => {
                        self.frame_at = Instant::now();
                        Input::Frame
                    }
                    Pulled::Failed(cause, detail) => Input::Failed(cause, detail),
                    Pulled::Pending => Input::Pending,
                },
            },
        })
    }
}

impl<B> http_body::Body for RelayBody<B>
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
        let _trace = this.tracker.enter_trace();
        loop {
            if let Some(bytes) = this.out.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            let Some(input) = this.poll_input(cx) else {
                return Poll::Ready(None);
            };
            if this.step(input).is_pending() {
                // Waiting on a worker: the shutdown grace may end it first.
                if this.poll_grace_over(cx) {
                    this.shut_down();
                    continue;
                }
                return Poll::Pending;
            }
        }
    }
}

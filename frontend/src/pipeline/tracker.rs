//! Stage 8 — finish: per-request bookkeeping that must happen however the request ends
//! (success, error, stream failure, client gone). It lives in a drop guard that travels with
//! the response body, so a streamed request is counted when its last byte is sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_protocol::Usage;

use super::access_log::{self, Access};
use super::Endpoint;
use crate::app::App;
use crate::metrics::{seconds, ModelMetrics, UNKNOWN_MODEL};
use crate::telemetry::Trace;
use crate::tenants::Lease;

#[derive(Debug, Default)]
pub struct Tracker {
    inner: Option<Inner>,
}

#[derive(Debug)]
struct Inner {
    app: Arc<App>,
    /// The `route` metric label: the endpoint, or the API translated onto it.
    route: &'static str,
    started: Instant,
    model: Option<Arc<ModelMetrics>>,
    status: u16,
    completed: bool,
    /// The caller's tenant hold: released, and its tokens settled, when the request ends.
    lease: Option<Lease>,
    /// Room flow control reserved for this request until it takes an in-flight slot.
    reservation: Option<crate::flow::Reservation>,
    /// The access-log figures, when the access log is on (checked once, at start).
    access: Option<Box<Access>>,
    /// The model's name for the access log.
    model_name: Option<Arc<str>>,
    /// The request's trace (inert unless the client sent a `traceparent` or export is on).
    trace: Trace,
}

impl Tracker {
    pub fn start(app: &Arc<App>, endpoint: Endpoint) -> Self {
        Self::start_route(app, endpoint.label())
    }

    /// Starts the bookkeeping for a request counted under `route`.
    pub fn start_route(app: &Arc<App>, route: &'static str) -> Self {
        app.metrics.in_flight.inc();
        Self {
            inner: Some(Inner {
                app: Arc::clone(app),
                route,
                started: Instant::now(),
                model: None,
                status: 200,
                completed: false,
                lease: None,
                reservation: None,
                access: access_log::enabled().then(Box::default),
                model_name: None,
                trace: Trace::default(),
            }),
        }
    }

    /// Attributes the request to a known model (unknown ones share one label).
    pub fn set_model(&mut self, model: &str) {
        if let Some(inner) = &mut self.inner {
            inner.model = Some(inner.app.metrics.model(model));
            if inner.access.is_some() {
                inner.model_name = Some(Arc::from(model));
            }
        }
    }

    pub fn set_request_id(&self, id: &str) {
        if let Some(a) = self.access() {
            a.set_request_id(id);
        }
    }

    /// The instance answering now (the access log names the last one).
    pub fn set_instance(&self, id: &str) {
        if let Some(a) = self.access() {
            a.set_instance(id);
        }
    }

    pub fn count_migration(&self) {
        if let Some(a) = self.access() {
            a.migration();
        }
    }

    fn access(&self) -> Option<&Access> {
        self.inner.as_ref().and_then(|i| i.access.as_deref())
    }

    pub fn set_lease(&mut self, lease: Option<Lease>) {
        if let Some(inner) = &mut self.inner {
            inner.lease = lease;
        }
    }

    /// Holds flow control's reservation until [`Self::slot_taken`] (or the request's end).
    pub fn set_reservation(&mut self, reservation: Option<crate::flow::Reservation>) {
        if let Some(inner) = &mut self.inner {
            inner.reservation = reservation;
        }
    }

    /// The request took an in-flight slot on an instance: the room flow control reserved for
    /// it is now counted there.
    pub fn slot_taken(&self) {
        if let Some(r) = self.inner.as_ref().and_then(|i| i.reservation.as_ref()) {
            r.release();
        }
    }

    pub fn lease_mut(&mut self) -> Option<&mut Lease> {
        self.inner.as_mut().and_then(|i| i.lease.as_mut())
    }

    /// Attaches the request's trace; the access log names its trace id.
    pub fn set_trace(&mut self, trace: Trace) {
        if let Some(inner) = &mut self.inner {
            if let (Some(a), Some(id)) = (inner.access.as_deref(), trace.trace_id()) {
                a.set_trace_id(id);
            }
            inner.trace = trace;
        }
    }

    /// The request's trace, to record on and to enter ([`Trace::scope`]).
    pub fn trace_mut(&mut self) -> Option<&mut Trace> {
        self.inner.as_mut().map(|i| &mut i.trace)
    }

    /// Enters the request's trace while a response body is polled.
    pub fn enter_trace(&self) -> Option<crate::telemetry::request::Entered> {
        self.inner.as_ref().map(|i| i.trace.enter())
    }

    /// Moves the bookkeeping out (into a response body), leaving an inert tracker behind.
    pub fn take(&mut self) -> Tracker {
        Tracker {
            inner: self.inner.take(),
        }
    }

    pub fn started(&self) -> Option<Instant> {
        self.inner.as_ref().map(|i| i.started)
    }

    /// Ends the request with `status` now.
    pub fn finish_with(&mut self, status: u16) {
        if let Some(inner) = &mut self.inner {
            inner.status = status;
            inner.completed = true;
        }
        self.inner = None;
    }

    /// The response was fully produced (not cut short by the client).
    pub fn complete(&mut self) {
        if let Some(inner) = &mut self.inner {
            inner.completed = true;
        }
    }

    pub fn record_usage(&mut self, usage: &Usage) {
        if let Some(lease) = self.lease_mut() {
            lease.settle(usage);
        }
        if let Some(a) = self.access() {
            a.output_tokens(u64::from(usage.completion_tokens));
        }
        if let Some(m) = self.model() {
            m.input_tokens.inc_by(u64::from(usage.prompt_tokens));
            m.output_tokens.inc_by(u64::from(usage.completion_tokens));
        }
    }

    pub fn observe_ttft(&self, d: Duration) {
        if let Some(a) = self.access() {
            a.ttft(d);
        }
        if let Some(m) = self.model() {
            m.ttft.observe(seconds(d));
        }
    }

    pub fn observe_itl(&self, d: Duration) {
        if let Some(m) = self.model() {
            m.itl.observe(seconds(d));
        }
    }

    pub fn count_retry(&self) {
        if let Some(inner) = &self.inner {
            inner.app.metrics.retries.inc();
        }
        if let Some(a) = self.access() {
            a.retry();
        }
    }

    pub fn count_stream_error(&self) {
        if let Some(inner) = &self.inner {
            inner.app.metrics.stream_errors.inc();
        }
    }

    fn model(&self) -> Option<&Arc<ModelMetrics>> {
        self.inner.as_ref().and_then(|i| i.model.as_ref())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let metrics = &self.app.metrics;
        metrics.in_flight.dec();
        if !self.completed {
            metrics.cancelled.inc();
        }
        let model = match &self.model {
            Some(m) => Arc::clone(m),
            None => metrics.model(UNKNOWN_MODEL),
        };
        model.count_request(self.route, self.status);
        // An instance may have room now: the next waiting request gets its turn.
        self.app.flow.request_ended();
        if let Some(lease) = &mut self.lease {
            lease.finish(self.status);
        }
        let elapsed = self.started.elapsed();
        model.duration.observe(seconds(elapsed));
        if let Some(access) = &self.access {
            let tenant = self.lease.as_ref().map(|l| l.tenant().id.as_str());
            let model = self.model_name.as_deref();
            let line = access.line(self.route, model, tenant, self.status, elapsed);
            self.app.access_log.write(line);
        }
    }
}

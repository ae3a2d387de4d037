//! One request's trace: the client's `traceparent` (when it sent a valid one) and the span
//! the request is in now (the request span, then the relay's). It travels with the request's
//! bookkeeping ([`crate::pipeline::tracker::Tracker`]) into the response body.
//!
//! While the request's future or its stream is polled, the client's context is also the
//! thread's current one ([`Scoped`], [`Trace::enter`]), as `tracing` does with the current
//! span: the worker call reads it where it builds the worker's headers
//! ([`super::worker_headers`]), however deep in dispatch or migration that is.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue};
use tracing::Span;

use super::traceparent::{self, TraceParent};
use super::{otlp, spans};

/// What a valid client `traceparent` brought.
#[derive(Debug)]
pub struct Incoming {
    pub parent: TraceParent,
    pub tracestate: Option<HeaderValue>,
}

thread_local! {
    /// The client context of the request being polled on this thread, if it sent one.
    static CURRENT: RefCell<Option<Arc<Incoming>>> = const { RefCell::new(None) };
}

/// Runs `f` with the client context of the request being polled, if any.
pub(super) fn with_current<R>(f: impl FnOnce(Option<&Incoming>) -> R) -> R {
    CURRENT.with(|current| f(current.borrow().as_deref()))
}

#[derive(Debug, Clone)]
pub struct Trace {
    incoming: Option<Arc<Incoming>>,
    span: Span,
}

impl Default for Trace {
    fn default() -> Self {
        Self {
            incoming: None,
            span: Span::none(),
        }
    }
}

impl Trace {
    /// The trace of a request that arrived with `headers`. With export off and no
    /// `traceparent` this is a header lookup and an inert span.
    pub fn start(headers: &HeaderMap, route: &'static str, request_id: &str) -> Self {
        let incoming = TraceParent::from_headers(headers).map(|parent| {
            Arc::new(Incoming {
                parent,
                tracestate: traceparent::tracestate(headers),
            })
        });
        let span = spans::request(route, request_id);
        if let Some(incoming) = &incoming {
            otlp::set_remote_parent(&span, &incoming.parent);
        }
        Self { incoming, span }
    }

    /// The trace id the access log names: the client's, or the one the exporter started.
    pub fn trace_id(&self) -> Option<[u8; 16]> {
        match &self.incoming {
            Some(incoming) => Some(incoming.parent.trace_id),
            None => otlp::span_ids(&self.span).map(|ids| ids.trace_id),
        }
    }

    pub fn span(&self) -> &Span {
        &self.span
    }

    /// From here on the request is in its stream relay: a child span that ends when the
    /// relay (and with it this trace) is dropped.
    pub fn enter_relay(&mut self) {
        if !self.span.is_disabled() {
            self.span = spans::relay(&self.span);
        }
    }

    /// Nothing to enter: no client context and a disabled span (export off, no
    /// `traceparent`). The caller then awaits its future directly rather than through
    /// [`Self::scope`], which would move it once more.
    pub fn is_inert(&self) -> bool {
        self.incoming.is_none() && self.span.is_disabled()
    }

    /// `future`, polled inside this trace (its span entered, its client context current).
    pub fn scope<F: Future>(self, future: F) -> Scoped<F> {
        Scoped {
            future,
            incoming: self.incoming,
            span: self.span,
        }
    }

    /// Enters this trace until the guard drops (a response body's poll). The guard owns
    /// what it holds, so the body stays free to change itself meanwhile.
    pub fn enter(&self) -> Entered {
        Entered {
            _span: (!self.span.is_disabled()).then(|| self.span.clone().entered()),
            _current: self.incoming.as_ref().map(|i| Current::set(Arc::clone(i))),
        }
    }
}

/// A trace entered on this thread.
pub struct Entered {
    _span: Option<tracing::span::EnteredSpan>,
    _current: Option<Current>,
}

/// Makes a client context current, restoring the previous one on drop.
struct Current(Option<Arc<Incoming>>);

impl Current {
    fn set(incoming: Arc<Incoming>) -> Self {
        Self(CURRENT.with(|current| current.replace(Some(incoming))))
    }
}

impl Drop for Current {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|current| *current.borrow_mut() = previous);
    }
}

pin_project_lite::pin_project! {
    /// A future polled inside a request's trace ([`Trace::scope`]).
    pub struct Scoped<F> {
        #[pin]
        future: F,
        incoming: Option<Arc<Incoming>>,
        span: Span,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _span = (!this.span.is_disabled()).then(|| this.span.enter());
        let _current = this.incoming.as_ref().map(|i| Current::set(Arc::clone(i)));
        this.future.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(traceparent: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            traceparent::TRACEPARENT,
            HeaderValue::from_static(traceparent),
        );
        headers
    }

    #[tokio::test]
    async fn the_client_context_is_current_only_inside_the_scope() {
        let trace = Trace::start(&headers(VALID), "chat_completions", "r1");
        assert_eq!(trace.trace_id().map(|id| id[0]), Some(0x4b));
        let inside = trace
            .clone()
            .scope(async { with_current(|c| c.map(|c| c.parent.parent_id)) })
            .await;
        assert_eq!(inside.map(|id| id[0]), Some(0x00));
        assert!(with_current(|c| c.is_none()), "restored after the poll");
        {
            let _entered = trace.enter();
            assert!(with_current(|c| c.is_some()));
        }
        assert!(with_current(|c| c.is_none()));
    }

    #[test]
    fn an_invalid_or_missing_header_leaves_no_trace_without_export() {
        let trace = Trace::start(&headers("00-zz"), "chat_completions", "r1");
        assert_eq!(trace.trace_id(), None);
        let _entered = trace.enter();
        assert!(with_current(|c| c.is_none()));
        assert!(Trace::start(&HeaderMap::new(), "x", "r")
            .trace_id()
            .is_none());
    }
}

//! The trace headers a worker attempt carries: a `traceparent` naming this attempt as the
//! parent (so each retry and migration is its own child), and the client's `tracestate`.

use http::{HeaderName, HeaderValue};

use super::otlp;
use super::request::with_current;
use super::traceparent::{TraceParent, TRACEPARENT, TRACESTATE};

/// The headers for the worker call being made now, read from the current span (when
/// exporting) and the current request's client context. Empty, without allocating, when
/// the client sent no `traceparent` and export is off.
pub fn worker_headers() -> Vec<(HeaderName, HeaderValue)> {
    let exported = if otlp::exporting() {
        otlp::span_ids(&tracing::Span::current())
    } else {
        None
    };
    with_current(|incoming| {
        let parent = match (exported, incoming) {
            // The attempt's own span: the worker's spans hang under it in the trace.
            (Some(ids), _) => TraceParent::header_value(&ids.trace_id, &ids.span_id, ids.sampled),
            // Not exporting: the client's trace passes through with a fresh id per attempt
            // (one no collector will see, but distinct, as the spec asks of a participant).
            (None, Some(incoming)) => TraceParent::header_value(
                &incoming.parent.trace_id,
                &fresh_span_id(),
                incoming.parent.sampled(),
            ),
            (None, None) => return Vec::new(),
        };
        let mut headers = Vec::with_capacity(2);
        headers.push((TRACEPARENT, parent));
        if let Some(state) = incoming.and_then(|i| i.tracestate.clone()) {
            headers.push((TRACESTATE, state));
        }
        headers
    })
}

/// A random span id; never all zeros (an invalid id).
fn fresh_span_id() -> [u8; 8] {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

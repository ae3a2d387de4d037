//! Traces: the W3C `traceparent` taken from clients and passed to workers, the request's
//! spans per stage, and their optional OTLP export. Documented in docs/observability.md.
//!
//! Off by default and then close to free: spans are disabled at their callsites, and a
//! request without a `traceparent` costs one header lookup.

pub mod config;
pub mod otlp;
pub mod request;
pub mod spans;
pub mod subscriber;
pub mod traceparent;
pub mod worker;

pub use config::TelemetryConfig;
pub use request::Trace;
pub use worker::worker_headers;

/// Awaits `$future` inside `$span`. A disabled span (export off, the default) wraps nothing:
/// `Instrumented` would move the whole future once more, and on the request path those moves
/// showed up as extra memcpy per request under callgrind.
macro_rules! traced {
    ($span:expr, $future:expr) => {{
        let span: ::tracing::Span = $span;
        if span.is_disabled() {
            $future.await
        } else {
            ::tracing::Instrument::instrument($future, span).await
        }
    }};
}
pub(crate) use traced;

/// Lowercase hex of a trace id (the access log's `trace_id`).
pub fn trace_id_hex(id: &[u8; 16]) -> String {
    String::from_utf8(traceparent::hex(id)).unwrap_or_default()
}

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

/// Lowercase hex of a trace id (the access log's `trace_id`).
pub fn trace_id_hex(id: &[u8; 16]) -> String {
    String::from_utf8(traceparent::hex(id)).unwrap_or_default()
}

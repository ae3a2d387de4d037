//! The request's spans. They live under their own target at `TRACE` level, which no log
//! filter enables by itself: the OTLP exporter adds the one directive that turns them on
//! ([`super::otlp`]), and the log layers never record them. With export off (the default)
//! each callsite's interest is cached as "never", so making one costs an atomic load and
//! the fields are not evaluated.

use tracing::field::Empty;
use tracing::{Level, Span};

/// The `tracing` target of every span below.
pub const TARGET: &str = "switchyard::otel";

/// Whether a callsite belongs to the request spans (the log layers leave them out).
pub fn is_span_target(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.target() == TARGET
}

/// The request: everything from parsing to the stream's last byte. `model`, `tenant` and
/// `instance` are recorded as they become known.
pub fn request(route: &'static str, request_id: &str) -> Span {
    tracing::span!(
        target: TARGET,
        Level::TRACE,
        "request",
        otel.kind = "server",
        request_id,
        route,
        model = Empty,
        tenant = Empty,
        instance = Empty,
    )
}

/// The stages before dispatch, each a child of the current (request) span.
pub fn parse() -> Span {
    tracing::span!(target: TARGET, Level::TRACE, "parse")
}

pub fn admission() -> Span {
    tracing::span!(target: TARGET, Level::TRACE, "admission")
}

pub fn flow() -> Span {
    tracing::span!(target: TARGET, Level::TRACE, "flow")
}

pub fn select() -> Span {
    tracing::span!(target: TARGET, Level::TRACE, "select")
}

/// One exchange with a worker (a first try, a retry or a migration's continuation): the
/// span whose id the worker receives as its parent.
pub fn attempt(instance: &str) -> Span {
    tracing::span!(
        target: TARGET,
        Level::TRACE,
        "attempt",
        otel.kind = "client",
        instance,
    )
}

/// The stream relay, from the first event to the last byte (or the client leaving).
pub fn relay(request: &Span) -> Span {
    tracing::span!(target: TARGET, parent: request, Level::TRACE, "relay")
}

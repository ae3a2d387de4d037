//! OTLP trace export (gRPC): a batch exporter behind a `tracing-opentelemetry` layer, built
//! only when export is configured ([`super::config`]).
//!
//! Spans are queued in memory and sent by the SDK's own background thread, so a slow or
//! unreachable collector never blocks or fails a request: when the queue (2,048 spans) is
//! full, new spans are dropped. Shutdown flushes what is queued, for at most
//! [`FLUSH_TIMEOUT`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{Sampler as SdkSampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::registry::LookupSpan;

use super::config::{Sampler, Settings};
use super::traceparent::TraceParent;

/// How long shutdown waits for the last spans to reach the collector.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// Set once the exporter's layer is installed; read on the request path (one relaxed load).
static EXPORTING: AtomicBool = AtomicBool::new(false);
/// The provider, kept for the flush at shutdown.
static PROVIDER: parking_lot::Mutex<Option<SdkTracerProvider>> = parking_lot::Mutex::new(None);

/// Whether request spans are being exported.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

#[derive(Debug, thiserror::Error)]
#[error("cannot start the OTLP exporter for {endpoint}: {source}")]
pub struct StartError {
    endpoint: String,
    source: opentelemetry_otlp::ExporterBuildError,
}

/// Starts the exporter and returns the layer that feeds it, for the subscriber to install
/// (with [`super::spans::is_span_target`] as its filter). Must run inside the tokio runtime:
/// the gRPC channel is created there. The connection itself is made lazily, so a collector
/// that is down at startup does not stop the frontend.
pub fn start<S>(
    settings: &Settings,
) -> Result<
    tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>,
    StartError,
>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(settings.endpoint.clone())
        .build()
        .map_err(|source| StartError {
            endpoint: settings.endpoint.clone(),
            source,
        })?;
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler(settings.sampler))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("switchyard");
    *PROVIDER.lock() = Some(provider);
    EXPORTING.store(true, Ordering::Relaxed);
    Ok(tracing_opentelemetry::layer()
        .with_tracer(tracer)
        // Source locations, thread names and busy/idle timings cost per span and say little
        // about a request; the fields we record do.
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false))
}

/// Sends the queued spans and stops the exporter (at shutdown, after the drain).
pub async fn shutdown() {
    let Some(provider) = PROVIDER.lock().take() else {
        return;
    };
    EXPORTING.store(false, Ordering::Relaxed);
    // The SDK's shutdown blocks until its thread has exported, which needs this runtime's
    // gRPC channel: wait for it on a blocking thread.
    let flushed =
        tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT)).await;
    if let Ok(Err(error)) = flushed {
        tracing::warn!(%error, "OTLP exporter: spans not flushed at shutdown");
    }
}

fn sampler(sampler: Sampler) -> SdkSampler {
    let parent_based = |root| SdkSampler::ParentBased(Box::new(root));
    match sampler {
        Sampler::AlwaysOn => SdkSampler::AlwaysOn,
        Sampler::AlwaysOff => SdkSampler::AlwaysOff,
        Sampler::Ratio(r) => SdkSampler::TraceIdRatioBased(r),
        Sampler::ParentBasedAlwaysOn => parent_based(SdkSampler::AlwaysOn),
        Sampler::ParentBasedAlwaysOff => parent_based(SdkSampler::AlwaysOff),
        Sampler::ParentBasedRatio(r) => parent_based(SdkSampler::TraceIdRatioBased(r)),
    }
}

/// Makes the client's span the parent of `span` (the request span, before its context is
/// read). Nothing to do unless exporting.
pub(super) fn set_remote_parent(span: &Span, parent: &TraceParent) {
    if !exporting() || span.is_disabled() {
        return;
    }
    let context = SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.parent_id),
        TraceFlags::new(parent.flags & TraceParent::SAMPLED),
        true,
        TraceState::default(),
    );
    let context = opentelemetry::Context::new().with_remote_span_context(context);
    // Only fails when the span was already started, which `Trace::start` rules out.
    let _ = span.set_parent(context);
}

/// A span's exported ids.
#[derive(Debug, Clone, Copy)]
pub struct SpanIds {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

/// The ids `span` is exported under, when exporting.
pub fn span_ids(span: &Span) -> Option<SpanIds> {
    if !exporting() || span.is_disabled() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| SpanIds {
        trace_id: span_context.trace_id().to_bytes(),
        span_id: span_context.span_id().to_bytes(),
        sampled: span_context.is_sampled(),
    })
}

//! The process's `tracing` subscriber: text logs on stderr, the access log on stdout, and,
//! when export is on, the request spans to the OTLP exporter.

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use super::config::Settings;
use super::{otlp, spans};
use crate::{env_names, pipeline};

/// Installs the subscriber. With `export`, the exporter is started too (inside the tokio
/// runtime: its gRPC channel belongs there).
pub fn init(export: Option<&Settings>) -> anyhow::Result<()> {
    let base = logs(with_spans(filter(), export.is_some())?);
    match export {
        None => base.init(),
        Some(settings) => {
            let otlp = otlp::start(settings)?
                .with_filter(tracing_subscriber::filter::filter_fn(spans::is_span_target));
            base.with(otlp).init();
        }
    }
    Ok(())
}

/// Runs `f` (loading `serve`'s config) with a plain stderr logger, so what it logs
/// (deprecated keys, unreadable credentials) is not lost before [`init`] can run.
pub fn during_startup<T>(f: impl FnOnce() -> T) -> T {
    let early = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter())
        .finish();
    tracing::subscriber::with_default(early, f)
}

/// SWITCHYARD_LOG wins; RUST_LOG is honoured too (the chart sets it).
fn filter() -> EnvFilter {
    EnvFilter::try_from_env(env_names::LOG)
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The request spans' target turned on for export, and off otherwise, whatever the log
/// directives say (the most specific directive wins): with it off, the spans' callsites are
/// never enabled.
fn with_spans(filter: EnvFilter, export: bool) -> anyhow::Result<EnvFilter> {
    let level = if export { "trace" } else { "off" };
    Ok(filter.add_directive(format!("{}={level}", spans::TARGET).parse()?))
}

/// The registry with the log filter and the two log layers.
fn logs(
    filter: EnvFilter,
) -> impl tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync {
    let is_access = |m: &tracing::Metadata<'_>| m.target() == pipeline::access_log::TARGET;
    // The access log: bare JSON lines on stdout (written by `pipeline::access_writer`, off the
    // request path); everything else as text on stderr. This layer receives no events: it is
    // what makes the `switchyard::access` target count as enabled under the filter, so
    // `SWITCHYARD_LOG=…,switchyard::access=off` still turns the access log off.
    let access = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stdout)
        .without_time()
        .with_level(false)
        .with_target(false)
        .with_ansi(false)
        .with_filter(tracing_subscriber::filter::filter_fn(is_access));
    // The request spans never reach the text log: they are for the exporter alone.
    let text = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(tracing_subscriber::filter::filter_fn(move |m| {
            !is_access(m) && !spans::is_span_target(m)
        }));
    tracing_subscriber::registry()
        .with(filter)
        .with(access)
        .with(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With export off the request spans are disabled where they are made, even when the
    /// log filter asks for everything: no layer wants them.
    #[test]
    fn without_export_the_spans_are_disabled_at_any_log_level() {
        for directives in [
            "info",
            "trace",
            "switchyard=trace",
            "switchyard::otel=trace",
        ] {
            let subscriber = logs(with_spans(EnvFilter::new(directives), false).unwrap());
            tracing::subscriber::with_default(subscriber, || {
                let request = spans::request("chat_completions", "r1");
                assert!(request.is_disabled(), "{directives}");
                assert!(spans::attempt("w0").is_disabled(), "{directives}");
                assert!(spans::parse().is_disabled(), "{directives}");
                let headers = super::super::worker_headers();
                assert_eq!(
                    (headers.len(), headers.capacity()),
                    (0, 0),
                    "nothing allocated"
                );
            });
        }
    }
}

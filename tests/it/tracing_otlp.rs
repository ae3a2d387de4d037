//! Traces end to end (docs/observability.md): a client's W3C `traceparent` is continued in
//! the spans the frontend exports over OTLP/gRPC to a collector played by this test (the
//! `opentelemetry-proto` TraceService), and passed on to the worker; without export the
//! trace id still reaches the worker, and nothing is sent when the client sent none.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;
use switchyard_tests::process::{free_port, mocker, worker_flags, Proc};

use crate::distributed::eventually;
use crate::{chat, MODEL};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// The collector: keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        self.0.lock().extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    /// Listens on a free loopback port; returns its endpoint URL.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        url
    }

    /// The spans received so far, by name (each name once in these tests).
    fn by_name(&self) -> HashMap<String, Span> {
        self.0
            .lock()
            .iter()
            .map(|s| (s.name.clone(), s.clone()))
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            AnyValue::StringValue(s) => s.clone(),
            other => format!("{other:?}"),
        })
}

/// A frontend over `worker` with extra environment variables.
async fn frontend_with_env(worker: &Proc, env: &[(&str, &str)]) -> Proc {
    let port = free_port();
    let mut args = vec![
        "serve".to_owned(),
        "--listen".to_owned(),
        "127.0.0.1:{port}".to_owned(),
        "--admin-listen".to_owned(),
        format!("127.0.0.1:{}", free_port()),
    ];
    args.extend(worker_flags(MODEL, &[worker]));
    let mut fe = Proc::spawn_with_env("frontend", &args, port, env).unwrap();
    fe.wait_ready("/live").await.unwrap();
    fe
}

/// A streamed chat request with `headers`; returns the response headers once the whole
/// stream was read.
async fn stream_chat(fe: &Proc, headers: &[(&str, &str)]) -> reqwest::header::HeaderMap {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", fe.url()))
        .json(&chat("trace me", 4, true));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    response.text().await.unwrap();
    headers
}

/// The `traceparent` values the mocker received.
async fn worker_traceparents(worker: &Proc) -> Vec<String> {
    reqwest::get(format!("{}/debug/traceparents", worker.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_client_trace_is_continued_in_exported_spans_and_at_the_worker() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let worker = mocker(&[]).await.unwrap();
    let fe = frontend_with_env(
        &worker,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "switchyard-it"),
            // Ship each batch quickly instead of every 5 s (the SDK's variable).
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let client_parent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let headers = stream_chat(
        &fe,
        &[
            ("traceparent", &client_parent),
            ("tracestate", "congo=t61rcWkgMzE"),
        ],
    )
    .await;
    let request_id = headers["x-request-id"].to_str().unwrap().to_owned();
    let instance = headers["x-switchyard-instance"]
        .to_str()
        .unwrap()
        .to_owned();

    // The relay span ends with the stream; wait until it and its siblings have arrived.
    let wanted = [
        "request",
        "parse",
        "admission",
        "flow",
        "select",
        "attempt",
        "relay",
    ];
    let spans = eventually(Duration::from_secs(30), "the request's spans", || {
        let spans = collector.by_name();
        let all = wanted.iter().all(|name| spans.contains_key(*name));
        async move { all.then_some(spans) }
    })
    .await;
    for span in spans.values() {
        assert_eq!(
            hex(&span.trace_id),
            TRACE_ID,
            "{} is in the client's trace",
            span.name
        );
    }
    let request = &spans["request"];
    assert_eq!(
        hex(&request.parent_span_id),
        CLIENT_SPAN,
        "the client's span is the parent"
    );
    assert_eq!(
        attribute(request, "request_id").as_deref(),
        Some(request_id.as_str())
    );
    assert_eq!(attribute(request, "model").as_deref(), Some(MODEL));
    assert_eq!(
        attribute(request, "route").as_deref(),
        Some("chat_completions")
    );
    assert_eq!(
        attribute(request, "instance").as_deref(),
        Some(instance.as_str())
    );
    for stage in &wanted[1..] {
        assert_eq!(
            spans[*stage].parent_span_id, request.span_id,
            "{stage} is a child of the request span"
        );
    }
    let attempt = &spans["attempt"];
    assert_eq!(
        attribute(attempt, "instance").as_deref(),
        Some(instance.as_str())
    );

    // The worker was told the attempt span is its parent, in the same trace.
    let sent = worker_traceparents(&worker).await;
    assert_eq!(
        sent,
        vec![format!("00-{TRACE_ID}-{}-01", hex(&attempt.span_id))],
        "one attempt, one traceparent"
    );
    // The access-log line names the trace.
    let line = eventually(Duration::from_secs(10), "the access line", || {
        let line = fe
            .log_text()
            .lines()
            .find(|l| l.contains(&request_id) && l.starts_with('{'))
            .map(str::to_owned);
        async move { line }
    })
    .await;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["trace_id"], TRACE_ID);
}

#[tokio::test]
async fn without_export_the_trace_id_passes_through_and_nothing_is_invented() {
    let worker = mocker(&[]).await.unwrap();
    let fe = frontend_with_env(&worker, &[]).await;
    stream_chat(&fe, &[]).await;
    assert!(
        worker_traceparents(&worker).await.is_empty(),
        "no client traceparent and no export: no header"
    );
    // Invalid headers are ignored, never an error.
    stream_chat(
        &fe,
        &[(
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        )],
    )
    .await;
    assert!(worker_traceparents(&worker).await.is_empty());
    let client_parent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    stream_chat(&fe, &[("traceparent", &client_parent)]).await;
    let sent = worker_traceparents(&worker).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let forwarded = &sent[0];
    assert!(
        forwarded.starts_with(&format!("00-{TRACE_ID}-")),
        "{forwarded}"
    );
    assert!(
        forwarded.ends_with("-01"),
        "the sampled flag is kept: {forwarded}"
    );
    assert!(
        !forwarded.contains(CLIENT_SPAN),
        "the attempt gets a span id of its own: {forwarded}"
    );
}

#[tokio::test]
async fn an_unreachable_collector_fails_no_request_and_holds_no_shutdown() {
    let worker = mocker(&[]).await.unwrap();
    // Nothing listens there.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let fe = frontend_with_env(
        &worker,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", closed.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    for _ in 0..3 {
        stream_chat(&fe, &[]).await;
    }
    // Export is on, so each request without a traceparent started a trace of its own.
    let sent = worker_traceparents(&worker).await;
    let trace_ids: std::collections::HashSet<&str> =
        sent.iter().filter_map(|t| t.get(3..35)).collect();
    assert_eq!((sent.len(), trace_ids.len()), (3, 3), "{sent:?}");
    let mut fe = fe;
    fe.signal(nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(
        fe.wait_exit(Duration::from_secs(30)).await.unwrap(),
        "the exporter's flush is bounded: {}",
        fe.log_text()
    );
    assert!(
        fe.exit_status().unwrap().unwrap().success(),
        "{}",
        fe.log_text()
    );
}

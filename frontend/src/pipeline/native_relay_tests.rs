//! The native relay driven without sockets: the worker's body is a script in memory, the
//! client a loop of `poll_frame` calls, time tokio's paused clock.

use std::sync::atomic::Ordering;

use switchyard_runtime::health::HealthStatus;
use switchyard_runtime::InstanceSpec;

use super::*;
use crate::pipeline::fake_worker::{event, Part, Script};
use crate::pipeline::Endpoint;

const STALL_MS: u64 = 1_000;

fn app() -> Arc<App> {
    let mut config = crate::config::ServeConfig::default();
    config.reliability.upstream.stall_timeout_ms = STALL_MS;
    let registry = Arc::new(switchyard_runtime::Registry::default());
    let plugins = crate::plugins::PluginSet::new(Default::default(), Default::default(), None);
    App::new(config, registry, Arc::new(plugins)).unwrap()
}

fn instance() -> Arc<Instance> {
    Arc::new(Instance::new(
        InstanceSpec::new("w", "m", "http://127.0.0.1:9"),
        None,
    ))
}

/// A native relay of `api` whose first event is `first`, the rest scripted; and the flag
/// the worker's body sets when it is dropped (its connection closed).
fn relay(
    app: &Arc<App>,
    api: Api,
    worker: &Arc<Instance>,
    first: &str,
    parts: Vec<Part>,
) -> (NativeRelay<Script>, Arc<std::sync::atomic::AtomicBool>) {
    let mut framer = Framer::default();
    framer.push(event(first).as_bytes());
    let first = framer.next_event().unwrap().unwrap();
    let (body, dropped) = Script::new(parts);
    let start = StreamStart {
        instance: Arc::clone(worker),
        guard: worker.start_request(),
        body,
        framer,
        first,
        translated: false,
        content_type: None,
        native: Some(api),
    };
    let tracker = Tracker::start(app, Endpoint::Chat);
    let relay = NativeRelay::new(app, api, start, tracker, None, "r");
    (relay, dropped)
}

/// What the client receives until the relay waits (`false`) or ends (`true`).
fn read(relay: &mut NativeRelay<Script>) -> (Vec<String>, bool) {
    use http_body::Body as _;
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut got = Vec::new();
    loop {
        match Pin::new(&mut *relay).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let data = frame.into_data().unwrap_or_default();
                got.push(String::from_utf8_lossy(&data).into_owned());
            }
            Poll::Ready(None) => return (got, true),
            Poll::Pending => return (got, false),
        }
    }
}

/// The named SSE event a client gets for a worker's `data`.
fn named(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// An event's name and payload.
fn parse(event: &str) -> (&str, serde_json::Value) {
    let (head, body) = event.split_once("\ndata: ").unwrap();
    (
        head.trim_start_matches("event: "),
        serde_json::from_str(body.trim_end()).unwrap(),
    )
}

const CREATED: &str =
    r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","model":"m"}}"#;
const DELTA: &str = r#"{"type":"response.output_text.delta","sequence_number":1,"delta":"hi"}"#;
const COMPLETED: &str = r#"{"type":"response.completed","sequence_number":2,"response":{"id":"resp_1","usage":{"input_tokens":3,"output_tokens":1}}}"#;

#[tokio::test(start_paused = true)]
async fn the_first_event_goes_out_named_and_the_terminal_event_ends_the_stream() {
    let app = app();
    let worker = instance();
    let parts = vec![Part::Data(event(DELTA)), Part::Data(event(COMPLETED))];
    let (mut relay, dropped) = relay(&app, Api::Responses, &worker, CREATED, parts);
    let (got, ended) = read(&mut relay);
    assert!(ended);
    assert_eq!(
        got,
        [
            named("response.created", CREATED),
            named("response.output_text.delta", DELTA),
            named("response.completed", COMPLETED),
        ]
    );
    assert!(
        dropped.load(Ordering::SeqCst),
        "the worker's response is let go"
    );
    assert_eq!(worker.load.in_flight(), 0);
    assert_eq!(app.metrics.stream_errors.get(), 0);
    assert!(worker.last_error().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_stall_ends_a_responses_stream_with_response_failed_and_degrades_the_instance() {
    let app = app();
    let worker = instance();
    let parts = vec![Part::Data(event(DELTA)), Part::Wait, Part::Wait];
    let (mut relay, dropped) = relay(&app, Api::Responses, &worker, CREATED, parts);
    let (got, ended) = read(&mut relay);
    assert_eq!((got.len(), ended), (2, false), "waiting for the worker");
    tokio::time::advance(Duration::from_millis(STALL_MS + 1)).await;
    let (got, ended) = read(&mut relay);
    assert!(ended);
    assert_eq!(got.len(), 1, "{got:?}");
    let (name, failed) = parse(&got[0]);
    assert_eq!(name, "response.failed");
    assert_eq!(failed["sequence_number"], 2, "the sequence continues");
    assert_eq!(failed["response"]["id"], "resp_1");
    assert_eq!(failed["response"]["status"], "failed");
    let message = failed["response"]["error"]["message"].as_str().unwrap();
    assert!(message.contains("not migrated"), "{message}");
    assert_eq!(app.metrics.stalls.get(), 1);
    assert_eq!(app.metrics.stream_errors.get(), 1);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the stalled generation is cancelled"
    );
    assert_eq!(worker.load.in_flight(), 0);
    assert_ne!(
        worker.health.status(switchyard_runtime::clock::now_ns()),
        HealthStatus::Healthy
    );
}

#[tokio::test(start_paused = true)]
async fn a_messages_worker_gone_mid_event_gets_an_anthropic_error_and_never_half_an_event() {
    let start = r#"{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":3}}}"#;
    for end in [None, Some(Part::Break)] {
        let app = app();
        let worker = instance();
        let mut parts = vec![Part::Data(
            "event: content_block_delta\ndata: {\"type\":\"con",
        )];
        parts.extend(end);
        let (mut relay, _) = relay(&app, Api::Messages, &worker, start, parts);
        let (got, ended) = read(&mut relay);
        assert!(ended);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], named("message_start", start));
        let (name, error) = parse(&got[1]);
        assert_eq!(name, "error");
        assert_eq!(error["type"], "error");
        assert_eq!(error["error"]["type"], "api_error");
        assert_eq!(app.metrics.stream_errors.get(), 1);
        assert!(worker.last_error().is_some(), "the instance was blamed");
    }
}

#[tokio::test(start_paused = true)]
async fn a_workers_own_failure_event_is_relayed_then_blamed() {
    let app = app();
    let worker = instance();
    let failed = r#"{"type":"response.failed","sequence_number":1,"response":{"id":"resp_1","error":{"message":"engine died"}}}"#;
    let parts = vec![Part::Data(event(failed)), Part::Wait];
    let (mut relay, dropped) = relay(&app, Api::Responses, &worker, CREATED, parts);
    let (got, ended) = read(&mut relay);
    assert!(
        ended,
        "the stream ends at the failure event, without waiting"
    );
    assert_eq!(got[1], named("response.failed", failed));
    assert_eq!(got.len(), 2);
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(app.metrics.stream_errors.get(), 1);
    assert!(worker.last_error().is_some());
}

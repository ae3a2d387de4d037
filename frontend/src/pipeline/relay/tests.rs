//! The relay's transitions driven without sockets: the worker's body is a script in memory,
//! the client is a loop of `poll_frame` calls, and time is tokio's paused clock.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::Body as _;
use http_body_util::Full;
use switchyard_protocol::sse::Framer;
use switchyard_runtime::{Instance, InstanceSpec};

use super::state::{RelayBody, RelayParts};
use crate::app::App;
use crate::pipeline::fake_worker::{event, Part, Script};
use crate::pipeline::migrate::{self, Continue, Migration, Resume};
use crate::pipeline::parse::{self, ParsedRequest};
use crate::pipeline::tracker::Tracker;
use crate::pipeline::upstream::StreamStart;
use crate::pipeline::Endpoint;

const STALL_MS: u64 = 1_000;

fn app(migration_limit: u32) -> Arc<App> {
    let config = crate::config::ServeConfig {
        reliability: crate::config::ReliabilitySection {
            migration_limit,
            upstream: crate::config::UpstreamConfig {
                stall_timeout_ms: STALL_MS,
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    let registry = Arc::new(switchyard_runtime::Registry::default());
    let plugins = crate::plugins::PluginSet::new(Default::default(), Default::default(), None);
    App::new(config, registry, Arc::new(plugins)).unwrap()
}

fn chunk(text: &str) -> String {
    format!(
        r#"{{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{{"index":0,"delta":{{"content":"{text}"}},"finish_reason":null}}]}}"#
    )
}

const USAGE_ONLY: &str = r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#;

/// A stream start on `instance` whose first event is `first`, the rest scripted.
fn start(
    instance: &Arc<Instance>,
    first: &str,
    parts: Vec<Part>,
) -> (StreamStart<Script>, Arc<AtomicBool>) {
    let mut framer = Framer::default();
    framer.push(event(first).as_bytes());
    let first = framer.next_event().unwrap().unwrap();
    let (body, dropped) = Script::new(parts);
    let start = StreamStart {
        instance: Arc::clone(instance),
        guard: instance.start_request(),
        body,
        framer,
        first,
        translated: false,
        content_type: None,
        native: None,
    };
    (start, dropped)
}

async fn request(body: &str) -> ParsedRequest {
    let app = app(0);
    parse::parse(
        http::HeaderMap::new(),
        Full::new(Bytes::from(body.to_owned())),
        Endpoint::Chat,
        1 << 20,
        &app.body_budget,
    )
    .await
    .unwrap()
}

/// A continuation is never asked for unless a test sets one up.
fn no_continuation(_: Arc<App>, _: Continue) -> Resume<Script> {
    panic!("no continuation expected")
}

fn relay(
    app: &Arc<App>,
    start: StreamStart<Script>,
    request: &ParsedRequest,
    connect: migrate::Connect<Script>,
) -> RelayBody<Script> {
    let parts = RelayParts {
        tracker: Tracker::start(app, Endpoint::Chat),
        admission: None,
        client_wants_usage: request.include_usage(),
        migration: Migration::new(app, request, "r"),
        connect,
        request_key: 1,
    };
    RelayBody::new(app, start, parts)
}

/// What the client receives until the relay waits (`false`) or ends (`true`).
fn read(relay: &mut RelayBody<Script>) -> (Vec<String>, bool) {
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

fn instance(id: &str) -> Arc<Instance> {
    Arc::new(Instance::new(
        InstanceSpec::new(id, "m", "http://127.0.0.1:9"),
        None,
    ))
}

const DONE: &str = "data: [DONE]\n\n";
const STREAM: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#;

#[tokio::test(start_paused = true)]
async fn the_first_event_goes_out_as_it_came_and_done_finishes() {
    let app = app(0);
    let worker = instance("w");
    let (start, dropped) = start(
        &worker,
        &chunk("a"),
        vec![Part::Data(event(&chunk("b"))), Part::Data(DONE)],
    );
    let mut relay = relay(&app, start, &request(STREAM).await, no_continuation);
    let (got, ended) = read(&mut relay);
    assert_eq!(got, [event(&chunk("a")), event(&chunk("b")), DONE]);
    assert!(ended);
    assert!(
        dropped.load(Ordering::SeqCst),
        "finished: the worker's response is let go"
    );
    assert_eq!(worker.load.in_flight(), 0);
    drop(relay);
    assert_eq!(
        app.metrics.cancelled.get(),
        0,
        "a finished stream is complete"
    );
    assert_eq!(app.metrics.stream_errors.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_usage_chunk_reaches_only_a_client_that_asked_for_it() {
    for (asked, expect_usage) in [
        ("", false),
        (r#","stream_options":{"include_usage":true}"#, true),
    ] {
        let app = app(0);
        let worker = instance("w");
        let body = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"stream":true{asked}}}"#
        );
        let parts = vec![Part::Data(event(USAGE_ONLY)), Part::Data(DONE)];
        let (start, _) = start(&worker, &chunk("a"), parts);
        let mut relay = relay(&app, start, &request(&body).await, no_continuation);
        let (got, ended) = read(&mut relay);
        assert!(ended);
        let want: Vec<&str> = if expect_usage {
            vec![event(&chunk("a")), event(USAGE_ONLY), DONE]
        } else {
            vec![event(&chunk("a")), DONE]
        };
        assert_eq!(got, want, "include_usage: {expect_usage}");
        assert_eq!(
            app.metrics.usage_estimated.get(),
            0,
            "the worker's usage was read"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_stall_ends_the_stream_in_band_and_degrades_the_instance() {
    let app = app(0);
    let worker = instance("w");
    let (start, dropped) = start(&worker, &chunk("a"), vec![Part::Wait, Part::Wait]);
    let mut relay = relay(&app, start, &request(STREAM).await, no_continuation);
    let (got, ended) = read(&mut relay);
    assert_eq!((got.len(), ended), (1, false), "waiting for the worker");
    tokio::time::advance(Duration::from_millis(STALL_MS + 1)).await;
    let (got, ended) = read(&mut relay);
    assert!(ended);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].contains("stream_interrupted"), "{}", got[0]);
    assert_eq!(got[1], DONE);
    assert_eq!(app.metrics.stalls.get(), 1);
    assert_eq!(app.metrics.stream_errors.get(), 1);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the stalled generation is cancelled"
    );
    assert_ne!(
        worker.health.status(switchyard_runtime::clock::now_ns()),
        switchyard_runtime::health::HealthStatus::Healthy
    );
}

#[tokio::test(start_paused = true)]
async fn a_request_fault_error_event_is_passed_on_and_a_worker_fault_is_not() {
    let request_fault = r#"{"error":{"message":"bad tool","type":"BadRequestError","code":400}}"#;
    let worker_fault = r#"{"error":{"message":"engine died: secret detail","type":"InternalServerError","code":500}}"#;
    for (error, passed_on) in [(request_fault, true), (worker_fault, false)] {
        let app = app(0);
        let worker = instance("w");
        let (start, _) = start(
            &worker,
            &chunk("a"),
            vec![Part::Data(event(error)), Part::Data(DONE)],
        );
        let mut relay = relay(&app, start, &request(STREAM).await, no_continuation);
        let (got, ended) = read(&mut relay);
        assert!(ended);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[2], DONE);
        if passed_on {
            assert_eq!(got[1], event(error));
        } else {
            assert!(got[1].contains("stream_interrupted"), "{}", got[1]);
            assert!(
                !got[1].contains("secret detail"),
                "worker text stays in the log"
            );
        }
        assert_eq!(app.metrics.stream_errors.get(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_worker_gone_mid_event_never_sends_half_an_event() {
    for end in [None, Some(Part::Break)] {
        let app = app(0);
        let worker = instance("w");
        let mut parts = vec![Part::Data("data: {\"id\":\"c1\",\"choi")];
        parts.extend(end);
        let (start, _) = start(&worker, &chunk("a"), parts);
        let mut relay = relay(&app, start, &request(STREAM).await, no_continuation);
        let (got, ended) = read(&mut relay);
        assert!(ended);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], event(&chunk("a")));
        assert!(got[1].starts_with("data: {\"error\""), "{}", got[1]);
        assert!(got[1].contains("stream_interrupted"), "{}", got[1]);
        assert_eq!(got[2], DONE);
        assert!(worker.last_error().is_some(), "the instance was blamed");
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_gone_mid_stream_cancels_the_generation() {
    let app = app(0);
    let worker = instance("w");
    let (start, dropped) = start(&worker, &chunk("a"), vec![Part::Wait]);
    let mut relay = relay(&app, start, &request(STREAM).await, no_continuation);
    let (got, ended) = read(&mut relay);
    assert_eq!((got.len(), ended), (1, false));
    assert_eq!(worker.load.in_flight(), 1);
    drop(relay);
    assert!(
        dropped.load(Ordering::SeqCst),
        "the worker connection closes"
    );
    assert_eq!(worker.load.in_flight(), 0);
    assert_eq!(
        app.metrics.cancelled.get(),
        1,
        "counted as cancelled, not complete"
    );
}

/// The continuation a test's worker "b" answers with: the rest of the text, as a chat
/// worker sends it (a new `id`, a role delta first), then usage and `[DONE]`.
fn continue_on_b(_: Arc<App>, _: Continue) -> Resume<Script> {
    let worker = instance("b");
    let first = r#"{"id":"other","object":"chat.completion.chunk","created":9,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":" c"},"finish_reason":null}]}"#;
    let usage = r#"{"id":"other","object":"chat.completion.chunk","created":9,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;
    let (start, _) = start(
        &worker,
        first,
        vec![Part::Data(event(usage)), Part::Data(DONE)],
    );
    Box::pin(async move { Ok(start) })
}

#[tokio::test(start_paused = true)]
async fn a_broken_stream_resumes_spliced_onto_the_same_client_stream() {
    let app = app(1);
    let worker = instance("a");
    let (start, dropped) = start(
        &worker,
        &chunk(" a"),
        vec![Part::Data(event(&chunk(" b"))), Part::Break],
    );
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}"#;
    let mut relay = relay(&app, start, &request(body).await, continue_on_b);
    let (got, ended) = read(&mut relay);
    assert!(ended, "{got:?}");
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(app.metrics.migrations.get(), 1);
    assert_eq!(app.metrics.stream_errors.get(), 0, "{got:?}");
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[..2], [event(&chunk(" a")), event(&chunk(" b"))]);
    // The continuation's chunk carries the first stream's id and created, without a role.
    let spliced: serde_json::Value =
        serde_json::from_str(got[2].trim_start_matches("data: ").trim()).unwrap();
    assert_eq!(spliced["id"], "c1");
    assert_eq!(spliced["created"], 1);
    assert_eq!(
        spliced["choices"][0]["delta"],
        serde_json::json!({"content": " c"})
    );
    // Usage counts the whole stream: 2 tokens before, 1 after; the first prompt unknown, so
    // the continuation's less the text it was given back.
    let usage: serde_json::Value =
        serde_json::from_str(got[3].trim_start_matches("data: ").trim()).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 3, "{usage}");
    assert_eq!(got[4], DONE);
}

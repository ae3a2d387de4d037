//! Streaming relay: content equality, usage chunk, cancellation, mid-stream failure.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use switchyard_tests::http::{metric, post_json, post_sse, response_text, stream_text};
use switchyard_tests::{frontend, mocker, worker_flags};

use crate::{chat, MODEL};

#[tokio::test]
async fn stream_and_non_stream_match_each_other_and_the_worker() {
    let m = mocker(&[]).await.unwrap();
    let fe = frontend(&worker_flags(MODEL, &[&m])).await.unwrap();
    let req = chat("tell me about switchyards", 24, false);
    let (_, _, direct) = post_json(&format!("{}/v1/chat/completions", m.url()), &req, &[])
        .await
        .unwrap();
    let (status, _, routed) = post_json(&format!("{}/v1/chat/completions", fe.url()), &req, &[])
        .await
        .unwrap();
    assert_eq!(status, 200);
    let expected = response_text(&direct);
    assert_eq!(expected.split_whitespace().count(), 24);
    assert_eq!(response_text(&routed), expected);

    let (status, headers, events) = post_sse(
        &format!("{}/v1/chat/completions", fe.url()),
        &chat("tell me about switchyards", 24, true),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    // The engine's own type (vLLM's, with its charset), and no proxy buffering on the way out.
    assert_eq!(headers["content-type"], "text/event-stream; charset=utf-8");
    assert_eq!(headers["x-accel-buffering"], "no");
    assert!(headers.contains_key("x-switchyard-instance"));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(stream_text(&events), expected);

    // Completions endpoint too.
    let creq = serde_json::json!({"model": MODEL, "prompt": "abc", "max_tokens": 9});
    let (_, _, direct) = post_json(&format!("{}/v1/completions", m.url()), &creq, &[])
        .await
        .unwrap();
    let mut sreq = creq.clone();
    sreq["stream"] = true.into();
    let (_, _, events) = post_sse(&format!("{}/v1/completions", fe.url()), &sreq)
        .await
        .unwrap();
    assert_eq!(stream_text(&events), response_text(&direct));
}

#[tokio::test]
async fn usage_chunk_only_when_asked() {
    let m = mocker(&[]).await.unwrap();
    let fe = frontend(&worker_flags(MODEL, &[&m])).await.unwrap();
    let url = format!("{}/v1/chat/completions", fe.url());
    let usage_events = |events: &[String]| {
        events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .filter(|v| v.get("usage").is_some_and(|u| !u.is_null()))
            .collect::<Vec<_>>()
    };
    let (_, _, plain) = post_sse(&url, &chat("x", 5, true)).await.unwrap();
    assert!(
        usage_events(&plain).is_empty(),
        "usage sent without include_usage: {plain:?}"
    );

    let mut req = chat("x", 5, true);
    req["stream_options"] = serde_json::json!({"include_usage": true});
    let (_, _, with) = post_sse(&url, &req).await.unwrap();
    let usage = usage_events(&with);
    assert_eq!(usage.len(), 1, "{with:?}");
    assert_eq!(usage[0]["choices"], serde_json::json!([]));
    assert_eq!(usage[0]["usage"]["completion_tokens"], 5);
    // The usage chunk is the last one before [DONE].
    assert_eq!(with[with.len() - 1], "[DONE]");
    assert!(with[with.len() - 2].contains("\"usage\""));
    // Token metrics are exact either way (the frontend always asks the worker for usage).
    assert_eq!(
        metric(
            &fe.url(),
            "switchyard_output_tokens_total{model=\"mock-model\"}"
        )
        .await,
        10.0
    );
}

#[tokio::test]
async fn client_disconnect_cancels_the_worker_request() {
    let m = mocker(&["--itl-ms", "50"]).await.unwrap();
    let fe = frontend(&worker_flags(MODEL, &[&m])).await.unwrap();
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", fe.url()))
        .json(&chat("long story", 400, true))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    drop(body);
    let series = "switchyard_mocker_requests_cancelled_total";
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&m.url(), series).await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the mocker never saw the cancellation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn worker_dying_mid_stream_gives_an_error_event_then_done() {
    let m = mocker(&["--die-after-tokens", "5", "--itl-ms", "5"])
        .await
        .unwrap();
    let mut args = worker_flags(MODEL, &[&m]);
    args.extend(["--max-retries".to_owned(), "0".to_owned()]);
    let fe = frontend(&args).await.unwrap();
    let (status, _, events) = post_sse(
        &format!("{}/v1/chat/completions", fe.url()),
        &chat("x", 50, true),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let error: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(error["error"]["code"], "stream_interrupted", "{events:?}");
    let text = stream_text(&events);
    assert!(
        text.split_whitespace().count() < 50,
        "the stream cannot be complete: {text}"
    );
    assert_eq!(
        metric(&fe.url(), "switchyard_stream_errors_total").await,
        1.0
    );
}

/// An engine that ignores `include_usage` (llama-cpp-python) still gets its output counted:
/// the content events, not the role and finish chunks around them, flagged as estimated.
#[tokio::test]
async fn a_stream_without_usage_counts_its_content_events() {
    let m = mocker(&["--no-stream-usage"]).await.unwrap();
    let fe = frontend(&worker_flags(MODEL, &[&m])).await.unwrap();
    let (status, _, events) = post_sse(
        &format!("{}/v1/chat/completions", fe.url()),
        &chat("count me", 12, true),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(stream_text(&events).split_whitespace().count(), 12);
    assert!(
        !events.iter().any(|e| e.contains("\"usage\":{")),
        "the engine sent no usage"
    );
    let estimated = crate::distributed::eventually(
        Duration::from_secs(10),
        "the stream's usage is recorded",
        || async {
            let n = metric(&fe.url(), "switchyard_usage_estimated_total").await;
            (n >= 1.0).then_some(n)
        },
    )
    .await;
    assert_eq!(estimated, 1.0);
    let output = metric(&fe.url(), "switchyard_output_tokens_total{").await;
    assert_eq!(output, 12.0, "role and finish chunks are not tokens");
}

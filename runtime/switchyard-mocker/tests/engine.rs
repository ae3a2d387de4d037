//! The simulated engine seen from outside: KV reuse and events, queueing, cancellation,
//! fault knobs and graceful shutdown.

mod common;

use std::time::Duration;

use common::{read_all, send_to, sse_events, Mocker};
use http::StatusCode;
use http_body_util::BodyExt;
use switchyard_kv::KvEvent;
use switchyard_mocker::{MockerArgs, MockerHooks};

fn long_prompt(max_tokens: u32, stream: bool) -> String {
    let prompt = "the quick brown fox jumps over the lazy dog ".repeat(20);
    serde_json::json!({"model":"mock-model","prompt":prompt,"max_tokens":max_tokens,"stream":stream})
        .to_string()
}

#[tokio::test]
async fn a_repeated_prompt_hits_the_prefix_cache_and_kv_events_are_emitted() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mocker = Mocker::start_with(MockerArgs::default(), MockerHooks::with_kv_events(tx)).await;
    mocker.post("/v1/completions", &long_prompt(4, false)).await;
    assert_eq!(
        mocker
            .metric("switchyard_mocker_prefix_cache_hits_total")
            .await,
        0.0
    );
    mocker.post("/v1/completions", &long_prompt(4, false)).await;
    // 880 bytes = 13 full blocks of 64 bytes (16 tokens x 4 bytes).
    assert_eq!(
        mocker
            .metric("switchyard_mocker_prefix_cache_hits_total")
            .await,
        13.0
    );
    assert_eq!(rx.recv().await, Some(KvEvent::Cleared));
    match rx.recv().await {
        Some(KvEvent::Stored {
            parent: None,
            blocks,
        }) => assert_eq!(blocks.len(), 13),
        other => panic!("expected the prompt's blocks, got {other:?}"),
    }
    assert_eq!(mocker.metric("switchyard_mocker_kv_blocks_used").await, 0.0);
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_is_cancelled_and_freed() {
    let args = MockerArgs {
        itl_ms: 20.0,
        ..MockerArgs::default()
    };
    let mocker = Mocker::start(args).await;
    let resp = mocker
        .send("POST", "/v1/completions", &long_prompt(10_000, true))
        .await;
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.data_ref().is_some());
    assert_eq!(mocker.probe.snapshot().running, 1);
    drop(body); // closes the client's connection
    mocker
        .wait_metric("switchyard_mocker_requests_cancelled_total", 1.0)
        .await;
    assert_eq!(mocker.probe.snapshot().running, 0);
    assert_eq!(mocker.metric("switchyard_mocker_kv_blocks_used").await, 0.0);
}

#[tokio::test]
async fn a_queued_non_streaming_request_whose_client_leaves_is_cancelled() {
    let args = MockerArgs {
        itl_ms: 20.0,
        max_running: 1,
        ..MockerArgs::default()
    };
    let mocker = Mocker::start(args).await;
    let busy = mocker
        .send("POST", "/v1/completions", &long_prompt(10_000, true))
        .await;
    let queued = send_to(
        mocker.addr,
        "POST",
        "/v1/completions",
        long_prompt(5, false),
    );
    let queued = tokio::spawn(queued);
    mocker.wait_metric("switchyard_mocker_waiting", 1.0).await;
    queued.abort(); // drops the client connection
    mocker.wait_metric("switchyard_mocker_waiting", 0.0).await;
    mocker
        .wait_metric("switchyard_mocker_requests_cancelled_total", 1.0)
        .await;
    assert_eq!(
        mocker.probe.snapshot().running,
        1,
        "the running stream is untouched"
    );
    drop(busy);
}

#[tokio::test]
async fn requests_beyond_max_running_wait_their_turn() {
    let args = MockerArgs {
        itl_ms: 5.0,
        max_running: 1,
        ..MockerArgs::default()
    };
    let mocker = Mocker::start(args).await;
    let first = mocker
        .send("POST", "/v1/completions", &long_prompt(10_000, true))
        .await;
    mocker.wait_metric("switchyard_mocker_running", 1.0).await;
    let second = mocker
        .send("POST", "/v1/completions", &long_prompt(3, true))
        .await;
    mocker.wait_metric("switchyard_mocker_waiting", 1.0).await;
    drop(first); // frees the only slot
    let events = sse_events(&read_all(second).await);
    assert_eq!(events.len(), 3 + 2, "the queued request ran to completion");
    assert_eq!(mocker.metric("switchyard_mocker_waiting").await, 0.0);
}

#[tokio::test]
async fn status_flag_fails_health_and_generation() {
    let mocker = Mocker::start(MockerArgs {
        status: Some(503),
        ..MockerArgs::default()
    })
    .await;
    assert_eq!(
        mocker.get("/health").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (status, body) = mocker.post("/v1/completions", &long_prompt(1, false)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains(r#""error""#), "{body}");
}

#[tokio::test]
async fn fail_rate_one_always_fails_with_500() {
    let mocker = Mocker::start(MockerArgs {
        fail_rate: 1.0,
        ..MockerArgs::default()
    })
    .await;
    let (status, body) = mocker.post("/v1/completions", &long_prompt(1, false)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("server_error"), "{body}");
}

#[tokio::test]
async fn hanging_requests_never_answer_until_shutdown() {
    let mut mocker = Mocker::start(MockerArgs {
        hang_rate: 1.0,
        ..MockerArgs::default()
    })
    .await;
    let request = send_to(
        mocker.addr,
        "POST",
        "/v1/completions",
        long_prompt(1, false),
    );
    let mut pending = tokio::spawn(request);
    let early = tokio::time::timeout(Duration::from_millis(200), &mut pending).await;
    assert!(early.is_err(), "a hanging request answered");
    mocker.stop();
    assert_eq!(
        pending.await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    mocker.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn graceful_shutdown_lets_an_inflight_stream_finish() {
    let mut mocker = Mocker::start(MockerArgs {
        itl_ms: 5.0,
        ..MockerArgs::default()
    })
    .await;
    let resp = mocker
        .send("POST", "/v1/completions", &long_prompt(30, true))
        .await;
    mocker.wait_metric("switchyard_mocker_running", 1.0).await;
    mocker.stop();
    let body = read_all(resp).await;
    let events = sse_events(&body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(events.len(), 30 + 2, "tokens, finish chunk, [DONE]");
    mocker.task.await.unwrap().unwrap();
}

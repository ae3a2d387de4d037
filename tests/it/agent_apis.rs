//! The agent APIs — OpenAI Responses (`/v1/responses`) and Anthropic Messages
//! (`/v1/messages`) — bridged onto chat, checked by the official Python SDKs (someone else's
//! parser for the wire format) and by raw SSE for the failure paths.

use std::process::Command;

use serde_json::{json, Value};
use switchyard_tests::http::{metric, post_json, post_sse};
use switchyard_tests::{frontend, mocker, worker_flags, Proc};

use crate::MODEL;

/// Runs `tests/python/<script>` against `fe`'s `base` URL; fails with its output.
pub(crate) async fn run_sdk_script(module: &str, script: &str, base: String) {
    let check = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output();
    assert!(
        check.as_ref().is_ok_and(|o| o.status.success()),
        "the `{module}` Python package is missing: `pip install -r tests/python/requirements.txt`"
    );
    let path = format!("{}/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3").args([&path, &base, MODEL]).output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ALL OK"), "{stdout}");
}

pub(crate) async fn frontend_over_one_mocker(mocker_args: &[&str], extra: &[&str]) -> (Proc, Proc) {
    let m = mocker(mocker_args).await.unwrap();
    let mut args = worker_flags(MODEL, &[&m]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let fe = frontend(&args).await.unwrap();
    (m, fe)
}

#[tokio::test]
async fn the_official_openai_client_speaks_the_responses_api() {
    let (_m, fe) = frontend_over_one_mocker(&[], &[]).await;
    run_sdk_script("openai", "openai_responses.py", format!("{}/v1", fe.url())).await;
    let served = metric(
        &fe.url(),
        &format!(
            "switchyard_requests_total{{model=\"{MODEL}\",route=\"responses\",status=\"200\"}}"
        ),
    )
    .await;
    assert!(
        served >= 3.0,
        "responses are counted under their own route: {served}"
    );
}

#[tokio::test]
async fn the_official_anthropic_client_speaks_the_messages_api() {
    let (_m, fe) = frontend_over_one_mocker(&[], &[]).await;
    // The Anthropic SDK appends `/v1/messages` itself.
    run_sdk_script("anthropic", "anthropic_client.py", fe.url()).await;
    let served = metric(
        &fe.url(),
        &format!(
            "switchyard_requests_total{{model=\"{MODEL}\",route=\"messages\",status=\"200\"}}"
        ),
    )
    .await;
    assert!(
        served >= 3.0,
        "messages are counted under their own route: {served}"
    );
}

/// `data:` payloads of an SSE body as JSON (these APIs send no `[DONE]`).
fn json_events(events: &[String]) -> Vec<Value> {
    events
        .iter()
        .map(|e| serde_json::from_str(e).unwrap_or_else(|_| panic!("not JSON: {e}")))
        .collect()
}

/// A stream whose worker dies after 5 tokens, on a frontend that neither retries nor
/// migrates: the `data:` payloads the client got. One mocker per stream (it dies).
async fn stream_from_a_dying_worker(path: &str, body: Value) -> Vec<Value> {
    let (_m, fe) = frontend_over_one_mocker(
        &["--die-after-tokens", "5", "--itl-ms", "5"],
        &["--max-retries", "0"],
    )
    .await;
    let (status, _, events) = post_sse(&format!("{}{path}", fe.url()), &body)
        .await
        .unwrap();
    assert_eq!(status, 200, "{events:?}");
    json_events(&events)
}

#[tokio::test]
async fn a_worker_dying_mid_stream_ends_each_stream_with_its_apis_failure_event() {
    let events = stream_from_a_dying_worker(
        "/v1/responses",
        json!({"model": MODEL, "input": "x", "max_output_tokens": 50, "stream": true}),
    )
    .await;
    assert_eq!(events[0]["type"], "response.created", "{events:?}");
    assert!(events
        .iter()
        .any(|e| e["type"] == "response.output_text.delta"));
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.failed", "{events:?}");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(last["response"]["error"]["code"], "server_error");

    let events = stream_from_a_dying_worker(
        "/v1/messages",
        json!({"model": MODEL, "max_tokens": 50, "stream": true,
            "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(events[0]["type"], "message_start", "{events:?}");
    assert!(events.iter().any(|e| e["type"] == "content_block_delta"));
    let last = events.last().unwrap();
    assert_eq!(last["type"], "error", "{events:?}");
    assert_eq!(last["error"]["type"], "api_error");
}

#[tokio::test]
async fn errors_on_the_messages_route_are_anthropic_shaped() {
    let (_m, fe) = frontend_over_one_mocker(&[], &[]).await;
    let url = format!("{}/v1/messages", fe.url());
    let headers = [("x-api-key", "k"), ("anthropic-version", "2023-06-01")];
    for (body, status, kind) in [
        (
            json!({"model": "nope", "max_tokens": 4, "messages": [{"role": "user", "content": "x"}]}),
            404,
            "not_found_error",
        ),
        (
            json!({"model": MODEL, "messages": [{"role": "user", "content": "x"}]}),
            400,
            "invalid_request_error",
        ),
        (json!([1]), 400, "invalid_request_error"),
    ] {
        let (got, _, v) = post_json(&url, &body, &headers).await.unwrap();
        assert_eq!(got, status, "{body}: {v}");
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], kind, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
    }
    // The Responses route keeps OpenAI's shape, with the parameter named.
    let (status, _, v) = post_json(
        &format!("{}/v1/responses", fe.url()),
        &json!({"model": MODEL, "input": "x", "store": true}),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert_eq!(v["error"]["param"], "store", "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
}

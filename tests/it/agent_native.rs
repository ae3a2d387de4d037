//! Native passthrough of the agent APIs: a worker that lists `responses`/`messages` in its
//! `apis` gets the client's request on that API's own route, any other worker gets it
//! translated onto chat. Which route a mocker was asked on is read from its own
//! `switchyard_mocker_route_requests_total` counter, never from logs.

use serde_json::{json, Value};
use switchyard_tests::http::{metric, post_json, post_sse};
use switchyard_tests::{frontend, mocker, Proc};

use crate::agent_apis::run_sdk_script;
use crate::MODEL;

pub(crate) const NATIVE: &str = "responses,messages";

/// A frontend over one mocker, declared with `apis` (and serving them) when `native`.
pub(crate) async fn frontend_over(native: bool, mocker_args: &[&str]) -> (Proc, Proc) {
    let mut args = mocker_args.to_vec();
    if native {
        args.extend(["--native-apis", NATIVE]);
    }
    let m = mocker(&args).await.unwrap();
    let apis = if native {
        ";apis=responses+messages"
    } else {
        ""
    };
    let flags = vec![
        "--worker".to_owned(),
        format!("{MODEL}={}{apis}", m.url()),
        "--max-retries".to_owned(),
        "0".to_owned(),
    ];
    let fe = frontend(&flags).await.unwrap();
    (m, fe)
}

pub(crate) async fn route_count(m: &Proc, route: &str) -> f64 {
    metric(
        &m.url(),
        &format!("switchyard_mocker_route_requests_total{{route=\"{route}\"}}"),
    )
    .await
}

pub(crate) fn responses_body(stream: bool) -> Value {
    json!({"model": MODEL, "input": "tell me", "max_output_tokens": 6, "stream": stream})
}

pub(crate) fn messages_body(stream: bool) -> Value {
    json!({"model": MODEL, "max_tokens": 6, "stream": stream,
        "messages": [{"role": "user", "content": "tell me"}]})
}

/// The generated text of a whole answer or of a stream's deltas, in either API.
fn text_of(whole: &Value) -> String {
    let responses = whole["output"][0]["content"][0]["text"].as_str();
    let messages = whole["content"][0]["text"].as_str();
    responses.or(messages).unwrap_or_default().to_owned()
}

fn streamed_text(events: &[String]) -> String {
    events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|e| match e["type"].as_str() {
            Some("response.output_text.delta") => e["delta"].as_str().map(str::to_owned),
            Some("content_block_delta") => e["delta"]["text"].as_str().map(str::to_owned),
            _ => None,
        })
        .collect()
}

/// The four requests (two APIs, streamed and not) against `fe`: the texts the client got.
async fn ask_all(fe: &Proc) -> Vec<String> {
    let mut texts = Vec::new();
    for (path, body) in [
        ("/v1/responses", responses_body as fn(bool) -> Value),
        ("/v1/messages", messages_body),
    ] {
        let url = format!("{}{path}", fe.url());
        let (status, _, whole) = post_json(&url, &body(false), &[]).await.unwrap();
        assert_eq!(status, 200, "{path}: {whole}");
        texts.push(text_of(&whole));
        let (status, _, events) = post_sse(&url, &body(true)).await.unwrap();
        assert_eq!(status, 200, "{path}: {events:?}");
        texts.push(streamed_text(&events));
    }
    texts
}

#[tokio::test]
async fn a_native_worker_gets_the_agent_request_as_sent_and_a_chat_worker_the_translation() {
    let (native, native_fe) = frontend_over(true, &[]).await;
    let (chat, chat_fe) = frontend_over(false, &[]).await;
    let native_texts = ask_all(&native_fe).await;
    let chat_texts = ask_all(&chat_fe).await;

    assert_eq!(route_count(&native, "responses").await, 2.0);
    assert_eq!(route_count(&native, "messages").await, 2.0);
    assert_eq!(
        route_count(&native, "chat").await,
        0.0,
        "nothing translated"
    );
    assert_eq!(route_count(&chat, "chat").await, 4.0);
    assert_eq!(route_count(&chat, "responses").await, 0.0);
    assert_eq!(route_count(&chat, "messages").await, 0.0);
    // Both paths reach the same generator with the same conversation: the same words.
    assert!(
        native_texts
            .iter()
            .all(|t| t.split_whitespace().count() == 6),
        "{native_texts:?}"
    );
    assert_eq!(native_texts, chat_texts);
}

#[tokio::test]
async fn native_answers_are_counted_under_their_route_with_the_workers_usage() {
    let (_m, fe) = frontend_over(true, &[]).await;
    ask_all(&fe).await;
    for route in ["responses", "messages"] {
        let served = metric(
            &fe.url(),
            &format!(
                "switchyard_requests_total{{model=\"{MODEL}\",route=\"{route}\",status=\"200\"}}"
            ),
        )
        .await;
        assert_eq!(served, 2.0, "{route}");
    }
    // Four answers of 6 tokens each, read from the native usage (streams included).
    let output = metric(
        &fe.url(),
        &format!("switchyard_output_tokens_total{{model=\"{MODEL}\"}}"),
    )
    .await;
    assert_eq!(output, 24.0);
}

#[tokio::test]
async fn a_native_stream_cut_by_its_worker_ends_with_the_apis_failure_event() {
    for (body, path, last_type) in [
        (responses_body(true), "/v1/responses", "response.failed"),
        (messages_body(true), "/v1/messages", "error"),
    ] {
        let mut body = body;
        body[if path == "/v1/responses" {
            "max_output_tokens"
        } else {
            "max_tokens"
        }] = json!(50);
        let (m, fe) = frontend_over(true, &["--die-after-tokens", "3"]).await;
        let (status, _, events) = post_sse(&format!("{}{path}", fe.url()), &body)
            .await
            .unwrap();
        assert_eq!(status, 200, "{events:?}");
        // The mocker process is gone (`--die-after-tokens` exits it); the frontend's message
        // says the stream was native.
        drop(m);
        let events: Vec<Value> = events
            .iter()
            .map(|e| serde_json::from_str(e).unwrap_or_else(|_| panic!("not JSON: {e}")))
            .collect();
        assert!(events.len() > 2, "{events:?}");
        let last = events.last().unwrap();
        assert_eq!(last["type"], last_type, "{events:?}");
        let message = if last_type == "response.failed" {
            &last["response"]["error"]["message"]
        } else {
            &last["error"]["message"]
        };
        assert!(
            message.as_str().is_some_and(|m| m.contains("native")),
            "{last}"
        );
        if last_type == "response.failed" {
            assert_eq!(last["response"]["status"], "failed");
            let previous = events[events.len() - 2]["sequence_number"]
                .as_u64()
                .unwrap();
            assert_eq!(last["sequence_number"], previous + 1, "{events:?}");
        } else {
            assert_eq!(last["error"]["type"], "api_error");
        }
    }
}

#[tokio::test]
async fn a_native_workers_own_refusal_reaches_the_client_unchanged() {
    let (m, fe) = frontend_over(true, &[]).await;
    // Valid for the frontend; the mocker, like vLLM, caps the output length (2^20).
    let (status, _, v) = post_json(
        &format!("{}/v1/messages", fe.url()),
        &json!({"model": MODEL, "max_tokens": 2_000_000,
            "messages": [{"role": "user", "content": "x"}]}),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(route_count(&m, "messages").await, 1.0, "{v}");
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|t| t.contains("max_tokens")),
        "{v}"
    );
}

#[tokio::test]
async fn the_official_sdks_work_against_native_workers() {
    let (m, fe) = frontend_over(true, &[]).await;
    run_sdk_script("openai", "openai_responses.py", format!("{}/v1", fe.url())).await;
    run_sdk_script("anthropic", "anthropic_client.py", fe.url()).await;
    assert!(route_count(&m, "responses").await >= 3.0);
    assert!(route_count(&m, "messages").await >= 3.0);
    assert_eq!(
        route_count(&m, "chat").await,
        0.0,
        "every SDK request went natively"
    );
}

#[tokio::test]
async fn a_native_workers_own_failure_event_is_relayed_and_ends_the_stream() {
    // The mocker sends an in-band error after 3 tokens; natively that is the API's own
    // failure event, which the frontend passes on (and counts against the worker).
    let (m, fe) = frontend_over(true, &["--error-after-tokens", "3"]).await;
    let mut body = messages_body(true);
    body["max_tokens"] = json!(50);
    let (status, _, events) = post_sse(&format!("{}/v1/messages", fe.url()), &body)
        .await
        .unwrap();
    assert_eq!(status, 200, "{events:?}");
    assert_eq!(route_count(&m, "messages").await, 1.0, "sent natively");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["type"], "error", "{events:?}");
    let message = last["error"]["message"].as_str().unwrap_or_default();
    assert!(
        !message.contains("not migrated"),
        "the worker's own event: {last}"
    );
    assert_eq!(
        metric(&fe.url(), "switchyard_stream_errors_total").await,
        1.0
    );
}

#[tokio::test]
async fn a_mixed_pool_keeps_balancing_and_speaks_to_each_worker_in_its_api() {
    let native = mocker(&["--native-apis", NATIVE]).await.unwrap();
    let chat = mocker(&[]).await.unwrap();
    let flags = [
        "--worker".to_owned(),
        format!("{MODEL}={};apis=responses+messages", native.url()),
        "--worker".to_owned(),
        format!("{MODEL}={}", chat.url()),
        "--policy".to_owned(),
        "round-robin".to_owned(),
    ];
    let fe = frontend(&flags).await.unwrap();
    let url = format!("{}/v1/responses", fe.url());
    for _ in 0..4 {
        let (status, _, v) = post_json(&url, &responses_body(false), &[]).await.unwrap();
        assert_eq!(status, 200, "{v}");
    }
    // Routing is not narrowed to the native-capable worker: each got half, in its own API.
    assert_eq!(route_count(&native, "responses").await, 2.0);
    assert_eq!(route_count(&native, "chat").await, 0.0);
    assert_eq!(route_count(&chat, "chat").await, 2.0);
    assert_eq!(route_count(&chat, "responses").await, 0.0);
}

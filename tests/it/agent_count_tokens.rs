//! `POST /v1/messages/count_tokens`: exact with a tokenizer (checked by the official
//! Anthropic client against the usage the served message reports), refused in Anthropic's
//! shape without one.

use serde_json::json;
use switchyard_tests::http::{metric, post_json};

use crate::agent_apis::{frontend_over_one_mocker, run_sdk_script};
use crate::tokenizer::write_char_tokenizer;
use crate::MODEL;

#[tokio::test]
async fn the_anthropic_client_counts_the_tokens_a_message_is_served_with() {
    let dir = tempfile::tempdir().unwrap();
    let tokenizer = write_char_tokenizer(dir.path()).unwrap();
    let tokenizer = tokenizer.to_str().unwrap();
    let (_m, fe) =
        frontend_over_one_mocker(&["--tokenizer", tokenizer], &["--tokenizer", tokenizer]).await;
    run_sdk_script("anthropic", "anthropic_count_tokens.py", fe.url()).await;
    let counted = metric(
        &fe.url(),
        &format!(
            "switchyard_requests_total{{model=\"{MODEL}\",route=\"count_tokens\",status=\"200\"}}"
        ),
    )
    .await;
    assert_eq!(counted, 2.0, "counts are metered under their own route");
}

#[tokio::test]
async fn without_a_tokenizer_count_tokens_says_one_is_needed() {
    let (_m, fe) = frontend_over_one_mocker(&[], &[]).await;
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "x"}]});
    let url = format!("{}/v1/messages/count_tokens", fe.url());
    let (status, _, v) = post_json(&url, &body, &[]).await.unwrap();
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("tokenizer"), "{v}");
}

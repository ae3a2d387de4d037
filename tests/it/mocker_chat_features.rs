//! The mocker's chat features (`n`, `stop`, tool calls) through the frontend, checked by
//! the official OpenAI Python client on the chat and Responses routes and by the official
//! Anthropic Python client on the Messages route (tool use).

use crate::agent_apis::{frontend_over_one_mocker, run_sdk_script};

#[tokio::test]
async fn the_openai_client_gets_n_choices_stops_and_tool_calls_through_the_frontend() {
    let (_m, fe) = frontend_over_one_mocker(&[], &[]).await;
    run_sdk_script(
        "openai",
        "openai_mocker_features.py",
        format!("{}/v1", fe.url()),
    )
    .await;
}

#[tokio::test]
async fn the_anthropic_client_gets_tool_use_blocks_from_the_mockers_tool_calls() {
    let (_m, fe) = frontend_over_one_mocker(&[], &[]).await;
    // The Anthropic SDK appends `/v1/messages` itself.
    run_sdk_script("anthropic", "anthropic_tool_use.py", fe.url()).await;
}

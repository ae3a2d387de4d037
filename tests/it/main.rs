//! Integration tests: real `switchyard serve` and `switchyard mocker` processes on loopback.
//! One module per area.
// This whole binary is test code: helpers outside `#[test]` fns may panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent_apis;
mod agent_count_tokens;
mod agent_native;
mod agent_native_wire;
mod cli;
mod config;
mod console;
mod disaggregation;
mod distributed;
mod embed;
mod engines;
mod errors;
mod faults;
mod flow;
mod kubernetes;
mod kv_bridge;
mod lora;
mod metrics;
mod mocker_chat_features;
mod openai_client;
mod openai_npm;
mod plugin_admin;
mod plugin_frame;
mod plugin_new;
mod plugin_upload;
mod plugins;
mod predict;
mod register;
mod routing;
mod served_models;
mod streaming;
mod templates;
mod tenant_replicas;
mod tenants;
mod tls;
mod tokenizer;
mod tracing_otlp;
mod validation;
mod worker_tls;

use std::collections::HashMap;

use serde_json::{json, Value};
use switchyard_tests::http::post_json;
use switchyard_tests::Proc;

pub const MODEL: &str = "mock-model";

/// A chat request for `MODEL`.
pub fn chat(content: &str, max_tokens: u32, stream: bool) -> Value {
    json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "stream": stream,
    })
}

/// Sends `n` requests sequentially; counts the instances that served them.
pub async fn spread(fe: &Proc, n: usize, session: Option<&str>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for i in 0..n {
        let headers: Vec<(&str, &str)> = session
            .map(|s| vec![("x-session-id", s)])
            .unwrap_or_default();
        let (status, h, body) = post_json(
            &format!("{}/v1/chat/completions", fe.url()),
            &chat(&format!("req {i}"), 2, false),
            &headers,
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "request {i}: {body}");
        let id = h["x-switchyard-instance"].to_str().unwrap().to_owned();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

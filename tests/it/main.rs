//! Integration tests: real `switchyard serve` and `switchyard mocker` processes on loopback.
//! One module per area.
// This whole binary is test code: helpers outside `#[test]` fns may panic on failure too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod distributed;
mod errors;
mod failures;
mod faults;
mod openai_client;
mod plugins;
mod routing;
mod shutdown;
mod streaming;
mod templates;

use serde_json::{json, Value};

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

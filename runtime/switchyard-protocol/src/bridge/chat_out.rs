//! The parts of a chat completion (whole or chunked) that the bridges read. Deliberately
//! minimal and borrowed where it can be: these are decoded once per streamed token.

use std::borrow::Cow;

use serde::Deserialize;

use crate::Usage;

/// A non-streamed chat completion.
#[derive(Debug, Deserialize)]
pub struct ChatReply {
    #[serde(default)]
    pub model: String,
    pub choices: Vec<ReplyChoice>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
pub struct ReplyChoice {
    pub message: ReplyMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// vLLM's extension: the stop string (or token id) that ended the choice.
    #[serde(default)]
    pub stop_reason: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct ReplyMessage {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
}

#[derive(Debug, Deserialize)]
pub struct ToolCall {
    #[serde(default)]
    pub id: Option<String>,
    pub function: FunctionCall,
}

#[derive(Debug, Deserialize)]
pub struct FunctionCall {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
}

/// One streamed chat chunk. The bridges read it with [`super::chunk_scan::scan`]; this
/// derive is the reference decode the scanner's tests compare against.
#[derive(Debug, PartialEq, Deserialize)]
pub struct Chunk<'a> {
    #[serde(default, borrow)]
    pub choices: Vec<ChunkChoice<'a>>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub struct ChunkChoice<'a> {
    #[serde(default)]
    pub index: u32,
    #[serde(default, borrow)]
    pub delta: Delta<'a>,
    #[serde(default)]
    pub finish_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    pub stop_reason: Option<serde_json::Value>,
}

#[derive(Debug, Default, PartialEq, Deserialize)]
pub struct Delta<'a> {
    #[serde(default, borrow)]
    pub content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub struct ToolCallDelta<'a> {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default, borrow)]
    pub function: Option<FunctionDelta<'a>>,
}

#[derive(Debug, PartialEq, Deserialize)]
pub struct FunctionDelta<'a> {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, borrow)]
    pub arguments: Option<Cow<'a, str>>,
}

/// The message of an in-band error event (`{"error":{"message",...}}`), if `data` is one.
pub fn stream_error(data: &[u8]) -> Option<String> {
    // Cheap pre-check: chunks almost never contain the key; only candidates are decoded.
    if !crate::json_key::ERROR.in_bytes(data) {
        return None;
    }
    #[derive(Deserialize)]
    struct Probe {
        error: Option<serde_json::Value>,
    }
    let error = serde_json::from_slice::<Probe>(data).ok()?.error?;
    Some(
        error
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or("the stream failed")
            .to_owned(),
    )
}

/// The stop string that ended a choice, when the worker reports it (vLLM's `stop_reason`).
pub fn stop_string(stop_reason: Option<&serde_json::Value>) -> Option<String> {
    stop_reason.and_then(|v| v.as_str()).map(str::to_owned)
}

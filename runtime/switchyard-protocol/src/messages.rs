//! `POST /v1/messages` (Anthropic Messages API): the request, the `message` object, the
//! stream events and Anthropic's error shape.
//!
//! Content blocks are typed loosely (one struct with optional fields, `type` kept as a
//! string) so that a block kind Switchyard does not translate is refused by name.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Extra;

/// A Messages request. `max_tokens` is required by the API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    pub messages: Vec<InputMessage>,
    pub max_tokens: u32,
    #[serde(default)]
    pub system: Option<SystemPrompt>,
    #[serde(default)]
    pub tools: Option<Vec<Tool>>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<u32>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl MessagesRequest {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }
}

/// `system`: a string or a list of text blocks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum SystemPrompt {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InputMessage {
    pub role: String,
    pub content: Content,
}

/// Message content: a string or a list of blocks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

/// `text`, `image`, `tool_use`, `tool_result`, `thinking`, `document`, ...
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ContentBlock {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    /// `image`: `{"type":"base64","media_type","data"}` or `{"type":"url","url"}`.
    #[serde(default)]
    pub source: Option<ImageSource>,
    /// `tool_use`.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub input: Option<Value>,
    /// `tool_result`.
    #[serde(default)]
    pub tool_use_id: Option<String>,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub is_error: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ImageSource {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}

/// A client tool (`type` absent or `custom`); server tools carry a versioned `type` and are
/// refused.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Tool {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub input_schema: Option<Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ToolChoice {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub disable_parallel_tool_use: Option<bool>,
}

/// The `message` object, non-streamed and inside `message_start`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageObject {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: String,
    pub content: Vec<OutputBlock>,
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<String>,
    pub usage: MessageUsage,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MessageUsage {
    pub input_tokens: u32,
    pub output_tokens: u32,
}

/// A content block of the answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
}

/// `message_start`.
#[derive(Debug, Serialize)]
pub struct MessageStartEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: &'a MessageObject,
}

/// `content_block_start`.
#[derive(Debug, Serialize)]
pub struct BlockStartEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub index: usize,
    pub content_block: &'a OutputBlock,
}

/// `content_block_delta`.
#[derive(Debug, Serialize)]
pub struct BlockDeltaEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub index: usize,
    pub delta: BlockDelta<'a>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

/// `content_block_stop`.
#[derive(Debug, Serialize)]
pub struct BlockStopEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub index: usize,
}

/// `message_delta`: the stop reason and the final usage.
#[derive(Debug, Serialize)]
pub struct MessageDeltaEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub delta: StopDelta<'a>,
    pub usage: MessageUsage,
}

#[derive(Debug, Serialize)]
pub struct StopDelta<'a> {
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<&'a str>,
}

/// Anthropic's error shape, as a response body and as the in-stream `error` event:
/// `{"type":"error","error":{"type","message"}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicError {
    #[serde(rename = "type")]
    pub kind: String,
    pub error: AnthropicErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicErrorDetail {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

impl AnthropicError {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: "error".to_owned(),
            error: AnthropicErrorDetail {
                kind: kind.into(),
                message: message.into(),
            },
        }
    }

    /// Anthropic's status code and error type for a status Switchyard would answer with:
    /// overload (503) becomes 529 `overloaded_error`, as Anthropic's own clients expect.
    pub fn for_status(status: u16, message: impl Into<String>) -> (u16, Self) {
        let (status, kind) = match status {
            400 | 405 | 408 | 415 | 422 => (status, "invalid_request_error"),
            401 => (401, "authentication_error"),
            403 => (403, "permission_error"),
            404 => (404, "not_found_error"),
            413 => (413, "request_too_large"),
            429 => (429, "rate_limit_error"),
            503 => (529, "overloaded_error"),
            504 => (504, "timeout_error"),
            s if s < 500 => (s, "invalid_request_error"),
            s => (s, "api_error"),
        };
        (status, Self::new(kind, message))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","error":{"type":"api_error","message":"internal error"}}"#.to_owned()
        })
    }
}

//! `POST /v1/responses` (OpenAI Responses API, stateless subset): the request as clients send
//! it, and the `response` object and stream events Switchyard answers with.
//!
//! Request items are typed loosely (one struct with optional fields per item, `type` kept as
//! a string) so that an item of a kind Switchyard does not translate is refused by name
//! rather than by a serde "no variant matched" message.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Extra;

/// A Responses request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResponsesRequest {
    pub model: String,
    pub input: ResponsesInput,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub tools: Option<Vec<ResponsesTool>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub background: Option<bool>,
    #[serde(default)]
    pub conversation: Option<Value>,
    #[serde(default)]
    pub text: Option<TextConfig>,
    #[serde(default)]
    pub reasoning: Option<Value>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ResponsesRequest {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }
}

/// `input`: a plain user prompt or a list of items.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ResponsesInput {
    Text(String),
    Items(Vec<InputItem>),
}

/// One input item: a message (`type` `message` or absent), a `function_call` the model made
/// earlier, a `function_call_output` the client computed, or a kind that is refused.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InputItem {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub content: Option<InputContent>,
    #[serde(default)]
    pub call_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub arguments: Option<String>,
    #[serde(default)]
    pub output: Option<InputContent>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// Message content or a tool output: a string or a list of typed parts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum InputContent {
    Text(String),
    Parts(Vec<InputPart>),
}

/// `input_text`, `output_text`, `input_image`, `input_file`, `refusal`, ...
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InputPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A tool: `function` is translated; the built-in kinds (`web_search`, `file_search`, ...)
/// are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponsesTool {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `text`: the output format (`text`, `json_object`, `json_schema`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<TextFormat>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextFormat {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// The `response` object, non-streamed and inside `response.*` lifecycle events. Request
/// parameters are echoed back as the API does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseObject {
    pub id: String,
    pub object: &'static str,
    pub created_at: u64,
    pub status: &'static str,
    pub error: Option<ResponseError>,
    pub incomplete_details: Option<IncompleteDetails>,
    pub model: String,
    pub output: Vec<OutputItem>,
    pub usage: Option<ResponseUsage>,
    #[serde(flatten)]
    pub echo: ResponseEcho,
}

/// The request parameters every `response` object repeats.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ResponseEcho {
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u32>,
    pub parallel_tool_calls: bool,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub tool_choice: Value,
    pub tools: Vec<ResponsesTool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<TextConfig>,
    pub metadata: Value,
    /// Always false: Switchyard keeps no responses.
    pub store: bool,
    pub previous_response_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseError {
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncompleteDetails {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ResponseUsage {
    pub input_tokens: u32,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u32,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct InputTokensDetails {
    pub cached_tokens: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u32,
}

impl ResponseUsage {
    pub fn new(input_tokens: u32, output_tokens: u32) -> Self {
        Self {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens.saturating_add(output_tokens),
            ..Self::default()
        }
    }
}

/// One output item.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    Message {
        id: String,
        status: &'static str,
        role: &'static str,
        content: Vec<OutputText>,
    },
    FunctionCall {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        status: &'static str,
    },
}

/// An `output_text` content part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputText {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: String,
    pub annotations: [(); 0],
    pub logprobs: [(); 0],
}

impl OutputText {
    pub fn new(text: String) -> Self {
        Self {
            kind: "output_text",
            text,
            annotations: [],
            logprobs: [],
        }
    }
}

/// `response.output_text.delta`.
#[derive(Debug, Serialize)]
pub struct TextDeltaEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub sequence_number: u64,
    pub item_id: &'a str,
    pub output_index: usize,
    pub content_index: usize,
    pub delta: &'a str,
    pub logprobs: [(); 0],
}

/// `response.output_text.done`.
#[derive(Debug, Serialize)]
pub struct TextDoneEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub sequence_number: u64,
    pub item_id: &'a str,
    pub output_index: usize,
    pub content_index: usize,
    pub text: &'a str,
    pub logprobs: [(); 0],
}

/// `response.content_part.added` / `.done`.
#[derive(Debug, Serialize)]
pub struct ContentPartEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub sequence_number: u64,
    pub item_id: &'a str,
    pub output_index: usize,
    pub content_index: usize,
    pub part: &'a OutputText,
}

/// `response.output_item.added` / `.done`.
#[derive(Debug, Serialize)]
pub struct OutputItemEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub sequence_number: u64,
    pub output_index: usize,
    pub item: &'a OutputItem,
}

/// `response.function_call_arguments.delta`.
#[derive(Debug, Serialize)]
pub struct ArgumentsDeltaEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub sequence_number: u64,
    pub item_id: &'a str,
    pub output_index: usize,
    pub delta: &'a str,
}

/// `response.function_call_arguments.done`.
#[derive(Debug, Serialize)]
pub struct ArgumentsDoneEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub sequence_number: u64,
    pub item_id: &'a str,
    pub output_index: usize,
    pub name: &'a str,
    pub arguments: &'a str,
}

/// `response.created`, `.in_progress`, `.completed`, `.incomplete`, `.failed`.
#[derive(Debug, Serialize)]
pub struct LifecycleEvent<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub sequence_number: u64,
    pub response: &'a ResponseObject,
}

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

/// One streamed chat chunk. The bridges read it with [`super::chunk_scan::ChunkScanner`]; this
/// derive is the reference decode the scanner's tests compare against.
#[derive(Debug, PartialEq, Deserialize)]
pub struct Chunk<'a> {
    #[serde(default, borrow)]
    pub choices: Choices<'a>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// A chunk's choices. The bridges ask for one, so nearly every chunk has exactly one: it is
/// kept inline, and only further choices take a `Vec` (no allocation per streamed token).
#[derive(Debug, Default, PartialEq)]
pub struct Choices<'a> {
    first: Option<ChunkChoice<'a>>,
    rest: Vec<ChunkChoice<'a>>,
}

impl<'a> Choices<'a> {
    pub fn push(&mut self, choice: ChunkChoice<'a>) {
        if self.first.is_none() {
            self.first = Some(choice);
        } else {
            self.rest.push(choice);
        }
    }

    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub fn get(&self, i: usize) -> Option<&ChunkChoice<'a>> {
        match i {
            0 => self.first.as_ref(),
            _ => self.rest.get(i - 1),
        }
    }

    /// The choices in the order the chunk lists them.
    pub fn iter(&self) -> impl Iterator<Item = &ChunkChoice<'a>> {
        self.first.iter().chain(&self.rest)
    }
}

impl<'a> FromIterator<ChunkChoice<'a>> for Choices<'a> {
    fn from_iter<I: IntoIterator<Item = ChunkChoice<'a>>>(iter: I) -> Self {
        let mut choices = Self::default();
        for choice in iter {
            choices.push(choice);
        }
        choices
    }
}

/// Decoded as the JSON array it is.
impl<'de: 'a, 'a> Deserialize<'de> for Choices<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<ChunkChoice<'a>>::deserialize(deserializer).map(|v| v.into_iter().collect())
    }
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

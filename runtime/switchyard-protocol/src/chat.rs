//! `POST /v1/chat/completions`: request, response and stream chunk.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::raw_extra::raw_extra_struct;
use crate::{Extra, RawExtra, StreamOptions, Usage};

/// A chat completion request. Fields Switchyard routes on are typed (and therefore validated);
/// everything else is kept in `extra`, as raw text, and forwarded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(flatten)]
    pub extra: RawExtra,
}

raw_extra_struct!(
    ChatCompletionRequest, "a chat completion request object",
    required { model: String, messages: Vec<ChatMessage> },
    optional {
        stream: bool,
        stream_options: StreamOptions,
        max_tokens: u32,
        max_completion_tokens: u32,
        n: u32,
        seed: i64,
    }
);

impl ChatCompletionRequest {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The output budget: `max_completion_tokens` wins over the legacy `max_tokens`.
    pub fn output_limit(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

/// One message in the conversation (requests and non-streamed responses).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: Option<MessageContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub extra: RawExtra,
}

raw_extra_struct!(
    ChatMessage,
    "a chat message object",
    required { role: String },
    optional {
        content: MessageContent,
        name: String
    }
);

/// Message content: a plain string or an array of typed parts (text, image_url, ...). Parts
/// are kept as raw text (see [`RawExtra`] for why): only their `text` is ever read.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<Box<RawValue>>),
}

impl PartialEq for MessageContent {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Text(a), Self::Text(b)) => a == b,
            (Self::Parts(a), Self::Parts(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.get() == y.get())
            }
            _ => false,
        }
    }
}

/// A string or an array, decided by the JSON token: no buffering as `untagged` would.
impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = MessageContent;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of content parts")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MessageContent::Text(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(MessageContent::Text(v))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(part) = seq.next_element::<Box<RawValue>>()? {
                    crate::raw_extra::check_depth::<A::Error>(&part)?;
                    parts.push(part);
                }
                Ok(MessageContent::Parts(parts))
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

/// The one field of a content part that is read; everything else is skipped unparsed.
#[derive(Deserialize)]
struct PartText {
    #[serde(default)]
    text: Option<String>,
}

impl MessageContent {
    /// The text of the message: the string, or the `text` of every text part joined.
    pub fn text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Parts(parts) => parts
                .iter()
                .filter_map(|p| serde_json::from_str::<PartText>(p.get()).ok()?.text)
                .collect::<Vec<_>>()
                .join(""),
        }
    }
}

impl ChatMessage {
    pub fn text(&self) -> String {
        self.content
            .as_ref()
            .map(MessageContent::text)
            .unwrap_or_default()
    }
}

/// A non-streaming chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionResponse {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    pub index: u32,
    pub message: ChatMessage,
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One `data:` event of a streamed chat completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChunkChoice {
    pub index: u32,
    pub delta: ChatDelta,
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"hi","x_msg":1}],"top_k":5,"regex":"a+"}"#;
        let req: ChatCompletionRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.extra["top_k"].get(), "5");
        assert_eq!(req.messages[0].extra["x_msg"].get(), "1");
        let back: serde_json::Value = serde_json::to_value(&req).unwrap();
        assert_eq!(back["regex"], "a+");
        assert_eq!(back["messages"][0]["x_msg"], 1);
    }

    #[test]
    fn ill_typed_and_missing_fields_are_rejected() {
        for bad in [
            r#"{"messages":[]}"#,
            r#"{"model":1,"messages":[]}"#,
            r#"{"model":"m","messages":"hi"}"#,
            r#"{"model":"m","messages":[],"max_tokens":-1}"#,
            r#"{"model":"m","messages":[],"stream":"yes"}"#,
            r#"[1,2]"#,
        ] {
            assert!(
                serde_json::from_str::<ChatCompletionRequest>(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn content_parts_join_their_text() {
        let m: ChatMessage = serde_json::from_str(
            r#"{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"},{"type":"text","text":"b"}]}"#,
        )
        .unwrap();
        assert_eq!(m.text(), "ab");
    }

    #[test]
    fn content_is_a_string_an_array_or_null_and_nothing_else() {
        let m = |content: &str| {
            serde_json::from_str::<ChatMessage>(&format!(
                r#"{{"role":"user","content":{content}}}"#
            ))
        };
        assert_eq!(m(r#""hi""#).unwrap().text(), "hi");
        assert_eq!(m("null").unwrap().content, None);
        assert_eq!(
            m("[]").unwrap().content,
            Some(MessageContent::Parts(vec![]))
        );
        for bad in ["1", "{}", "true", r#"["a","#] {
            assert!(m(bad).is_err(), "{bad}");
        }
        // A part's other fields are kept verbatim and never parsed.
        let parts = m(r#"[{"type":"image_url","image_url":{"url":"data:x"},"x":[0, 0]}]"#).unwrap();
        let back = serde_json::to_string(&parts).unwrap();
        assert!(
            back.contains(r#"{"type":"image_url","image_url":{"url":"data:x"},"x":[0, 0]}"#),
            "{back}"
        );
    }
}

//! The JSON the mocker writes: OpenAI chat and text completion responses and stream chunks,
//! serialized straight from borrowed data (no intermediate owned structs on the hot path).
//! Tests parse everything back with `switchyard_protocol`'s types.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use switchyard_protocol::Usage;

use crate::state::Shared;

/// Why every mocker answer stops: the output budget (`max_tokens`) ran out.
const FINISH_REASON: &str = "length";

/// Which OpenAI endpoint a response belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Chat,
    Completion,
}

/// The fields every response and chunk of one request repeat.
#[derive(Debug)]
pub(crate) struct Envelope {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
}

#[derive(Serialize)]
struct Body<'a, C> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: C,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct ChatChoice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct ChatChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    index: u32,
    text: &'a str,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

impl Envelope {
    pub fn new(kind: Kind, shared: &Shared) -> Self {
        let prefix = match kind {
            Kind::Chat => "chatcmpl-mock",
            Kind::Completion => "cmpl-mock",
        };
        Self {
            kind,
            id: format!("{prefix}-{}", shared.next_id()),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            model: shared.args.model.clone(),
        }
    }

    /// Answers as `model` (vLLM names the adapter a request used, not its base model).
    pub fn answering_as(mut self, model: &str) -> Self {
        model.clone_into(&mut self.model);
        self
    }

    /// The whole non-streamed response.
    pub fn response(&self, text: &str, usage: Usage) -> Bytes {
        match self.kind {
            Kind::Chat => {
                let choice = ChatChoice {
                    index: 0,
                    message: Message {
                        role: "assistant",
                        content: text,
                    },
                    logprobs: None,
                    finish_reason: FINISH_REASON,
                };
                json(&self.body("chat.completion", [choice], Some(usage)))
            }
            Kind::Completion => {
                let choice = text_choice(text, Some(FINISH_REASON));
                json(&self.body("text_completion", [choice], Some(usage)))
            }
        }
    }

    /// The opening chunk of a chat stream (`role: assistant`); completions have none.
    pub fn role_chunk(&self) -> Option<Bytes> {
        (self.kind == Kind::Chat).then(|| self.chat_chunk(Some("assistant"), Some(""), None))
    }

    /// One token.
    pub fn token_chunk(&self, token: &str) -> Bytes {
        match self.kind {
            Kind::Chat => self.chat_chunk(None, Some(token), None),
            Kind::Completion => self.text_chunk(token, None),
        }
    }

    /// One token with the usage so far (`continuous_usage_stats`).
    pub fn token_chunk_with_usage(&self, token: &str, usage: Usage) -> Bytes {
        match self.kind {
            Kind::Chat => {
                let choice = ChatChunkChoice {
                    index: 0,
                    delta: Delta {
                        role: None,
                        content: Some(token),
                    },
                    logprobs: None,
                    finish_reason: None,
                };
                sse(&self.body(self.chunk_object(), [choice], Some(usage)))
            }
            Kind::Completion => {
                sse(&self.body(self.chunk_object(), [text_choice(token, None)], Some(usage)))
            }
        }
    }

    /// The chunk carrying `finish_reason`.
    pub fn finish_chunk(&self) -> Bytes {
        match self.kind {
            Kind::Chat => self.chat_chunk(None, None, Some(FINISH_REASON)),
            Kind::Completion => self.text_chunk("", Some(FINISH_REASON)),
        }
    }

    /// `stream_options.include_usage`: usage with `choices: []`.
    pub fn usage_chunk(&self, usage: Usage) -> Bytes {
        sse(&self.body(self.chunk_object(), [(); 0], Some(usage)))
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// A whole response with choices shaped elsewhere (`choices.rs`).
    pub fn response_with<C: Serialize>(&self, choices: C, usage: Usage) -> Bytes {
        let object = match self.kind {
            Kind::Chat => "chat.completion",
            Kind::Completion => "text_completion",
        };
        json(&self.body(object, choices, Some(usage)))
    }

    /// A stream chunk with choices shaped elsewhere (`choices.rs`).
    pub fn chunk_with<C: Serialize>(&self, choices: C) -> Bytes {
        sse(&self.body(self.chunk_object(), choices, None))
    }

    fn chat_chunk(
        &self,
        role: Option<&'static str>,
        content: Option<&str>,
        finish_reason: Option<&'static str>,
    ) -> Bytes {
        let choice = ChatChunkChoice {
            index: 0,
            delta: Delta { role, content },
            logprobs: None,
            finish_reason,
        };
        sse(&self.body(self.chunk_object(), [choice], None))
    }

    fn text_chunk(&self, text: &str, finish_reason: Option<&'static str>) -> Bytes {
        sse(&self.body(
            self.chunk_object(),
            [text_choice(text, finish_reason)],
            None,
        ))
    }

    fn chunk_object(&self) -> &'static str {
        match self.kind {
            Kind::Chat => "chat.completion.chunk",
            Kind::Completion => "text_completion",
        }
    }

    fn body<C>(&self, object: &'static str, choices: C, usage: Option<Usage>) -> Body<'_, C> {
        Body {
            id: &self.id,
            object,
            created: self.created,
            model: &self.model,
            choices,
            usage,
        }
    }
}

fn text_choice<'a>(text: &'a str, finish_reason: Option<&'static str>) -> TextChoice<'a> {
    TextChoice {
        index: 0,
        text,
        logprobs: None,
        finish_reason,
    }
}

/// Serializes into bytes. These types only hold strings and numbers, which cannot fail.
fn json(value: &impl Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// One SSE event: `data: <json>\n\n`, built in a single buffer.
fn sse(value: &impl Serialize) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

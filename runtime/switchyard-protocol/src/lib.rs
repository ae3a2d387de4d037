//! OpenAI-compatible wire types used by the Switchyard frontend and the mocker.
//!
//! Everything here is plain data plus (de)serialization: no I/O, no async. Request and
//! response types keep unknown fields in an `extra` map so that a field a worker understands
//! but Switchyard does not (e.g. vLLM's `top_k`, SGLang's `regex`) is forwarded untouched.
//! The SSE framer lives here too because both the relay and the mocker's tests frame events.
#![forbid(unsafe_code)]

pub mod bridge;
pub mod chat;
pub mod completion;
pub mod duration;
pub mod embedding;
pub mod error;
pub mod json_key;
pub mod messages;
pub mod models;
mod raw_extra;
pub mod responses;
pub mod sse;
mod text_or_tokens;
pub mod usage;

pub use chat::{
    ChatChoice, ChatChunkChoice, ChatCompletionChunk, ChatCompletionRequest,
    ChatCompletionResponse, ChatDelta, ChatMessage, MessageContent,
};
pub use completion::{
    CompletionChoice, CompletionChunk, CompletionRequest, CompletionResponse, Prompt,
};
pub use embedding::{EmbeddingData, EmbeddingInput, EmbeddingRequest, EmbeddingResponse};
pub use error::{ErrorBody, ErrorDetail};
pub use models::{ModelCard, ModelList};
pub use raw_extra::RawExtra;
pub use usage::{StreamOptions, Usage};

/// Unknown JSON fields preserved on a typed response value (requests use [`RawExtra`]).
pub type Extra = serde_json::Map<String, serde_json::Value>;

//! `POST /v1/completions`: request, response and stream chunk.

use serde::{Deserialize, Serialize};

use crate::{Extra, StreamOptions, Usage};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: Prompt,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl CompletionRequest {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }
}

/// The `prompt` field: a string, a batch of strings, token ids, or a batch of token-id lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenBatches(Vec<Vec<u32>>),
}

impl Prompt {
    /// A text view of the prompt for hashing and simulation: strings are joined, token ids are
    /// rendered as space-separated numbers.
    pub fn as_text(&self) -> String {
        match self {
            Self::Text(t) => t.clone(),
            Self::Texts(ts) => ts.join("\n"),
            Self::Tokens(ids) => join_ids(ids),
            Self::TokenBatches(batches) => batches
                .iter()
                .map(|b| join_ids(b))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

fn join_ids(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionResponse {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionChoice {
    pub index: u32,
    pub text: String,
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// One `data:` event of a streamed completion (same shape as the response, with partial text).
pub type CompletionChunk = CompletionResponse;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prompt_form_parses() {
        for (body, text) in [
            (r#""abc""#, "abc"),
            (r#"["a","b"]"#, "a\nb"),
            (r#"[1,2,3]"#, "1 2 3"),
            (r#"[[1],[2,3]]"#, "1\n2 3"),
        ] {
            let p: Prompt = serde_json::from_str(body).unwrap();
            assert_eq!(p.as_text(), text);
        }
        assert!(serde_json::from_str::<Prompt>("{}").is_err());
    }
}

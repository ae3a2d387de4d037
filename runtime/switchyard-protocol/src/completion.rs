//! `POST /v1/completions`: request, response and stream chunk.

use serde::{Deserialize, Serialize};

use crate::raw_extra::raw_extra_struct;
use crate::text_or_tokens::TextOrTokens;
use crate::{Extra, RawExtra, StreamOptions, Usage};

#[derive(Debug, Clone, PartialEq, Serialize)]
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
    pub extra: RawExtra,
}

raw_extra_struct!(
    CompletionRequest,
    "a completion request object",
    required {
        model: String,
        prompt: Prompt
    },
    optional {
        stream: bool,
        stream_options: StreamOptions,
        max_tokens: u32,
        n: u32,
        seed: i64,
    }
);

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
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenBatches(Vec<Vec<u32>>),
}

impl From<TextOrTokens> for Prompt {
    fn from(v: TextOrTokens) -> Self {
        match v {
            TextOrTokens::Text(t) => Self::Text(t),
            TextOrTokens::Texts(t) => Self::Texts(t),
            TextOrTokens::Tokens(t) => Self::Tokens(t),
            TextOrTokens::TokenBatches(t) => Self::TokenBatches(t),
        }
    }
}

impl<'de> Deserialize<'de> for Prompt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        TextOrTokens::deserialize(d).map(Self::from)
    }
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
        for bad in [
            "{}",
            "1",
            "null",
            r#"["a",1]"#,
            r#"[1,"a"]"#,
            r#"[[1],"a"]"#,
            "[-1]",
            "[[1.5]]",
        ] {
            assert!(serde_json::from_str::<Prompt>(bad).is_err(), "{bad}");
        }
        // As before: an empty array is an empty batch of strings.
        assert_eq!(
            serde_json::from_str::<Prompt>("[]").unwrap(),
            Prompt::Texts(vec![])
        );
    }
}

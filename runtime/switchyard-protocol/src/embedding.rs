//! `POST /v1/embeddings`.

use serde::{Deserialize, Serialize};

use crate::raw_extra::raw_extra_struct;
use crate::text_or_tokens::TextOrTokens;
use crate::{Extra, RawExtra, Usage};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: EmbeddingInput,
    #[serde(flatten)]
    pub extra: RawExtra,
}

raw_extra_struct!(
    EmbeddingRequest,
    "an embedding request object",
    required {
        model: String,
        input: EmbeddingInput
    },
    optional {}
);

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenBatches(Vec<Vec<u32>>),
}

impl<'de> Deserialize<'de> for EmbeddingInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match TextOrTokens::deserialize(d)? {
            TextOrTokens::Text(t) => Self::Text(t),
            TextOrTokens::Texts(t) => Self::Texts(t),
            TextOrTokens::Tokens(t) => Self::Tokens(t),
            TextOrTokens::TokenBatches(t) => Self::TokenBatches(t),
        })
    }
}

impl EmbeddingInput {
    /// One text per input item (token ids rendered as numbers).
    pub fn items(&self) -> Vec<String> {
        let ids = |v: &Vec<u32>| v.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
        match self {
            Self::Text(t) => vec![t.clone()],
            Self::Texts(ts) => ts.clone(),
            Self::Tokens(v) => vec![ids(v)],
            Self::TokenBatches(b) => b.iter().map(ids).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    pub object: String,
    pub data: Vec<EmbeddingData>,
    pub model: String,
    pub usage: Usage,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingData {
    pub object: String,
    pub index: u32,
    pub embedding: Vec<f32>,
}

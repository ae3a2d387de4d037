//! `POST /v1/embeddings`.

use serde::{Deserialize, Serialize};

use crate::{Extra, Usage};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: EmbeddingInput,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenBatches(Vec<Vec<u32>>),
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

//! `GET /v1/models`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    pub object: String,
    pub data: Vec<ModelCard>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub owned_by: String,
    /// A LoRA adapter's base model (as vLLM lists adapters); absent for base models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

impl ModelList {
    pub fn new(ids: impl IntoIterator<Item = String>) -> Self {
        Self {
            object: "list".to_owned(),
            data: ids
                .into_iter()
                .map(|id| ModelCard {
                    id,
                    object: "model".to_owned(),
                    created: 0,
                    owned_by: "switchyard".to_owned(),
                    parent: None,
                })
                .collect(),
        }
    }

    /// Appends adapter cards: `(adapter, base model)`.
    pub fn with_adapters(mut self, adapters: impl IntoIterator<Item = (String, String)>) -> Self {
        self.data
            .extend(adapters.into_iter().map(|(id, parent)| ModelCard {
                id,
                object: "model".to_owned(),
                created: 0,
                owned_by: "switchyard".to_owned(),
                parent: Some(parent),
            }));
        self
    }
}

//! `GET /v1/models`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// What the engine's own card adds (vLLM's `root` and `max_model_len`, …): clients size
    /// prompts by `max_model_len`, so the frontend passes it on rather than inventing a card.
    #[serde(flatten, default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
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
                    extra: Map::new(),
                })
                .collect(),
        }
    }

    /// Replaces the made-up card of each listed model with the engine's own where `card` has
    /// one (the id stays the name the frontend serves).
    pub fn with_engine_cards(mut self, card: impl Fn(&str) -> Option<ModelCard>) -> Self {
        for entry in &mut self.data {
            if let Some(mut engine) = card(&entry.id) {
                engine.id = std::mem::take(&mut entry.id);
                *entry = engine;
            }
        }
        self
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
                extra: Map::new(),
            }));
        self
    }
}

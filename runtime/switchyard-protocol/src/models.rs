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
                })
                .collect(),
        }
    }
}

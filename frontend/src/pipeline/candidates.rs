//! Stage 3 — candidates: the discovery snapshot's instances for the requested model.

use std::sync::Arc;

use switchyard_runtime::{Instance, Registry};

use crate::error::ApiError;

/// All instances of `model` (healthy or not); 404 if the model is unknown.
pub fn for_model(registry: &Registry, model: &str) -> Result<Arc<[Arc<Instance>]>, ApiError> {
    registry
        .topology()
        .model(model)
        .cloned()
        .ok_or_else(|| ApiError::model_not_found(model))
}

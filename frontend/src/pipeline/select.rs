//! Stage 5 — select: the model's policy ranks the routable instances.

use std::sync::Arc;

use switchyard_runtime::{Instance, RouteContext};

use super::preprocess::Prepared;
use crate::app::ModelRouting;

/// Indices into `routable`, best first; as many as the request may try (1 + retries).
pub fn rank(
    routing: &ModelRouting,
    prepared: &Prepared,
    routable: &[&Arc<Instance>],
    max_retries: u32,
) -> Vec<usize> {
    let ctx = RouteContext {
        session_key: prepared.session_key.as_deref(),
        block_hashes: &prepared.block_hashes,
        want: 1 + max_retries as usize,
    };
    routing.policy.rank(&ctx, routable)
}

//! Stage 4 — health filter: drop ejected and probe-failed instances.
//!
//! Panic policy: when every instance of a model is unhealthy the request fails fast with 503
//! and `Retry-After`, rather than being sent to instances known to be failing.

use std::sync::Arc;

use switchyard_runtime::clock::now_ns;
use switchyard_runtime::Instance;

use crate::error::ApiError;

pub fn routable<'a>(
    instances: &'a [Arc<Instance>],
    model: &str,
) -> Result<Vec<&'a Arc<Instance>>, ApiError> {
    let now = now_ns();
    let healthy: Vec<&Arc<Instance>> = instances
        .iter()
        .filter(|i| i.health.is_routable(now))
        .collect();
    if healthy.is_empty() {
        return Err(ApiError::unavailable(format!(
            "No healthy instance of `{model}` is available ({} known, all unhealthy).",
            instances.len()
        ))
        .with_code("no_healthy_instance"));
    }
    Ok(healthy)
}

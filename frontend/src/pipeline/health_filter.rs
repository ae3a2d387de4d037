//! Stage 4 — health filter: drop ejected, half-open (trial taken), probe- and canary-failed
//! instances; prefer healthy over degraded ones.
//!
//! Panic policy: when every instance of a model is unhealthy the request fails fast with 503
//! and `Retry-After`, rather than being sent to instances known to be failing.

use std::sync::Arc;

use switchyard_runtime::clock::now_ns;
use switchyard_runtime::health::HealthStatus;
use switchyard_runtime::Instance;

use crate::error::ApiError;

pub fn routable<'a>(
    instances: &'a [Arc<Instance>],
    model: &str,
) -> Result<Vec<&'a Arc<Instance>>, ApiError> {
    let now = now_ns();
    let mut healthy: Vec<&Arc<Instance>> = instances
        .iter()
        .filter(|i| i.health.is_routable(now) && !i.policy_says_unhealthy())
        .collect();
    if healthy.is_empty() {
        return Err(ApiError::unavailable(format!(
            "No healthy instance of `{model}` is available ({} known, all unhealthy).",
            instances.len()
        ))
        .with_code("no_healthy_instance"));
    }
    // Degraded instances (a recent stall) serve only when nothing better is left.
    let degraded = |i: &&Arc<Instance>| i.health.status(now) == HealthStatus::Degraded;
    if healthy.iter().any(degraded) && !healthy.iter().all(degraded) {
        healthy.retain(|i| !degraded(i));
    }
    Ok(healthy)
}

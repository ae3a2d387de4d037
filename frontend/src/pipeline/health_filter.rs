//! Stage 4 — health filter: drop ejected, half-open (trial taken), probe- and canary-failed
//! instances; prefer healthy over degraded ones.
//!
//! Panic policy (`overload.panic_policy`), for when every instance of a model is unhealthy:
//! `fail-fast` (the default) answers 503 `no_healthy_instance` with `Retry-After` rather than
//! sending traffic to instances known to be failing; `route-all` (Envoy's panic mode) routes
//! to every instance as if all were healthy, betting that the health signal is wrong (a bad
//! probe path, a correlated blip) rather than the workers.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchyard_runtime::clock::now_ns;
use switchyard_runtime::health::HealthStatus;
use switchyard_runtime::Instance;

use crate::error::ApiError;

/// What to do when no instance of a model is healthy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PanicPolicy {
    /// 503 with `Retry-After`.
    #[default]
    FailFast,
    /// Route to every instance, healthy or not.
    RouteAll,
}

/// The instances a request may be sent to.
#[derive(Debug)]
pub struct Routable<'a> {
    pub instances: Vec<&'a Arc<Instance>>,
    /// Every instance was unhealthy and `route-all` let them all through: dispatch must not
    /// ask their breakers for permission.
    pub panic: bool,
}

pub fn routable<'a>(
    instances: &'a [Arc<Instance>],
    model: &str,
    panic_policy: PanicPolicy,
) -> Result<Routable<'a>, ApiError> {
    let now = now_ns();
    let mut healthy: Vec<&Arc<Instance>> = instances
        .iter()
        .filter(|i| i.health.is_routable(now) && !i.policy_says_unhealthy())
        .collect();
    if healthy.is_empty() {
        if panic_policy == PanicPolicy::RouteAll && !instances.is_empty() {
            tracing::warn!(model, "every instance is unhealthy: routing to all (panic)");
            return Ok(Routable {
                instances: instances.iter().collect(),
                panic: true,
            });
        }
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
    Ok(Routable {
        instances: healthy,
        panic: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_runtime::health::HealthConfig;
    use switchyard_runtime::InstanceSpec;

    fn pool() -> Vec<Arc<Instance>> {
        ["a", "b"]
            .map(|id| Arc::new(Instance::new(InstanceSpec::new(id, "m", "http://x"), None)))
            .to_vec()
    }

    #[test]
    fn healthy_instances_pass_under_either_policy() {
        let p = pool();
        p[0].health.set_probe_ok(false);
        for policy in [PanicPolicy::FailFast, PanicPolicy::RouteAll] {
            let r = routable(&p, "m", policy).unwrap();
            assert_eq!(r.instances.len(), 1);
            assert_eq!(r.instances[0].id(), "b");
            assert!(!r.panic);
        }
    }

    #[test]
    fn with_every_instance_unhealthy_fail_fast_answers_503() {
        let p = pool();
        p[0].health.set_probe_ok(false);
        p[1].health
            .record_failure(now_ns(), &HealthConfig::default(), true);
        let e = routable(&p, "m", PanicPolicy::FailFast).unwrap_err();
        assert_eq!(e.status, 503);
        assert_eq!(e.code, Some("no_healthy_instance"));
    }

    #[test]
    fn with_every_instance_unhealthy_route_all_routes_to_all_of_them() {
        let p = pool();
        p[0].health.set_probe_ok(false);
        p[1].health
            .record_failure(now_ns(), &HealthConfig::default(), true);
        let r = routable(&p, "m", PanicPolicy::RouteAll).unwrap();
        assert!(r.panic);
        assert_eq!(r.instances.len(), 2);
        assert!(routable(&[], "m", PanicPolicy::RouteAll).is_err());
    }
}

//! Stage 4 — health filter: drop ejected, half-open (trial taken), probe- and canary-failed
//! instances; prefer healthy over degraded ones.
//!
//! Panic policy (`overload.panic_policy`), for when every instance of a model is unhealthy:
//! `fail-fast` (the default) answers 503 `no_healthy_instance` with `Retry-After` rather than
//! sending traffic to instances known to be failing; `route-all` (Envoy's panic mode) routes
//! to every instance as if all were healthy, betting that the health signal is wrong (a bad
//! probe path, a correlated blip) rather than the workers.

use std::sync::Arc;

use switchyard_runtime::clock::now_ns;
use switchyard_runtime::health::HealthStatus;
use switchyard_runtime::{Instance, Registry};

use crate::admission::PanicPolicy;
use crate::error::ApiError;

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
    let mut healthy: Vec<&Arc<Instance>> = instances.iter().filter(|i| i.routable(now)).collect();
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

/// Models with at least one routable instance, sorted: what `/v1/models` lists and what makes
/// `/health` ready. The same predicate as request routing, so a model whose every instance a
/// health-policy plugin took out is not advertised.
pub fn routable_models(registry: &Registry, now: u64) -> Vec<String> {
    let topology = registry.topology();
    let mut models: Vec<String> = topology
        .models()
        .filter(|(_, instances)| instances.iter().any(|i| i.routable(now)))
        .map(|(model, _)| model.clone())
        .collect();
    models.sort();
    models
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_runtime::health::HealthConfig;
    use switchyard_runtime::InstanceSpec;

    fn one_failure_ejects() -> HealthConfig {
        HealthConfig {
            failure_threshold: 1,
            ..HealthConfig::default()
        }
    }

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
            .record_failure(now_ns(), &one_failure_ejects(), true);
        let e = routable(&p, "m", PanicPolicy::FailFast).unwrap_err();
        assert_eq!(e.status, 503);
        assert_eq!(e.code, Some("no_healthy_instance"));
    }

    #[test]
    fn with_every_instance_unhealthy_route_all_routes_to_all_of_them() {
        let p = pool();
        p[0].health.set_probe_ok(false);
        p[1].health
            .record_failure(now_ns(), &one_failure_ejects(), true);
        let r = routable(&p, "m", PanicPolicy::RouteAll).unwrap();
        assert!(r.panic);
        assert_eq!(r.instances.len(), 2);
        assert!(routable(&[], "m", PanicPolicy::RouteAll).is_err());
    }

    #[test]
    fn a_health_policy_verdict_takes_a_model_off_the_routable_list() {
        let registry = Registry::default();
        for (id, model) in [("a", "m"), ("b", "m"), ("c", "other")] {
            registry.apply(switchyard_runtime::DiscoveryEvent::Upsert(Box::new(
                InstanceSpec::new(id, model, "http://x"),
            )));
        }
        let now = now_ns();
        assert_eq!(routable_models(&registry, now), ["m", "other"]);
        let all = registry.all();
        let of = |id: &str| all.iter().find(|i| i.id() == id).cloned().unwrap();
        // One instance of `m` out: `m` still has a routable one.
        of("a").set_policy_verdict(Some(false));
        assert_eq!(routable_models(&registry, now), ["m", "other"]);
        // Every instance of `m` out by the plugin's verdict, their breakers all closed.
        of("b").set_policy_verdict(Some(false));
        assert!(of("b").health.is_routable(now));
        assert_eq!(routable_models(&registry, now), ["other"]);
        of("a").set_policy_verdict(Some(true));
        assert_eq!(routable_models(&registry, now), ["m", "other"]);
    }
}

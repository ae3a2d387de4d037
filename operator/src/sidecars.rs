//! A WorkerPool's own sidecars (`spec.template.sidecars`): log shippers, auth proxies, model
//! downloaders. A pool author controls only what runs, not how privileged it is: every sidecar
//! gets the engine container's restricted security settings, no host ports, and a name that
//! cannot replace the engine or the KV bridge.

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, SeccompProfile, SecurityContext,
};
use switchyard_k8s::workerpool::WorkerPool;

use crate::{kv_bridge, manifests};

/// The restricted container settings every container the operator writes for a pool gets:
/// no privilege escalation, no capabilities, the runtime's default seccomp profile.
pub fn restricted() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }
}

/// The pool's sidecar containers, or a spec error naming the first bad one. CEL checks the
/// same rules at admission; this is the operator's own check for objects that bypassed it.
pub fn containers(pool: &WorkerPool) -> Result<Vec<Container>, String> {
    let mut out: Vec<Container> = Vec::new();
    for s in &pool.spec.template.sidecars {
        if s.name == manifests::CONTAINER || s.name == kv_bridge::CONTAINER {
            return Err(format!(
                "sidecar name `{}` is reserved for the operator's own container",
                s.name
            ));
        }
        if out.iter().any(|c| c.name == s.name) {
            return Err(format!("two sidecars are named `{}`", s.name));
        }
        let ports: Vec<ContainerPort> = s
            .ports
            .iter()
            .map(|p| ContainerPort {
                name: p.name.clone(),
                container_port: p.container_port,
                protocol: p.protocol.clone(),
                // Never a host port: a pool must not claim ports on the GPU node itself.
                ..ContainerPort::default()
            })
            .collect();
        out.push(Container {
            name: s.name.clone(),
            image: Some(s.image.clone()),
            image_pull_policy: s.image_pull_policy.clone(),
            command: (!s.command.is_empty()).then(|| s.command.clone()),
            args: (!s.args.is_empty()).then(|| s.args.clone()),
            env: (!s.env.is_empty()).then(|| s.env.clone()),
            ports: (!ports.is_empty()).then_some(ports),
            resources: s.resources.clone(),
            volume_mounts: (!s.volume_mounts.is_empty()).then(|| s.volume_mounts.clone()),
            security_context: Some(restricted()),
            ..Container::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pool(sidecars: serde_json::Value) -> WorkerPool {
        serde_json::from_value(
            json!({"apiVersion": "switchyard.dev/v1alpha1", "kind": "WorkerPool",
            "metadata": {"name": "p", "namespace": "team-a"},
            "spec": {"model": "m", "template": {"image": "i", "sidecars": sidecars}}}),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_sidecar_runs_restricted_without_host_ports_whatever_its_spec_says() {
        let p = pool(
            json!([{"name": "shipper", "image": "fluent-bit:3", "args": ["-c", "/c"],
            "ports": [{"containerPort": 2020, "hostPort": 2020, "name": "metrics"}],
            "securityContext": {"privileged": true}}]),
        );
        let c = containers(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].security_context, Some(restricted()));
        let ports = c[0].ports.clone().unwrap_or_default();
        assert_eq!(ports[0].container_port, 2020);
        assert_eq!(ports[0].host_port, None);
    }

    #[test]
    fn reserved_and_duplicate_names_are_spec_errors() {
        for name in ["engine", "kv-bridge"] {
            let err = containers(&pool(json!([{"name": name, "image": "x"}]))).unwrap_err();
            assert!(err.contains("reserved"), "{err}");
        }
        let twice = json!([{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]);
        assert!(containers(&pool(twice))
            .unwrap_err()
            .contains("two sidecars"));
    }
}

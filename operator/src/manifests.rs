//! The Deployment and headless Service a `WorkerPool` owns, as server-side-apply bodies.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, PodSpec, PodTemplateSpec, Probe, Service, ServicePort,
    ServiceSpec, TCPSocketAction, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use switchyard_k8s::labels;
use switchyard_k8s::{EngineKind, HealthCheck, WorkerPool};

use crate::kv_bridge;
use crate::pod_extras::{self, WorkerDefaults};
use crate::{Error, Result};

/// Name of the engine container.
pub const CONTAINER: &str = "engine";
/// Name of the engine's port on the pod and the Service.
pub const PORT_NAME: &str = "http";

/// The selector the Deployment, Service and scale subresource use.
pub fn selector_labels(pool: &WorkerPool) -> BTreeMap<String, String> {
    BTreeMap::from([(labels::POOL.to_string(), pool.name_any())])
}

/// `switchyard.dev/pool=<name>`, the scale subresource's `status.selector`.
pub fn selector_string(pool: &WorkerPool) -> String {
    format!("{}={}", labels::POOL, pool.name_any())
}

/// Labels on the Deployment, the Service and the pods.
pub fn common_labels(pool: &WorkerPool) -> BTreeMap<String, String> {
    let mut l = selector_labels(pool);
    l.insert(
        labels::MODEL.to_string(),
        labels::model_label_value(&pool.spec.model),
    );
    l.insert(
        labels::ENGINE.to_string(),
        pool.spec.engine.as_str().to_string(),
    );
    l.insert(
        labels::ROLE.to_string(),
        pool.spec.role.as_str().to_string(),
    );
    l.insert(
        labels::APP_NAME.to_string(),
        "switchyard-worker".to_string(),
    );
    l.insert(labels::APP_INSTANCE.to_string(), pool.name_any());
    l.insert(labels::APP_COMPONENT.to_string(), "worker".to_string());
    l.insert(
        labels::APP_MANAGED_BY.to_string(),
        labels::FIELD_MANAGER.to_string(),
    );
    l
}

fn owner(pool: &WorkerPool) -> Result<OwnerReference> {
    pool.controller_owner_ref(&())
        .ok_or(Error::MissingField("metadata.uid"))
}

fn meta(pool: &WorkerPool) -> Result<ObjectMeta> {
    Ok(ObjectMeta {
        name: Some(pool.name_any()),
        namespace: pool.namespace(),
        labels: Some(common_labels(pool)),
        owner_references: Some(vec![owner(pool)?]),
        ..ObjectMeta::default()
    })
}

/// The pool's Deployment; `defaults` are the operator-wide worker settings.
pub fn deployment(pool: &WorkerPool, defaults: &WorkerDefaults) -> Result<Deployment> {
    let spec = &pool.spec;
    let mut pod_labels = spec.template.pod_labels.clone();
    pod_labels.extend(common_labels(pool));
    let mut annotations = spec.template.pod_annotations.clone();
    annotations.insert(labels::MODEL_ANNOTATION.to_string(), spec.model.clone());
    let (volumes, mounts) = pod_extras::volumes(pool);
    let mut containers = vec![container(pool, mounts)];
    containers.extend(kv_bridge::sidecar(pool, defaults)?);
    containers.extend(crate::sidecars::containers(pool).map_err(Error::Spec)?);
    let pod = PodSpec {
        containers,
        node_selector: non_empty_map(&spec.template.node_selector),
        tolerations: non_empty_vec(&spec.template.tolerations),
        service_account_name: pod_extras::service_account(pool, defaults).map_err(Error::Spec)?,
        image_pull_secrets: pod_extras::image_pull_secrets(pool, defaults),
        affinity: spec.template.affinity.clone(),
        priority_class_name: spec.template.priority_class_name.clone(),
        runtime_class_name: spec.template.runtime_class_name.clone(),
        // Opt-in (engine images often need root); the container settings below always apply.
        security_context: spec.template.pod_security_context.clone(),
        volumes,
        // Engines drain in-flight streams; give them time before SIGKILL.
        termination_grace_period_seconds: Some(60),
        ..PodSpec::default()
    };
    Ok(Deployment {
        metadata: meta(pool)?,
        spec: Some(DeploymentSpec {
            replicas: Some(spec.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(pool)),
                ..LabelSelector::default()
            },
            // GPU capacity is usually exact: replace one pod at a time instead of surging.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_string()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(0)),
                    max_unavailable: Some(IntOrString::Int(1)),
                }),
            }),
            progress_deadline_seconds: Some(progress_deadline(&spec.health)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    })
}

fn container(pool: &WorkerPool, mounts: Option<Vec<VolumeMount>>) -> Container {
    let spec = &pool.spec;
    let t = &spec.template;
    let args = if t.args.is_empty() && spec.engine == EngineKind::Mocker {
        vec![
            "mocker".to_string(),
            "--listen".to_string(),
            format!("0.0.0.0:{}", spec.port),
            "--model".to_string(),
            spec.model.clone(),
        ]
    } else {
        kv_bridge::engine_args(
            pool,
            crate::api_key::args(pool, pod_extras::args(pool, t.args.clone())),
        )
    };
    let probes = probes(&spec.health);
    Container {
        name: CONTAINER.to_string(),
        image: Some(t.image.clone()),
        image_pull_policy: t.image_pull_policy.clone(),
        command: non_empty_vec(&t.command),
        args: non_empty_vec(&args),
        env: non_empty_vec(&pod_extras::env(pool)),
        resources: t.resources.clone(),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.to_string()),
            container_port: spec.port,
            protocol: Some("TCP".to_string()),
            ..ContainerPort::default()
        }]),
        startup_probe: Some(probes.startup),
        readiness_probe: Some(probes.readiness),
        liveness_probe: Some(probes.liveness),
        security_context: Some(crate::sidecars::restricted()),
        volume_mounts: mounts,
        ..Container::default()
    }
}

/// The engine container's three probes.
pub struct Probes {
    pub startup: Probe,
    pub readiness: Probe,
    pub liveness: Probe,
}

/// Startup covers model download and load (`health.startupSeconds`); readiness takes a busy or
/// failing engine out of the Service quickly; liveness only restarts an engine that is truly
/// stuck. A restart re-loads (often re-downloads) the model, so liveness is a TCP check by
/// default — a saturated vLLM answers `/health` slowly but still accepts connections — or a
/// lenient HTTP check of `health.livenessPath`, and tolerates two minutes of failures.
pub fn probes(health: &HealthCheck) -> Probes {
    let http = |path: &str| HTTPGetAction {
        path: Some(path.to_string()),
        port: IntOrString::String(PORT_NAME.to_string()),
        ..HTTPGetAction::default()
    };
    let port = || IntOrString::String(PORT_NAME.to_string());
    let startup = Probe {
        http_get: Some(http(&health.path)),
        period_seconds: Some(STARTUP_PERIOD_SECONDS),
        timeout_seconds: Some(health.timeout_seconds),
        failure_threshold: Some(startup_failures(health.startup_seconds)),
        ..Probe::default()
    };
    let readiness = Probe {
        http_get: Some(http(&health.path)),
        period_seconds: Some(5),
        timeout_seconds: Some(health.timeout_seconds),
        failure_threshold: Some(3),
        ..Probe::default()
    };
    let liveness = Probe {
        http_get: health.liveness_path.as_deref().map(http),
        tcp_socket: health.liveness_path.is_none().then(|| TCPSocketAction {
            port: port(),
            ..TCPSocketAction::default()
        }),
        period_seconds: Some(20),
        timeout_seconds: Some(health.timeout_seconds.max(LIVENESS_MIN_TIMEOUT_SECONDS)),
        failure_threshold: Some(6),
        ..Probe::default()
    };
    Probes {
        startup,
        readiness,
        liveness,
    }
}

/// Period of the startup probe.
const STARTUP_PERIOD_SECONDS: i32 = 10;
/// A liveness check waits at least this long for an answer.
const LIVENESS_MIN_TIMEOUT_SECONDS: i32 = 10;

/// Startup-probe failures that add up to `startup_seconds` (rounded up).
fn startup_failures(startup_seconds: i32) -> i32 {
    ((startup_seconds.saturating_add(STARTUP_PERIOD_SECONDS - 1)) / STARTUP_PERIOD_SECONDS).max(1)
}

/// The Deployment's `progressDeadlineSeconds`: longer than the startup allowance, or every
/// slow model load would be reported as a failed rollout (`ProgressDeadlineExceeded`).
pub fn progress_deadline(health: &HealthCheck) -> i32 {
    health
        .startup_seconds
        .saturating_add(PROGRESS_MARGIN_SECONDS)
}

/// How much longer than the startup allowance a rollout step may take.
const PROGRESS_MARGIN_SECONDS: i32 = 600;

/// The pool's headless Service: the frontend routes to each pod itself, so no ClusterIP; the
/// Service exists for its EndpointSlices.
pub fn service(pool: &WorkerPool) -> Result<Service> {
    Ok(Service {
        metadata: meta(pool)?,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            selector: Some(selector_labels(pool)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.to_string()),
                port: pool.spec.port,
                target_port: Some(IntOrString::String(PORT_NAME.to_string())),
                protocol: Some("TCP".to_string()),
                ..ServicePort::default()
            }]),
            publish_not_ready_addresses: Some(false),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

fn non_empty_vec<T: Clone>(v: &[T]) -> Option<Vec<T>> {
    (!v.is_empty()).then(|| v.to_vec())
}

fn non_empty_map(m: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then(|| m.clone())
}

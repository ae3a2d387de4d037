//! The Deployment and headless Service a `WorkerPool` owns, as server-side-apply bodies.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, HTTPGetAction, PodSpec,
    PodTemplateSpec, Probe, SeccompProfile, SecurityContext, Service, ServicePort, ServiceSpec,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use switchyard_k8s::labels;
use switchyard_k8s::{EngineKind, WorkerPool};

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

/// The pool's Deployment.
pub fn deployment(pool: &WorkerPool) -> Result<Deployment> {
    let spec = &pool.spec;
    let mut pod_labels = spec.template.pod_labels.clone();
    pod_labels.extend(common_labels(pool));
    let mut annotations = spec.template.pod_annotations.clone();
    annotations.insert(labels::MODEL_ANNOTATION.to_string(), spec.model.clone());
    let (volumes, mounts) = shm_volume(pool);
    let pod = PodSpec {
        containers: vec![container(pool, mounts)],
        node_selector: non_empty_map(&spec.template.node_selector),
        tolerations: non_empty_vec(&spec.template.tolerations),
        service_account_name: spec.template.service_account_name.clone(),
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
        t.args.clone()
    };
    let probe = |period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(spec.health.path.clone()),
            port: IntOrString::String(PORT_NAME.to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(spec.health.timeout_seconds),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    // Model download and load can take many minutes; the startup probe covers it so the
    // liveness probe can stay strict afterwards.
    let startup_failures = (spec.health.startup_seconds / 10).max(1);
    Container {
        name: CONTAINER.to_string(),
        image: Some(t.image.clone()),
        image_pull_policy: t.image_pull_policy.clone(),
        command: non_empty_vec(&t.command),
        args: non_empty_vec(&args),
        env: non_empty_vec(&t.env),
        resources: t.resources.clone(),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.to_string()),
            container_port: spec.port,
            protocol: Some("TCP".to_string()),
            ..ContainerPort::default()
        }]),
        startup_probe: Some(probe(10, startup_failures)),
        readiness_probe: Some(probe(5, 3)),
        liveness_probe: Some(probe(10, 6)),
        security_context: Some(SecurityContext {
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
        }),
        volume_mounts: mounts,
        ..Container::default()
    }
}

/// vLLM, SGLang and TRT-LLM use `/dev/shm` for tensor-parallel communication; the container
/// default (64 MiB) is too small.
fn shm_volume(pool: &WorkerPool) -> (Option<Vec<Volume>>, Option<Vec<VolumeMount>>) {
    if !matches!(
        pool.spec.engine,
        EngineKind::Vllm | EngineKind::Sglang | EngineKind::Trtllm
    ) {
        return (None, None);
    }
    let size = pool
        .spec
        .template
        .shm_size
        .clone()
        .unwrap_or_else(|| "8Gi".to_string());
    let volume = Volume {
        name: "dshm".to_string(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".to_string()),
            size_limit: Some(Quantity(size)),
        }),
        ..Volume::default()
    };
    let mount = VolumeMount {
        name: "dshm".to_string(),
        mount_path: "/dev/shm".to_string(),
        ..VolumeMount::default()
    };
    (Some(vec![volume]), Some(vec![mount]))
}

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

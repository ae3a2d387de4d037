//! The `kvEvents: {bridge: true}` sidecar: `switchyard kv-bridge` subscribes to the vLLM
//! engine's ZMQ KV-event publisher on localhost and republishes the events on NATS under the
//! instance id the frontends' Kubernetes discovery gives the pod (`<namespace>/<pool>/<pod>`),
//! so the KV index and the engine agree on who holds which prefix. See docs/events.md for the
//! bridge and vLLM's `--kv-events-config`.

use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, ObjectFieldSelector, ResourceRequirements, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use serde_json::json;
use switchyard_k8s::{KvEvents, WorkerPool};

use crate::pod_extras::WorkerDefaults;
use crate::{Error, Result};

/// Name of the sidecar container.
pub const CONTAINER: &str = "kv-bridge";
/// vLLM's ZMQ topic the bridge subscribes to.
const TOPIC: &str = "kv-events";

/// The pool's bridge settings, when it asks for the sidecar.
fn wanted(pool: &WorkerPool) -> Option<&KvEvents> {
    pool.spec.kv_events.as_ref().filter(|k| k.bridge)
}

/// vLLM's arguments plus what the bridge needs: the ZMQ publisher (`--kv-events-config`) and
/// the block size, unless the pool's args already set them.
pub fn engine_args(pool: &WorkerPool, mut args: Vec<String>) -> Vec<String> {
    let Some(kv) = wanted(pool) else {
        return args;
    };
    let has = |args: &[String], flag: &str| {
        args.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    if !has(&args, "--kv-events-config") {
        let config = json!({"enable_kv_cache_events": true, "publisher": "zmq",
            "endpoint": format!("tcp://*:{}", kv.zmq_port), "topic": TOPIC});
        args.push("--kv-events-config".to_string());
        args.push(config.to_string());
    }
    if !has(&args, "--block-size") {
        args.push("--block-size".to_string());
        args.push(kv.block_size.to_string());
    }
    args
}

/// The sidecar container, or `None` when the pool does not ask for it. A pool that asks but
/// has no NATS URL or image (its own or the operator's) is a spec error.
pub fn sidecar(pool: &WorkerPool, defaults: &WorkerDefaults) -> Result<Option<Container>> {
    let Some(kv) = wanted(pool) else {
        return Ok(None);
    };
    let nats = kv
        .nats_url
        .clone()
        .or_else(|| defaults.nats_url.clone())
        .ok_or_else(|| {
            Error::Spec(
                "kvEvents.bridge needs kvEvents.natsUrl (or the chart's nats.enabled)".to_string(),
            )
        })?;
    let image = kv
        .image
        .clone()
        .or_else(|| defaults.bridge_image.clone())
        .ok_or_else(|| Error::Spec("kvEvents.bridge needs kvEvents.image".to_string()))?;
    let field = |name: &str, path: &str| EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    };
    let args = vec![
        "kv-bridge".to_string(),
        "--zmq".to_string(),
        format!("tcp://127.0.0.1:{}", kv.zmq_port),
        "--topic".to_string(),
        TOPIC.to_string(),
        "--instance".to_string(),
        // The id the frontends' discovery gives this pod's instance.
        format!("$(POD_NAMESPACE)/{}/$(POD_NAME)", pool.name_any()),
        "--block-size".to_string(),
        kv.block_size.to_string(),
        "--nats".to_string(),
        nats,
    ];
    let quantity = |q: &str| Quantity(q.to_string());
    Ok(Some(Container {
        name: CONTAINER.to_string(),
        image: Some(image),
        args: Some(args),
        env: Some(vec![
            field("POD_NAME", "metadata.name"),
            field("POD_NAMESPACE", "metadata.namespace"),
        ]),
        resources: Some(ResourceRequirements {
            requests: Some(
                [
                    ("cpu".to_string(), quantity("50m")),
                    ("memory".to_string(), quantity("64Mi")),
                ]
                .into(),
            ),
            limits: Some([("memory".to_string(), quantity("256Mi"))].into()),
            ..ResourceRequirements::default()
        }),
        // The switchyard image runs as 65532 and writes nothing: the restricted profile.
        security_context: Some(SecurityContext {
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            ..crate::sidecars::restricted()
        }),
        ..Container::default()
    }))
}

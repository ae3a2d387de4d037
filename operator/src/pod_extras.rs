//! The parts of a worker pod that come from optional WorkerPool fields: pull secrets (the
//! pool's and the chart's), volumes (the pool's, the model cache, `/dev/shm`), the model cache's
//! `HF_HOME`, and the engine's `--served-model-name`. Kept apart from [`crate::manifests`] so
//! each rule is one small function with its reason.

use k8s_openapi::api::core::v1::{
    EmptyDirVolumeSource, EnvVar, HostPathVolumeSource, LocalObjectReference,
    PersistentVolumeClaimVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use switchyard_k8s::{EngineKind, WorkerPool};

/// Name of the model-cache volume.
pub const MODEL_CACHE_VOLUME: &str = "model-cache";

/// Settings the operator applies to every pool it reconciles (from its own environment).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerDefaults {
    /// Pull secrets every worker pod gets (the chart's `imagePullSecrets`).
    pub image_pull_secrets: Vec<String>,
    /// Image of the `kvEvents` bridge sidecar (the chart's frontend image).
    pub bridge_image: Option<String>,
    /// NATS URL the bridge sidecars publish to (the chart's NATS).
    pub nats_url: Option<String>,
    /// Service accounts a pool's `template.serviceAccountName` may name (the chart's
    /// `workerServiceAccounts`). Empty: none, the pods run as the namespace's `default`.
    pub service_accounts: Vec<String>,
}

/// Environment variable listing [`WorkerDefaults::service_accounts`], comma-separated.
pub const SERVICE_ACCOUNTS_ENV: &str = "SWITCHYARD_WORKER_SERVICE_ACCOUNTS";

/// Environment variable holding [`WorkerDefaults::bridge_image`].
pub const BRIDGE_IMAGE_ENV: &str = "SWITCHYARD_WORKER_BRIDGE_IMAGE";
/// Environment variable holding [`WorkerDefaults::nats_url`].
pub const NATS_ENV: &str = "SWITCHYARD_WORKER_NATS";

/// Environment variable listing [`WorkerDefaults::image_pull_secrets`], comma-separated.
pub const IMAGE_PULL_SECRETS_ENV: &str = "SWITCHYARD_WORKER_IMAGE_PULL_SECRETS";

impl WorkerDefaults {
    /// From [`IMAGE_PULL_SECRETS_ENV`]; names that are not DNS subdomains are skipped.
    pub fn from_env() -> Self {
        let names = std::env::var(IMAGE_PULL_SECRETS_ENV).unwrap_or_default();
        let non_empty = |key: &str| std::env::var(key).ok().filter(|v| !v.trim().is_empty());
        Self {
            image_pull_secrets: parse_names(&names),
            bridge_image: non_empty(BRIDGE_IMAGE_ENV),
            nats_url: non_empty(NATS_ENV),
            service_accounts: parse_names(&std::env::var(SERVICE_ACCOUNTS_ENV).unwrap_or_default()),
        }
    }
}

/// The pod's service account: whoever can write a WorkerPool must not borrow any account of
/// the namespace (e.g. a CI deployer's) for pods that run arbitrary images, so only names
/// the operator was given are accepted.
pub fn service_account(
    pool: &WorkerPool,
    defaults: &WorkerDefaults,
) -> Result<Option<String>, String> {
    match &pool.spec.template.service_account_name {
        None => Ok(None),
        Some(name) if defaults.service_accounts.iter().any(|a| a == name) => Ok(Some(name.clone())),
        Some(name) => Err(format!(
            "template.serviceAccountName {name:?} is not allowed; the operator accepts only the chart's workerServiceAccounts"
        )),
    }
}

fn parse_names(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|n| {
            !n.is_empty()
                && n.len() <= 253
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        })
        .map(str::to_owned)
        .collect()
}

/// The pool's pull secrets after the operator-wide ones, without duplicates.
pub fn image_pull_secrets(
    pool: &WorkerPool,
    defaults: &WorkerDefaults,
) -> Option<Vec<LocalObjectReference>> {
    let mut out: Vec<LocalObjectReference> = Vec::new();
    let names = defaults.image_pull_secrets.iter().cloned().chain(
        pool.spec
            .template
            .image_pull_secrets
            .iter()
            .map(|r| r.name.clone()),
    );
    for name in names {
        if !out.iter().any(|r| r.name == name) {
            out.push(LocalObjectReference { name });
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Pod volumes and the engine's mounts: `/dev/shm` for engines that need it, the model cache,
/// then the pool's own.
pub fn volumes(pool: &WorkerPool) -> (Option<Vec<Volume>>, Option<Vec<VolumeMount>>) {
    let t = &pool.spec.template;
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    if let Some((v, m)) = shm(pool) {
        volumes.push(v);
        mounts.push(m);
    }
    if let Some(cache) = &t.model_cache {
        volumes.push(Volume {
            name: MODEL_CACHE_VOLUME.to_string(),
            persistent_volume_claim: cache.persistent_volume_claim.as_ref().map(|claim| {
                PersistentVolumeClaimVolumeSource {
                    claim_name: claim.clone(),
                    read_only: None,
                }
            }),
            host_path: cache.host_path.as_ref().map(|path| HostPathVolumeSource {
                path: path.clone(),
                type_: Some("DirectoryOrCreate".to_string()),
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: MODEL_CACHE_VOLUME.to_string(),
            mount_path: cache.mount_path.clone(),
            ..VolumeMount::default()
        });
    }
    volumes.extend(t.volumes.iter().cloned());
    mounts.extend(t.volume_mounts.iter().cloned());
    (
        (!volumes.is_empty()).then_some(volumes),
        (!mounts.is_empty()).then_some(mounts),
    )
}

/// vLLM, SGLang and TRT-LLM use `/dev/shm` for tensor-parallel communication; the container
/// default (64 MiB) is too small.
fn shm(pool: &WorkerPool) -> Option<(Volume, VolumeMount)> {
    if !matches!(
        pool.spec.engine,
        EngineKind::Vllm | EngineKind::Sglang | EngineKind::Trtllm
    ) {
        return None;
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
    Some((volume, mount))
}

/// The pool's env, plus `HF_HOME` on the model cache (Hugging Face downloads land there, so a
/// restarted pod finds its weights) unless the pool sets `HF_HOME` itself.
pub fn env(pool: &WorkerPool) -> Vec<EnvVar> {
    let t = &pool.spec.template;
    let mut env = t.env.clone();
    if let Some(cache) = &t.model_cache {
        if !env.iter().any(|e| e.name == "HF_HOME") {
            env.push(EnvVar {
                name: "HF_HOME".to_string(),
                value: Some(cache.mount_path.clone()),
                ..EnvVar::default()
            });
        }
    }
    crate::api_key::env(pool, &mut env);
    env
}

/// vLLM and SGLang answer only for the name they serve, which defaults to the weights' path:
/// unless the pool's args already name it, they get `--served-model-name <spec.model>` so the
/// name clients send is the one the engine accepts.
pub fn args(pool: &WorkerPool, mut args: Vec<String>) -> Vec<String> {
    let names_it = args
        .iter()
        .any(|a| a == "--served-model-name" || a.starts_with("--served-model-name="));
    if matches!(pool.spec.engine, EngineKind::Vllm | EngineKind::Sglang)
        && !args.is_empty()
        && !names_it
    {
        args.push("--served-model-name".to_string());
        args.push(pool.spec.model.clone());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_secret_names_from_the_environment_are_checked() {
        assert_eq!(
            parse_names(" regcred, ,Bad_Name,ghcr.io-pull"),
            ["regcred", "ghcr.io-pull"]
        );
    }
}

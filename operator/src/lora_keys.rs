//! The worker API key a LoraAdapter load sends to a pool with `apiKey`: the operator reads
//! it, like the frontend, from a mounted directory of keys named `<namespace>.<frontendKey>`
//! (the chart mounts the frontend's worker-key Secret there; `--worker-api-keys-dir`), never
//! through the Secrets API (the operator has no RBAC for Secrets). Read at each use, so a
//! rotated Secret is picked up without a restart. Errors name the key, never its contents.

use std::path::Path;

use switchyard_k8s::WorkerPool;
use switchyard_runtime::spec_check::valid_key_name;
use switchyard_runtime::WorkerAuth;

/// Largest key file read, bytes.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The `Authorization` a load on `pool`'s instances needs: `None` for a pool without
/// `apiKey`, an error when the pool has one and `dir` does not hold it.
pub fn for_pool(dir: Option<&Path>, pool: &WorkerPool) -> Result<Option<WorkerAuth>, String> {
    let Some(key) = &pool.spec.api_key else {
        return Ok(None);
    };
    let namespace = pool.metadata.namespace.as_deref().unwrap_or_default();
    let name = format!("{namespace}.{}", key.frontend_name());
    let Some(dir) = dir else {
        return Err(format!(
            "the pool has an apiKey but the operator has no --worker-api-keys-dir for `{name}`"
        ));
    };
    if !valid_key_name(&name) {
        return Err(format!("`{name}` is not a worker key name"));
    }
    let path = dir.join(&name);
    let size = std::fs::metadata(&path)
        .map_err(|e| format!("worker API key `{name}`: {e}"))?
        .len();
    if size > MAX_KEY_FILE_BYTES {
        return Err(format!(
            "worker API key `{name}` is over {MAX_KEY_FILE_BYTES} bytes"
        ));
    }
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("worker API key `{name}`: {e}"))?;
    WorkerAuth::bearer(&text)
        .map(Some)
        .ok_or_else(|| format!("worker API key `{name}` holds no usable key"))
}

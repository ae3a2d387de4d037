//! Worker API keys by name (`worker_api_keys`, `worker_api_keys_dir`): the credentials a
//! discovered worker asks for with its spec's `api_key_name`.
//!
//! Discovery entries are untrusted and must never make the frontend read a file, so they carry
//! only a name; the files behind the names come from the operator's own configuration. On
//! Kubernetes the directory is a mounted Secret: each of its keys is a file named after it
//! (the `..data` links the kubelet adds are skipped as dotfiles).

use std::collections::BTreeMap;
use std::path::Path;

use switchyard_runtime::spec_check::valid_key_name;
use switchyard_runtime::WorkerAuth;

/// Largest key file read, bytes: a key is a short token, and a mounted directory may hold other
/// things.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Reads every named key: the `files` map, then each regular file in `dir`. A name in both is
/// an error (which one wins would be a guess), as is an unreadable, empty or oversized file.
/// Errors name the config key and the file, never the key's contents.
pub fn load(
    files: &BTreeMap<String, String>,
    dir: Option<&str>,
) -> Result<BTreeMap<String, WorkerAuth>, String> {
    let mut keys = BTreeMap::new();
    for (name, path) in files {
        if !valid_key_name(name) {
            return Err(format!(
                "worker_api_keys: `{name}` is not a key name ([A-Za-z0-9._-], no leading dot)"
            ));
        }
        let auth = read(Path::new(path)).map_err(|e| format!("worker_api_keys.{name}: {e}"))?;
        keys.insert(name.clone(), auth);
    }
    let Some(dir) = dir else {
        return Ok(keys);
    };
    let entries = std::fs::read_dir(dir).map_err(|e| format!("worker_api_keys_dir: {dir}: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("worker_api_keys_dir: {dir}: {e}"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        // Secret volumes link each key to `..data/KEY`; follow links, skip directories.
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        if !valid_key_name(&name) {
            return Err(format!(
                "worker_api_keys_dir: {dir}: `{name}` is not a key name ([A-Za-z0-9._-])"
            ));
        }
        if keys.contains_key(&name) {
            return Err(format!(
                "worker_api_keys_dir: `{name}` is also in worker_api_keys; name each key once"
            ));
        }
        let auth = read(&path).map_err(|e| format!("worker_api_keys_dir: {e}"))?;
        keys.insert(name, auth);
    }
    Ok(keys)
}

fn read(path: &Path) -> Result<WorkerAuth, String> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{shown}: {e}"))?
        .len();
    if size > MAX_KEY_FILE_BYTES {
        return Err(format!("{shown} is over {MAX_KEY_FILE_BYTES} bytes"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    WorkerAuth::bearer(&text).ok_or_else(|| {
        format!("{shown} holds no usable key (empty, or characters a header cannot carry)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        path.display().to_string()
    }

    #[test]
    fn a_mounted_secret_directory_gives_one_key_per_file() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        write(tmp.path(), "llama", "key-one\n");
        write(tmp.path(), "..data-hidden", "ignored");
        std::fs::create_dir(tmp.path().join("..2026_12_07")).unwrap_or_else(|e| panic!("{e}"));
        let dir = tmp.path().display().to_string();
        let keys = load(&BTreeMap::new(), Some(&dir)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["llama"]);
        assert_eq!(
            keys["llama"].header(),
            &http::HeaderValue::from_static("Bearer key-one")
        );
    }

    #[test]
    fn bad_files_and_duplicate_names_are_errors_naming_the_key_not_the_secret() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let empty = write(tmp.path(), "empty", "  \n");
        let err = load(&BTreeMap::from([("e".into(), empty)]), None).unwrap_err();
        assert!(
            err.contains("worker_api_keys.e") && err.contains("no usable key"),
            "{err}"
        );

        let tmp2 = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = write(tmp2.path(), "dup", "secret-value");
        let dir = tmp2.path().display().to_string();
        let err = load(&BTreeMap::from([("dup".into(), file)]), Some(&dir)).unwrap_err();
        assert!(err.contains("`dup` is also in worker_api_keys"), "{err}");
        assert!(!err.contains("secret-value"), "{err}");

        let err = load(&BTreeMap::from([("../x".into(), "/x".into())]), None).unwrap_err();
        assert!(err.contains("not a key name"), "{err}");
    }
}

//! The etcd key layout for instances and LoRA adapters:
//!
//! ```text
//! <prefix><model>/<id>                 →  InstanceSpec as JSON  (prefix defaults to /switchyard/instances/)
//! <prefix><model>/adapters/<adapter>   →  AdapterSpec as JSON   ({name, base_model, source, on_demand?})
//! ```
//!
//! An adapter lives under its base model's per-model prefix, so one list and one watch of the
//! prefix see both; its three segments can never be read as an instance key (two segments).
//!
//! e.g. `/switchyard/instances/meta-llama%2FLlama-3.1-8B/worker-0`. Model and id are escaped
//! (`%` → `%25`, `/` → `%2F`) so a model name such as `org/name` stays one path segment: a
//! watcher can then take the id from a deleted key's last segment, and `<prefix><model>/` is a
//! per-model prefix.

/// Default key prefix for instances.
pub const DEFAULT_PREFIX: &str = "/switchyard/instances/";

/// The key an instance registers under.
pub fn instance_key(prefix: &str, model: &str, id: &str) -> String {
    format!("{prefix}{}/{}", escape(model), escape(id))
}

/// The middle segment of an adapter key.
pub const ADAPTERS_SEGMENT: &str = "adapters";

/// The key a LoRA adapter of `base_model` is declared under.
pub fn adapter_key(prefix: &str, base_model: &str, name: &str) -> String {
    format!(
        "{prefix}{}/{ADAPTERS_SEGMENT}/{}",
        escape(base_model),
        escape(name)
    )
}

/// `(base model, adapter name)` of an adapter key under `prefix`, or None.
pub fn adapter_from_key(prefix: &str, key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix(prefix)?;
    let (model, rest) = rest.split_once('/')?;
    let name = rest.strip_prefix(ADAPTERS_SEGMENT)?.strip_prefix('/')?;
    if model.is_empty() || name.is_empty() || name.contains('/') {
        return None;
    }
    Some((unescape(model), unescape(name)))
}

/// The instance id encoded in a key under `prefix` (None if the key is not an instance key).
pub fn id_from_key(prefix: &str, key: &str) -> Option<String> {
    let rest = key.strip_prefix(prefix)?;
    let (model, id) = rest.split_once('/')?;
    if model.is_empty() || id.is_empty() || id.contains('/') {
        return None;
    }
    Some(unescape(id))
}

fn escape(s: &str) -> String {
    s.replace('%', "%25").replace('/', "%2F")
}

/// Decodes in one left-to-right pass so `%252F` is `%2F`, not `/`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(r) = tail.strip_prefix("%2F") {
            out.push('/');
            rest = r;
        } else if let Some(r) = tail.strip_prefix("%25") {
            out.push('%');
            rest = r;
        } else {
            out.push('%');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_ids_with_awkward_characters() {
        let k = instance_key(DEFAULT_PREFIX, "org/model", "w/1%2F");
        assert_eq!(k, "/switchyard/instances/org%2Fmodel/w%2F1%252F");
        assert_eq!(id_from_key(DEFAULT_PREFIX, &k).as_deref(), Some("w/1%2F"));
    }

    #[test]
    fn adapter_keys_round_trip_and_are_never_instance_keys() {
        let k = adapter_key(DEFAULT_PREFIX, "org/llama", "sql/v2");
        assert_eq!(k, "/switchyard/instances/org%2Fllama/adapters/sql%2Fv2");
        assert_eq!(
            adapter_from_key(DEFAULT_PREFIX, &k),
            Some(("org/llama".to_owned(), "sql/v2".to_owned()))
        );
        assert_eq!(id_from_key(DEFAULT_PREFIX, &k), None);
        let instance = instance_key(DEFAULT_PREFIX, "org/llama", "adapters");
        assert_eq!(adapter_from_key(DEFAULT_PREFIX, &instance), None);
        assert_eq!(
            adapter_from_key(DEFAULT_PREFIX, "/switchyard/instances/m/adapters/"),
            None
        );
    }

    #[test]
    fn foreign_keys_are_not_instances() {
        assert_eq!(id_from_key(DEFAULT_PREFIX, "/other/m/i"), None);
        assert_eq!(id_from_key(DEFAULT_PREFIX, "/switchyard/instances/m"), None);
        assert_eq!(
            id_from_key(DEFAULT_PREFIX, "/switchyard/instances/m/a/b"),
            None
        );
    }
}

//! LoRA adapters declared in etcd (`<prefix><base model>/adapters/<name>`, see [`crate::keys`]).
//! Discovery keeps the valid entries by key and reports the whole set as one
//! `DiscoveryEvent::Adapters` whenever it changes — including across reconnects, so an outage
//! never drops or duplicates adapters.

use std::collections::BTreeMap;

use etcd_client::KeyValue;
use switchyard_runtime::lora::{check_adapter, AdapterSpec};
use switchyard_runtime::spec_check::{Reason, Rejection};

use crate::keys::adapter_from_key;

/// The adapter entries seen in one list + watch session, by key.
#[derive(Debug, Default)]
pub struct AdapterKeys {
    by_key: BTreeMap<Vec<u8>, AdapterSpec>,
}

impl AdapterKeys {
    /// Whether `key` is an adapter key (and so not an instance key).
    pub fn is_adapter_key(prefix: &str, key: &[u8]) -> bool {
        std::str::from_utf8(key).is_ok_and(|k| adapter_from_key(prefix, k).is_some())
    }

    /// A put: the entry replaces what the key held, or — when invalid — removes it (what the
    /// key declared before no longer stands) and says why.
    pub fn put(&mut self, prefix: &str, kv: &KeyValue) -> Result<(), Reason> {
        match parse(prefix, kv) {
            Ok(spec) => {
                self.by_key.insert(kv.key().to_vec(), spec);
                Ok(())
            }
            Err(rejection) => {
                self.by_key.remove(kv.key());
                let key = String::from_utf8_lossy(&kv.key()[..kv.key().len().min(256)]);
                tracing::warn!(key = ?key, reason = rejection.reason.as_str(), error = %rejection.message, "ignoring invalid adapter entry");
                Err(rejection.reason)
            }
        }
    }

    pub fn delete(&mut self, key: &[u8]) {
        self.by_key.remove(key);
    }

    /// The current set, in key order.
    pub fn list(&self) -> Vec<AdapterSpec> {
        self.by_key.values().cloned().collect()
    }
}

/// The entry's spec: JSON with no unknown keys, whose name and base model are those its key
/// names (so a key cannot declare another model's adapter), passing [`check_adapter`].
fn parse(prefix: &str, kv: &KeyValue) -> Result<AdapterSpec, Rejection> {
    let bad = |m: String| Rejection::new(Reason::Adapter, m);
    let (base, name) = std::str::from_utf8(kv.key())
        .ok()
        .and_then(|k| adapter_from_key(prefix, k))
        .ok_or_else(|| bad("not an adapter key".into()))?;
    let spec: AdapterSpec = serde_json::from_slice(kv.value())
        .map_err(|e| Rejection::new(Reason::Parse, format!("adapter entry: {e}")))?;
    check_adapter(&spec)?;
    if spec.name != name || spec.base_model != base {
        // The key's parts are not echoed: they passed no check.
        return Err(bad(format!(
            "entry declares `{}` of `{}`, which is not what its key names",
            spec.name, spec.base_model
        )));
    }
    Ok(spec)
}

//! Top-level edits of a JSON request body that keep every other value's exact text (raw JSON
//! values are moved, never re-encoded: numbers beyond `f64` and unknown fields survive).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::value::RawValue;

/// A request body as its top-level keys and their raw values.
pub struct Fields(BTreeMap<String, Box<RawValue>>);

impl Fields {
    /// `None` when `raw` is not a JSON object (the pipeline parsed it as one already).
    pub fn parse(raw: &[u8]) -> Option<Self> {
        serde_json::from_slice(raw).ok().map(Self)
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn remove(&mut self, key: &str) {
        self.0.remove(key);
    }

    /// Sets `key` to `value` serialized (replacing any value it had).
    pub fn set(&mut self, key: &str, value: impl serde::Serialize) -> Option<()> {
        let raw = serde_json::value::to_raw_value(&value).ok()?;
        self.0.insert(key.to_owned(), raw);
        Some(())
    }

    /// Sets `key` to a raw JSON value as it is.
    pub fn set_raw(&mut self, key: &str, value: Box<RawValue>) {
        self.0.insert(key.to_owned(), value);
    }

    pub fn to_bytes(&self) -> Option<Bytes> {
        serde_json::to_vec(&self.0).ok().map(Bytes::from)
    }
}

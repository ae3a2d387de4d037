//! The `tenants:` schema: who may call, with which key, which models, and at what rate.
//!
//! The list comes from the main YAML (`tenants:`, fixed for the process's life) or from a
//! file of its own (`tenants_file:`, `--tenants FILE`, `SWITCHYARD_TENANTS`), which is
//! reloaded when it changes. Keys are never stored: `key_sha256` is the hex digest, and
//! `key_file` names a file holding the key itself (a mounted Secret), hashed when read.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::glob;

/// One tenant as configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    /// Appears in metrics, logs and explain output; never the key.
    pub id: String,
    /// Lower-case hex sha256 of the key.
    #[serde(default)]
    pub key_sha256: Option<String>,
    /// A file holding the key itself (trailing whitespace ignored).
    #[serde(default)]
    pub key_file: Option<String>,
    /// Model globs (`*` any run, `?` one character); empty = every model.
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub priority: Priority,
    /// Share within its priority band.
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub limits: TenantLimits,
    /// How long this tenant's requests may wait for room (flow control), milliseconds;
    /// default `flow_control.max_wait_ms`.
    #[serde(default)]
    pub queue_deadline_ms: Option<u64>,
    /// TTFT target of this tenant's requests, ms (predicted-TTFT routing, docs/routing.md).
    #[serde(default)]
    pub ttft_slo_ms: Option<f64>,
}

fn one() -> u32 {
    1
}

/// Priority band (flow control); a request may lower its own but never raise it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

/// Per-tenant limits; an absent limit is not enforced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantLimits {
    /// Sustained request rate (token bucket refill).
    pub requests_per_second: Option<f64>,
    /// Requests that may arrive at once (bucket size); default: the rate rounded up, at least 1.
    pub burst: Option<u32>,
    /// Prompt + completion tokens per minute, as the engines report them.
    pub tokens_per_minute: Option<u64>,
    /// Requests of this tenant in flight at once (streams until their last byte).
    pub max_concurrency: Option<u32>,
}

/// A tenants file in its mapping shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wrapped {
    tenants: Vec<TenantSpec>,
}

/// Parses a tenants file's text: the bare list, or a mapping with a `tenants:` key. Each
/// shape is parsed strictly so the error names the offending key.
pub fn parse_file(text: &str) -> Result<Vec<TenantSpec>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('-') || trimmed.starts_with('[') {
        serde_yaml::from_str::<Vec<TenantSpec>>(text).map_err(|e| e.to_string())
    } else {
        serde_yaml::from_str::<Wrapped>(text)
            .map(|w| w.tenants)
            .map_err(|e| e.to_string())
    }
}

impl TenantSpec {
    /// Checks the entry and returns its key digest (reading `key_file` if given). `key` is
    /// the entry's config path for messages.
    pub fn validate(&self, key: &str) -> Result<[u8; 32], String> {
        if self.id.is_empty()
            || self.id.len() > 64
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(format!(
                "{key}.id: `{}` must be 1-64 characters of [A-Za-z0-9._-] (it is a metric label)",
                self.id
            ));
        }
        for (i, pattern) in self.models.iter().enumerate() {
            glob::validate(pattern).map_err(|m| format!("{key}.models[{i}]: {m}"))?;
        }
        if self.weight == 0 {
            return Err(format!("{key}.weight: must be at least 1"));
        }
        self.limits.validate(&format!("{key}.limits"))?;
        if let Some(ms) = self.ttft_slo_ms {
            switchyard_runtime::policy::ttft::check_slo_ms(ms)
                .map_err(|m| format!("{key}.ttft_slo_ms: {m}"))?;
        }
        match (&self.key_sha256, &self.key_file) {
            (Some(hex), None) => {
                parse_hex_digest(hex).ok_or_else(|| format!("{key}.key_sha256: not 64 hex digits"))
            }
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{key}.key_file: {path}: {e}"))?;
                let secret = text.trim_end();
                if secret.is_empty() {
                    return Err(format!("{key}.key_file: {path} is empty"));
                }
                Ok(digest(secret.as_bytes()))
            }
            _ => Err(format!(
                "{key}: exactly one of `key_sha256` and `key_file` is required"
            )),
        }
    }
}

impl TenantLimits {
    fn validate(&self, key: &str) -> Result<(), String> {
        if let Some(rate) = self.requests_per_second {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!(
                    "{key}.requests_per_second: must be a positive number"
                ));
            }
        }
        if self.burst == Some(0) {
            return Err(format!("{key}.burst: must be at least 1"));
        }
        if self.burst.is_some() && self.requests_per_second.is_none() {
            return Err(format!("{key}.burst: needs requests_per_second"));
        }
        if self.tokens_per_minute == Some(0) {
            return Err(format!("{key}.tokens_per_minute: must be at least 1"));
        }
        if self.max_concurrency == Some(0) {
            return Err(format!("{key}.max_concurrency: must be at least 1"));
        }
        Ok(())
    }

    /// The request bucket's size.
    pub fn burst_or_default(&self) -> Option<f64> {
        let rate = self.requests_per_second?;
        Some(match self.burst {
            Some(b) => f64::from(b),
            None => rate.ceil().max(1.0),
        })
    }
}

/// sha256 of `bytes`.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn parse_hex_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_DIGEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn parses_both_file_shapes_and_names_bad_keys() {
        let list = format!("- id: a\n  key_sha256: {TEST_DIGEST}\n");
        assert_eq!(parse_file(&list).unwrap()[0].id, "a");
        let wrapped = format!("tenants:\n  - id: b\n    key_sha256: {TEST_DIGEST}\n");
        assert_eq!(parse_file(&wrapped).unwrap()[0].id, "b");
        let typo = format!("- id: a\n  key_sha256: {TEST_DIGEST}\n  limts: {{}}\n");
        let err = parse_file(&typo).unwrap_err();
        assert!(err.contains("limts"), "{err}");
    }

    #[test]
    fn validation_names_the_key_and_hashes_key_files() {
        let spec: TenantSpec =
            serde_yaml::from_str(&format!("id: a\nkey_sha256: {TEST_DIGEST}\n")).unwrap();
        // sha256("test")
        assert_eq!(spec.validate("tenants[0]").unwrap(), digest(b"test"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "test\n").unwrap();
        let spec: TenantSpec =
            serde_yaml::from_str(&format!("id: a\nkey_file: {}\n", path.display())).unwrap();
        assert_eq!(spec.validate("t").unwrap(), digest(b"test"));

        let both: TenantSpec =
            serde_yaml::from_str(&format!("id: a\nkey_sha256: {TEST_DIGEST}\nkey_file: /x\n"))
                .unwrap();
        assert!(both.validate("t").unwrap_err().contains("exactly one"));
        let bad_id: TenantSpec =
            serde_yaml::from_str(&format!("id: 'a b'\nkey_sha256: {TEST_DIGEST}\n")).unwrap();
        assert!(bad_id.validate("t").unwrap_err().contains("t.id"));
        let bad_rate: TenantSpec = serde_yaml::from_str(&format!(
            "id: a\nkey_sha256: {TEST_DIGEST}\nlimits: {{requests_per_second: -1}}\n"
        ))
        .unwrap();
        let err = bad_rate.validate("t").unwrap_err();
        assert!(err.contains("t.limits.requests_per_second"), "{err}");
    }
}

//! The request being routed, as the host holds it: every field of both WIT versions. A 0.1.0
//! plugin sees the fields its `request` record has; a 0.2.0 plugin sees them all (see
//! `wit/v0.2/plugin.wit` for where each comes from and when it is 0).
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};

/// Which part of a request a decision places (WIT 0.2 `stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// The whole request on one instance (no disaggregation).
    #[default]
    Both,
    /// The prefill half of a disaggregated request.
    Prefill,
    /// The decode half of a disaggregated request.
    Decode,
}

/// A tenant's priority band in flow control (WIT 0.2 `priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Priority {
    /// Served after every other band.
    Low,
    /// The default band.
    #[default]
    Normal,
    /// Served before every other band.
    High,
}

/// The request being routed, numeric only. Fields added in 0.2.0 default when a recorded
/// 0.1 trace is read back (`#[serde(default)]`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Index of the requested model in `topology.models`.
    pub model_index: u32,
    /// Number of prompt blocks (prefix-hash blocks) in the request.
    pub prompt_blocks: u32,
    /// Rough prompt length in tokens.
    pub prompt_tokens: u32,
    /// `max_tokens` asked for by the client (0 if unset).
    pub max_tokens: u32,
    /// Hash of the session/user key, for sticky routing.
    pub session_hash: Option<u64>,
    /// Hash of the first prompt block (0 for an empty prompt).
    pub prefix_hash: u64,
    /// Whether the client asked for a streamed response.
    pub streaming: bool,
    /// Which part of the request this decision places (0.2.0).
    #[serde(default)]
    pub stage: Stage,
    /// The tenant's priority band (0.2.0).
    #[serde(default)]
    pub priority: Priority,
    /// The tenant's share within its band, at least 1 (0.2.0).
    #[serde(default = "one")]
    pub tenant_weight: u32,
    /// The request's deadline in milliseconds, 0 for none (0.2.0).
    #[serde(default)]
    pub deadline_ms: u32,
}

fn one() -> u32 {
    1
}

impl Default for Request {
    fn default() -> Self {
        Self {
            model_index: 0,
            prompt_blocks: 0,
            prompt_tokens: 0,
            max_tokens: 0,
            session_hash: None,
            prefix_hash: 0,
            streaming: false,
            stage: Stage::Both,
            priority: Priority::Normal,
            tenant_weight: 1,
            deadline_ms: 0,
        }
    }
}

impl From<&Request> for crate::bindings::types::Request {
    fn from(r: &Request) -> Self {
        Self {
            model_index: r.model_index,
            prompt_blocks: r.prompt_blocks,
            prompt_tokens: r.prompt_tokens,
            max_tokens: r.max_tokens,
            session_hash: r.session_hash,
            prefix_hash: r.prefix_hash,
            streaming: r.streaming,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_0_1_plugin_trace_request_reads_with_the_0_2_defaults() {
        let json = r#"{"model_index":1,"prompt_blocks":2,"prompt_tokens":3,"max_tokens":4,
            "session_hash":null,"prefix_hash":5,"streaming":true}"#;
        let r: Request = serde_json::from_str(json).unwrap();
        assert_eq!(
            r,
            Request {
                model_index: 1,
                prompt_blocks: 2,
                prompt_tokens: 3,
                max_tokens: 4,
                prefix_hash: 5,
                streaming: true,
                ..Request::default()
            }
        );
        assert_eq!(
            (r.stage, r.priority, r.tenant_weight),
            (Stage::Both, Priority::Normal, 1)
        );
    }
}

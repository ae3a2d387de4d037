//! The request being routed, as plain Rust (see the WIT for where each field comes from).

/// Which part of a request the decision places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The whole request on one instance.
    Both,
    /// The prefill half of a disaggregated request.
    Prefill,
    /// The decode half of a disaggregated request.
    Decode,
}

/// The request's priority band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    Low,
    Normal,
    High,
}

/// The WIT `request` record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    pub model_index: u32,
    pub prompt_blocks: u32,
    pub prompt_tokens: u32,
    pub max_tokens: u32,
    pub session_hash: Option<u64>,
    pub prefix_hash: u64,
    pub streaming: bool,
    pub stage: Stage,
    pub priority: Priority,
    pub tenant_weight: u32,
    pub deadline_ms: u32,
}

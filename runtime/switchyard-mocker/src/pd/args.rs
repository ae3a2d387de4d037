//! The mocker's disaggregation flags.

/// The part a mocker plays in disaggregated serving.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    /// Serves whole requests; vLLM-protocol fields are still honoured (like a vLLM engine
    /// with `kv_role: kv_both`); SGLang bootstrap fields are ignored.
    #[default]
    Both,
    /// SGLang: a request with a `bootstrap_room` is prefilled and its KV held for the decode
    /// side of that room.
    Prefill,
    /// SGLang: a request with a `bootstrap_room` waits for that room's prefill and pulls its
    /// KV from `bootstrap_host:bootstrap_port` before decoding.
    Decode,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Both => "both",
            Self::Prefill => "prefill",
            Self::Decode => "decode",
        }
    }
}

/// What a decode mocker does when the KV it was told to pull is not there (wrong or expired
/// handle, prefill gone): vLLM's `kv_load_failure_policy` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LoadFailurePolicy {
    /// Answer 500 with an OpenAI error naming the transfer failure.
    #[default]
    Fail,
    /// Compute the prompt locally instead (full prefill time).
    Recompute,
}

/// Largest transfer window / per-block transfer time (one hour, in ms).
const MAX_MS: f64 = 3_600_000.0;

#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct PdArgs {
    /// Role in disaggregated serving (see docs/disaggregation.md).
    #[arg(long, value_enum, default_value_t = Role::Both)]
    pub role: Role,

    /// Time to pull one KV block from the prefill instance, milliseconds (the decode side
    /// pays it per block it receives).
    #[arg(long = "kv-transfer-ms-per-block", default_value_t = 0.0)]
    pub kv_transfer_ms_per_block: f64,

    /// How long a prefill keeps its blocks for the decode side to pull, milliseconds (vLLM's
    /// NIXL connector waits `VLLM_NIXL_ABORT_REQUEST_TIMEOUT`, 480 s by default); also how
    /// long a decode waits for its SGLang room.
    #[arg(long = "kv-transfer-window-ms", default_value_t = 480_000)]
    pub kv_transfer_window_ms: u64,

    /// What a decode does when the KV to pull is not there.
    #[arg(long = "kv-load-failure-policy", value_enum, default_value_t = LoadFailurePolicy::Fail)]
    pub kv_load_failure_policy: LoadFailurePolicy,

    /// Prefills run one at a time and hold up every running sequence's next token while they
    /// compute, as a GPU's forward pass does without chunked prefill: long prompts then
    /// disturb the inter-token latency of everything decoding on the same instance.
    #[arg(long = "prefill-interference", default_value_t = false)]
    pub prefill_interference: bool,
}

impl Default for PdArgs {
    fn default() -> Self {
        Self {
            role: Role::Both,
            kv_transfer_ms_per_block: 0.0,
            kv_transfer_window_ms: 480_000,
            kv_load_failure_policy: LoadFailurePolicy::Fail,
            prefill_interference: false,
        }
    }
}

impl PdArgs {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=MAX_MS).contains(&self.kv_transfer_ms_per_block) {
            return Err(format!(
                "--kv-transfer-ms-per-block must be between 0 and {MAX_MS}"
            ));
        }
        if self.kv_transfer_window_ms == 0 || self.kv_transfer_window_ms as f64 > MAX_MS {
            return Err(format!(
                "--kv-transfer-window-ms must be between 1 and {MAX_MS}"
            ));
        }
        Ok(())
    }
}

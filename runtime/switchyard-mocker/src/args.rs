//! Command-line flags of `switchyard mocker` (and of the in-process mockers `switchyard demo`
//! starts). Every flag has a default, and [`MockerArgs::default`] equals what clap produces
//! for an empty command line.

use std::net::SocketAddr;

use crate::{MockerError, Result};

/// Largest accepted `--ttft-ms` / `--itl-ms`: one hour.
const MAX_DELAY_MS: f64 = 3_600_000.0;

/// A simulated GPU worker: OpenAI-compatible, deterministic text, a timing model driven by a
/// paged KV cache and a bounded batch, and fault knobs for testing routers.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct MockerArgs {
    /// Address to listen on (the caller binds it and passes the listener to `run`).
    #[arg(
        long,
        default_value = "127.0.0.1:8100",
        env = "SWITCHYARD_MOCKER_LISTEN"
    )]
    pub listen: SocketAddr,

    /// Model name served; requests for any other model get 404.
    #[arg(long, default_value = "mock-model")]
    pub model: String,

    /// Prefill time in milliseconds per prompt block that is not in the KV cache (at least one
    /// block is always charged): TTFT = ttft_ms * max(1, uncached_blocks). 0 = no delay.
    #[arg(long = "ttft-ms", default_value_t = 0.0)]
    pub ttft_ms: f64,

    /// Inter-token latency in milliseconds with one running sequence. It grows with the batch:
    /// ITL = itl_ms * (1 + (running - 1) / max_running). 0 = no delay.
    #[arg(long = "itl-ms", default_value_t = 0.0)]
    pub itl_ms: f64,

    /// Sequences generating at the same time; further requests wait in a FIFO queue.
    #[arg(long = "max-running", default_value_t = 64)]
    pub max_running: usize,

    /// Capacity of the paged KV cache, in blocks.
    #[arg(long = "kv-blocks", default_value_t = 16384)]
    pub kv_blocks: usize,

    /// Tokens per KV block (one token is approximated as 4 bytes of prompt text unless
    /// `--tokenizer` is given).
    #[arg(long = "block-size", default_value_t = 16)]
    pub block_size: usize,

    /// A Hugging Face `tokenizer.json`: prompts are tokenized and KV blocks hashed over token
    /// ids, exactly as a frontend configured with the same file (`tokenizer:`) hashes them;
    /// usage counts real tokens. Without it, blocks are bytes of the rendered prompt.
    #[arg(long, env = "SWITCHYARD_MOCKER_TOKENIZER", value_name = "PATH")]
    pub tokenizer: Option<String>,

    /// Fraction of generation requests (0..=1) answered with 500 and an OpenAI error body.
    #[arg(long = "fail-rate", default_value_t = 0.0)]
    pub fail_rate: f64,

    /// Fraction of generation requests (0..=1) that never answer: the connection is held open
    /// until the client goes away (or the mocker shuts down).
    #[arg(long = "hang-rate", default_value_t = 0.0)]
    pub hang_rate: f64,

    /// Exit the whole process abruptly (exit code 1) once this many tokens have been generated
    /// in total, shortly after the last one was sent: a worker crashing mid-stream.
    #[arg(long = "die-after-tokens")]
    pub die_after_tokens: Option<u64>,

    /// Every generation stops producing after this many tokens of its own but keeps its
    /// connection open (and `/health` stays 200): a stalled stream, not a dead worker.
    #[arg(long = "stall-after-tokens")]
    pub stall_after_tokens: Option<u64>,

    /// While a stream is stalled (`--stall-after-tokens`), send an SSE comment
    /// (`: keep-alive`) every this many milliseconds: a stall hidden behind keep-alives.
    #[arg(long = "stall-keepalive-ms", value_name = "MS")]
    pub stall_keepalive_ms: Option<u64>,

    /// Every stream sends an in-band error event (`data: {"error":{…,"code":500}}`, as vLLM
    /// does when its engine fails) after this many tokens of its own, then `data: [DONE]`;
    /// 0 = as its very first event. Non-streamed requests are not affected.
    #[arg(long = "error-after-tokens", value_name = "N")]
    pub error_after_tokens: Option<u64>,

    /// Answer /health and every generation request with this HTTP status (an unhealthy or
    /// overloaded worker), with an OpenAI error body.
    #[arg(long)]
    pub status: Option<u16>,

    /// Test-only: answer 500 to every generation request whose prompt (or rendered chat
    /// messages) contains this text — a poison request that fails on every instance, as
    /// llama.cpp answers 500 to a message with an unknown role. Other requests are served.
    #[arg(long = "fail-on-prompt", value_name = "TEXT")]
    pub fail_on_prompt: Option<String>,

    /// Serve chat only: `POST /v1/completions` answers 404, as an engine (or a gateway in
    /// front of one) that exposes only the chat endpoint.
    #[arg(long = "chat-only")]
    pub chat_only: bool,

    /// Refuse invalid requests with the status alone and an empty body, as llama-cpp-python's
    /// server answers some bad requests (an empty 400), instead of an OpenAI error object.
    #[arg(long = "empty-errors")]
    pub empty_errors: bool,

    /// Ignore `stream_options.include_usage`: streams carry no usage chunk, as with
    /// llama-cpp-python's server, so the frontend's own token counting is what is left.
    #[arg(long = "no-stream-usage")]
    pub no_stream_usage: bool,

    /// Seed mixed (XOR) into every request's own `seed`, for text, embeddings and fault rolls.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Engine whose metric names the mocker also exports (at that engine's metrics path:
    /// `/metrics`, or `/prometheus/metrics` for trtllm), so load scrapers are tested against
    /// the real dialects.
    #[arg(long, value_enum, default_value_t = EngineDialect::Mocker)]
    pub engine: EngineDialect,

    /// Require `Authorization: Bearer KEY` on `/v1/*`, as vLLM's `--api-key` does (`/health`
    /// and `/metrics` stay open); a missing or wrong key gets 401.
    #[arg(long = "api-key", env = "SWITCHYARD_MOCKER_API_KEY")]
    pub api_key: Option<String>,

    /// Disaggregated serving: role, KV transfer and interference (`crate::pd::args`).
    #[command(flatten)]
    pub pd: crate::pd::args::PdArgs,

    /// LoRA adapters (`--max-loras`, `--lora-load-ms`, `--lora-modules`).
    #[command(flatten)]
    pub lora: crate::lora::LoraArgs,

    /// HTTPS (`--tls-cert`, `--tls-key`).
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    /// Agent APIs served natively (`--native-apis`).
    #[command(flatten)]
    pub native: crate::native_api::NativeArgs,
}

/// Engines whose metrics the mocker can speak (`--engine`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EngineDialect {
    /// Only the mocker's own `switchyard_mocker_*` series.
    #[default]
    Mocker,
    Vllm,
    Sglang,
    Trtllm,
    Llamacpp,
}

impl Default for MockerArgs {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8100)),
            model: "mock-model".to_owned(),
            ttft_ms: 0.0,
            itl_ms: 0.0,
            max_running: 64,
            kv_blocks: 16384,
            block_size: 16,
            tokenizer: None,
            fail_rate: 0.0,
            hang_rate: 0.0,
            die_after_tokens: None,
            stall_after_tokens: None,
            stall_keepalive_ms: None,
            error_after_tokens: None,
            status: None,
            fail_on_prompt: None,
            chat_only: false,
            empty_errors: false,
            no_stream_usage: false,
            seed: 0,
            engine: EngineDialect::Mocker,
            api_key: None,
            pd: crate::pd::args::PdArgs::default(),
            lora: crate::lora::LoraArgs::default(),
            tls: crate::tls::TlsArgs::default(),
            native: crate::native_api::NativeArgs::default(),
        }
    }
}

impl MockerArgs {
    /// Checks ranges clap cannot express; `run` calls it first.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(MockerError::InvalidArgs(msg));
        for (name, ms) in [("--ttft-ms", self.ttft_ms), ("--itl-ms", self.itl_ms)] {
            // The upper bound keeps every derived duration far from Duration's overflow.
            if !(0.0..=MAX_DELAY_MS).contains(&ms) {
                return bad(format!(
                    "{name} must be between 0 and {MAX_DELAY_MS}, got {ms}"
                ));
            }
        }
        for (name, p) in [
            ("--fail-rate", self.fail_rate),
            ("--hang-rate", self.hang_rate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("{name} must be between 0 and 1, got {p}"));
            }
        }
        if self.stall_keepalive_ms == Some(0) {
            return bad("--stall-keepalive-ms must be at least 1".to_owned());
        }
        if self.max_running == 0 {
            return bad("--max-running must be at least 1".to_owned());
        }
        if self.block_size == 0 {
            return bad("--block-size must be at least 1".to_owned());
        }
        self.pd.validate().map_err(MockerError::InvalidArgs)?;
        self.lora.validate().map_err(MockerError::InvalidArgs)?;
        if self.model.is_empty() {
            return bad("--model must not be empty".to_owned());
        }
        if let Some(code) = self.status {
            if http::StatusCode::from_u16(code).is_err() || code < 200 {
                return bad(format!(
                    "--status must be an HTTP status 200..=999, got {code}"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: MockerArgs,
    }

    #[test]
    fn default_matches_an_empty_command_line() {
        let parsed = Cli::try_parse_from(["mocker"]).unwrap().args;
        assert_eq!(parsed, MockerArgs::default());
        assert!(parsed.validate().is_ok());
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for argv in [
            &["m", "--fail-rate", "1.5"][..],
            &["m", "--hang-rate=-0.1"],
            &["m", "--itl-ms", "NaN"],
            &["m", "--ttft-ms", "1e30"],
            &["m", "--max-running", "0"],
            &["m", "--status", "99"],
            &["m", "--stall-keepalive-ms", "0"],
        ] {
            let args = Cli::try_parse_from(argv).unwrap().args;
            assert!(args.validate().is_err(), "{argv:?}");
        }
    }
}

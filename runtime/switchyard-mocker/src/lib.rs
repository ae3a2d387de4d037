//! The simulated GPU worker behind `switchyard mocker` (and the in-process workers of
//! `switchyard demo`), in the spirit of Dynamo's mocker.
//!
//! It speaks the OpenAI API (`/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`,
//! `/v1/models`) plus `/health` and `/metrics`, and simulates what a router cares about:
//!
//! - **deterministic text** ([`generate`]): the next token depends only on the seed and the
//!   last four words of context + output, so every instance answers a request identically and
//!   a continuation request picks up exactly where a stream was cut;
//! - **a paged KV cache** ([`kv_cache`]) with prefix reuse and LRU eviction, keyed by the same
//!   block hashes as the frontend's router, emitting [`KvEvent`]s;
//! - **timing**: time to first token grows with uncached prompt blocks, inter-token latency
//!   with the number of running sequences; a bounded batch with a FIFO waiting queue;
//! - **faults** ([`faults`]): error rate, hang rate, fixed status, crash after N tokens.
//!
//! With zero delays it is built to never be the bottleneck of a router benchmark: hyper's
//! HTTP/1 driver on raw tokio sockets, no task per request, no timers, JSON written straight
//! from borrowed data. See `docs/mocker.md` for the model and measured throughput.
#![forbid(unsafe_code)]

pub mod args;
pub mod error;
pub mod faults;
pub mod generate;
pub mod kv_cache;
pub mod lora;
pub mod metrics;
pub mod native_api;
pub mod pd;
pub mod scheduler;
pub mod timing;

mod choices;
mod choices_stream;
mod embed;
mod interference;
mod logprobs;
mod model_card;
mod prefill;
mod respond;
mod routes;
mod sequence;
mod server;
mod state;
mod stream;
mod tls;
mod tools;
mod trace_log;
mod wire;

use std::future::Future;
use std::sync::Arc;

use switchyard_kv::KvEvent;
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedSender;

pub use args::{EngineDialect, MockerArgs};
pub use error::{MockerError, Result};
pub use metrics::{LoadProbe, LoadSnapshot};

/// Optional observers of a running mocker, for whoever publishes its state (NATS, tests).
/// Use one per mocker: two mockers given the same hooks would share their counters.
#[derive(Debug, Clone, Default)]
pub struct MockerHooks {
    /// Receives every KV cache change (a `Cleared` first, then stores and evictions).
    pub kv_events: Option<UnboundedSender<KvEvent>>,
    /// Load and counters; clone it (or use [`MockerHooks::load_probe`]) before `run_with`.
    pub load: LoadProbe,
}

impl MockerHooks {
    /// Hooks that forward KV events to `tx`.
    pub fn with_kv_events(tx: UnboundedSender<KvEvent>) -> Self {
        Self {
            kv_events: Some(tx),
            ..Self::default()
        }
    }

    /// A handle that reads this mocker's load while it runs.
    pub fn load_probe(&self) -> LoadProbe {
        self.load.clone()
    }
}

/// Serves the mocker on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests finish.
pub async fn run(
    args: MockerArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run_with(args, listener, shutdown, MockerHooks::default()).await
}

/// [`run`], reporting KV events and load through `hooks`.
pub async fn run_with(
    args: MockerArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    hooks: MockerHooks,
) -> Result<()> {
    args.validate()?;
    let tls = args.tls.acceptor()?;
    // Loaded before binding anything visible: a bad file is a startup error, not a mocker
    // that silently hashes differently from its frontend.
    let hasher = switchyard_kv::PromptHasher::load(args.block_size, args.tokenizer.as_deref())
        .map_err(|e| MockerError::InvalidArgs(format!("--tokenizer: {e}")))?;
    if let Some(tx) = &hooks.kv_events {
        // A fresh instance holds nothing; subscribers may still remember a previous life.
        let _ = tx.send(KvEvent::Cleared);
    }
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let addr = listener.local_addr()?;
    tracing::info!(%addr, model = %args.model, "mocker listening");
    // Handles name the address this mocker really listens on (the caller may bind port 0).
    let mut args = args;
    args.listen = addr;
    let shared = Arc::new(state::Shared::new(args, hasher, hooks, stopped));
    server::serve(listener, tls, shared, shutdown, stopping).await;
    tracing::info!(%addr, "mocker stopped");
    Ok(())
}

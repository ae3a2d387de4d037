//! One request's life inside the simulated engine: queue for a running slot, prefill (KV
//! lookup and time to first token), then decode one token per inter-token interval.
//!
//! The sequence is owned by the response (the handler's future, or the SSE body), so a client
//! that goes away drops it, and `Drop` frees its slot and blocks and counts the cancellation.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use switchyard_kv::{BlockHasher, BYTES_PER_TOKEN};
use switchyard_protocol::Usage;

use crate::faults::{Faults, TokenBudget};
use crate::generate::TextGen;
use crate::kv_cache::Allocation;
use crate::scheduler::Slot;
use crate::state::Shared;

/// Output length when the request names none.
pub const DEFAULT_MAX_TOKENS: u32 = 16;

/// What to generate.
#[derive(Debug)]
pub(crate) struct GenRequest {
    /// Rendered chat or completion prompt: the text the model continues.
    pub context: String,
    /// Request seed XOR `--seed`.
    pub seed: u64,
    pub max_tokens: u32,
}

#[derive(Debug)]
pub(crate) struct Sequence {
    shared: Arc<Shared>,
    context: String,
    generator: TextGen,
    /// Everything generated so far.
    pub text: String,
    remaining: u32,
    produced: u32,
    slot: Option<Slot>,
    kv: Option<Allocation>,
    finished: bool,
}

impl Sequence {
    pub fn new(shared: Arc<Shared>, req: GenRequest) -> Self {
        Self {
            generator: TextGen::new(&req.context, req.seed),
            text: String::with_capacity(req.max_tokens.min(4096) as usize * 8),
            context: req.context,
            remaining: req.max_tokens,
            produced: 0,
            slot: None,
            kv: None,
            finished: false,
            shared,
        }
    }

    /// Waits for a running slot, looks the prompt up in the KV cache and spends the prefill
    /// time: `ttft * max(1, uncached blocks)`.
    pub async fn prefill(&mut self) {
        self.slot = Some(self.shared.scheduler.admit().await);
        let hashes = self.shared.hasher.hash_bytes(self.context.as_bytes());
        let alloc = self.shared.kv_allocate(&hashes);
        let metrics = &self.shared.metrics;
        metrics.prefix_hits.fetch_add(alloc.cached as u64, Relaxed);
        metrics
            .prefill_blocks
            .fetch_add(alloc.uncached() as u64, Relaxed);
        let charged = alloc.uncached().max(1) as u32;
        self.kv = Some(alloc);
        sleep(self.shared.ttft * charged).await;
    }

    /// The next token, or `None` when the output budget is spent (the sequence is then
    /// finished and its resources are released).
    pub async fn next_token(&mut self) -> Option<&'static str> {
        if self.remaining == 0 {
            self.finish();
            return None;
        }
        if self.produced > 0 {
            sleep(self.inter_token_latency()).await;
        }
        match self.shared.faults.spend_token() {
            TokenBudget::Continue => {}
            TokenBudget::Last => Faults::die_soon(),
            TokenBudget::Exhausted => std::future::pending::<()>().await,
        }
        let token = self.generator.next_token();
        self.text.push_str(token);
        self.produced += 1;
        self.remaining -= 1;
        self.shared.metrics.tokens.fetch_add(1, Relaxed);
        Some(token)
    }

    pub fn usage(&self) -> Usage {
        let prompt = BlockHasher::approx_tokens(self.context.as_bytes());
        Usage::new(u32::try_from(prompt).unwrap_or(u32::MAX), self.produced)
    }

    /// ITL grows with the batch: `itl * (1 + (running - 1) / max_running)`.
    fn inter_token_latency(&self) -> Duration {
        let itl = self.shared.itl;
        if itl.is_zero() {
            return itl;
        }
        let running = self.shared.metrics.running.load(Relaxed).saturating_sub(1) as f64;
        itl.mul_f64(1.0 + running / self.shared.args.max_running as f64)
    }

    /// Stores the blocks the output completed (a follow-up turn that quotes this answer hits
    /// them) and releases the sequence's slot and blocks.
    fn finish(&mut self) {
        self.finished = true;
        let Some(alloc) = self.kv.take() else {
            return;
        };
        let block_bytes = self.shared.hasher.block_size() * BYTES_PER_TOKEN;
        let full_len = self.context.len() + self.text.len();
        let extra = (full_len / block_bytes > alloc.total).then(|| {
            let mut full = String::with_capacity(full_len);
            full.push_str(&self.context);
            full.push_str(&self.text);
            self.shared.hasher.hash_bytes(full.as_bytes())
        });
        self.shared.kv_release(alloc, extra.as_deref());
        self.slot = None;
    }
}

impl Drop for Sequence {
    fn drop(&mut self) {
        if let Some(alloc) = self.kv.take() {
            self.shared.kv_release(alloc, None);
        }
        if !self.finished {
            self.shared.metrics.cancelled.fetch_add(1, Relaxed);
        }
    }
}

/// Sleeps unless `d` is zero: the zero-delay path must not touch the timer wheel at all.
async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

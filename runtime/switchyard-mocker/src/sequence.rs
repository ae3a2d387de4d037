//! One request's life inside the simulated engine: queue for a running slot, prefill (KV
//! lookup and time to first token), then decode one token per inter-token interval.
//!
//! The sequence is owned by the response (the handler's future, or the SSE body), so a client
//! that goes away drops it, and `Drop` frees its slot and blocks and counts the cancellation.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use switchyard_kv::{PromptKind, BYTES_PER_TOKEN};
use switchyard_protocol::Usage;

use crate::faults::{Faults, TokenBudget};
use crate::generate::TextGen;
use crate::kv_cache::Allocation;
use crate::scheduler::Slot;
use crate::state::Shared;
use crate::timing;

/// Output length when the request names none.
pub const DEFAULT_MAX_TOKENS: u32 = 16;

/// What to generate.
#[derive(Debug)]
pub(crate) struct GenRequest {
    /// Rendered chat or completion prompt: the text the model continues.
    pub context: String,
    /// Chat or completion: decides special tokens when a tokenizer is configured.
    pub kind: PromptKind,
    /// Request seed XOR `--seed`.
    pub seed: u64,
    pub max_tokens: u32,
}

#[derive(Debug)]
pub(crate) struct Sequence {
    shared: Arc<Shared>,
    context: String,
    kind: PromptKind,
    /// Prompt length in tokens, known after prefill.
    prompt_tokens: usize,
    generator: TextGen,
    /// Everything generated so far.
    pub text: String,
    remaining: u32,
    produced: u32,
    slot: Option<Slot>,
    kv: Option<Allocation>,
    /// Keep the prompt's KV pinned after finishing (a prefill for a remote decode).
    hold_kv: bool,
    held: Option<Allocation>,
    finished: bool,
}

impl Sequence {
    pub fn new(shared: Arc<Shared>, req: GenRequest) -> Self {
        Self {
            generator: TextGen::new(&req.context, req.seed),
            text: String::with_capacity(req.max_tokens.min(4096) as usize * 8),
            context: req.context,
            kind: req.kind,
            prompt_tokens: 0,
            remaining: req.max_tokens,
            produced: 0,
            slot: None,
            kv: None,
            hold_kv: false,
            held: None,
            finished: false,
            shared,
        }
    }

    /// Waits for a running slot, looks the prompt up in the KV cache and spends the prefill
    /// time ([`timing::prefill_delay`]).
    pub async fn prefill(&mut self) {
        self.slot = Some(self.shared.scheduler.admit().await);
        let prompt = self.shared.hasher.hash(&self.context, self.kind);
        self.prompt_tokens = prompt.tokens;
        let alloc = self.shared.kv_allocate(&prompt.hashes);
        let metrics = &self.shared.metrics;
        metrics.prefix_hits.fetch_add(alloc.cached as u64, Relaxed);
        metrics
            .prefill_blocks
            .fetch_add(alloc.uncached() as u64, Relaxed);
        let delay = timing::prefill_delay(self.shared.ttft, alloc.uncached());
        self.kv = Some(alloc);
        if self.shared.args.pd.prefill_interference && !delay.is_zero() {
            tokio::time::sleep_until(self.shared.gpu.reserve_prefill(delay)).await;
        } else {
            sleep(delay).await;
        }
    }

    /// Keeps the prompt's KV pinned when the sequence finishes, for [`Sequence::take_held`].
    pub fn hold_kv(&mut self) {
        self.hold_kv = true;
    }

    /// Drops a sequence refused before it started (not a cancellation).
    pub fn discard(mut self) {
        self.finished = true;
    }

    /// The KV kept by [`Sequence::hold_kv`] once the sequence finished.
    pub fn take_held(&mut self) -> Option<Allocation> {
        self.held.take()
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
            if self.shared.args.pd.prefill_interference {
                // A token cannot complete while another sequence's prefill holds the GPU.
                let busy = self.shared.gpu.busy_until();
                if busy > tokio::time::Instant::now() {
                    tokio::time::sleep_until(busy).await;
                }
            }
        }
        if self.shared.faults.stalls_at(u64::from(self.produced)) {
            // Hold the connection open and send nothing until the client gives up.
            std::future::pending::<()>().await;
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

    /// Ends generation after the current token (every choice hit a stop string): the next
    /// [`Self::next_token`] returns `None` and finishes the sequence normally.
    pub fn stop_early(&mut self) {
        self.remaining = 0;
    }

    /// Stalled with keep-alives on (`--stall-keepalive-ms`): how long until the next one.
    pub fn stall_keepalive(&self) -> Option<Duration> {
        self.shared.faults.stall_keepalive(u64::from(self.produced))
    }

    /// Whether the stream reports its in-band error now (`--error-after-tokens`).
    pub fn errors_now(&self) -> bool {
        self.shared.faults.errors_at(u64::from(self.produced))
    }

    pub fn usage(&self) -> Usage {
        let prompt = self.prompt_tokens;
        Usage::new(u32::try_from(prompt).unwrap_or(u32::MAX), self.produced)
    }

    fn inter_token_latency(&self) -> Duration {
        let running = self.shared.metrics.running.load(Relaxed);
        timing::inter_token_latency(self.shared.itl, running, self.shared.args.max_running)
    }

    /// Stores the blocks the output completed (a follow-up turn that quotes this answer hits
    /// them) and releases the sequence's slot and blocks.
    fn finish(&mut self) {
        self.finished = true;
        let Some(alloc) = self.kv.take() else {
            return;
        };
        if self.hold_kv {
            self.held = Some(alloc);
            self.slot = None;
            return;
        }
        let hasher = &self.shared.hasher;
        let block_bytes = hasher.block_size() * BYTES_PER_TOKEN;
        let full_len = self.context.len() + self.text.len();
        // Byte blocks: only worth hashing if the answer completed a block. Token counts are
        // not known without tokenizing, so then always hash.
        let may_complete = hasher.is_tokenized() || full_len / block_bytes > alloc.total;
        let extra = may_complete
            .then(|| {
                let mut full = String::with_capacity(full_len);
                full.push_str(&self.context);
                full.push_str(&self.text);
                hasher.hash(&full, self.kind).hashes
            })
            .filter(|hashes| hashes.len() > alloc.total);
        self.shared.kv_release(alloc, extra.as_deref());
        self.slot = None;
    }
}

impl Drop for Sequence {
    fn drop(&mut self) {
        if let Some(alloc) = self.kv.take() {
            self.shared.kv_release(alloc, None);
        }
        if let Some(alloc) = self.held.take() {
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

#[cfg(test)]
mod tests {
    use tokio::sync::watch;
    use tokio::time::Instant;

    use super::*;
    use crate::{MockerArgs, MockerHooks};

    fn engine(args: MockerArgs) -> Arc<Shared> {
        let (_, stopping) = watch::channel(false);
        let hasher = switchyard_kv::PromptHasher::bytes(args.block_size);
        Arc::new(Shared::new(args, hasher, MockerHooks::default(), stopping))
    }

    /// 12 bytes: three blocks of one 4-byte token.
    fn request() -> GenRequest {
        GenRequest {
            context: "abcdefghijkl".into(),
            kind: PromptKind::Completion,
            seed: 0,
            max_tokens: 4,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn prefill_pays_for_uncached_blocks_and_decode_for_each_later_token() {
        let ms = Duration::from_millis(1);
        let args = MockerArgs {
            ttft_ms: 10.0,
            itl_ms: 2.0,
            block_size: 1,
            ..MockerArgs::default()
        };
        let shared = engine(args);
        let start = Instant::now();
        let mut seq = Sequence::new(shared.clone(), request());
        seq.prefill().await;
        assert_eq!(start.elapsed(), 30 * ms, "three uncached blocks");
        while seq.next_token().await.is_some() {}
        assert_eq!(start.elapsed(), 36 * ms, "three gaps between four tokens");
        drop(seq);

        let start = Instant::now();
        let mut cached = Sequence::new(shared, request());
        cached.prefill().await;
        assert_eq!(
            start.elapsed(),
            10 * ms,
            "fully cached prompt pays one block"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn with_interference_a_long_prefill_holds_up_another_sequences_next_token() {
        let ms = Duration::from_millis(1);
        for interference in [false, true] {
            let mut args = MockerArgs {
                ttft_ms: 10.0,
                itl_ms: 2.0,
                block_size: 1,
                ..MockerArgs::default()
            };
            args.pd.prefill_interference = interference;
            let shared = engine(args);
            let mut decoding = Sequence::new(shared.clone(), request());
            decoding.prefill().await;
            decoding.next_token().await;
            // A 10-block prompt starts its 100 ms prefill now; the first sequence's next token
            // is due in 2 ms.
            let mut long = Sequence::new(
                shared.clone(),
                GenRequest {
                    context: "0123456789".repeat(4),
                    ..request()
                },
            );
            let start = Instant::now();
            let prefilling = tokio::spawn(async move {
                long.prefill().await;
                long
            });
            tokio::task::yield_now().await;
            decoding.next_token().await;
            let waited = start.elapsed();
            if interference {
                assert_eq!(waited, 100 * ms, "the token waits for the prefill");
            } else {
                assert!(
                    waited < 5 * ms,
                    "independent without interference: {waited:?}"
                );
            }
            drop(prefilling.await.unwrap());
        }
    }

    #[tokio::test]
    async fn dropping_an_unfinished_sequence_counts_a_cancellation_and_frees_it() {
        let shared = engine(MockerArgs {
            block_size: 1,
            ..MockerArgs::default()
        });
        let mut seq = Sequence::new(shared.clone(), request());
        seq.prefill().await;
        assert!(seq.next_token().await.is_some());
        let load = shared.metrics.snapshot();
        assert_eq!(load.running, 1);
        assert!(load.kv_usage > 0.0);
        drop(seq);
        assert_eq!(shared.metrics.cancelled.load(Relaxed), 1);
        assert_eq!(shared.metrics.snapshot().running, 0);
        assert_eq!(shared.kv.lock().pinned(), 0);

        let mut done = Sequence::new(shared.clone(), request());
        done.prefill().await;
        while done.next_token().await.is_some() {}
        drop(done);
        assert_eq!(
            shared.metrics.cancelled.load(Relaxed),
            1,
            "finished is not cancelled"
        );
    }

    #[tokio::test]
    async fn a_follow_up_quoting_the_answer_hits_the_blocks_the_answer_completed() {
        let shared = engine(MockerArgs {
            block_size: 1,
            ..MockerArgs::default()
        });
        let mut seq = Sequence::new(shared.clone(), request());
        seq.prefill().await;
        while seq.next_token().await.is_some() {}
        let follow_up = format!("{}{}", request().context, seq.text);
        drop(seq);
        let hashes = shared
            .hasher
            .hash(&follow_up, PromptKind::Completion)
            .hashes;
        assert!(hashes.len() > 3, "the answer completed more blocks");
        let alloc = shared.kv_allocate(&hashes);
        assert_eq!(alloc.cached, hashes.len());
        shared.kv_release(alloc, None);
    }
}

//! The timing model, as pure functions so it can be read and tested in one place.
//!
//! - Prefill: `TTFT = ttft * max(1, uncached_blocks)`. A prompt whose blocks are all in the
//!   KV cache still pays one block (its partial tail and the first decode step); each block
//!   that must be computed pays one more.
//! - Decode: `ITL = itl * (1 + (running - 1) / max_running)`: one sequence decodes at `itl`,
//!   a full batch at about twice that, like a memory-bound GPU whose step time grows with
//!   batch size.
//!
//! A zero base time yields zero, and callers skip the timer entirely for a zero duration.

use std::time::Duration;

/// Time to first token for a prompt with `uncached` blocks to compute.
pub fn prefill_delay(ttft: Duration, uncached: usize) -> Duration {
    ttft.saturating_mul(u32::try_from(uncached.max(1)).unwrap_or(u32::MAX))
}

/// Time between two tokens while `running` sequences (this one included) are decoding.
pub fn inter_token_latency(itl: Duration, running: u64, max_running: usize) -> Duration {
    if itl.is_zero() {
        return itl;
    }
    let others = running.saturating_sub(1) as f64;
    itl.mul_f64(1.0 + others / max_running.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn prefill_grows_with_uncached_blocks_and_charges_at_least_one() {
        assert_eq!(prefill_delay(10 * MS, 0), 10 * MS);
        assert_eq!(prefill_delay(10 * MS, 1), 10 * MS);
        assert_eq!(prefill_delay(10 * MS, 7), 70 * MS);
        assert_eq!(prefill_delay(Duration::ZERO, 7), Duration::ZERO);
    }

    #[test]
    fn decode_slows_down_with_the_batch() {
        assert_eq!(inter_token_latency(10 * MS, 1, 8), 10 * MS);
        assert_eq!(inter_token_latency(10 * MS, 5, 8), 15 * MS);
        assert_eq!(inter_token_latency(10 * MS, 9, 8), 20 * MS);
        assert_eq!(inter_token_latency(Duration::ZERO, 9, 8), Duration::ZERO);
    }
}

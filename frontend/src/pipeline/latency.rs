//! The per-instance latency averages plugins and explanations see (`ttft-ewma-ms`,
//! `itl-ewma-ms`), fed from what dispatch and relay measure.
//!
//! A streamed response gives both directly: TTFT is the time to its first event, ITL the gap
//! between events. A non-streamed response arrives whole, so its TTFT is estimated: the time
//! to the whole response minus the instance's ITL average for every token after the first
//! (`completion_tokens` from its usage). Without an ITL average yet (only non-streamed traffic
//! so far) the whole time is the sample — an upper bound, which is what a latency-aware
//! plugin should be told rather than "nothing known" (0).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use switchyard_runtime::live::Load;
use switchyard_runtime::Instance;

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// A streamed response's first event arrived `elapsed` after it was sent.
pub fn first_token(instance: &Instance, elapsed: Duration) {
    Load::observe(&instance.load.ttft_ewma_us, micros(elapsed));
}

/// A gap of `gap` between two events of a stream.
pub fn inter_token(instance: &Instance, gap: Duration) {
    Load::observe(&instance.load.itl_ewma_us, micros(gap));
}

/// A non-streamed response arrived whole `elapsed` after it was sent, with
/// `completion_tokens` generated (when its usage said).
pub fn whole_response(instance: &Instance, elapsed: Duration, completion_tokens: Option<u32>) {
    Load::observe(
        &instance.load.ttft_ewma_us,
        estimated_ttft_us(
            micros(elapsed),
            completion_tokens,
            instance.load.itl_ewma_us.load(Relaxed),
        ),
    );
}

/// `total_us` minus `itl_us` per token after the first, never below 1 µs.
fn estimated_ttft_us(total_us: u64, completion_tokens: Option<u32>, itl_us: u64) -> u64 {
    let after_first = u64::from(completion_tokens.unwrap_or(1).saturating_sub(1));
    total_us
        .saturating_sub(after_first.saturating_mul(itl_us))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_runtime::InstanceSpec;

    #[test]
    fn a_non_streamed_response_subtracts_the_known_inter_token_time() {
        assert_eq!(estimated_ttft_us(50_000, Some(11), 4_000), 10_000);
        // No ITL known: the whole time is the (upper-bound) sample.
        assert_eq!(estimated_ttft_us(50_000, Some(11), 0), 50_000);
        // No usage: one token assumed; an ITL average larger than the total stays positive.
        assert_eq!(estimated_ttft_us(50_000, None, 4_000), 50_000);
        assert_eq!(estimated_ttft_us(5, Some(100), 4_000), 1);
    }

    #[test]
    fn non_streamed_traffic_moves_the_ttft_average_off_zero() {
        let instance = Instance::new(InstanceSpec::new("i0", "m", "http://i0"), None);
        whole_response(&instance, Duration::from_millis(5), Some(1));
        assert_eq!(instance.load.ttft_ewma_us.load(Relaxed), 5_000);
        inter_token(&instance, Duration::from_millis(2));
        first_token(&instance, Duration::from_millis(13));
        assert_eq!(
            instance.load.ttft_ewma_us.load(Relaxed),
            5_000 - 625 + 1_625
        );
        assert_eq!(instance.load.itl_ewma_us.load(Relaxed), 2_000);
    }
}

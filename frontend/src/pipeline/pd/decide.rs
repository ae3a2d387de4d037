//! Whether to disaggregate a request on its chosen decode instance, and which prefill
//! instances to try — pure functions over numbers, so every rule has a unit test.

/// Why a request stays aggregated (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregated {
    /// Not more than `min_uncached_tokens` of the prompt is missing on the decode instance.
    ShortPrompt,
    /// Every usable prefill instance has more than `max_prefill_queue` requests outstanding.
    PrefillBusy,
    /// No routable prefill instance (other than the decode instance itself).
    NoPrefill,
}

impl Aggregated {
    pub const ALL: [Self; 3] = [Self::ShortPrompt, Self::PrefillBusy, Self::NoPrefill];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ShortPrompt => "short_prompt",
            Self::PrefillBusy => "prefill_busy",
            Self::NoPrefill => "no_prefill",
        }
    }
}

/// The inputs of one decision.
#[derive(Debug, Clone, Copy)]
pub struct Inputs {
    /// Full KV blocks of the prompt.
    pub prompt_blocks: u32,
    /// Leading blocks of the prompt the decode instance already holds.
    pub cached_on_decode: u32,
    /// Tokens per KV block.
    pub block_size: u32,
    pub min_uncached_tokens: u32,
    pub max_prefill_queue: u32,
}

/// Prompt tokens the decode instance would have to prefill itself.
pub fn uncached_tokens(i: &Inputs) -> u64 {
    u64::from(i.prompt_blocks.saturating_sub(i.cached_on_decode)) * u64::from(i.block_size)
}

/// Which of the prefill candidates (given by their outstanding requests) may be used, or why
/// none is. The caller ranks the usable ones.
pub fn usable_prefills(i: &Inputs, prefill_queues: &[u32]) -> Result<Vec<usize>, Aggregated> {
    if uncached_tokens(i) <= u64::from(i.min_uncached_tokens) {
        return Err(Aggregated::ShortPrompt);
    }
    if prefill_queues.is_empty() {
        return Err(Aggregated::NoPrefill);
    }
    let usable: Vec<usize> = prefill_queues
        .iter()
        .enumerate()
        .filter(|(_, &q)| q <= i.max_prefill_queue)
        .map(|(n, _)| n)
        .collect();
    if usable.is_empty() {
        return Err(Aggregated::PrefillBusy);
    }
    Ok(usable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(prompt_blocks: u32, cached_on_decode: u32) -> Inputs {
        Inputs {
            prompt_blocks,
            cached_on_decode,
            block_size: 16,
            min_uncached_tokens: 64,
            max_prefill_queue: 2,
        }
    }

    #[test]
    fn only_prompts_missing_more_than_the_threshold_on_the_decode_side_disaggregate() {
        // 4 blocks × 16 = 64 tokens: not more than 64.
        assert_eq!(
            usable_prefills(&inputs(4, 0), &[0]),
            Err(Aggregated::ShortPrompt)
        );
        assert_eq!(usable_prefills(&inputs(5, 0), &[0]), Ok(vec![0]));
        // A long prompt mostly cached where it will decode stays there.
        assert_eq!(
            usable_prefills(&inputs(100, 97), &[0]),
            Err(Aggregated::ShortPrompt)
        );
        assert_eq!(uncached_tokens(&inputs(3, 9)), 0);
    }

    #[test]
    fn busy_prefill_instances_are_skipped_and_all_busy_stays_aggregated() {
        assert_eq!(usable_prefills(&inputs(50, 0), &[3, 2, 0]), Ok(vec![1, 2]));
        assert_eq!(
            usable_prefills(&inputs(50, 0), &[3, 9]),
            Err(Aggregated::PrefillBusy)
        );
        assert_eq!(
            usable_prefills(&inputs(50, 0), &[]),
            Err(Aggregated::NoPrefill)
        );
    }
}

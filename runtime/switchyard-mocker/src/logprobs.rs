//! `logprobs` / `top_logprobs` on chat: numbers that are made up but deterministic (the same
//! request gets the same values on every instance) and consistent the way clients check
//! them: each value is ≤ 0, the sampled token is its own first alternative, and the
//! alternatives are distinct and in descending order.

use serde::Serialize;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::generate::TOKENS;

/// The most alternatives per token, as OpenAI allows.
pub(crate) const MAX_TOP: u8 = 20;

/// One generated token's entry in `logprobs.content`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TokenLogprob {
    token: &'static str,
    logprob: f64,
    bytes: &'static [u8],
    top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, Serialize)]
struct TopLogprob {
    token: &'static str,
    logprob: f64,
    bytes: &'static [u8],
}

/// `logprobs` of a choice or chunk: `{"content": [...]}`.
#[derive(Serialize)]
pub(crate) struct Logprobs<'a> {
    pub content: Vec<&'a TokenLogprob>,
}

/// The entry for `token` at output position `position` with `top` alternatives.
pub(crate) fn for_token(token: &'static str, position: u32, top: u8) -> TokenLogprob {
    let h = xxh3_64_with_seed(token.as_bytes(), u64::from(position));
    let logprob = -((h % 1000) as f64) / 1000.0;
    let mut top_logprobs = Vec::with_capacity(usize::from(top));
    if top > 0 {
        top_logprobs.push(TopLogprob {
            token,
            logprob,
            bytes: token.as_bytes(),
        });
    }
    let mut step = 0u64;
    while top_logprobs.len() < usize::from(top) {
        step += 1;
        let alt =
            TOKENS[((h.wrapping_add(step.wrapping_mul(7919))) % TOKENS.len() as u64) as usize];
        if top_logprobs.iter().any(|t| t.token == alt) {
            continue;
        }
        let rank = top_logprobs.len() as f64;
        top_logprobs.push(TopLogprob {
            token: alt,
            logprob: logprob - rank,
            bytes: alt.as_bytes(),
        });
    }
    TokenLogprob {
        token,
        logprob,
        bytes: token.as_bytes(),
        top_logprobs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_deterministic_and_consistent() {
        let e = for_token(" river", 3, 5);
        assert!(e.logprob <= 0.0);
        assert_eq!(e.top_logprobs.len(), 5);
        assert_eq!(e.top_logprobs[0].token, " river");
        assert!(e
            .top_logprobs
            .windows(2)
            .all(|w| w[0].logprob > w[1].logprob));
        let mut tokens: Vec<_> = e.top_logprobs.iter().map(|t| t.token).collect();
        tokens.sort_unstable();
        tokens.dedup();
        assert_eq!(tokens.len(), 5, "distinct alternatives");
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            serde_json::to_string(&for_token(" river", 3, 5)).unwrap()
        );
        assert!(for_token(" river", 3, 0).top_logprobs.is_empty());
        assert_eq!(for_token(" river", 0, MAX_TOP).top_logprobs.len(), 20);
    }
}

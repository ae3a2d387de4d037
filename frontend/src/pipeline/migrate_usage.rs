//! The engine's own token counts for the part of a stream one worker produced, so a migrated
//! stream's `max_tokens` and usage are in tokens, not chunks (engines may pack several tokens
//! into one chunk). The best count a worker's chunks offer, in order:
//!
//! 1. `usage` on a content chunk — vLLM and SGLang with `stream_options.continuous_usage_stats`,
//!    llama.cpp's server on its last content chunk: `completion_tokens` so far (and the
//!    request's `prompt_tokens`);
//! 2. per-choice `token_ids` — vLLM with `return_token_ids: true`: their number;
//! 3. otherwise one token per chunk with text.

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;

/// What one worker's chunks say about the tokens it produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SegmentTokens {
    /// Completion tokens of the segment, by the best count available.
    pub tokens: u32,
    /// The worker's `prompt_tokens` for the request, when it reported usage.
    pub prompt_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    choices: Vec<ChoiceProbe>,
    #[serde(default)]
    usage: Option<UsageProbe>,
}

#[derive(Deserialize)]
struct ChoiceProbe {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    delta: Option<DeltaProbe>,
    #[serde(default)]
    token_ids: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct DeltaProbe {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct UsageProbe {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
}

/// Counts the tokens of `segment`, the payloads one worker sent (in order).
pub fn segment_tokens(segment: &[Bytes]) -> SegmentTokens {
    let (mut chunks, mut ids, mut saw_ids) = (0u32, 0u32, false);
    let mut reported: Option<UsageProbe> = None;
    for data in segment {
        let Ok(probe) = serde_json::from_slice::<Probe>(data) else {
            continue;
        };
        for choice in probe.choices {
            if let Some(token_ids) = &choice.token_ids {
                saw_ids = true;
                ids = ids.saturating_add(u32::try_from(token_ids.len()).unwrap_or(u32::MAX));
            }
            let text = choice.text.or_else(|| choice.delta.and_then(|d| d.content));
            if text.is_some_and(|t| !t.is_empty()) {
                chunks += 1;
            }
        }
        if let Some(usage) = probe.usage.filter(|u| u.completion_tokens.is_some()) {
            reported = Some(usage);
        }
    }
    match reported {
        Some(usage) => SegmentTokens {
            tokens: usage.completion_tokens.unwrap_or(chunks),
            prompt_tokens: usage.prompt_tokens,
        },
        None => SegmentTokens {
            tokens: if saw_ids { ids } else { chunks },
            prompt_tokens: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(json: &'static str) -> Bytes {
        Bytes::from_static(json.as_bytes())
    }

    #[test]
    fn without_engine_counts_a_text_chunk_is_a_token() {
        let segment = [
            chunk(r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#),
            chunk(r#"{"choices":[{"index":0,"delta":{"content":" two words"}}]}"#),
            chunk(r#"{"choices":[{"index":0,"text":" more"}],"usage":null}"#),
        ];
        let counted = segment_tokens(&segment);
        assert_eq!(
            counted,
            SegmentTokens {
                tokens: 2,
                prompt_tokens: None
            }
        );
    }

    #[test]
    fn token_ids_count_every_token_of_a_packed_chunk() {
        let segment = [
            chunk(r#"{"choices":[{"index":0,"delta":{"content":" a b c"},"token_ids":[1,2,3]}]}"#),
            chunk(r#"{"choices":[{"index":0,"delta":{"content":" d"},"token_ids":[4]}]}"#),
        ];
        assert_eq!(segment_tokens(&segment).tokens, 4);
    }

    #[test]
    fn continuous_usage_is_the_engines_own_count() {
        let segment = [
            chunk(
                r#"{"choices":[{"index":0,"delta":{"content":" a b"}}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
            ),
            chunk(
                r#"{"choices":[{"index":0,"delta":{"content":" c d e"}}],"usage":{"prompt_tokens":9,"completion_tokens":5,"total_tokens":14}}"#,
            ),
        ];
        let counted = segment_tokens(&segment);
        assert_eq!(
            counted,
            SegmentTokens {
                tokens: 5,
                prompt_tokens: Some(9)
            }
        );
    }
}

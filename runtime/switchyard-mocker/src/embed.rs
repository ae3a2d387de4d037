//! `POST /v1/embeddings`: a deterministic unit vector per input, derived from its hash, so
//! equal inputs embed equally on every instance.

use switchyard_kv::BlockHasher;
use switchyard_protocol::{EmbeddingData, EmbeddingResponse, Extra, Usage};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Embedding dimensions.
pub const DIMENSIONS: usize = 16;

/// The embedding of `text`: each component from a differently seeded hash, then normalized.
pub fn embed(text: &str, seed: u64) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIMENSIONS as u64)
        .map(|i| {
            let h = xxh3_64_with_seed(text.as_bytes(), seed ^ i.wrapping_mul(0x9E37_79B9));
            (h >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// The response for `items` (one embedding per item, in order).
pub fn response(model: &str, items: &[String], seed: u64) -> EmbeddingResponse {
    let prompt_tokens: usize = items
        .iter()
        .map(|t| BlockHasher::approx_tokens(t.as_bytes()))
        .sum();
    EmbeddingResponse {
        object: "list".to_owned(),
        data: items
            .iter()
            .zip(0u32..)
            .map(|(text, index)| EmbeddingData {
                object: "embedding".to_owned(),
                index,
                embedding: embed(text, seed),
            })
            .collect(),
        model: model.to_owned(),
        usage: Usage::new(u32::try_from(prompt_tokens).unwrap_or(u32::MAX), 0),
        extra: Extra::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_deterministic_unit_vectors_that_differ_by_input() {
        let a = embed("hello", 0);
        assert_eq!(a.len(), DIMENSIONS);
        assert_eq!(a, embed("hello", 0));
        assert_ne!(a, embed("hello!", 0));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
    }
}

//! Chained prefix block hashes.
//!
//! A prompt is cut into fixed-size blocks; block `i`'s hash covers its own content *and* the
//! hash of block `i-1`, so equal hashes mean equal prefixes (up to hash collisions), which is
//! what a paged KV cache with prefix reuse keys on. Only full blocks are hashed: a partial
//! last block is never shared by engines either.
//!
//! Two inputs are supported: token ids (when a tokenizer is configured) and bytes of the
//! rendered prompt (no tokenizer). For bytes, one block is `block_size * BYTES_PER_TOKEN`
//! bytes, so `--block-size` means "tokens per block" in both modes.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// A block hash. Chained: it identifies the whole prefix up to and including the block.
pub type BlockHash = u64;

/// Approximate bytes per token when no tokenizer is configured (English BPE averages ~4).
pub const BYTES_PER_TOKEN: usize = 4;

/// Seed for the first block of a chain; fixed so every process hashes identically.
const ROOT_SEED: u64 = 0x5377_6974_6368_7961; // "Switchya"

/// Cuts prompts into blocks of `block_size` tokens and hashes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHasher {
    block_size: usize,
}

impl BlockHasher {
    /// `block_size` is tokens per block; zero is treated as one.
    pub fn new(block_size: usize) -> Self {
        Self {
            block_size: block_size.max(1),
        }
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Hashes the full blocks of a byte prompt (no tokenizer).
    pub fn hash_bytes(&self, prompt: &[u8]) -> Vec<BlockHash> {
        let block = self.block_size * BYTES_PER_TOKEN;
        let mut out = Vec::with_capacity(prompt.len() / block);
        let mut parent = ROOT_SEED;
        for chunk in prompt.chunks_exact(block) {
            parent = xxh3_64_with_seed(chunk, parent);
            out.push(parent);
        }
        out
    }

    /// Hashes the full blocks of a token-id prompt.
    pub fn hash_tokens(&self, tokens: &[u32]) -> Vec<BlockHash> {
        self.hash_tokens_after(None, tokens)
    }

    /// Continues a chain: the full blocks of `tokens`, which follow the block whose hash is
    /// `parent` (`None`: they start the prompt). `hash_tokens_after(Some(a[k]), rest)` equals
    /// `hash_tokens(whole)[k + 1..]` when `rest` is what follows block `k`, so an event that
    /// names its parent block needs only its own tokens (the kv-bridge relies on this).
    pub fn hash_tokens_after(&self, parent: Option<BlockHash>, tokens: &[u32]) -> Vec<BlockHash> {
        let mut out = Vec::with_capacity(tokens.len() / self.block_size);
        let mut parent = parent.unwrap_or(ROOT_SEED);
        let mut bytes = Vec::with_capacity(self.block_size * 4);
        for chunk in tokens.chunks_exact(self.block_size) {
            bytes.clear();
            for t in chunk {
                bytes.extend_from_slice(&t.to_le_bytes());
            }
            parent = xxh3_64_with_seed(&bytes, parent);
            out.push(parent);
        }
        out
    }

    /// Approximate token count of a byte prompt (no tokenizer).
    pub fn approx_tokens(prompt: &[u8]) -> usize {
        prompt.len().div_ceil(BYTES_PER_TOKEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_prefixes_share_leading_hashes() {
        let h = BlockHasher::new(2); // 8 bytes per block
        let a = h.hash_bytes(b"0123456789abcdefXXXXXXXX");
        let b = h.hash_bytes(b"0123456789abcdefYYYYYYYY");
        assert_eq!(a.len(), 3);
        assert_eq!(a[..2], b[..2]);
        assert_ne!(a[2], b[2]);
    }

    #[test]
    fn hash_chains_depend_on_the_parent() {
        let h = BlockHasher::new(1); // 4 bytes per block
        let a = h.hash_bytes(b"AAAABBBB");
        let b = h.hash_bytes(b"CCCCBBBB");
        assert_ne!(
            a[1], b[1],
            "same block after a different prefix must differ"
        );
    }

    #[test]
    fn a_chain_continues_from_its_parent_hash() {
        let h = BlockHasher::new(2);
        let whole = h.hash_tokens(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(whole.len(), 3);
        assert_eq!(h.hash_tokens_after(None, &[1, 2, 3, 4]), whole[..2]);
        assert_eq!(
            h.hash_tokens_after(Some(whole[0]), &[3, 4, 5, 6]),
            whole[1..]
        );
        assert_ne!(
            h.hash_tokens_after(Some(whole[1]), &[3, 4]),
            whole[1..2],
            "the same tokens after another parent"
        );
    }

    #[test]
    fn partial_blocks_are_not_hashed() {
        let h = BlockHasher::new(4);
        assert!(h.hash_bytes(b"short").is_empty());
        assert_eq!(h.hash_tokens(&[1, 2, 3, 4, 5]).len(), 1);
    }
}

//! Prompt text → block-hash chain: the one place every process that must agree on a prompt's
//! blocks (the frontend routing it, the mocker caching it) turns text into hashes.
//!
//! With a tokenizer (a Hugging Face `tokenizer.json`, the same file the engine loads) the
//! chain covers the prompt's token ids, which is what engines key their KV cache on and what
//! the kv-bridge re-hashes vLLM's events from ([`BlockHasher::hash_tokens`]). Without one it
//! covers fixed-size byte blocks of the text ([`BlockHasher::hash_bytes`]): cheaper, and
//! exact between Switchyard processes, but unrelated to a real engine's token blocks.

use std::path::Path;
use std::sync::Arc;

use tokenizers::Tokenizer;

use crate::hash::{BlockHash, BlockHasher};

/// Which API the prompt came through. It decides whether the tokenizer adds its special
/// tokens (BOS …), the way vLLM tokenizes: a completion prompt is raw text and gets them; a
/// chat prompt is a rendered template, which writes them itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    Chat,
    Completion,
}

impl PromptKind {
    fn add_special_tokens(self) -> bool {
        self == Self::Completion
    }
}

/// A tokenizer file that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load tokenizer `{path}`: {message}")]
pub struct TokenizerError {
    pub path: String,
    pub message: String,
}

/// A prompt's full blocks and its length in tokens (exact with a tokenizer, estimated from
/// bytes without one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptBlocks {
    pub hashes: Vec<BlockHash>,
    pub tokens: usize,
}

/// Block hasher plus an optional tokenizer. Cheap to clone (the tokenizer is shared).
#[derive(Debug, Clone)]
pub struct PromptHasher {
    blocks: BlockHasher,
    tokenizer: Option<Arc<Tokenizer>>,
}

impl PromptHasher {
    /// Byte-block hashing, no tokenizer.
    pub fn bytes(block_size: usize) -> Self {
        Self {
            blocks: BlockHasher::new(block_size),
            tokenizer: None,
        }
    }

    /// Token-id hashing with the tokenizer in `path` (a `tokenizer.json`).
    pub fn with_tokenizer_file(
        block_size: usize,
        path: impl AsRef<Path>,
    ) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let tokenizer = Tokenizer::from_file(path).map_err(|e| TokenizerError {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Self {
            blocks: BlockHasher::new(block_size),
            tokenizer: Some(Arc::new(tokenizer)),
        })
    }

    /// [`Self::with_tokenizer_file`] when `path` is given, else [`Self::bytes`].
    pub fn load(block_size: usize, path: Option<&str>) -> Result<Self, TokenizerError> {
        match path {
            Some(path) => Self::with_tokenizer_file(block_size, path),
            None => Ok(Self::bytes(block_size)),
        }
    }

    pub fn block_size(&self) -> usize {
        self.blocks.block_size()
    }

    pub fn is_tokenized(&self) -> bool {
        self.tokenizer.is_some()
    }

    /// The exact number of tokens in `text` (what an engine loading the same tokenizer
    /// counts as prompt tokens); `None` without a tokenizer, where only an estimate exists.
    /// `Some(Err)` when the tokenizer refuses the text.
    pub fn count_tokens(&self, text: &str, kind: PromptKind) -> Option<Result<usize, String>> {
        let tokenizer = self.tokenizer.as_ref()?;
        Some(
            tokenizer
                .encode_fast(text, kind.add_special_tokens())
                .map(|encoding| encoding.len())
                .map_err(|e| e.to_string()),
        )
    }

    /// The chain of `text`'s full blocks. A text the tokenizer refuses falls back to byte
    /// blocks: routing then merely misses the cache, it never fails the request.
    pub fn hash(&self, text: &str, kind: PromptKind) -> PromptBlocks {
        if let Some(tokenizer) = &self.tokenizer {
            // `encode_fast` skips the offsets, which hashing never needs.
            match tokenizer.encode_fast(text, kind.add_special_tokens()) {
                Ok(encoding) => {
                    let ids = encoding.get_ids();
                    return PromptBlocks {
                        hashes: self.blocks.hash_tokens(ids),
                        tokens: ids.len(),
                    };
                }
                Err(e) => tracing::debug!(error = %e, "tokenizer failed; hashing bytes"),
            }
        }
        PromptBlocks {
            hashes: self.blocks.hash_bytes(text.as_bytes()),
            tokens: BlockHasher::approx_tokens(text.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_mode_is_the_byte_hasher() {
        let h = PromptHasher::bytes(2);
        let text = "0123456789abcdefXYZ";
        let blocks = h.hash(text, PromptKind::Chat);
        assert_eq!(
            blocks.hashes,
            BlockHasher::new(2).hash_bytes(text.as_bytes())
        );
        assert_eq!(blocks.tokens, 5);
        assert!(!h.is_tokenized());
        assert_eq!(h.count_tokens(text, PromptKind::Chat), None);
    }

    /// A character-level tokenizer (token id = ASCII code) with a `<s>` (id 200) special
    /// token that encoding adds in front when asked, saved as a `tokenizer.json`.
    fn char_tokenizer(dir: &Path) -> std::path::PathBuf {
        use tokenizers::models::wordlevel::WordLevel;
        use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
        use tokenizers::processors::template::TemplateProcessing;
        use tokenizers::SplitDelimiterBehavior;

        let mut vocab: ahash::AHashMap<String, u32> = (1u8..128)
            .map(|b| ((b as char).to_string(), u32::from(b)))
            .collect();
        vocab.insert("[UNK]".into(), 0);
        vocab.insert("<s>".into(), 200);
        let model = WordLevel::builder()
            .vocab(vocab)
            .unk_token("[UNK]".into())
            .build()
            .unwrap();
        let mut tokenizer = Tokenizer::new(model);
        let split = Split::new(
            SplitPattern::Regex("(?s).".into()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .unwrap();
        tokenizer.with_pre_tokenizer(Some(split));
        let bos = TemplateProcessing::builder()
            .try_single("<s> $A")
            .unwrap()
            .special_tokens(vec![("<s>", 200)])
            .build()
            .unwrap();
        tokenizer.with_post_processor(Some(bos));
        let path = dir.join("tokenizer.json");
        tokenizer.save(&path, false).unwrap();
        path
    }

    #[test]
    fn tokenized_prompts_hash_their_token_ids() {
        let dir = tempfile::tempdir().unwrap();
        let h = PromptHasher::with_tokenizer_file(2, char_tokenizer(dir.path())).unwrap();
        assert!(h.is_tokenized());
        let chat = h.hash("abcde", PromptKind::Chat);
        let ids: Vec<u32> = "abcde".bytes().map(u32::from).collect();
        assert_eq!(chat.tokens, 5);
        assert_eq!(h.count_tokens("abcde", PromptKind::Chat), Some(Ok(5)));
        assert_eq!(h.count_tokens("abcde", PromptKind::Completion), Some(Ok(6)));
        assert_eq!(chat.hashes, BlockHasher::new(2).hash_tokens(&ids));
        // A completion is raw text: the tokenizer's BOS goes in front, as vLLM does it.
        let completion = h.hash("abcde", PromptKind::Completion);
        assert_eq!(completion.tokens, 6);
        let with_bos: Vec<u32> = std::iter::once(200).chain(ids).collect();
        assert_eq!(
            completion.hashes,
            BlockHasher::new(2).hash_tokens(&with_bos)
        );
        // Token blocks are not byte blocks: 2 tokens here, 8 bytes there.
        assert_ne!(
            chat.hashes,
            PromptHasher::bytes(2)
                .hash("abcde", PromptKind::Chat)
                .hashes
        );
    }

    #[test]
    fn missing_or_garbage_files_are_errors_naming_the_file() {
        let err = PromptHasher::load(4, Some("/no/such/tokenizer.json")).unwrap_err();
        assert!(err.to_string().contains("/no/such/tokenizer.json"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, "{\"model\": 3}").unwrap();
        let err = PromptHasher::with_tokenizer_file(4, &path).unwrap_err();
        assert!(err.path.ends_with("tokenizer.json"), "{err}");
    }
}

//! KV-cache bookkeeping shared by the frontend (routing) and the mocker (simulation).
//!
//! The one rule both sides must agree on is how a prompt is cut into blocks and hashed:
//! [`hash`] is that rule and [`prompt`] applies it to prompt text (over token ids when a
//! tokenizer is configured, else over bytes); each is the only copy of it.
//!
//! On top of it: [`index`] (which instances hold which prefix blocks, fed by worker events),
//! [`approx`] (the same answer predicted from the frontend's own routing decisions when there
//! are no events), [`cost`] (the `kv` policy's cost and temperature selection) and [`affinity`]
//! (its default, queue-aware cost).
#![forbid(unsafe_code)]

pub mod affinity;
pub mod approx;
pub mod cost;
pub mod event;
pub mod hash;
pub mod index;
pub mod prompt;

pub use affinity::{AffinityCandidate, AffinityConfig};
pub use approx::{ApproxIndex, SharedApproxIndex};
pub use cost::{KvCandidate, KvCostWeights};
pub use event::KvEvent;
pub use hash::{BlockHash, BlockHasher, BYTES_PER_TOKEN};
pub use index::{KvIndex, Overlap, SharedKvIndex};
pub use prompt::{PromptBlocks, PromptHasher, PromptKind, TokenizerError};

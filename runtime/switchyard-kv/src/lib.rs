//! KV-cache bookkeeping shared by the frontend (routing) and the mocker (simulation).
//!
//! The one rule both sides must agree on is how a prompt is cut into blocks and hashed:
//! [`hash`] is that rule, and it is the only copy of it.
#![forbid(unsafe_code)]

pub mod event;
pub mod hash;

pub use event::KvEvent;
pub use hash::{BlockHash, BlockHasher, BYTES_PER_TOKEN};

//! KV-cache events as workers report them (and the mocker emits them). The NATS wire schema in
//! `docs/events.md` is the serde form of these types.

use serde::{Deserialize, Serialize};

use crate::BlockHash;

/// One change to a worker's KV cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KvEvent {
    /// Blocks were stored; `parent` is the hash of the block before the first one (None at the
    /// start of a sequence). `blocks` are chained hashes in order.
    Stored {
        parent: Option<BlockHash>,
        blocks: Vec<BlockHash>,
    },
    /// Blocks were evicted.
    Removed { blocks: Vec<BlockHash> },
    /// The whole cache was cleared.
    Cleared,
}

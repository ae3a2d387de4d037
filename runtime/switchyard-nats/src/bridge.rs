//! `switchyard kv-bridge`: vLLM's ZMQ KV events, re-hashed and republished on NATS.
//!
//! vLLM names blocks by its own hashes, which the frontend cannot compute. But every
//! `BlockStored` carries the blocks' token ids, so the bridge recomputes Switchyard's chained
//! hashes ([`BlockHasher::hash_tokens`], the same code the frontend uses on prompts) and keeps
//! a map from vLLM's hash to ours, so `BlockRemoved` translates too. It then publishes as the
//! instance through a normal [`Publisher`], so sequence numbers, dumps and resyncs work as for
//! any other worker (the dump is the bridge's own view of the engine's cache).
//!
//! Hashes chain, so a block's hash covers its whole prefix. vLLM's `BlockStored` carries the
//! token ids of the *new* blocks only and names the block before them (`parent_block_hash`);
//! the bridge looks up its own hash for that parent and continues the chain from it
//! ([`BlockHasher::hash_tokens_after`]), so each map entry is just vLLM hash → our hash.
//! Requirements: the bridge's `block_size` equals vLLM's `--block-size` and the frontend's,
//! and the frontend hashes prompts over token ids with the engine's tokenizer
//! (`tokenizer:` in its config).
//! Blocks stored under a LoRA adapter are skipped: their KV differs from the base model's
//! even though the tokens match.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use switchyard_kv::{BlockHash, BlockHasher, KvEvent};
use zeromq::{Socket, SocketRecv, SubSocket};

use crate::vllm::{decode_frames, VllmEvent, VllmHash};
use crate::{DumpFn, Error, NatsConnection, Publisher, Result};

/// What `switchyard kv-bridge` needs.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// vLLM's publisher, e.g. `tcp://127.0.0.1:5557` (vLLM `--kv-events-config`
    /// `{"enable_kv_cache_events": true, "publisher": "zmq", "endpoint": "tcp://*:5557"}`).
    pub zmq_endpoint: String,
    /// ZMQ topic prefix to subscribe to (vLLM's `topic`, default empty = everything).
    pub topic: String,
    /// The instance id the frontend knows this engine by (its discovery id).
    pub instance_id: String,
    /// Tokens per block; must match vLLM's `--block-size` and the frontend's.
    pub block_size: usize,
}

/// vLLM events → Switchyard KV events. Pure state machine; [`run_bridge`] drives it.
#[derive(Debug)]
pub struct Translator {
    hasher: BlockHasher,
    /// vLLM's hash of every cached block → ours.
    blocks: HashMap<VllmHash, BlockHash>,
    /// Stored events that could not be translated (unknown parent, LoRA, block size).
    pub skipped: u64,
}

impl Translator {
    pub fn new(block_size: usize) -> Self {
        Self {
            hasher: BlockHasher::new(block_size),
            blocks: HashMap::new(),
            skipped: 0,
        }
    }

    /// Our hashes of every block currently cached (the dump).
    pub fn blocks(&self) -> Vec<BlockHash> {
        self.blocks.values().copied().collect()
    }

    /// Applies one vLLM event; returns the equivalent Switchyard event, if any.
    pub fn translate(&mut self, ev: VllmEvent) -> Option<KvEvent> {
        match ev {
            VllmEvent::BlockStored {
                block_hashes,
                parent_block_hash,
                token_ids,
                block_size,
                lora_id,
            } => {
                let stored = self.stored(
                    block_hashes,
                    parent_block_hash,
                    token_ids,
                    block_size,
                    lora_id,
                );
                if stored.is_none() {
                    self.skipped += 1;
                }
                stored
            }
            VllmEvent::BlockRemoved { block_hashes } => {
                let blocks: Vec<BlockHash> = block_hashes
                    .iter()
                    .filter_map(|h| self.blocks.remove(h))
                    .collect();
                (!blocks.is_empty()).then_some(KvEvent::Removed { blocks })
            }
            VllmEvent::AllBlocksCleared => {
                self.blocks.clear();
                Some(KvEvent::Cleared)
            }
        }
    }

    fn stored(
        &mut self,
        hashes: Vec<VllmHash>,
        parent: Option<VllmHash>,
        tokens: Vec<u32>,
        block_size: usize,
        lora_id: Option<i64>,
    ) -> Option<KvEvent> {
        let bs = self.hasher.block_size();
        if block_size != bs {
            tracing::warn!(
                vllm = block_size,
                ours = bs,
                "block size mismatch; event skipped"
            );
            return None;
        }
        if lora_id.is_some() {
            return None;
        }
        // A parent we never saw (the bridge started after the engine cached it) cannot be
        // chained from: skip, the engine will store the prefix again eventually.
        let our_parent = match &parent {
            Some(p) => Some(*self.blocks.get(p)?),
            None => None,
        };
        let n = hashes.len().min(tokens.len() / bs);
        let new = self.hasher.hash_tokens_after(our_parent, &tokens[..n * bs]);
        for (h, ours) in hashes.into_iter().zip(&new) {
            self.blocks.insert(h, *ours);
        }
        Some(KvEvent::Stored {
            parent: our_parent,
            blocks: new,
        })
    }
}

/// Runs the bridge until `shutdown` resolves: subscribe to vLLM, translate, publish to NATS
/// as `cfg.instance_id`. Reconnects to the ZMQ endpoint on its own.
pub async fn run_bridge(
    conn: &NatsConnection,
    cfg: BridgeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    if cfg.block_size == 0 || cfg.instance_id.is_empty() {
        return Err(Error::Config(
            "kv-bridge needs a block size > 0 and an instance id".into(),
        ));
    }
    let translator = Arc::new(Mutex::new(Translator::new(cfg.block_size)));
    let dump: DumpFn = {
        let t = translator.clone();
        Arc::new(move || t.lock().blocks())
    };
    let publisher = Publisher::start(conn, cfg.instance_id.clone(), dump).await?;
    tokio::pin!(shutdown);

    let mut socket = SubSocket::new();
    loop {
        tokio::select! {
            r = socket.connect(&cfg.zmq_endpoint) => match r {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(endpoint = %cfg.zmq_endpoint, error = %e, "vLLM KV-event endpoint unreachable; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
            _ = &mut shutdown => return Ok(()),
        }
    }
    socket.subscribe(&cfg.topic).await?;
    tracing::info!(endpoint = %cfg.zmq_endpoint, instance = %cfg.instance_id, "kv-bridge running");

    let mut last_seq: Option<u64> = None;
    loop {
        let msg = tokio::select! {
            m = socket.recv() => m?,
            _ = &mut shutdown => return Ok(()),
        };
        let frames: Vec<&[u8]> = msg.iter().map(|b| b.as_ref()).collect();
        let batch = match decode_frames(&frames) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable vLLM KV-event message");
                continue;
            }
        };
        if let Some(missed) = missed_messages(last_seq, batch.seq) {
            // ZMQ PUB drops under pressure; our view may now miss blocks until they are
            // stored again. Removals of unknown blocks are ignored, so it stays safe.
            tracing::warn!(missed, "vLLM KV events lost");
        }
        last_seq = Some(batch.seq);
        let mut t = translator.lock();
        let events: Vec<KvEvent> = batch
            .events
            .into_iter()
            .filter_map(|e| t.translate(e))
            .collect();
        // Published under the lock: the dump function must never see a state older than an
        // event that has already been handed to the publisher.
        publisher.publish_kv_batch(events);
    }
}

/// How many messages vLLM's publisher sent between `prev` and `seq`, if any were lost. The
/// numbers come from the engine: a restart (`seq` going back) or any value at all must not
/// overflow, so this only reports a forward jump of more than one.
fn missed_messages(prev: Option<u64>, seq: u64) -> Option<u64> {
    let step = seq.checked_sub(prev?)?;
    step.checked_sub(1).filter(|&missed| missed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_messages_never_overflows_on_engine_seq_numbers() {
        assert_eq!(missed_messages(None, 5), None);
        assert_eq!(missed_messages(Some(4), 5), None);
        assert_eq!(missed_messages(Some(4), 8), Some(3));
        assert_eq!(missed_messages(Some(5), 5), None, "repeat");
        assert_eq!(missed_messages(Some(9), 2), None, "engine restarted");
        assert_eq!(missed_messages(Some(u64::MAX), 0), None);
        assert_eq!(missed_messages(Some(u64::MAX), u64::MAX), None);
        assert_eq!(missed_messages(Some(u64::MAX - 1), u64::MAX), None);
        assert_eq!(missed_messages(Some(0), u64::MAX), Some(u64::MAX - 1));
    }

    fn stored(hashes: &[i128], parent: Option<i128>, tokens: Vec<u32>) -> VllmEvent {
        VllmEvent::BlockStored {
            block_hashes: hashes.iter().map(|h| VllmHash::Int(*h)).collect(),
            parent_block_hash: parent.map(VllmHash::Int),
            token_ids: tokens,
            block_size: 2,
            lora_id: None,
        }
    }

    #[test]
    fn rehashes_chains_like_the_frontend() {
        let h = BlockHasher::new(2);
        let mut t = Translator::new(2);
        let first = t.translate(stored(&[100, 101], None, vec![1, 2, 3, 4]));
        let want = h.hash_tokens(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(
            first,
            Some(KvEvent::Stored {
                parent: None,
                blocks: want[..2].to_vec()
            })
        );
        // A continuation names its parent by vLLM hash; our hash must chain through it.
        let next = t.translate(stored(&[102], Some(101), vec![5, 6]));
        assert_eq!(
            next,
            Some(KvEvent::Stored {
                parent: Some(want[1]),
                blocks: vec![want[2]]
            })
        );
        let removed = t.translate(VllmEvent::BlockRemoved {
            block_hashes: vec![VllmHash::Int(102), VllmHash::Int(999)],
        });
        assert_eq!(
            removed,
            Some(KvEvent::Removed {
                blocks: vec![want[2]]
            })
        );
        let mut dump = t.blocks();
        dump.sort();
        let mut expect = want[..2].to_vec();
        expect.sort();
        assert_eq!(dump, expect);
    }

    #[test]
    fn untranslatable_stores_are_skipped() {
        let mut t = Translator::new(2);
        assert_eq!(
            t.translate(stored(&[5], Some(4), vec![1, 2])),
            None,
            "unknown parent"
        );
        let mut lora = stored(&[6], None, vec![1, 2]);
        if let VllmEvent::BlockStored { lora_id, .. } = &mut lora {
            *lora_id = Some(3);
        }
        assert_eq!(t.translate(lora), None);
        let mut other_size = stored(&[7], None, vec![1, 2]);
        if let VllmEvent::BlockStored { block_size, .. } = &mut other_size {
            *block_size = 16;
        }
        assert_eq!(t.translate(other_size), None);
        assert_eq!(t.skipped, 3);
        assert_eq!(
            t.translate(VllmEvent::AllBlocksCleared),
            Some(KvEvent::Cleared)
        );
    }
}
